"""``get --report``, ``update --report`` and ``start --report``: one row per id (row), written
from the run's journal.

The report is made from the journal, not appended as the run goes: the
journal is what survives a kill, so a killed ``get`` run started again (on
the same journal) skips the ids already read and then writes the whole
report, each id once. Where an id has several lines (an ``error`` and,
later, its answer), its last line is the one reported; a start row whose
last line is an intent (its request was out when a run ended) is reported
``unknown``. The file is written
beside its final name and renamed into place, so a reader never sees half
a report.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from .._bulk.intents import StartLedger
from .._bulk.journal import BulkOutcome, Journal, OutcomeKind, read_journal
from .._protocol.operations import Operation

#: The report's columns, in order.
REPORT_COLUMNS = (
    "id",
    "success",
    "status",
    "old_status",
    "scheduled_at",
    "registration_uuid",
    "merchant_meta_data",
    "error_code",
    "error",
)


#: ``update --report``'s columns: the row's new values, by the API's names.
UPDATE_REPORT_COLUMNS = (
    "id",
    "success",
    "outcome",
    "status",
    "amount",
    "currency",
    "periodLength",
    "periodUnit",
    "startDateTime",
    "registrationUuid",
    "change",
    "error_code",
    "error",
)


#: ``start --report``'s columns: the row's key, the new scheduleId, and the row's fields.
START_REPORT_COLUMNS = (
    "key",
    "success",
    "outcome",
    "schedule_id",
    "status",
    "scheduled_at",
    *UPDATE_REPORT_COLUMNS[4:10],
    "change",
    "error_code",
    "error",
)
_REPORT_COLUMNS = {Operation.UPDATE: UPDATE_REPORT_COLUMNS, Operation.START: START_REPORT_COLUMNS}


def report_columns(operation: Operation) -> tuple[str, ...]:
    """The report's columns for a job of ``operation`` (get's, update's or start's)."""
    return _REPORT_COLUMNS.get(operation, REPORT_COLUMNS)


def update_report_row(outcome: BulkOutcome) -> dict[str, object]:
    """Return one row's line of ``update --report``: the new values it asked for, its status
    after the call, and the change's digest; ``success`` is true when it was updated."""
    return {
        "id": outcome.schedule_id,
        "success": outcome.kind is OutcomeKind.UPDATED,
        "outcome": outcome.kind.value,
        "status": _text(outcome.new_status),
        **_row_values(outcome),
    }


def start_report_row(outcome: BulkOutcome) -> dict[str, object]:
    """Return one row's line of ``start --report``: its key, the new scheduleId (when
    ``started``, the only outcome with ``success`` true), its first charge and its fields."""
    scheduled = outcome.scheduled_at
    return {
        "key": outcome.schedule_id,
        "success": outcome.kind is OutcomeKind.STARTED,
        "outcome": outcome.kind.value,
        "schedule_id": outcome.new_schedule_id,
        "status": _text(outcome.new_status),
        "scheduled_at": None if scheduled is None else scheduled.isoformat(),
        **_row_values(outcome),
    }


def _row_values(outcome: BulkOutcome) -> dict[str, object]:
    """A row's fields (as the journal shows them), its digest and its error."""
    values = outcome.values or {}
    return {
        **{column: values.get(column) for column in UPDATE_REPORT_COLUMNS[4:10]},
        "change": outcome.change,
        "error_code": outcome.error_code,
        "error": outcome.error,
    }


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def report_row(outcome: BulkOutcome) -> dict[str, object]:
    """Return one id's report row.

    Args:
        outcome: the id's last outcome in the journal.

    Returns:
        The `REPORT_COLUMNS`: ``success`` is true when the schedule was
        read; ``status`` is its status then (``newStatus``); ``error`` is the
        scrubbed message of a refusal, an error or an invalid id.
    """
    return {
        "id": outcome.schedule_id,
        "success": outcome.kind is OutcomeKind.READ,
        "status": _text(outcome.new_status),
        "old_status": _text(outcome.old_status),
        "scheduled_at": None if outcome.scheduled_at is None else outcome.scheduled_at.isoformat(),
        "registration_uuid": outcome.registration_uuid,
        "merchant_meta_data": outcome.merchant_meta_data,
        "error_code": outcome.error_code,
        "error": outcome.error,
    }


def latest_outcomes(
    journal: str | os.PathLike[str], operation: Operation = Operation.GET
) -> Iterator[BulkOutcome]:
    """Yield each id's last outcome in a journal, in the order the ids first appear.

    Args:
        journal: the journal file.
        operation: the job's; for start, a row whose last line is an intent is ``unknown``.

    Yields:
        One outcome per id (row).
    """
    if operation is Operation.START:
        ledger = StartLedger()
        with Journal.open(journal) as reader:  # a torn tail is mended, as a run would
            for outcome in reader.replay(ledger.on_run):
                ledger.on_outcome(outcome)
        yield from ledger.outcomes()
        return
    latest: dict[str, BulkOutcome] = {}
    for outcome in read_journal(journal):
        latest[outcome.schedule_id] = outcome
    yield from latest.values()


def status_key(outcome: BulkOutcome) -> str:
    """The id's group in the summary by status: its status when read (``ACTIVE``,
    ``PAUSED``, ...), else its outcome (``failed``, ``error``, ``invalid``)."""
    if outcome.kind is OutcomeKind.READ:
        return str(outcome.new_status)
    return outcome.kind.value


def write_report(
    path: Path,
    fmt: str,
    outcomes: Iterable[BulkOutcome],
    operation: Operation = Operation.GET,
) -> dict[str, int]:
    """Write the report atomically and return the number of rows per status.

    Args:
        path: the report file (replaced when it exists).
        fmt: ``"jsonl"`` (one JSON object per row, null for no value) or
            ``"csv"`` (a header row, then one row per id; no value is empty,
            ``success`` is ``true``/``false``; a text starting with ``=``, ``+``,
            ``-``, ``@``, a tab or a CR gets a leading ``'`` so that a spreadsheet
            shows it instead of running it as a formula).
        outcomes: each id's outcome.
        operation: the job's (get's report, or update's: `report_columns()`).

    Returns:
        Rows per `status_key()`.

    Raises:
        OSError: the file cannot be written (nothing is left behind).
    """
    statuses: Counter[str] = Counter()
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            columns = report_columns(operation)
            make_row = _ROW_MAKERS.get(operation, report_row)
            writer = csv.writer(file) if fmt == "csv" else None
            if writer is not None:
                writer.writerow(columns)
            for outcome in outcomes:
                row = make_row(outcome)
                statuses[status_key(outcome)] += 1
                if writer is None:
                    file.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
                else:
                    writer.writerow(_csv_cell(row[column]) for column in columns)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return dict(statuses)


_ROW_MAKERS = {Operation.UPDATE: update_report_row, Operation.START: start_report_row}

# A cell a spreadsheet would read as a formula (OWASP "CSV injection"): the merchant's
# metaData and the server's messages are text someone else chose.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if isinstance(value, str) and text.startswith(_FORMULA_START):
        return "'" + text  # shown as text, not run; the JSON Lines format keeps it as it is
    return text
