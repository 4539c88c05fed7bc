"""ScheduleClient: validate, build, acquire, send, release, parse, retry: for every operation."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from ssl import SSLContext
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypedDict, Unpack
from urllib.parse import urlsplit

from .._bulk import runner as _bulk
from .._bulk.journal import BulkOutcome
from .._limiting.gate import Gate
from .._protocol.environment import ENVIRONMENT_VARIABLES, read_client_environment
from .._protocol.models import (
    Clock,
    Limiter,
    Permit,
    RateLimitLevel,
    RateLimits,
    RetryPolicy,
    ScheduleResult,
)
from .._protocol.operations import Operation
from .._protocol.ratelimit_headers import RateLimitHeaders, parse_rate_limit_headers
from .._protocol.redact import redact_key
from .._protocol.requests import ContinueSchedule, StartSchedule, UpdateSchedule
from .._protocol.validate import (
    check_credential,
    check_number,
    check_priority,
    check_queue_timeout,
    validate_api_key,
    validate_schedule_id,
)
from .._protocol.wire import (
    DEFAULT_BASE_URL,
    Request,
    RequestBuilder,
    Transport,
    parse_response,
)
from ..errors import (
    ClientClosedError,
    InvalidParameterError,
    OutcomeUnknownError,
    RateLimitedError,
    ResponseParseError,
    ScheduleError,
    ServerError,
    TransportError,
)
from .hooks import CallTrace, Hook, Hooks, LoggingHook
from .transport import AiohttpTransport

if TYPE_CHECKING:
    from typing import Self

    import aiohttp

__all__ = ["DEFAULT_BASE_URL", "CallOptions", "ScheduleClient"]

log = logging.getLogger(__name__)


def _path_template(operation: Operation) -> str:
    """The request's path below the base URL, as instrumentation shows it (no apiKey)."""
    middle = "/{scheduleId}" if operation.has_schedule_id else ""
    return f"/schedule/{{apiKey}}{middle}/{operation.path}"


# Builders kept for apiKeys other than the client's own (a cancel(api_key=...) per
# connector); beyond this many the least recently used one is rebuilt when needed.
_MAX_BUILDERS = 32


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_base_url(base_url: object, *, allow_insecure_http: bool) -> str:
    # Never echo the URL: a pasted one may carry credentials in its userinfo.
    if not isinstance(base_url, str):
        raise InvalidParameterError(f"base_url must be a str, got {type(base_url).__name__}")
    if any(c.isspace() or not c.isprintable() for c in base_url):
        raise InvalidParameterError("base_url must not contain whitespace or control characters")
    try:
        parts = urlsplit(base_url)
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError:
        raise InvalidParameterError("base_url is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidParameterError("base_url must be an absolute https:// URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidParameterError("base_url must not carry credentials; use username/password")
    if parts.query or parts.fragment:
        raise InvalidParameterError("base_url must not have a query or a fragment")
    if parts.path in ("", "/"):
        # The PHP SDK's base is the bare host; this client's includes the API path.
        raise InvalidParameterError(
            "base_url needs the API path, e.g. https://gateway.ixopay.com/api/v3"
        )
    if parts.scheme == "http" and not allow_insecure_http and not _is_loopback(parts.hostname):
        # Basic auth over plain HTTP hands the API user's password to anyone on the path
        # (https://documentation.ixopay.com/api/transaction/transaction-api: HTTPS only).
        raise InvalidParameterError(
            f"base_url uses plain http:// to {parts.hostname}; use https://, a loopback "
            "host, or allow_insecure_http=True"
        )
    return base_url.rstrip("/")


class _ClientGate(Gate):
    """The gate every call of one client passes; ``aclose()`` closes it."""

    __slots__ = ()

    _error = ClientClosedError
    _what = "the client"


class CallOptions(TypedDict, total=False):
    """The keyword options every [`ScheduleClient`][schedcancel.ScheduleClient] operation takes, all
    optional.

    ``client.pause(sid, priority=5, queue_timeout=2.0)`` passes two of them;
    a wrapper can pass them along typed as ``**options: Unpack[CallOptions]``.

    Attributes:
        api_key: the connector's apiKey for this call; defaults to the client's.
        priority: higher goes first when several requests are ready (default 0;
            below 0 is background work, such as a bulk job).
        queue_timeout: seconds each wait for a permit may take (a 429 means
            another wait); None (or ``math.inf``, the default) waits as long as needed.
        gate: every wait for a permit (retries included) and every retry's
            backoff passes this [`Gate`][schedcancel.Gate]; closing it withdraws the call
            if it is not sent yet. The client's own gate, closed by
            [`ScheduleClient.aclose()`][schedcancel.ScheduleClient.aclose], is passed too.
    """

    api_key: str | None
    priority: int
    queue_timeout: float | None
    gate: Gate | None


class ScheduleClient:
    """An asyncio client for the IXOPAY Schedule API, cancel first, on one rate-limit budget.

    [`cancel()`][schedcancel.ScheduleClient.cancel], [`get()`][schedcancel.ScheduleClient.get],
    [`pause()`][schedcancel.ScheduleClient.pause],
    [`continue_()`][schedcancel.ScheduleClient.continue_],
    [`update()`][schedcancel.ScheduleClient.update] and
    [`start()`][schedcancel.ScheduleClient.start] all go one way: validated before any I/O or
    limiter use, admitted by the one limiter (both levels for calls on a scheduleId, the API user's
    level only for start), sent, and parsed. Business errors (HTTP 200, ``success: false``) come
    back as [`ScheduleResult`][schedcancel.ScheduleResult]; everything else is an exception from
    [`schedcancel.errors`][schedcancel.errors]. Use it as an async context manager, or call
    `aclose()`.

    For example:

        async with ScheduleClient("api-key", username="user", password="pw") as client:
            result = await client.cancel("SC-1234-1234-1234-1234-1234-1234")
    """

    def __init__(
        self,
        api_key: str,
        *,
        username: str,
        password: str,
        shared_secret: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        limits: RateLimits | None = None,
        limiter: Limiter | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        session: aiohttp.ClientSession | None = None,
        allow_insecure_http: bool = False,
        ssl: SSLContext | None = None,
        hooks: Sequence[Hook] | None = None,
        transport: Transport | None = None,
        clock: Clock | None = None,
    ) -> None:
        """Configure the client; nothing is connected until the first cancel.

        Args:
            api_key: the connector's apiKey, used for calls that name no other.
            username: the API user (HTTP Basic auth); the rate limits count per API user.
            password: the API user's password.
            shared_secret: the connector's shared secret; when set, every request
                carries ``Date`` and ``X-Signature``.
            base_url: the API base, ending in ``/api/v3`` (see the region table).
            limits: the limits for the limiter this client creates.
            limiter: a limiter to share with other clients (not closed by this one;
                closing this client withdraws only its own calls from it).
            retry: retries for transport errors and 5xx answers.
            timeout: seconds one HTTP request may take, connect to last byte.
            session: an ``aiohttp.ClientSession`` to use (not closed by this client).
            allow_insecure_http: allow ``http://`` to a host that is not loopback.
            ssl: an ``ssl.SSLContext`` for custom CAs; verification cannot be turned off.
            hooks: instrumentation hooks, told about every step of every call
                (see [`schedcancel.hooks`][schedcancel.hooks]); None: the default, a
                [`LoggingHook`][schedcancel.hooks.LoggingHook] (DEBUG records of the
                ``schedcancel.calls`` logger); ``()``: none at all.
            transport: what sends the requests (see [`Transport`][schedcancel.Transport]): an
                ``AiohttpTransport`` by default; pass one of your own to record,
                fake or replay the server. Closed with the client. Not with
                ``session`` or ``ssl``, which configure the default one.
            clock: where the client reads the time and waits (see [`Clock`][schedcancel.Clock]);
                the event loop's clock by default.

        Raises:
            InvalidParameterError: any setting is invalid.
        """
        self._api_key = validate_api_key(api_key)
        self._username = check_credential("username", username, allow_colon=False)
        self._password = check_credential("password", password)
        self._shared_secret = (
            None if shared_secret is None else check_credential("shared_secret", shared_secret)
        )
        self._base_url = _check_base_url(base_url, allow_insecure_http=allow_insecure_http)
        self._timeout = check_number("timeout", timeout, finite=True)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidParameterError("retry must be a RetryPolicy")
        self._retry = retry if retry is not None else RetryPolicy()
        if limits is not None and limiter is not None:
            raise InvalidParameterError("pass limits or limiter, not both (a limiter has its own)")
        if limits is not None and not isinstance(limits, RateLimits):
            raise InvalidParameterError("limits must be a RateLimits")
        if limiter is not None and not isinstance(limiter, Limiter):
            raise InvalidParameterError("limiter must implement schedcancel.Limiter")
        if transport is None:
            transport = AiohttpTransport(session, ssl_context=ssl)
        elif not isinstance(transport, Transport):
            raise InvalidParameterError("transport must implement schedcancel.Transport")
        elif session is not None or ssl is not None:
            raise InvalidParameterError("pass transport, or session and ssl, not both")
        if clock is not None and not isinstance(clock, Clock):
            raise InvalidParameterError("clock must be a schedcancel.Clock")
        self._transport: Transport = transport
        if limiter is None:
            from .._limiting.limiter import RateLimiter  # noqa: PLC0415 - keeps the import graph one-way

            limiter = RateLimiter(limits)
            self._owns_limiter = True
        else:
            self._owns_limiter = False
        self._limiter: Limiter = limiter
        clock = clock if clock is not None else Clock()
        self._sleep, self._clock, self._now = clock.sleep, clock.monotonic, clock.wall
        self._closed = False
        # Every call waits for its permits and backoffs through it: aclose() withdraws them.
        self._gate = _ClientGate()
        # Requests on the wire, and an event set whenever none is: aclose() waits for them.
        self._sending = 0
        self._quiet = asyncio.Event()
        if hooks is None:
            hooks = (LoggingHook(),)
        # None when there are no hooks: a call then pays one attribute check for them.
        self._hooks = (
            Hooks(hooks, clock=self._clock, limiter=limiter, base_url=self._base_url)
            if hooks
            else None
        )
        # What every request of an apiKey shares is computed once (URL prefix, auth header).
        self._builder = self._make_builder(self._api_key)
        self._builders: dict[str, RequestBuilder] = {}

    @classmethod
    def from_env(cls, *, environ: Mapping[str, str] | None = None, **options: Any) -> Self:
        """A client with the credentials and base URL of the ``SCHEDCANCEL_*`` variables.

        The same variables the ``schedcancel`` command reads, so code and command talk to the
        same API as the same user, and no credential is written in code:

        | variable | argument |
        |---|---|
        | ``SCHEDCANCEL_API_KEY`` | ``api_key`` (required) |
        | ``SCHEDCANCEL_USERNAME`` | ``username`` (required) |
        | ``SCHEDCANCEL_PASSWORD`` | ``password`` (required) |
        | ``SCHEDCANCEL_SHARED_SECRET`` | ``shared_secret`` (when the connector signs requests) |
        | ``SCHEDCANCEL_BASE_URL`` | ``base_url`` (default: the production gateway) |

        A variable set to ``""`` counts as unset. Every other keyword argument goes to the
        constructor as it is (``limits``, ``retry``, ``hooks``...). For example:

            async with ScheduleClient.from_env(limits=RateLimits(total=120)) as client:
                result = await client.cancel("SC-1234-1234-1234-1234-1234-1234")

        Args:
            environ: where the variables are read; default ``os.environ``, when called.

        Returns:
            The client (not connected yet, as ever).

        Raises:
            InvalidParameterError: a required variable is missing (the message names it,
                never a value), or a value or option is invalid.
            TypeError: a keyword argument is one of the five the variables give.
        """
        taken = sorted(options.keys() & ENVIRONMENT_VARIABLES.keys())
        if taken:
            variables = ", ".join(ENVIRONMENT_VARIABLES[name] for name in taken)
            raise TypeError(f"from_env() reads {', '.join(taken)} from {variables}")
        settings = read_client_environment(os.environ if environ is None else environ)
        if settings.base_url is not None:
            options["base_url"] = settings.base_url
        return cls(
            settings.api_key,
            username=settings.username,
            password=settings.password,
            shared_secret=settings.shared_secret,
            **options,
        )

    def _make_builder(self, api_key: str) -> RequestBuilder:
        return RequestBuilder(
            base_url=self._base_url,
            api_key=api_key,
            username=self._username,
            password=self._password,
            shared_secret=self._shared_secret,
        )

    def _builder_for(self, api_key: object) -> RequestBuilder:
        """The request builder of ``api_key`` (validated first), or of the client's own."""
        if api_key is None:
            return self._builder
        key = validate_api_key(api_key)
        if key == self._api_key:
            return self._builder
        builders = self._builders
        builder = builders.pop(key, None)
        if builder is None:
            builder = self._make_builder(key)
            if len(builders) >= _MAX_BUILDERS:
                del builders[next(iter(builders))]
        builders[key] = builder  # last is the most recently used
        return builder

    @property
    def redactions(self) -> tuple[str, ...]:
        """What no message about this client's calls may contain.

        The default apiKey, the password, the shared secret and the Basic token
        (the last three as ``Hidden`` strings, shown as ``***`` once scrubbed).
        Code that reports on the calls, such as the bulk job and its journal,
        scrubs these out of everything it writes.
        """
        return self._builder.redactions

    @property
    def redacted_api_key(self) -> str:
        """The default apiKey as logs and reprs show it (``conn***``)."""
        return redact_key(self._builder.api_key)

    @property
    def limiter(self) -> Limiter:
        """The limiter that admits this client's requests."""
        return self._limiter

    @property
    def base_url(self) -> str:
        """The API base URL, without a trailing slash."""
        return self._base_url

    def __repr__(self) -> str:
        return (
            f"ScheduleClient(base_url={self._base_url!r}, api_key={redact_key(self._api_key)!r}, "
            f"signed={self._shared_secret is not None}, limiter={type(self._limiter).__name__}, "
            f"retry={self._retry!r}, timeout={self._timeout}, closed={self._closed})"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client: end its calls, then close the own session and the own limiter.

        Every call of this client that waits for a permit or backs off before a
        retry raises [`ClientClosedError`][schedcancel.errors.ClientClosedError] at once and
        sends nothing more; its place in the limiter is withdrawn, so other
        clients on a shared limiter do not wait for it. Calls made later raise
        it too. Requests already on the wire get their answers first (each
        within ``timeout``, so this waits at most ``timeout`` seconds), and
        their callers get them; a call that would have to send again (a 429, a
        failure to retry) raises ``ClientClosedError`` instead. Then the own
        session and the own limiter are closed; borrowed ones stay open.
        Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        self._gate.close()
        try:
            if self._sending:
                self._quiet.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._timeout):
                        await self._quiet.wait()
        finally:
            await self._transport.aclose()
            if self._owns_limiter:
                await self._limiter.aclose()

    async def cancel(self, schedule_id: str, **options: Unpack[CallOptions]) -> ScheduleResult:
        """Cancel one schedule: ``POST .../schedule/{apiKey}/{scheduleId}/cancel`` with ``{}``.

        Retried as the retry policy allows: a cancel that had landed answers
        7070/CANCELLED, which the result reports as ``already_cancelled``.

        Args:
            schedule_id: the schedule to cancel.
            **options: ``api_key``, ``priority``, ``queue_timeout``, ``gate``
                (see [`CallOptions`][schedcancel.CallOptions]), as every operation takes.

        Returns:
            The server's answer. Check ``success``, ``already_cancelled`` or
            ``is_cancelled`` (or ``done``), or call ``raise_for_error()``.

        Raises:
            InvalidParameterError: a bad argument; raised before any I/O or limiter use.
            QueueTimeoutError: the limiter could not admit the request in time.
            RateLimitedError: still 429 after ``limits.max_rate_limited`` requeues.
            ServerError: 5xx, after the retry policy's attempts or deadline.
            TransportError: no usable response, after the retry policy's attempts or deadline.
            AuthenticationError: the credentials or the signature were refused.
            ApiError: another HTTP error status.
            ResponseParseError: an HTTP 200 whose body is not a schedule response.
            RequestWithdrawnError: ``gate`` was closed before the request was sent.
            ClientClosedError: the client was closed before the request was sent
                (or sent again), or before the call was made; see `aclose()`.
        """
        return await self._operate(Operation.CANCEL, schedule_id, None, **options)

    async def get(self, schedule_id: str, **options: Unpack[CallOptions]) -> ScheduleResult:
        """Read one schedule: ``GET .../schedule/{apiKey}/{scheduleId}/get``.

        Args:
            schedule_id: the schedule to read.
            **options: see [`CallOptions`][schedcancel.CallOptions].

        Returns:
            The schedule (``new_status`` is its status, ``scheduled_at`` its
            next charge), or ``success`` false with an ``error_code``.

        Raises:
            InvalidParameterError: as for [`cancel()`][schedcancel.ScheduleClient.cancel], and its
                other errors.
        """
        return await self._operate(Operation.GET, schedule_id, None, **options)

    async def pause(self, schedule_id: str, **options: Unpack[CallOptions]) -> ScheduleResult:
        """Pause one schedule: ``POST .../schedule/{apiKey}/{scheduleId}/pause`` with ``{}``.

        A schedule paused already answers 7070/PAUSED: ``already_done``.

        Args:
            schedule_id: the schedule to pause.
            **options: see [`CallOptions`][schedcancel.CallOptions].

        Returns:
            The server's answer. Check ``done`` (``success`` or ``already_done``).

        Raises:
            InvalidParameterError: as for [`cancel()`][schedcancel.ScheduleClient.cancel], and its
                other errors.
        """
        return await self._operate(Operation.PAUSE, schedule_id, None, **options)

    async def continue_(
        self, schedule_id: str, *, at: datetime, **options: Unpack[CallOptions]
    ) -> ScheduleResult:
        """Continue a paused (or failed) schedule: maps to ``POST .../{scheduleId}/continue``.

        Named with PEP 8's trailing underscore, ``continue`` being a keyword.
        The body is ``{"continueDateTime": ...}``; an ACTIVE schedule answers
        7070/ACTIVE: ``already_done``.

        Args:
            schedule_id: the schedule to continue.
            at: its next charge, an aware datetime (sent in UTC,
                ``YYYY-MM-DDTHH:MM:SS+00:00``; a naive one is refused).
            **options: see [`CallOptions`][schedcancel.CallOptions].

        Returns:
            The server's answer. Check ``done`` (``success`` or ``already_done``).

        Raises:
            InvalidParameterError: as for [`cancel()`][schedcancel.ScheduleClient.cancel], or ``at``
                is not an aware datetime; and the other errors of
                [`cancel()`][schedcancel.ScheduleClient.cancel].
        """
        body = ContinueSchedule(at).to_json()
        return await self._operate(Operation.CONTINUE, schedule_id, body, **options)

    async def update(
        self, schedule_id: str, changes: UpdateSchedule, **options: Unpack[CallOptions]
    ) -> ScheduleResult:
        """Change a schedule: ``POST .../schedule/{apiKey}/{scheduleId}/update``.

        Only the fields set in ``changes`` are sent.

        Args:
            schedule_id: the schedule to change.
            changes: the fields to change (validated when it was made).
            **options: see [`CallOptions`][schedcancel.CallOptions].

        Returns:
            The server's answer.

        Raises:
            InvalidParameterError: as for [`cancel()`][schedcancel.ScheduleClient.cancel], or
                ``changes`` is not an [`UpdateSchedule`][schedcancel.UpdateSchedule]; and the other
                errors of [`cancel()`][schedcancel.ScheduleClient.cancel].
        """
        if not isinstance(changes, UpdateSchedule):
            raise InvalidParameterError(
                f"changes must be an UpdateSchedule, got {type(changes).__name__}"
            )
        return await self._operate(Operation.UPDATE, schedule_id, changes.to_json(), **options)

    async def start(
        self, schedule: StartSchedule, **options: Unpack[CallOptions]
    ) -> ScheduleResult:
        """Start a new schedule: ``POST .../schedule/{apiKey}/start``.

        It takes a place in the API user's budget only (it has no scheduleId).
        Start is not idempotent, so it is never sent twice on a guess: a 429
        (refused, nothing created) is requeued, and a failure known to come
        before sending (no connection) is retried by the retry policy; after a
        failure that may have reached the server (a timeout, a reset after
        sending, a 5xx, an unreadable HTTP 200) it raises
        [`OutcomeUnknownError`][schedcancel.errors.OutcomeUnknownError].

        Args:
            schedule: the new schedule (validated when it was made).
            **options: see [`CallOptions`][schedcancel.CallOptions].

        Returns:
            The server's answer; ``schedule_id`` is the new schedule's.

        Raises:
            OutcomeUnknownError: the request may have created the schedule;
                check (by ``registrationUuid``/``merchantMetaData``) before
                starting again.
            InvalidParameterError: as for [`cancel()`][schedcancel.ScheduleClient.cancel], or
                ``schedule`` is not a [`StartSchedule`][schedcancel.StartSchedule]; and the other
                errors of [`cancel()`][schedcancel.ScheduleClient.cancel].
        """
        if not isinstance(schedule, StartSchedule):
            raise InvalidParameterError(
                f"schedule must be a StartSchedule, got {type(schedule).__name__}"
            )
        return await self._operate(Operation.START, None, schedule.to_json(), **options)

    async def _operate(
        self,
        operation: Operation,
        schedule_id: object,
        body: bytes | None,
        *,
        api_key: object = None,
        priority: object = 0,
        queue_timeout: object = None,
        gate: object = None,
    ) -> ScheduleResult:
        """Validate the common arguments (before any I/O or limiter use), then `_call()`."""
        sid = validate_schedule_id(schedule_id) if operation.has_schedule_id else None
        builder = self._builder_for(api_key)
        checked_priority = check_priority(priority)
        timeout = check_queue_timeout(queue_timeout)
        if gate is not None and not isinstance(gate, Gate):
            raise InvalidParameterError(f"gate must be a Gate or None, got {type(gate).__name__}")
        trace = (
            None if self._hooks is None else self._hooks.start(str(operation), sid, builder.api_key)
        )
        call = partial(
            self._call,
            operation,
            sid,
            body,
            builder,
            priority=checked_priority,
            queue_timeout=timeout,
            gate=gate,
        )
        if trace is None:
            return await call()
        try:
            result = await call(trace=trace)
        except BaseException as exc:
            trace.finished(error=exc)
            raise
        trace.finished(result)
        return result

    def cancel_many(
        self,
        ids: Iterable[object] | AsyncIterable[object],
        **options: Unpack[_bulk.BulkOptions],
    ) -> AsyncGenerator[BulkOutcome, None]:
        """Cancel many schedules through this client:
        [`run_many()`][schedcancel.ScheduleClient.run_many] for ``Operation.CANCEL``.

        Each id ends as ``cancelled``, ``already_cancelled`` (7070, CANCELLED),
        ``failed``, ``invalid`` or ``error``; streaming, the journal and resuming
        it, stopping, duplicates and the background priority are as
        [`run_many()`][schedcancel.ScheduleClient.run_many] describes.

        Args:
            ids: scheduleIds, as an iterable or async iterable.
            **options: see [`BulkOptions`][schedcancel.BulkOptions] and
                [`run_many()`][schedcancel.ScheduleClient.run_many].

        Returns:
            An async generator of [`BulkOutcome`][schedcancel.BulkOutcome].

        Raises:
            InvalidParameterError: as for [`run_many()`][schedcancel.ScheduleClient.run_many].
        """
        return _bulk.cancel_many(self, ids, **options)

    def update_many(
        self,
        rows: Iterable[object] | AsyncIterable[object],
        **options: Unpack[_bulk.BulkOptions],
    ) -> AsyncGenerator[BulkOutcome, None]:
        """Update many schedules through this client, each with its own change:
        [`run_many()`][schedcancel.ScheduleClient.run_many] for ``Operation.UPDATE``.

        Each [`UpdateRow`][schedcancel.UpdateRow] ends as ``updated``, ``failed``,
        ``invalid`` (an item that is no ``UpdateRow``), ``error`` or ``conflict``.
        Every outcome line of the journal keeps the row's change digest
        ([`UpdateRow.digest`][schedcancel.UpdateRow.digest]) and new values: a re-run
        skips a row final in the journal with the same change, and reports a row
        whose change differs from the journal's (or from an earlier row's for the
        same id in the input) as ``conflict``, not sent and not final. A row given
        twice with the same change is sent once. Streaming, resuming, stopping and
        the background priority are as [`run_many()`][schedcancel.ScheduleClient.run_many]
        describes.

        Args:
            rows: [`UpdateRow`][schedcancel.UpdateRow] values, as an iterable or async iterable.
            **options: see [`BulkOptions`][schedcancel.BulkOptions] and
                [`run_many()`][schedcancel.ScheduleClient.run_many].

        Returns:
            An async generator of [`BulkOutcome`][schedcancel.BulkOutcome].

        Raises:
            InvalidParameterError: as for [`run_many()`][schedcancel.ScheduleClient.run_many].
        """
        return _bulk.update_many(self, rows, **options)

    def start_many(
        self,
        rows: Iterable[object] | AsyncIterable[object],
        *,
        retry_unknown: Iterable[str] = (),
        **options: Unpack[_bulk.BulkOptions],
    ) -> AsyncGenerator[BulkOutcome, None]:
        """Start many schedules through this client (a migration), each row at most once:
        [`run_many()`][schedcancel.ScheduleClient.run_many] for ``Operation.START``.

        Each [`StartRow`][schedcancel.StartRow] ends as ``started`` (the outcome's
        ``new_schedule_id`` is the new schedule's id), ``unknown``, ``failed``, ``invalid``
        (an item that is no ``StartRow``), ``error`` or ``conflict``; an outcome's
        ``schedule_id`` is the row's key ([`StartRow`][schedcancel.StartRow]).

        Start is not idempotent, so with a journal each request's **intent** (the
        row's key and digest) is written and ``fsync``-ed after the limiter admits
        it and before it is sent. A row whose request may have reached the server
        without an answer (a timeout, a reset after sending, a 5xx: see
        [`start()`][schedcancel.ScheduleClient.start]), or whose intent a killed
        run left without an outcome, is ``unknown``: final, never sent again by a
        re-run, until you have checked that no schedule was created for it and
        name its key in ``retry_unknown``. A row refused before it was sent, or
        by an answer (a 4xx, a 429, no connection), is ``error``, sent again by a
        re-run. A re-run skips the rows final in the journal with the same fields; a
        row whose key is final there with other fields (the file was edited), or
        whose fields were sent under another key, is a ``conflict``, not sent. A
        row given twice alike is sent once. ``max_consecutive_errors`` is 10 unless
        given: each unknown row is one to check by hand.

        Args:
            rows: [`StartRow`][schedcancel.StartRow] values, as an iterable or async iterable.
            retry_unknown: keys of rows the journal has as unknown that you checked (no
                schedule was created): they are sent again.
            **options: see [`BulkOptions`][schedcancel.BulkOptions] and
                [`run_many()`][schedcancel.ScheduleClient.run_many].

        Returns:
            An async generator of [`BulkOutcome`][schedcancel.BulkOutcome].

        Raises:
            InvalidParameterError: as for [`run_many()`][schedcancel.ScheduleClient.run_many];
                ``retry_unknown`` without a journal (at once) or naming a row whose
                outcome in the journal is not unknown (on the first iteration).
        """
        return _bulk.start_many(self, rows, retry_unknown=retry_unknown, **options)

    def run_many(
        self,
        operation: Operation,
        ids: Iterable[object] | AsyncIterable[object],
        *,
        at: datetime | None = None,
        **options: Unpack[_bulk.BulkOptions],
    ) -> AsyncGenerator[BulkOutcome, None]:
        """Run one per-id operation for many schedules, yielding each outcome as it finishes.

        ``operation`` is ``Operation.CANCEL``, ``PAUSE``, ``CONTINUE`` (every id
        continued with the same ``at``) or ``GET``. Each id ends as one outcome
        of the operation's kinds: its success (``cancelled``, ``paused``,
        ``continued``, ``read``), "already in the target state" (errorCode 7070
        with ``newStatus`` CANCELLED, PAUSED or ACTIVE: ``already_cancelled``,
        ``already_paused``, ``already_active``; get has none), ``failed`` (the
        API refused; a 7070 in another state too, such as pausing a cancelled
        schedule), ``invalid`` or ``error``.

        The input is streamed: at most ``concurrency`` ids are taken from it at a
        time, so a generator over a file of a million lines never sits in memory.
        Each id is sent at most once per run: duplicates are skipped, and so are
        ids whose journal line is final (success, "already", ``invalid``, and
        ``failed`` with a 7xxx code but 7002). Ids that are no valid scheduleId
        become ``invalid`` outcomes and are never sent. Every outcome is written
        to the journal (and ``fsync``-ed) before it is yielded or counted; when
        that write fails (a full disk), the job stops, the answer is neither
        yielded nor counted in ``done`` (only in ``BulkProgress.unrecorded``), and
        a later run sends that id again (a repeat finds the schedule in the
        target state: "already"). The journal's ``start`` line records the operation; a
        journal of another operation is refused on the first iteration, before
        anything is sent (a journal without an operation, as written by earlier
        versions, is a cancel journal). The journal also gets a ``send`` line as
        each request goes out; a run on an existing journal through an in-process
        ``RateLimiter`` first counts in it the requests of earlier runs that still
        count at the server (``RateLimiter.remember``), so a job killed and run
        again at once does not spend the window twice. A shared store (Redis)
        remembers them itself.

        An answer about another scheduleId than the one sent
        ([`ResponseMismatchError`][schedcancel.errors.ResponseMismatchError]) is an ``error``
        outcome: not final, a later run sends the id again.

        The job ends early when ``stop`` is set, on a configuration error
        ([`ConfigurationError`][schedcancel.errors.ConfigurationError]: refused credentials,
        or a 404 from a base URL whose path does not exist) or a limiter-backend
        error (they would repeat for every id), after
        ``max_consecutive_errors`` ``error`` outcomes in a row, when the client is
        closed under it (``ClientClosedError``), or when the input or the journal
        fails; in the last four cases the generator then raises that error.
        Then no new id starts, and a worker waiting for the next item of an
        async input (a silent pipe) stops waiting at once. Calls already sent
        finish and are yielded. Calls still waiting for the limiter (a
        retry's wait included) are withdrawn through the job's [`Gate`][schedcancel.Gate]: not
        sent, no budget used, not journaled (the next run sends them), counted
        in ``BulkProgress.withdrawn``. This works with any limiter.

        Use it with ``contextlib.aclosing`` when you may leave the loop early:
        closing the generator cancels the calls running.

        Args:
            operation: ``Operation.CANCEL``, ``PAUSE``, ``CONTINUE`` or ``GET``.
            ids: scheduleIds, as an iterable or async iterable.
            at: for continue only (and required there): the schedules' next
                charge, an aware datetime.
            **options: the keyword options, each described (with its default)
                in [`BulkOptions`][schedcancel.BulkOptions].

        Returns:
            An async generator of [`BulkOutcome`][schedcancel.BulkOutcome].

        Raises:
            InvalidParameterError: at once, before any I/O: ``operation`` is none of
                the four, ``at`` is missing, naive or given to another operation,
                ``ids`` is one string or no iterable, or another argument has a bad
                type or value (an int argument given a bool, a float or a str too);
                on the first iteration: a corrupt or busy journal, or one of
                another operation.
        """
        return _bulk.run_many(self, operation, ids, at=at, **options)

    async def _call(
        self,
        operation: Operation,
        schedule_id: str | None,
        body: bytes | None,
        builder: RequestBuilder,
        *,
        priority: int,
        queue_timeout: float | None,
        gate: Gate | None,
        trace: CallTrace | None = None,
    ) -> ScheduleResult:
        max_rate_limited = self._limiter.limits.max_rate_limited
        rate_limited = failures = 0
        # Seconds spent sending and backing off; the retry deadline counts these and not
        # the time queued in the limiter, which a bulk job's later ids spend mostly.
        spent = 0.0
        requeue = False
        while True:
            attempt = rate_limited + failures + 1
            if trace is not None:
                trace.queued(priority=priority, requeue=requeue, attempt=attempt)
            permit = await self._acquire(
                gate, schedule_id, priority=priority, queue_timeout=queue_timeout, requeue=requeue
            )
            admitted = self._clock()
            failure: TransportError | ServerError | ResponseParseError
            try:
                # Built after admission, so a signed Date is fresh even after a long queue.
                request = builder.build(operation, schedule_id, body, date=self._now())
                if trace is not None:
                    trace.sent(operation.method, _path_template(operation))
                status, headers, content = await self._send(request)
            except TransportError as exc:
                await self._limiter.release(permit)
                self._may_have_landed(operation, exc)
                failure = exc
            except BaseException:
                # Cancelled (or worse) while the request was out: it may still arrive, so
                # its entries count from now. Shielded, so a second cancel cannot skip it.
                await asyncio.shield(self._limiter.release(permit))
                raise
            else:
                # Parsing reads no clock: what time it is (for a Retry-After date when the
                # response has no Date) is read here, once per response.
                arrived = self._now()
                # Every answer's rate-limit headers, 429 or not: the server's own word.
                said = parse_rate_limit_headers(headers, now=arrived)
                retry_after = said.retry_after if status == 429 else None
                # Released before parsing: the response's arrival is what the window counts from.
                level = await self._release(permit, said, status == 429)
                if trace is not None:
                    trace.answered(status)
                try:
                    return parse_response(
                        status,
                        headers,
                        content,
                        now=arrived,
                        redact=request.redactions,
                        operation=operation,
                        schedule_id=schedule_id,
                    )
                except RateLimitedError as exc:
                    rate_limited += 1
                    if trace is not None:
                        trace.rate_limited(
                            exc,
                            level=level,
                            retry_after=retry_after,
                            count=rate_limited,
                            limit=max_rate_limited,
                        )
                    if rate_limited > max_rate_limited:
                        raise
                    requeue = True
                    continue
                except (ServerError, ResponseParseError) as exc:
                    # A 200 that is not JSON at all was cut short or came from a proxy: ask
                    # again. Safe for a cancel: one that landed answers 7070/CANCELLED.
                    self._may_have_landed(operation, exc)
                    if isinstance(exc, ResponseParseError) and not exc.retryable:
                        raise
                    failure = exc
            failures += 1
            spent += self._clock() - admitted
            spent = await self._backoff_or_raise(failure, failures, spent, gate, trace)
            requeue = False

    async def _release(
        self, permit: Permit, said: RateLimitHeaders, rate_limited: bool
    ) -> RateLimitLevel | None:
        """Release through ``release_heard`` when the limiter has it (docs of `Limiter`)."""
        heard = getattr(self._limiter, "release_heard", None)
        if heard is not None:
            level: RateLimitLevel | None = await heard(permit, said, rate_limited=rate_limited)
            return level
        retry_after = said.retry_after if rate_limited else None
        return await self._limiter.release(
            permit, rate_limited=rate_limited, retry_after=retry_after
        )

    @contextlib.contextmanager
    def _waiting(self, gate: Gate | None) -> Iterator[None]:
        """A wait that closing the client, or ``gate``, ends with a withdrawal."""
        with self._gate.watching(), contextlib.nullcontext() if gate is None else gate.watching():
            yield

    async def _acquire(
        self,
        gate: Gate | None,
        schedule_id: str | None,
        *,
        priority: int,
        queue_timeout: float | None,
        requeue: bool,
    ) -> Permit:
        """A permit from the limiter, unless the client or ``gate`` closes first."""
        with self._waiting(gate):
            permit = await self._limiter.acquire(
                schedule_id, priority=priority, queue_timeout=queue_timeout, requeue=requeue
            )
        if gate is not None:
            gate.granted(permit)  # a bulk job journals the send
            try:
                await gate.ready(permit)  # a bulk start makes its intent durable first
            except BaseException:
                # Not sent: the permit's entry counts from now, as for a request answered.
                await asyncio.shield(self._limiter.release(permit))
                raise
        return permit

    async def _send(self, request: Request) -> tuple[int, Mapping[str, str], bytes]:
        """The transport's send, counted: `aclose()` waits for the requests on the wire."""
        self._sending += 1
        try:
            return await self._transport.send(request, self._timeout)
        finally:
            self._sending -= 1
            if not self._sending:
                self._quiet.set()

    @staticmethod
    def _may_have_landed(operation: Operation, failure: ScheduleError) -> None:
        """After a failure that may have reached the server: raise, unless a retry is safe.

        A transport failure that surely sent nothing (no connection) is always
        safe to retry.

        Raises:
            OutcomeUnknownError: ``operation`` is not safe to send again (start).
        """
        if operation.retry_safe or (
            isinstance(failure, TransportError) and not failure.request_sent
        ):
            return
        raise OutcomeUnknownError(
            f"{operation}: the outcome is unknown ({failure}); the request may have "
            "reached the server and was not sent again. Before starting again, look for "
            "the new schedule by its registrationUuid or merchantMetaData in the IXOPAY "
            "back office, or wait for its callback",
            operation=str(operation),
            failure=failure,
        ) from failure

    async def _backoff_or_raise(
        self,
        failure: Exception,
        failures: int,
        spent: float,
        gate: Gate | None,
        trace: CallTrace | None,
    ) -> float:
        """Sleep before the next attempt and return ``spent`` plus the sleep, or raise."""
        # Capped exponential backoff with full jitter; the exponent is capped too so a
        # huge attempts setting cannot overflow a float.
        policy = self._retry
        bound = min(policy.backoff_max, policy.backoff_initial * 2.0 ** min(failures - 1, 64))
        delay = self._retry.jitter() * bound
        if failures >= policy.attempts or spent + delay > policy.deadline:
            failure.add_note(
                f"schedcancel: gave up after {failures} attempt(s) and {spent:.1f} s "
                f"(retry policy: {policy.attempts} attempts, {policy.deadline} s deadline)"
            )
            if trace is not None:
                trace.gave_up(failure)
            raise failure
        if trace is not None:
            trace.retried(failure, delay)
        with self._waiting(gate):  # closing the client (or the gate) ends the backoff
            await self._sleep(delay)
        return spent + delay
