"""The background policy: one table of cases, run against ``_background`` and the Lua script.

Each case is a sequence of events on a fresh state, with the level's settings
``(limit, reserve, hold, window)``: ``("at", now, in_flight, expiries)`` with
the moment a background call may go (``inf``: only a release can tell), or
``("sent", now, empty)`` with the state ``(last_sent, burst_start)`` after it.
The Redis half runs the same events through ``tests/lua/background.lua`` (the
policy alone, assembled after the package's ``lua/helpers.lua`` like every
script; it is not shipped) on a real Redis server, so the two implementations
cannot drift apart unnoticed.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator
from typing import cast

import pytest
import redis.asyncio as aioredis
from schedcancel._limiting.background import BackgroundState, depth, envelope_at, interval
from schedcancel._limiting.redis_scripts import assemble

from support.redis import BACKGROUND_LUA, Background, local_redis

INF = math.inf
STEP = 11.0 / 9  # hold 11 s over limit 10 - reserve 1
NEVER = -INF

Event = tuple[object, ...]
Settings = tuple[int, int, float, float]
Case = tuple[str, Settings, list[tuple[Event, object]]]

REAL = (10, 1, 11.0, 10.0)  # depth 4, an interval of 11/9 s

CASES: list[Case] = [
    (
        "an empty log: a burst starts at once, and the state says when",
        REAL,
        [
            (("at", 0.0, 0, []), 0.0),
            (("sent", 0.0, True), (0.0, 0.0)),
        ],
    ),
    (
        "in a burst, the envelope alone decides: limit - R - D may be in flight",
        REAL,
        [
            (("sent", 0.0, True), (0.0, 0.0)),
            (("at", 0.0, 4, []), 0.0),
            (("at", 0.0, 5, []), INF),
        ],
    ),
    (
        "the rest of the burst's window waits until places free in time for the envelope",
        REAL,
        [
            (("sent", 0.0, True), (0.0, 0.0)),
            # Five answered at 0.1: they free at 11.1; the 6th call must see one
            # of them free within 4 intervals.
            (("at", 0.5, 0, [11.1] * 5), 11.1 - 4 * STEP),
            (("at", 0.5, 1, [11.1] * 5), 11.1 - 3 * STEP),
            (("at", 0.5, 3, [11.1] * 5), 11.1 - STEP),
        ],
    ),
    (
        "after the burst's window, one per interval since the last background call",
        REAL,
        [
            (("sent", 0.0, True), (0.0, 0.0)),
            (("sent", 10.5, False), (10.5, 0.0)),
            (("at", 10.5, 1, [11.1]), 10.5 + STEP),
            (("at", 20.0, 1, [21.0]), 20.0),
        ],
    ),
    (
        "within the burst's window no pace; a later moment it names is paced",
        REAL,
        [
            (("sent", 0.0, True), (0.0, 0.0)),
            (("sent", 9.9, False), (9.9, 0.0)),
            # The envelope says 11.1 - 4 intervals = 6.2: within the window, no pace.
            (("at", 5.0, 0, [11.1] * 5), 11.1 - 4 * STEP),
            # Eight counting until 12: it names 12 - STEP = 10.8, after the window: paced.
            (("at", 5.0, 0, [12.0] * 8), 9.9 + STEP),
        ],
    ),
    (
        "the reserve stays free: the envelope looks D intervals ahead",
        REAL,
        [
            (("sent", 0.0, True), (0.0, 0.0)),
            (
                ("at", 12.0, 0, [20.0, 20.5, 21.0, 21.5, 22.0, 22.5, 23.0, 23.5]),
                20.0 - STEP,
            ),
            # Nine counting: the reserve itself waits for the first to free.
            (("at", 12.0, 0, [20.0, 20.5, 21.0, 21.5, 22.0, 22.5, 23.0, 23.5, 24.0]), 20.0),
        ],
    ),
    (
        "an in-flight request does not free within the envelope",
        REAL,
        [
            (("at", 12.0, 8, []), INF),
            (("at", 12.0, 4, [30.0, 31.0, 32.0, 33.0]), 30.0 - STEP),
            (("at", 12.0, 5, [30.0, 31.0, 32.0, 33.0]), INF),
        ],
    ),
    (
        "no reserve: no rule, background calls burst",
        (10, 0, 11.0, 10.0),
        [(("at", 5.0, 9, [6.0]), 5.0)],
    ),
    (
        "a reserve as large as the limit still leaves one place",
        (2, 5, 11.0, 10.0),
        [
            (("at", 0.0, 1, []), INF),
            (("at", 0.0, 0, [5.0]), 5.0),
            (("sent", 5.0, False), (5.0, NEVER)),
            (("at", 5.0, 0, [16.0]), 16.0),
        ],
    ),
    (
        "a lowered limit: a shallower envelope, a longer interval",
        (6, 1, 11.0, 10.0),
        [
            (("sent", 0.0, False), (0.0, NEVER)),
            # Depth 2, an interval of 11/5 s: the envelope says 5.0 - 2 intervals = 0.6,
            # the pace 0 + 2.2.
            (("at", 1.0, 0, [5.0, 6.0, 7.0]), 11.0 / 5),
        ],
    ),
]


def _python(settings: Settings, events: list[tuple[Event, object]]) -> list[object]:
    limit, reserve, hold, window = settings
    state = BackgroundState()
    seen: list[object] = []
    for event, _ in events:
        kind, now, *args = event
        assert isinstance(now, float)
        if kind == "at":
            in_flight, expiries = cast(int, args[0]), cast("list[float]", args[1])
            seen.append(
                state.at(
                    now,
                    limit=limit,
                    reserve=reserve,
                    hold=hold,
                    window=window,
                    in_flight=in_flight,
                    expiries=expiries,
                )
            )
        else:
            state.sent(now, empty=cast(bool, args[0]))
            seen.append((state.last_sent, state.burst_start))
    return seen


def _flat(values: list[object]) -> list[float]:
    flat: list[float] = []
    for value in values:
        flat += (
            cast("tuple[float, ...]", value) if isinstance(value, tuple) else [cast(float, value)]
        )
    return flat


def _close(seen: list[object], expected: list[object]) -> bool:
    return _flat(seen) == pytest.approx(_flat(expected), abs=2e-6)


@pytest.mark.parametrize(("name", "settings", "events"), CASES, ids=[c[0] for c in CASES])
def test_python_policy_follows_the_table(
    name: str, settings: Settings, events: list[tuple[Event, object]]
) -> None:
    """The in-process policy gives the table's moment or state at every step."""
    assert _close(_python(settings, events), [expected for _, expected in events]), name


@pytest.fixture(name="redis")
async def _redis() -> AsyncIterator[aioredis.Redis]:
    async with local_redis() as client:
        yield client


US = 1_000_000


def _us(value: float) -> int:
    return round(value * US)


def _seconds(value: int) -> float:
    return -INF if value == -1 else value / US


@pytest.mark.redis
@pytest.mark.parametrize(("name", "settings", "events"), CASES, ids=[c[0] for c in CASES])
async def test_lua_policy_follows_the_table(
    redis: aioredis.Redis, name: str, settings: Settings, events: list[tuple[Event, object]]
) -> None:
    """The script's policy gives the same table, step for step (times in microseconds)."""
    limit, reserve, hold, window = settings
    script = redis.register_script(assemble(BACKGROUND_LUA.read_text(encoding="utf-8")))
    key = f"{{sctest-bg-{uuid.uuid4().hex[:12]}}}:lastbg:u"
    seen: list[object] = []
    try:
        for event, _ in events:
            kind, now, *args = event
            assert isinstance(now, float)
            if kind == "at":
                in_flight = cast(int, args[0])
                expiries = ",".join(str(_us(e)) for e in cast("list[float]", args[1]))
            else:
                in_flight, expiries = int(cast(bool, args[0])), ""
            argv = Background(
                "", str(kind), _us(now), limit, reserve, _us(hold), _us(window), in_flight, expiries
            )
            raw = cast("list[int]", await script(keys=[key], args=list(argv)))
            result, last, burst = (int(x) for x in raw)
            if kind == "at":
                seen.append(INF if result == -1 else result / US)
            else:
                seen.append((_seconds(last), _seconds(burst)))
    finally:
        await redis.delete(key)
    assert _close(seen, [expected for _, expected in events]), name


@pytest.mark.parametrize(
    ("limit", "reserve", "look", "step"),
    [
        (60, 1, 4, 61 / 59),
        (60, 5, 20, 61 / 55),
        (10, 1, 4, 61 / 9),
        (4, 1, 1, 61 / 3),
        (2, 1, 0, 61),
    ],
)
def test_depth_and_interval(limit: int, reserve: int, look: int, step: float) -> None:
    """The envelope looks 4 R intervals ahead, at most half the background share."""
    assert depth(limit, reserve) == look
    assert interval(61.0, limit, reserve) == pytest.approx(step)


def test_the_envelope_leaves_the_reserve_and_one_place_per_interval() -> None:
    """Whatever moment the envelope names, once the call goes the reserve is free and one
    more place frees per interval for D intervals (a brute-force check of the rule)."""
    limit, reserve, hold = 12, 2, 13.0
    look, step = depth(limit, reserve), interval(hold, limit, reserve)
    for expiries in ([], [3.0] * 9, [1.0, 2.0, 2.5, 8.0, 9.0, 9.5, 12.0, 12.5], [5.0] * 4):
        for in_flight in range(limit):
            at = envelope_at(
                0.0,
                limit=limit,
                reserve=reserve,
                hold=hold,
                in_flight=in_flight,
                expiries=expiries,
            )
            if at == INF:
                assert limit - in_flight - 1 - reserve < look
                continue
            for k in range(look + 1):
                counting = in_flight + 1 + sum(1 for e in expiries if e > at + k * step)
                assert limit - counting >= reserve + k, (expiries, in_flight, k)
            if at > 0:  # and a moment earlier, it would not hold
                earlier = at - 1e-6
                assert any(
                    limit - in_flight - 1 - sum(1 for e in expiries if e > earlier + k * step)
                    < reserve + k
                    for k in range(look + 1)
                )
