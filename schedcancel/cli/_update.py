"""The rows of ``update`` and ``start`` (checked in full before anything is sent), and
``--dry-run`` of every bulk command."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from .._protocol.operations import Operation
from .._protocol.requests import ContinueSchedule, UpdateRow, format_date_time
from .._protocol.validate import validate_schedule_id
from ..errors import InvalidParameterError
from ._common import EXIT_OK, EXIT_USAGE, PROG, _Streams, _UsageError, printable
from ._input import InputError, _Input, numbered_ids
from ._rows import (
    CHANGE_COLUMNS,
    START_ROWS,
    Records,
    Row,
    RowCheck,
    RowKind,
    RowProblem,
    check_rows,
    csv_records,
    id_records,
    jsonl_records,
    read_rows,
    row_format,
    uniform_change,
    update_rows,
)

#: ``--dry-run`` shows the requests of this many first rows.
PREVIEW_ROWS = 10


def _uniform(args: argparse.Namespace) -> dict[str, object]:
    given = {column: getattr(args, f"change_{column}", None) for column in CHANGE_COLUMNS}
    try:
        return uniform_change(given)
    except InvalidParameterError as exc:
        raise _UsageError(str(exc)) from None


def _row_kind(args: argparse.Namespace) -> tuple[RowKind, dict[str, object]]:
    """The command's rows, and (update) the uniform change for their empty cells."""
    if args.operation is Operation.START:
        return START_ROWS, {}
    uniform = _uniform(args)
    return update_rows(uniform), uniform


def _regular_file(source: str, command: str) -> Path:
    path = Path(source)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise _UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise _UsageError(
            f"{command} reads a regular file ({source} is not one): every row is checked"
            " before anything is sent, so the file is read twice"
        )
    return path


def _numbered_file(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as file:
        yield from numbered_ids(file, os.fspath(path))


def _row_records(
    args: argparse.Namespace, kind: RowKind, uniform: dict[str, object]
) -> Callable[[], Records]:
    """What makes the command's records afresh (each pass reads the file again)."""
    source: str | None = args.from_file
    if source == "-":
        raise _UsageError(
            f"{kind.command} does not read stdin: give --from a regular file (every row is"
            " checked before anything is sent, so the file is read twice)"
        )
    if kind is START_ROWS:
        return _start_records(args, source)
    if source is not None and args.ids:
        raise _UsageError("give the ids as arguments or --from FILE, not both")
    fmt = row_format(source, args.input_format) if source is not None else None
    if fmt is None and not uniform:
        raise _UsageError(
            "update needs changes: --from a .csv or .jsonl file of rows (or --input-format),"
            " or a change for every id read (--amount, --currency, ...)"
        )
    if source is None:
        if not args.ids:
            raise _UsageError("no ids: pass them as arguments, or use --from FILE")
        given: list[str] = list(args.ids)
        return lambda: id_records(enumerate(given, start=1))
    path = _regular_file(source, kind.command)
    if fmt == "csv":
        return lambda: csv_records(path, kind)
    if fmt == "jsonl":
        return lambda: jsonl_records(path, kind)
    return lambda: id_records(_numbered_file(path))


def _start_records(args: argparse.Namespace, source: str | None) -> Callable[[], Records]:
    """``start``'s records: a CSV or JSON Lines file of registrations, nothing else."""
    if args.ids or source is None:
        raise _UsageError(
            "start reads its rows from a file: --from registrations.csv (or .jsonl), not ids"
        )
    fmt = row_format(source, args.input_format)
    if fmt is None:
        raise _UsageError(
            f"start reads CSV or JSON Lines: name the file .csv, .jsonl or .ndjson, or give"
            f" --input-format ({source} has no such suffix)"
        )
    path = _regular_file(source, "start")
    read = csv_records if fmt == "csv" else jsonl_records
    return lambda: read(path, START_ROWS)


def _check(records: Callable[[], Records], kind: RowKind, name: str) -> RowCheck:
    try:
        check = check_rows(records(), kind)
    except (OSError, UnicodeDecodeError, InputError, csv.Error) as exc:
        raise _UsageError(_unreadable(name, exc)) from None
    if not check.rows:
        raise _UsageError(f"no rows in {name}")
    return check


def _unreadable(name: str, exc: BaseException) -> str:
    if isinstance(exc, InputError):
        return str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return f"cannot read {name}: not UTF-8 ({exc.reason})"
    return f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}"


def _print_problems(name: str, check: RowCheck, stderr: IO[str], *, skipped: bool) -> None:
    what = "skipped (--skip-invalid)" if skipped else "nothing is sent"
    stderr.write(f"{PROG}: {len(check.bad_lines)} bad rows in {name}; {what}:\n")
    for problem in check.problems:
        stderr.write(f"  {name}: {printable(str(problem))}\n")


def row_input(args: argparse.Namespace, streams: _Streams) -> _Input:
    """Check every row of ``update``'s (``start``'s) input, then return the good rows to
    stream to the job.

    Raises:
        _UsageError: bad flags, an unreadable input, or bad rows without ``--skip-invalid``.
    """
    kind, uniform = _row_kind(args)
    records = _row_records(args, kind, uniform)
    name = args.from_file or "arguments"
    check = _check(records, kind, name)
    if check.problems:
        _print_problems(name, check, streams.stderr, skipped=args.skip_invalid)
        if not args.skip_invalid:
            raise _UsageError(f"bad rows in {name}: fix them, or pass --skip-invalid")
    if not check.valid:
        raise _UsageError(f"no valid rows in {name}")

    def rows() -> Iterator[Row]:
        for line, row in read_rows(records(), kind):
            if line in check.bad_lines:
                continue
            if isinstance(row, RowProblem):  # the file changed since it was checked
                raise InputError(f"{name} changed while it was read: line {line}")
            yield row

    return _Input(ids=rows(), total=check.rows - len(check.bad_lines))


# --------------------------------------------------------------------------- --dry-run


def _shown_change(row: Row) -> str:
    body = row.values()
    request = row.changes if isinstance(row, UpdateRow) else row.schedule
    hidden = [
        wire
        for wire, name in CHANGE_COLUMNS.items()
        if wire not in body and getattr(request, name) is not None
    ]
    text = json.dumps(body, separators=(",", ":"))
    return text + "".join(f" +{wire}" for wire in hidden)


def _id_lines(args: argparse.Namespace, stdin: IO[str]) -> Iterator[tuple[str, str]]:
    """Each id read with where it was (``argument 2``, ``line 7``), for the dry run."""
    for number, schedule_id in enumerate(args.ids, start=1):
        yield f"argument {number}", schedule_id
    source: str | None = args.from_file
    if source is None:
        return
    if source == "-":
        buffer = getattr(stdin, "buffer", None)
        raw = buffer if buffer is not None else io.BytesIO(stdin.read().encode())
        numbered: Iterable[tuple[int, str]] = numbered_ids(raw, "stdin")
    else:
        numbered = _numbered_file(Path(source))  # read lazily: the caller maps its errors
    for line, schedule_id in numbered:
        yield f"line {line}", schedule_id


def _request_body(args: argparse.Namespace, operation: Operation) -> str:
    if operation is Operation.CONTINUE:
        return json.dumps({"continueDateTime": format_date_time("at", args.at)})
    return ""


def _dry_run_ids(args: argparse.Namespace, streams: _Streams, operation: Operation) -> int:
    if args.from_file is None and not args.ids:
        raise _UsageError("no ids: pass them as arguments, or use --from FILE (- for stdin)")
    if operation is Operation.CONTINUE:
        ContinueSchedule(args.at)  # checked by the parser already
    body = _request_body(args, operation)
    name = args.from_file or "arguments"
    read = valid = 0
    seen: set[str] = set()
    repeats = 0
    bad: list[str] = []
    try:
        for where, schedule_id in _id_lines(args, streams.stdin):
            read += 1
            try:
                validate_schedule_id(schedule_id)
            except InvalidParameterError as exc:
                bad.append(f"{where}: {exc}")
                continue
            if schedule_id in seen:
                repeats += 1
                continue
            seen.add(schedule_id)
            valid += 1
            if valid <= PREVIEW_ROWS:
                streams.stdout.write(f"{schedule_id}\t{operation}\t{body}".rstrip() + "\n")
    except (OSError, InputError) as exc:
        raise _UsageError(_unreadable(name, exc)) from None
    for problem in bad:
        streams.stderr.write(f"  {name}: {printable(problem)}\n")
    return _dry_run_totals(streams, name, read=read, valid=valid, repeats=repeats, bad=len(bad))


def _dry_run_totals(
    streams: _Streams, name: str, *, read: int, valid: int, repeats: int, bad: int
) -> int:
    shown = min(valid, PREVIEW_ROWS)
    streams.stderr.write(
        f"{PROG}: dry run of {name}: {read} read, {valid} to send"
        f" (the first {shown} shown above), {repeats} repeated (sent once), {bad} bad;"
        " nothing was sent, no journal was touched\n"
    )
    return EXIT_OK if not bad and read else EXIT_USAGE


def dry_run(args: argparse.Namespace, streams: _Streams) -> int:
    """Check every id (or row) and show what would be sent; send nothing, touch no journal.

    Returns:
        0 when every item is valid, 2 when one is not (or there is none).
    """
    operation: Operation = args.operation
    if operation not in (Operation.UPDATE, Operation.START):
        return _dry_run_ids(args, streams, operation)
    kind, uniform = _row_kind(args)
    records = _row_records(args, kind, uniform)
    name = args.from_file or "arguments"
    check = _check(records, kind, name)
    shown: set[str] = set()
    for line, row in read_rows(records(), kind):
        if len(shown) == PREVIEW_ROWS:
            break
        if line in check.bad_lines or isinstance(row, RowProblem) or row.key in shown:
            continue
        shown.add(row.key)
        change = printable(_shown_change(row))
        streams.stdout.write(f"{printable(row.key)}\t{operation}\t{change}\n")
    if check.problems:
        _print_problems(name, check, streams.stderr, skipped=False)
    return _dry_run_totals(
        streams,
        name,
        read=check.rows,
        valid=check.valid,
        repeats=check.repeats,
        bad=len(check.bad_lines),
    )
