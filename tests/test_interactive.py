"""Interactive calls never wait behind a bulk job (issue 13).

Background calls (priority < 0: bulk jobs) leave ``interactive_reserve``
places of the API user's window free, and one more place freeing per interval
for the next intervals (the envelope of ``_background``): a call of priority 0
or more finds a place at once, or when the next entry stops counting, about
one request interval later. A job on a quiet budget bursts through its first
window, then goes one per interval. Checked pure (the store's rule), on the limiter, and
end to end at the real limits on looptime's virtual clock, in process and
through Redis with the bulk job and the interactive caller on two limiters
that share nothing but Redis.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import statistics
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from schedcancel import RateLimiter, RateLimits, ScheduleClient
from schedcancel._limiting.limiter import QueuedLimiter
from schedcancel._limiting.stores import MemoryStore
from schedcancel.testing import Faults, MockScheduleServer, ServerLimits

W, N, K, GUARD = 60.0, 60, 10, 1.0
HOLD = W + GUARD
LATENCY = (0.005, 0.02)  # seconds each way: a round trip is at most 0.04 s
RTT = 2 * LATENCY[1]

# -- the store's rule, pure ---------------------------------------------------------


def _fill(store: MemoryStore, n: int, now: float, *, background: bool) -> None:
    """Grant and answer ``n`` calls at ``now`` (distinct ids)."""
    keys = [f"{'B' if background else 'I'}-{now}-{i}" for i in range(n)]
    answer = store.acquire(keys, [background] * n, now)
    for key, handle in zip(keys, answer.handles, strict=True):
        assert handle is not None
        store.release_now(key, handle, now, False, None)


def test_a_quiet_budget_takes_a_burst_then_the_reserve_holds() -> None:
    """On an empty log background calls burst up to N - R - D (D = depth); the next one waits
    for a release; a call at priority 0 still finds the reserve at once.

    (Until issue 24 the second background call waited one interval: jobs were paced
    from the first call.)
    """
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace the
    # cold start and the refill).
    store = MemoryStore(
        RateLimits(total=4, window=10.0, guard=0.0, interactive_reserve=1, adaptive=False)
    )
    answer = store.acquire(["a", "b", "c"], [True, True, True], 0.0)
    assert [h is not None for h in answer.handles] == [True, True]  # 4 - 1 - depth 1
    assert answer.background_wait == math.inf  # only a release can tell
    answer = store.acquire(["d"], [False], 0.0)
    assert all(h is not None for h in answer.handles)


def test_background_calls_leave_the_reserve_and_one_place_per_interval() -> None:
    """Answered background entries: the next background call waits until, once it goes, the
    reserve is free and a place frees within an interval; with the reserve taken by an
    interactive call, it waits for a place to free."""
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace the
    # cold start and the refill).
    store = MemoryStore(
        RateLimits(total=4, window=10.0, guard=0.0, interactive_reserve=1, adaptive=False)
    )
    _fill(store, 2, 0.0, background=True)  # both count until 10
    assert store.background_at(0.0) == pytest.approx(10.0 - 10.0 / 3)  # one interval before
    _fill(store, 1, 6.0, background=False)  # the reserve, taken by an interactive call
    assert store.background_at(6.0) == pytest.approx(10.0)
    assert store.stats(6.0, ()).background_next_free == pytest.approx(4.0)


def test_a_burst_lasts_one_window_then_one_per_interval() -> None:
    """A background call after the burst's window goes one interval after the last one."""
    store = MemoryStore(RateLimits(total=10, window=10.0, guard=0.0, interactive_reserve=1))
    _fill(store, 1, 0.0, background=True)  # starts a burst at 0 (the log was empty)
    _fill(store, 1, 9.0, background=True)
    assert store.background_at(9.5) == 9.5  # within the window: no pace
    _fill(store, 1, 10.5, background=True)
    assert store.background_at(10.5) == pytest.approx(10.5 + 10.0 / 9)


@pytest.mark.parametrize(("reserve", "total"), [(5, 2)])
def test_the_reserve_is_at_most_all_but_one(reserve: int, total: int) -> None:
    """A reserve as large as the limit still leaves one place to background calls."""
    store = MemoryStore(RateLimits(total=total, interactive_reserve=reserve))
    assert store.background_at(0.0) == 0.0
    _fill(store, 1, 0.0, background=True)
    assert store.background_at(0.0) == pytest.approx(HOLD)  # the one place frees then


def test_no_reserve_changes_nothing() -> None:
    """With ``interactive_reserve=0`` background calls burst like the others."""
    store = MemoryStore(RateLimits(total=3, interactive_reserve=0))
    answer = store.acquire(["a", "b", "c"], [True] * 3, 0.0)
    assert all(h is not None for h in answer.handles)
    assert (answer.background_wait, store.background_at(0.0)) == (0.0, 0.0)


def test_a_release_says_what_it_holds_by_name() -> None:
    """A release returns ``Holds``: named pauses per level and the level a 429 hit."""
    store = MemoryStore(RateLimits(total=2, per_schedule=1, window=10.0, guard=0.0))
    (handle,) = store.acquire(["a"], [False], 0.0).handles
    assert store.release_now("a", handle, 1.0, False, None) == (0.0, 0.0, None)
    (handle,) = store.acquire(["b"], [False], 20.0).handles
    # b's own log is full (1 of 1): the 429 is blamed on the scheduleId, for Retry-After.
    holds = store.release_now("b", handle, 21.0, True, 3.0)
    assert (holds.user, holds.key, holds.level) == (0.0, 3.0, "schedule")
    (handle,) = store.acquire([None], [False], 40.0).handles
    holds = store.release_now(None, handle, 41.0, True, None)
    assert (holds.user, holds.key, holds.level) == (10.0, 0.0, "user")


# -- on the limiter, virtual time ---------------------------------------------------------


@pytest.fixture(name="make")
async def _make() -> AsyncIterator[Callable[[RateLimits], RateLimiter]]:
    made: list[RateLimiter] = []

    def make(limits: RateLimits) -> RateLimiter:
        made.append(RateLimiter(limits))
        return made[-1]

    yield make
    for limiter in made:
        await limiter.aclose()


async def _call(limiter: QueuedLimiter, key: str, priority: int, rtt: float = 0.1) -> float:
    """Acquire, hold for one round trip, release; return the wait for the permit."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    permit = await limiter.acquire(key, priority=priority)
    waited = loop.time() - start
    await asyncio.sleep(rtt)
    await limiter.release(permit)
    return waited


@pytest.mark.looptime
async def test_an_interactive_call_goes_at_once_beside_a_background_job(
    make: Callable[[RateLimits], RateLimiter],
) -> None:
    """A bulk job at -1 keeps one place free: a call at 0 gets it at once, mid-job."""
    limiter = make(RateLimits(total=10, per_schedule=10, window=10.0, guard=0.0))
    job = asyncio.gather(*(_call(limiter, f"B-{i}", -1) for i in range(40)))
    await asyncio.sleep(25.0)
    assert await _call(limiter, "I-1", 0) == 0.0
    # A second one in the same window finds the reserve taken: it waits for the next
    # background entry to stop counting, at most one interval (10 s / 9) later.
    assert 0.0 < await _call(limiter, "I-2", 0) <= 10.0 / 9 + 0.1
    waits = await job
    assert max(waits) > 10.0  # the job did wait: it is paced


@pytest.mark.looptime
async def test_a_background_job_alone_bursts_then_is_paced_over_its_share(
    make: Callable[[RateLimits], RateLimiter],
) -> None:
    """Alone, a background job sends N - R - D at once, the rest of its first window as places
    free in time for the envelope, then one per hold / (N - R); never more than N - R a window.

    (Until issue 24: one per interval from the first call, 32.2 s for these 30 as now,
    but a job of 5 took 4.4 s where it now takes none.)
    """
    limiter = make(RateLimits(total=10, per_schedule=10, window=10.0, guard=0.0))
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent: list[float] = []

    async def send(i: int) -> None:
        permit = await limiter.acquire(f"B-{i}", priority=-1)
        sent.append(loop.time() - start)
        await limiter.release(permit)

    await asyncio.gather(*(send(i) for i in range(30)))
    interval = 10.0 / 9
    assert sent[:5] == [0.0] * 5  # 10 - reserve 1 - depth 4
    # Each of the next four as late as the envelope allows: 4, 3, 2, 1 intervals before 10.
    assert sent[5:9] == pytest.approx([10.0 - k * interval for k in (4, 3, 2, 1)], abs=1e-5)
    # looptime's microsecond grid adds up to a microsecond a step.
    assert sent[9:] == pytest.approx([10.0 + k * interval for k in range(21)], abs=1e-4)
    assert max(sum(1 for t in sent if s <= t < s + 10.0) for s in sent) == 9


@pytest.mark.looptime
async def test_background_deadlines_fail_at_once_against_the_envelope(
    make: Callable[[RateLimits], RateLimiter],
) -> None:
    """A background call whose queue_timeout ends before its turn fails when it is known."""
    limiter = make(RateLimits(total=10, per_schedule=10, window=10.0, guard=0.0))
    for i in range(5):  # the burst, answered at once: they count until 10
        await limiter.release(await limiter.acquire(f"B-{i}", priority=-1))
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(Exception, match="queue_timeout") as caught:
        await limiter.acquire("B-5", priority=-1, queue_timeout=0.5)
    assert loop.time() - start <= 0.001
    expected = 10.0 - 4 * 10.0 / 9  # four intervals before the burst frees
    assert caught.value.expected_wait == pytest.approx(expected)  # type: ignore[attr-defined]


# -- end to end, at the real limits ----------------------------------------------------------


async def _interactive_caller(
    call: Callable[[str], Awaitable[object]],
    done: asyncio.Future[Any],
    rng: random.Random,
    mean_gap: float,
) -> list[tuple[str, float]]:
    """Call at random times (exponential gaps) until ``done``; return (id, start) of each."""
    loop = asyncio.get_running_loop()
    started: list[tuple[str, float]] = []
    while True:
        await asyncio.wait({done}, timeout=rng.expovariate(1 / mean_gap))
        if done.done():
            return started
        schedule_id = f"I-{len(started):04d}"
        started.append((schedule_id, loop.time()))
        await call(schedule_id)


def _report(
    server: MockScheduleServer, started: list[tuple[str, float]], bulk: int
) -> tuple[list[float], float, float]:
    """Interactive waits (start to arrival), the bulk makespan, and its lower bound."""
    recorder = server.recorder
    arrival = {a.schedule_id: a.time for a in recorder.select(foreign=False)}
    waits = [arrival[i] - t for i, t in started]
    bulk_times = [a.time for a in recorder.select(foreign=False) if str(a.schedule_id)[0] == "B"]
    makespan = max(bulk_times) - min(bulk_times)
    # Every request, interactive ones too, takes a place: ceil(M / N) - 1 cycles at best.
    bound = (math.ceil((bulk + len(started)) / N) - 1) * (HOLD + RTT)
    return waits, makespan, bound


def _assert_responsive(
    server: MockScheduleServer, waits: list[float], makespan: float, bound: float
) -> None:
    p99 = statistics.quantiles(waits, n=100)[98] if len(waits) > 1 else max(waits)
    assert p99 <= W / N + RTT, (p99, waits)
    assert makespan <= 1.05 * bound, (makespan, bound)
    assert server.recorder.count_rate_limited() == 0
    assert server.recorder.max_arrivals_in_window(W) <= N


def _rng() -> random.Random:
    return random.Random(13)  # noqa: S311 - arrival times, not secrets


def _server() -> MockScheduleServer:
    faults = Faults(request_latency=LATENCY, response_latency=LATENCY, seed=5)
    limits = ServerLimits(total=N, per_schedule=K, window=W)
    return MockScheduleServer(limits=limits, faults=faults, unknown_ids="active")


@pytest.mark.scale
@pytest.mark.looptime
async def test_at_the_real_limits_interactive_calls_wait_at_most_one_interval() -> None:
    """6,000 bulk ids, calls at random times: p99 wait <= W/N + RTT, bulk <= 1.05 x bound, no 429.

    Measured (seed 13): 115 calls, waits p50 13 ms, p90 19 ms (the request's own
    latency), p99 0.60 s, max 0.71 s; the job 6,324.9 s against a bound of
    6,165.0 s (1.026); 0 x 429; through Redis (below) the very same (issue 24's
    policy; before it: p99 0.48 s, max 0.57 s, 1.026, and 0.33 s at p99 through Redis).
    """
    bulk = 6000
    async with _server() as server, server.client(limits=RateLimits()) as client:
        job = asyncio.ensure_future(_run_job(client, bulk))
        started = await _interactive_caller(client.cancel, job, _rng(), W)
        await job
    waits, makespan, bound = _report(server, started, bulk)
    assert len(started) > 50
    _assert_responsive(server, waits, makespan, bound)


async def _run_job(client: ScheduleClient, count: int) -> object:
    """A bulk job at the default (background) priority."""
    outcomes = [o async for o in client.cancel_many(f"B-{i:05d}" for i in range(count))]
    assert all(o.ok for o in outcomes)
    return len(outcomes)


@pytest.mark.scale
@pytest.mark.redis
@pytest.mark.looptime
async def test_through_redis_a_job_and_a_caller_on_two_limiters(
    virtual_redis: tuple[Any, str],
) -> None:
    """The same through Redis, the job and the caller on two limiters that share only Redis.

    (Two processes would do the same; in one they share looptime's virtual clock.)
    """
    from schedcancel.redis import RedisLimiter  # noqa: PLC0415 - the redis extra

    loop = asyncio.get_running_loop()
    redis, prefix = virtual_redis

    def limiter() -> RedisLimiter:
        return RedisLimiter(
            redis, username="u", key_prefix=prefix, clock=loop.time, jitter=0, timeout=3600
        )

    bulk = 6000
    job_limiter, caller_limiter = limiter(), limiter()
    try:
        async with _server() as server:
            kwargs = server.client_kwargs()
            async with (
                ScheduleClient(**kwargs, limiter=job_limiter) as job_client,
                ScheduleClient(**kwargs, limiter=caller_limiter) as caller,
            ):
                job = asyncio.ensure_future(_run_job(job_client, bulk))
                started = await _interactive_caller(caller.cancel, job, _rng(), W)
                await job
    finally:
        for made in (job_limiter, caller_limiter):
            await made.aclose()
    waits, makespan, bound = _report(server, started, bulk)
    assert len(started) > 50
    _assert_responsive(server, waits, makespan, bound)


@pytest.mark.redis
@pytest.mark.slow
async def test_two_processes_in_real_time_a_cli_job_and_a_caller(tmp_path: Path) -> None:
    """Real processes, real time: ``schedcancel cancel --redis`` beside a caller in this one.

    At a small scale (10 per 2 s, so a request interval is 0.2 s): 80 bulk ids from
    the CLI (priority -1, its default), calls here at random about once a second.
    Each call waits at most about one interval, hold / (N - R) = 0.23 s; allowed: that
    plus 0.1 s for scheduling on a busy machine. No 429. Measured: 25 calls, waits
    6 ms at the median (the request's own latency), 45 ms at most.

    (At 40 ids, to save 11 s, one loaded CI run saw a call wait 0.39 s; it stays at 80,
    the size at which every earlier run passed.)
    """
    redis_asyncio = pytest.importorskip("redis.asyncio")
    from schedcancel.redis import RedisLimiter  # noqa: PLC0415 - the redis extra

    redis = redis_asyncio.Redis(host="127.0.0.1", port=6379)
    try:
        await redis.ping()
    except OSError:
        pytest.skip("no Redis server on 127.0.0.1:6379")
    # A user of its own: the CLI keeps its keys under the default prefix, by the username.
    user = f"sctest-{uuid.uuid4().hex[:12]}"
    limits = RateLimits(total=10, per_schedule=10, window=2.0, guard=0.05)
    faults = Faults(request_latency=(0.001, 0.005), response_latency=(0.001, 0.005), seed=3)
    server_limits = ServerLimits(total=10, per_schedule=10, window=2.0)
    bulk = [f"B-{i:03d}" for i in range(80)]
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(bulk) + "\n", encoding="utf-8")
    async with MockScheduleServer(
        users={user: "pw"}, limits=server_limits, faults=faults, unknown_ids="active"
    ) as server:
        kwargs = server.client_kwargs()
        env = {
            **os.environ,
            "SCHEDCANCEL_API_KEY": kwargs["api_key"],
            "SCHEDCANCEL_USERNAME": user,
            "SCHEDCANCEL_PASSWORD": "pw",
            "SCHEDCANCEL_BASE_URL": kwargs["base_url"],
        }
        limiter = RedisLimiter(redis, username=user, limits=limits)
        job = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "schedcancel", "cancel", "--from", str(ids_file), "-q"),
            *("--total", "10", "--per-schedule", "10", "--window", "2", "--guard", "0.05"),
            *("--no-progress", "--redis", "redis://127.0.0.1:6379/0"),
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with ScheduleClient(**kwargs, limiter=limiter) as caller:
                exited = asyncio.ensure_future(job.wait())
                started = await _interactive_caller(caller.cancel, exited, _rng(), 1.0)
            stderr = await job.stderr.read() if job.stderr else b""
            assert job.returncode == 0, stderr.decode()
        finally:
            await limiter.aclose()
            keys = [
                key
                async for key in redis.scan_iter(match=f"{{schedcancel:{limiter._user_hash}}}:*")
            ]
            if keys:
                await redis.delete(*keys)
            await redis.aclose()
    arrival = {a.schedule_id: a.time for a in server.recorder.select()}
    waits = [arrival[i] - t for i, t in started]
    assert len(started) >= 5
    assert max(waits) <= 2.05 / 9 + 0.1, waits
    assert server.recorder.count_rate_limited() == 0
    assert server.recorder.max_arrivals_in_window(2.0) <= 10
