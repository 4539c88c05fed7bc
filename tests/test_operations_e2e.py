"""Every Schedule API operation end to end: ScheduleClient against the real mock server.

The mock server (:class:`schedcancel.testing.MockScheduleServer`, aiohttp on
127.0.0.1) checks Basic auth, every request's signature (the connector has a
shared secret, so a GET's signature over the empty body is checked too) and
every body against the schema, runs the state machine and counts every
operation on one budget; its recorder is what these tests assert on. The
unit tests of each operation's request and parsing are in ``test_operations``.

Issue 12's mixed workload runs here at the real limits (60 per 60 s per API
user, 10 per 60 s per scheduleId, guard 1 s) on looptime's virtual clock: real
sockets, but the limiter's waits, the server's windows and the injected
latency run on the loop's clock, so five minutes of limits take a second.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from benchmarks.mixed import LIFECYCLE, MixedResults, Workload, run_workload
from schedcancel import (
    AuthenticationError,
    InvalidParameterError,
    Limiter,
    Operation,
    OutcomeUnknownError,
    RateLimits,
    RetryPolicy,
    ScheduleClient,
    ScheduleResult,
    ScheduleStatus,
    StartSchedule,
    UpdateSchedule,
)
from schedcancel._mock.recorder import SUCCESS_OUTCOMES
from schedcancel.testing import (
    DEFAULT_API_KEY,
    Fault,
    Faults,
    MockScheduleServer,
    Outcome,
    ServerLimits,
)
from schedcancel.testing import Operation as ServerOperation

SECRET = "e2e-shared-secret"
WALL = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SID = "SC-E2E-0001"
#: The mixed workload's bodies (benchmarks.mixed), dated a month after the server's start.
WORKLOAD = Workload.after(WALL)
AT, SCHEDULE, CHANGES = WORKLOAD.at, WORKLOAD.schedule, WORKLOAD.changes
Call = Callable[[ScheduleClient], Awaitable[ScheduleResult]]


def call_on(operation: Operation, schedule_id: Any) -> Call:
    """How an operation on one scheduleId is called (``schedule_id`` unchecked here)."""
    calls: dict[Operation, Call] = {
        Operation.GET: lambda c: c.get(schedule_id),
        Operation.PAUSE: lambda c: c.pause(schedule_id),
        Operation.CONTINUE: lambda c: c.continue_(schedule_id, at=AT),
        Operation.UPDATE: lambda c: c.update(schedule_id, CHANGES),
        Operation.CANCEL: lambda c: c.cancel(schedule_id),
    }
    return calls[operation]


#: How each operation is called on ``SID`` (start: a new schedule).
CALLS: dict[Operation, Call] = {
    **{op: call_on(op, SID) for op in Operation if op.has_schedule_id},
    Operation.START: lambda c: c.start(SCHEDULE),
}
PER_ID = [op for op in Operation if op.has_schedule_id]
#: The status each operation succeeds from (continue: PAUSED), and the one it leaves.
BEFORE_AFTER = {
    Operation.GET: (ScheduleStatus.ACTIVE, ScheduleStatus.ACTIVE),
    Operation.PAUSE: (ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED),
    Operation.CONTINUE: (ScheduleStatus.PAUSED, ScheduleStatus.ACTIVE),
    Operation.UPDATE: (ScheduleStatus.ACTIVE, ScheduleStatus.ACTIVE),
    Operation.CANCEL: (ScheduleStatus.ACTIVE, ScheduleStatus.CANCELLED),
}


def make_server(**kwargs: Any) -> MockScheduleServer:
    """A signing mock server (the connector has a shared secret) with a fixed date."""
    kwargs.setdefault("limits", ServerLimits(total=60, per_schedule=10, window=1.0))
    return MockScheduleServer(
        connectors={DEFAULT_API_KEY: SECRET}, wall_clock_at_start=WALL, **kwargs
    )


def fast_limits() -> RateLimits:
    """The client's limits at the test server's scale."""
    return RateLimits(total=60, per_schedule=10, window=1.0, guard=0.05)


# -- every operation succeeds, signed --------------------------------------------------


@pytest.mark.parametrize("operation", list(Operation))
async def test_every_operation_succeeds_signed_through_one_client(operation: Operation) -> None:
    """Each operation, signed, reaches the server once and moves the state machine."""
    async with make_server() as server:
        if operation is not Operation.START:
            server.seed([SID], BEFORE_AFTER[operation][0])
        async with server.client(limits=fast_limits()) as client:
            result = await CALLS[operation](client)
        (arrival,) = server.recorder.arrivals
    assert result.success
    assert result.operation is operation
    # The server's operation of the same name (its table is its own; see test_mock_conformance).
    assert arrival.operation is ServerOperation(operation.path)
    assert (arrival.status, arrival.outcome) == (200, SUCCESS_OUTCOMES[arrival.operation])
    if operation is Operation.START:
        assert arrival.schedule_id is None
        assert result.schedule_id is not None
        assert server.status_of(result.schedule_id) == ScheduleStatus.ACTIVE
        assert result.merchant_meta_data == SCHEDULE.merchant_meta_data
    else:
        assert arrival.schedule_id == SID
        assert (result.schedule_id, result.new_status) == (SID, BEFORE_AFTER[operation][1])
        assert server.status_of(SID) == BEFORE_AFTER[operation][1]


async def test_get_reads_the_schedule_and_update_changes_it() -> None:
    """get answers the stored schedule; update's fields are stored and read back."""
    async with make_server() as server:
        server.seed([SID], registration_uuid="RG-7", scheduled_at=AT)
        async with server.client(limits=fast_limits()) as client:
            before = await client.get(SID)
            await client.update(SID, UpdateSchedule(merchant_meta_data="renamed"))
            after = await client.get(SID)
    assert (before.registration_uuid, before.scheduled_at, before.new_status) == (
        "RG-7",
        AT,
        ScheduleStatus.ACTIVE,
    )
    assert (before.merchant_meta_data, after.merchant_meta_data) == (None, "renamed")
    schedule = server.schedule(SID)
    assert schedule is not None
    assert (schedule.merchant_metadata, schedule.amount) == ("renamed", None)


@pytest.mark.parametrize("operation", list(Operation))
async def test_a_wrong_shared_secret_is_refused_on_every_operation(operation: Operation) -> None:
    """The server checks every operation's signature (GET's over the empty body): a wrong
    secret is 1004, an AuthenticationError, and nothing changes."""
    async with make_server() as server:
        server.seed([SID], BEFORE_AFTER.get(operation, (ScheduleStatus.ACTIVE,))[0])
        async with server.client(limits=fast_limits(), shared_secret="not-the-secret") as client:
            with pytest.raises(AuthenticationError):
                await CALLS[operation](client)
        (arrival,) = server.recorder.arrivals
    assert arrival.outcome is Outcome.BAD_SIGNATURE
    assert server.statuses == {SID: BEFORE_AFTER.get(operation, (ScheduleStatus.ACTIVE,))[0]}


# -- 7070 and 7040 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "current", "already"),
    [
        (Operation.PAUSE, ScheduleStatus.PAUSED, True),
        (Operation.CONTINUE, ScheduleStatus.ACTIVE, True),
        (Operation.CANCEL, ScheduleStatus.CANCELLED, True),
        (Operation.PAUSE, ScheduleStatus.CANCELLED, False),
        (Operation.PAUSE, ScheduleStatus.ERROR, False),
        (Operation.CONTINUE, ScheduleStatus.CANCELLED, False),
        (Operation.UPDATE, ScheduleStatus.CANCELLED, False),
    ],
)
async def test_7070_is_already_done_only_in_the_target_state(
    operation: Operation, current: ScheduleStatus, already: bool
) -> None:
    """7070 showing the operation's target is ``already_done`` (and ``done``); otherwise not."""
    async with make_server() as server:
        server.seed([SID], current)
        async with server.client(limits=fast_limits()) as client:
            result = await CALLS[operation](client)
    assert (result.success, result.error_code, result.new_status) == (False, 7070, current)
    assert result.already_done is already
    assert result.done is already
    assert result.already_cancelled is (current is ScheduleStatus.CANCELLED)
    assert server.status_of(SID) == current
    assert server.recorder.count(outcome=Outcome.INVALID_STATUS) == 1


async def test_get_of_a_cancelled_schedule_reads_it() -> None:
    """get has no source status: a cancelled schedule reads as CANCELLED, no 7070."""
    async with make_server() as server:
        server.seed([SID], ScheduleStatus.CANCELLED)
        async with server.client(limits=fast_limits()) as client:
            result = await client.get(SID)
    assert (result.success, result.new_status, result.already_done) == (
        True,
        ScheduleStatus.CANCELLED,
        False,
    )
    assert result.is_cancelled


@pytest.mark.parametrize("operation", PER_ID)
async def test_an_unknown_id_is_7040_for_every_operation(operation: Operation) -> None:
    """7040 is a result (not done), for every operation on a scheduleId."""
    async with make_server() as server, server.client(limits=fast_limits()) as client:
        result = await CALLS[operation](client)
    assert (result.success, result.error_code, result.done) == (False, 7040, False)
    assert result.operation is operation
    assert server.recorder.count(outcome=Outcome.UNKNOWN_ID) == 1
    assert server.statuses == {}


# -- bad input: refused before any I/O and any budget ------------------------------------


def _update_with(fields: dict[str, Any]) -> Call:
    return lambda c: c.update(SID, UpdateSchedule(**fields))


def _start_with(fields: dict[str, Any]) -> Call:
    return lambda c: c.start(StartSchedule(**fields))


def _bad_inputs() -> dict[str, Call]:
    """One bad field of one operation each; the value is built inside the call."""
    good_start: dict[str, Any] = {
        "registration_uuid": "RG-1",
        "amount": "9.99",
        "currency": "EUR",
        "period_length": 1,
        "period_unit": "MONTH",
        "start_date_time": AT,
    }
    bad_fields: dict[str, object] = {
        "registration_uuid": "r" * 51,
        "amount": 9.99,
        "currency": "eur",
        "period_length": -1,
        "period_unit": "FORTNIGHT",
        "start_date_time": AT.replace(tzinfo=None),
        "merchant_meta_data": "m" * 256,
        "callback_url": "ftp://example.com/hook",
    }
    cases: dict[str, Call] = {}
    for operation in PER_ID:
        for label, bad_id in (
            ("too long", "S" * 33),
            ("not an id", "SC 1/../x"),
            ("empty", ""),
            ("not a str", 42),
        ):
            cases[f"{operation}: scheduleId {label}"] = call_on(operation, bad_id)
    cases["continue: naive at"] = lambda c: c.continue_(SID, at=AT.replace(tzinfo=None))
    cases["continue: at a string"] = lambda c: c.continue_(SID, at="2026-06-08T12:00:00Z")  # type: ignore[arg-type]
    cases["update: no field"] = lambda c: c.update(SID, UpdateSchedule())
    cases["update: a dict"] = lambda c: c.update(SID, {"amount": "1.00"})  # type: ignore[arg-type]
    cases["start: a dict"] = lambda c: c.start(dict(good_start))  # type: ignore[arg-type]
    cases["start: no registrationUuid"] = _start_with(good_start | {"registration_uuid": ""})
    for field, value in bad_fields.items():
        cases[f"update: {field}"] = _update_with({field: value})
        cases[f"start: {field}"] = _start_with(good_start | {field: value})
    cases["cancel: priority"] = lambda c: c.cancel(SID, priority="high")  # type: ignore[arg-type]
    cases["get: queue_timeout"] = lambda c: c.get(SID, queue_timeout=-1.0)
    cases["pause: api_key"] = lambda c: c.pause(SID, api_key="not a key!")
    cases["start: gate"] = lambda c: c.start(SCHEDULE, gate="open")  # type: ignore[arg-type]
    return cases


BAD_INPUTS = _bad_inputs()


async def test_every_kind_of_bad_input_is_covered() -> None:
    """Each operation's scheduleId (where it has one) and each request field has a case."""
    # 5 operations x 4 bad ids, continue's at x 2, update x 2, start x 2, 8 fields in both
    # request types, 4 call options.
    assert len(BAD_INPUTS) == 5 * 4 + 2 + 2 + 2 + 2 * 8 + 4


@pytest.mark.parametrize("case", list(BAD_INPUTS))
async def test_bad_input_sends_nothing_and_spends_nothing(case: str) -> None:
    """InvalidParameterError before any I/O: the server saw nothing, the limiter is unchanged."""
    async with make_server() as server:
        server.seed([SID])
        async with server.client(limits=fast_limits()) as client:
            before = client.limiter.stats()
            with pytest.raises(InvalidParameterError) as caught:
                await BAD_INPUTS[case](client)
            after = client.limiter.stats()
        assert len(server.recorder) == 0
    assert after == before
    assert SECRET not in str(caught.value)
    assert DEFAULT_API_KEY not in str(caught.value)


# -- start is never sent twice on a guess ------------------------------------------------


@pytest.mark.looptime
@pytest.mark.parametrize(
    "fault", [Fault.SERVER_ERROR, Fault.MAINTENANCE, Fault.HTML, Fault.TRUNCATED, Fault.DROP]
)
async def test_start_after_a_fault_that_may_have_landed_is_outcome_unknown(fault: Fault) -> None:
    """5xx, a proxy's page, a garbage 200, a reset after sending: raised, sent exactly once."""
    async with make_server() as server:
        server.script(fault)
        async with server.client(limits=fast_limits(), retry=RetryPolicy(attempts=5)) as client:
            with pytest.raises(OutcomeUnknownError, match="outcome is unknown") as caught:
                await client.start(SCHEDULE)
            # A retry-safe operation meeting the same fault is sent again and succeeds.
            server.seed([SID])
            server.script(fault)
            assert (await client.cancel(SID)).is_cancelled
    assert len(server.recorder.select(operation="start")) == 1
    assert len(server.recorder.select(operation="cancel")) == 2
    assert caught.value.operation == "start"
    assert "registrationUuid" in str(caught.value)


@pytest.mark.looptime
async def test_start_that_times_out_is_outcome_unknown_and_sent_once() -> None:
    """The server takes longer than the client's timeout: raised, one start arrival."""
    slow = Faults(response_latency=(5.0, 5.0))
    async with make_server(faults=slow) as server:
        async with server.client(limits=fast_limits(), timeout=1.0) as client:
            with pytest.raises(OutcomeUnknownError):
                await client.start(SCHEDULE)
        starts = server.recorder.select(operation=Operation.START.path)
    assert len(starts) == 1
    assert starts[0].outcome is Outcome.STARTED  # it did land: sending it again would duplicate


@pytest.mark.looptime
async def test_a_429_on_start_is_requeued_and_succeeds_once() -> None:
    """429 means refused, nothing created: the start is requeued, and one schedule exists."""
    async with make_server() as server:
        server.script(Fault.RATE_LIMITED)
        async with server.client(limits=fast_limits()) as client:
            result = await client.start(SCHEDULE)
    outcomes = [a.outcome for a in server.recorder.select(operation="start")]
    assert outcomes == [Outcome.RATE_LIMITED, Outcome.STARTED]
    assert result.success
    assert list(server.statuses) == [result.schedule_id]


# -- the mixed workload of issue 12, at the real limits ---------------------------------

W, N, K, GUARD = 60.0, 60, 10, 1.0
LATENCY = (0.005, 0.02)  # seconds each way
IDS = [f"SC-MIX-{i:03d}" for i in range(60)]
STARTS = 20
CALLS_IN_ALL = len(LIFECYCLE) * len(IDS) + STARTS
#: Every call takes a place at the API user's level: the last of 320 can be sent
#: ceil(320 / 60) - 1 = 5 windows after the first at the earliest (the per-id level
#: needs no more: 5 calls per id <= K), so 5 W = 300 s is the floor any client meets.
#: A client that frees a place W + guard after the response it saw adds the guard and
#: up to a round trip per window: BOUND = 5 x (60 + 1 + 0.04) = 305.2 s, 1.0173 x the floor.
WINDOWS = math.ceil(CALLS_IN_ALL / N) - 1
RTT = 2 * LATENCY[1]  # the longest round trip the injected latency allows
BOUND = WINDOWS * (W + GUARD + RTT)


def mixed_server() -> MockScheduleServer:
    """The real limits, jittered latency, every id seeded ACTIVE."""
    server = make_server(
        limits=ServerLimits(total=N, per_schedule=K, window=W),
        faults=Faults(request_latency=LATENCY, response_latency=LATENCY, seed=12),
    )
    server.seed(IDS)
    return server


def assert_mixed_run(server: MockScheduleServer, results: MixedResults) -> float:
    """The must-show of issue 12; returns the makespan the server saw."""
    recorder = server.recorder
    assert recorder.count_rate_limited() == 0
    assert len(recorder) == CALLS_IN_ALL
    assert recorder.max_arrivals_in_window(W) <= N
    assert max(recorder.max_arrivals_in_window(W, schedule_id=sid) for sid in IDS) <= K
    for sid, lifecycle in zip(IDS, results.lifecycles, strict=True):
        assert [r.operation for r in lifecycle if isinstance(r, ScheduleResult)] == list(LIFECYCLE)
        assert all(isinstance(r, ScheduleResult) and r.success for r in lifecycle)
        assert [a.operation for a in recorder.select(schedule_id=sid)] == [
            ServerOperation(op.path) for op in LIFECYCLE
        ]
    assert all(server.status_of(sid) == ScheduleStatus.CANCELLED for sid in IDS)
    new_ids = {r.schedule_id for r in results.starts if isinstance(r, ScheduleResult)}
    assert len(new_ids) == STARTS
    assert all(
        sid is not None and server.status_of(sid) == ScheduleStatus.ACTIVE for sid in new_ids
    )
    first, last = recorder.first_arrival(), recorder.last_arrival()
    assert first is not None
    assert last is not None
    makespan = last - first
    # The server admitted every arrival within its limits: at least WINDOWS windows; and
    # the limiter lost no time beyond the guard and the round trip of each window.
    assert WINDOWS * W <= makespan <= BOUND
    return makespan


@pytest.mark.looptime
async def test_a_mixed_workload_at_the_real_limits_meets_no_429() -> None:
    """60 ids x (get, pause, continue, update, cancel) + 20 starts, at once, one client:
    0 x 429, <= 60 per 60 s at the server and <= 10 per id, near the bound.

    Measured (seed 12), first to last arrival: 305.134 s against the floor of
    300 s (1.0171) and BOUND 305.2 s; the busiest 60 s held exactly 60 arrivals.
    """
    async with mixed_server() as server, server.client(limits=RateLimits()) as client:
        results = await run_workload(client, IDS, STARTS, WORKLOAD)
    assert_mixed_run(server, results)


@pytest.mark.redis
@pytest.mark.looptime
async def test_a_mixed_workload_through_redis_meets_no_429(
    virtual_redis: tuple[Any, str],
) -> None:
    """The same workload with the client's limiter in Redis."""
    from schedcancel.redis import RedisLimiter  # noqa: PLC0415 - the redis extra

    redis, prefix = virtual_redis
    loop = asyncio.get_running_loop()
    limiter: Limiter = RedisLimiter(
        redis, username="mixed", key_prefix=prefix, clock=loop.time, jitter=0, timeout=3600
    )
    server = mixed_server()
    try:
        async with server, ScheduleClient(**server.client_kwargs(), limiter=limiter) as client:
            results = await run_workload(client, IDS, STARTS, WORKLOAD)
    finally:
        await limiter.aclose()
    assert_mixed_run(server, results)
