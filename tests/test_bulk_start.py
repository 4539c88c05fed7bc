"""start_many: each row's intent journaled before its request, unknown outcomes never re-sent,
conflicts by key and by body, explicit retries of the rows checked."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from schedcancel import (
    BulkOutcome,
    InvalidParameterError,
    Operation,
    OutcomeKind,
    RateLimits,
    RetryPolicy,
    StartRow,
    StartSchedule,
)
from schedcancel._bulk.intents import StartLedger, intent_record
from schedcancel._bulk.journal import RecentRequests, read_journal
from schedcancel._bulk.runner import START_MAX_CONSECUTIVE_ERRORS
from schedcancel.errors import OutcomeUnknownError
from schedcancel.testing import Fault, Faults, MockScheduleServer, ServerLimits

LIMITS = RateLimits(total=1000, per_schedule=10, window=1.0, guard=0.05)
SERVER_LIMITS = ServerLimits(total=1000, per_schedule=10, window=1.0)
FIRST = datetime(2030, 1, 1, 9, tzinfo=UTC)


def _row(registration: str, amount: str = "9.90", key: str | None = None) -> StartRow:
    schedule = StartSchedule(
        registration_uuid=registration,
        amount=amount,
        currency="EUR",
        period_length=1,
        period_unit="MONTH",
        start_date_time=FIRST,
        merchant_meta_data=f"customer {registration}",
    )
    return StartRow(schedule) if key is None else StartRow(schedule, key)


ROWS = [_row(f"RG-{n}") for n in range(6)]


def created(server: MockScheduleServer) -> Counter[str]:
    """Schedules the server holds, per registrationUuid: what a second start would show."""
    schedules = (server.schedule(sid) for sid in server.statuses)
    return Counter(s.registration_uuid for s in schedules if s is not None)


async def _drain(outcomes: AsyncIterator[BulkOutcome], into: list[BulkOutcome]) -> None:
    async for outcome in outcomes:
        into.append(outcome)  # noqa: PERF401 - kept up to the error


async def _collect(outcomes: AsyncIterator[BulkOutcome]) -> dict[str, BulkOutcome]:
    return {outcome.schedule_id: outcome async for outcome in outcomes}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_start_many_creates_each_row_once_and_journals_its_intent_first(
    tmp_path: Path,
) -> None:
    """Every row is started; its outcome names the new schedule; its intent line (durable)
    precedes the request and its outcome line; a re-run sends nothing."""
    path = tmp_path / "j.jsonl"
    async with MockScheduleServer(limits=SERVER_LIMITS) as server:
        async with server.client(limits=LIMITS) as client:
            outcomes = await _collect(client.start_many(ROWS, journal=path))
            sent = server.recorder.count()
            progress: list[Any] = []
            again = await _collect(client.start_many(ROWS, journal=path, progress=progress.append))
            assert server.recorder.count() == sent == len(ROWS)
        assert created(server) == {row.key: 1 for row in ROWS}
        for row in ROWS:
            outcome = outcomes[row.key]
            assert outcome.kind is OutcomeKind.STARTED
            assert outcome.ok
            assert outcome.final
            assert outcome.new_schedule_id is not None
            schedule = server.schedule(outcome.new_schedule_id)
            assert schedule is not None
            assert (schedule.registration_uuid, schedule.amount) == (row.key, "9.90")
            assert outcome.change == row.digest
            assert outcome.values == row.values()
            assert "merchantMetaData" not in (outcome.values or {})
    assert again == {}
    assert progress[-1].journal_counts[OutcomeKind.STARTED] == len(ROWS)
    lines = _lines(path)
    assert lines[0]["operation"] == "start"
    for row in ROWS:
        intent = next(n for n, line in enumerate(lines) if line.get("row") == row.key)
        outcome_at = next(n for n, line in enumerate(lines) if line.get("id") == row.key)
        assert intent < outcome_at
        assert lines[intent]["run"] == "intent"
        assert lines[intent]["change"] == row.digest
        assert "customer" not in json.dumps(lines[intent])  # merchantMetaData stays out
    read = {o.schedule_id: o.new_schedule_id for o in read_journal(path)}
    assert read == {key: o.new_schedule_id for key, o in outcomes.items()}


@pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.DROP, Fault.TRUNCATED])
async def test_a_start_that_may_have_landed_is_unknown_and_never_sent_again(
    tmp_path: Path, fault: Fault
) -> None:
    """A 5xx, a dropped connection or a cut answer: ``unknown``, final, not sent by a re-run;
    the server holds at most the one schedule the lost answer created."""
    path = tmp_path / "j.jsonl"
    async with MockScheduleServer(limits=SERVER_LIMITS) as server:
        async with server.client(limits=LIMITS, retry=RetryPolicy(attempts=3)) as client:
            server.script(fault)
            first = await _collect(client.start_many(ROWS[:1], journal=path))
            progress: list[Any] = []
            again = await _collect(
                client.start_many(ROWS[:1], journal=path, progress=progress.append)
            )
            assert server.recorder.count() == 1  # not retried, not re-sent
        expected = 0 if fault is Fault.SERVER_ERROR else 1
        assert created(server)[ROWS[0].key] == expected
    unknown = first[ROWS[0].key]
    assert unknown.kind is OutcomeKind.UNKNOWN
    assert unknown.error_type == "OutcomeUnknownError"
    assert not unknown.ok
    assert unknown.final
    assert unknown.change == ROWS[0].digest
    assert again == {}
    assert progress[-1].journal_counts[OutcomeKind.UNKNOWN] == 1


async def test_a_killed_runs_intent_without_outcome_is_reported_unknown_once(
    tmp_path: Path,
) -> None:
    """An intent with no outcome after it (the run died with the request out) makes its row
    ``unknown`` in the next run, journaled; the run after that skips it as final."""
    path = tmp_path / "j.jsonl"
    path.write_text(
        json.dumps({"run": "start", "operation": "start"})
        + "\n"
        + json.dumps(intent_record(ROWS[0]))
        + "\n",
        encoding="utf-8",
    )
    server = MockScheduleServer(limits=SERVER_LIMITS)
    async with server, server.client(limits=LIMITS) as client:
        first = [o async for o in client.start_many(ROWS[:2], journal=path)]
        progress: list[Any] = []
        second = [
            o async for o in client.start_many(ROWS[:2], journal=path, progress=progress.append)
        ]
        assert server.recorder.count() == 1  # only the second row
    assert [(o.schedule_id, o.kind) for o in first] == [
        (ROWS[0].key, OutcomeKind.UNKNOWN),
        (ROWS[1].key, OutcomeKind.STARTED),
    ]
    assert "ended before its answer" in (first[0].error or "")
    assert "check before re-running" in (first[0].error or "")
    assert first[0].values == ROWS[0].values()
    assert second == []
    assert progress[-1].journal_counts[OutcomeKind.UNKNOWN] == 1
    assert progress[-1].journal_counts[OutcomeKind.STARTED] == 1


async def test_retry_unknown_sends_the_rows_checked_and_refuses_the_others(
    tmp_path: Path,
) -> None:
    """Only the keys named, and only keys whose outcome is unknown in the journal."""
    path = tmp_path / "j.jsonl"
    async with MockScheduleServer(limits=SERVER_LIMITS) as server:
        async with server.client(limits=LIMITS) as client:
            server.script(Fault.SERVER_ERROR)  # nothing created: the check finds no schedule
            first = await _collect(client.start_many(ROWS[:2], journal=path, concurrency=1))
            assert first[ROWS[0].key].kind is OutcomeKind.UNKNOWN
            with pytest.raises(InvalidParameterError, match="not unknown"):
                await _collect(
                    client.start_many(ROWS[:2], journal=path, retry_unknown=[ROWS[1].key])
                )
            with pytest.raises(InvalidParameterError, match="not unknown"):
                await _collect(client.start_many(ROWS[:2], journal=path, retry_unknown=["typo"]))
            assert server.recorder.count() == 2
            retried = await _collect(
                client.start_many(ROWS[:2], journal=path, retry_unknown=[ROWS[0].key])
            )
            after = await _collect(client.start_many(ROWS[:2], journal=path))
        assert created(server) == {ROWS[0].key: 1, ROWS[1].key: 1}
    assert retried[ROWS[0].key].kind is OutcomeKind.STARTED
    assert list(retried) == [ROWS[0].key]
    assert after == {}


async def test_retry_unknown_is_checked_before_any_io() -> None:
    """A str, another operation, or no journal: refused at the call."""
    async with MockScheduleServer() as server, server.client() as client:
        with pytest.raises(InvalidParameterError, match="not one str"):
            client.start_many(ROWS, journal="j", retry_unknown="RG-0")
        with pytest.raises(InvalidParameterError, match="needs the journal"):
            client.start_many(ROWS, retry_unknown=["RG-0"])
        with pytest.raises(InvalidParameterError, match="row keys"):
            client.start_many(ROWS, journal="j", retry_unknown=[7])  # type: ignore[list-item]
        options: Any = {"retry_unknown": ["x"]}  # not a BulkOptions key: start_many's
        with pytest.raises(InvalidParameterError, match="start only"):
            client.run_many(Operation.CANCEL, ["SC-1"], journal="j", **options)


async def test_a_row_refused_without_creating_anything_is_an_error_sent_again(
    tmp_path: Path,
) -> None:
    """429s past the limit: nothing was created, so ``error``, not final: a re-run sends it."""
    path = tmp_path / "j.jsonl"
    limits = RateLimits(total=1000, per_schedule=10, window=1.0, guard=0.05, max_rate_limited=0)
    async with MockScheduleServer(limits=SERVER_LIMITS) as server:
        async with server.client(limits=limits) as client:
            server.script(Fault.RATE_LIMITED)
            first = await _collect(client.start_many(ROWS[:1], journal=path))
            again = await _collect(client.start_many(ROWS[:1], journal=path))
        assert created(server) == {ROWS[0].key: 1}
    assert first[ROWS[0].key].kind is OutcomeKind.ERROR
    assert first[ROWS[0].key].error_type == "RateLimitedError"
    assert not first[ROWS[0].key].final
    assert again[ROWS[0].key].kind is OutcomeKind.STARTED


async def test_edited_duplicate_and_same_body_rows_are_conflicts_not_sent(
    tmp_path: Path,
) -> None:
    """A key final in the journal with other fields, a key given twice with other fields, or
    the same fields under another key: ``conflict``, not sent. The same row twice: once."""
    path = tmp_path / "j.jsonl"
    async with MockScheduleServer(limits=SERVER_LIMITS) as server:
        async with server.client(limits=LIMITS) as client:
            await _collect(client.start_many(ROWS[:2], journal=path))
            rows = [
                _row("RG-0", amount="19.90"),  # edited since it was started
                ROWS[1],  # started: skipped
                _row("RG-1", key="cust-1"),  # RG-1's very fields, under a new key
                _row("RG-2"),
                _row("RG-2"),  # the same row again: a duplicate
                _row("RG-2", amount="1.00"),  # the same key, other fields
            ]
            progress: list[Any] = []
            outcomes = [
                o async for o in client.start_many(rows, journal=path, progress=progress.append)
            ]
        assert created(server) == {"RG-0": 1, "RG-1": 1, "RG-2": 1}
    kinds = [(o.schedule_id, o.kind.value) for o in outcomes]
    assert sorted(kinds) == [
        ("RG-0", "conflict"),
        ("RG-2", "conflict"),
        ("RG-2", "started"),
        ("cust-1", "conflict"),
    ]
    by_key = {o.schedule_id: o for o in outcomes if o.kind is OutcomeKind.CONFLICT}
    assert ROWS[0].digest in (by_key["RG-0"].error or "")
    assert "under the key 'RG-1'" in (by_key["cust-1"].error or "")
    assert progress[-1].duplicates == 1
    assert progress[-1].skipped == 1


async def test_items_that_are_no_start_rows_are_invalid() -> None:
    """A start job takes StartRows only; other jobs take no StartRow."""
    async with MockScheduleServer() as server, server.client() as client:
        outcomes = [o async for o in client.start_many(["RG-1", 7])]
        cancel = [o async for o in client.cancel_many([ROWS[0]])]
        assert server.recorder.count() == 0
    assert {o.kind for o in outcomes} == {OutcomeKind.INVALID}
    assert "must be a StartRow, got str" in (outcomes[0].error or "")
    assert "must be a str, got StartRow" in (cancel[0].error or "")


async def test_an_intent_that_cannot_be_written_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk at the intent: the request is not sent, the job stops with the error."""
    from schedcancel._bulk.journal import Journal  # noqa: PLC0415 - patched below

    real = Journal.write_record

    def full(self: Journal, record: Any) -> None:
        if record.get("run") == "intent":
            raise OSError(28, "No space left on device")
        real(self, record)

    monkeypatch.setattr(Journal, "write_record", full)
    async with MockScheduleServer() as server, server.client(limits=LIMITS) as client:
        progress: list[Any] = []
        with pytest.raises(OSError, match="No space"):
            await _collect(
                client.start_many(ROWS[:3], journal=tmp_path / "j", progress=progress.append)
            )
        assert server.recorder.count() == 0
    assert progress[-1].done == 0
    assert progress[-1].withdrawn >= 1


async def test_a_start_job_stops_after_ten_unknowns_in_a_row(tmp_path: Path) -> None:
    """Each unknown row is one to check by hand: a start job stops sooner than 100."""
    rows = [_row(f"RG-S{n}") for n in range(30)]
    async with MockScheduleServer(limits=SERVER_LIMITS) as server:
        server.script(*[Fault.SERVER_ERROR] * 30)
        async with server.client(limits=LIMITS) as client:
            outcomes: list[BulkOutcome] = []
            job = client.start_many(rows, journal=tmp_path / "j", concurrency=1)
            with pytest.raises(OutcomeUnknownError):
                await _drain(job, outcomes)
    assert len(outcomes) == START_MAX_CONSECUTIVE_ERRORS
    assert {o.kind for o in outcomes} == {OutcomeKind.UNKNOWN}


def test_start_rows_check_their_key_and_digest_their_request() -> None:
    """The key defaults to the registration; a given one is checked; the digest covers every
    field, the shown values leave merchantMetaData and callbackUrl out."""
    row = ROWS[0]
    assert row.key == "RG-0"
    assert _row("RG-0", key="cust-9").key == "cust-9"
    assert _row("RG-0", key="cust-9").digest == row.digest
    assert _row("RG-0", amount="9.91").digest != row.digest
    assert row.values() == {
        "registrationUuid": "RG-0",
        "amount": "9.90",
        "currency": "EUR",
        "periodLength": 1,
        "periodUnit": "MONTH",
        "startDateTime": "2030-01-01T09:00:00+00:00",
    }
    for bad in ("", " cust", "a\x1bb", "x" * 101):
        with pytest.raises(InvalidParameterError, match="key"):
            _row("RG-0", key=bad)
    with pytest.raises(InvalidParameterError, match="must be a StartSchedule"):
        StartRow("RG-0")  # type: ignore[arg-type]


def test_the_ledger_keeps_each_rows_last_line() -> None:
    """An outcome after an intent answers it; an intent after an outcome (a retry) is out."""
    ledger = StartLedger()
    ledger.on_run(intent_record(ROWS[0]))
    ledger.on_run({"run": "intent", "row": 7})  # not a row key: ignored
    ledger.on_run({"run": "send", "schedule_id": "SC-1"})
    ledger.on_outcome(BulkOutcome(schedule_id="RG-0", kind=OutcomeKind.ERROR))
    ledger.on_outcome(BulkOutcome(schedule_id="RG-1", kind=OutcomeKind.STARTED))
    ledger.on_run({**intent_record(ROWS[2]), "at": "not a time"})
    assert [i.key for i in ledger.dangling()] == ["RG-2"]
    assert next(iter(ledger.dangling())).at is None
    assert [o.schedule_id for o in ledger.finals()] == ["RG-1"]
    assert ledger.unknown_keys() == {"RG-2"}
    assert [(o.schedule_id, o.kind.value) for o in ledger.outcomes()] == [
        ("RG-0", "error"),
        ("RG-1", "started"),
        ("RG-2", "unknown"),
    ]


def test_recent_requests_count_intents_without_a_schedule_id() -> None:
    """A start's intent is a request the API user's window counts, for no scheduleId."""
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    recent = RecentRequests(hold=61.0, now=now)
    recent.on_run({"run": "intent", "row": "RG-0", "at": "2026-12-06T11:59:50+00:00"})
    recent.on_run({"run": "intent", "row": "RG-1", "at": "2026-12-06T11:59:55+00:00"})
    recent.on_outcome(
        BulkOutcome(
            schedule_id="RG-0",
            kind=OutcomeKind.STARTED,
            at=datetime(2026, 12, 6, 11, 59, 52, tzinfo=UTC),
        )
    )
    assert sorted(recent.answered(), key=lambda item: item[1]) == [(None, 0.0), (None, 8.0)]


# -- 500 starts at the real limits, on looptime's virtual clock ---------------------------

W, N, GUARD = 60.0, 60, 1.0
LATENCY = (0.005, 0.02)  # seconds each way
STARTS = 500
#: Start takes a place at the API user's level only: the last of 500 can be sent
#: ceil(500 / 60) - 1 = 8 windows after the first at the earliest: 480 s, any client's floor.
FLOOR = (math.ceil(STARTS / N) - 1) * W
#: A background job (priority -1, the default) is paced one request per (W + guard) / (N - 1)
#: (``interactive_reserve`` 1): 499 intervals of 61/59 s = 515.9 s.
PACED = (STARTS - 1) * (W + GUARD) / (N - 1)


@pytest.mark.looptime
@pytest.mark.parametrize(("priority", "bound"), [(0, FLOOR), (-1, PACED)])
async def test_500_starts_at_the_real_limits_meet_no_429(
    tmp_path: Path, priority: int, bound: float
) -> None:
    """500 rows, 60 per 60 s per API user, guard 1 s: 500 schedules, 0 x 429, first to last
    arrival within 1.03 x the bound (the floor in bursts, the pacing in the background).

    Measured (seed 25), first to last arrival: 488.21 s for the floor of 480 s (1.0171) at
    priority 0; 516.20 s for the paced 515.92 s (1.0006) at the default background priority.
    """
    rows = [_row(f"RG-V{n:04d}") for n in range(STARTS)]
    server = MockScheduleServer(
        limits=ServerLimits(total=N, per_schedule=10, window=W),
        faults=Faults(request_latency=LATENCY, response_latency=LATENCY, seed=25),
    )
    limits = RateLimits(total=N, per_schedule=10, window=W, guard=GUARD)
    async with server, server.client(limits=limits) as client:
        outcomes = client.start_many(rows, journal=tmp_path / "j", priority=priority)
        kinds = Counter([o.kind async for o in outcomes])
        schedules = created(server)
    recorder = server.recorder
    assert kinds == {OutcomeKind.STARTED: STARTS}
    assert schedules == {row.key: 1 for row in rows}
    assert recorder.count_rate_limited() == 0
    assert recorder.max_arrivals_in_window(W) <= N
    first, last = recorder.first_arrival(), recorder.last_arrival()
    assert first is not None
    assert last is not None
    assert bound <= last - first <= 1.03 * bound


async def test_failed_rows_are_final_unless_retry_failed_and_no_journal_needs_no_intent(
    tmp_path: Path,
) -> None:
    """A refusal (7020 unknown registration) is final: not sent again, but with retry_failed;
    without a journal the job runs, with nothing to resume."""
    path = tmp_path / "j.jsonl"
    server = MockScheduleServer(limits=SERVER_LIMITS, unknown_registrations="error")
    server.seed_registrations(["RG-0", "RG-1"])
    rows = [ROWS[0], _row("RG-NOPE")]
    async with server, server.client(limits=LIMITS) as client:
        first = await _collect(client.start_many(rows, journal=path))
        await _collect(client.start_many(rows, journal=path))
        assert server.recorder.count() == 2
        again = await _collect(client.start_many(rows, journal=path, retry_failed=True))
        assert server.recorder.count() == 3
        alone = await _collect(client.start_many(ROWS[1:2]))
    assert first["RG-NOPE"].kind is OutcomeKind.FAILED
    assert first["RG-NOPE"].error_code == 7020
    assert first["RG-NOPE"].final
    assert list(again) == ["RG-NOPE"]
    assert alone["RG-1"].kind is OutcomeKind.STARTED
    assert created(server) == {"RG-0": 1, "RG-1": 1}


async def test_retry_unknown_sends_a_row_whose_intent_has_no_outcome(tmp_path: Path) -> None:
    """A dangling intent named in retry_unknown is sent; one not named stays unknown."""
    path = tmp_path / "j.jsonl"
    lines = [
        {"run": "start", "operation": "start"},
        intent_record(ROWS[0]),
        {"run": "intent", "row": "RG-X", "at": "2026-12-06T00:00:00+00:00"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    async with MockScheduleServer(limits=SERVER_LIMITS) as server:
        async with server.client(limits=LIMITS) as client:
            outcomes = await _collect(
                client.start_many(ROWS[:1], journal=path, retry_unknown=[ROWS[0].key])
            )
            unknown = await _collect(client.start_many([_row("RG-X")], journal=path))
        assert created(server) == {"RG-0": 1}
    assert outcomes[ROWS[0].key].kind is OutcomeKind.STARTED
    assert unknown["RG-X"].kind is OutcomeKind.UNKNOWN
    assert "fields have changed" in (unknown["RG-X"].error or "")


async def test_an_intent_the_journal_closed_under_is_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The journal closed while the intent was written (the job torn down): not sent."""
    from schedcancel._bulk.journal import Journal  # noqa: PLC0415 - patched below

    real = Journal.write_record

    def closing(self: Journal, record: Any) -> None:
        real(self, record)
        if record.get("run") == "intent":
            self.close()

    monkeypatch.setattr(Journal, "write_record", closing)
    async with MockScheduleServer() as server, server.client(limits=LIMITS) as client:
        progress: list[Any] = []
        await _collect(
            client.start_many(ROWS[:1], journal=tmp_path / "j", progress=progress.append)
        )
        assert server.recorder.count() == 0
    assert progress[-1].withdrawn == 1
