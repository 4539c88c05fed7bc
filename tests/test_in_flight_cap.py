"""The adaptive policy's rule 4: a cold start and a refill keep a sixth of the limit in flight.

One table of cases runs against the memory store's rule and against the Lua helper the
Redis scripts use (``tests/lua/cap.lua``, assembled after ``lua/helpers.lua``); then the
behaviour, on looptime's virtual clock, against both stores, and across two processes
sharing Redis.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple, cast

import pytest
from schedcancel import Permit, RateLimits
from schedcancel._limiting.adaptive import in_flight_cap
from schedcancel._limiting.redis_scripts import assemble
from schedcancel._limiting.stores import MemoryStore
from schedcancel.redis import RedisLimiter

from support.limiters import STORES, AnyLimiter, Make, limiters
from support.redis import fresh_prefix, local_redis, virtual_clock

CAP_LUA = Path(__file__).resolve().parent / "lua" / "cap.lua"
NOW, WINDOW, GUARD = 1000.0, 60.0, 1.0
HOLD = WINDOW + GUARD


class Cap(NamedTuple):
    """``tests/lua/cap.lua``'s ARGV, in order (its header lists the same names)."""

    now: int
    limit: int
    window: int
    hold: int
    times: str


# (name, limit, acceptance times, the cap at NOW: None for none)
CASES: list[tuple[str, int, list[float], int | None]] = [
    ("cold: nothing accepted yet", 60, [], 10),
    ("warm, every place still counting", 60, [NOW - 1.0], None),
    ("refilling: a place stopped counting just now", 60, [NOW - HOLD], 10),
    ("refilling: it stopped counting almost a window ago", 60, [NOW - WINDOW - HOLD + 0.5], 10),
    ("a window ago exactly: not refilling", 60, [NOW - WINDOW - HOLD], None),
    ("refilling among warm acceptances", 60, [NOW - 70.0, NOW - 30.0, NOW - 1.0], 10),
    ("three holds of silence: cold again", 60, [NOW - 3 * HOLD], 10),
    ("last acceptance just inside three holds: warm", 60, [NOW - 3 * HOLD + 0.5], None),
    ("a sixth, rounded up", 7, [], 2),
    ("a limit of one", 1, [], 1),
    ("a limit of 100", 100, [NOW - HOLD], 17),
]
CASE_IDS = [c[0] for c in CASES]


@pytest.mark.parametrize(("limit", "share"), [(1, 1), (6, 1), (7, 2), (60, 10), (100, 17)])
def test_the_cap_is_a_sixth_of_the_limit_rounded_up(limit: int, share: int) -> None:
    assert in_flight_cap(limit) == share


@pytest.mark.parametrize(("name", "limit", "times", "cap"), CASES, ids=CASE_IDS)
def test_memory_store_follows_the_table(
    name: str, limit: int, times: list[float], cap: int | None
) -> None:
    """The memory store's cap at NOW for its remembered acceptances."""
    store = MemoryStore(RateLimits(total=limit, per_schedule=1, window=WINDOW, guard=GUARD))
    for at in times:
        store.accepted.append(at)
    assert store._in_flight_cap(NOW) == (math.inf if cap is None else cap), name


@pytest.mark.redis
@pytest.mark.parametrize(("name", "limit", "times", "cap"), CASES, ids=CASE_IDS)
async def test_lua_follows_the_table(
    name: str, limit: int, times: list[float], cap: int | None
) -> None:
    """The Redis scripts' cap (microseconds) gives the same table."""
    us = 1_000_000
    async with local_redis() as redis:
        script = redis.register_script(assemble(CAP_LUA.read_text(encoding="utf-8")))
        key = f"{{sctest-cap-{uuid.uuid4().hex[:12]}}}:accepted"
        argv = Cap(
            round(NOW * us),
            limit,
            round(WINDOW * us),
            round(HOLD * us),
            ",".join(str(round(t * us)) for t in times),
        )
        got = cast(int, await script(keys=[key], args=list(argv)))
    assert got == (-1 if cap is None else cap), name


def test_the_cap_is_off_the_moment_the_policy_goes_smooth() -> None:
    """Smooth pacing has no cap, also while a refill's cap is cached (the script's rule too)."""
    store = MemoryStore(RateLimits(total=60, per_schedule=1, window=WINDOW, guard=GUARD))
    for _ in range(60):
        store.accepted.append(NOW - HOLD)  # a full window, whose places free now
    assert store._in_flight_cap(NOW) == 10
    store._judge(NOW)  # the server took a full window: the burst was the problem
    assert store.total_policy.mode == "smooth"
    assert store._in_flight_cap(NOW) == math.inf


@pytest.fixture(name="make", params=STORES)
async def _make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    async with limiters(request.param) as make:
        yield make


def _now() -> float:
    return asyncio.get_running_loop().time()


async def _queue(
    limiter: AnyLimiter, keys: list[str], granted: list[float]
) -> list[asyncio.Task[Permit]]:
    """Ask for a permit per key; note when each is granted."""

    async def take(key: str) -> Permit:
        permit = await limiter.acquire(key)
        granted.append(_now())
        return permit

    return [asyncio.create_task(take(key)) for key in keys]


def _granted(tasks: list[asyncio.Task[Permit]]) -> list[Permit]:
    return [t.result() for t in tasks if t.done()]


@pytest.mark.looptime
async def test_a_cold_limiter_sends_a_sixth_then_the_rest_on_the_first_answer(make: Make) -> None:
    """Nothing answered yet: 10 of 30 go at once; the first acceptance lets the other 20 go."""
    limiter = make()
    start = _now()
    granted: list[float] = []
    tasks = await _queue(limiter, [f"id-{i}" for i in range(30)], granted)
    await asyncio.sleep(1)
    assert granted == [start] * 10
    await limiter.release(_granted(tasks)[0])
    await asyncio.sleep(1)
    assert granted == [start] * 10 + [start + 1] * 20
    for permit in _granted(tasks)[1:]:
        await limiter.release(permit)


@pytest.mark.looptime
async def test_a_refill_keeps_a_sixth_in_flight_until_answers_come(make: Make) -> None:
    """A window's places freed at once refill ten in flight at a time, one per answer.

    A counter-type server still weighs the last window's burst and refuses part of the
    refill: the cap keeps what is sent before its first 429 returns to ten.
    """
    limiter = make()
    start = _now()
    first = await limiter.acquire("warm")
    await limiter.release(first)  # an acceptance: no longer cold
    burst = [await limiter.acquire(f"a-{i}") for i in range(59)]
    await asyncio.sleep(0.1)
    for permit in burst:
        await limiter.release(permit)  # all answered at start + 0.1
    granted: list[float] = []
    tasks = await _queue(limiter, [f"b-{i}" for i in range(30)], granted)
    await asyncio.sleep(HOLD + 0.5)  # within the cap's lapse (1 s) of those grants
    # start + HOLD: "warm"'s place; start + 0.1 + HOLD: nine more, then the cap holds.
    assert granted == pytest.approx([start + HOLD] + [start + 0.1 + HOLD] * 9)
    now = _now()
    await limiter.release(_granted(tasks)[0])
    await asyncio.sleep(0.3)
    assert granted[10:] == [now]  # one answer, one more request
    for task in tasks[1:]:
        await limiter.release(await task)
    assert len(granted) == 30


@pytest.mark.looptime
async def test_a_request_unanswered_past_the_lapse_no_longer_holds_the_cap(make: Make) -> None:
    """A caller that holds its permits (or a slow server, or a crashed process) does not hold
    the cap for ever: after the guard (1 s here) the unanswered ten count no more.

    The memory store wakes at that moment; the Redis store sees it at its next poll (0.6 s).
    """
    limiter = make()
    start = _now()
    granted: list[float] = []
    tasks = await _queue(limiter, [f"id-{i}" for i in range(11)], granted)
    await asyncio.sleep(5)
    assert granted[:10] == [start] * 10
    assert start + 1.0 <= granted[10] <= start + 1.0 + 0.6
    for task in tasks:
        await limiter.release(task.result())


@pytest.mark.looptime
async def test_smooth_mode_has_no_cap(make: Make) -> None:
    """Smooth pacing already spreads the sends: a cold start goes at the pace, uncapped."""
    limiter = make(RateLimits(total=60, window=6.0, guard=0.0, mode="smooth", slack=0.0))
    granted: list[float] = []
    tasks = await _queue(limiter, [f"id-{i}" for i in range(20)], granted)
    await asyncio.sleep(3)
    assert len(granted) == 20  # one per 0.1 s, none answered
    for task in tasks:
        await limiter.release(task.result())


@pytest.mark.redis
@pytest.mark.looptime
async def test_another_processes_answer_frees_a_capped_place_by_the_next_poll() -> None:
    """A capped round of one process waits for a release it cannot hear: it asks again each
    poll (window / 100), so another process's answer lets it go within one."""
    async with local_redis() as client, fresh_prefix(client) as prefix:
        one, other = (
            RedisLimiter(client, username="u", key_prefix=prefix, clock=virtual_clock(), jitter=0)
            for _ in range(2)
        )
        try:
            held = [await one.acquire(f"one-{i}") for i in range(10)]  # cold: the cap is full
            waiter = asyncio.ensure_future(other.acquire("other"))
            await asyncio.sleep(0.5)  # within the cap's lapse (1 s): the ten count
            assert not waiter.done()
            released = _now()
            await one.release(held[0])
            permit = await waiter
            assert 0 < _now() - released <= 0.6  # the poll: max(0.01, 60 / 100)
            await other.release(permit)
            for permit in held[1:]:
                await one.release(permit)
        finally:
            await one.aclose()
            await other.aclose()
