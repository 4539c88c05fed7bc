"""run_many: the bulk job for pause, continue and get (and cancel), against the mock server.

Outcome kinds per operation, journal lines naming the operation, resuming,
refusing another operation's journal, and the checks made before any I/O.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from schedcancel import (
    BulkOutcome,
    InvalidParameterError,
    Journal,
    Operation,
    OutcomeKind,
    RateLimits,
    ScheduleResult,
    ScheduleStatus,
    UpdateSchedule,
)
from schedcancel._bulk.journal import (
    BULK_OPERATIONS,
    kind_operations,
    outcome_kinds,
    read_journal,
    run_operation,
)
from schedcancel._bulk.runner import run_many
from schedcancel.testing import MockScheduleServer, ServerLimits

LIMITS = RateLimits(total=1000, per_schedule=10, window=1.0, guard=0.05)
SERVER_LIMITS = ServerLimits(total=1000, per_schedule=10, window=1.0)
AT = datetime(2027, 1, 5, 9, 30, 15, tzinfo=UTC)
# Seeded: two of each state, and one id the server does not know.
STATES = {
    "SC-A1": ScheduleStatus.ACTIVE,
    "SC-A2": ScheduleStatus.ACTIVE,
    "SC-P1": ScheduleStatus.PAUSED,
    "SC-P2": ScheduleStatus.PAUSED,
    "SC-C1": ScheduleStatus.CANCELLED,
    "SC-C2": ScheduleStatus.CANCELLED,
}
IDS = [*STATES, "SC-GONE", "bad id!"]


def _server() -> MockScheduleServer:
    server = MockScheduleServer(limits=SERVER_LIMITS)
    for schedule_id, status in STATES.items():
        server.seed([schedule_id], status)
    return server


async def _collect(outcomes: AsyncIterator[BulkOutcome]) -> dict[str, BulkOutcome]:
    return {outcome.schedule_id: outcome async for outcome in outcomes}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _kinds(outcomes: dict[str, BulkOutcome]) -> dict[str, str]:
    return {schedule_id: outcome.kind.value for schedule_id, outcome in outcomes.items()}


@pytest.mark.parametrize(
    ("operation", "at", "expected", "after"),
    [
        pytest.param(
            Operation.PAUSE,
            None,
            {"SC-A": "paused", "SC-P": "already_paused", "SC-C": "failed"},
            {"SC-A": "PAUSED", "SC-P": "PAUSED", "SC-C": "CANCELLED"},
            id="pause",
        ),
        pytest.param(
            Operation.CONTINUE,
            AT,
            {"SC-A": "already_active", "SC-P": "continued", "SC-C": "failed"},
            {"SC-A": "ACTIVE", "SC-P": "ACTIVE", "SC-C": "CANCELLED"},
            id="continue",
        ),
        pytest.param(
            Operation.CANCEL,
            None,
            {"SC-A": "cancelled", "SC-P": "cancelled", "SC-C": "already_cancelled"},
            {"SC-A": "CANCELLED", "SC-P": "CANCELLED", "SC-C": "CANCELLED"},
            id="cancel",
        ),
        pytest.param(
            Operation.GET,
            None,
            {"SC-A": "read", "SC-P": "read", "SC-C": "read"},
            {"SC-A": "ACTIVE", "SC-P": "PAUSED", "SC-C": "CANCELLED"},
            id="get",
        ),
    ],
)
async def test_each_operation_ends_each_state_as_its_own_kind(
    tmp_path: Path,
    operation: Operation,
    at: datetime | None,
    expected: dict[str, str],
    after: dict[str, str],
) -> None:
    """Success, 7070 in the target state ("already"), 7070 elsewhere (a final failure)."""
    path = tmp_path / "j.jsonl"
    async with _server() as server, server.client(limits=LIMITS) as client:
        outcomes = await _collect(client.run_many(operation, IDS, at=at, journal=path))
        assert server.recorder.count_rate_limited() == 0
        statuses = {sid: str(server.status_of(sid)) for sid in STATES}
    kinds = _kinds(outcomes)
    for schedule_id in STATES:
        assert kinds[schedule_id] == expected[schedule_id[:4]], schedule_id
        assert statuses[schedule_id] == after[schedule_id[:4]], schedule_id
    assert kinds["SC-GONE"] == "failed"
    assert outcomes["SC-GONE"].error_code == 7040
    assert kinds["bad id!"] == "invalid"
    failures = [o for o in outcomes.values() if o.kind is OutcomeKind.FAILED]
    assert all(o.final for o in failures)  # 7040, and 7070 in another state
    assert {o.kind for o in outcomes.values()} <= set(outcome_kinds(operation))
    lines = _lines(path)
    assert lines[0]["run"] == "start"
    assert lines[0]["operation"] == operation.path
    assert lines[-1]["run"] == "end"
    assert sorted(line["id"] for line in lines[1:-1] if "id" in line) == sorted(IDS)
    # Each request sent has its send line (for a run again to count), "bad id!" none.
    sends = [line["schedule_id"] for line in lines[1:-1] if line.get("run") == "send"]
    assert sorted(sends) == sorted(i for i in IDS if i != "bad id!")
    if operation is Operation.CONTINUE:
        assert lines[0]["continue_at"] == "2027-01-05T09:30:15+00:00"
    else:
        assert "continue_at" not in lines[0]


async def test_get_outcomes_keep_what_the_report_shows(tmp_path: Path) -> None:
    """A get outcome journals the status, the next charge, the registration and the metadata."""
    path = tmp_path / "j.jsonl"
    async with _server() as server, server.client(limits=LIMITS) as client:
        await client.update("SC-A1", UpdateSchedule(merchant_meta_data="customer-42"))
        outcomes = await _collect(client.run_many(Operation.GET, ["SC-A1", "SC-P1"], journal=path))
        wall = server.wall_clock_at_start
    read = outcomes["SC-A1"]
    assert read.kind is OutcomeKind.READ
    assert read.ok
    assert read.new_status == ScheduleStatus.ACTIVE
    assert read.registration_uuid == "RG-SC-A1"
    assert read.merchant_meta_data == "customer-42"
    assert read.scheduled_at is not None
    assert abs(read.scheduled_at - (wall + timedelta(days=1))) < timedelta(seconds=1)
    back = {o.schedule_id: o for o in read_journal(path)}
    assert back["SC-A1"].merchant_meta_data == "customer-42"
    assert back["SC-A1"].registration_uuid == "RG-SC-A1"
    assert back["SC-A1"].scheduled_at == read.scheduled_at
    assert back["SC-P1"].new_status == ScheduleStatus.PAUSED
    assert back["SC-P1"].merchant_meta_data is None


async def test_pause_outcomes_do_not_journal_the_get_fields(tmp_path: Path) -> None:
    """Only get keeps the schedule's details: other journals stay as small as before."""
    path = tmp_path / "j.jsonl"
    async with _server() as server, server.client(limits=LIMITS) as client:
        await _collect(client.run_many(Operation.PAUSE, ["SC-A1"], journal=path))
    (line,) = [record for record in _lines(path) if "id" in record]
    assert set(line) == {"id", "outcome", "old_status", "new_status", "at"}


@pytest.mark.parametrize(
    ("operation", "at", "seeded", "target"),
    [
        (Operation.PAUSE, None, ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED),
        (Operation.CONTINUE, AT, ScheduleStatus.PAUSED, ScheduleStatus.ACTIVE),
    ],
)
async def test_resume_skips_final_ids_and_sends_the_rest(
    tmp_path: Path,
    operation: Operation,
    at: datetime | None,
    seeded: ScheduleStatus,
    target: ScheduleStatus,
) -> None:
    """A second run on the journal sends only what the first did not finish for good."""
    path = tmp_path / "j.jsonl"
    ids = [f"SC-{i:03d}" for i in range(12)]
    async with MockScheduleServer(limits=SERVER_LIMITS) as server:
        server.seed(ids, seeded)
        async with server.client(limits=LIMITS) as client:
            first = await _collect(client.run_many(operation, ids[:7], at=at, journal=path))
            sent_first = len(server.recorder)
            second = await _collect(client.run_many(operation, ids, at=at, journal=path))
        resent = [a.schedule_id or "" for a in server.recorder.arrivals[sent_first:]]
        assert all(server.status_of(i) == target for i in ids)
    assert sorted(first) == ids[:7]
    assert sorted(second) == ids[7:]
    assert sorted(resent) == ids[7:]
    finals = [o.schedule_id for o in read_journal(path) if o.final]
    assert sorted(finals) == ids
    starts = [line for line in _lines(path) if line.get("run") == "start"]
    assert [line["operation"] for line in starts] == [operation.path] * 2


@pytest.mark.parametrize(
    ("operation", "status", "kind"),
    [
        (Operation.PAUSE, ScheduleStatus.PAUSED, OutcomeKind.ALREADY_PAUSED),
        (Operation.CONTINUE, ScheduleStatus.ACTIVE, OutcomeKind.ALREADY_ACTIVE),
        (Operation.CANCEL, ScheduleStatus.CANCELLED, OutcomeKind.ALREADY_CANCELLED),
        (Operation.PAUSE, ScheduleStatus.CANCELLED, OutcomeKind.FAILED),
        (Operation.GET, ScheduleStatus.ACTIVE, OutcomeKind.FAILED),
    ],
)
def test_7070_is_already_done_only_in_the_target_state(
    operation: Operation, status: ScheduleStatus, kind: OutcomeKind
) -> None:
    """from_result reads the 7070's newStatus against the operation's target, final either way."""
    result = ScheduleResult(success=False, error_code=7070, new_status=status, old_status=status)
    outcome = BulkOutcome.from_result("SC-1", result, operation=operation)
    assert outcome.kind is kind
    assert outcome.final
    assert outcome.ok is (kind is not OutcomeKind.FAILED)


@pytest.mark.parametrize("operation", BULK_OPERATIONS)
@pytest.mark.parametrize("code", [7002, None])
def test_7002_and_no_code_are_not_final_for_any_operation(
    operation: Operation, code: int | None
) -> None:
    """Refusals the API does not call final are sent again by the next run."""
    result = ScheduleResult(success=False, error_code=code, error_message="try again")
    outcome = BulkOutcome.from_result("SC-1", result, operation=operation)
    assert outcome.kind is OutcomeKind.FAILED
    assert not outcome.final


def _write(path: Path, *records: dict[str, Any]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


OLD_CANCEL_JOURNAL = (
    {"run": "start", "version": "0.1.0", "api_key": "conn***", "pid": 1, "at": "x"},
    {"id": "SC-A1", "outcome": "cancelled", "old_status": "ACTIVE", "new_status": "CANCELLED"},
    {"id": "SC-C1", "outcome": "already_cancelled", "new_status": "CANCELLED"},
    {"run": "end", "version": "0.1.0", "pid": 1, "at": "x"},
)


@pytest.mark.parametrize(
    ("records", "operation", "at", "named"),
    [
        (OLD_CANCEL_JOURNAL, Operation.PAUSE, None, "cancel"),
        (OLD_CANCEL_JOURNAL[1:2], Operation.GET, None, "cancel"),  # outcome lines only
        (({"run": "start", "operation": "pause"},), Operation.CANCEL, None, "pause"),
        (({"id": "SC-1", "outcome": "already_active"},), Operation.PAUSE, None, "continue"),
        (({"run": "start", "operation": "get"},), Operation.CONTINUE, AT, "get"),
    ],
)
async def test_a_journal_of_another_operation_is_refused_before_anything_is_sent(
    tmp_path: Path,
    records: tuple[dict[str, Any], ...],
    operation: Operation,
    at: datetime | None,
    named: str,
) -> None:
    """The job names both operations and sends nothing; the journal is left as it was."""
    path = tmp_path / "j.jsonl"
    _write(path, *records)
    before = path.read_bytes()
    async with _server() as server, server.client(limits=LIMITS) as client:
        outcomes = client.run_many(operation, ["SC-A2", "SC-P2"], at=at, journal=path)
        with pytest.raises(InvalidParameterError, match=f"journal of a {named} job") as caught:
            await _collect(outcomes)
        assert len(server.recorder) == 0
        assert client.limiter.stats().total_used == 0
    assert str(operation) in str(caught.value)
    assert path.read_bytes() == before


async def test_an_old_cancel_journal_still_resumes_as_a_cancel_journal(tmp_path: Path) -> None:
    """A journal written before operations were recorded: its final ids are skipped."""
    path = tmp_path / "j.jsonl"
    _write(path, *OLD_CANCEL_JOURNAL)
    async with _server() as server, server.client(limits=LIMITS) as client:
        outcomes = await _collect(client.cancel_many(["SC-A1", "SC-C1", "SC-A2"], journal=path))
        assert [a.schedule_id for a in server.recorder.arrivals] == ["SC-A2"]
    assert list(outcomes) == ["SC-A2"]
    runs = [line for line in _lines(path) if "run" in line]
    assert [line["run"] for line in runs[-3:]] == ["start", "send", "end"]
    assert runs[-3]["operation"] == "cancel"
    assert runs[-2]["schedule_id"] == "SC-A2"


def test_run_lines_name_their_operation() -> None:
    """A start line without an operation is cancel's; other run lines name none."""
    assert run_operation({"run": "start"}) is Operation.CANCEL
    assert run_operation({"run": "start", "operation": "continue"}) is Operation.CONTINUE
    assert run_operation({"run": "end", "operation": "pause"}) is None
    assert run_operation({"run": "start", "operation": "start"}) is Operation.START
    with pytest.raises(InvalidParameterError, match="unknown operation"):
        run_operation({"run": "start", "operation": "delete"})
    assert kind_operations(OutcomeKind.ALREADY_PAUSED) == (Operation.PAUSE,)
    assert kind_operations(OutcomeKind.FAILED) == ()


def test_a_journal_with_an_unknown_operation_is_refused(tmp_path: Path) -> None:
    """Replaying a start line that names no bulk operation raises, as a corrupt line does."""
    path = tmp_path / "j.jsonl"
    _write(path, {"run": "start", "operation": "explode"})
    with Journal.open(path) as journal, pytest.raises(InvalidParameterError):
        list(journal.replay(run_operation))


def test_outcome_kinds_refuses_operations_a_bulk_job_does_not_run() -> None:
    """Each bulk operation has its kinds; anything else has none."""
    assert outcome_kinds(Operation.GET) == (
        OutcomeKind.READ,
        OutcomeKind.FAILED,
        OutcomeKind.INVALID,
        OutcomeKind.ERROR,
    )
    with pytest.raises(InvalidParameterError, match="not explode"):
        outcome_kinds("explode")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("operation", "at", "message"),
    [
        (Operation.CONTINUE, None, "continue needs at"),
        (Operation.CONTINUE, datetime(2027, 1, 5, 9, 30), "naive|time zone|offset|aware"),
        (Operation.CONTINUE, "2027-01-05T09:30:00+00:00", "datetime"),
        (Operation.PAUSE, AT, "at is for continue only"),
        (Operation.GET, AT, "at is for continue only"),
        (Operation.START, AT, "at is for continue only"),
        (Operation.UPDATE, AT, "at is for continue only"),
        ("pause", None, "operation must be one of"),
    ],
)
async def test_bad_operation_or_at_fails_at_the_call_before_any_io(
    operation: object, at: object, message: str
) -> None:
    """Nothing sent, no budget used: the error comes from the call itself, not the iteration."""
    async with _server() as server, server.client(limits=LIMITS) as client:
        with pytest.raises(InvalidParameterError, match=message):
            run_many(client, operation, ["SC-A1"], at=at)  # type: ignore[arg-type]
        assert len(server.recorder) == 0
        assert client.limiter.stats().total_used == 0


async def test_a_client_without_the_operations_method_is_refused() -> None:
    """A cancel-only client (as cancel_many accepts) cannot run a pause job."""

    class CancelOnly:
        redactions = ()
        redacted_api_key = "k***"

        async def cancel(self, schedule_id: str, **options: object) -> ScheduleResult:
            raise AssertionError(schedule_id, options)

    with pytest.raises(InvalidParameterError, match="no pause method"):
        run_many(CancelOnly(), Operation.PAUSE, ["SC-1"])  # type: ignore[arg-type]
    await asyncio.sleep(0)


@pytest.mark.parametrize("key", ["registration_uuid", "merchant_meta_data"])
def test_a_get_field_of_the_wrong_type_makes_the_line_corrupt(tmp_path: Path, key: str) -> None:
    """A journal line whose report field is no string is refused, naming the line."""
    path = tmp_path / "j.jsonl"
    _write(path, {"id": "SC-1", "outcome": "read", key: 5}, {"id": "SC-2", "outcome": "read"})
    with pytest.raises(InvalidParameterError, match=":1: not a schedcancel journal line"):
        list(read_journal(path))


async def test_continue_resumed_with_another_at_is_refused_the_same_at_resumes(
    tmp_path: Path,
) -> None:
    """Ids continued at one date are not skipped silently by a run asked for another date."""
    path = tmp_path / "j.jsonl"
    async with _server() as server, server.client(limits=LIMITS) as client:
        await _collect(client.run_many(Operation.CONTINUE, ["SC-P1"], at=AT, journal=path))
        before = path.read_bytes()
        later = AT + timedelta(days=1)
        outcomes = client.run_many(Operation.CONTINUE, ["SC-P1", "SC-P2"], at=later, journal=path)
        with pytest.raises(InvalidParameterError, match="continued schedules at 2027-01-05"):
            await _collect(outcomes)
        assert path.read_bytes() == before
        assert len(server.recorder) == 1
        # The same date (in another zone) resumes: SC-P1 is skipped, SC-P2 is sent.
        same = AT.astimezone(timezone(timedelta(hours=2)))
        resumed = await _collect(
            client.run_many(Operation.CONTINUE, ["SC-P1", "SC-P2"], at=same, journal=path)
        )
    assert list(resumed) == ["SC-P2"]
