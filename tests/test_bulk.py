"""cancel_many: streaming, de-duplication, the journal, resume, stopping and progress.

Most tests drive it with a scripted fake client; the time-dependent ones run
on looptime's virtual clock, some through a real ``RateLimiter``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import re
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import attrs
import pytest
from schedcancel import (
    AuthenticationError,
    BackendError,
    BulkOutcome,
    BulkProgress,
    EndpointNotFoundError,
    Gate,
    InvalidParameterError,
    Journal,
    Limiter,
    LimiterStats,
    OutcomeKind,
    RateLimiter,
    RateLimits,
    ResponseMismatchError,
    ScheduleResult,
    ScheduleStatus,
    ServerError,
    TransportError,
)
from schedcancel._bulk.journal import read_journal
from schedcancel._bulk.runner import _IdTable, cancel_many, default_concurrency, estimate_eta
from schedcancel._protocol.redact import redact_key
from schedcancel.testing import MockScheduleServer, ServerLimits

API_KEY = "bulk-connector-key-0001"
HUGE = RateLimits(total=10**9, per_schedule=10**9)
# Background calls burst like the others: these tests are about stopping, not pacing.
# adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace the
# cold start and the refill).
BURSTS = RateLimits(
    total=10, per_schedule=10, window=60.0, guard=1.0, interactive_reserve=0, adaptive=False
)


def _success(schedule_id: str) -> ScheduleResult:
    return ScheduleResult(
        success=True,
        schedule_id=schedule_id,
        old_status=ScheduleStatus.ACTIVE,
        new_status=ScheduleStatus.CANCELLED,
    )


ALREADY = ScheduleResult(
    success=False,
    old_status=ScheduleStatus.CANCELLED,
    new_status=ScheduleStatus.CANCELLED,
    error_code=7070,
    error_message="The status of the schedule is not valid for the requested operation",
)
UNKNOWN = ScheduleResult(
    success=False,
    error_code=7040,
    error_message="The scheduleId is not valid or does not match to the connector",
)


@attrs.define
class FakeLimiter:
    """Limits and stats only: what a bulk job reads from a limiter."""

    limits: RateLimits = HUGE
    rate_limited: int = 0

    def stats(self) -> LimiterStats:
        """An idle limiter, with the 429 count the test set."""
        return LimiterStats(
            queued=0,
            in_flight=0,
            total_used=0,
            total_limit=self.limits.total,
            schedule_ids=0,
            next_free=0.0,
            rate_limited=self.rate_limited,
        )


@attrs.define
class FakeClient:
    """Answers from a script (success by default); records calls and peak concurrency."""

    answers: dict[str, ScheduleResult | BaseException] = attrs.Factory(dict)
    latency: dict[str, float] = attrs.Factory(dict)
    limiter: FakeLimiter = attrs.Factory(FakeLimiter)
    calls: list[str] = attrs.Factory(list)
    api_keys: set[str | None] = attrs.Factory(set)
    running: int = 0
    peak: int = 0
    _api_key: str = "fake-client-default-key"  # as ScheduleClient keeps its default key

    @property
    def redactions(self) -> tuple[str, ...]:
        """The default key, as ScheduleClient lists its secrets."""
        return (self._api_key,)

    @property
    def redacted_api_key(self) -> str:
        """The default key as the journal shows it."""
        return redact_key(self._api_key)

    async def cancel(
        self,
        schedule_id: str,
        *,
        api_key: str | None = None,
        priority: int = 0,  # noqa: ARG002 - the client's signature
        queue_timeout: float | None = None,  # noqa: ARG002 - the client's signature
        gate: Gate | None = None,  # noqa: ARG002 - the client's signature
    ) -> ScheduleResult:
        """Record the call, wait its latency, answer from the script."""
        self.calls.append(schedule_id)
        self.api_keys.add(api_key)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(self.latency.get(schedule_id, 0.0))
            answer = self.answers.get(schedule_id, _success(schedule_id))
            if isinstance(answer, BaseException):
                raise answer
            return answer
        finally:
            self.running -= 1


@attrs.define
class LimitedClient:
    """A client over a real limiter: acquire, "send" (recorded), one RTT, release."""

    limiter: Limiter
    rtt: float = 0.1
    sent: list[str] = attrs.Factory(list)
    answer: BaseException | None = None  # raised by every call after its RTT
    redactions: tuple[str, ...] = ()
    redacted_api_key: str = "none***"

    async def cancel(
        self,
        schedule_id: str,
        *,
        api_key: str | None = None,  # noqa: ARG002 - the client's signature
        priority: int = 0,
        queue_timeout: float | None = None,  # noqa: ARG002 - the client's signature
        gate: Gate | None = None,
    ) -> ScheduleResult:
        """Go through the limiter (and the gate) the way ScheduleClient does."""
        if gate is None:
            permit = await self.limiter.acquire(schedule_id, priority=priority)
        else:
            permit = await gate.acquire(self.limiter, schedule_id, priority=priority)
        self.sent.append(schedule_id)
        try:
            await asyncio.sleep(self.rtt)
        finally:
            await self.limiter.release(permit)
        if self.answer is not None:
            raise self.answer
        return _success(schedule_id)


async def _collect(outcomes: AsyncIterator[BulkOutcome]) -> list[BulkOutcome]:
    return [outcome async for outcome in outcomes]


async def _collect_into(outcomes: AsyncIterator[BulkOutcome], into: list[BulkOutcome]) -> None:
    """Collect into a list the caller keeps, so what came before an exception stays."""
    async for outcome in outcomes:
        into.append(outcome)  # noqa: PERF401 - the list must survive the exception


def _ids(n: int, prefix: str = "SC-") -> list[str]:
    return [f"{prefix}{i:06d}" for i in range(n)]


def _journal_ids(path: Path) -> list[str]:
    return [outcome.schedule_id for outcome in read_journal(path)]


# --------------------------------------------------------------------------- outcomes


async def test_each_id_ends_as_one_outcome_of_the_right_kind() -> None:
    """Success, already cancelled, unknown id and a transport error map to their kinds."""
    client = FakeClient(
        answers={"SC-2": ALREADY, "SC-3": UNKNOWN, "SC-4": TransportError("reset by peer")}
    )
    outcomes = await _collect(cancel_many(client, ["SC-1", "SC-2", "SC-3", "SC-4"]))
    kinds = {o.schedule_id: o.kind for o in outcomes}
    assert kinds == {
        "SC-1": OutcomeKind.CANCELLED,
        "SC-2": OutcomeKind.ALREADY_CANCELLED,
        "SC-3": OutcomeKind.FAILED,
        "SC-4": OutcomeKind.ERROR,
    }
    by_id = {o.schedule_id: o for o in outcomes}
    assert by_id["SC-3"].error_code == 7040
    assert by_id["SC-4"].error_type == "TransportError"
    assert sorted(client.calls) == ["SC-1", "SC-2", "SC-3", "SC-4"]


@pytest.mark.looptime
async def test_outcomes_come_as_they_finish_not_in_input_order() -> None:
    """A slow first id does not hold back the fast ones behind it."""
    client = FakeClient(latency={"SC-slow": 5.0, "SC-a": 1.0, "SC-b": 2.0})
    outcomes = await _collect(cancel_many(client, ["SC-slow", "SC-a", "SC-b"]))
    assert [o.schedule_id for o in outcomes] == ["SC-a", "SC-b", "SC-slow"]


async def test_invalid_ids_are_outcomes_never_sent_and_the_job_goes_on() -> None:
    """Bad ids (too long, bad characters, empty, not a str) become ``invalid``; the rest go."""
    items: list[object] = ["SC-1", "x" * 33, "has space", "", 42, "SC-2"]
    client = FakeClient()
    outcomes = await _collect(cancel_many(client, items))
    invalid = [o for o in outcomes if o.kind is OutcomeKind.INVALID]
    assert [o.schedule_id for o in invalid] == ["x" * 33, "has space", "", "42"]
    assert all(o.error for o in invalid)
    assert "must be a str, got int" in (invalid[-1].error or "")
    assert sorted(client.calls) == ["SC-1", "SC-2"]


async def test_duplicates_are_sent_once_and_counted() -> None:
    """An id repeated in the input is sent once; the repeats count as duplicates."""
    client = FakeClient()
    reports: list[BulkProgress] = []
    items = ["SC-1", "SC-2", "SC-1", "SC-3", "SC-2", "SC-1"]
    outcomes = await _collect(cancel_many(client, items, progress=reports.append))
    assert sorted(o.schedule_id for o in outcomes) == ["SC-1", "SC-2", "SC-3"]
    assert sorted(client.calls) == ["SC-1", "SC-2", "SC-3"]
    last = reports[-1]
    assert (last.duplicates, last.done, last.completed, last.total) == (3, 3, 6, 6)


async def test_async_iterable_input_is_streamed() -> None:
    """An async iterable works as input, and its total is unknown."""

    async def source() -> AsyncIterator[str]:
        for schedule_id in _ids(50):
            await asyncio.sleep(0)
            yield schedule_id

    reports: list[BulkProgress] = []
    client = FakeClient()
    outcomes = await _collect(cancel_many(client, source(), progress=reports.append))
    assert len(outcomes) == 50
    assert reports[-1].total is None
    assert reports[-1].remaining is None


async def test_api_key_and_priority_are_passed_through() -> None:
    """The job's apiKey goes to every call; without one the client's default (None) is used."""
    client = FakeClient()
    await _collect(cancel_many(client, ["SC-1", "SC-2"], api_key=API_KEY))
    assert client.api_keys == {API_KEY}
    other = FakeClient()
    await _collect(cancel_many(other, ["SC-1"]))
    assert other.api_keys == {None}


async def test_unexpected_exception_is_an_error_outcome_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A non-library exception from the client becomes an ``error`` outcome and is logged."""
    client = FakeClient(answers={"SC-1": KeyError("boom")})
    with caplog.at_level(logging.ERROR, logger="schedcancel.bulk"):
        outcomes = await _collect(cancel_many(client, ["SC-1", "SC-2"]))
    by_id = {o.schedule_id: o for o in outcomes}
    assert by_id["SC-1"].kind is OutcomeKind.ERROR
    assert by_id["SC-1"].error_type == "KeyError"
    assert by_id["SC-2"].kind is OutcomeKind.CANCELLED
    assert "unexpected error in cancel of SC-1" in caplog.text


async def test_the_clients_own_api_key_is_scrubbed_too() -> None:
    """The client's own secrets (its public ``redactions``) are scrubbed as well."""
    client = FakeClient(
        answers={"SC-1": ScheduleResult(success=False, error_code=7040, error_message=API_KEY)},
        api_key=API_KEY,
    )
    outcomes = await _collect(cancel_many(client, ["SC-1"]))
    assert outcomes[0].error == "bulk***"


async def test_api_key_in_an_error_message_is_scrubbed(tmp_path: Path) -> None:
    """An apiKey echoed by an error never reaches the outcome or the journal."""
    client = FakeClient(answers={"SC-1": TransportError(f"GET /schedule/{API_KEY}/SC-1 failed")})
    path = tmp_path / "j.jsonl"
    outcomes = await _collect(cancel_many(client, ["SC-1"], api_key=API_KEY, journal=path))
    assert API_KEY not in (outcomes[0].error or "")
    assert API_KEY not in path.read_text(encoding="utf-8")
    assert "bulk***" in path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"concurrency": 0}, "concurrency must be >= 1, got 0"),
        ({"concurrency": 2.5}, "concurrency must be an int or None, got float"),
        ({"concurrency": "3"}, "concurrency must be an int or None, got str"),
        ({"concurrency": True}, "concurrency must be an int or None, got bool"),
        ({"priority": "high"}, "priority must be an int, got str"),
        ({"priority": 1.0}, "priority must be an int, got float"),
        ({"priority": None}, "priority must be an int, got NoneType"),
        ({"priority": False}, "priority must be an int, got bool"),
        ({"progress_interval": 0}, "progress_interval must be > 0"),
        ({"progress_interval": float("nan")}, "progress_interval must be > 0"),
        ({"progress_interval": "1"}, "progress_interval must be > 0 seconds, got '1'"),
        ({"progress_interval": True}, "progress_interval must be > 0 seconds, got True"),
        ({"max_consecutive_errors": 0}, "max_consecutive_errors must be >= 1"),
        ({"max_consecutive_errors": 1.5}, "max_consecutive_errors must be an int or None"),
        ({"max_consecutive_errors": True}, "max_consecutive_errors must be an int or None"),
        ({"total": -1}, "total must be >= 0, got -1"),
        ({"total": "10"}, "total must be an int or None, got str"),
        ({"total": 10.0}, "total must be an int or None, got float"),
        ({"progress": "yes"}, "progress must be callable, got str"),
        ({"journal": 3}, "journal must be a Journal, a path or None, got int"),
        ({"api_key": "bad key"}, "apiKey"),
    ],
)
def test_bad_arguments_fail_at_the_call(
    kwargs: dict[str, object], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad arguments raise InvalidParameterError when cancel_many is called, before any I/O.

    Nothing is sent, no journal is opened or created (a bool is no int here).
    """
    monkeypatch.chdir(tmp_path)
    client = FakeClient()
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        cancel_many(client, ["SC-1"], **{"journal": "j.jsonl", **kwargs})  # type: ignore[arg-type]
    assert client.calls == []
    assert list(tmp_path.iterdir()) == []


def test_ids_that_are_no_iterable_fail_at_the_call() -> None:
    """``ids=42`` is refused at the call, not when the first worker pulls from it."""
    with pytest.raises(InvalidParameterError, match="ids must be an iterable or async iterable"):
        cancel_many(FakeClient(), 42)  # type: ignore[arg-type]


async def test_an_infinite_progress_interval_reports_only_at_start_and_end() -> None:
    """``progress_interval=math.inf`` is a number > 0: reports at the start and the end only."""
    reports: list[BulkProgress] = []
    outcomes = await _collect(
        cancel_many(FakeClient(), _ids(3), progress=reports.append, progress_interval=math.inf)
    )
    assert len(outcomes) == 3
    assert [r.finished for r in reports] == [False, True]


@pytest.mark.parametrize("ids", ["SC-1234", b"SC-1234"])
def test_a_single_string_is_refused_not_split_into_characters(ids: object) -> None:
    """``cancel_many(client, "SC-1234")`` raises instead of cancelling "S", "C", "-"..."""
    client = FakeClient()
    with pytest.raises(InvalidParameterError, match="not a single str"):
        cancel_many(client, ids)  # type: ignore[arg-type]
    assert client.calls == []


def test_default_concurrency_is_two_windows_of_the_total_limit() -> None:
    """Default workers: twice the API user's limit, capped at 1024."""
    assert default_concurrency(RateLimits()) == 120
    assert default_concurrency(RateLimits(total=1)) == 2
    assert default_concurrency(HUGE) == 1024


# --------------------------------------------------------------------------- streaming, memory


@pytest.mark.looptime
async def test_input_is_consumed_only_as_workers_free_up() -> None:
    """At most ``concurrency`` ids are taken ahead of the outcomes; calls never exceed it."""
    taken = 0
    yielded = 0
    ahead: list[int] = []

    def source() -> Iterator[str]:
        nonlocal taken
        for schedule_id in _ids(500):
            taken += 1
            ahead.append(taken - yielded)
            yield schedule_id

    client = FakeClient(latency={sid: 1.0 + (i % 7) / 10 for i, sid in enumerate(_ids(500))})
    async for _ in cancel_many(client, source(), concurrency=8):
        yielded += 1
    assert yielded == 500
    assert client.peak == 8
    # 8 workers each hold one id, and 8 finished outcomes may wait in the queue for the consumer.
    assert max(ahead) <= 8 + 8 + 1


@pytest.mark.scale
async def test_a_hundred_thousand_ids_stream_in_bounded_memory() -> None:
    """100,000 ids from a generator peak under 8 MB of traced memory (the id table is 2.4 MB).

    Kept: only 9 bytes per table slot, and ``concurrency`` ids at a time. A job
    that held the ids as strings or kept its outcomes would need over 10 MB.
    The million-id run is ``benchmarks/bench_bulk_memory.py`` (peak ~29 MB).
    """
    count = 100_000
    client = FakeClient(limiter=FakeLimiter())
    client.calls = _DiscardingList()
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        done = 0
        async for outcome in cancel_many(client, (f"SC-{i:010d}" for i in range(count))):
            done += outcome.ok
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert done == count
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


async def test_a_long_run_of_skipped_ids_hands_the_loop_back() -> None:
    """Ids skipped without a request (duplicates here, journal ids on a resume) still let
    other tasks run: the job yields every 1,024 items it reads."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    seen: list[int] = []

    def source() -> Iterator[str]:
        yield "SC-1"
        for _ in range(4 * 1024):
            seen.append(ticks)
            yield "SC-1"

    other = asyncio.create_task(ticker())
    try:
        outcomes = [outcome async for outcome in cancel_many(FakeClient(), source())]
    finally:
        other.cancel()
    assert [outcome.schedule_id for outcome in outcomes] == ["SC-1"]
    # Read without a request, 4,096 items: the other task ran in between, four times or so.
    assert len(set(seen)) >= 4


class _DiscardingList(list[str]):
    """A call log that keeps nothing (the memory test must not measure its own bookkeeping)."""

    def append(self, item: str) -> None:
        """Drop the item."""


def test_id_table_keeps_distinct_ids_and_grows() -> None:
    """The fingerprint table stores tags, replaces them, and keeps them through growth."""
    table = _IdTable(capacity=4)
    ids = _ids(1000)
    for i, schedule_id in enumerate(ids):
        table.put(schedule_id, 1 + i % 5)
    assert len(table) == 1000
    assert table.nbytes == 2048 * 9
    assert all(table.get(s) == 1 + i % 5 for i, s in enumerate(ids))
    assert table.get("SC-not-there") == 0
    table.put(ids[0], 7)
    assert table.get(ids[0]) == 7
    assert len(table) == 1000


def test_id_table_probes_past_colliding_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Different ids whose fingerprints share a slot are all kept (linear probing)."""
    fingerprints = {"a": 16, "b": 32, "c": 48}
    monkeypatch.setattr(_IdTable, "_fingerprint", staticmethod(fingerprints.__getitem__))
    table = _IdTable(capacity=16)
    for tag, text in enumerate("abc", start=1):
        table.put(text, tag)
    assert [table.get(text) for text in "abc"] == [1, 2, 3]


# --------------------------------------------------------------------------- the journal


async def test_journal_gets_one_line_per_outcome_with_run_lines(tmp_path: Path) -> None:
    """Each outcome is journaled (as it is yielded) between a start and an end run line."""
    path = tmp_path / "j.jsonl"
    client = FakeClient(answers={"SC-2": UNKNOWN})
    seen_in_journal = [
        outcome.schedule_id in _journal_ids(path)
        async for outcome in cancel_many(client, ["SC-1", "SC-2", "bad id"], journal=path)
    ]
    assert seen_in_journal == [True, True, True]
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["run"] == "start"
    assert lines[-1]["run"] == "end"
    assert lines[-1]["counts"] == {"cancelled": 1, "failed": 1, "invalid": 1}
    records = {line["id"]: line for line in lines[1:-1]}
    assert records["SC-1"]["outcome"] == "cancelled"
    assert records["SC-2"]["error_code"] == 7040
    assert records["bad id"]["outcome"] == "invalid"


async def test_run_line_holds_only_a_redacted_api_key(tmp_path: Path) -> None:
    """The start line records the apiKey redacted, never whole."""
    path = tmp_path / "j.jsonl"
    await _collect(cancel_many(FakeClient(), ["SC-1"], api_key=API_KEY, journal=path))
    text = path.read_text(encoding="utf-8")
    assert API_KEY not in text
    start = json.loads(text.splitlines()[0])
    assert start["api_key"] == "bulk***"
    assert start["at"].endswith("+00:00")
    other = tmp_path / "other.jsonl"
    await _collect(cancel_many(FakeClient(api_key="clientdefaultkey"), ["SC-1"], journal=other))
    assert json.loads(other.read_text(encoding="utf-8").splitlines()[0])["api_key"] == "clie***"


async def test_resume_skips_final_ids_and_retries_the_rest(tmp_path: Path) -> None:
    """On an existing journal, final ids are not sent again; errors and 7002 are retried."""
    path = tmp_path / "j.jsonl"
    earlier = [
        {"id": "SC-1", "outcome": "cancelled"},
        {"id": "SC-2", "outcome": "already_cancelled"},
        {"id": "SC-3", "outcome": "failed", "error_code": 7040},
        {"id": "SC-4", "outcome": "failed", "error_code": 7002},
        {"id": "SC-5", "outcome": "error", "error_type": "TransportError"},
        {"id": "bad id", "outcome": "invalid"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in earlier), encoding="utf-8")
    client = FakeClient()
    reports: list[BulkProgress] = []
    items = ["SC-1", "SC-2", "SC-3", "SC-4", "SC-5", "bad id", "SC-6", "SC-1"]
    outcomes = await _collect(cancel_many(client, items, journal=path, progress=reports.append))
    assert sorted(client.calls) == ["SC-4", "SC-5", "SC-6"]
    assert sorted(o.schedule_id for o in outcomes) == ["SC-4", "SC-5", "SC-6"]
    last = reports[-1]
    assert last.skipped == 4
    assert last.duplicates == 1
    assert last.journal_counts[OutcomeKind.CANCELLED] == 1
    assert last.journal_counts[OutcomeKind.ALREADY_CANCELLED] == 1
    assert last.journal_counts[OutcomeKind.FAILED] == 1
    assert last.journal_counts[OutcomeKind.INVALID] == 1
    assert last.completed == len(items)


async def test_retry_failed_sends_failed_ids_again(tmp_path: Path) -> None:
    """With ``retry_failed`` an id whose journal line is ``failed`` is sent again."""
    path = tmp_path / "j.jsonl"
    path.write_text('{"id":"SC-3","outcome":"failed","error_code":7040}\n', encoding="utf-8")
    client = FakeClient()
    await _collect(cancel_many(client, ["SC-3"], journal=path, retry_failed=True))
    assert client.calls == ["SC-3"]


async def test_an_open_journal_is_used_and_left_open(tmp_path: Path) -> None:
    """A Journal object passed in is written to and not closed."""
    path = tmp_path / "j.jsonl"
    with Journal.open(path) as journal:
        await _collect(cancel_many(FakeClient(), ["SC-1"], journal=journal))
        assert not journal.closed
        assert journal.appended == 3  # start, SC-1, end
    assert _journal_ids(path) == ["SC-1"]


async def test_a_busy_journal_fails_before_anything_is_sent(tmp_path: Path) -> None:
    """A journal another run holds raises on the first iteration; nothing is sent."""
    path = tmp_path / "j.jsonl"
    client = FakeClient()
    with Journal.open(path):
        outcomes = cancel_many(client, ["SC-1"], journal=path)
        with pytest.raises(InvalidParameterError, match="in use"):
            await _collect(outcomes)
    assert client.calls == []


async def test_a_failing_journal_stops_the_job_and_raises(
    tmp_path: Path, journal_fails_after: Callable[[int], None]
) -> None:
    """When a line cannot be written, no more ids start and the OSError is raised at the end."""
    path = tmp_path / "j.jsonl"
    journal_fails_after(3)
    client = FakeClient()
    yielded: list[BulkOutcome] = []
    outcomes = cancel_many(client, _ids(100), journal=path, concurrency=2)
    with pytest.raises(OSError, match="No space left"):
        await _collect_into(outcomes, yielded)
    assert len(client.calls) < 10
    # Start, then two outcomes: the answers that came after the disk filled are not reported.
    assert len(yielded) == 2
    assert _journal_ids(path) == [o.schedule_id for o in yielded]


@pytest.mark.looptime
async def test_a_send_line_that_cannot_be_written_stops_the_job(
    tmp_path: Path, journal_fails_after: Callable[[int], None]
) -> None:
    """The journal records each request as it is sent; a full disk there stops the job too."""
    path = tmp_path / "j.jsonl"
    journal_fails_after(1)  # the start line
    inner = RateLimiter(BURSTS)
    client = LimitedClient(inner, rtt=0.5)
    reports: list[BulkProgress] = []
    outcomes = cancel_many(client, _ids(30), journal=path, progress=reports.append)
    with pytest.raises(OSError, match="No space left"):
        await _collect(outcomes)
    assert len(client.sent) == 10  # the first window's burst went before the failure was known
    assert (reports[-1].done, reports[-1].unrecorded, reports[-1].withdrawn) == (0, 10, 10)
    await inner.aclose()


@pytest.mark.looptime
async def test_answers_the_journal_did_not_keep_are_not_counted(
    tmp_path: Path, journal_fails_after: Callable[[int], None]
) -> None:
    """On a full disk, progress counts only the outcomes in the journal (issue 20, item 6).

    The calls on the wire when the disk fills (at least five) are answered, cannot be
    journaled, and must appear neither among the outcomes nor in ``done``/``counts``.
    """
    path = tmp_path / "j.jsonl"
    journal_fails_after(4)  # start and three outcomes
    ids = _ids(20)
    client = FakeClient(latency={i: 0.01 * n for n, i in enumerate(ids)})
    reports: list[BulkProgress] = []
    yielded: list[BulkOutcome] = []
    outcomes = cancel_many(client, ids, journal=path, concurrency=8, progress=reports.append)
    with pytest.raises(OSError, match="No space left"):
        await _collect_into(outcomes, yielded)
    journaled = _journal_ids(path)
    assert len(journaled) == 3
    assert [o.schedule_id for o in yielded] == journaled
    last = reports[-1]
    assert last.finished
    assert last.done == sum(last.counts.values()) == 3
    assert last.unrecorded == len(client.calls) - 3 >= 5


# --------------------------------------------------------------------------- ending early


@pytest.mark.looptime
async def test_authentication_error_stops_new_sends_and_is_raised() -> None:
    """After a 401 no new id starts; calls in flight finish and are yielded; then it raises."""
    ids = _ids(40)
    client = FakeClient(
        answers={ids[0]: AuthenticationError("refused", http_status=401)},
        latency=dict.fromkeys(ids[1:], 1.0),
    )
    yielded: list[BulkOutcome] = []
    with pytest.raises(AuthenticationError):
        await _collect_into(cancel_many(client, ids, concurrency=5), yielded)
    assert len(client.calls) == 5
    assert len(yielded) == 5
    assert yielded[0].kind is OutcomeKind.ERROR


@pytest.mark.looptime
async def test_the_first_fatal_error_is_the_one_raised() -> None:
    """Two authentication errors at once: the job raises the first and logs once."""
    first = AuthenticationError("first", http_status=401)
    second = AuthenticationError("second", http_status=403)
    client = FakeClient(answers={"SC-1": first, "SC-2": second}, latency={"SC-1": 1.0, "SC-2": 2.0})
    with pytest.raises(AuthenticationError) as caught:
        await _collect(cancel_many(client, ["SC-1", "SC-2", "SC-3"], concurrency=2))
    assert caught.value is first


async def test_a_crashing_worker_stops_the_job_and_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug inside the engine (here: the journal raising) stops the job and is raised."""

    def broken(self: Journal, outcome: BulkOutcome) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(Journal, "aappend", broken)
    client = FakeClient()
    with pytest.raises(RuntimeError, match="bug"):
        await _collect(cancel_many(client, _ids(50), journal=tmp_path / "j.jsonl", concurrency=2))
    assert len(client.calls) <= 2


async def test_backend_error_is_fatal_too() -> None:
    """A limiter backend (Redis) failure stops the job: it would fail every id."""
    client = FakeClient(answers={"SC-000000": BackendError("redis down")})
    with pytest.raises(BackendError):
        await _collect(cancel_many(client, _ids(20), concurrency=1))
    assert client.calls == ["SC-000000"]


async def test_a_streak_of_errors_stops_the_job() -> None:
    """After ``max_consecutive_errors`` errors in a row the job stops and raises the last."""
    ids = _ids(100)
    client = FakeClient(answers={sid: ServerError("down", http_status=503) for sid in ids})
    with pytest.raises(ServerError):
        await _collect(cancel_many(client, ids, concurrency=1, max_consecutive_errors=10))
    assert len(client.calls) == 10


async def test_a_success_resets_the_streak_and_an_invalid_id_does_not() -> None:
    """A success between errors resets the streak; an invalid id between them does not."""
    broken = ["SC-e1", "SC-e2", "SC-ok", "SC-e3", "SC-e4"]
    answers: dict[str, ScheduleResult | BaseException] = {
        sid: TransportError("x") for sid in ["SC-e1", "SC-e2", "SC-e3", "SC-e4"]
    }
    client = FakeClient(answers=answers)
    outcomes = await _collect(cancel_many(client, broken, concurrency=1, max_consecutive_errors=3))
    assert len(outcomes) == 5
    client = FakeClient(answers=answers)
    unbroken = ["SC-e1", "SC-e2", "bad id", "SC-e3", "SC-ok"]
    with pytest.raises(TransportError):
        await _collect(cancel_many(client, unbroken, concurrency=1, max_consecutive_errors=3))
    assert client.calls == ["SC-e1", "SC-e2", "SC-e3"]


async def test_no_streak_limit_runs_everything() -> None:
    """With ``max_consecutive_errors=None`` every id is tried whatever fails."""
    ids = _ids(30)
    client = FakeClient(answers={sid: TransportError("x") for sid in ids})
    outcomes = await _collect(cancel_many(client, ids, max_consecutive_errors=None))
    assert len(outcomes) == 30


async def test_a_failing_input_ends_the_job_after_the_calls_in_flight() -> None:
    """An input that raises stops the feed; outcomes already due are yielded, then it raises."""

    def source() -> Iterator[str]:
        yield "SC-1"
        yield "SC-2"
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    yielded: list[BulkOutcome] = []
    with pytest.raises(UnicodeDecodeError):
        await _collect_into(cancel_many(FakeClient(), source(), concurrency=4), yielded)
    assert sorted(o.schedule_id for o in yielded) == ["SC-1", "SC-2"]


@pytest.mark.looptime
async def test_stop_starts_nothing_new_and_finishes_in_flight(tmp_path: Path) -> None:
    """Setting ``stop`` lets the calls running finish and journal; nothing new starts."""
    ids = _ids(100)
    client = FakeClient(latency=dict.fromkeys(ids, 1.0))
    stop = asyncio.Event()
    path = tmp_path / "j.jsonl"
    reports: list[BulkProgress] = []
    yielded: list[str] = []
    started_at_stop = 0
    async for outcome in cancel_many(
        client, ids, concurrency=10, stop=stop, journal=path, progress=reports.append
    ):
        yielded.append(outcome.schedule_id)
        if len(yielded) == 15:
            stop.set()
            started_at_stop = len(client.calls)
    assert 15 < started_at_stop < 100
    assert len(client.calls) == started_at_stop
    assert sorted(yielded) == sorted(client.calls)
    assert sorted(_journal_ids(path)) == sorted(client.calls)
    assert reports[-1].stopping
    assert reports[-1].finished
    assert reports[-1].remaining == 100 - started_at_stop
    end = json.loads(path.read_text(encoding="utf-8").splitlines()[-1])
    assert end["stopped"] is True


@pytest.mark.looptime
async def test_leaving_the_loop_early_cancels_the_calls_running() -> None:
    """Closing the generator early cancels the workers: nothing keeps running."""
    ids = _ids(50)
    client = FakeClient(latency={sid: float(i) for i, sid in enumerate(ids)})
    async with contextlib.aclosing(cancel_many(client, ids, concurrency=5)) as outcomes:
        async for _ in outcomes:
            break
    assert client.running == 0
    before = len(client.calls)
    await asyncio.sleep(100)
    assert len(client.calls) == before


async def _silent_after(
    ids: list[str], reached: list[str], silence: float = 3600.0
) -> AsyncIterator[str]:
    """Yield ``ids``, then say nothing for ``silence`` seconds (a producer still at work)."""
    for schedule_id in ids:
        yield schedule_id
    await asyncio.sleep(silence)
    reached.append("after the silence")
    yield "SC-late"


@pytest.mark.looptime
async def test_stop_ends_the_job_while_an_async_input_is_silent(tmp_path: Path) -> None:
    """``stop`` ends the job at once even while a worker waits for the next input item.

    The worker waiting on the input is stopped: the producer is never resumed,
    nothing after the silence is taken or sent, and the journal ends cleanly.
    """
    stop = asyncio.Event()
    reached: list[str] = []
    path = tmp_path / "j.jsonl"
    reports: list[BulkProgress] = []
    client = FakeClient()
    outcomes = cancel_many(
        client,
        _silent_after(["SC-1", "SC-2"], reached),
        concurrency=3,
        stop=stop,
        journal=path,
        progress=reports.append,
    )
    async with contextlib.aclosing(outcomes):
        async for outcome in outcomes:
            if outcome.schedule_id == "SC-2":
                asyncio.get_running_loop().call_later(5.0, stop.set)
    assert client.calls == ["SC-1", "SC-2"]
    assert reached == []
    assert (reports[-1].read, reports[-1].done, reports[-1].stopping) == (2, 2, True)
    assert sorted(_journal_ids(path)) == ["SC-1", "SC-2"]
    end = json.loads(path.read_text(encoding="utf-8").splitlines()[-1])
    assert (end["run"], end["stopped"]) == ("end", True)


@pytest.mark.looptime
async def test_a_fatal_error_ends_the_job_while_an_async_input_is_silent() -> None:
    """An authentication error stops the worker waiting on a silent input too, then raises."""
    reached: list[str] = []
    client = FakeClient(
        answers={"SC-1": AuthenticationError("refused", http_status=401)}, latency={"SC-1": 1.0}
    )
    with pytest.raises(AuthenticationError):
        await _collect(cancel_many(client, _silent_after(["SC-1"], reached), concurrency=2))
    assert client.calls == ["SC-1"]
    assert reached == []


@pytest.mark.looptime
async def test_an_input_that_swallows_the_stop_does_not_get_its_item_sent() -> None:
    """An async input that catches the cancel and yields anyway: its item is dropped, unsent."""
    stop = asyncio.Event()

    async def stubborn() -> AsyncIterator[str]:
        yield "SC-1"
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        yield "SC-2"

    client = FakeClient()
    asyncio.get_running_loop().call_later(5.0, stop.set)
    reports: list[BulkProgress] = []
    outcomes = await _collect(
        cancel_many(client, stubborn(), concurrency=2, stop=stop, progress=reports.append)
    )
    assert [o.schedule_id for o in outcomes] == client.calls == ["SC-1"]
    assert reports[-1].read == 1
    current = asyncio.current_task()
    assert current is not None
    assert current.cancelling() == 0


@pytest.mark.looptime
async def test_leaving_the_loop_while_the_input_is_silent_cancels_the_read() -> None:
    """Closing the generator while a worker waits on the input cancels that worker too."""
    reached: list[str] = []
    client = FakeClient()
    outcomes = cancel_many(client, _silent_after(["SC-1"], reached), stop=asyncio.Event())
    async with contextlib.aclosing(outcomes):
        async for _ in outcomes:
            break
    await asyncio.sleep(7200)
    assert reached == []
    assert client.calls == ["SC-1"]


@pytest.mark.looptime
async def test_an_authentication_error_withdraws_the_calls_queued_in_a_plain_limiter(
    tmp_path: Path,
) -> None:
    """A 401 stops the calls waiting in a plain limiter: they would carry the same credentials.

    Ten calls fit the window and are on the wire together (all refused, and
    all finish and are journaled); the twenty queued for the next window are
    withdrawn, never sent, counted as withdrawn and not journaled.
    """
    inner = RateLimiter(BURSTS)
    client = LimitedClient(inner, rtt=0.5, answer=AuthenticationError("refused", http_status=401))
    path = tmp_path / "j.jsonl"
    reports: list[BulkProgress] = []
    yielded: list[BulkOutcome] = []
    outcomes = cancel_many(client, _ids(100), concurrency=30, journal=path, progress=reports.append)
    with pytest.raises(AuthenticationError):
        await _collect_into(outcomes, yielded)
    assert len(client.sent) == 10
    assert len(yielded) == 10
    assert all(o.kind is OutcomeKind.ERROR for o in yielded)
    assert (reports[-1].withdrawn, reports[-1].in_flight) == (20, 0)
    assert sorted(_journal_ids(path)) == sorted(client.sent)
    assert inner.stats().queued == 0
    assert inner.stats().in_flight == 0
    await inner.aclose()


@pytest.mark.looptime
async def test_any_failure_that_stops_the_job_withdraws_the_calls_queued() -> None:
    """A job stopped by a failure (a 503 with a streak limit of 1) sends nothing queued.

    The ten calls on the wire finish; the twenty waiting for the next window
    are withdrawn through the job's gate, whatever the limiter.
    """
    inner = RateLimiter(BURSTS)
    client = LimitedClient(inner, rtt=0.5, answer=ServerError("down", http_status=503))
    reports: list[BulkProgress] = []
    with pytest.raises(ServerError):
        await _collect(
            cancel_many(
                client,
                _ids(100),
                concurrency=30,
                max_consecutive_errors=1,
                progress=reports.append,
            )
        )
    assert len(client.sent) == 10
    assert reports[-1].withdrawn == 20
    assert inner.stats().queued == 0
    await inner.aclose()


@pytest.mark.looptime
async def test_stop_withdraws_requests_waiting_for_the_limiter() -> None:
    """Setting ``stop`` withdraws the calls queued in the limiter unsent; sent ones finish."""
    inner = RateLimiter(BURSTS)
    client = LimitedClient(inner, rtt=0.5)
    stop = asyncio.Event()
    reports: list[BulkProgress] = []

    async def stop_soon() -> None:
        await asyncio.sleep(0.2)  # the first ten are on the wire, twenty wait for the window
        stop.set()

    stopper = asyncio.create_task(stop_soon())
    yielded = await _collect(
        cancel_many(client, _ids(100), concurrency=30, stop=stop, progress=reports.append)
    )
    await stopper
    assert len(client.sent) == 10
    assert len(yielded) == 10
    assert reports[-1].withdrawn == 20
    assert inner.stats().queued == 0
    assert inner.stats().total_used == 10  # the withdrawn used nothing
    await inner.aclose()


# --------------------------------------------------------------------------- progress


@pytest.mark.looptime
async def test_progress_reports_at_start_periodically_and_at_the_end() -> None:
    """The callback gets a first snapshot, one per interval while waiting, and a final one."""
    ids = _ids(4)
    client = FakeClient(latency=dict.fromkeys(ids, 10.0))
    client.limiter.limits = RateLimits(total=10**6, per_schedule=10**6, window=4.0, guard=1.0)
    client.limiter.rate_limited = 7  # 429s from before the job do not count
    reports: list[BulkProgress] = []

    def on_progress(progress: BulkProgress) -> None:
        reports.append(progress)
        client.limiter.rate_limited = 9

    await _collect(cancel_many(client, ids, progress=on_progress, progress_interval=1.0))
    first, last = reports[0], reports[-1]
    assert (first.done, first.total, first.finished) == (0, 4, False)
    assert 9 <= len(reports) <= 13  # about one per virtual second for 10 s, plus start and end
    assert last.finished
    assert last.eta == 0.0
    assert last.done == 4
    assert last.rate_limited == 2
    assert last.elapsed == pytest.approx(10.0)
    assert last.rate == pytest.approx(0.4)  # 4 in 10 s (longer than window + guard)
    assert reports[1].rate == 0.0
    assert dict(last.counts)[OutcomeKind.CANCELLED] == 4


@pytest.mark.looptime
async def test_progress_eta_follows_the_limiters_schedule() -> None:
    """With 25 ids and 10 per 10 s window, the first ETA is two windows plus guards."""
    inner = RateLimiter(attrs.evolve(BURSTS, window=10.0))
    client = LimitedClient(inner, rtt=0.0)
    reports: list[BulkProgress] = []
    await _collect(cancel_many(client, _ids(25), progress=reports.append, progress_interval=1.0))
    assert reports[0].eta == pytest.approx(22.0)  # rounds of 10: now, +11 s, +22 s
    mid = next(r for r in reports if r.done == 10)
    assert mid.eta == pytest.approx(22.0 - mid.elapsed, abs=1.0)
    assert mid.rate == pytest.approx(10 / 11)  # the first burst, spread over window + guard
    assert reports[-1].elapsed == pytest.approx(22.0)
    await inner.aclose()


PACED = RateLimits(total=20, per_schedule=10, window=10.0, guard=1.0)  # reserve 1: 19 per 11 s


@pytest.mark.looptime
@pytest.mark.parametrize("priority", [-1, 0], ids=["paced", "bursts"])
async def test_progress_eta_and_rate_match_what_happens(priority: int) -> None:
    """The ETA at each report is within one send interval (plus an RTT) of the time the job
    really took from there; the rate is the schedule's (issue 20, item 10: a paced job showed
    ``10/42 done | 9.8/min | ETA 0.0s`` with 32 s to go)."""
    inner = RateLimiter(PACED)
    rtt = 0.05
    client = LimitedClient(inner, rtt=rtt)
    reports: list[BulkProgress] = []
    await _collect(
        cancel_many(
            client, _ids(42), priority=priority, progress=reports.append, progress_interval=1.0
        )
    )
    end = reports[-1].elapsed
    interval = 11.0 / 19  # the background pace; bursts of 20 per 11 s are checked to it too
    expected_end = 41 * interval if priority < 0 else 2 * 11.0
    assert expected_end < end <= expected_end + 4 * rtt  # plus an RTT per window or so
    checked = [r for r in reports if not r.finished and r.done]
    assert len(checked) >= (20 if priority < 0 else 2)
    for report in checked:
        assert report.eta is not None
        assert abs(report.eta - (end - report.elapsed)) <= interval + rtt, report
    if priority < 0:
        for report in checked:
            assert report.rate == pytest.approx(1 / interval, rel=0.1), report
    await inner.aclose()


def _stats(**overrides: object) -> LimiterStats:
    values: dict[str, object] = {
        "queued": 0,
        "in_flight": 0,
        "total_used": 0,
        "total_limit": 60,
        "schedule_ids": 0,
        "next_free": 0.0,
    }
    values.update(overrides)
    return LimiterStats(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pending", "stats", "expected"),
    [
        (0, _stats(), 0.0),
        (30, _stats(), 0.0),
        (60, _stats(), 0.0),
        (61, _stats(), 61.0),
        (180, _stats(), 122.0),
        (30, _stats(total_used=60, next_free=12.0), 12.0),
        (90, _stats(total_used=60, next_free=12.0), 73.0),
        (30, _stats(total_used=60, in_flight=60, next_free=float("inf")), 61.0),
        (20, _stats(total_used=40), 0.0),
        (30, _stats(total_used=40), 61.0),
        (30, _stats(total_used=40, total_limit=40, next_free=5.0), 5.0),
        (11, _stats(mode="smooth"), 10 * 1.01),
    ],
)
def test_estimate_eta(pending: int, stats: LimiterStats, expected: float) -> None:
    """ETA: rounds of the API user's limit per window + guard, from the room there is now."""
    assert estimate_eta(pending, stats, RateLimits()) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("pending", "stats", "limits", "expected"),
    [
        # A quiet budget (nothing counting): 55 at once (60 - reserve 1 - depth 4), the
        # next 4 one interval (61/59 s) apart before the burst frees at 61 s, then one per
        # interval (issue 24; before, one per interval from the first).
        (1, _stats(), RateLimits(), 0.0),
        (55, _stats(), RateLimits(), 0.0),
        (57, _stats(), RateLimits(), 61 - 3 * 61 / 59),
        (60, _stats(), RateLimits(), 61.0),
        (100, _stats(), RateLimits(), 61 + 40 * 61 / 59),
        # Mid-job: the limiter's next background slot, then one per interval.
        (30, _stats(total_used=30, background_next_free=0.4), RateLimits(), 0.4 + 29 * 61 / 59),
        (
            30,
            _stats(total_used=30, next_free=2.0, background_next_free=0.4),
            RateLimits(),
            2.0 + 29 * 61 / 59,
        ),
        (30, _stats(total_used=30, background_next_free=math.inf), RateLimits(), 29 * 61 / 59),
        (11, _stats(mode="smooth"), RateLimits(), 10 * 61 / 59),  # the wider spacing
        (11, _stats(), RateLimits(interactive_reserve=0), 0.0),  # no reserve: bursts
        (11, _stats(total_limit=1), RateLimits(), 10 * 61.0),  # no room for a reserve: bursts
    ],
)
def test_estimate_eta_of_a_paced_job(
    pending: int, stats: LimiterStats, limits: RateLimits, expected: float
) -> None:
    """Background calls: the burst a quiet budget allows, else the limiter's next background
    slot, then one per send interval."""
    assert estimate_eta(pending, stats, limits, background=True) == pytest.approx(expected)


# --------------------------------------------------------------------------- the real client


async def test_real_client_against_the_mock_server_meets_no_429(tmp_path: Path) -> None:
    """ScheduleClient.cancel_many: each kind of answer, journaled, never over the server's limit."""
    limits = RateLimits(total=10, per_schedule=10, window=0.5, guard=0.05)
    server_limits = ServerLimits(total=10, per_schedule=10, window=0.5)
    path = tmp_path / "j.jsonl"
    async with MockScheduleServer(limits=server_limits) as server:
        server.seed(_ids(30))
        server.seed(["SC-done"], "CANCELLED")
        reports: list[BulkProgress] = []
        async with server.client(limits=limits) as client:
            ids = [*_ids(30), "SC-done", "SC-unknown", "bad id!"]
            outcomes = await _collect(
                client.cancel_many(ids, journal=path, progress=reports.append)
            )
        assert server.recorder.count_rate_limited() == 0
        assert server.recorder.max_arrivals_in_window(0.5) <= 10
    kinds = {o.schedule_id: o.kind for o in outcomes}
    assert [kinds[i] for i in _ids(30)] == [OutcomeKind.CANCELLED] * 30
    assert kinds["SC-done"] is OutcomeKind.ALREADY_CANCELLED
    assert kinds["SC-unknown"] is OutcomeKind.FAILED
    assert kinds["bad id!"] is OutcomeKind.INVALID
    assert sorted(_journal_ids(path)) == sorted(ids)
    assert reports[-1].rate_limited == 0
    assert reports[0].eta is not None
    assert reports[0].eta >= 1.0  # 33 ids at 10 per 0.55 s: at least two more windows


async def test_a_wrong_base_url_path_stops_the_job_at_the_first_404(tmp_path: Path) -> None:
    """A base URL typo (/api/v33): the mock server, like any, answers 404 for the unknown
    route; the job stops at the first, as for a 401, instead of sending every id."""
    path = tmp_path / "j.jsonl"
    yielded: list[BulkOutcome] = []
    async with MockScheduleServer() as server:
        server.seed(_ids(30))
        base_url = server.base_url.replace("/api/v3", "/api/v33")
        async with server.client(base_url=base_url) as client:
            with pytest.raises(EndpointNotFoundError, match="no such route"):
                await _collect_into(
                    client.cancel_many(_ids(30), journal=path, concurrency=1), yielded
                )
        assert len(server.recorder) == 0  # nothing reached a route of the API
    assert [(o.kind, o.error_type) for o in yielded] == [
        (OutcomeKind.ERROR, "EndpointNotFoundError")
    ]
    assert not any(o.final for o in read_journal(path))


@pytest.mark.looptime
async def test_an_answer_about_another_schedule_is_an_error_a_rerun_sends_again(
    tmp_path: Path,
) -> None:
    """A 200 "cancelled" naming another scheduleId (a proxy mixing answers up) is no success:
    an error outcome, not final in the journal; the re-run sends those ids again."""
    from aiohttp import web  # noqa: PLC0415 - only this test serves its own answers

    async def about_another(request: web.Request) -> web.Response:
        return web.json_response(
            {"success": True, "scheduleId": "SC-OTHER", "newStatus": "CANCELLED"}
        )

    app = web.Application()
    app.router.add_post("/api/v3/schedule/{key}/{sid}/cancel", about_another)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ids, path = _ids(3), tmp_path / "j.jsonl"
    try:
        async with MockScheduleServer() as server:
            port = runner.addresses[0][1]
            async with server.client(base_url=f"http://127.0.0.1:{port}/api/v3") as client:
                first = await _collect(client.cancel_many(ids, journal=path))
            server.seed(ids)
            async with server.client() as client:
                second = await _collect(client.cancel_many(ids, journal=path))
    finally:
        await runner.cleanup()
    assert {(o.kind, o.error_type) for o in first} == {(OutcomeKind.ERROR, "ResponseMismatchError")}
    assert all(isinstance(o.exception, ResponseMismatchError) for o in first)
    assert "'SC-OTHER'" in str(first[0].error)
    assert [o.kind for o in second] == [OutcomeKind.CANCELLED] * 3
    assert sorted(o.schedule_id for o in second) == ids


async def test_progress_counts_the_429s_the_limiter_saw() -> None:
    """When the server is stricter than the client thinks, the 429s show in progress."""
    limits = RateLimits(total=10, per_schedule=10, window=0.5, guard=0.05)
    async with MockScheduleServer(
        limits=ServerLimits(total=5, per_schedule=10, window=0.5)
    ) as server:
        server.seed(_ids(20))
        reports: list[BulkProgress] = []
        async with server.client(limits=limits) as client:
            outcomes = await _collect(client.cancel_many(_ids(20), progress=reports.append))
        rejected = server.recorder.count_rate_limited()
    assert rejected > 0
    assert reports[-1].rate_limited == rejected
    assert all(o.ok for o in outcomes)
