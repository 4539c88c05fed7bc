"""update_many: per-row changes through the bulk job, their digests in the journal, conflicts."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
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
    ScheduleStatus,
    UpdateRow,
    UpdateSchedule,
)
from schedcancel._bulk.journal import outcome_kinds, read_journal
from schedcancel.testing import Fault, Faults, MockScheduleServer, ServerLimits

LIMITS = RateLimits(total=1000, per_schedule=10, window=1.0, guard=0.05)
SERVER_LIMITS = ServerLimits(total=1000, per_schedule=10, window=1.0)
IDS = [f"SC-U{n}" for n in range(6)]
NO_RETRY = RetryPolicy(attempts=1)


def _server() -> MockScheduleServer:
    server = MockScheduleServer(limits=SERVER_LIMITS)
    server.seed(IDS, ScheduleStatus.ACTIVE)
    server.seed(["SC-X"], ScheduleStatus.CANCELLED)
    return server


def _row(schedule_id: str, amount: str = "12.90", currency: str = "EUR") -> UpdateRow:
    return UpdateRow(schedule_id, UpdateSchedule(amount=amount, currency=currency))


async def _collect(outcomes: AsyncIterator[BulkOutcome]) -> dict[str, BulkOutcome]:
    return {outcome.schedule_id: outcome async for outcome in outcomes}


def _outcome_lines(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if "id" in line]


async def test_update_many_applies_each_rows_own_change(tmp_path: Path) -> None:
    """Each row's fields land on its schedule; the journal keeps each change's digest."""
    path = tmp_path / "j.jsonl"
    rows = [_row(sid, amount=f"{n}.50") for n, sid in enumerate(IDS)]
    rows.append(_row("SC-X"))
    rows.append(_row("SC-GONE"))
    async with _server() as server, server.client(limits=LIMITS) as client:
        outcomes = await _collect(client.update_many(rows, journal=path))
        state = {sid: server.schedule(sid) for sid in IDS}
    for n, sid in enumerate(IDS):
        schedule = state[sid]
        assert schedule is not None
        assert (schedule.amount, schedule.currency) == (f"{n}.50", "EUR")
        assert outcomes[sid].kind is OutcomeKind.UPDATED
        assert outcomes[sid].ok
        assert outcomes[sid].final
        assert outcomes[sid].change == rows[n].digest
        assert outcomes[sid].values == {"amount": f"{n}.50", "currency": "EUR"}
    assert outcomes["SC-X"].kind is OutcomeKind.FAILED  # 7070: a cancelled schedule
    assert outcomes["SC-GONE"].error_code == 7040
    lines = _outcome_lines(path)
    assert {line["id"]: line["change"] for line in lines} == {r.schedule_id: r.digest for r in rows}
    assert json.loads(path.read_text().splitlines()[0])["operation"] == "update"
    assert [o.change for o in read_journal(path)] == [line["change"] for line in lines]


async def test_a_rerun_skips_rows_applied_and_reports_a_changed_row_as_a_conflict(
    tmp_path: Path,
) -> None:
    """Same change: skipped, not sent. Another change for an id already updated: a conflict,
    not sent, not final (it is reported again by every later run)."""
    path = tmp_path / "j.jsonl"
    rows = [_row(sid) for sid in IDS]
    async with _server() as server, server.client(limits=LIMITS) as client:
        await _collect(client.update_many(rows, journal=path))
        sent = server.recorder.count()
        changed = [*rows[:-1], _row(IDS[-1], amount="99.00")]
        progress: list[Any] = []
        outcomes = await _collect(
            client.update_many(changed, journal=path, progress=progress.append)
        )
        assert server.recorder.count() == sent  # nothing was sent
        last = server.schedule(IDS[-1])
        again = await _collect(client.update_many(changed, journal=path))
    assert last is not None
    assert last.amount == "12.90"
    conflict = outcomes[IDS[-1]]
    assert list(outcomes) == [IDS[-1]]
    assert conflict.kind is OutcomeKind.CONFLICT
    assert not conflict.ok
    assert not conflict.final
    assert conflict.change == changed[-1].digest
    assert rows[-1].digest in (conflict.error or "")
    assert progress[-1].skipped == len(IDS) - 1
    assert progress[-1].journal_counts[OutcomeKind.UPDATED] == len(IDS) - 1
    assert again[IDS[-1]].kind is OutcomeKind.CONFLICT


async def test_a_repeated_row_is_sent_once_and_a_conflicting_one_not_at_all(
    tmp_path: Path,
) -> None:
    """In one input: the same change twice is a duplicate; another change is a conflict."""
    rows = [_row("SC-U0"), _row("SC-U0"), _row("SC-U0", currency="USD"), _row("SC-U1")]
    async with _server() as server, server.client(limits=LIMITS) as client:
        progress: list[Any] = []
        outcomes = [
            o
            async for o in client.update_many(
                rows, journal=tmp_path / "j", progress=progress.append
            )
        ]
        assert server.recorder.sends_per_id()["SC-U0"] == 1
        schedule = server.schedule("SC-U0")
    assert schedule is not None
    assert schedule.currency == "EUR"
    kinds = sorted((o.schedule_id, o.kind.value) for o in outcomes)
    assert kinds == [("SC-U0", "conflict"), ("SC-U0", "updated"), ("SC-U1", "updated")]
    assert progress[-1].duplicates == 1


async def test_an_error_keeps_the_rows_change_and_a_rerun_sends_it(tmp_path: Path) -> None:
    """An update that got no answer worth keeping is an error line with the row's digest: not
    final, so the next run sends it (and a changed row for it is no conflict)."""
    path = tmp_path / "j.jsonl"
    async with _server() as server, server.client(limits=LIMITS, retry=NO_RETRY) as client:
        server.script(Fault.SERVER_ERROR)
        first = await _collect(client.update_many([_row("SC-U0")], journal=path))
        second = await _collect(client.update_many([_row("SC-U0", "7")], journal=path))
        schedule = server.schedule("SC-U0")
    assert first["SC-U0"].kind is OutcomeKind.ERROR
    assert first["SC-U0"].change == _row("SC-U0").digest
    assert second["SC-U0"].kind is OutcomeKind.UPDATED
    assert schedule is not None
    assert schedule.amount == "7"


async def test_items_of_the_wrong_kind_are_invalid_outcomes() -> None:
    """An update job takes UpdateRows only; an id job takes no UpdateRow."""
    async with _server() as server, server.client(limits=LIMITS) as client:
        update = await _collect(client.update_many(["SC-U0", 7]))
        cancel = [o async for o in client.cancel_many([_row("SC-U1")])]
        assert server.recorder.count() == 0
    assert {o.kind for o in update.values()} == {OutcomeKind.INVALID}
    assert "must be an UpdateRow, got str" in (update["SC-U0"].error or "")
    assert cancel[0].kind is OutcomeKind.INVALID
    assert "must be a str, got UpdateRow" in (cancel[0].error or "")


def test_update_row_checks_its_fields_and_digests_its_change() -> None:
    """A row is valid when made; its digest depends on the change only; values hide free text."""
    with pytest.raises(InvalidParameterError, match="scheduleId"):
        UpdateRow("bad id!", UpdateSchedule(amount="1"))
    with pytest.raises(InvalidParameterError, match="changes must be an UpdateSchedule"):
        UpdateRow("SC-1", {"amount": "1"})  # type: ignore[arg-type]
    row = UpdateRow(
        "SC-1",
        UpdateSchedule(
            amount=Decimal("9.90"),
            merchant_meta_data="customer 42",
            callback_url="https://user:token@example.com/cb",
        ),
    )
    assert row.digest == UpdateRow("SC-2", row.changes).digest
    assert row.digest != _row("SC-1").digest
    assert len(row.digest) == 16
    assert row.values() == {"amount": "9.90"}


def test_outcome_kinds_of_update_include_conflict() -> None:
    """Update has no "already" kind; its own is conflict. Start has unknown and conflict."""
    assert outcome_kinds(Operation.UPDATE) == (
        OutcomeKind.UPDATED,
        OutcomeKind.FAILED,
        OutcomeKind.INVALID,
        OutcomeKind.ERROR,
        OutcomeKind.CONFLICT,
    )
    assert outcome_kinds(Operation.START) == (
        OutcomeKind.STARTED,
        OutcomeKind.UNKNOWN,
        OutcomeKind.FAILED,
        OutcomeKind.INVALID,
        OutcomeKind.ERROR,
        OutcomeKind.CONFLICT,
    )


def test_journal_values_round_trip_and_bad_values_are_refused() -> None:
    """A line's change and values come back; values of the wrong shape are no journal line."""
    outcome = BulkOutcome(
        schedule_id="SC-1",
        kind=OutcomeKind.UPDATED,
        at=datetime(2026, 12, 6, 4, 0, tzinfo=UTC),
        change="0123456789abcdef",
        values={"amount": "1.00", "periodLength": 1},
    )
    assert BulkOutcome.from_record(outcome.to_record()) == outcome
    for values in (["amount"], {"amount": True}, {"amount": None}):
        with pytest.raises(TypeError):
            BulkOutcome.from_record({**outcome.to_record(), "values": values})


# -- 10,000 rows at the real limits, on looptime's virtual clock --------------------------

W, N, K, GUARD = 60.0, 60, 10, 1.0
LATENCY = (0.005, 0.02)  # seconds each way
ROWS = 10_000
#: Every row takes a place at the API user's level: the last of 10,000 can be sent
#: ceil(10,000 / 60) - 1 = 166 windows after the first at the earliest (each id once, so
#: the per-id level plays no part): 166 W = 9,960 s is the floor any client meets.
FLOOR = (math.ceil(ROWS / N) - 1) * W


@pytest.mark.scale
@pytest.mark.looptime
async def test_10000_update_rows_at_the_real_limits_meet_no_429(tmp_path: Path) -> None:
    """10,000 rows, 60 per 60 s per API user, 10 per id, guard 1 s: 0 x 429, every row
    applied, at most 1.03 x the floor (priority 0: the job alone sends in bursts).

    Measured (seed 25), first to last arrival: 10,130.187 s against the floor of 9,960 s
    (1.0171): a guard and a round trip per window, as the mixed workload's bound says.
    """
    ids = [f"SC-TEN-{n:05d}" for n in range(ROWS)]
    rows = [_row(sid, amount=f"{n % 1000 + 1}.{n % 100:02d}") for n, sid in enumerate(ids)]
    server = MockScheduleServer(
        limits=ServerLimits(total=N, per_schedule=K, window=W),
        faults=Faults(request_latency=LATENCY, response_latency=LATENCY, seed=25),
    )
    server.seed(ids, ScheduleStatus.ACTIVE)
    limits = RateLimits(total=N, per_schedule=K, window=W, guard=GUARD)
    async with server, server.client(limits=limits) as client:
        outcomes = client.update_many(rows, journal=tmp_path / "j", priority=0)
        kinds = Counter([o.kind async for o in outcomes])
        schedules = [server.schedule(sid) for sid in ids]
    amounts = {s.schedule_id: s.amount for s in schedules if s is not None}
    recorder = server.recorder
    assert kinds == {OutcomeKind.UPDATED: ROWS}
    assert amounts == {r.schedule_id: r.changes.amount for r in rows}
    assert recorder.count_rate_limited() == 0
    assert recorder.max_arrivals_in_window(W) <= N
    first, last = recorder.first_arrival(), recorder.last_arrival()
    assert first is not None
    assert last is not None
    assert FLOOR <= last - first <= 1.03 * FLOOR
