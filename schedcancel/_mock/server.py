"""The mock IXOPAY Schedule API server: a real aiohttp app on 127.0.0.1.

It answers the six Schedule API operations (get, pause, continue, update,
cancel, start; the table is in `operations`) through one handler. A
request goes through these steps, in this order (the real server's order is
not documented; this one is the conservative reading):

1. **request latency** (injected): the request waits before the server counts
   it, like network delay on the way in;
2. **arrival**: the server reads the body and its clock; that instant is the
   arrival time the limits count and the recorder keeps;
3. **Basic auth** of a configured API user, else 401 (not counted: the limits
   are keyed by the authenticated user); the password plain or, as the PHP
   SDK sends it, SHA-1-hashed ten times (``accept_sdk_hashed_password``);
4. **path parameters**: apiKey 1-50 and scheduleId (if any) 1-32 characters of
   ``[A-Za-z0-9._~-]``, else 400 with errorCode 1002; an apiKey the server does
   not know, 401;
5. **fault draw** (injected; a forced 429 answers here);
6. **rate limits**, per API user (every operation) and per scheduleId (every
   operation on that schedule; start has none), one budget whatever the
   operation, else 429 with errorCode 1009 (and ``Retry-After`` when configured);
7. **signature**, when the connector has a shared secret: ``Date`` (or
   ``X-Date``, which wins) and ``X-Signature`` must be present and match,
   with the SHA-512 body hash or the deprecated MD5 one the PHP SDK still
   signs with (``accept_md5_signatures``), else 401 with errorCode 1004;
8. **body**, checked by `schema`: 400 with errorCode 1005 (not JSON,
   wrong ``Content-Type``, anything but ``{}``/``[]`` for cancel and pause, any
   body on get) or 1002 (wrong shape or type), or 200 with a business code
   (7010, 7050, 7060, 7080, 7090);
9. the **injected fault**, if any, or the **state machine** of
   `schedules`: 7020 for an unknown registration (when they are
   checked), 7040 for an unknown id (or it exists as ACTIVE when
   ``unknown_ids="active"``), 7070 with old and new status unchanged when the
   status does not allow the operation, else success;
10. **response latency** (injected), then the response (or a dropped connection).

The IXOPAY docs document only 200 and 429 for this endpoint; the statuses and
bodies of auth failures (401 here), bad signatures (401 + 1004 here) and bad
parameters (400 + 1002/1005 here) are this emulator's choice, marked as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import attrs
from aiohttp import web

from ..errors import InvalidParameterError
from .auth import BodyHash, basic_credentials, password_matches, redact_key, signature_matches
from .faults import Fault, FaultInjector, Faults
from .headers import HEADER_STYLES, HeaderStyle, rate_limit_headers
from .limits import Level, LimitBook, ServerLimits
from .operations import OPERATIONS, Operation, OperationSpec, Status, operation_named
from .recorder import Arrival, Outcome, Recorder
from .schedules import MockSchedule, ScheduleBook
from .schedules import error_body as _error
from .schema import Refusal, check_body

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

__all__ = [
    "API_PREFIX",
    "DEFAULT_API_KEY",
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "MockScheduleServer",
]

logger = logging.getLogger("schedcancel.testing")

#: The API user the server accepts unless told otherwise.
DEFAULT_USERNAME = "api-user"
#: That user's password.
DEFAULT_PASSWORD = "api-password"  # noqa: S105 - a test fixture's well-known password
#: The connector apiKey the server knows unless told otherwise (signing off).
DEFAULT_API_KEY = "test-api-key"
#: The path prefix; ``base_url`` ends with it, as the real base URLs do.
API_PREFIX = "/api/v3"

_ID = re.compile(r"[A-Za-z0-9._~-]+")
_MAX_API_KEY = 50
_MAX_SCHEDULE_ID = 32

# Bodies and messages, from the API documentation where it gives them.
_MSG_SERVER_ERROR = "System Error occurred"
_MSG_MAINTENANCE = (
    "The system is currently undergoing scheduled maintenance. Please try again later."
)
_HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>"
    "<body><h1>502 Bad Gateway</h1><p>The upstream server did not answer.</p></body></html>\n"
)
_WWW_AUTHENTICATE = {"WWW-Authenticate": 'Basic realm="IXOPAY mock"'}


def _json(
    status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(payload, status=status, headers=headers)


def _statuses(values: Iterable[str]) -> frozenset[Status]:
    return frozenset(Status(value) for value in values)


def _users_factory() -> dict[str, str]:
    return {DEFAULT_USERNAME: DEFAULT_PASSWORD}


def _connectors_factory() -> dict[str, str | None]:
    return {DEFAULT_API_KEY: None}


def _aware(_instance: object, attribute: attrs.Attribute[datetime], value: datetime) -> None:
    if value.utcoffset() is None:
        raise InvalidParameterError(f"{attribute.name} must be timezone-aware")


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _in_unit_interval(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise InvalidParameterError(f"{attribute.name} must be within [0, 1), got {value!r}")


@attrs.frozen
class _Answer:
    """A decided response before latency: None response means "drop the connection"."""

    response: web.Response | None
    arrival: Arrival


@attrs.define(kw_only=True, repr=False, eq=False)
class MockScheduleServer:
    """The emulator itself, on a local port: the server [`schedcancel.testing`][schedcancel.testing]
    builds on.

    Use [`schedcancel.testing.MockScheduleServer`][schedcancel.testing.MockScheduleServer], which
    documents every setting and adds [`client()`][schedcancel.testing.MockScheduleServer.client].
    """

    users: Mapping[str, str] = attrs.field(factory=_users_factory)
    connectors: Mapping[str, str | None] = attrs.field(factory=_connectors_factory)
    limits: ServerLimits = attrs.field(
        factory=ServerLimits, on_setattr=lambda self, _, value: self._set_limits(value)
    )
    faults: Faults = attrs.field(
        factory=Faults, on_setattr=lambda self, _, value: self._set_faults(value)
    )
    schedules: Mapping[str, Status | str] = attrs.field(factory=dict)
    unknown_ids: Literal["error", "active"] = attrs.field(
        default="error", validator=attrs.validators.in_(("error", "active"))
    )
    unknown_registrations: Literal["accept", "error"] = attrs.field(
        default="accept", validator=attrs.validators.in_(("accept", "error"))
    )
    cancellable: frozenset[Status] = attrs.field(
        default=frozenset({Status.ACTIVE, Status.PAUSED, Status.ERROR}), converter=_statuses
    )
    accept_md5_signatures: bool = True
    accept_sdk_hashed_password: bool = True
    foreign_load: float = attrs.field(default=0.0, validator=_in_unit_interval)
    foreign_user: str | None = None
    rate_limit_headers: HeaderStyle = attrs.field(
        default="none", validator=attrs.validators.in_(HEADER_STYLES)
    )
    host: str = "127.0.0.1"
    port: int = 0
    clock: Callable[[], float] | None = attrs.field(default=None, eq=False)
    wall_clock_at_start: datetime = attrs.field(factory=_utc_now, validator=_aware)
    recorder: Recorder = attrs.field(factory=Recorder, init=False)

    _book_of_schedules: ScheduleBook = attrs.field(factory=ScheduleBook, init=False)
    _now: Callable[[], float] | None = attrs.field(default=None, init=False)
    _started_at: float = attrs.field(default=0.0, init=False)
    _book: LimitBook | None = attrs.field(default=None, init=False)
    _injector: FaultInjector = attrs.field(init=False)
    _runner: web.AppRunner | None = attrs.field(default=None, init=False)
    _base_url: str | None = attrs.field(default=None, init=False)
    _foreign_task: asyncio.Task[None] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if self.foreign_load and self.foreign_user is None and not self.users:
            raise InvalidParameterError("foreign_load needs a foreign_user or at least one user")
        self._injector = FaultInjector(self.faults)
        for schedule_id, status in self.schedules.items():
            self.seed([schedule_id], status)

    def __repr__(self) -> str:
        signing = sum(1 for secret in self.connectors.values() if secret is not None)
        return (
            f"MockScheduleServer(base_url={self._base_url!r}, users={len(self.users)}, "
            f"connectors={len(self.connectors)}, signing={signing}, limits={self.limits!r}, "
            f"unknown_ids={self.unknown_ids!r}, foreign_load={self.foreign_load}, "
            f"rate_limit_headers={self.rate_limit_headers!r}, "
            f"schedules={len(self._book_of_schedules)}, arrivals={len(self.recorder)})"
        )

    def _set_limits(self, limits: ServerLimits) -> ServerLimits:
        if self._now is not None:
            self._book = LimitBook(limits, origin=self._now())
        return limits

    def _set_faults(self, faults: Faults) -> Faults:
        self._injector = FaultInjector(faults)
        return faults

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> Self:
        """Start listening; [`base_url`][schedcancel.ScheduleClient.base_url] is valid afterwards.

        Returns:
            The server, started.

        Raises:
            RuntimeError: the server was started already.
            OSError: the address could not be bound.
        """
        if self._runner is not None:
            raise RuntimeError("MockScheduleServer already started")
        self._now = self.clock or asyncio.get_running_loop().time
        self._started_at = self._now()
        self._book = LimitBook(self.limits, origin=self._started_at)
        app = web.Application()
        for spec in OPERATIONS.values():
            app.router.add_route(
                spec.method, API_PREFIX + spec.path, functools.partial(self._handle, spec)
            )
        # No access log (tests stay quiet and apiKeys stay out of logs); a short
        # shutdown so closing never waits on a request held by injected latency.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        port = runner.addresses[0][1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._base_url = f"http://{host}:{port}{API_PREFIX}"
        if self.foreign_load:
            user = self.foreign_user or next(iter(self.users))
            self._foreign_task = asyncio.create_task(self._foreign_loop(user))
        logger.debug("mock server listening at %s", self._base_url)
        return self

    async def aclose(self) -> None:
        """Stop listening and drop open connections; calling it again does nothing."""
        task, self._foreign_task = self._foreign_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            logger.debug("mock server at %s closed", self._base_url)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def started(self) -> bool:
        """True between [`start()`][schedcancel.ScheduleClient.start] and `aclose()`."""
        return self._runner is not None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/api/v3``, for ``ScheduleClient(base_url=...)``.

        Raises:
            RuntimeError: the server has not been started.
        """
        if self._base_url is None:
            raise RuntimeError("MockScheduleServer not started")
        return self._base_url

    def url_for(
        self,
        schedule_id: str | None = None,
        *,
        api_key: str | None = None,
        operation: Operation | str = Operation.CANCEL,
    ) -> str:
        """An operation's URL (no encoding; for raw requests in tests).

        Args:
            schedule_id: the scheduleId; None (only) for start.
            api_key: the connector apiKey; default the first configured one.
            operation: the operation (default cancel).

        Returns:
            The absolute URL.

        Raises:
            InvalidParameterError: a scheduleId for start, or none for another operation.
        """
        spec = OPERATIONS[operation_named(operation)]
        if spec.has_schedule_id != (schedule_id is not None):
            raise InvalidParameterError(
                f"{spec.operation} takes {'a' if spec.has_schedule_id else 'no'} scheduleId"
            )
        key = api_key if api_key is not None else next(iter(self.connectors))
        path = spec.path.replace("{apiKey}", key).replace("{scheduleId}", schedule_id or "")
        return self.base_url + path

    def now(self) -> float:
        """The server's clock now.

        Raises:
            RuntimeError: the server has not been started.
        """
        if self._now is None:
            raise RuntimeError("MockScheduleServer not started")
        return self._now()

    def now_datetime(self) -> datetime:
        """The server's date-time now: `wall_clock_at_start` moved on by its clock.

        Raises:
            RuntimeError: the server has not been started.
        """
        return self.wall_clock_at_start + timedelta(seconds=self.now() - self._started_at)

    # -- schedules ---------------------------------------------------------

    def seed(
        self,
        schedule_ids: Iterable[str],
        status: Status | str = Status.ACTIVE,
        *,
        registration_uuid: str | None = None,
        scheduled_at: datetime | None = None,
    ) -> None:
        """Create schedules, or overwrite the status of known ones.

        Args:
            schedule_ids: the ids.
            status: their status (any, e.g. PAUSED, ERROR, CANCELLED);
                ``NON-EXISTING`` makes them unknown again.
            registration_uuid: the registration of new ones; default ``RG-``
                plus the id (cut to 50 characters). It becomes a known registration.
            scheduled_at: the next charge of new ones (aware); default one day
                after `wall_clock_at_start`.

        Raises:
            ValueError: ``status`` is not a schedule status.
        """
        self._book_of_schedules.seed(
            schedule_ids,
            Status(status),
            registration_uuid=registration_uuid,
            scheduled_at=scheduled_at or self.wall_clock_at_start + timedelta(days=1),
        )

    def seed_registrations(self, registration_uuids: Iterable[str]) -> None:
        """Make registrations known, for ``unknown_registrations="error"``.

        Args:
            registration_uuids: the registrationUuids start and update may name.
        """
        self._book_of_schedules.seed_registrations(registration_uuids)

    def schedule(self, schedule_id: str) -> MockSchedule | None:
        """Everything the server stores about a schedule, or None when it does not know it."""
        return self._book_of_schedules.get(schedule_id)

    # Statuses are typed ``str`` below: they are `Status` members, which equal their
    # wire value and the client's ScheduleStatus of that name, and a test compares them
    # with either (mypy's strict equality refuses two unrelated enums).
    def status_of(self, schedule_id: str) -> str | None:
        """A schedule's [`Status`][schedcancel.testing.Status], or None when it was never seeded,
        started or touched."""
        schedule = self._book_of_schedules.get(schedule_id)
        return None if schedule is None else schedule.status

    @property
    def statuses(self) -> Mapping[str, str]:
        """A copy of every known schedule's status (each a
        [`Status`][schedcancel.testing.Status])."""
        return self._book_of_schedules.statuses

    def script(self, *faults: Fault | str | None) -> None:
        """Queue faults for the next authenticated, well-formed requests (None: no fault).

        Args:
            faults: one entry per request, in order.
        """
        self._injector.extend_script(faults)

    def used(self, *, user: str | None = None, schedule_id: str | None = None) -> float:
        """How much of one key's limit the server counts as spent now.

        Args:
            user: an API user, or
            schedule_id: a scheduleId (give exactly one).

        Returns:
            Requests in the window (or tokens spent, or the weighted estimate).

        Raises:
            RuntimeError: the server has not been started.
        """
        return self._limit_book.used(self.now(), user=user, schedule_id=schedule_id)

    # -- the endpoints -----------------------------------------------------

    async def _handle(self, spec: OperationSpec, request: web.Request) -> web.StreamResponse:
        delay = self._injector.request_latency()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            body = await request.read()
        except ConnectionResetError:
            # The client left before its body arrived: the request never reached the
            # server, so nothing is counted, and there is no one to answer.
            return web.Response()
        # From here to the recording, nothing awaits: one arrival is decided atomically.
        answer = self._decide(spec, request, body, self.now())
        self.recorder.record(answer.arrival)
        delay = self._injector.response_latency()
        if delay > 0:
            await asyncio.sleep(delay)
        if answer.response is None:
            transport = request.transport
            if transport is not None:  # pragma: no branch - None only if the client left first
                transport.close()
            # aiohttp finds the transport closed and sends nothing.
            return web.Response()
        return answer.response

    def _decide(
        self, spec: OperationSpec, request: web.Request, body: bytes, now: float
    ) -> _Answer:
        """Steps 3-9 of the module docstring; nothing here awaits."""
        api_key = request.match_info["apiKey"]
        schedule_id = request.match_info.get("scheduleId")
        seen = functools.partial(
            Arrival,
            time=now,
            api_key=redact_key(api_key),
            schedule_id=schedule_id,
            operation=spec.operation,
        )
        user = self._authenticate(request.headers.get("Authorization"))
        if user is None:
            return _Answer(
                _json(401, _error(1000, "Invalid API user credentials"), _WWW_AUTHENTICATE),
                seen(user=None, status=401, outcome=Outcome.UNAUTHORIZED),
            )
        if not _valid(api_key, _MAX_API_KEY) or (
            schedule_id is not None and not _valid(schedule_id, _MAX_SCHEDULE_ID)
        ):
            return _Answer(
                _json(400, _error(1002, "Invalid request data")),
                seen(user=user, status=400, outcome=Outcome.INVALID_REQUEST),
            )
        if api_key not in self.connectors:
            return _Answer(
                _json(401, _error(1000, "Unknown apiKey")),
                seen(user=user, status=401, outcome=Outcome.UNAUTHORIZED),
            )
        book = self._limit_book
        fault = self._injector.next_fault()
        if fault is Fault.RATE_LIMITED:
            verdict = book.refuse(now, user=user, schedule_id=schedule_id)
        else:
            verdict = book.arrive(now, user=user, schedule_id=schedule_id)
        if not verdict.allowed:
            if fault is not Fault.RATE_LIMITED:
                self._injector.put_back(fault)  # for the next request that gets through
            headers = self._retry_after(verdict.wait) or {}
            headers |= self._limit_headers(now, user, schedule_id, verdict.level or "total")
            return _Answer(
                _json(429, _error(1009, "Too many requests"), headers),
                seen(user=user, status=429, outcome=Outcome.RATE_LIMITED, limited_by=verdict.level),
            )
        # Admitted: from here on the arrival counts against both limits.
        answer = self._serve(
            spec,
            request,
            body,
            fault,
            api_key=api_key,
            schedule_id=schedule_id,
            seen=functools.partial(seen, user=user, accepted=True),
        )
        if answer.response is not None:
            answer.response.headers.update(self._limit_headers(now, user, schedule_id, None))
        return answer

    def _limit_headers(
        self, now: float, user: str, schedule_id: str | None, refused: Level | None
    ) -> dict[str, str]:
        """The answer's rate-limit headers in the configured style (`headers`)."""
        if self.rate_limit_headers == "none":
            return {}
        quotas = self._limit_book.quotas(now, user=user, schedule_id=schedule_id)
        return rate_limit_headers(
            self.rate_limit_headers, quotas, window=self.limits.window, refused=refused
        )

    def _serve(
        self,
        spec: OperationSpec,
        request: web.Request,
        body: bytes,
        fault: Fault | None,
        *,
        api_key: str,
        schedule_id: str | None,
        seen: Callable[..., Arrival],
    ) -> _Answer:
        """Steps 7-9 for an admitted request."""
        secret = self.connectors[api_key]
        if secret is not None and not _signature_ok(request, body, secret, self._body_hashes):
            self._injector.put_back(fault)  # faults are for well-formed requests
            return _Answer(
                _json(401, _error(1004, "Invalid signature")),
                seen(status=401, outcome=Outcome.BAD_SIGNATURE),
            )
        content_type = request.content_type if "Content-Type" in request.headers else None
        checked = check_body(spec.body, body, content_type, now=self.now_datetime())
        if isinstance(checked, Refusal) and checked.status == 400:
            self._injector.put_back(fault)
            return _Answer(
                _json(400, _error(checked.code, checked.message)),
                seen(status=400, outcome=Outcome.INVALID_REQUEST),
            )
        if fault is Fault.SERVER_ERROR:
            return _Answer(
                _json(500, _error(1008, _MSG_SERVER_ERROR)),
                seen(status=500, outcome=Outcome.SERVER_ERROR),
            )
        if fault is Fault.MAINTENANCE:
            return _Answer(
                _json(503, _error(1010, _MSG_MAINTENANCE)),
                seen(status=503, outcome=Outcome.MAINTENANCE),
            )
        if fault is Fault.HTML:
            return _Answer(
                web.Response(status=502, text=_HTML_PAGE, content_type="text/html"),
                seen(status=502, outcome=Outcome.HTML),
            )
        if isinstance(checked, Refusal):
            payload, outcome = _error(checked.code, checked.message), Outcome.INVALID_DATA
        else:
            payload, outcome = self._book_of_schedules.apply(
                spec,
                schedule_id,
                checked,
                now=self.now_datetime(),
                unknown_ids=self.unknown_ids,
                unknown_registrations=self.unknown_registrations,
                cancellable=self.cancellable,
            )
        if fault is Fault.TRUNCATED:
            data = json.dumps(payload).encode()
            return _Answer(
                web.Response(body=data[: len(data) // 2], content_type="application/json"),
                seen(status=200, outcome=Outcome.TRUNCATED),
            )
        if fault is Fault.DROP:
            return _Answer(None, seen(status=None, outcome=Outcome.DROPPED))
        return _Answer(_json(200, payload), seen(status=200, outcome=outcome))

    @property
    def _body_hashes(self) -> tuple[BodyHash, ...]:
        return ("sha512", "md5") if self.accept_md5_signatures else ("sha512",)

    @property
    def _limit_book(self) -> LimitBook:
        if self._book is None:
            raise RuntimeError("MockScheduleServer not started")
        return self._book

    def _authenticate(self, header: str | None) -> str | None:
        credentials = basic_credentials(header)
        if credentials is None:
            return None
        username, password = credentials
        expected = self.users.get(username)
        if expected is None or not password_matches(
            password, expected, accept_sdk_hashed=self.accept_sdk_hashed_password
        ):
            return None
        return username

    def _retry_after(self, wait: float) -> dict[str, str] | None:
        if not self.limits.retry_after:
            return None
        # delay-seconds is a whole number (RFC 9110 §10.2.3): the first whole second
        # strictly after the wait, so that obeying it is enough even where the limit
        # lifts only just after the wait (a sliding counter's estimate at its boundary);
        # at least 1 s, since a forced 429 may come while the limits have room.
        return {"Retry-After": str(max(1, math.floor(wait) + 1))}

    async def _foreign_loop(self, user: str) -> None:
        """Spend ``foreign_load`` of ``user``'s budget, evenly spaced, until closed."""
        due = self.now()
        sent = 0
        while True:
            delay = due - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            now = self.now()
            schedule_id = f"foreign-{sent}"
            # Read afresh each time: assigning ``limits`` starts a new book.
            verdict = self._limit_book.arrive(now, user=user, schedule_id=schedule_id)
            self.recorder.record(
                Arrival(
                    time=now,
                    user=user,
                    api_key=None,
                    schedule_id=schedule_id,
                    status=200 if verdict.allowed else 429,
                    outcome=Outcome.CANCELLED if verdict.allowed else Outcome.RATE_LIMITED,
                    foreign=True,
                    accepted=verdict.allowed,
                    limited_by=verdict.level,
                )
            )
            sent += 1
            due += self.limits.window / (self.foreign_load * self.limits.total)


def _valid(value: str, max_length: int) -> bool:
    return len(value) <= max_length and _ID.fullmatch(value) is not None


def _signature_ok(
    request: web.Request, body: bytes, secret: str, body_hashes: Iterable[BodyHash]
) -> bool:
    # X-Date wins over Date (as the API documents), for libraries that cannot set Date.
    date = request.headers.get("X-Date") or request.headers.get("Date")
    given = request.headers.get("X-Signature")
    if not date or not given:
        return False
    return signature_matches(
        given,
        secret,
        method=request.method,
        body=body,
        content_type=request.headers.get("Content-Type", ""),
        date=date,
        request_uri=request.raw_path,
        body_hashes=body_hashes,
    )
