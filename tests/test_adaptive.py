"""The adaptive policy: one table of cases, run against ``_adaptive`` and against the Lua script.

Each case is a sequence of events on a fresh state (base limit 60, hold 61 s):
``("429", now, stamp, next_stamp)``, ``("judge", now, peak)`` or
``("limit", now)``, each with the expected ``(limit_at(now), smooth,
episode_open, action)`` after it. The Redis half runs the same events through
``tests/lua/policy.lua`` (the policy alone, assembled after the package's
``lua/helpers.lua`` like every script; it is not shipped) on a real Redis
server, so the two implementations cannot drift apart unnoticed.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import cast

import pytest
import redis.asyncio as aioredis
from schedcancel._limiting.adaptive import QUIET_WINDOWS, Action, AdaptiveState, accepted_peak
from schedcancel._limiting.redis_scripts import assemble

from support.redis import POLICY_LUA, Policy, local_redis

BASE, HOLD = 60, 61.0
Q = QUIET_WINDOWS

Event = tuple[object, ...]
Expected = tuple[int, bool, bool, int]

# (name, [(event, expected after it), ...])
CASES: list[tuple[str, list[tuple[Event, Expected]]]] = [
    (
        "a 429 opens an episode and changes nothing yet",
        [(("429", 10.0, 5, 60), (60, False, True, 1))],
    ),
    (
        "429s of the same burst while the episode is open change nothing more",
        [
            (("429", 10.0, 5, 60), (60, False, True, 1)),
            (("429", 10.5, 6, 60), (60, False, True, 0)),
            (("429", 11.0, 59, 60), (60, False, True, 0)),
        ],
    ),
    (
        "the server never took the full limit: lower it to the peak",
        [
            (("429", 10.0, 5, 60), (60, False, True, 1)),
            (("judge", 71.0, 48), (48, False, False, Action.LOWERED)),
        ],
    ),
    (
        "a peak below half the limit lowers to half at most per episode",
        [
            (("429", 10.0, 5, 60), (60, False, True, 1)),
            (("judge", 71.0, 7), (30, False, False, Action.LOWERED)),
        ],
    ),
    (
        "no acceptance at all: still halved, never below one",
        [
            (("429", 10.0, 0, 1), (60, False, True, 1)),
            (("judge", 71.0, 0), (30, False, False, Action.LOWERED)),
        ],
    ),
    (
        "the server took a full window: go smooth, keep the limit",
        [
            (("429", 10.0, 5, 60), (60, False, True, 1)),
            (("judge", 71.0, 60), (60, True, False, Action.SMOOTH)),
        ],
    ),
    (
        "already smooth and a full window taken: step down by one",
        [
            (("429", 10.0, 5, 60), (60, False, True, 1)),
            (("judge", 71.0, 60), (60, True, False, Action.SMOOTH)),
            (("429", 80.0, 61, 70), (60, True, True, 1)),
            (("judge", 141.0, 60), (59, True, False, Action.LOWERED)),
        ],
    ),
    (
        "a request granted before the last episode opened teaches nothing new",
        [
            (("429", 10.0, 5, 60), (60, False, True, 1)),
            (("judge", 71.0, 48), (48, False, False, Action.LOWERED)),
            (("429", 72.0, 59, 62), (48, False, False, 0)),
            (("429", 73.0, 60, 64), (48, False, True, 1)),
        ],
    ),
    (
        "a lowered limit stays for the quiet windows, then grows by one per hold",
        [
            (("429", 0.0, 0, 1), (60, False, True, 1)),
            (("judge", 61.0, 40), (40, False, False, Action.LOWERED)),
            (("limit", Q * HOLD - 0.5), (40, False, False, 0)),
            (("limit", (Q + 1) * HOLD), (41, False, False, 0)),
            (("limit", (Q + 5) * HOLD + 1), (45, False, False, 0)),
            (("limit", (Q + 100) * HOLD), (60, False, False, 0)),
        ],
    ),
    (
        "a 429 restarts the quiet spell and keeps what was recovered",
        [
            (("429", 0.0, 0, 1), (60, False, True, 1)),
            (("judge", 61.0, 40), (40, False, False, Action.LOWERED)),
            (("429", (Q + 3) * HOLD, 0, 2), (43, False, False, 0)),
            (("limit", (Q + 3 + Q) * HOLD), (43, False, False, 0)),
            (("limit", (Q + 3 + Q + 2) * HOLD), (45, False, False, 0)),
        ],
    ),
    (
        "an episode judged after a partial recovery lowers from the recovered limit",
        [
            (("429", 0.0, 0, 1), (60, False, True, 1)),
            (("judge", 61.0, 40), (40, False, False, Action.LOWERED)),
            (("429", (Q + 4) * HOLD, 5, 9), (44, False, True, 1)),
            (("judge", (Q + 5) * HOLD, 44), (44, True, False, Action.SMOOTH)),
        ],
    ),
]


def _python(events: list[tuple[Event, Expected]]) -> list[Expected]:
    state = AdaptiveState(base_limit=BASE, hold=HOLD)
    seen: list[Expected] = []
    for event, _ in events:
        kind, now, *args = event
        assert isinstance(now, float)
        action = 0
        if kind == "429":
            action = int(state.on_429(now, cast(float, args[0]), cast(float, args[1])))
        elif kind == "judge":
            action = int(state.judge(now, cast(int, args[0])))
        seen.append((state.limit_at(now), state.smooth, state.episode_open, action))
    return seen


@pytest.mark.parametrize(("name", "events"), CASES, ids=[c[0] for c in CASES])
def test_python_policy_follows_the_table(name: str, events: list[tuple[Event, Expected]]) -> None:
    """The in-process policy gives the table's limit, mode, episode and action at every step."""
    assert _python(events) == [expected for _, expected in events], name


@pytest.fixture(name="redis")
async def _redis() -> AsyncIterator[aioredis.Redis]:
    async with local_redis() as client:
        yield client


US = 1_000_000


@pytest.mark.redis
@pytest.mark.parametrize(("name", "events"), CASES, ids=[c[0] for c in CASES])
async def test_lua_policy_follows_the_table(
    redis: aioredis.Redis, name: str, events: list[tuple[Event, Expected]]
) -> None:
    """The script's policy gives the same table, step for step (times in microseconds)."""
    script = redis.register_script(assemble(POLICY_LUA.read_text(encoding="utf-8")))
    key = f"{{sctest-adapt-{uuid.uuid4().hex[:12]}}}:adapt:u"
    seen: list[Expected] = []
    try:
        for event, _ in events:
            kind, now, *args = event
            assert isinstance(now, float)
            extra = [round(cast(float, a) * US) if kind == "429" else cast(int, a) for a in args]
            argv = Policy("", BASE, round(HOLD * US), str(kind), round(now * US), *extra)
            raw = await script(keys=[key], args=list(argv))
            limit, smooth, open_, action = (int(x) for x in cast("list[int]", raw))
            seen.append((limit, bool(smooth), bool(open_), action))
    finally:
        await redis.delete(key)
    assert seen == [expected for _, expected in events], name


@pytest.mark.parametrize(
    ("times", "window", "peak"),
    [
        ([], 60.0, 0),
        ([1.0], 60.0, 1),
        ([0.0, 30.0, 59.9, 60.0, 61.0], 60.0, 4),
        ([0.0, 60.0, 120.0], 60.0, 1),
        ([0.0] * 5 + [100.0] * 3, 60.0, 5),
    ],
)
def test_accepted_peak_counts_one_half_open_window(
    times: list[float], window: float, peak: int
) -> None:
    """The peak is the most acceptances any window (start, start + window] holds."""
    assert accepted_peak(times, window) == peak


@pytest.mark.parametrize(
    ("recover_from", "hold", "now"),
    [
        (4.310347, 1.05, 17.960347),  # a job on the header test's server spun here for ever
        (0.1, 0.1, 1.2),
        (0.0, 61.0, 0.0),
    ],
)
def test_the_next_step_is_a_moment_at_which_the_limit_has_grown(
    recover_from: float, hold: float, now: float
) -> None:
    """`next_step()` names a time at which `limit_at()` sees the step, even where floats round.

    ``17.960347`` is ``4.310347 + 13 * 1.05`` in floats, but ``(17.960347 - 4.310347) / 1.05``
    floors to 12: the step was named for a moment that did not have it, and the limiter's one
    timer fired at that same instant again and again (virtual time never moved on).
    """
    state = AdaptiveState(base_limit=BASE, hold=hold, limit=40, recover_from=recover_from)
    while state.limit_at(now) < BASE:
        step = state.next_step(now)
        assert step > now
        assert state.limit_at(step) == state.limit_at(now) + 1
        now = step
    assert state.next_step(now) == float("inf")
