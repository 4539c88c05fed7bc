"""Gate: a group of calls withdrawn while they wait for the limiter, with any limiter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from schedcancel import (
    Gate,
    QueueTimeoutError,
    RateLimiter,
    RateLimits,
    RequestWithdrawnError,
    RetryPolicy,
)
from schedcancel.testing import Fault, MockScheduleServer, ServerLimits

pytestmark = pytest.mark.looptime

# adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace the
# cold start and the refill).
SMALL = RateLimits(total=2, per_schedule=2, window=10.0, guard=0.0, adaptive=False)


@pytest.fixture(name="limiter")
async def _limiter() -> AsyncIterator[RateLimiter]:
    limiter = RateLimiter(SMALL)
    yield limiter
    await limiter.aclose()


async def test_closing_withdraws_the_waiting_calls_and_uses_nothing(limiter: RateLimiter) -> None:
    """Calls waiting for a permit raise RequestWithdrawnError; their places stay free."""
    gate = Gate()
    held = [await gate.acquire(limiter, f"SC-{i}") for i in range(2)]
    waiting = [asyncio.create_task(gate.acquire(limiter, f"SC-w{i}")) for i in range(3)]
    await asyncio.sleep(1)
    assert gate.waiting == 3
    gate.close()
    for task in waiting:
        with pytest.raises(RequestWithdrawnError):
            await task
    assert (gate.closed, gate.waiting) == (True, 0)
    stats = limiter.stats()
    assert (stats.queued, stats.in_flight) == (0, 2)
    for permit in held:
        await limiter.release(permit)  # granted before the close: untouched, released as usual
    assert limiter.stats().total_used == 2


async def test_on_grant_sees_each_permit_before_the_call_sends(limiter: RateLimiter) -> None:
    """``on_grant`` gets every permit the group gets, and none for a withdrawn call."""
    granted: list[str | None] = []
    gate = Gate(on_grant=lambda permit: granted.append(permit.schedule_id))
    held = [await gate.acquire(limiter, f"SC-{i}") for i in range(2)]
    waiting = asyncio.create_task(gate.acquire(limiter, "SC-w"))
    await asyncio.sleep(1)
    gate.close()
    with pytest.raises(RequestWithdrawnError):
        await waiting
    assert granted == ["SC-0", "SC-1"]
    for permit in held:
        await limiter.release(permit)


async def test_before_send_is_awaited_and_a_failure_sends_nothing(limiter: RateLimiter) -> None:
    """``before_send`` runs after ``on_grant``; when it raises, the call raises it and its
    permit is released (counted from now), through the gate and through a client alike."""
    order: list[str] = []
    fail = {"SC-2"}

    async def before_send(permit: Any) -> None:
        order.append(f"ready {permit.schedule_id}")
        if permit.schedule_id in fail:
            raise OSError("no space left")

    gate = Gate(
        on_grant=lambda p: order.append(f"granted {p.schedule_id}"), before_send=before_send
    )
    permit = await gate.acquire(limiter, "SC-1")
    with pytest.raises(OSError, match="no space"):
        await gate.acquire(limiter, "SC-2")
    assert order == ["granted SC-1", "ready SC-1", "granted SC-2", "ready SC-2"]
    assert limiter.stats().in_flight == 1  # SC-2's permit is back, released
    assert limiter.stats().total_used == 2
    await limiter.release(permit)
    async with MockScheduleServer() as server, server.client(limits=SMALL) as client:
        with pytest.raises(OSError, match="no space"):
            await client.cancel("SC-2", gate=Gate(before_send=before_send))
        assert server.recorder.count() == 0
        assert client.limiter.stats().in_flight == 0


async def test_a_closed_gate_refuses_at_once(limiter: RateLimiter) -> None:
    """After close, a call is refused before it reaches the limiter."""
    gate = Gate()
    gate.close()
    gate.close()  # idempotent
    with pytest.raises(RequestWithdrawnError) as caught:
        await gate.acquire(limiter, "SC-1")
    assert isinstance(caught.value, QueueTimeoutError)
    assert limiter.stats().total_used == 0
    assert repr(gate) == "<Gate closed=True waiting=0>"


async def test_a_permit_granted_as_the_gate_closes_is_given_back(
    limiter: RateLimiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closed between the grant and the caller's resumption: withdrawn, the entries given back."""
    gate = Gate()
    settle = limiter._core.settle

    def settle_then_close(*args: Any) -> None:
        settle(*args)  # the permit is set; its caller has not resumed yet
        gate.close()

    monkeypatch.setattr(limiter._core, "settle", settle_then_close)
    with pytest.raises(RequestWithdrawnError):
        await gate.acquire(limiter, "SC-1")
    stats = limiter.stats()
    assert (stats.in_flight, stats.total_used, stats.queued) == (0, 0, 0)


async def test_a_caller_cancelled_by_others_sees_its_cancellation(limiter: RateLimiter) -> None:
    """A waiter cancelled from outside gets CancelledError, even if the gate closes too."""
    gate = Gate()
    held = [await gate.acquire(limiter, f"SC-{i}") for i in range(2)]
    alone = asyncio.create_task(gate.acquire(limiter, "SC-a"))
    both = asyncio.create_task(gate.acquire(limiter, "SC-b"))
    await asyncio.sleep(1)
    alone.cancel()
    both.cancel()
    gate.close()
    for task in (alone, both):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert limiter.stats().queued == 0
    for permit in held:
        await limiter.release(permit)


async def test_a_client_call_in_its_retry_backoff_is_withdrawn_before_the_retry() -> None:
    """A call whose first attempt failed (503) is not sent again once its gate closed."""
    async with MockScheduleServer(limits=ServerLimits(window=10.0)) as server:
        server.seed(["SC-1"])
        server.script(Fault.MAINTENANCE)
        retry = RetryPolicy(attempts=3, backoff_initial=5.0, backoff_max=5.0, jitter=lambda: 1.0)
        async with server.client(retry=retry) as client:
            gate = Gate()
            call = asyncio.create_task(client.cancel("SC-1", gate=gate))
            while len(server.recorder.select()) < 1:  # noqa: ASYNC110 - virtual time
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.01)  # the 503 is in: the call is backing off now
            closed_at = asyncio.get_running_loop().time()
            gate.close()  # ends the backoff at once; nothing more is sent
            with pytest.raises(RequestWithdrawnError):
                await call
            assert asyncio.get_running_loop().time() == closed_at
        assert len(server.recorder.select()) == 1


async def test_a_client_call_queued_behind_the_window_is_withdrawn_unsent() -> None:
    """A cancel waiting for the next window is withdrawn: the server never sees it."""
    async with MockScheduleServer(limits=ServerLimits(total=2, window=10.0)) as server:
        server.seed(["SC-1", "SC-2", "SC-3"])
        limits = RateLimits(total=2, window=10.0, guard=0.0)
        async with server.client(limits=limits) as client:
            gate = Gate()
            first = await asyncio.gather(*(client.cancel(i, gate=gate) for i in ("SC-1", "SC-2")))
            queued = asyncio.create_task(client.cancel("SC-3", gate=gate))
            await asyncio.sleep(1)
            gate.close()
            with pytest.raises(RequestWithdrawnError):
                await queued
        assert all(result.success for result in first)
        assert sorted(str(a.schedule_id) for a in server.recorder.select()) == ["SC-1", "SC-2"]


async def test_the_task_closing_the_gate_is_not_withdrawn_from_its_own_block() -> None:
    """A task inside a watching() block that closes the gate itself goes on; later blocks refuse."""
    gate = Gate()
    with gate.watching():
        gate.close()
        await asyncio.sleep(1)  # not cancelled: the closer waits for nothing of the gate's
    assert gate.waiting == 0
    with pytest.raises(RequestWithdrawnError, match="the gate is closed"), gate.watching():
        pass  # pragma: no cover - refused before the block
