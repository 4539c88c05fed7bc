"""The asyncio rate limiter, on looptime's virtual clock: no real sleeps, no timed assertions."""

from __future__ import annotations

import asyncio
import collections

import pytest
from schedcancel import Limiter, QueueTimeoutError, RateLimits
from schedcancel._limiter import RateLimiter

pytestmark = pytest.mark.looptime

RTT = 0.1  # the simulated response time of every request


async def _send(
    limiter: RateLimiter, key: str, sends: list[tuple[float, str]], *, rtt: float = RTT
) -> None:
    """Acquire, "send" (record the time), wait one response time, release."""
    permit = await limiter.acquire(key)
    sends.append((asyncio.get_running_loop().time(), key))
    await asyncio.sleep(rtt)
    await limiter.release(permit)


def _bursts(sends: list[tuple[float, str]]) -> list[tuple[float, int]]:
    counts = collections.Counter(round(t, 6) for t, _ in sends)
    return sorted(counts.items())


@pytest.fixture(name="limiter")
async def _limiter() -> collections.abc.AsyncIterator[RateLimiter]:
    limiter = RateLimiter(RateLimits())
    yield limiter
    await limiter.aclose()


async def test_implements_the_limiter_protocol(limiter: RateLimiter) -> None:
    """RateLimiter satisfies the runtime-checkable Limiter protocol."""
    assert isinstance(limiter, Limiter)
    assert limiter.limits == RateLimits()


async def test_600_distinct_ids_go_in_ten_bursts_one_window_apart(limiter: RateLimiter) -> None:
    """600 requests go out as 10 bursts of 60, each window + guard + RTT after the last."""
    start = asyncio.get_running_loop().time()
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(600)))
    bursts = _bursts(sends)
    assert [n for _, n in bursts] == [60] * 10
    assert [t - start for t, _ in bursts] == pytest.approx([i * (60 + 1 + RTT) for i in range(10)])


async def test_50_requests_go_at_once(limiter: RateLimiter) -> None:
    """A batch of 50 (below both limits) is sent at once, without waiting for anything."""
    start = asyncio.get_running_loop().time()
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(50)))
    assert {t for t, _ in sends} == {start}


async def test_per_schedule_limit_holds_one_id(limiter: RateLimiter) -> None:
    """25 requests for one scheduleId go as 10, 10, 5, one window + guard + RTT apart."""
    sends: list[tuple[float, str]] = []
    start = asyncio.get_running_loop().time()
    await asyncio.gather(*(_send(limiter, "same", sends) for _ in range(25)))
    assert [(round(t - start, 6), n) for t, n in _bursts(sends)] == [
        (0.0, 10),
        (61.1, 10),
        (122.2, 5),
    ]


async def test_no_head_of_line_blocking(limiter: RateLimiter) -> None:
    """Requests held by their scheduleId's log do not hold back requests for other ids."""
    start = asyncio.get_running_loop().time()
    sends: list[tuple[float, str]] = []
    # 15 for one id queue first; 11 of them wait for the per-id window ...
    heavy = [asyncio.create_task(_send(limiter, "heavy", sends)) for _ in range(15)]
    await asyncio.sleep(0)
    # ... while requests for other ids, queued after them, go at once.
    await asyncio.gather(*(_send(limiter, f"other-{i}", sends) for i in range(20)))
    assert all(t == start for t, key in sends if key.startswith("other"))
    await asyncio.gather(*heavy)
    assert sum(1 for t, key in sends if key == "heavy" and t == start) == 10


async def test_idle_schedule_ids_are_dropped(limiter: RateLimiter) -> None:
    """A scheduleId whose entries expired and that has no waiters leaves no state behind."""
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(30)))
    assert limiter.stats().schedule_ids == 30
    await asyncio.sleep(61 + RTT)
    stats = limiter.stats()
    assert stats.schedule_ids == 0
    assert stats.total_used == 0
    assert limiter._logs == {}
    assert len(limiter._sweep_times) == 0


async def test_waiter_cancelled_in_queue_consumes_nothing(limiter: RateLimiter) -> None:
    """A caller cancelled while queued leaves the queue, takes no entry and leaves no state."""
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(60)))
    waiter = asyncio.create_task(limiter.acquire("late"))
    await asyncio.sleep(1)
    assert limiter.stats().queued == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    stats = limiter.stats()
    assert stats.queued == 0
    assert stats.total_used == 60
    assert "late" not in limiter._logs
    assert "late" not in limiter._queues


async def test_queue_timeout_fails_at_once_when_the_wait_is_known_longer(
    limiter: RateLimiter,
) -> None:
    """With the window full, a short queue_timeout fails immediately with the expected wait."""
    loop = asyncio.get_running_loop()
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(60)))
    before = loop.time()
    with pytest.raises(QueueTimeoutError, match=r"expected wait 61\.0s") as info:
        await limiter.acquire("x", queue_timeout=5)
    assert loop.time() == before
    assert info.value.expected_wait == pytest.approx(61.0)
    assert limiter.stats().queued == 0


async def test_queue_timeout_waits_then_fails_at_the_deadline(limiter: RateLimiter) -> None:
    """When the wait is not known to exceed the deadline, the request waits and fails at it."""
    loop = asyncio.get_running_loop()
    permits = [await limiter.acquire(f"id-{i}") for i in range(60)]
    start = loop.time()
    # In flight, the 60 entries count for at least 61 s more: 100 s might do,
    # but the responses never come.
    with pytest.raises(QueueTimeoutError, match="no permit within queue_timeout") as info:
        await limiter.acquire("x", queue_timeout=100)
    assert loop.time() - start == pytest.approx(100)
    assert info.value.expected_wait == pytest.approx(61.0)
    assert limiter.stats().queued == 0
    for permit in permits:
        await limiter.release(permit)


async def test_higher_priority_goes_first(limiter: RateLimiter) -> None:
    """Among waiters that may start, a higher priority is granted first."""
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(60)))
    order: list[str] = []

    async def take(key: str, priority: int) -> None:
        permit = await limiter.acquire(key, priority=priority)
        order.append(key)
        await limiter.release(permit)

    low = [asyncio.create_task(take(f"low-{i}", 0)) for i in range(3)]
    await asyncio.sleep(1)
    high = asyncio.create_task(take("high", 5))
    await asyncio.gather(high, *low)
    assert order == ["high", "low-0", "low-1", "low-2"]
