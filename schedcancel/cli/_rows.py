"""The rows of ``update`` and ``start``: a CSV (header row) or JSON Lines file, or (update)
ids with one change.

Every row is checked in a first pass over the file, before any request: each
bad one is named by its line and column (a bad amount, an ill-formed currency
or period, a missing or unknown column, a row key given again with other
fields). The second pass streams the good rows to the job. Only digests are
kept per row key between the passes, never the rows themselves.

Column names (and JSON keys) are the API's. ``update``: ``scheduleId``, then
any of ``registrationUuid``, ``amount``, ``currency``, ``periodLength``,
``periodUnit``, ``startDateTime``, ``merchantMetaData``, ``callbackUrl``; an
empty cell (or a missing or null key) leaves that field as it is, and a
uniform change given as flags (``--amount 12.90``) applies to every row whose
own cell is empty. ``start``: the same fields, the first six required, and an
optional ``rowId``, the row's key (by default its ``registrationUuid``).
A [`RowKind`][schedcancel.cli._rows.RowKind] says which.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from .._protocol.requests import StartRow, StartSchedule, UpdateRow, UpdateSchedule
from ..errors import InvalidParameterError

__all__ = [
    "CHANGE_COLUMNS",
    "ID_COLUMN",
    "KEY_COLUMN",
    "START_ROWS",
    "RowCheck",
    "RowKind",
    "RowProblem",
    "check_rows",
    "csv_records",
    "id_records",
    "jsonl_records",
    "read_rows",
    "row_format",
    "start_row",
    "uniform_change",
    "update_row",
    "update_rows",
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


def _checked(column: str, value: object, make: Callable[..., object]) -> Any:
    """A cell's value, checked alone by ``make`` (its error names its column)."""
    value = _cell(column, value)
    try:
        make(**{CHANGE_COLUMNS[column]: value})
    except InvalidParameterError as exc:
        raise _BadCell(column, str(exc)) from None
    return value


def _empty(value: object) -> bool:
    return value is None or value == ""


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
        if column == ID_COLUMN or _empty(given):
            continue
        changes[CHANGE_COLUMNS[column]] = _checked(column, given, UpdateSchedule)
    schedule_id = fields.get(ID_COLUMN)
    if _empty(schedule_id):
        raise _BadCell(ID_COLUMN, "no scheduleId")
    if not changes:
        raise _BadCell(ID_COLUMN, "nothing to change: every change column is empty")
    try:
        return UpdateRow(str(schedule_id).strip(), UpdateSchedule(**changes))
    except InvalidParameterError as exc:
        raise _BadCell(ID_COLUMN, str(exc)) from None


#: A start row's own key column (optional; the key is the registrationUuid without it).
KEY_COLUMN = "rowId"
#: The columns a start row must fill (StartSchedule's required fields).
START_REQUIRED = (
    "registrationUuid",
    "amount",
    "currency",
    "periodLength",
    "periodUnit",
    "startDateTime",
)


def _start_field(**field: Any) -> None:
    """Check one start field alone: the other required ones are filled with valid values."""
    StartSchedule(**{**_START_PLACEHOLDERS, **field})


_START_PLACEHOLDERS: Mapping[str, object] = {
    "registration_uuid": "x",
    "amount": "1",
    "currency": "EUR",
    "period_length": 1,
    "period_unit": "MONTH",
    "start_date_time": datetime.fromisoformat("2030-01-01T00:00:00+00:00"),
}


def start_row(fields: Mapping[str, object]) -> StartRow:
    """Make one row's `StartRow` from its cells (API names, and ``rowId``).

    Raises:
        _BadCell: a cell is invalid, a required one is empty, or the key is (its column
            says which).
    """
    values: dict[str, Any] = {}
    for column, given in fields.items():
        if column == KEY_COLUMN or _empty(given):
            continue
        values[CHANGE_COLUMNS[column]] = _checked(column, given, _start_field)
    for column in START_REQUIRED:
        if CHANGE_COLUMNS[column] not in values:
            raise _BadCell(column, f"no {column}: every start row needs one")
    schedule = StartSchedule(**values)
    key = fields.get(KEY_COLUMN)
    if _empty(key):
        return StartRow(schedule)
    try:
        return StartRow(schedule, str(key))
    except InvalidParameterError as exc:
        raise _BadCell(KEY_COLUMN, f"rowId: {exc}") from None


Row = UpdateRow | StartRow


@attrs.frozen
class RowKind:
    """What a file of rows holds, and how a row is made and named.

    Attributes:
        command: ``update`` or ``start``.
        required: the columns every row has (the header must name them).
        optional: the other columns it may have.
        make: a row from its cells; raises ``_BadCell``.
        what: the header's columns in words, for the message of a missing header.
    """

    command: str
    required: tuple[str, ...]
    optional: tuple[str, ...]
    make: Callable[[Mapping[str, object]], Row]
    what: str

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column a row may have."""
        return (*self.required, *self.optional)

    def key_column(self, row: Row) -> str:
        """The column that holds ``row``'s key."""
        if isinstance(row, UpdateRow):
            return ID_COLUMN
        return "registrationUuid" if row.key == row.schedule.registration_uuid else KEY_COLUMN


def update_rows(uniform: Mapping[str, Any]) -> RowKind:
    """``update``'s rows, with ``uniform`` (see `uniform_change()`) for their empty cells."""
    return RowKind(
        command="update",
        required=(ID_COLUMN,),
        optional=tuple(CHANGE_COLUMNS),
        make=lambda fields: update_row(fields, uniform),
        what="scheduleId and the columns to change",
    )


#: ``start``'s rows: the StartSchedule fields, and an optional ``rowId``.
START_ROWS = RowKind(
    command="start",
    required=START_REQUIRED,
    optional=("merchantMetaData", "callbackUrl", KEY_COLUMN),
    make=start_row,
    what=", ".join(START_REQUIRED),
)


@attrs.frozen
class RowProblem:
    """One bad row: its line in the file, the column at fault and why."""

    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


def _header_problem(header: list[str] | None, kind: RowKind) -> RowProblem | None:
    if not header:
        return RowProblem(1, None, f"no header row ({kind.what})")
    unknown = [name for name in header if name not in kind.columns]
    if unknown:
        known = ", ".join(kind.columns)
        return RowProblem(1, unknown[0], f"unknown column; the columns are {known}")
    missing = [name for name in kind.required if name not in header]
    if missing:
        return RowProblem(1, missing[0], "missing column")
    if len(set(header)) != len(header):
        return RowProblem(1, None, "a column is named twice")
    return None


def _csv_records(path: Path, kind: RowKind) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        header = next(reader, None)
        problem = _header_problem(header, kind)
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


def _jsonl_records(path: Path, kind: RowKind) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
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
            unknown = [k for k in record if k not in kind.columns]
            if unknown:
                yield line, RowProblem(line, str(unknown[0])[:40], "unknown key")
                continue
            missing = [k for k in kind.required if k not in record]
            if missing:
                yield line, RowProblem(line, missing[0], "missing key")
                continue
            yield line, record


#: A source's records: each line with its cells, or what is wrong with it.
Records = Iterable[tuple[int, dict[str, Any] | RowProblem]]


def csv_records(path: Path, kind: RowKind | None = None) -> Records:
    """The rows of a CSV file with a header row, each with its line (or what is wrong);
    ``update``'s columns unless ``kind`` says otherwise."""
    return _csv_records(path, kind or update_rows({}))


def jsonl_records(path: Path, kind: RowKind | None = None) -> Records:
    """The objects of a JSON Lines file, each with its line (or what is wrong)."""
    return _jsonl_records(path, kind or update_rows({}))


def id_records(numbered: Iterable[tuple[int, str]]) -> Records:
    """Ids with their lines, as rows that name only the scheduleId (for a uniform change)."""
    return ((line, {ID_COLUMN: schedule_id}) for line, schedule_id in numbered)


def read_rows(records: Records, kind: RowKind) -> Iterator[tuple[int, Row | RowProblem]]:
    """Yield each record's line and its row, or what is wrong with it.

    Raises:
        OSError, UnicodeDecodeError: the file cannot be read.
    """
    for line, record in records:
        if isinstance(record, RowProblem):
            yield line, record
            continue
        try:
            yield line, kind.make(record)
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
            changes[CHANGE_COLUMNS[column]] = _checked(column, text, UpdateSchedule)
        except _BadCell as exc:
            raise InvalidParameterError(f"{column}: {exc}") from None
    return changes


@attrs.define
class RowCheck:
    """What the first pass found: the good rows' count, and every bad row.

    Attributes:
        rows: rows read (blank lines aside).
        valid: rows that would be sent (exact repeats of a row count once).
        repeats: exact repeats of an earlier row (same key, same fields).
        problems: each bad row, in file order.
        bad_lines: their lines, which the second pass leaves out.
    """

    rows: int = 0
    valid: int = 0
    repeats: int = 0
    problems: list[RowProblem] = attrs.field(factory=list)
    bad_lines: set[int] = attrs.field(factory=set)

    def bad(self, line: int, earlier: int, problem: RowProblem) -> None:
        """Make ``line`` bad, and the row on line ``earlier`` it contradicts (which one
        was meant cannot be told)."""
        self.problems.append(problem)
        if earlier not in self.bad_lines:
            self.bad_lines.add(earlier)
            self.valid -= 1
        self.bad_lines.add(line)


def check_rows(records: Records, kind: RowKind) -> RowCheck:
    """Check every row of the file before anything is sent.

    A row key given twice with the same fields is one row (a repeat); with
    other fields, both of its rows are bad. So are two start rows alike in
    every field under two keys: the same schedule, started twice.

    Raises:
        OSError, UnicodeDecodeError: the file cannot be read.
    """
    check = RowCheck()
    seen: dict[str, tuple[str, int]] = {}  # key -> (digest, first line)
    bodies: dict[str, tuple[str, int]] = {}  # a start row's digest -> (key, first line)
    for line, row in read_rows(records, kind):
        check.rows += 1
        if isinstance(row, RowProblem):
            check.problems.append(row)
            check.bad_lines.add(line)
            continue
        column = kind.key_column(row)
        earlier = seen.get(row.key)
        twin = bodies.get(row.digest) if isinstance(row, StartRow) else None
        if earlier is not None and earlier[0] != row.digest:
            what = "another change" if isinstance(row, UpdateRow) else "other fields"
            message = f"{column} given on line {earlier[1]} with {what}"
            check.bad(line, earlier[1], RowProblem(line, column, message))
        elif earlier is not None:
            check.repeats += 1
        elif twin is not None:
            message = f"the same schedule as line {twin[1]} (every field alike) under another key"
            check.bad(line, twin[1], RowProblem(line, column, message))
        else:
            seen[row.key] = (row.digest, line)
            if isinstance(row, StartRow):
                bodies[row.digest] = (row.key, line)
            check.valid += 1
    check.problems.sort(key=lambda problem: problem.line)
    return check
