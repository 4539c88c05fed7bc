"""The pure sliding-window logs: plain synchronous tests with the time passed in."""

from __future__ import annotations

import collections
import heapq
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from schedcancel import InvalidParameterError
from schedcancel._limiting.window import LevelPolicy, SlidingLog

from support.window import Decision, check, try_acquire

W = 60.0
GUARD = 1.0


def _policy(limit: int, **kwargs: object) -> LevelPolicy:
    return LevelPolicy(base_limit=limit, window=W, guard=GUARD, **kwargs)  # type: ignore[arg-type]


def test_policy_rejects_a_limit_below_one() -> None:
    """A level cannot be configured to admit nothing."""
    with pytest.raises(InvalidParameterError, match="base_limit"):
        _policy(0)


def test_entry_counts_until_window_plus_guard_after_release() -> None:
    """An entry counts while in flight and until window + guard after its response."""
    log = SlidingLog(_policy(1))
    log.add(0.0)
    assert log.used(1000.0) == 1
    assert log.earliest(1000.0) == math.inf
    assert log.release(5.0) == 5.0 + W + GUARD
    assert log.used(65.9) == 1
    assert log.earliest(10.0) == 66.0
    assert log.used(66.0) == 0
    assert log.earliest(66.0) == 66.0


@given(
    limit=st.integers(1, 6),
    events=st.lists(st.tuples(st.sampled_from(["add", "release"]), st.floats(0, 5)), max_size=30),
    now=st.floats(0, 200),
)
def test_room_counts_the_grants_earliest_would_allow(
    limit: int, events: list[tuple[str, float]], now: float
) -> None:
    """room(now) is how many adds in a row earliest(now) admits, the count alone deciding."""
    log = SlidingLog(_policy(limit))
    clock = 0.0
    for kind, step in events:
        clock += step
        if kind == "add":
            log.add(clock)
        elif log.in_flight:
            log.release(clock)
    now += clock
    room = log.room(now)
    assert room == limit - log.used(now)
    admitted = 0
    while log.earliest(now) <= now and admitted <= limit:
        log.add(now)
        admitted += 1
    assert admitted == max(0, room)


def test_try_acquire_takes_both_levels_or_neither() -> None:
    """try_acquire adds to both logs when both admit and to neither when one refuses."""
    total, one = SlidingLog(_policy(3)), SlidingLog(_policy(1))
    assert try_acquire(total, one, 0.0) == Decision(allowed=True, at=0.0)
    assert (total.in_flight, one.in_flight) == (1, 1)
    refused = try_acquire(total, one, 0.0)
    assert refused == Decision(allowed=False, at=math.inf, blocked_by="schedule")
    assert (total.in_flight, one.in_flight) == (1, 1)


def test_check_names_the_later_level() -> None:
    """check reports the level whose log opens later."""
    total, one = SlidingLog(_policy(1)), SlidingLog(_policy(5))
    total.add(0.0)
    total.release(1.0)
    assert check(total, one, 2.0) == Decision(allowed=False, at=62.0, blocked_by="total")


def test_pause_holds_the_level() -> None:
    """A 429 pause holds the level until its end, and a shorter pause never shortens it."""
    log = SlidingLog(_policy(5))
    log.pause(30.0)
    log.pause(10.0)
    assert log.paused_until == 30.0
    assert log.earliest(0.0) == 30.0
    assert not log.is_idle(20.0)
    assert log.is_idle(30.0)


def test_smooth_mode_spaces_sends() -> None:
    """Smooth mode spaces sends window / limit * (1 + slack) apart."""
    log = SlidingLog(_policy(60, mode="smooth", slack=0.01))
    log.add(0.0)
    assert log.earliest(0.0) == pytest.approx(1.01)
    log.add(1.01)
    assert log.earliest(1.5) == pytest.approx(2.02)


def test_release_without_acquisition_raises() -> None:
    """Releasing or revoking more than was acquired is a bug and says so."""
    log = SlidingLog(_policy(1))
    with pytest.raises(RuntimeError, match="release"):
        log.release(0.0)
    with pytest.raises(RuntimeError, match="revoke"):
        log.revoke()


@st.composite
def _streams(draw: st.DrawFn) -> dict[str, object]:
    """A random request stream: limits, ids (repeats likely), ready times, latencies, arrivals."""
    total = draw(st.integers(1, 6))
    size = draw(st.integers(1, 40))
    return {
        "total": total,
        "per_schedule": draw(st.integers(1, total)),
        "guard": draw(st.sampled_from([0.0, 0.5])),
        "ids": draw(st.lists(st.integers(0, 4), min_size=size, max_size=size)),
        "ready": draw(st.lists(st.floats(0, 30), min_size=size, max_size=size)),
        "latency": draw(st.lists(st.floats(0, 8), min_size=size, max_size=size)),
        # Where between send and response the server saw the request (0 = at send).
        "arrival": draw(st.lists(st.floats(0, 1), min_size=size, max_size=size)),
        "shuffle": draw(st.randoms(use_true_random=False)),
    }


def _simulate(stream: dict[str, object], window: float) -> list[tuple[float, int]]:
    """Run the stream through the pure logs, admitting ready requests in random order.

    Returns the (arrival time, id) of every request, as the server saw them.
    """
    ids: list[int] = stream["ids"]  # type: ignore[assignment]
    ready: list[float] = stream["ready"]  # type: ignore[assignment]
    latency: list[float] = stream["latency"]  # type: ignore[assignment]
    arrival: list[float] = stream["arrival"]  # type: ignore[assignment]
    rnd: random.Random = stream["shuffle"]  # type: ignore[assignment]
    guard: float = stream["guard"]  # type: ignore[assignment]
    total = SlidingLog(LevelPolicy(base_limit=stream["total"], window=window, guard=guard))  # type: ignore[arg-type]
    key_policy = LevelPolicy(base_limit=stream["per_schedule"], window=window, guard=guard)  # type: ignore[arg-type]
    logs = {key: SlidingLog(key_policy) for key in set(ids)}
    unsent = set(range(len(ids)))
    responses: list[tuple[float, int]] = []
    arrivals: list[tuple[float, int]] = []
    now = 0.0
    while unsent or responses:
        while responses and responses[0][0] <= now:
            at, i = heapq.heappop(responses)
            total.release(at)
            logs[ids[i]].release(at)
        candidates = sorted(i for i in unsent if ready[i] <= now)
        rnd.shuffle(candidates)
        for i in candidates:
            if try_acquire(total, logs[ids[i]], now).allowed:
                unsent.discard(i)
                arrivals.append((now + arrival[i] * latency[i], ids[i]))
                heapq.heappush(responses, (now + latency[i], i))
        upcoming = [ready[i] for i in unsent if ready[i] > now]
        upcoming += [check(total, logs[ids[i]], now).at for i in unsent if ready[i] <= now]
        if responses:
            upcoming.append(responses[0][0])
        if not upcoming:
            break  # all sent and answered
        now = min(upcoming)
        assert now != math.inf  # something in flight or a known time always comes next
    return arrivals


@given(stream=_streams())
@settings(max_examples=150, deadline=None)
def test_no_window_ever_holds_more_than_the_limits(stream: dict[str, object]) -> None:
    """Whatever the ids, latencies and arrival points, no window holds more than N (or K per id)."""
    window = 10.0
    arrivals = sorted(_simulate(stream, window))
    for end, _ in arrivals:
        # The server's window (end - W, end]; a hair of float tolerance at the open edge.
        inside = [key for at, key in arrivals if end - window + 1e-9 < at <= end]
        assert len(inside) <= stream["total"]  # type: ignore[operator]
        assert max(collections.Counter(inside).values()) <= stream["per_schedule"]  # type: ignore[operator]


def test_release_stamped_earlier_than_the_last_counts_as_long() -> None:
    """A release whose stamp goes backwards counts until the latest expiry (never shorter)."""
    log = SlidingLog(_policy(5))
    log.add(0.0)
    log.add(0.0)
    assert log.release(10.0) == 71.0
    assert log.release(9.0) == 71.0
    assert log.used(70.9) == 2
    assert log.last_expiry == 71.0


def test_many_expiries_are_pruned_and_compacted() -> None:
    """Pruning drops expired entries in bulk and compacts the array once its dead head is large."""
    log = SlidingLog(_policy(1000))
    for i in range(100):
        log.add(float(i))
        log.release(float(i))
    # Each release drops what expired by its time: the entries of 0-38 (expiring by 99) are gone.
    assert repr(log) == "<SlidingLog limit=1000 in_flight=0 answered=61>"
    assert log.used(61.0 + 39.5) == 60  # 40 expired, 60 left
    assert repr(log) == "<SlidingLog limit=1000 in_flight=0 answered=61>"  # reads change nothing
    log.prune(61.0 + 39.5)  # the head shifts, no compaction
    assert repr(log) == "<SlidingLog limit=1000 in_flight=0 answered=60>"
    log.prune(61.0 + 69.5)  # 70 expired: compacted
    assert log.used(61.0 + 69.5) == 30
    log.prune(1000.0)
    assert log.used(1000.0) == 0
    assert repr(log) == "<SlidingLog limit=1000 in_flight=0 answered=0>"


def test_slot_time_forecasts_each_place_recycling_every_hold() -> None:
    """slot_time: free places now, then expiries, then in-flight ones a hold from now, cycling."""
    log = SlidingLog(_policy(3))
    log.add(0.0)
    log.release(2.0)  # counts until 63
    log.add(5.0)  # in flight: a hold after now at best
    now = 10.0
    assert [log.slot_time(now, n) for n in range(6)] == [10.0, 63.0, 71.0, 71.0, 124.0, 132.0]
    log.pause(20.0)
    assert log.slot_time(now, 0) == 20.0


def test_slot_time_with_more_entries_than_a_lowered_limit() -> None:
    """After adaptive lowered the limit below the entries held, the oldest must expire first."""
    policy = _policy(3)
    log = SlidingLog(policy)
    for t in (0.0, 1.0, 2.0):
        log.add(t)
        log.release(t)
    policy.limit = 1
    assert log.earliest(10.0) == 63.0
    assert log.slot_time(10.0, 0) == 63.0
    assert log.slot_time(10.0, 1) == 124.0


def test_slot_time_in_smooth_mode_spaces_the_forecast() -> None:
    """In smooth mode the forecast also spaces every request ahead by the smooth gap."""
    log = SlidingLog(_policy(60, mode="smooth", slack=0.0))
    log.add(0.0)
    assert log.slot_time(0.0, 0) == 1.0
    assert log.slot_time(0.0, 9) == 10.0
