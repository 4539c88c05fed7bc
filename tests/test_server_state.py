"""The server's word: one table of cases, run against ``_server_state`` and against the Lua script.

Each case is a sequence of events on a fresh state (API user 60, scheduleId 10,
hold 61 s): ``("observe", at, answered, limited, user_limit, remaining, reset,
id_limit[, sent])`` (-1: not stated; ``sent``: the answered request's place in
our send order, by default each answer's request sent after the last's) or
``("limit", at, answered, adaptive)``, each with
the expected ``(user limit, scheduleId limit, speaks)`` after it. The Redis half
runs the same events through ``tests/lua/server.lua`` (the rule alone, assembled
after the package's ``lua/helpers.lua``; not shipped) on a real Redis server, so
the two implementations cannot drift apart unnoticed. The digest (which level a
stated quota is about) is Python's alone and tested below the table.
"""

from __future__ import annotations

import math
import typing
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple

import pytest
import redis.asyncio as aioredis
from schedcancel import (
    InvalidParameterError,
    RateLimitHeaders,
    RateLimitPreset,
    RateLimits,
    StatedQuota,
)
from schedcancel._limiting.redis_scripts import assemble
from schedcancel._limiting.server_state import SILENT, Heard, ServerState, digest, level_of

from support.redis import local_redis

BASE, BASE_ID, HOLD = 60, 10, 61.0
SERVER_LUA = Path(__file__).resolve().parent / "lua" / "server.lua"


class Server(NamedTuple):
    """``tests/lua/server.lua``'s ARGV, in order (its header lists the same names)."""

    now: str
    probe: int
    higher: int
    hold: int
    base: int
    base_id: int
    event: str
    at: int
    answered: int
    adaptive: int
    limited: int = 0
    user_limit: int = -1
    remaining: int = -1
    reset: int = -1
    id_limit: int = -1
    sent: int = 0


Event = tuple[object, ...]
Expected = tuple[int, int, bool]
Case = tuple[str, bool, bool, list[tuple[Event, Expected]]]

# (name, probe, higher, [(event, expected after it), ...])
CASES: list[Case] = [
    (
        "silent answers change nothing",
        False,
        False,
        [(("observe", 1.0, 5, 0, -1, -1, -1, -1), (60, 10, False))],
    ),
    (
        "probe: a fresh limiter lets one go first, its answer tells the rest",
        True,
        False,
        [
            (("limit", 0.0, 0, 60), (1, 10, True)),
            (("observe", 0.1, 1, 0, 60, 47, 1, -1), (48, 10, True)),
        ],
    ),
    (
        "a stated limit below the configured one lowers the level at once",
        False,
        False,
        [
            (("observe", 1.0, 1, 0, 40, -1, -1, 5), (40, 5, False)),
            (("limit", 500.0, 0, 60), (40, 5, False)),
        ],
    ),
    (
        "a stated limit above the configured one raises nothing without the opt-in",
        False,
        False,
        [(("observe", 1.0, 1, 0, 100, -1, -1, 20), (60, 10, False))],
    ),
    (
        "with the opt-in it does",
        False,
        True,
        [(("observe", 1.0, 1, 0, 100, -1, -1, 20), (100, 20, False))],
    ),
    (
        "the adaptive policy's lower limit still counts under a stated one",
        False,
        True,
        [
            (("observe", 1.0, 1, 0, 100, -1, -1, -1), (100, 10, False)),
            (("limit", 2.0, 0, 45), (45, 10, False)),
        ],
    ),
    (
        "remaining: our answered entries plus what is left; stale after the reset",
        False,
        False,
        [
            (("observe", 1.0, 10, 0, 60, 30, 5, -1), (40, 10, True)),
            (("limit", 5.9, 10, 60), (40, 10, True)),
            (("limit", 6.0, 10, 60), (11, 10, True)),
            (("limit", 6.0, 0, 60), (1, 10, True)),
        ],
    ),
    (
        "within one reading period the lowest reading holds; after it, the new one",
        False,
        False,
        [
            (("observe", 1.0, 10, 0, 60, 30, 5, -1), (40, 10, True)),
            (("observe", 2.0, 12, 0, 60, 32, 5, -1), (40, 10, True)),
            (("observe", 3.0, 13, 0, 60, 20, 5, -1), (33, 10, True)),
            (("observe", 9.0, 13, 0, 60, 40, 5, -1), (53, 10, True)),
        ],
    ),
    (
        "a reading lapses two holds after it was made; until its reset our expired places count",
        False,
        False,
        [
            (("observe", 1.0, 10, 0, 60, 30, 500, -1), (40, 10, True)),
            (("limit", 1.0 + HOLD, 0, 60), (30, 10, True)),
            (("limit", 1.0 + 2 * HOLD, 0, 60), (60, 10, True)),
        ],
    ),
    (
        "until the reset every answer since the reading spends it; after it, places recycle",
        False,
        False,
        [
            (("observe", 1.0, 10, 0, 60, 30, 5, -1), (40, 10, True)),
            # five of our ten answered entries expired, nothing answered since: 5 + 30
            (("limit", 2.0, 5, 60), (35, 10, True)),
            # answers (429s here) to requests sent on the reading: each moves from in
            # flight to answered and stays spent (the level counts both)
            (("observe", 2.5, 6, 1, -1, -1, -1, -1), (35, 10, True)),
            (("observe", 2.6, 7, 1, -1, -1, -1, -1), (35, 10, True)),
            # the reset has passed: the stale rule lets one go first
            (("limit", 6.0, 7, 60), (8, 10, True)),
        ],
    ),
    (
        "after the reset one goes first, whatever the stale reading counted",
        False,
        False,
        [
            (("observe", 1.0, 10, 0, 60, 0, 5, -1), (10, 10, True)),
            # a counter's Remaining grows within its window: the reading's 10 no longer holds
            (("limit", 6.0, 10, 60), (11, 10, True)),
        ],
    ),
    (
        "an older request's reading is out of order: the lowest holds; a newer one's counts",
        False,
        False,
        [
            (("observe", 1.0, 10, 0, 60, 30, 5, -1, 5), (40, 10, True)),
            (("observe", 1.1, 11, 0, 60, 35, 5, -1, 3), (40, 10, True)),
            (("observe", 1.2, 12, 0, 60, 20, 5, -1, 9), (32, 10, True)),
            # a newer request's reading says more room: it replaces the count since the
            # reading, while the answered-plus-Remaining bound keeps the lowest
            (("observe", 1.3, 13, 0, 60, 26, 5, -1, 10), (32, 10, True)),
            # eight of our answered entries expired: the newest reading's 26, plus the five
            (("limit", 1.4, 5, 60), (31, 10, True)),
        ],
    ),
    (
        "a 429's remaining is no reading, and an answer without one ends the probing",
        True,
        False,
        [
            (("observe", 1.0, 0, 1, 60, 0, 3, -1), (1, 10, True)),
            (("observe", 2.0, 1, 0, -1, -1, -1, -1), (60, 10, False)),
        ],
    ),
]


def _observed(rest: list[object], step: int) -> tuple[int, int, int, int, int, int]:
    """An observe event's fields after ``answered``; ``sent`` defaults to the step's number."""
    values = [int(str(x)) for x in rest]
    if len(values) == 5:
        values.append(step)
    limited, user_limit, remaining, reset, id_limit, sent = values
    return limited, user_limit, remaining, reset, id_limit, sent


def _python(probe: bool, higher: bool, events: list[tuple[Event, Expected]]) -> list[Expected]:
    state = ServerState(speaks=probe)
    seen: list[Expected] = []
    for event, _ in events:
        kind, at, answered, *rest = event
        assert isinstance(at, float)
        assert isinstance(answered, int)
        adaptive = BASE
        if kind == "observe":
            limited, user_limit, remaining, reset, id_limit, sent = _observed(rest, len(seen))
            heard = Heard(
                user_limit=None if user_limit < 0 else user_limit,
                user_remaining=None if remaining < 0 else remaining,
                user_reset=None if reset < 0 else float(reset),
                id_limit=None if id_limit < 0 else id_limit,
            )
            state.observe(
                heard, now=at, answered=answered, limited=bool(limited), hold=HOLD, sent=sent
            )
        else:
            adaptive = int(str(rest[0]))
        limit = state.user_limit(at, base=BASE, adaptive=adaptive, answered=answered, higher=higher)
        seen.append((limit, state.id_limit(BASE_ID, higher=higher), state.speaks))
    return seen


def test_the_next_change_is_the_reset_while_it_speaks_then_the_lapse() -> None:
    """The limiter wakes when the word may change: a current reading's reset (one goes
    first then), and when a reading lapses."""
    state = ServerState()
    assert state.next_change(0.0) == math.inf
    heard = Heard(user_remaining=5, user_reset=2.0)
    state.observe(heard, now=1.0, answered=1, limited=False, hold=HOLD)
    assert state.next_change(1.0) == 3.0
    assert state.next_change(3.0) == 1.0 + 2 * HOLD
    assert state.next_change(1.0 + 2 * HOLD) == math.inf


@pytest.mark.parametrize(("name", "probe", "higher", "events"), CASES, ids=[c[0] for c in CASES])
def test_python_rule_follows_the_table(
    name: str, probe: bool, higher: bool, events: list[tuple[Event, Expected]]
) -> None:
    """The in-process rule gives the table's limits and speaks flag at every step."""
    assert _python(probe, higher, events) == [expected for _, expected in events], name


@pytest.fixture(name="redis")
async def _redis() -> AsyncIterator[aioredis.Redis]:
    async with local_redis() as client:
        yield client


US = 1_000_000


@pytest.mark.redis
@pytest.mark.parametrize(("name", "probe", "higher", "events"), CASES, ids=[c[0] for c in CASES])
async def test_lua_rule_follows_the_table(
    redis: aioredis.Redis,
    name: str,
    probe: bool,
    higher: bool,
    events: list[tuple[Event, Expected]],
) -> None:
    """The script's rule gives the same table, step for step (times in microseconds)."""
    script = redis.register_script(assemble(SERVER_LUA.read_text(encoding="utf-8")))
    key = f"{{sctest-server-{uuid.uuid4().hex[:12]}}}:adapt:u"
    seen: list[Expected] = []
    try:
        for event, _ in events:
            kind, at, answered, *rest = event
            assert isinstance(at, float)
            assert isinstance(answered, int)
            head = ("", int(probe), int(higher), round(HOLD * US), BASE, BASE_ID, str(kind))
            if kind == "observe":
                limited, user_limit, remaining, reset, id_limit, sent = _observed(rest, len(seen))
                argv = Server(
                    *head,
                    round(at * US),
                    answered,
                    BASE,
                    limited,
                    user_limit,
                    remaining,
                    -1 if reset < 0 else reset * US,
                    id_limit,
                    sent,
                )
            else:
                argv = Server(*head, round(at * US), answered, int(str(rest[0])))
            raw = await script(keys=[key], args=list(argv))
            limit, id_limit_now, speaks = (int(x) for x in raw)
            seen.append((limit, id_limit_now, bool(speaks)))
    finally:
        await redis.delete(key)
    assert seen == [expected for _, expected in events], name


def test_the_server_script_reads_what_the_test_sends() -> None:
    """tests/lua/server.lua's header matches the test's Server fields."""
    text = SERVER_LUA.read_text(encoding="utf-8")
    assert "ARGV: " + " ".join(Server._fields) in text


LIMITS = RateLimits(total=60, per_schedule=10, window=60.0)


@pytest.mark.parametrize(
    ("limit", "level"),
    [
        (None, "user"),
        (60, "user"),
        (40, "user"),
        (25, "user"),
        (24, "schedule"),
        (10, "schedule"),
        (1, "schedule"),
    ],
)
def test_a_stated_limit_names_its_level(limit: int | None, level: str) -> None:
    """At or above sqrt(60 * 10) = 24.5 a limit is the API user's, below it the scheduleId's."""
    assert level_of(limit, LIMITS) == level


def test_digest_keeps_the_tightest_per_level_and_blames_the_exhausted_one() -> None:
    """Two quotas per level: the lower limit and remaining; a 429 is the exhausted level's."""
    said = RateLimitHeaders(
        quotas=(
            StatedQuota(name="u", limit=60, remaining=12, reset=3.0, window=60.0),
            StatedQuota(name="u2", limit=50, remaining=30),
            StatedQuota(name="s", limit=10, remaining=0, reset=8.0, window=60.0),
            StatedQuota(name="day", limit=5, remaining=0, window=86400.0),  # not our window
        )
    )
    assert digest(said, LIMITS) == Heard(
        user_limit=50, user_remaining=12, user_reset=3.0, id_limit=10, blamed="schedule", pause=8.0
    )
    assert digest(RateLimitHeaders(retry_after=4.0, quotas=said.quotas), LIMITS).pause == 4.0


def test_digest_of_nothing_is_silent_and_an_unsure_blame_is_none() -> None:
    """No quota: silent. Both levels exhausted: the blame is left to the store's own rule."""
    assert digest(RateLimitHeaders(), LIMITS) == SILENT
    both = RateLimitHeaders(
        quotas=(StatedQuota(limit=60, remaining=0), StatedQuota(limit=10, remaining=0))
    )
    assert digest(both, LIMITS).blamed is None
    one = RateLimitHeaders(quotas=(StatedQuota(limit=60, remaining=5),))
    assert digest(one, LIMITS).blamed == "user"


def test_presets_give_ixopays_two_documents() -> None:
    """The API reference's 60/10 is the default; the user manual's 100 takes changes on top."""
    assert RateLimits.preset() == RateLimits.preset("api-reference") == RateLimits()
    manual = RateLimits.preset("user-manual")
    assert (manual.total, manual.per_schedule, manual.window) == (100, 10, 60.0)
    assert RateLimits.preset("user-manual", total=80, probe=True).total == 80
    assert typing.get_args(RateLimitPreset) == ("api-reference", "user-manual")
    for name in typing.get_args(RateLimitPreset):
        assert RateLimits.preset(name).total in {60, 100}
    with pytest.raises(InvalidParameterError, match="unknown RateLimits preset 'docs'"):
        RateLimits.preset("docs")  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        RateLimits.preset("user-manual", total=0)
