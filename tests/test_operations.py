"""Every Schedule API operation beside cancel: its request, its limiter use, its result.

Against the tiny scripted aiohttp server of ``test_client`` (not the mock
server's schedule endpoints), or aioresponses where a fault needs no socket.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import random
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aioresponses import aioresponses
from benchmarks.mixed import Workload, run_workload
from schedcancel import (
    Gate,
    InvalidParameterError,
    Operation,
    OutcomeUnknownError,
    RateLimitedError,
    RateLimiter,
    RateLimits,
    Request,
    RequestWithdrawnError,
    ResponseParseError,
    RetryPolicy,
    ScheduleClient,
    ScheduleResult,
    ScheduleStatus,
    ServerError,
    StartSchedule,
    TransportError,
    UpdateSchedule,
)
from schedcancel._protocol.redact import Hidden
from schedcancel._protocol.wire import CONTENT_TYPE, RequestBuilder, parse_response

from test_client import (
    KEY,
    NOW,
    PASSWORD,
    REMOTE,
    SECRET,
    SID,
    USER,
    FakeLimiter,
    FakeTime,
    LocalServer,
    _fake_time,  # noqa: F401 - the fixture "fake_time"
    _limiter,  # noqa: F401 - the fixture "limiter"
    _no_secrets_in_logs,  # noqa: F401 - the autouse fixture: no secret in any log line
    _server,  # noqa: F401 - the fixture "server"
    assert_clean,
    make_client,
    raises_clean,
    sample,
)

AT = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
NEW_ID = "SC-9999-9999-9999-9999-9999-9999"
SCHEDULE = StartSchedule(
    registration_uuid="reg-1",
    amount=Decimal("9.99"),
    currency="EUR",
    period_length=1,
    period_unit="MONTH",
    start_date_time=AT,
    merchant_meta_data="order-42",
)
START_BODY = (
    b'{"registrationUuid":"reg-1","amount":"9.99","currency":"EUR","periodLength":1,'
    b'"periodUnit":"MONTH","startDateTime":"2026-12-03T09:30:00+00:00",'
    b'"merchantMetaData":"order-42"}'
)
CHANGES = UpdateSchedule(amount="12.50", period_unit="WEEK")
Call = Callable[[ScheduleClient], Awaitable[ScheduleResult]]

#: Each operation: how to call it, its method, its path after the apiKey, its exact body.
OPERATIONS: dict[Operation, tuple[Call, str, str, bytes]] = {
    Operation.GET: (lambda c: c.get(SID), "GET", f"{SID}/get", b""),
    Operation.START: (lambda c: c.start(SCHEDULE), "POST", "start", START_BODY),
    Operation.UPDATE: (
        lambda c: c.update(SID, CHANGES),
        "POST",
        f"{SID}/update",
        b'{"amount":"12.50","periodUnit":"WEEK"}',
    ),
    Operation.PAUSE: (lambda c: c.pause(SID), "POST", f"{SID}/pause", b"{}"),
    Operation.CONTINUE: (
        lambda c: c.continue_(SID, at=AT),
        "POST",
        f"{SID}/continue",
        b'{"continueDateTime":"2026-12-03T09:30:00+00:00"}',
    ),
    Operation.CANCEL: (lambda c: c.cancel(SID), "POST", f"{SID}/cancel", b"{}"),
}


def answer(**fields: Any) -> tuple[int, dict[str, str], bytes]:
    """An HTTP 200 schedule response with ``fields``."""
    return 200, {"Content-Type": "application/json"}, json.dumps(fields).encode()


def expected_signature(method: str, body: bytes, date: str, uri: str) -> str:
    """The X-Signature computed here by hand, from the docs' recipe."""
    message = "\n".join((method, hashlib.sha512(body).hexdigest(), CONTENT_TYPE, date, uri))
    digest = hmac.new(SECRET.encode(), message.encode(), hashlib.sha512).digest()
    return base64.b64encode(digest).decode()


@pytest.mark.parametrize("operation", list(Operation))
async def test_every_operation_sends_its_documented_request(
    server: LocalServer, limiter: FakeLimiter, operation: Operation
) -> None:
    """Method, path, exact body, headers and signature of each operation; its result names it."""
    call, method, tail, body = OPERATIONS[operation]
    server.replies.append(answer(success=True, scheduleId=SID, newStatus="ACTIVE"))
    async with make_client(server.base_url, limiter) as client:
        result = await call(client)
    (arrival,) = server.arrivals
    uri = f"/api/v3/schedule/{KEY}/{tail}"
    assert (arrival.method, arrival.raw_path, arrival.body) == (method, uri, body)
    assert arrival.headers["Content-Type"] == CONTENT_TYPE
    assert arrival.headers["Accept"] == "application/json"
    assert arrival.headers["Authorization"].startswith("Basic ")
    date = arrival.headers["Date"]
    assert date == "Tue, 21 Jul 2020 13:15:03 GMT"
    assert arrival.headers["X-Signature"] == expected_signature(method, body, date, uri)
    assert result.success
    assert result.operation is operation
    # Start has no scheduleId: the API user's level only.
    key = None if operation is Operation.START else SID
    assert limiter.events == [("acquire", key, 0, None, False), ("release", key, False, None)]


def test_get_signs_the_empty_body() -> None:
    """A GET is signed over the empty body: sha512("") = cf83e135...927da3e."""
    builder = RequestBuilder(
        base_url=REMOTE, api_key=KEY, username=USER, password=PASSWORD, shared_secret=SECRET
    )
    request = builder.build(Operation.GET, SID, date=NOW)
    assert (request.method, request.body) == ("GET", b"")
    assert hashlib.sha512(b"").hexdigest().startswith("cf83e135")
    uri = f"/api/v3/schedule/{KEY}/{SID}/get"
    assert request.headers["X-Signature"] == expected_signature(
        "GET", b"", "Tue, 21 Jul 2020 13:15:03 GMT", uri
    )
    assert request.url == f"{REMOTE}/schedule/{KEY}/{SID}/get"


def test_unsigned_requests_carry_no_date_or_signature() -> None:
    """Without a shared secret no operation sends Date or X-Signature."""
    builder = RequestBuilder(
        base_url=REMOTE, api_key=KEY, username=USER, password=PASSWORD, shared_secret=None
    )
    request = builder.build(Operation.START, None, START_BODY, date=NOW)
    assert request.url == f"{REMOTE}/schedule/{KEY}/start"
    assert "X-Signature" not in request.headers
    assert "Date" not in request.headers
    assert request.body == START_BODY


@pytest.mark.parametrize(
    ("operation", "schedule_id", "body", "fragment"),
    [
        (Operation.START, SID, START_BODY, "start takes no scheduleId"),
        (Operation.CANCEL, None, None, "cancel needs a scheduleId"),
        (Operation.UPDATE, SID, None, "update needs a JSON body"),
        (Operation.PAUSE, SID, b'{"x":1}', "pause has a fixed body"),
        (Operation.GET, SID, b"{}", "get has a fixed body"),
    ],
)
def test_builder_refuses_what_does_not_fit_the_operation(
    operation: Operation, schedule_id: str | None, body: bytes | None, fragment: str
) -> None:
    """A scheduleId or body that the operation does not take is refused, not sent."""
    builder = RequestBuilder(
        base_url=REMOTE, api_key=KEY, username=USER, password=PASSWORD, shared_secret=None
    )
    with pytest.raises(InvalidParameterError, match=fragment):
        builder.build(operation, schedule_id, body, date=NOW)


def test_the_table_of_operations() -> None:
    """One table: method, path, body kind, scheduleId, retry safety and target per operation."""
    table = {
        op.name: (op.method, op.path, op.body.value, op.has_schedule_id, op.retry_safe)
        for op in Operation
    }
    assert table == {
        "GET": ("GET", "get", "none", True, True),
        "START": ("POST", "start", "json", False, False),
        "UPDATE": ("POST", "update", "json", True, True),
        "PAUSE": ("POST", "pause", "empty", True, True),
        "CONTINUE": ("POST", "continue", "json", True, True),
        "CANCEL": ("POST", "cancel", "empty", True, True),
    }
    targets = {op.name: op.target_status for op in Operation if op.target_status}
    assert targets == {"PAUSE": "PAUSED", "CONTINUE": "ACTIVE", "CANCEL": "CANCELLED"}
    assert repr(Operation.CONTINUE) == "Operation.CONTINUE"
    assert str(Operation.CONTINUE) == "continue"


# --- bad input: refused before any I/O, nothing spent --------------------------------------

BAD_CALLS: list[tuple[str, Callable[[ScheduleClient], Awaitable[object]], str]] = [
    ("get id", lambda c: c.get("SC 1"), "scheduleId"),
    ("get id type", lambda c: c.get(None), "scheduleId must be a str"),  # type: ignore[arg-type]
    ("pause id", lambda c: c.pause("x" * 33), "at most 32"),
    ("continue id", lambda c: c.continue_("", at=AT), "scheduleId must not be empty"),
    ("continue naive", lambda c: c.continue_(SID, at=datetime(2026, 1, 1)), "timezone-aware"),
    ("continue type", lambda c: c.continue_(SID, at="2026-01-01"), "must be a datetime"),  # type: ignore[arg-type]
    ("update id", lambda c: c.update("SC/1", CHANGES), "scheduleId"),
    ("update changes", lambda c: c.update(SID, {"amount": "1"}), "UpdateSchedule"),  # type: ignore[arg-type]
    ("start type", lambda c: c.start({"amount": "1"}), "StartSchedule"),  # type: ignore[arg-type]
    ("start key", lambda c: c.start(SCHEDULE, api_key="bad key"), "apiKey"),
    ("start priority", lambda c: c.start(SCHEDULE, priority=True), "priority"),
    ("pause timeout", lambda c: c.pause(SID, queue_timeout=-1), "queue_timeout"),
    ("get gate", lambda c: c.get(SID, gate=object()), "gate must be a Gate"),  # type: ignore[arg-type]
    ("cancel key", lambda c: c.cancel(SID, api_key=KEY + "!"), "apiKey"),
]


@pytest.mark.parametrize(("name", "call", "fragment"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
async def test_bad_input_sends_nothing_and_spends_nothing(
    name: str, call: Callable[[ScheduleClient], Awaitable[object]], fragment: str
) -> None:
    """Every bad argument raises InvalidParameterError before I/O; the limiter is untouched."""
    del name
    limiter = RateLimiter(RateLimits(total=5, per_schedule=2))
    before = limiter.stats()
    with aioresponses() as mocked:
        async with make_client(REMOTE, limiter) as client:
            with raises_clean(InvalidParameterError, match=fragment) as info:
                await call(client)
        assert mocked.requests == {}
    assert limiter.stats() == before
    assert limiter._core.queues == {}
    assert_clean(info.value)
    await limiter.aclose()


# --- already in the target state -------------------------------------------------------------


@pytest.mark.parametrize("operation", list(Operation))
async def test_7070_in_the_target_state_is_already_done(
    server: LocalServer, limiter: FakeLimiter, operation: Operation
) -> None:
    """7070 whose newStatus is the operation's target is already_done (pause, continue, cancel)."""
    call = OPERATIONS[operation][0]
    target = operation.target_status or ScheduleStatus.ACTIVE
    server.replies.append(answer(success=False, errorCode=7070, oldStatus=target, newStatus=target))
    async with make_client(server.base_url, limiter) as client:
        result = await call(client)
    has_target = operation.target_status is not None
    assert result.already_done is has_target
    assert result.done is has_target
    assert not result.success
    assert result.already_cancelled is (target == ScheduleStatus.CANCELLED)


@pytest.mark.parametrize(
    ("operation", "status"),
    [
        (Operation.PAUSE, "CANCELLED"),
        (Operation.CONTINUE, "CANCELLED"),
        (Operation.CANCEL, "PAUSED"),
        (Operation.PAUSE, "ACTIVE"),
    ],
)
def test_7070_in_another_state_is_not_done(operation: Operation, status: str) -> None:
    """7070 in a state that is not the target is a refusal, not already_done."""
    body = json.dumps({"success": False, "errorCode": 7070, "newStatus": status}).encode()
    result = parse_response(200, {}, body, now=NOW, operation=operation)
    assert (result.already_done, result.done) == (False, False)
    assert result.already_cancelled is (status == "CANCELLED")


def test_results_of_every_operation_are_one_type() -> None:
    """Every operation answers a ScheduleResult; equality compares the answer, not the operation."""
    built = ScheduleResult(success=True)
    parsed = parse_response(200, {}, b'{"success": true}', now=NOW, operation=Operation.PAUSE)
    assert parsed == built
    assert (parsed.operation, built.operation) == (Operation.PAUSE, None)


@pytest.mark.parametrize(
    ("operation", "success", "new_status", "cancelled"),
    [
        (None, True, None, True),  # a result built by hand, as before the other operations
        (Operation.CANCEL, True, None, True),
        (Operation.PAUSE, True, "PAUSED", False),
        (Operation.GET, True, "CANCELLED", True),
        (Operation.GET, True, "ACTIVE", False),
        (Operation.PAUSE, False, "CANCELLED", False),  # no errorCode: not already_cancelled
    ],
)
def test_is_cancelled_per_operation(
    operation: Operation | None, success: bool, new_status: str | None, cancelled: bool
) -> None:
    """is_cancelled is about the schedule now: a pause that succeeded did not cancel it."""
    result = ScheduleResult(success=success, new_status=new_status, operation=operation)
    assert result.is_cancelled is cancelled


# --- start is not idempotent ------------------------------------------------------------------


async def _drop(request: web.Request) -> web.StreamResponse:
    """Read the request, then reset the connection: sent, and no answer."""
    assert request.transport is not None
    request.transport.close()
    return web.Response()


START_FAULTS: dict[str, object] = {
    "reset after sending": _drop,
    "500": (500, {}, b'{"success":false,"errorCode":1008,"errorMessage":"System Error"}'),
    "503": (503, {}, b'{"success":false,"errorCode":1010}'),
    "garbage 200": (200, {}, b"<html>proxy says hello</html>"),
    "truncated 200": (200, {}, b'{"success": true, "scheduleId": "SC-'),
    "wrong shape 200": (200, {}, b'{"success": "maybe"}'),
}


@pytest.mark.parametrize("fault", list(START_FAULTS))
async def test_start_is_never_sent_twice_after_it_may_have_landed(
    server: LocalServer, limiter: FakeLimiter, fake_time: FakeTime, fault: str
) -> None:
    """Reset, 5xx or an unreadable 200: OutcomeUnknownError after exactly one request."""
    server.replies.append(START_FAULTS[fault])  # type: ignore[arg-type]
    async with make_client(server.base_url, limiter, fake_time) as client:
        with raises_clean(OutcomeUnknownError, match="outcome is unknown") as info:
            await client.start(SCHEDULE)
    assert len(server.arrivals) == 1
    assert fake_time.sleeps == []
    assert limiter.kinds() == ["acquire", "release"]
    error = info.value
    assert error.operation == "start"
    assert error.__cause__ is error.failure
    assert isinstance(error.failure, TransportError | ServerError | ResponseParseError)
    assert "registrationUuid" in str(error)
    assert "back office" in str(error)


async def test_start_timeout_is_outcome_unknown(limiter: FakeLimiter) -> None:
    """A start that timed out is not re-sent: OutcomeUnknownError, one request."""
    url = f"{REMOTE}/schedule/{KEY}/start"
    with aioresponses() as mocked:
        mocked.post(url, exception=TimeoutError())  # a second request would find no reply
        async with make_client(REMOTE, limiter, timeout=2.5) as client:
            with raises_clean(OutcomeUnknownError, match=r"no response within 2\.5 s") as info:
                await client.start(SCHEDULE)
        assert sum(len(calls) for calls in mocked.requests.values()) == 1
    assert isinstance(info.value.failure, TransportError)
    assert info.value.failure.request_sent


async def test_start_is_retried_when_nothing_was_sent(
    limiter: FakeLimiter, fake_time: FakeTime
) -> None:
    """No connection (refused): nothing left, so start is retried as the policy allows."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}/api/v3"
    async with make_client(base, limiter, fake_time, retry=RetryPolicy(attempts=3)) as client:
        with raises_clean(TransportError) as info:
            await client.start(SCHEDULE)
    assert not info.value.request_sent
    assert limiter.kinds() == ["acquire", "release"] * 3
    assert fake_time.sleeps == [0.5, 1.0]


async def test_start_then_success_after_a_refused_connection(
    server: LocalServer, limiter: FakeLimiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing sent the first time (no connection): the start goes through on the retry."""
    server.replies.append(answer(success=True, scheduleId=NEW_ID, newStatus="ACTIVE"))
    async with make_client(server.base_url, limiter) as client:
        send = client._transport.send
        failures = [TransportError("ClientConnectorError: refused", request_sent=False)]

        async def refused_once(request: Request, timeout: float) -> Any:  # noqa: ASYNC109 - send's signature
            if failures:
                raise failures.pop()
            return await send(request, timeout)

        monkeypatch.setattr(client._transport, "send", refused_once)
        result = await client.start(SCHEDULE)
    assert result.schedule_id == NEW_ID
    assert len(server.arrivals) == 1
    assert limiter.kinds() == ["acquire", "release"] * 2


async def test_429_on_start_is_requeued(
    server: LocalServer, limiter: FakeLimiter, fake_time: FakeTime
) -> None:
    """The server refused a 429'd start (nothing created): it goes back through the limiter."""
    server.replies.append((429, {"Retry-After": "3"}, sample("rate_limited.json")))
    server.replies.append(
        answer(success=True, scheduleId=NEW_ID, oldStatus="NON-EXISTING", newStatus="ACTIVE")
    )
    async with make_client(server.base_url, limiter, fake_time) as client:
        result = await client.start(SCHEDULE, priority=4)
    assert result.schedule_id == NEW_ID
    assert result.old_status == ScheduleStatus.NON_EXISTING
    assert len(server.arrivals) == 2
    assert [arrival.body for arrival in server.arrivals] == [START_BODY, START_BODY]
    assert limiter.events == [
        ("acquire", None, 4, None, False),
        ("release", None, True, 3.0),
        ("acquire", None, 4, None, True),
        ("release", None, False, None),
    ]


async def test_start_gives_up_after_the_allowed_429s(
    server: LocalServer, limiter: FakeLimiter
) -> None:
    """A start still refused after limits.max_rate_limited requeues raises RateLimitedError."""
    limiter.limits = RateLimits(max_rate_limited=1)
    server.replies.extend([(429, {}, b"")] * 2)
    async with make_client(server.base_url, limiter) as client:
        with raises_clean(RateLimitedError):
            await client.start(SCHEDULE)
    assert len(server.arrivals) == 2


@pytest.mark.parametrize("operation", [op for op in Operation if op.retry_safe])
async def test_retry_safe_operations_retry_a_5xx(
    server: LocalServer, limiter: FakeLimiter, fake_time: FakeTime, operation: Operation
) -> None:
    """get, update, pause, continue and cancel are retried after a 5xx, as cancel always was."""
    server.replies.append((500, {}, b""))
    server.replies.append(answer(success=True))
    async with make_client(server.base_url, limiter, fake_time) as client:
        result = await OPERATIONS[operation][0](client)
    assert result.success
    assert len(server.arrivals) == 2
    assert server.arrivals[0].body == server.arrivals[1].body


async def test_a_closed_gate_withdraws_a_start(limiter: FakeLimiter) -> None:
    """start takes the same gate as the other calls: closed, nothing is sent."""
    gate = Gate()
    gate.close()
    with aioresponses() as mocked:
        async with make_client(REMOTE, limiter) as client:
            with pytest.raises(RequestWithdrawnError):
                await client.start(SCHEDULE, gate=gate)
        assert mocked.requests == {}


# --- lenient parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "raw"),
    [
        ("scheduledAt", "2026-02-30T10:00:00+00:00"),  # no 30 February
        ("scheduledAt", "2026-02-03T10:00:00+25:00"),  # an offset no clock has
        ("scheduledAt", 1570285571),
        ("merchantMetaData", {"order": 42}),
        ("merchantMetaData", 42),
        ("scheduleId", 12345),
        ("registrationUuid", ["r"]),
        ("errorMessage", False),
        ("adapterMessage", 3.5),
        ("adapterCode", ["x"]),
    ],
)
def test_a_malformed_auxiliary_field_is_kept_raw_not_raised(field: str, raw: object) -> None:
    """success, errorCode and statuses well formed: the result stands, the odd field is noted."""
    payload = {"success": True, "oldStatus": "ACTIVE", "newStatus": "PAUSED", field: raw}
    body = json.dumps(payload).encode()
    result = parse_response(200, {}, body, now=NOW, operation=Operation.PAUSE)
    assert result.success
    assert result.new_status == ScheduleStatus.PAUSED
    assert dict(result.malformed) == {field: raw}
    with pytest.raises(TypeError):
        result.malformed[field] = None  # type: ignore[index]


def test_several_malformed_fields_and_the_rest_parsed() -> None:
    """Each malformed field is noted; the well-formed ones are read as usual."""
    body = json.dumps(
        {
            "success": False,
            "errorCode": "7070",
            "newStatus": "CANCELLED",
            "scheduleId": SID,
            "scheduledAt": "soon",
            "merchantMetaData": 7,
        }
    ).encode()
    result = parse_response(200, {}, body, now=NOW, operation=Operation.CANCEL)
    assert result.already_cancelled
    assert result.already_done
    assert result.schedule_id == SID
    assert dict(result.malformed) == {"scheduledAt": "soon", "merchantMetaData": 7}


def test_registration_id_is_read_as_registration_uuid() -> None:
    """The published schema's registrationId is taken when registrationUuid is absent."""
    by_id = parse_response(
        200, {}, b'{"success": true, "registrationId": "reg-1"}', now=NOW, operation=Operation.GET
    )
    assert by_id.registration_uuid == "reg-1"
    both = parse_response(
        200,
        {},
        b'{"success": true, "registrationId": "old", "registrationUuid": "reg-2"}',
        now=NOW,
        operation=Operation.GET,
    )
    assert both.registration_uuid == "reg-2"
    odd = parse_response(
        200, {}, b'{"success": true, "registrationId": 5}', now=NOW, operation=Operation.GET
    )
    assert dict(odd.malformed) == {"registrationId": 5}


@pytest.mark.parametrize(
    "payload",
    [
        {"success": True, "newStatus": 5, "scheduledAt": "soon"},
        {"success": True, "errorCode": [1], "merchantMetaData": 1},
        {"success": "perhaps", "scheduledAt": "soon"},
    ],
)
def test_a_malformed_outcome_still_raises(payload: dict[str, object]) -> None:
    """A malformed success, errorCode or status is no result: ResponseParseError."""
    with pytest.raises(ResponseParseError):
        parse_response(200, {}, json.dumps(payload).encode(), now=NOW, operation=Operation.GET)


def test_malformed_values_are_scrubbed_of_secrets() -> None:
    """An echoed secret inside a malformed field is redacted like any server text."""
    body = json.dumps(
        {
            "success": True,
            "merchantMetaData": {"k": [f"x{KEY}x", 1]},
            "scheduledAt": PASSWORD,
            "scheduleId": 7,
        }
    ).encode()
    result = parse_response(
        200, {}, body, now=NOW, redact=(KEY, Hidden(PASSWORD)), operation=Operation.GET
    )
    assert_clean(result, result.malformed)
    assert dict(result.malformed) == {
        "merchantMetaData": {"k": ["xAPIK***x", 1]},
        "scheduledAt": "***",
        "scheduleId": 7,
    }


def test_results_stay_hashable() -> None:
    """A result with malformed fields still goes in a set (the mapping is compared, not hashed)."""
    odd = ScheduleResult(success=True, malformed={"scheduledAt": ["x"]})
    assert len({odd, ScheduleResult(success=True), odd}) == 2


async def test_a_misspelt_option_is_a_type_error_before_any_io(limiter: FakeLimiter) -> None:
    """CallOptions are checked as keyword arguments are: an unknown one raises TypeError."""
    with aioresponses() as mocked:
        async with make_client(REMOTE, limiter) as client:
            with pytest.raises(TypeError, match="priorty"):
                await client.pause(SID, priorty=1)  # type: ignore[call-arg]
        assert mocked.requests == {}
    assert limiter.events == []


# --- one budget for every operation: a mixed workload on virtual time -------------------------


class StrictServer:
    """A transport that is the server: sliding-window limits per API user and per scheduleId.

    Each request arrives after a random latency and is answered after another; an arrival
    over either limit (counted over the last ``window`` seconds, half-open) is answered 429.
    """

    def __init__(self, limits: RateLimits, seed: int) -> None:
        self.limits = limits
        self.rng = random.Random(seed)  # noqa: S311 - simulated latency, not cryptography
        self.arrivals: list[tuple[float, str, str]] = []  # (time, key or "", operation)
        self.rejected = 0

    async def send(self, request: Request, timeout: float) -> tuple[int, dict[str, str], bytes]:  # noqa: ASYNC109 - the transport's signature
        """Arrive, count, answer."""
        del timeout
        loop = asyncio.get_running_loop()
        await asyncio.sleep(self.rng.uniform(0.005, 0.05))
        now = loop.time()
        *_, key, operation = urlsplit(request.url).path.split("/")
        key = "" if operation == "start" else key
        window = self.limits.window
        recent = [(t, k) for t, k, _ in self.arrivals if t > now - window]
        over = len(recent) >= self.limits.total or (
            key != "" and sum(k == key for _, k in recent) >= self.limits.per_schedule
        )
        await asyncio.sleep(self.rng.uniform(0.005, 0.05))
        if over:
            self.rejected += 1
            return 429, {}, b'{"success": false, "errorCode": 1009}'
        self.arrivals.append((now, key, operation))
        sid = NEW_ID if operation == "start" else key
        return 200, {}, json.dumps({"success": True, "scheduleId": sid}).encode()

    async def aclose(self) -> None:
        """Nothing to close."""

    def most_in_a_window(self, key: str | None = None) -> int:
        """The most arrivals (of ``key``, or all) within any ``window`` seconds."""
        times = [t for t, k, _ in self.arrivals if key is None or k == key]
        window = self.limits.window
        return max((sum(1 for u in times if t - window < u <= t) for t in times), default=0)


def _ok(result: ScheduleResult | BaseException) -> TypeGuard[ScheduleResult]:
    return isinstance(result, ScheduleResult) and result.success


@pytest.mark.looptime
async def test_a_mixed_workload_shares_one_budget_with_no_429() -> None:
    """60 ids each get, pause, continue, update, cancel, plus 20 starts, from one client at
    once: the server sees at most 60 per window (10 per id) and answers no 429."""
    limits = RateLimits(adaptive=False)
    server = StrictServer(limits, seed=12)
    ids = [f"SC-MIX-{i:03d}" for i in range(60)]
    async with ScheduleClient(
        KEY, username=USER, password=PASSWORD, base_url=REMOTE, limits=limits, transport=server
    ) as client:
        start = asyncio.get_running_loop().time()
        workload = Workload(at=AT, changes=CHANGES, schedule=SCHEDULE)
        results = await run_workload(client, ids, 20, workload)
        elapsed = asyncio.get_running_loop().time() - start
    assert server.rejected == 0
    assert all(_ok(r) for lifecycle in results.lifecycles for r in lifecycle)
    assert all(_ok(r) and r.schedule_id == NEW_ID for r in results.starts)
    assert len(server.arrivals) == 60 * 5 + 20
    assert server.most_in_a_window() <= limits.total
    assert max(server.most_in_a_window(sid) for sid in ids) <= limits.per_schedule
    ops = [op for _, key, op in server.arrivals if key == ids[0]]
    assert ops == ["get", "pause", "continue", "update", "cancel"]
    # 320 requests at 60 per window + guard: at least 5 holds; the limiter is near the bound.
    assert 5 * (limits.window + limits.guard) <= elapsed < 6 * (limits.window + limits.guard)
