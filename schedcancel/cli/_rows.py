"""``update``'s rows: a CSV (header row) or JSON Lines file of changes, or ids with one change.

Every row is checked in a first pass over the file, before any request: each
bad one is named by its line and column (a bad amount, an ill-formed currency
or period, a missing or unknown column, a scheduleId given again with another
change). The second pass streams the good rows to the job. Only digests are
kept per scheduleId between the passes, never the rows themselves.

Column names (and JSON keys) are the API's: ``scheduleId``, then any of
``registrationUuid``, ``amount``, ``currency``, ``periodLength``, ``periodUnit``,
``startDateTime``, ``merchantMetaData``, ``callbackUrl``. An empty cell (or a
missing or null key) leaves that field as it is; a uniform change given as
flags (``--amount 12.90``) applies to every row whose own cell is empty.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from .._protocol.requests import UpdateRow, UpdateSchedule
from ..errors import InvalidParameterError

__all__ = [
    "CHANGE_COLUMNS",
    "ID_COLUMN",
    "RowCheck",
    "RowProblem",
    "check_rows",
    "csv_records",
    "id_records",
    "jsonl_records",
    "read_rows",
    "row_format",
    "uniform_change",
    "update_row",
]

ID_COLUMN = "scheduleId"
#: Update fields by wire name, and UpdateSchedule's attribute for each.
CHANGE_COLUMNS: Mapping[str, str] = {
    "registrationUuid": "registration_uuid",
    "amount": "amount",
    "currency": "currency",
    "periodLength": "period_length",
    "periodUnit": "period_unit",
    "startDateTime": "start_date_time",
    "merchantMetaData": "merchant_meta_data",
    "callbackUrl": "callback_url",
}
#: The file formats ``--input-format`` takes: rows, or ids one per line.
ROW_FORMATS = ("csv", "jsonl")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def row_format(path: str, given: str | None) -> str | None:
    """The rows' format of ``path``: ``given``, else by suffix; None when it holds ids."""
    if given is not None:
        return None if given == "ids" else given
    return _SUFFIXES.get(Path(path).suffix.lower())


class _BadCell(Exception):  # noqa: N818 - internal signal carrying the column
    def __init__(self, column: str, message: str) -> None:
        super().__init__(message)
        self.column = column


def _cell(column: str, value: object) -> Any:
    """A cell's value as UpdateSchedule takes it (text of a CSV, or a JSON value)."""
    if column == "periodLength" and isinstance(value, str):
        if not value.strip().isdecimal():
            raise _BadCell(column, "periodLength must be a whole number >= 0")
        return int(value)
    if column == "startDateTime" and isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            message = "startDateTime must be ISO 8601 with a UTC offset (2026-12-03T09:00:00+01:00)"
            raise _BadCell(column, message) from None
    return value


def update_row(fields: Mapping[str, object], uniform: Mapping[str, Any]) -> UpdateRow:
    """Make one row's `UpdateRow`: its own cells, and ``uniform``'s where a cell is empty.

    Args:
        fields: the row's cells by column name (API names); None or "" is empty.
        uniform: the change given for every row (by attribute name, checked).

    Raises:
        _BadCell: a cell is invalid, or the row changes nothing (its column says which).
    """
    changes = dict(uniform)
    for column, given in fields.items():
        if column == ID_COLUMN or given is None or given == "":
            continue
        name = CHANGE_COLUMNS[column]
        value = _cell(column, given)
        try:
            UpdateSchedule(**{name: value})  # each field alone: its error names its column
        except InvalidParameterError as exc:
            raise _BadCell(column, str(exc)) from None
        changes[name] = value
    schedule_id = fields.get(ID_COLUMN)
    if schedule_id is None or schedule_id == "":
        raise _BadCell(ID_COLUMN, "no scheduleId")
    if not changes:
        raise _BadCell(ID_COLUMN, "nothing to change: every change column is empty")
    try:
        return UpdateRow(str(schedule_id).strip(), UpdateSchedule(**changes))
    except InvalidParameterError as exc:
        raise _BadCell(ID_COLUMN, str(exc)) from None


@attrs.frozen
class RowProblem:
    """One bad row: its line in the file, the column at fault and why."""

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


def _header_problem(header: list[str] | None) -> RowProblem | None:
    if not header:
        return RowProblem(1, None, "no header row (scheduleId and the columns to change)")
    unknown = [name for name in header if name != ID_COLUMN and name not in CHANGE_COLUMNS]
    if unknown:
        known = ", ".join((ID_COLUMN, *CHANGE_COLUMNS))
        return RowProblem(1, unknown[0], f"unknown column; the columns are {known}")
    if ID_COLUMN not in header:
        return RowProblem(1, ID_COLUMN, "missing column")
    if len(set(header)) != len(header):
        return RowProblem(1, None, "a column is named twice")
    return None


def _csv_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        problem = _header_problem(header)
        if problem is not None or header is None:
            yield 1, problem or RowProblem(1, None, "no header row")
            return
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells):
                continue  # a blank line
            if len(cells) != len(header):
                column = header[len(cells)] if len(cells) < len(header) else None
                yield (
                    line,
                    RowProblem(line, column, f"{len(cells)} cells, the header has {len(header)}"),
                )
                continue
            yield line, dict(zip(header, cells, strict=True))


def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    with path.open(encoding="utf-8-sig") as file:
        for line, text in enumerate(file, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except ValueError:
                yield line, RowProblem(line, None, "not a JSON object")
                continue
            if not isinstance(record, dict):
                yield line, RowProblem(line, None, "not a JSON object")
                continue
            unknown = [k for k in record if k != ID_COLUMN and k not in CHANGE_COLUMNS]
            if unknown:
                yield line, RowProblem(line, str(unknown[0])[:40], "unknown key")
                continue
            if ID_COLUMN not in record:
                yield line, RowProblem(line, ID_COLUMN, "missing key")
                continue
            yield line, record


#: A source's records: each line with its cells, or what is wrong with it.
Records = Iterable[tuple[int, dict[str, Any] | RowProblem]]


def csv_records(path: Path) -> Records:
    """The rows of a CSV file with a header row, each with its line (or what is wrong)."""
    return _csv_records(path)


def jsonl_records(path: Path) -> Records:
    """The objects of a JSON Lines file, each with its line (or what is wrong)."""
    return _jsonl_records(path)


def id_records(numbered: Iterable[tuple[int, str]]) -> Records:
    """Ids with their lines, as rows that name only the scheduleId (for a uniform change)."""
    return ((line, {ID_COLUMN: schedule_id}) for line, schedule_id in numbered)


def read_rows(
    records: Records, uniform: Mapping[str, Any]
) -> Iterator[tuple[int, UpdateRow | RowProblem]]:
    """Yield each record's line and its `UpdateRow`, or what is wrong with it.

    Raises:
        OSError, UnicodeDecodeError: the file cannot be read.
    """
    for line, record in records:
        if isinstance(record, RowProblem):
            yield line, record
            continue
        try:
            yield line, update_row(record, uniform)
        except _BadCell as exc:
            yield line, RowProblem(line, exc.column, str(exc))


def uniform_change(given: Mapping[str, str | None]) -> dict[str, Any]:
    """Check the change given for every row (by column name; None: not given).

    Returns:
        The fields by attribute name, ready for ``UpdateSchedule``.

    Raises:
        InvalidParameterError: a value is invalid; the message names its column.
    """
    changes: dict[str, Any] = {}
    for column, text in given.items():
        if text is None:
            continue
        try:
            value = _cell(column, text)
            UpdateSchedule(**{CHANGE_COLUMNS[column]: value})
        except (_BadCell, InvalidParameterError) as exc:
            raise InvalidParameterError(f"{column}: {exc}") from None
        changes[CHANGE_COLUMNS[column]] = value
    return changes


@attrs.define
class RowCheck:
    """What the first pass found: the good rows' count, and every bad row.

    Attributes:
        rows: rows read (blank lines aside).
        valid: rows that would be sent (exact repeats of a row count once).
        repeats: exact repeats of an earlier row (same scheduleId, same change).
        problems: each bad row, in file order.
        bad_lines: their lines, which the second pass leaves out.
    """

    rows: int = 0
    valid: int = 0
    repeats: int = 0
    problems: list[RowProblem] = attrs.field(factory=list)
    bad_lines: set[int] = attrs.field(factory=set)


def check_rows(records: Records, uniform: Mapping[str, Any]) -> RowCheck:
    """Check every row of the file before anything is sent.

    A scheduleId given twice with the same change is one row (a repeat); with
    another change, both of its rows are bad: which one was meant cannot be told.

    Raises:
        OSError, UnicodeDecodeError: the file cannot be read.
    """
    check = RowCheck()
    seen: dict[str, tuple[str, int]] = {}  # scheduleId -> (digest, first line)
    for line, row in read_rows(records, uniform):
        check.rows += 1
        if isinstance(row, RowProblem):
            check.problems.append(row)
            check.bad_lines.add(line)
            continue
        earlier = seen.get(row.schedule_id)
        if earlier is None:
            seen[row.schedule_id] = (row.digest, line)
            check.valid += 1
        elif earlier[0] == row.digest:
            check.repeats += 1
        else:
            check.problems.append(
                RowProblem(
                    line, ID_COLUMN, f"scheduleId given on line {earlier[1]} with another change"
                )
            )
            if earlier[1] not in check.bad_lines:
                check.bad_lines.add(earlier[1])
                check.valid -= 1
            check.bad_lines.add(line)
    check.problems.sort(key=lambda problem: problem.line)
    return check
