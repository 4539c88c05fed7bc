"""The argument parser, and ``main``: parse, dispatch to a command, map errors to exit codes."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import attrs

from .._bulk.runner import BACKGROUND_PRIORITY
from .._protocol.operations import Operation
from .._protocol.requests import ContinueSchedule
from .._protocol.wire import DEFAULT_BASE_URL
from .._version import __version__
from ..errors import InvalidParameterError
from ._common import (
    EXIT_INTERRUPTED,
    EXIT_MEANINGS,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    _Streams,
    _UsageError,
    printable,
)
from ._demo import _cmd_demo
from ._run import _cmd_bulk
from ._settings import (
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_PASSWORD,
    ENV_REDIS_URL,
    ENV_SHARED_SECRET,
    ENV_USERNAME,
    REPORT_FORMATS,
)
from ._status_report import report_columns


def _cmd_mock_server(
    args: argparse.Namespace, streams: _Streams, environ: Mapping[str, str]
) -> int:
    del streams, environ  # the server prints its URL on the process's own stdout
    from ..testing import main_mock_server  # noqa: PLC0415 - only this command serves

    return main_mock_server(args)


def _int_at_least(value: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {number}")
    return number


def _positive_int(value: str) -> int:
    return _int_at_least(value, 1)


def _non_negative_int(value: str) -> int:
    return _int_at_least(value, 0)


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not (math.isfinite(number) and number >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {value}")
    return number


def _positive_seconds(value: str) -> float:
    number = _seconds(value)
    if number == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return number


def _aware_datetime(value: str) -> datetime:
    """``--at``: an ISO 8601 date-time with a UTC offset, as the API can take it."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date-time: {value!r:.60} (e.g. 2026-12-03T09:00:00+01:00)"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{value!r:.60} has no UTC offset: add one, e.g. {value[:19]}+00:00"
        )
    try:
        ContinueSchedule(moment)
    except InvalidParameterError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return moment


def _add_continue_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--at",
        type=_aware_datetime,
        required=True,
        metavar="DATETIME",
        help="the next charge of every schedule continued: ISO 8601 with a UTC offset,"
        " e.g. 2026-12-03T09:00:00+01:00 (sent in UTC, seconds truncated)",
    )


def _add_report_arguments(parser: argparse.ArgumentParser, columns: Sequence[str]) -> None:
    report = parser.add_argument_group("report")
    report.add_argument(
        "--report",
        type=Path,
        metavar="FILE",
        help=f"write one row per id ({', '.join(columns)}) at the end, from the"
        " journal (default journal: FILE.journal, so a killed run resumes)",
    )
    report.add_argument(
        "--format",
        choices=REPORT_FORMATS,
        help="the report's format (default: csv for a .csv FILE, else jsonl)",
    )


def _add_get_arguments(parser: argparse.ArgumentParser) -> None:
    _add_report_arguments(parser, report_columns(Operation.GET))


#: update's uniform change: flag, its column (the API's name), metavar, help.
_CHANGE_FLAGS = (
    ("--amount", "amount", "AMOUNT", "e.g. 12.90 (up to 10 digits, a point and 3)"),
    ("--currency", "currency", "CODE", "three upper-case letters, e.g. EUR"),
    ("--period-length", "periodLength", "N", "periods between charges"),
    ("--period-unit", "periodUnit", "UNIT", "DAY, WEEK, MONTH or YEAR"),
    ("--start-date-time", "startDateTime", "DATETIME", "the next charge, ISO 8601 with an offset"),
    ("--registration-uuid", "registrationUuid", "UUID", "the registration to charge"),
    ("--merchant-meta-data", "merchantMetaData", "TEXT", "up to 255 characters"),
    ("--callback-url", "callbackUrl", "URL", "an absolute http(s) URL"),
)


def _add_skip_invalid(group: Any) -> None:
    group.add_argument(
        "--skip-invalid",
        action="store_true",
        help="send the valid rows of a file with bad ones (default: send nothing, exit 2)",
    )


def _add_update_arguments(parser: argparse.ArgumentParser) -> None:
    rows = parser.add_argument_group(
        "changes (a CSV or JSON Lines file, or one change for every id read)"
    )
    rows.add_argument(
        "--input-format",
        choices=("csv", "jsonl", "ids"),
        help="what --from holds (default: by its suffix: .csv, .jsonl or .ndjson rows, else"
        " ids one per line)",
    )
    for flag, column, metavar, text in _CHANGE_FLAGS:
        rows.add_argument(
            flag,
            dest=f"change_{column}",
            metavar=metavar,
            help=f"{column} for every row whose own cell is empty: {text}",
        )
    _add_skip_invalid(rows)
    _add_report_arguments(parser, report_columns(Operation.UPDATE))


def _row_keys(value: str) -> list[str]:
    """``--retry-unknown``: row keys, comma-separated."""
    keys = [key.strip() for key in value.split(",") if key.strip()]
    if not keys:
        raise argparse.ArgumentTypeError("give the key of a row (its rowId or registrationUuid)")
    return keys


def _add_start_arguments(parser: argparse.ArgumentParser) -> None:
    rows = parser.add_argument_group("rows (a CSV or JSON Lines file of registrations)")
    rows.add_argument(
        "--input-format",
        choices=("csv", "jsonl"),
        help="what --from holds (default: by its suffix: .csv, or .jsonl/.ndjson)",
    )
    _add_skip_invalid(rows)
    rows.add_argument(
        "--retry-unknown",
        type=_row_keys,
        action="extend",
        metavar="KEY[,KEY...]",
        help="send again the rows with these keys whose outcome the journal has as unknown,"
        " once you checked that no schedule was created for them (repeatable)",
    )
    _add_report_arguments(parser, report_columns(Operation.START))


@attrs.frozen
class _BulkCommand:
    """One bulk subcommand: the operation it runs on every id, and what it says about it."""

    operation: Operation
    help: str
    description: str
    #: What exit 0 means: "every id is ...".
    state: str
    examples: tuple[str, ...]
    #: Its own arguments, beside the shared ones.
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None


_JOURNAL_NOTE = (
    "With --journal a run can be killed and started again: ids already final\n"
    "in the journal are not sent twice."
)
#: The bulk subcommands; each gets the shared input, credential, job, rate-limit
#: (--redis too) and output options of _add_bulk_options.
_BULK_COMMANDS = (
    _BulkCommand(
        Operation.CANCEL,
        help="cancel schedules in bulk, within the rate limits",
        description="Cancel schedules through the IXOPAY Transaction API, as fast as the rate\n"
        "limits allow and without 429s.\n" + _JOURNAL_NOTE,
        state="cancelled (by this run or before)",
        examples=(
            f"{PROG} cancel SC-1234 SC-5678",
            f"{PROG} cancel --from ids.txt --journal cancel.jsonl > results.tsv",
            f"cut -f1 ids.tsv | {PROG} cancel --from - --journal cancel.jsonl --json",
        ),
    ),
    _BulkCommand(
        Operation.PAUSE,
        help="pause schedules in bulk, within the rate limits",
        description="Pause schedules (POST .../pause), within the rate limits.\n" + _JOURNAL_NOTE,
        state="paused (by this run or before)",
        examples=(f"{PROG} pause --from ids.txt --journal pause.jsonl",),
    ),
    _BulkCommand(
        Operation.CONTINUE,
        help="continue paused schedules in bulk, charging next at --at",
        description="Continue paused (or failed) schedules (POST .../continue), all with the\n"
        "same next charge --at, within the rate limits.\n" + _JOURNAL_NOTE,
        state="active (by this run or before)",
        examples=(
            f"{PROG} continue --at 2026-12-03T09:00:00+01:00 --from ids.txt"
            " --journal continue.jsonl",
        ),
        add_arguments=_add_continue_arguments,
    ),
    _BulkCommand(
        Operation.GET,
        help="read schedules in bulk; --report writes a status report (JSON Lines or CSV)",
        description="Read schedules (GET .../get), within the rate limits, and with --report\n"
        "write one row per id, for audits such as 'which of these schedules are still\n"
        "active?'.\n" + _JOURNAL_NOTE,
        state="read",
        examples=(
            f"{PROG} get --from ids.txt --report status.csv",
            f"{PROG} get --from ids.txt --report status.jsonl --journal get.jsonl",
        ),
        add_arguments=_add_get_arguments,
    ),
    _BulkCommand(
        Operation.UPDATE,
        help="update schedules in bulk from a CSV or JSON Lines file of changes",
        description="Change schedules (POST .../update), each with its own change read from\n"
        "a CSV file with a header row (scheduleId and the columns to change, named as\n"
        "in the API: amount, currency, periodLength, periodUnit, startDateTime,\n"
        "registrationUuid, merchantMetaData, callbackUrl) or JSON Lines with the same\n"
        "keys; or one change (--amount, --currency, ...) for every id read. Every row\n"
        "is checked before anything is sent: bad rows are named by line and column,\n"
        "and then nothing is sent (exit 2) unless --skip-invalid is given.\n"
        "The journal keeps each row's change digest: a run again skips the rows\n"
        "applied, and a row whose change differs from the journal's is a conflict,\n"
        "not sent.\n" + _JOURNAL_NOTE,
        state="updated as its row asks",
        examples=(
            f"{PROG} update --from changes.csv --journal update.jsonl --report updated.csv",
            f"{PROG} update --from changes.csv --dry-run",
            f"{PROG} update --from ids.txt --amount 12.90 --currency EUR --journal update.jsonl",
        ),
        add_arguments=_add_update_arguments,
    ),
    _BulkCommand(
        Operation.START,
        help="start schedules in bulk (a migration) from a CSV or JSON Lines file",
        description="Start new schedules (POST .../start), one per row of a CSV file with a\n"
        "header row (registrationUuid, amount, currency, periodLength, periodUnit,\n"
        "startDateTime; optional merchantMetaData, callbackUrl, and rowId, the row's key,\n"
        "by default its registrationUuid) or JSON Lines with the same keys. Every row is\n"
        "checked before anything is sent, as for update. Start is not idempotent: with a\n"
        "journal, each request's intent is written (fsync) before it is sent, so a row\n"
        "whose answer was lost (a timeout, a 5xx, a kill) is reported 'unknown' (exit 4)\n"
        "and never sent again until you checked it and name it in --retry-unknown.\n"
        "--report lists each row's new scheduleId. A run again skips the rows started;\n"
        "an edited row is a conflict, not sent.\n" + _JOURNAL_NOTE,
        state="started",
        examples=(
            f"{PROG} start --from registrations.csv --dry-run",
            f"{PROG} start --from registrations.csv --journal start.jsonl --report started.csv",
            f"{PROG} start --from registrations.csv --journal start.jsonl"
            " --retry-unknown cust-0042",
        ),
        add_arguments=_add_start_arguments,
    ),
)


def _exit_codes(command: _BulkCommand) -> str:
    meanings = {EXIT_OK: f"every id is {command.state}", **EXIT_MEANINGS}
    return "\n".join(
        textwrap.fill(meaning, 79, initial_indent=f"  {code:<5}", subsequent_indent=" " * 7)
        for code, meaning in meanings.items()
    )


def _epilog(command: _BulkCommand) -> str:
    examples = "\n".join(f"  {line}" for line in command.examples)
    return f"""\
credentials (prefer the environment: flags show in `ps`):
  {ENV_API_KEY}        the connector apiKey
  {ENV_USERNAME}       the API user (HTTP Basic auth)
  {ENV_PASSWORD}       its password
  {ENV_SHARED_SECRET}  the connector's shared secret, if it signs requests
  {ENV_BASE_URL}       the API base URL
  {ENV_REDIS_URL}      share the rate limit through Redis

output:
  stdout  one line per id as it finishes: ID<TAB>OUTCOME<TAB>DETAIL,
          or with --json one JSON object per id and a final {{"summary": ...}}
  stderr  progress and the summary

exit codes:
{_exit_codes(command)}

examples:
  export {ENV_API_KEY}=... {ENV_USERNAME}=... {ENV_PASSWORD}=...
{examples}
"""


def _port(value: str) -> int:
    port = _positive_int(value)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {value!r}")
    return port


def _add_metrics_port(group: Any) -> None:
    group.add_argument(
        "--metrics-port",
        type=_port,
        metavar="PORT",
        help="while the job runs, serve its progress and metrics as Prometheus text at "
        "http://127.0.0.1:PORT/metrics (needs prometheus-client)",
    )


def _add_bulk_parser(commands: Any, command: _BulkCommand) -> None:
    parser = commands.add_parser(
        command.operation.path,
        help=command.help,
        description=command.description,
        epilog=_epilog(command),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if command.add_arguments is not None:
        command.add_arguments(parser)
    _add_bulk_options(parser)
    parser.set_defaults(handler=_cmd_bulk, operation=command.operation)


def _add_bulk_options(parser: argparse.ArgumentParser) -> None:
    """The options every bulk subcommand shares: input, credentials, job, limits, output."""
    parser.add_argument("ids", nargs="*", metavar="ID", help="scheduleIds")
    parser.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="read ids from FILE, one per line (# comments), or - for stdin; streamed"
        " (update: rows of changes, see above)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check every id (row) and print what would be sent for the first ones and the"
        " totals; send nothing, touch no journal, need no credentials; exit 0 when all are"
        " valid, else 2",
    )
    creds = parser.add_argument_group("credentials (default: the environment variables below)")
    creds.add_argument("--api-key", metavar="KEY", help=f"connector apiKey [{ENV_API_KEY}]")
    creds.add_argument("--username", metavar="NAME", help=f"API user [{ENV_USERNAME}]")
    creds.add_argument("--password", metavar="PASSWORD", help=f"API password [{ENV_PASSWORD}]")
    creds.add_argument(
        "--shared-secret", metavar="SECRET", help=f"connector shared secret [{ENV_SHARED_SECRET}]"
    )
    creds.add_argument(
        "--base-url", metavar="URL", help=f"API base URL [{ENV_BASE_URL}; {DEFAULT_BASE_URL}]"
    )

    job = parser.add_argument_group("job")
    job.add_argument(
        "--journal",
        type=Path,
        metavar="PATH",
        help="JSON Lines journal; a run on an existing journal skips ids final there",
    )
    job.add_argument(
        "--retry-failed",
        action="store_true",
        help="send ids whose journal outcome is 'failed' (e.g. 7040) again",
    )
    job.add_argument(
        "--concurrency",
        type=_positive_int,
        metavar="N",
        help="calls at once, queued or on the wire (default: 2 x --total)",
    )
    job.add_argument(
        "--priority",
        type=int,
        default=BACKGROUND_PRIORITY,
        metavar="P",
        help="limiter priority of the job's calls: below 0 (default -1) the job is background:"
        " a burst on a quiet budget, then paced, leaving --interactive-reserve places to"
        " services sharing the budget; 0 or more sends in bursts",
    )
    _add_metrics_port(job)
    job.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=30.0,
        metavar="S",
        help="seconds one HTTP request may take (%(default)s)",
    )

    limits = parser.add_argument_group("rate limits (the server's; defaults as documented)")
    limits.add_argument(
        "--total", type=_positive_int, default=60, metavar="N", help="per API user per window (60)"
    )
    limits.add_argument(
        "--per-schedule",
        type=_positive_int,
        default=10,
        metavar="K",
        help="per scheduleId per window (10)",
    )
    limits.add_argument(
        "--window", type=_positive_seconds, default=60.0, metavar="S", help="seconds (60)"
    )
    limits.add_argument(
        "--guard",
        type=_seconds,
        default=1.0,
        metavar="S",
        help="seconds an entry counts after its response (1)",
    )
    limits.add_argument(
        "--mode",
        choices=("exact", "smooth"),
        default="exact",
        help="exact: bursts the sliding log allows; smooth: evenly spaced",
    )
    limits.add_argument(
        "--no-adaptive", action="store_true", help="do not learn from unexpected 429s"
    )
    limits.add_argument(
        "--interactive-reserve",
        type=_non_negative_int,
        default=1,
        metavar="R",
        help="places per window background calls leave to interactive ones (1)",
    )
    limits.add_argument(
        "--redis",
        metavar="URL",
        help=f"share the budget with other processes through Redis [{ENV_REDIS_URL}]",
    )

    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="JSON Lines on stdout, with a summary")
    output.add_argument("-q", "--quiet", action="store_true", help="no per-id lines on stdout")
    output.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    output.add_argument(
        "--progress-interval",
        type=_positive_seconds,
        default=10.0,
        metavar="S",
        help="seconds between plain progress lines when stderr is no terminal (%(default)s)",
    )


def _add_demo_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="watch a bulk cancel against an in-process mock server (about 20 s)",
        description=(
            "Start the mock IXOPAY server in this process with a short window, seed it "
            "with schedules (some already cancelled, some unknown), and run the real "
            "cancel path against it: progress, summary, 429s, makespan and its lower bound."
        ),
    )
    parser.add_argument(
        "--schedules", type=_positive_int, default=300, metavar="N", help="ids (%(default)s)"
    )
    parser.add_argument(
        "--total",
        type=_positive_int,
        default=60,
        metavar="N",
        help="requests per window per API user (%(default)s)",
    )
    parser.add_argument(
        "--window",
        type=_positive_seconds,
        default=4.0,
        metavar="S",
        help="the window in seconds (%(default)s)",
    )
    parser.add_argument(
        "--guard",
        type=_seconds,
        default=0.1,
        metavar="S",
        help="the client's guard in seconds (%(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N", help="shuffle seed (%(default)s)"
    )
    parser.add_argument("--journal", type=Path, metavar="PATH", help="keep the journal here")
    parser.add_argument("--json", action="store_true", help="per-id JSON lines and a summary")
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    _add_metrics_port(parser)
    parser.set_defaults(handler=_cmd_demo)


def _add_mock_server_parser(commands: Any) -> None:
    from ..testing import add_mock_server_arguments  # noqa: PLC0415 - aiohttp.web loads only here

    parser = commands.add_parser(
        "mock-server",
        help="serve the mock IXOPAY schedule API on 127.0.0.1 (for tests and demos)",
        description=(
            "Serve the six schedule endpoints emulated (get, start, update, pause, continue, "
            "cancel): Basic auth, signatures, the schedule state machine, one budget for "
            "both rate limits, and fault injection. Prints its base URL."
        ),
    )
    add_mock_server_arguments(parser)
    parser.set_defaults(handler=_cmd_mock_server)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``schedcancel`` argument parser.

    Returns:
        The parser with its ``cancel``, ``pause``, ``continue``, ``get``, ``update``, ``start``,
        ``demo`` and ``mock-server`` subcommands.
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Cancel, pause, continue, read, update or start IXOPAY recurring-payment schedules in"
            " bulk, "
            "within the API's rate "
            "limits (60 per minute per API user, 10 per minute per schedule)."
        ),
        epilog=f"Run '{PROG} demo' to see it work, '{PROG} cancel --help' for the real thing.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-vv for debug)"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in _BULK_COMMANDS:
        _add_bulk_parser(commands, command)
    _add_demo_parser(commands)
    _add_mock_server_parser(commands)
    return parser


@contextlib.contextmanager
def _logging_to(stream: IO[str], verbosity: int) -> Iterator[None]:
    package = logging.getLogger("schedcancel")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(name)s: %(message)s"))
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbosity, 2)]
    handler.setLevel(level)
    previous = package.level
    package.addHandler(handler)
    package.setLevel(min(level, previous) if previous else level)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(previous)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run the ``schedcancel`` command.

    Args:
        argv: the arguments after the program name; default ``sys.argv[1:]``.
        stdin: ids for ``--from -``; default ``sys.stdin``.
        stdout: per-id results and JSON; default ``sys.stdout``.
        stderr: progress, summary and messages; default ``sys.stderr``.
        environ: where ``SCHEDCANCEL_*`` variables are read; default ``os.environ``.

    Returns:
        The exit code (see the ``schedcancel.cli`` docstring).
    """
    streams = _Streams(
        stdin=stdin if stdin is not None else sys.stdin,
        stdout=stdout if stdout is not None else sys.stdout,
        stderr=stderr if stderr is not None else sys.stderr,
    )
    parser = build_parser()
    try:
        with contextlib.redirect_stdout(streams.stdout), contextlib.redirect_stderr(streams.stderr):
            args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help, --version (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(streams.stderr)
        return EXIT_USAGE
    with _logging_to(streams.stderr, args.verbose):
        try:
            code: int = handler(args, streams, os.environ if environ is None else environ)
        except _UsageError as exc:
            streams.stderr.write(f"{PROG}: error: {printable(str(exc))}\n")
            return EXIT_USAGE
        except KeyboardInterrupt:
            streams.stderr.write(f"\n{PROG}: interrupted\n")
            return EXIT_INTERRUPTED
    return code
