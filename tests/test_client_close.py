"""Closing a client ends its calls not sent yet with one typed error (issue 20, item 3).

``ScheduleClient.aclose()`` withdraws every call of the client that waits for
a permit or backs off before a retry: each raises ``ClientClosedError``, sends
nothing, and gives its place in the limiter back at once, so other clients on
a shared limiter (in process or through Redis) are granted exactly as if the
closed client had never queued. Requests already on the wire get their
answers first; calls made after the close are refused. All on looptime's
virtual clock, against the real mock server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from schedcancel import (
    BulkOutcome,
    ClientClosedError,
    Gate,
    RateLimiter,
    RateLimits,
    RequestWithdrawnError,
    RetryPolicy,
    ScheduleClient,
    TransportError,
)
from schedcancel.hooks import CallEvent, Finished
from schedcancel.redis import RedisLimiter
from schedcancel.testing import Fault, Faults, MockScheduleServer, ServerLimits

from support.limiters import STORES, limiters

pytestmark = pytest.mark.looptime

# adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace the
# cold start and the refill).
LIMITS = RateLimits(total=5, per_schedule=5, window=10.0, guard=0.5, adaptive=False)
SERVER_LIMITS = ServerLimits(total=5, per_schedule=5, window=10.0)
RTT = 0.1  # every response waits this long on the mock server
QUEUED = 25

MakeLimiter = Callable[[], RateLimiter | RedisLimiter]


@pytest.fixture(name="make_limiter", params=STORES)
async def _make_limiter(request: pytest.FixtureRequest) -> AsyncIterator[MakeLimiter]:
    """``make_limiter()``: a fresh limiter of ``LIMITS`` on the test's store, closed afterwards.

    Each one made is a budget of its own (the Redis ones: an API user of their own).
    """
    async with limiters(request.param) as make:
        yield lambda: make(LIMITS)


def _server(**options: Any) -> MockScheduleServer:
    faults = options.pop("faults", Faults(response_latency=(RTT, RTT)))
    return MockScheduleServer(limits=SERVER_LIMITS, unknown_ids="active", faults=faults, **options)


def _arrivals(server: MockScheduleServer, prefix: str) -> list[float]:
    """When the server saw the requests for ids starting with ``prefix``."""
    return [a.time for a in server.recorder.select() if str(a.schedule_id).startswith(prefix)]


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _fill_the_window(client: ScheduleClient) -> None:
    """Spend the whole API user's window with client's calls (answered at once)."""
    results = await asyncio.gather(*(client.cancel(f"SC-A-{i}") for i in range(LIMITS.total)))
    assert all(result.success for result in results)


async def _shared_run(make_limiter: MakeLimiter, queued: int) -> tuple[list[float], float]:
    """Client A fills the window and queues ``queued`` calls, B queues 5 behind them, A closes.

    Returns B's arrival times at the server and the moment A was closed.
    """
    async with _server() as server:
        limiter = make_limiter()
        events: list[CallEvent] = []
        a = server.client(limiter=limiter, hooks=[events.append])
        async with server.client(limiter=limiter) as b:
            await _fill_the_window(a)
            waiting = [asyncio.create_task(a.cancel(f"SC-AQ-{i}")) for i in range(queued)]
            await asyncio.sleep(1)
            b_calls = [asyncio.create_task(b.cancel(f"SC-B-{i}")) for i in range(5)]
            await asyncio.sleep(1)
            closed_at = _now()
            await a.aclose()
            assert _now() == closed_at  # nothing on the wire: the close does not wait
            outcomes = await asyncio.gather(*waiting, return_exceptions=True)
            assert _now() == closed_at  # every queued call ended at once
            assert all(type(o) is ClientClosedError for o in outcomes), outcomes
            assert all(r.success for r in await asyncio.gather(*b_calls))
        assert limiter.stats().in_flight == 0
        assert _arrivals(server, "SC-AQ-") == []  # nothing of A's was sent after the close
        assert len(_arrivals(server, "SC-A-")) == LIMITS.total
        # In the hooks, each withdrawn call was queued and finished with the typed error.
        finished = [e for e in events if isinstance(e, Finished) and e.error_type is not None]
        assert len(finished) == queued
        assert all((e.outcome, e.error_type) == ("error", "ClientClosedError") for e in finished)
        withdrawn = {e.call_id for e in finished}
        assert {e.kind for e in events if e.call_id in withdrawn} <= {"queued", "finished"}
        return _arrivals(server, "SC-B-"), closed_at


async def test_a_closed_clients_queued_calls_do_not_delay_another_client(
    make_limiter: MakeLimiter,
) -> None:
    """Through a shared limiter, B's calls go exactly when they would without A's 25 queued."""
    alone, closed = await _shared_run(make_limiter, 0)
    behind_a, closed_behind = await _shared_run(make_limiter, QUEUED)
    # The runs happen one after the other: compare the times from each run's close.
    assert len(alone) == len(behind_a) == 5
    assert [t - closed_behind for t in behind_a] == pytest.approx([t - closed for t in alone])


async def test_b_goes_when_the_window_frees(make_limiter: MakeLimiter) -> None:
    """The absolute figure behind the comparison: B's calls go one window after A's sends."""
    b_times, closed_at = await _shared_run(make_limiter, QUEUED)
    answered = closed_at - 2.0  # A's window-filling calls were answered, then 1 s, 1 s
    freed = answered + LIMITS.window + LIMITS.guard  # when their entries stop counting
    assert b_times == pytest.approx([freed] * 5, abs=0.01)


async def test_a_client_owned_limiter_ends_the_queued_calls_with_the_typed_error() -> None:
    """With the client's own limiter: ClientClosedError (not CancelledError), nothing sent."""
    async with _server() as server:
        events: list[CallEvent] = []
        client = server.client(limits=LIMITS, hooks=[events.append])
        await _fill_the_window(client)
        waiting = [asyncio.create_task(client.cancel(f"SC-AQ-{i}")) for i in range(QUEUED)]
        await asyncio.sleep(1)
        await client.aclose()
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
        assert [type(o) for o in outcomes] == [ClientClosedError] * QUEUED
        assert all("the client was closed" in str(o) for o in outcomes)
        await asyncio.sleep(2 * LIMITS.window)
        assert _arrivals(server, "SC-AQ-") == []
        with pytest.raises(RuntimeError, match="closed"):  # the limiter it owned is closed
            await client.limiter.acquire("SC-X")
        finished = [e for e in events if isinstance(e, Finished) and e.error_type is not None]
        assert [e.error_type for e in finished] == ["ClientClosedError"] * QUEUED


async def test_a_call_made_after_the_close_is_refused_before_the_limiter() -> None:
    """A call on a closed client raises ClientClosedError and takes no place."""
    limiter = RateLimiter(LIMITS)
    async with _server() as server:
        client = server.client(limiter=limiter)
        await client.aclose()
        with pytest.raises(ClientClosedError, match="the client is closed"):
            await client.cancel("SC-1")
        assert isinstance(ClientClosedError("x"), RequestWithdrawnError)
        assert len(server.recorder) == 0
    stats = limiter.stats()
    assert (stats.queued, stats.total_used) == (0, 0)
    await limiter.aclose()


async def test_a_permit_granted_as_the_client_closes_is_given_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Granted, but closed before the caller resumed: not sent, the entries given back."""
    limiter = RateLimiter(LIMITS)
    async with _server() as server:
        client = server.client(limiter=limiter)
        settle = limiter._core.settle

        def settle_then_close(*args: Any) -> None:
            settle(*args)  # the permit is set; its caller has not resumed yet
            client._gate.close()  # what aclose() does first, in the same instant

        monkeypatch.setattr(limiter._core, "settle", settle_then_close)
        with pytest.raises(ClientClosedError):
            await client.cancel("SC-1")
        await client.aclose()
        assert len(server.recorder) == 0
    stats = limiter.stats()
    assert (stats.in_flight, stats.total_used, stats.queued) == (0, 0, 0)
    await limiter.aclose()


async def test_a_request_on_the_wire_gets_its_answer_before_the_close_ends() -> None:
    """A call already sent is answered and returns it; its permit is released as usual."""
    limiter = RateLimiter(LIMITS)
    async with _server(faults=Faults(response_latency=(2.0, 2.0))) as server:
        client = server.client(limiter=limiter)
        call = asyncio.create_task(client.cancel("SC-1"))
        await asyncio.sleep(1)
        assert limiter.stats().in_flight == 1
        await client.aclose()
        assert _now() == pytest.approx(2.0, abs=0.01)  # it waited for the answer, no longer
        assert (await call).success
    stats = limiter.stats()
    assert (stats.in_flight, stats.total_used) == (0, 1)
    await limiter.aclose()


async def test_the_close_waits_for_a_silent_server_no_longer_than_timeout() -> None:
    """A request whose answer never comes holds the close for ``timeout`` at most."""
    limiter = RateLimiter(LIMITS)
    async with _server(faults=Faults(response_latency=(100.0, 100.0))) as server:
        client = server.client(limiter=limiter, timeout=5.0, retry=RetryPolicy(attempts=1))
        call = asyncio.create_task(client.cancel("SC-1"))
        await asyncio.sleep(1)
        await client.aclose()
        assert _now() <= 5.0 + 0.01
        with pytest.raises(TransportError, match=r"no response within 5\.0 s"):
            await call
    assert limiter.stats().in_flight == 0  # released: it may have reached the server
    await limiter.aclose()


async def test_an_answer_that_needs_another_send_ends_with_the_typed_error() -> None:
    """A 429 answered after the close is not requeued: ClientClosedError, one request only."""
    limiter = RateLimiter(LIMITS)
    faults = Faults(script=(Fault.RATE_LIMITED,), response_latency=(2.0, 2.0))
    async with _server(faults=faults) as server:
        client = server.client(limiter=limiter)
        call = asyncio.create_task(client.cancel("SC-1"))
        await asyncio.sleep(1)
        await client.aclose()
        with pytest.raises(ClientClosedError):
            await call
        await asyncio.sleep(3 * LIMITS.window)
        assert len(server.recorder) == 1
    assert limiter.stats().in_flight == 0
    await limiter.aclose()


async def test_a_call_backing_off_ends_at_the_close_not_after_its_backoff() -> None:
    """A call waiting for its retry (503, 5 s backoff) ends at once when the client closes."""
    events: list[CallEvent] = []
    retry = RetryPolicy(attempts=3, backoff_initial=5.0, backoff_max=5.0, jitter=lambda: 1.0)
    async with _server(faults=Faults(script=(Fault.MAINTENANCE,))) as server:
        client = server.client(limits=LIMITS, retry=retry, hooks=[events.append])
        call = asyncio.create_task(client.cancel("SC-1"))
        await asyncio.sleep(0.5)  # answered 503 at once; backing off now
        assert [e.kind for e in events][-1] == "retried"
        closed_at = _now()
        await client.aclose()
        with pytest.raises(ClientClosedError):
            await call
        assert _now() == closed_at
        assert len(server.recorder) == 1
    assert [e.kind for e in events][-2:] == ["retried", "finished"]
    assert events[-1].error_type == "ClientClosedError"  # type: ignore[attr-defined]


async def test_the_clients_gate_and_a_callers_gate_compose() -> None:
    """A call passes both gates: the client's close and the caller's close each withdraw it."""
    limiter = RateLimiter(LIMITS)
    async with _server() as server:
        client = server.client(limiter=limiter)
        await _fill_the_window(client)
        mine, theirs = Gate(), Gate()
        by_gate = asyncio.create_task(client.cancel("SC-G-1", gate=mine))
        by_client = asyncio.create_task(client.cancel("SC-G-2", gate=theirs))
        await asyncio.sleep(1)
        assert (mine.waiting, theirs.waiting) == (1, 1)
        mine.close()
        with pytest.raises(RequestWithdrawnError) as caught:
            await by_gate
        assert type(caught.value) is RequestWithdrawnError  # the caller's gate, not the client
        assert not by_client.done()
        await client.aclose()
        with pytest.raises(ClientClosedError):
            await by_client
        assert (theirs.closed, theirs.waiting) == (False, 0)  # the caller's gate is left open
        assert _arrivals(server, "SC-G-") == []
    assert limiter.stats().queued == 0
    await limiter.aclose()


async def test_a_bulk_job_whose_client_closes_stops_with_the_typed_error() -> None:
    """cancel_many on a client closed under it: nothing sent after, the job raises the error."""
    async with _server() as server:
        client = server.client(limits=LIMITS)
        ids = [f"SC-J-{i}" for i in range(20)]
        outcomes: list[BulkOutcome] = []

        async def job() -> None:
            async for outcome in client.cancel_many(ids, priority=0, concurrency=10):
                outcomes.append(outcome)  # noqa: PERF401 - kept as they come: the job raises

        running = asyncio.create_task(job())
        await asyncio.sleep(1)  # 5 sent and answered, the others wait for the next window
        await client.aclose()
        with pytest.raises(ClientClosedError):
            async with asyncio.timeout(1):  # it once hung: its workers were cancelled
                await running
        await asyncio.sleep(2 * LIMITS.window)
        assert len(_arrivals(server, "SC-J-")) == LIMITS.total
        assert len(outcomes) == LIMITS.total
        assert all(o.final for o in outcomes)
