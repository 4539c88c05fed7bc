"""The limiters' behaviour on looptime's virtual clock: no real sleeps, no timed assertions.

Every behaviour test runs against both stores under the one dispatcher: the
in-process ``RateLimiter`` and the ``RedisLimiter`` on the Redis server at
127.0.0.1:6379 (on the same virtual clock, see ``support.redis``); both must
give the same observable behaviour. Tests of one store's own bookkeeping (the
memory store's idle-key sweep, its float queue, its repr) run on that store
only; the Redis store's own are in ``test_redis.py``.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import math
import re
from collections.abc import AsyncIterator, Container
from typing import Any

import looptime
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schedcancel import (
    InvalidParameterError,
    Limiter,
    LimiterStats,
    Permit,
    QueueTimeoutError,
    RateLimiter,
    RateLimitHeaders,
    RateLimits,
    StatedQuota,
)
from schedcancel._limiting.stores import FloatQueue as _FloatQueue
from schedcancel._limiting.window import LevelPolicy, SlidingLog
from schedcancel.redis import RedisLimiter

from support.limiters import STORES, AnyLimiter, Make, limiters
from support.redis import require_redis
from support.window import check, try_acquire

pytestmark = pytest.mark.looptime

RTT = 0.1  # the simulated response time of every request


@pytest.fixture(name="make", params=STORES)
async def _make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    """``make(limits)``: limiters on the test's store (see ``support.limiters``)."""
    async with limiters(request.param) as make:
        yield make


@pytest.fixture(name="limiter")
async def _limiter(make: Make) -> AnyLimiter:
    """A limiter with the default limits, on the test's store."""
    return make()


@pytest.fixture(name="memory_limiter")
async def _memory_limiter() -> AsyncIterator[RateLimiter]:
    """An in-process limiter with the default limits, for tests of the memory store's own."""
    limiter = RateLimiter(RateLimits())
    yield limiter
    await limiter.aclose()


async def _send(
    limiter: AnyLimiter, key: str, sends: list[tuple[float, str]], *, rtt: float = RTT
) -> None:
    """Acquire, "send" (record the time), wait one response time, release."""
    permit = await limiter.acquire(key)
    sends.append((asyncio.get_running_loop().time(), key))
    await asyncio.sleep(rtt)
    await limiter.release(permit)


def _bursts(sends: list[tuple[float, str]]) -> list[tuple[float, int]]:
    counts = collections.Counter(round(t, 6) for t, _ in sends)
    return sorted(counts.items())


def _redis_busy(limiter: RedisLimiter) -> bool:
    """Whether a round, a release or a give-back of the limiter is still out to Redis."""
    tasks = (limiter._redis.releaser, *limiter._redis._tasks)
    return bool(limiter._round) or any(t is not None and not t.done() for t in tasks)


async def _stats(limiter: AnyLimiter) -> LimiterStats:
    """The limiter's state now.

    Redis's ``stats()`` is as of the last round trip (documented), so this asks
    Redis, once what is still out to it has landed.
    """
    if isinstance(limiter, RateLimiter):
        return limiter.stats()
    while _redis_busy(limiter):  # noqa: ASYNC110 - real I/O, taking no virtual time
        await asyncio.sleep(0)
    return await limiter.shared_stats()


async def _has_log(limiter: AnyLimiter, key: str) -> bool:
    """Whether the store keeps a log for the scheduleId ``key``."""
    if isinstance(limiter, RateLimiter):
        return key in limiter._memory.logs
    return bool(await limiter._redis._client.exists(limiter.keys(key)[-3]))  # log, pause, last


def _cancel_on_grant(
    limiter: AnyLimiter, task: asyncio.Task[Permit], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancel ``task`` right after the dispatcher grants its permit, before it resumes.

    A Redis round is a round trip, so a plain ``call_soon(task.cancel)`` would
    land while the round is out (before the grant) on that store.
    """
    settle = limiter._core.settle

    def settle_then_cancel(*args: Any) -> None:
        settle(*args)
        monkeypatch.setattr(limiter._core, "settle", settle)
        task.cancel()

    monkeypatch.setattr(limiter._core, "settle", settle_then_cancel)


async def test_implements_the_limiter_protocol(limiter: AnyLimiter) -> None:
    """Both limiters satisfy the runtime-checkable Limiter protocol."""
    assert isinstance(limiter, Limiter)
    assert limiter.limits == RateLimits()


async def test_600_distinct_ids_go_in_ten_bursts_one_window_apart(make: Make) -> None:
    """600 requests go out as 10 bursts of 60, each window + guard + RTT after the last."""
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace
    # the cold start and the refill).
    limiter = make(RateLimits(adaptive=False))
    start = asyncio.get_running_loop().time()
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(600)))
    bursts = _bursts(sends)
    assert [n for _, n in bursts] == [60] * 10
    assert [t - start for t, _ in bursts] == pytest.approx([i * (60 + 1 + RTT) for i in range(10)])


async def test_50_requests_go_at_once(make: Make) -> None:
    """With adaptive=False, a batch of 50 (below both limits) is sent at once, without waiting
    for anything.

    With the default limits (adaptive) a cold limiter sends 10 first (ceil(60 / 6), the
    adaptive policy's in-flight cap) and the rest once the first answer is released; the
    cap's own tests cover that.
    """
    limiter = make(RateLimits(adaptive=False))
    start = asyncio.get_running_loop().time()
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(50)))
    assert {t for t, _ in sends} == {start}


async def test_per_schedule_limit_holds_one_id(limiter: AnyLimiter) -> None:
    """25 requests for one scheduleId go as 10, 10, 5, one window + guard + RTT apart."""
    sends: list[tuple[float, str]] = []
    start = asyncio.get_running_loop().time()
    await asyncio.gather(*(_send(limiter, "same", sends) for _ in range(25)))
    assert [(round(t - start, 6), n) for t, n in _bursts(sends)] == [
        (0.0, 10),
        (61.1, 10),
        (122.2, 5),
    ]


async def test_no_head_of_line_blocking(make: Make) -> None:
    """Requests held by their scheduleId's log do not hold back requests for other ids."""
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace
    # the cold start and the refill).
    limiter = make(RateLimits(adaptive=False))
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


async def test_idle_schedule_ids_are_dropped(memory_limiter: RateLimiter) -> None:
    """A scheduleId whose entries expired and that has no waiters leaves no state behind."""
    limiter = memory_limiter
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(30)))
    assert limiter.stats().schedule_ids == 30
    await asyncio.sleep(61 + RTT)
    stats = limiter.stats()
    assert stats.schedule_ids == 0
    assert stats.total_used == 0
    assert limiter._memory.logs == {}
    assert len(limiter._memory.sweep_times) == 0


async def test_adaptive_memory_is_forgotten_three_windows_after_the_last_request(
    memory_limiter: RateLimiter,
) -> None:
    """The acceptances kept for adaptive judgement go too, so an idle limiter holds nothing."""
    limiter = memory_limiter
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(30)))
    assert len(limiter._memory.accepted) == 30
    await asyncio.sleep(61 + RTT)
    assert limiter.stats().schedule_ids == 0
    assert len(limiter._memory.accepted) == 30  # still inside the three windows an episode looks at
    await asyncio.sleep(2 * 61)
    assert len(limiter._memory.accepted) == 0
    assert limiter._timer is None


async def test_waiter_cancelled_in_queue_consumes_nothing(limiter: AnyLimiter) -> None:
    """A caller cancelled while queued leaves the queue, takes no entry and leaves no state."""
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(60)))
    waiter = asyncio.create_task(limiter.acquire("late"))
    await asyncio.sleep(1)
    assert limiter.stats().queued == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    stats = await _stats(limiter)
    assert stats.queued == 0
    assert stats.total_used == 60
    assert not await _has_log(limiter, "late")
    assert "late" not in limiter._core.queues


async def test_queue_timeout_fails_at_once_when_the_wait_is_known_longer(make: Make) -> None:
    """With the window full, a short queue_timeout fails immediately with the expected wait."""
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace
    # the cold start and the refill).
    limiter = make(RateLimits(adaptive=False))
    loop = asyncio.get_running_loop()
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(60)))
    before = loop.time()
    # Stores differ: Redis forecasts from its last round trip, which saw the 60 in
    # flight (each ends no earlier than acquire + window + guard), not from their
    # releases one RTT later.
    wait = 61.0 if isinstance(limiter, RateLimiter) else 61.0 - RTT
    with pytest.raises(QueueTimeoutError, match=rf"expected wait {wait:.1f}s") as info:
        await limiter.acquire("x", queue_timeout=5)
    assert loop.time() == before
    assert info.value.expected_wait == pytest.approx(wait)
    assert limiter.stats().queued == 0


async def test_queue_timeout_waits_then_fails_at_the_deadline(make: Make) -> None:
    """When the wait is not known to exceed the deadline, the request waits and fails at it."""
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace
    # the cold start and the refill).
    limiter = make(RateLimits(adaptive=False))
    loop = asyncio.get_running_loop()
    permits = [await limiter.acquire(f"id-{i}") for i in range(60)]
    start = loop.time()
    # In flight, the 60 entries count for at least 61 s more: 100 s might do,
    # but the responses never come.
    message, wait = "no permit within queue_timeout", 61.0
    if isinstance(limiter, RedisLimiter):
        # Stores differ: past their earliest end, Redis reports in-flight entries as
        # a hold of one poll (window / 100); the round at the deadline fails the
        # waiter for that hold, with the poll as its expected wait.
        message, wait = "the limits admit no request for 0.600s", 0.6
    with pytest.raises(QueueTimeoutError, match=message) as info:
        await limiter.acquire("x", queue_timeout=100)
    assert loop.time() - start == pytest.approx(100)
    assert info.value.expected_wait == pytest.approx(wait)
    assert limiter.stats().queued == 0
    for permit in permits:
        await limiter.release(permit)


async def test_higher_priority_goes_first(limiter: AnyLimiter) -> None:
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


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _take(limiter: AnyLimiter, key: str, order: list[str], **kwargs: object) -> None:
    """Acquire, note the key in ``order``, release at once."""
    permit = await limiter.acquire(key, **kwargs)  # type: ignore[arg-type]
    order.append(key)
    await limiter.release(permit)


async def test_newcomer_never_overtakes_a_queued_waiter_of_equal_priority(make: Make) -> None:
    """A later request for an id with more pending requests still goes after an earlier waiter."""
    limiter = make(RateLimits(total=1, adaptive=False))
    first = await limiter.acquire("first")
    await limiter.release(first)
    order: list[str] = []
    early = asyncio.create_task(_take(limiter, "a", order))
    await asyncio.sleep(1)
    late = [asyncio.create_task(_take(limiter, "b", order)) for _ in range(3)]
    await asyncio.gather(early, *late)
    assert order == ["a", "b", "b", "b"]
    await limiter.aclose()


async def test_most_pending_id_goes_first_among_waiters_that_came_together(make: Make) -> None:
    """Among waiters queued together, the id with most pending goes first, then FIFO."""
    limiter = make(RateLimits(total=1, adaptive=False))
    first = await limiter.acquire("first")
    await limiter.release(first)
    order: list[str] = []
    tasks = [asyncio.create_task(_take(limiter, "a", order))]
    tasks += [asyncio.create_task(_take(limiter, "b", order)) for _ in range(3)]
    await asyncio.gather(*tasks)
    # b (3 pending) first, b again (2 > 1), then a and b tie and the older waiter, a, goes.
    assert order == ["b", "b", "a", "b"]
    await limiter.aclose()


async def test_waiters_go_by_priority_then_requeue_then_pending_then_arrival(make: Make) -> None:
    """Held by a pause, waiters then go: priority, requeued, most pending id, then arrival."""
    limiter = make(RateLimits(adaptive=False))
    holder = await limiter.acquire("first")
    await limiter.release(holder, rate_limited=True, retry_after=0.2)
    order: list[str] = []
    tasks = [
        asyncio.create_task(_take(limiter, "y", order)),
        *(asyncio.create_task(_take(limiter, "x", order)) for _ in range(3)),
        asyncio.create_task(_take(limiter, "high", order, priority=5)),
        asyncio.create_task(_take(limiter, "requeued", order, requeue=True)),
    ]
    await asyncio.sleep(0.05)  # a later batch: ranks after all of the above
    tasks.append(asyncio.create_task(_take(limiter, "late", order)))
    await asyncio.gather(*tasks)
    assert order == ["high", "requeued", "x", "x", "y", "x", "late"]


async def test_a_cancelled_waiters_stale_rank_does_not_serve_its_ids_next_queue(
    make: Make,
) -> None:
    """An id whose queue was dropped and made again competes with its new waiter's priority."""
    limiter = make(RateLimits(total=1, window=0.2, guard=0.0, adaptive=False))
    holder = await limiter.acquire("first")
    await limiter.release(holder, rate_limited=True, retry_after=0.3)  # nothing goes for 0.3 s
    high = asyncio.create_task(limiter.acquire("a", priority=10))
    await asyncio.sleep(0.02)
    high.cancel()  # a's queue is dropped; its ready entry stays behind
    with pytest.raises(asyncio.CancelledError):
        await high
    low = asyncio.create_task(limiter.acquire("a", priority=0))
    mid = asyncio.create_task(limiter.acquire("b", priority=5))
    done, _ = await asyncio.wait({low, mid}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    assert done == {mid}
    low.cancel()
    await asyncio.gather(low, return_exceptions=True)


def _fifo_with_skip_last_send(keys: list[str], limits: RateLimits, rtt: float) -> float:
    """When plain FIFO-with-skip (first waiter that fits, in arrival order) sends its last."""
    total_policy = LevelPolicy(base_limit=limits.total, window=limits.window, guard=limits.guard)
    key_policy = LevelPolicy(
        base_limit=limits.per_schedule, window=limits.window, guard=limits.guard
    )
    total = SlidingLog(total_policy)
    logs = {key: SlidingLog(key_policy) for key in keys}
    waiting, now, last = list(keys), 0.0, 0.0
    while waiting:
        sent = [key for key in waiting if try_acquire(total, logs[key], now).allowed]
        for key in sent:
            waiting.remove(key)
            last = now
        for key in sent:
            total.release(now + rtt)
            logs[key].release(now + rtt)
        now = min(check(total, logs[key], now + rtt).at for key in waiting) if waiting else now
    return last


async def test_most_pending_ordering_reaches_the_two_limit_bound(make: Make) -> None:
    """M=200 with 30 on one id end at the two-limit bound, a window before FIFO-with-skip."""
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace
    # the cold start and the refill).
    limiter = make(RateLimits(adaptive=False))
    keys = [f"id-{i}" for i in range(170)] + ["heavy"] * 30
    start = _now()
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, key, sends) for key in keys))
    cycle = 60 + 1 + RTT
    # max(ceil(200 / 60), ceil(30 / 10)) - 1 = 3 cycles.
    assert max(t for t, _ in sends) - start == pytest.approx(3 * cycle)
    assert _fifo_with_skip_last_send(keys, limiter.limits, RTT) == pytest.approx(4 * cycle)


async def test_release_nowait_frees_the_place_as_release_does() -> None:
    """``release_nowait()`` (for ``finally`` blocks) answers the permit at once: the next
    waiter goes, and a second release of the same permit is refused."""
    limiter = RateLimiter(RateLimits(total=1, per_schedule=1, window=1.0, guard=0.0))
    permit = await limiter.acquire("a")
    waiter = asyncio.create_task(limiter.acquire("b"))
    await asyncio.sleep(0.1)
    assert not waiter.done()  # the only place is out, until its response
    limiter.release_nowait(permit)
    assert limiter.stats().in_flight == 0
    with pytest.raises(ValueError, match="released"):
        limiter.release_nowait(permit)
    async with asyncio.timeout(5.0):  # virtual time: without the release it waits for ever
        second = await waiter  # the entry counts for a window from the response at 0.1
    assert second.acquired_at == pytest.approx(1.1, abs=1e-6)
    await limiter.release(second)
    await limiter.aclose()


@pytest.mark.scale
async def test_100k_waiters_use_one_timer_and_finish_in_order() -> None:
    """100,000 queued waiters are served in arrival order by one timer re-armed per window."""
    loop = asyncio.get_running_loop()
    limiter = RateLimiter(RateLimits(total=1000, per_schedule=10))
    handles: list[asyncio.TimerHandle] = []
    overlapping = 0
    call_at = loop.call_at

    def counting_call_at(when: float, callback: object, *args: object) -> asyncio.TimerHandle:
        nonlocal overlapping
        overlapping += sum(1 for h in handles if not h.cancelled() and h.when() > loop.time())
        handle = call_at(when, callback, *args)  # type: ignore[arg-type]
        handles.append(handle)
        return handle

    loop.call_at = counting_call_at  # type: ignore[method-assign,assignment]
    # The collector would rescan the whole test session's objects again and
    # again while 100,000 tasks are made; park the old ones for this test.
    gc.freeze()
    try:
        order: list[int] = []

        async def one(i: int) -> None:
            permit = await limiter.acquire(f"id-{i}")
            order.append(i)
            limiter.release_nowait(permit)

        await asyncio.gather(*(one(i) for i in range(100_000)))
    finally:
        gc.unfreeze()
        del loop.call_at
    assert order == list(range(100_000))
    # 100 windows of 1,000: one arming per window, and one for the in-flight cap's lapse
    # while each window's refill is capped (the adaptive policy's rule 4), plus the idle-key
    # sweep's; one timer at a time.
    assert len(handles) <= 201
    assert overlapping == 0
    await limiter.aclose()


async def test_requeued_request_goes_to_the_front(make: Make) -> None:
    """A request coming back after a 429 is served before the waiters already queued."""
    limiter = make(RateLimits(total=1, adaptive=False))
    permit = await limiter.acquire("first")
    order: list[str] = []
    queued = [asyncio.create_task(_take(limiter, key, order)) for key in ("a", "b")]
    await asyncio.sleep(1)
    await limiter.release(permit, rate_limited=True, retry_after=0)
    back = asyncio.create_task(_take(limiter, "first", order, requeue=True))
    await asyncio.gather(back, *queued)
    assert order == ["first", "a", "b"]
    await limiter.aclose()


@pytest.mark.parametrize(
    ("retry_after", "pause"),
    [(None, 61.0), (5.0, 5.0), (1000.0, 120.0), (-3.0, 0.0)],
)
async def test_429_pauses_the_api_user(make: Make, retry_after: float | None, pause: float) -> None:
    """A 429 pauses the API user for Retry-After (capped at 2 windows), else window + guard."""
    limiter = make(RateLimits(adaptive=False))
    permit = await limiter.acquire("a")
    await asyncio.sleep(RTT)
    released = _now()
    await limiter.release(permit, rate_limited=True, retry_after=retry_after)
    await limiter.acquire("b")
    assert _now() - released == pytest.approx(pause)
    assert limiter.stats().rate_limited == 1
    await limiter.aclose()


async def test_429_on_a_full_schedule_id_pauses_only_that_id(make: Make) -> None:
    """A 429 while the scheduleId's log is full pauses that id; other ids go on at once."""
    limiter = make(RateLimits(adaptive=False))
    start = _now()
    permits = [await limiter.acquire("z") for _ in range(10)]
    for permit in permits[:-1]:
        await limiter.release(permit)
    await limiter.release(permits[-1], rate_limited=True, retry_after=100)
    await limiter.acquire("other")
    assert _now() == start
    await limiter.acquire("z")
    assert _now() - start == pytest.approx(100)
    await limiter.aclose()


async def _answer(limiter: AnyLimiter, keys: list[str], rejected: Container[int]) -> list[float]:
    """Ask for all keys at once and answer each one RTT after its grant, as a client does;
    the grants at the positions in ``rejected`` (0: the first granted) are answered 429.
    Returns the grants' times, in order.

    Answered as they come: a cold or refilling limiter lets only ceil(limit / 6) go
    until an answer comes back (the adaptive policy's in-flight cap), the rest after it.
    """
    granted: list[float] = []

    async def one(key: str) -> None:
        permit = await limiter.acquire(key)
        bad = len(granted) in rejected
        granted.append(_now())
        await asyncio.sleep(RTT)
        await limiter.release(permit, rate_limited=bad, retry_after=5 if bad else None)

    await asyncio.gather(*(one(key) for key in keys))
    return granted


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


async def test_adaptive_lowers_the_limit_when_the_server_took_less(
    make: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """429s while the server never took a full window from us lower the limit to what it took."""
    caplog.set_level("INFO", logger="schedcancel")
    limiter = make(RateLimits(total=10))
    await _answer(limiter, [f"a-{i}" for i in range(10)], rejected=range(7, 10))
    # Judged when the pause is over and the whole burst has answered.
    assert limiter.stats().total_limit == 10
    # Cold: 2 (ceil(10 / 6)) went at 0, answered at 0.1; then the other 8, answered (429s
    # too) at 0.2. Their entries count until 61.1 and 61.2: the lowered limit (7) admits one
    # more once the 8 expire.
    await limiter.acquire("next")
    assert _now() == pytest.approx(61.2)
    stats = limiter.stats()
    assert (stats.total_limit, stats.mode, stats.rate_limited) == (7, "exact", 3)
    assert len(_warnings(caplog)) == 1
    assert re.search(r"\b7 .*raising it by 1 per 61s after 10 quiet windows", _warnings(caplog)[0])
    # Ten quiet windows after the 429s (at 0.2), then one more per window.
    await asyncio.sleep(11 * 61 - 61 + 1)
    assert (await _stats(limiter)).total_limit == 8
    await asyncio.sleep(2 * 61)
    assert (await _stats(limiter)).total_limit == 10
    assert "limit back to 10" not in caplog.text  # reading stats changes (and logs) nothing
    await limiter.release(await limiter.acquire("later"))
    # Stores differ: only the in-process limiter logs the recovery (at INFO), when it next works.
    assert ("limit back to 10" in caplog.text) is isinstance(limiter, RateLimiter)
    await limiter.aclose()


async def test_adaptive_lowers_at_most_by_half_per_episode(make: Make) -> None:
    """One episode never takes more than half the limit away."""
    limiter = make(RateLimits(total=10))
    # Cold: 2 (ceil(10 / 6)) go first and are accepted; the other 8 are refused.
    await _answer(limiter, [f"a-{i}" for i in range(10)], rejected=range(2, 10))
    await limiter.acquire("next")
    assert limiter.stats().total_limit == 5
    await limiter.aclose()


async def test_adaptive_goes_smooth_when_the_server_took_full_windows(
    make: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """429s after the server took a full window from us switch to smooth pacing, once."""
    limiter = make(RateLimits(total=10))
    await _answer(limiter, [f"a-{i}" for i in range(10)], rejected=())
    await asyncio.sleep(61)
    # The next burst meets a server that counts the previous one against it. Refilling (the
    # first burst's places came free within the window), only 2 (ceil(10 / 6)) go before an
    # answer comes back: both are refused. The other 8 go paced, spaced from those two: the
    # pause (to 66.3) is over before the first paced send is due.
    sent = await _answer(limiter, [f"b-{i}" for i in range(10)], rejected=range(2))
    assert sent == pytest.approx([61.2, 61.2, *(61.2 + 6.06 * i for i in range(1, 9))])
    permit = await limiter.acquire("next")
    stats = limiter.stats()
    assert (stats.total_limit, stats.mode) == (10, "smooth")
    assert len(_warnings(caplog)) == 1
    assert re.search(r"pac(ing|es) sends 6\.06s apart", _warnings(caplog)[0])
    # Still 429s while pacing: the limit steps down by one.
    await asyncio.sleep(RTT)
    await limiter.release(permit, rate_limited=True, retry_after=0)
    await limiter.acquire("after")
    assert limiter.stats().total_limit == 9
    assert len(_warnings(caplog)) == 2
    await limiter.aclose()


async def test_schedule_level_or_non_adaptive_429_changes_no_setting(
    make: Make,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With adaptive off, or with the scheduleId's log full, a 429 pauses but changes no setting."""
    quiet = make(RateLimits(adaptive=False))
    permit = await quiet.acquire("a")
    await quiet.release(permit, rate_limited=True, retry_after=0)
    assert (quiet.stats().mode, quiet.stats().total_limit) == ("exact", 60)
    full = make(RateLimits(per_schedule=2))
    permits = [await full.acquire("z") for _ in range(2)]
    await full.release(permits[0])
    await full.release(permits[1], rate_limited=True, retry_after=0)
    assert (full.stats().mode, full.stats().total_limit) == ("exact", 60)
    assert not caplog.records
    await quiet.aclose()
    await full.aclose()


async def test_smooth_mode_spaces_sends(make: Make) -> None:
    """In smooth mode sends are window / limit * (1 + slack) apart."""
    limiter = make(RateLimits(mode="smooth"))
    start = _now()
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(5)))
    assert [t - start for t, _ in sends] == pytest.approx([i * 1.01 for i in range(5)])
    await limiter.aclose()


async def test_estimate_and_stats_account_for_the_queue(make: Make) -> None:
    """estimate counts the waiters ahead ("queued, about N s") and stats reports the state."""
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace
    # the cold start and the refill).
    limiter = make(RateLimits(adaptive=False))
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(60)))
    assert await limiter.estimate() == pytest.approx(61.0)
    waiters = [asyncio.create_task(_send(limiter, f"w-{i}", sends)) for i in range(120)]
    await asyncio.sleep(0.9)
    # 120 ahead: they take the next two windows; a new one goes in the third.
    wait, schedule_ids = 61.1 - 1 + 2 * 61, 180
    if isinstance(limiter, RedisLimiter):
        # Documented: Redis's estimate is a lower bound, the later of the shared log's
        # next slot and a window per full window of local waiters (not their sum);
        # its stats count the local queues as scheduleIds.
        wait, schedule_ids = 2 * 61, 120
    assert await limiter.estimate() == pytest.approx(wait)
    assert await limiter.estimate("w-0") == pytest.approx(wait)
    stats = limiter.stats()
    assert stats == LimiterStats(
        queued=120,
        in_flight=0,
        total_used=60,
        total_limit=60,
        schedule_ids=schedule_ids,
        next_free=pytest.approx(60.1),  # type: ignore[arg-type]
        background_next_free=pytest.approx(60.1),  # type: ignore[arg-type]
    )
    await asyncio.gather(*waiters)


async def test_estimate_counts_the_ids_own_queue(limiter: AnyLimiter) -> None:
    """A request for an id with its own backlog is forecast behind that backlog."""
    sends: list[tuple[float, str]] = []
    tasks = [asyncio.create_task(_send(limiter, "busy", sends)) for _ in range(25)]
    await asyncio.sleep(1)
    assert await limiter.estimate() == 0.0
    # 15 queued for "busy": 10 go in the next window, 5 in the one after, then this one.
    # Documented: Redis's is a lower bound, a window per full window of the id's waiters.
    wait = 61.1 - 1 + 61 if isinstance(limiter, RateLimiter) else 61
    assert await limiter.estimate("busy") == pytest.approx(wait)
    await asyncio.gather(*tasks)


@pytest.mark.parametrize("key", ["a", None])
async def test_cancelled_after_grant_gives_the_entries_back(
    limiter: AnyLimiter, monkeypatch: pytest.MonkeyPatch, key: str | None
) -> None:
    """A caller cancelled between the grant and its resumption sends nothing and keeps nothing
    (a start, with no scheduleId, too)."""
    task = asyncio.create_task(limiter.acquire(key))
    _cancel_on_grant(limiter, task, monkeypatch)
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = await _stats(limiter)
    assert (stats.in_flight, stats.total_used, stats.schedule_ids) == (0, 0, 0)


async def test_queue_timeout_met_returns_the_permit(limiter: AnyLimiter) -> None:
    """A request admitted before its deadline gets its permit as usual."""
    permit = await limiter.acquire("a", queue_timeout=0)
    assert permit.schedule_id == "a"
    await limiter.release(permit)


@pytest.mark.parametrize("bad", [-1, float("nan"), "5", True])
async def test_bad_queue_timeout_is_refused(limiter: AnyLimiter, bad: object) -> None:
    """queue_timeout must be a non-negative number."""
    with pytest.raises(InvalidParameterError, match="queue_timeout"):
        await limiter.acquire("a", queue_timeout=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", 5, b"SC-1"])
async def test_bad_schedule_id_is_refused(limiter: AnyLimiter, bad: object) -> None:
    """schedule_id must be a non-empty string (or None: the API user's level only)."""
    with pytest.raises(InvalidParameterError, match="schedule_id"):
        await limiter.acquire(bad)  # type: ignore[arg-type]


async def test_release_checks_the_permit(make: Make, limiter: AnyLimiter) -> None:
    """A permit from another limiter, or one released twice, is refused."""
    other = make()
    permit = await other.acquire("a")
    with pytest.raises(ValueError, match="not issued by this limiter"):
        await limiter.release(permit)
    await other.release(permit)
    with pytest.raises(ValueError, match="released already"):
        await other.release(permit)
    await other.aclose()


async def test_aclose_cancels_waiters_and_refuses_new_ones(make: Make) -> None:
    """aclose cancels queued waiters; later acquires fail and late releases are ignored."""
    # adaptive=False: the log's own limit holds the waiter (the adaptive policy's in-flight
    # cap would hold the 11th of the 60 acquired without a release).
    limiter = make(RateLimits(adaptive=False))
    permits = [await limiter.acquire(f"id-{i}") for i in range(60)]
    waiter = asyncio.create_task(limiter.acquire("late"))
    await asyncio.sleep(1)
    await limiter.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    with pytest.raises(RuntimeError, match="closed"):
        await limiter.acquire("again")
    await limiter.release(permits[0])
    assert limiter.stats().queued == 0


async def test_injected_clock_drives_the_limiter(make: Make) -> None:
    """An injected clock stamps permits and still drives the loop's one timer correctly."""
    loop = asyncio.get_running_loop()
    offset = 1_000_000.0
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace
    # the cold start and the refill).
    limiter = make(RateLimits(total=2, adaptive=False), clock=lambda: loop.time() + offset)
    start = _now()
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(3)))
    assert [t - start for t, _ in sends] == pytest.approx([0, 0, 61 + RTT])
    permit = await limiter.acquire("stamp")
    assert permit.acquired_at == pytest.approx(_now() + offset)
    await limiter.aclose()


def test_limiter_is_bound_to_one_event_loop() -> None:
    """Using a limiter from a second event loop is an error, not a silent mix-up."""
    limiter = RateLimiter()
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        permit = first.run_until_complete(limiter.acquire("a"))
        assert permit.schedule_id == "a"
        with pytest.raises(RuntimeError, match="different event loop"):
            second.run_until_complete(limiter.acquire("b"))
    finally:
        first.close()
        second.close()


async def test_repr_shows_config_and_counts(memory_limiter: RateLimiter) -> None:
    """The repr shows the limits and live counts."""
    limiter = memory_limiter
    await limiter.acquire("a")
    assert repr(limiter) == (
        "<RateLimiter 60/10 per 60s mode=exact queued=0 in_flight=1 schedule_ids=1>"
    )


async def _last_send(store: str, limits: RateLimits, keys: list[str], rtt: float) -> float:
    async with limiters(store) as make:
        limiter = make(limits)
        sends: list[tuple[float, str]] = []
        await asyncio.gather(*(_send(limiter, key, sends, rtt=rtt) for key in keys))
    return max(t for t, _ in sends)


@pytest.mark.parametrize("store", STORES)
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_batch_ready_at_once_finishes_at_the_lower_bound(store: str, data: st.DataObject) -> None:
    """M requests ready at t=0 send their last one at (max(ceil(M/N), max ceil(m/K)) - 1) cycles."""
    counts = data.draw(st.lists(st.integers(1, 12), min_size=1, max_size=12), label="m_k")
    total = data.draw(st.integers(1, 8), label="N")
    per_schedule = data.draw(st.integers(1, total), label="K")
    rtt = data.draw(st.sampled_from([0.0, 0.25, 1.0]), label="rtt")
    keys = data.draw(
        st.permutations([f"k{j}" for j, m in enumerate(counts) for _ in range(m)]), label="order"
    )
    # adaptive=False: the log's own bound (the adaptive policy's in-flight cap would pace the
    # cold start and the refill).
    limits = RateLimits(
        total=total, per_schedule=per_schedule, window=10.0, guard=0.5, adaptive=False
    )
    if store == "redis":
        require_redis()  # here, not inside the example's own loop
    loop = looptime.new_event_loop(start=0)
    try:
        last = loop.run_until_complete(_last_send(store, limits, keys, rtt))
    finally:
        loop.close()
    cycles = max(math.ceil(len(keys) / total), *(math.ceil(m / per_schedule) for m in counts)) - 1
    assert last == pytest.approx(cycles * (10.0 + 0.5 + rtt))


async def test_cancelling_queued_waiters_of_one_id_cleans_up(limiter: AnyLimiter) -> None:
    """Cancelling most or all waiters of an id shrinks its queue and then drops it entirely."""
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, "z", sends) for _ in range(10)))
    tasks = [asyncio.create_task(limiter.acquire("z", queue_timeout=500)) for _ in range(20)]
    await asyncio.sleep(1)
    for task in tasks[:15]:
        task.cancel()
    await asyncio.gather(*tasks[:15], return_exceptions=True)
    assert limiter.stats().queued == 5
    assert len(limiter._core.queues["z"].heap) == 5  # dead entries compacted away
    for task in tasks[15:]:
        task.cancel()  # all in one loop turn
    await asyncio.gather(*tasks[15:], return_exceptions=True)
    stats = limiter.stats()
    assert (stats.queued, stats.total_used) == (0, 10)
    assert "z" not in limiter._core.queues
    await asyncio.sleep(61)
    assert limiter.stats().schedule_ids == 0


@pytest.mark.parametrize(("total", "per_schedule"), [(60, 1), (2, 1), (1, 10)])
async def test_revoked_grant_goes_to_the_next_waiter(
    make: Make, monkeypatch: pytest.MonkeyPatch, total: int, per_schedule: int
) -> None:
    """A permit whose caller was cancelled before sending goes to the next waiter at once,
    whichever level (the API user's or the scheduleId's) held that waiter."""
    limiter = make(RateLimits(total=total, per_schedule=per_schedule))
    start = _now()
    first = asyncio.create_task(limiter.acquire("a"))
    second = asyncio.create_task(limiter.acquire("a"))
    _cancel_on_grant(limiter, first, monkeypatch)  # after the grant, before ``first`` resumes
    with pytest.raises(asyncio.CancelledError):
        await first
    async with asyncio.timeout(1.0):  # virtual time: without the wake-up it waits forever
        permit = await second
    assert permit.acquired_at == pytest.approx(start, abs=1e-6)  # Redis: whole microseconds
    assert limiter.stats().in_flight == 1
    assert (await _stats(limiter)).total_used == 1  # the revoked permit's entries are gone
    await limiter.aclose()


async def test_one_long_waiter_does_not_hold_what_others_finished(make: Make) -> None:
    """Granted waiters' deadlines and idle ids are forgotten while one waiter waits for long."""
    limits = RateLimits(total=100_000, per_schedule=1, window=1.0, guard=0.0, retry_after_cap=4000)
    limiter = make(limits)
    paused = await limiter.acquire("slow")
    await limiter.release(paused, rate_limited=True, retry_after=3000)  # held for 50 min
    slow = asyncio.create_task(limiter.acquire("slow", queue_timeout=3500))
    for batch in range(4):
        permits = await asyncio.gather(
            *(limiter.acquire(f"id-{batch}-{i}", queue_timeout=3600) for i in range(2000))
        )
        await asyncio.gather(*(limiter.release(permit) for permit in permits))
    await asyncio.sleep(3.0)  # every entry expired; nothing else happens for 50 minutes
    stats = limiter.stats()
    assert (stats.queued, stats.in_flight) == (1, 0)
    assert len(limiter._core.deadlines) <= 2 * stats.queued + 64
    assert stats.schedule_ids <= 1 + 1024
    slow.cancel()
    await limiter.aclose()


async def test_waiter_cancelled_just_before_its_grant_is_skipped(limiter: AnyLimiter) -> None:
    """A waiter cancelled in the same loop turn as its grant is passed over, not granted."""
    task = asyncio.create_task(limiter.acquire("a"))
    await asyncio.sleep(0)  # queued; the dispatcher is due next
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    stats = limiter.stats()
    assert (stats.queued, stats.in_flight, stats.schedule_ids) == (0, 0, 0)


async def test_stale_ready_entries_are_compacted(make: Make) -> None:
    """Re-ranking a busy id many times does not grow the dispatcher's heap without bound."""
    limiter = make(RateLimits(total=1))
    await limiter.acquire("first")
    tasks = []
    for _ in range(100):
        tasks.append(asyncio.create_task(limiter.acquire("busy")))
        await asyncio.sleep(0.001)
    assert len(limiter._core.ready) <= 64
    await limiter.aclose()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_aclose_right_after_queueing_cancels_cleanly(make: Make) -> None:
    """aclose before the dispatcher's first run cancels the pending run and the waiter."""
    limiter = make()
    task = asyncio.create_task(limiter.acquire("a"))
    await asyncio.sleep(0)
    await limiter.aclose()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_fresh_limiter_reports_stats_outside_a_loop() -> None:
    """A limiter never used reports empty stats without an event loop."""
    stats = RateLimiter().stats()
    assert stats == LimiterStats(
        queued=0, in_flight=0, total_used=0, total_limit=60, schedule_ids=0, next_free=0.0
    )


async def test_paused_idle_id_is_dropped_when_its_pause_ends() -> None:
    """An id paused past its last entry stays until the pause ends, then is dropped."""
    limiter = RateLimiter(RateLimits(per_schedule=1, adaptive=False))
    permit = await limiter.acquire("z")
    await limiter.release(permit, rate_limited=True, retry_after=100)
    await asyncio.sleep(70)
    other = await limiter.acquire("other")  # released before the pause ends: a later sweep
    await limiter.release(other)
    assert "z" in limiter._memory.logs
    await asyncio.sleep(40)
    assert "z" not in limiter._memory.logs
    await asyncio.sleep(61)
    assert limiter.stats().schedule_ids == 0
    await limiter.aclose()


async def test_entries_of_one_id_released_apart_keep_it_until_the_last(
    memory_limiter: RateLimiter,
) -> None:
    """An id whose requests were answered at different times lives until the last entry expires."""
    limiter = memory_limiter
    first, second = await limiter.acquire("z"), await limiter.acquire("z")
    await limiter.release(first)
    await asyncio.sleep(5)
    await limiter.release(second)
    await asyncio.sleep(58)  # past the first entry's expiry (61), before the second's (66)
    assert "z" in limiter._memory.logs
    await asyncio.sleep(5)
    assert "z" not in limiter._memory.logs


async def test_429_on_a_full_id_with_waiters_delays_them(limiter: AnyLimiter) -> None:
    """Waiters of an id paused by a 429 wait for the pause, not just for the window."""
    start = _now()
    permits = [await limiter.acquire("z") for _ in range(10)]
    waiter = asyncio.create_task(limiter.acquire("z"))
    await asyncio.sleep(1)
    for permit in permits[:-1]:
        await limiter.release(permit)
    await limiter.release(permits[-1], rate_limited=True, retry_after=100)
    permit = await waiter
    assert permit.acquired_at - start == pytest.approx(101)


async def test_requeued_request_with_deadline_counts_only_higher_priorities(
    limiter: AnyLimiter,
) -> None:
    """A requeued request's forecast ignores the equal-priority waiters it will overtake."""
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(60)))
    waiters = [asyncio.create_task(_send(limiter, f"w-{i}", sends)) for i in range(120)]
    await asyncio.sleep(1)
    with pytest.raises(QueueTimeoutError):
        await limiter.acquire("x", queue_timeout=100)
    permit = await limiter.acquire("x", queue_timeout=100, requeue=True)
    assert permit.acquired_at == pytest.approx(_now(), abs=1e-6)  # Redis: whole microseconds
    await limiter.release(permit)
    await asyncio.gather(*waiters)


async def test_lowered_limit_recovers_while_waiters_queue(make: Make) -> None:
    """With the limit lowered and waiters queued, the one timer also wakes for each increase."""
    limiter = make(RateLimits(total=4, window=10, guard=0))
    # Cold: 1 (ceil(4 / 6)) goes first and is accepted; the other 3 go on its answer, refused.
    await _answer(limiter, [f"a-{i}" for i in range(4)], rejected=range(1, 4))
    start = _now()
    sends: list[tuple[float, str]] = []
    # 2 per window (lowered from 4 to max(1 taken, 4 // 2)) until ten quiet windows passed.
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends, rtt=0) for i in range(40)))
    assert limiter.stats().total_limit == 4
    first = [t - start for t, _ in sends[:3]]
    assert first == pytest.approx([10.0, 10.0, 20.0])
    assert max(t for t, _ in sends) - start < 20 * 10
    await limiter.aclose()


def test_float_queue_compacts_its_head() -> None:
    """The sweep's float FIFO drops its consumed head once it is large."""
    queue = _FloatQueue()
    for i in range(3000):
        queue.append(float(i))
    for i in range(1600):
        assert queue.popleft() == float(i)
    assert len(queue._values) == 1500  # compacted when the head reached half (1,500)
    assert (queue.first(), queue.last(), len(queue)) == (1600.0, 2999.0, 1400)


async def test_cancelled_head_of_a_ready_id_is_skipped(limiter: AnyLimiter) -> None:
    """When the first waiter of an id that may go is cancelled, the next one takes its turn."""
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send(limiter, f"id-{i}", sends) for i in range(60)))
    tasks = [asyncio.create_task(limiter.acquire("z")) for _ in range(3)]
    lonely = asyncio.create_task(limiter.acquire("y"))
    await asyncio.sleep(1)
    tasks[0].cancel()
    lonely.cancel()
    await asyncio.gather(tasks[0], lonely, return_exceptions=True)
    # More waiters for z while it is held by the API user's level, not its own.
    tasks.append(asyncio.create_task(limiter.acquire("z")))
    permits = await asyncio.gather(*tasks[1:])
    assert [p.schedule_id for p in permits] == ["z"] * 3
    assert limiter.stats().queued == 0


async def test_more_waiters_join_an_id_held_by_its_own_log(limiter: AnyLimiter) -> None:
    """Waiters joining an id that its own log holds wait with the others, in order."""
    sends: list[tuple[float, str]] = []
    start = _now()
    first = [asyncio.create_task(_send(limiter, "z", sends)) for _ in range(12)]
    await asyncio.sleep(1)
    later = [asyncio.create_task(_send(limiter, "z", sends)) for _ in range(3)]
    await asyncio.gather(*first, *later)
    assert [(round(t - start, 6), n) for t, n in _bursts(sends)] == [(0.0, 10), (61.1, 5)]


async def test_aclose_skips_waiters_already_gone(limiter: AnyLimiter) -> None:
    """aclose cancels the live waiters and leaves cancelled ones alone."""
    await asyncio.gather(*(limiter.acquire("z") for _ in range(10)))
    tasks = [asyncio.create_task(limiter.acquire("z")) for _ in range(2)]
    await asyncio.sleep(1)
    tasks[1].cancel()
    await asyncio.gather(tasks[1], return_exceptions=True)
    await limiter.aclose()
    with pytest.raises(asyncio.CancelledError):
        await tasks[0]


async def test_deadline_passing_during_a_pending_cancellation_is_ignored(make: Make) -> None:
    """A waiter cancelled in the loop turn its deadline is processed is not failed as well."""
    now = [0.0]
    limiter = make(RateLimits(total=1, adaptive=False), clock=lambda: now[0])
    held = await limiter.acquire("a")
    task = asyncio.create_task(limiter.acquire("b", queue_timeout=100))
    await asyncio.sleep(0.001)
    now[0] = 200.0  # the injected clock jumps past the deadline
    await limiter.release(held)  # schedules the dispatcher ...
    task.cancel()  # ... which runs before the cancelled task resumes
    with pytest.raises(asyncio.CancelledError):
        await task
    assert limiter.stats().queued == 0
    await limiter.aclose()


async def test_sweep_times_stay_ordered_when_a_pause_outlasts_later_entries() -> None:
    """A key held by a long pause is swept after it; keys answered meanwhile wait behind it."""
    limiter = RateLimiter(
        RateLimits(window=10, guard=0, per_schedule=1, retry_after_cap=100, adaptive=False)
    )
    permit = await limiter.acquire("z")
    await limiter.release(permit, rate_limited=True, retry_after=100)
    await asyncio.sleep(20)
    other = await limiter.acquire("other")
    await limiter.release(other)
    await asyncio.sleep(20)
    assert set(limiter._memory.logs) == {"z", "other"}  # "other" waits behind z's sweep time
    await asyncio.sleep(61)
    assert limiter._memory.logs == {}
    await limiter.aclose()


async def test_ids_opening_together_survive_one_of_them_leaving(limiter: AnyLimiter) -> None:
    """Of two ids whose logs open at the same moment, the one whose waiter left is skipped."""
    for key in ("p", "q"):
        for permit in await asyncio.gather(*(limiter.acquire(key) for _ in range(10))):
            await limiter.release(permit)
    start = _now()
    staying = asyncio.create_task(limiter.acquire("p"))
    leaving = asyncio.create_task(limiter.acquire("q"))
    await asyncio.sleep(1)
    leaving.cancel()
    await asyncio.gather(leaving, return_exceptions=True)
    permit = await staying
    assert permit.acquired_at - start == pytest.approx(61)
    assert "q" not in limiter._core.queues


async def test_release_tells_which_level_a_429_was_blamed_on(make: Make) -> None:
    """A 429 whose scheduleId log is full blames that id; else the API user; none: None."""
    limiter = make(RateLimits(total=10, per_schedule=2, adaptive=False))
    assert await limiter.release(await limiter.acquire("SC-1")) is None
    # SC-1 holds 2 of its 2 places when this one is refused: its own level is to blame.
    assert await limiter.release(await limiter.acquire("SC-1"), rate_limited=True) == "schedule"
    # SC-2 holds 1 of 2: the API user's level is to blame.
    assert await limiter.release(await limiter.acquire("SC-2"), rate_limited=True) == "user"


# -- requests with no scheduleId (start): the API user's level only ------------


async def _send_start(
    limiter: AnyLimiter, sends: list[tuple[float, str]], *, priority: int = 0
) -> None:
    """Acquire with no scheduleId, "send" (record the time), wait one RTT, release."""
    permit = await limiter.acquire(None, priority=priority)
    assert permit.schedule_id is None
    sends.append((asyncio.get_running_loop().time(), "start"))
    await asyncio.sleep(RTT)
    await limiter.release(permit)


async def test_starts_are_admitted_at_the_user_limit(make: Make) -> None:
    """Requests with no scheduleId go as the API user's limit allows, whatever per_schedule is."""
    limiter = make(RateLimits(total=5, per_schedule=1, window=10.0, adaptive=False))
    start = _now()
    sends: list[tuple[float, str]] = []
    await asyncio.gather(*(_send_start(limiter, sends) for _ in range(12)))
    assert [(round(t - start, 6), n) for t, n in _bursts(sends)] == [
        (0.0, 5),
        (11.1, 5),
        (22.2, 2),
    ]


async def test_starts_share_the_user_budget_with_per_id_calls(make: Make) -> None:
    """Starts and per-id calls fill one API-user window together: never more than total."""
    limiter = make(RateLimits(total=5, per_schedule=2, window=10.0, adaptive=False))
    start = _now()
    sends: list[tuple[float, str]] = []
    await asyncio.gather(
        *(_send(limiter, f"id-{i}", sends) for i in range(3)),
        *(_send_start(limiter, sends) for _ in range(4)),
    )
    first = [key for t, key in sends if t == start]
    assert len(first) == 5
    assert len(sends) == 7
    assert all(t - start == pytest.approx(11.1) for t, _ in sends if t != start)


async def test_a_full_schedule_id_never_holds_back_a_start(make: Make) -> None:
    """With one scheduleId's log full and its waiters queued, a start goes at once."""
    limiter = make(RateLimits(total=10, per_schedule=2, window=10.0, adaptive=False))
    start = _now()
    sends: list[tuple[float, str]] = []
    busy = [asyncio.create_task(_send(limiter, "busy", sends)) for _ in range(5)]
    await asyncio.sleep(1)
    await _send_start(limiter, sends)
    assert sends[-1] == (start + 1, "start")
    await asyncio.gather(*busy)
    assert not await _has_log(limiter, "None")


async def test_starts_queue_by_priority_with_per_id_calls(make: Make) -> None:
    """A high-priority start goes before earlier low-priority per-id waiters, and back."""
    limiter = make(RateLimits(total=1, window=10.0, adaptive=False))
    permit = await limiter.acquire("first")
    order: list[str] = []

    async def take(key: str | None, priority: int) -> None:
        got = await limiter.acquire(key, priority=priority)
        order.append(str(key))
        await limiter.release(got)

    tasks = [asyncio.create_task(take("low", 0)), asyncio.create_task(take(None, -1))]
    await asyncio.sleep(1)
    tasks.append(asyncio.create_task(take(None, 5)))
    await asyncio.sleep(1)
    await limiter.release(permit)
    await asyncio.gather(*tasks)
    assert order == ["None", "low", "None"]


async def test_start_queue_timeout_and_cancellation(make: Make) -> None:
    """A start fails a short queue_timeout at once, and a cancelled one consumes nothing."""
    limiter = make(RateLimits(total=2, window=10.0, adaptive=False))
    permits = [await limiter.acquire(None), await limiter.acquire("a")]
    with pytest.raises(QueueTimeoutError) as caught:
        await limiter.acquire(None, queue_timeout=1)
    assert caught.value.expected_wait is not None
    assert caught.value.expected_wait > 1
    waiter = asyncio.create_task(limiter.acquire(None))
    await asyncio.sleep(1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    for permit in permits:
        await limiter.release(permit)
    stats = await _stats(limiter)
    assert (stats.queued, stats.in_flight, stats.total_used) == (0, 0, 2)
    assert None not in limiter._core.queues


async def test_429_on_a_start_pauses_the_api_user(make: Make) -> None:
    """A start answered 429 pauses the API user's level (it has no scheduleId to blame)."""
    limiter = make(RateLimits(adaptive=False))
    permit = await limiter.acquire(None)
    released = _now()
    await limiter.release(permit, rate_limited=True, retry_after=7)
    assert await limiter.estimate() == pytest.approx(7)
    back = await limiter.acquire(None, requeue=True)
    assert _now() - released == pytest.approx(7)
    await limiter.release(back)
    assert limiter.stats().rate_limited == 1


async def test_estimate_none_ignores_per_id_limits(make: Make) -> None:
    """estimate(None) is the wait of a request with no per-id constraint."""
    limiter = make(RateLimits(total=10, per_schedule=1, window=10.0, adaptive=False))
    await limiter.release(await limiter.acquire("a"))
    assert await limiter.estimate(None) == 0.0
    assert await limiter.estimate("a") == pytest.approx(10.0 + 1.0)


async def test_queued_starts_are_no_schedule_ids_in_stats(make: Make) -> None:
    """Requests with no scheduleId, in flight or queued, count as no scheduleId in stats."""
    limiter = make(RateLimits(total=1, window=10.0, adaptive=False))
    permit = await limiter.acquire(None)
    waiter = asyncio.create_task(limiter.acquire(None))
    await asyncio.sleep(1)
    stats = limiter.stats()
    assert (stats.queued, stats.schedule_ids) == (1, 0)
    await limiter.release(permit)
    await limiter.release(await waiter)


# -- the server's own word: rate-limit headers, both stores alike --------------


def _said(
    limit: int | None = None,
    remaining: int | None = None,
    reset: float | None = None,
    *,
    retry_after: float | None = None,
) -> RateLimitHeaders:
    """An answer's headers stating one quota (none when nothing is given)."""
    quotas: tuple[StatedQuota, ...] = ()
    if limit is not None or remaining is not None:
        quotas = (StatedQuota(limit=limit, remaining=remaining, reset=reset),)
    return RateLimitHeaders(retry_after=retry_after, quotas=quotas)


async def _starts(limiter: AnyLimiter, ids: list[str]) -> list[float]:
    """Send one request per id (all asked at once, answered after RTT, saying nothing);
    return each grant's time, in order."""
    times: list[float] = []

    async def one(key: str) -> None:
        permit = await limiter.acquire(key)
        times.append(_now())
        await asyncio.sleep(RTT)
        await limiter.release(permit)

    await asyncio.gather(*(one(key) for key in ids))
    return sorted(times)


async def test_a_stated_lower_limit_lowers_the_api_users_level_at_once(make: Make) -> None:
    """An answer saying "40" to a limiter set for 60: the rest of that window holds 40."""
    limiter = make(RateLimits(adaptive=False))
    start = _now()
    await limiter.release_heard(await limiter.acquire("first"), _said(40))
    times = await _starts(limiter, [f"SC-{i}" for i in range(60)])
    assert sum(1 for t in times if t - start < 60.0) == 39  # 40 with the first
    assert min(t for t in times if t - start >= 60.0) == pytest.approx(start + 61.0)
    assert (await _stats(limiter)).total_limit == 40


async def test_a_stated_higher_limit_raises_only_with_the_opt_in(make: Make) -> None:
    """ "100" to a limiter set for 60 changes nothing, unless accept_higher_limits says so."""
    for higher, granted in ((False, 59), (True, 99)):
        limiter = make(RateLimits(adaptive=False, accept_higher_limits=higher))
        start = _now()
        await limiter.release_heard(await limiter.acquire("first"), _said(100))
        times = await _starts(limiter, [f"SC-{i}" for i in range(100)])
        assert sum(1 for t in times if t == start) == granted


async def test_remaining_leaves_foreign_load_its_share(make: Make) -> None:
    """ "60, 12 left" with one of ours answered: 13 of ours per window, recycled as they expire."""
    limiter = make(RateLimits(adaptive=False))
    start = _now()
    await limiter.release_heard(await limiter.acquire("first"), _said(60, 12, 30.0))
    times = await _starts(limiter, [f"SC-{i}" for i in range(30)])
    assert [t - start for t in times[:12]] == [0.0] * 12
    assert times[12] - start == pytest.approx(61.0)  # the first one's place, recycled
    assert times[13] - start == pytest.approx(61.0 + RTT)  # then those of the 12


async def test_a_stale_reading_sends_one_first_then_the_rest(make: Make) -> None:
    """Once the stated reset has passed, one request goes alone; its answer tells the rest."""
    limiter = make(RateLimits(adaptive=False))
    await limiter.release_heard(await limiter.acquire("first"), _said(60, 30, 1.0))
    await asyncio.sleep(100.0)  # reset passed, the reading lapsed, the first entry expired
    probe = asyncio.ensure_future(limiter.acquire("probe"))
    rest = asyncio.ensure_future(_starts(limiter, ["a", "b"]))
    permit = await probe
    await asyncio.sleep(RTT)
    assert not rest.done()
    answered = _now()
    await limiter.release_heard(permit, _said(60, 59, 1.0))
    assert await rest == [answered, answered]


async def test_probe_sends_one_request_first(make: Make) -> None:
    """RateLimits(probe=True): a fresh limiter's first request goes alone; then the answer rules."""
    limiter = make(RateLimits(probe=True, adaptive=False))
    first = asyncio.ensure_future(limiter.acquire("first"))
    rest = asyncio.ensure_future(_starts(limiter, [f"SC-{i}" for i in range(20)]))
    permit = await first
    await asyncio.sleep(RTT)
    assert not rest.done()
    answered = _now()
    await limiter.release_heard(permit, _said(40, 9, 5.0))
    times = await rest
    assert times[:9] == [answered] * 9
    assert times[9] > answered + 60.0


async def test_a_429_naming_the_schedule_limit_pauses_only_that_id(make: Make) -> None:
    """The stated limit says which level refused, whatever our own logs hold."""
    limiter = make(RateLimits(adaptive=False))
    permit = await limiter.acquire("hot")
    level = await limiter.release_heard(permit, _said(10, 0, 7.0), rate_limited=True)
    assert level == "schedule"
    start = _now()
    await limiter.acquire("other")
    assert _now() == start
    await limiter.acquire("hot")
    assert _now() - start == pytest.approx(7.0)  # the exhausted quota's reset
    permit = await limiter.acquire("third")
    level = await limiter.release_heard(
        permit, _said(60, 0, 3.0, retry_after=5.0), rate_limited=True
    )
    assert level == "user"
    start = _now()
    await limiter.acquire("fourth")
    assert _now() - start == pytest.approx(5.0)  # Retry-After takes precedence


async def test_a_limiter_without_release_heard_still_works(make: Make) -> None:
    """The client's call: release_heard when the limiter has it, release otherwise."""
    limiter = make(RateLimits(adaptive=False))
    assert isinstance(limiter, Limiter)
    assert callable(getattr(limiter, "release_heard", None))
