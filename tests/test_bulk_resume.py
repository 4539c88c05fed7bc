"""A bulk job run again on its journal remembers the budget its earlier runs spent (issue 20).

A job killed and run again at once with an in-process limiter used to start with
an empty limiter: on top of the window its first run had just filled, it sent
another one, and got a 429 for each. The journal now holds a ``send`` line per
request, and a run again counts the requests of the last ``window + guard`` in
its limiter. Time runs on looptime's virtual clock; the journal's wall clock is
made to follow it, as if the two runs were two processes on one host.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

import pytest
from schedcancel import BulkOutcome, OutcomeKind, RateLimiter, RateLimits
from schedcancel._bulk import journal as journal_module
from schedcancel._bulk.journal import RecentRequests, read_journal
from schedcancel.testing import Faults, MockScheduleServer, ServerLimits

N, W, GUARD = 20, 10.0, 0.5
HOLD = W + GUARD
LIMITS = RateLimits(total=N, per_schedule=10, window=W, guard=GUARD)
EPOCH = datetime(2026, 12, 6, tzinfo=UTC)


def _ids(n: int) -> list[str]:
    return [f"SC-{i:04d}" for i in range(n)]


def _server() -> MockScheduleServer:
    latency = (0.001, 0.02)
    return MockScheduleServer(
        limits=ServerLimits(total=N, per_schedule=10, window=W),
        faults=Faults(request_latency=latency, response_latency=latency, seed=3),
    )


@pytest.fixture(name="wall_clock_on_the_loop")
def _wall_clock_on_the_loop(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Make the journal's wall clock read the loop's (virtual) clock, from ``EPOCH``."""

    def install() -> None:
        loop = asyncio.get_running_loop()

        class LoopClock(datetime):
            @classmethod
            def now(cls, tz: tzinfo | None = None) -> LoopClock:  # noqa: ARG003 - always UTC
                moment = EPOCH + timedelta(seconds=loop.time())
                return cls.fromtimestamp(moment.timestamp(), UTC)

        monkeypatch.setattr(journal_module, "datetime", LoopClock)

    return install


def _final_ids(path: Path) -> set[str]:
    return {o.schedule_id for o in read_journal(path) if o.final}


@pytest.mark.looptime
@pytest.mark.parametrize("killed_after", [N, N // 2], ids=["between-windows", "in-flight"])
async def test_a_job_killed_and_run_again_at_once_gets_no_429(
    tmp_path: Path, wall_clock_on_the_loop: Callable[[], None], killed_after: int
) -> None:
    """Killed after its first window's burst (or with half of it still in flight), run again
    at once through a new limiter: 0 x 429, at most N arrivals in any window across both runs,
    and every id final in the journal."""
    wall_clock_on_the_loop()
    path = tmp_path / "j.jsonl"
    ids = _ids(3 * N)
    async with _server() as server:
        server.seed(ids)
        async with server.client(limits=LIMITS) as client:
            outcomes = client.cancel_many(ids, journal=path, priority=0)
            async with contextlib.aclosing(outcomes):  # leaving early abandons the calls running
                done = 0
                async for _ in outcomes:
                    done += 1
                    if done == killed_after:
                        break
        assert len(server.recorder) == N
        async with server.client(limits=LIMITS) as client:
            await asyncio.wait_for(_drain(client.cancel_many(ids, journal=path, priority=0)), 60)
        recorder = server.recorder
        assert recorder.count_rate_limited() == 0
        assert recorder.max_arrivals_in_window(W) <= N
        assert _final_ids(path) == set(ids)
        first, last = recorder.first_arrival(), recorder.last_arrival()
        assert first is not None
        assert last is not None
        # A window's worth per window + guard (plus a round trip each), no 429 pause on top.
        windows = math.ceil(len(recorder) / N)
        assert last - first < (windows - 1) * HOLD + 0.2


async def _drain(outcomes: AsyncGenerator[BulkOutcome, None]) -> None:
    async with contextlib.aclosing(outcomes):
        async for _ in outcomes:
            pass


@pytest.mark.looptime
@pytest.mark.parametrize("limiter", ["same", "new"])
async def test_a_run_again_counts_each_earlier_request_once(
    tmp_path: Path, wall_clock_on_the_loop: Callable[[], None], limiter: str
) -> None:
    """Ten requests of a finished run leave N - 10 places: a run again through the same
    limiter (which has them) and through a new one (which reads them) both send that many at
    once, then the rest when the first ten stop counting."""
    wall_clock_on_the_loop()
    path = tmp_path / "j.jsonl"
    ids = _ids(N + 10)
    loop = asyncio.get_running_loop()
    async with _server() as server:
        server.seed(ids)
        async with server.client(limits=LIMITS) as client:
            await _drain(client.cancel_many(ids[:10], journal=path, priority=0))
            await asyncio.sleep(1.0)
            resumed = loop.time()
            if limiter == "same":
                await _drain(client.cancel_many(ids, journal=path, priority=0))
        if limiter == "new":
            async with server.client(limits=LIMITS) as client:
                await _drain(client.cancel_many(ids, journal=path, priority=0))
        recorder = server.recorder
        times = sorted(a.time for a in recorder.arrivals)
        assert recorder.count_rate_limited() == 0
        assert recorder.max_arrivals_in_window(W) <= N
        assert sum(1 for t in times if resumed <= t < resumed + 1.0) == N - 10
        # The last ten went when the first ten stopped counting.
        assert times[-1] - times[0] < HOLD + 0.1


@pytest.mark.looptime
async def test_a_shared_store_is_not_told_twice(
    tmp_path: Path, wall_clock_on_the_loop: Callable[[], None]
) -> None:
    """Only an in-process limiter is told of earlier runs: another limiter (Redis) keeps its
    own count, and a journal written without send lines (an earlier version) seeds nothing."""
    wall_clock_on_the_loop()
    path = tmp_path / "j.jsonl"
    path.write_text(
        '{"run":"start","operation":"cancel","at":"2026-12-06T00:00:00.000+00:00"}\n'
        '{"id":"SC-0000","outcome":"cancelled","at":"2026-12-06T00:00:00.000+00:00"}\n',
        encoding="utf-8",
    )
    async with _server() as server:
        server.seed(_ids(N + 1))
        async with server.client(limits=LIMITS) as client:
            await _drain(client.cancel_many(_ids(N + 1), journal=path, priority=0))
            assert len(server.recorder) == N  # all at once: nothing was counted for SC-0000


# --------------------------------------------------------------------------- the pure part


def _at(seconds: float) -> str:
    return (EPOCH + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def _outcome(schedule_id: str, seconds: float) -> BulkOutcome:
    return BulkOutcome(
        schedule_id=schedule_id, kind=OutcomeKind.CANCELLED, at=EPOCH + timedelta(seconds=seconds)
    )


def test_recent_requests_pair_each_send_with_its_answer() -> None:
    """Each send is answered by its id's outcome or next send; unanswered ones by now, or a
    hold after they were sent; the runs of the resuming limiter and old lines do not count."""
    recent = RecentRequests(hold=10.0, own="mine", now=EPOCH + timedelta(seconds=100))
    recent.on_run({"run": "start", "limiter": "another", "at": _at(70)})
    for schedule_id, sent in [("old", 70.0), ("a", 91.0), ("b", 92.0), ("c", 95.0), ("d", 99.0)]:
        recent.on_run({"run": "send", "schedule_id": schedule_id, "at": _at(sent)})
    recent.on_outcome(_outcome("old", 70.5))  # answered 29.5 s ago: counts no more
    recent.on_outcome(_outcome("a", 91.5))
    recent.on_run({"run": "send", "schedule_id": "b", "at": _at(96.0)})  # a retry of b
    recent.on_outcome(_outcome("never-sent", 99.0))
    recent.on_run({"run": "send", "schedule_id": "late", "at": _at(103.0)})  # a clock went back
    recent.on_run({"run": "send", "schedule_id": "e", "at": "not a time"})
    recent.on_run({"run": "send", "at": _at(99.0)})
    recent.on_run({"run": "end", "at": _at(99.5)})
    recent.on_run({"run": "start", "limiter": "mine", "at": _at(99.6)})
    recent.on_run({"run": "send", "schedule_id": "f", "at": _at(99.7)})
    answered = sorted(recent.answered())
    assert answered == [
        ("a", pytest.approx(8.5)),
        ("b", 0.0),  # the retry: in flight when the run ended
        ("b", pytest.approx(4.0)),  # its first request, answered before the retry went
        ("c", 0.0),
        ("d", 0.0),
        ("late", 0.0),
    ]


def test_an_unanswered_send_counts_for_a_hold_after_it_was_sent_at_most() -> None:
    """A request a run left in flight arrived within a hold of its send, or never."""
    recent = RecentRequests(hold=10.0, now=EPOCH + timedelta(seconds=100))
    for schedule_id, sent in [("x", 85.0), ("y", 79.0), ("z", 95.0), ("w", 85.0)]:
        recent.on_run({"run": "send", "schedule_id": schedule_id, "at": _at(sent)})
    recent.on_outcome(_outcome("w", 88.0))  # answered 12 s ago: counts no more
    assert sorted(recent.answered()) == [("x", pytest.approx(5.0)), ("z", 0.0)]


def test_a_naive_time_counts_as_now() -> None:
    """An outcome whose time has no offset (not written by a journal) is taken as now."""
    recent = RecentRequests(hold=10.0, now=EPOCH)
    recent.on_run({"run": "send", "schedule_id": "a", "at": _at(-1.0)})
    naive = BulkOutcome(schedule_id="a", kind=OutcomeKind.CANCELLED, at=datetime(2026, 1, 1))
    recent.on_outcome(naive)
    assert recent.answered() == [("a", 0.0)]


@pytest.mark.looptime
async def test_remembered_requests_fill_both_levels_until_they_stop_counting() -> None:
    """``RateLimiter.remember``: each request counts on the API user's level and its id's,
    until ``window + guard`` after its answer; ages out of range are clamped or dropped."""
    limiter = RateLimiter(RateLimits(total=3, per_schedule=1, window=W, guard=GUARD))
    counted = limiter.remember([("a", 2.0), ("b", -5.0), (None, 4.0), ("c", HOLD)])
    assert counted == 3
    assert limiter.remember([("a", 8.0)]) == 1  # a second request of "a": before the first
    stats = limiter.stats()
    assert (stats.total_used, stats.schedule_ids) == (4, 2)
    assert stats.next_free == pytest.approx(HOLD - 4.0)  # the two oldest must go first
    assert await limiter.estimate("b") == pytest.approx(HOLD)  # its own level: a whole hold
    loop = asyncio.get_running_loop()
    start = loop.time()
    permit = await limiter.acquire("c")  # "c" was dropped: only the user's level waits
    assert loop.time() - start == pytest.approx(HOLD - 4.0)
    await limiter.release(permit)
    assert limiter.remember([]) == 0
    await limiter.aclose()
