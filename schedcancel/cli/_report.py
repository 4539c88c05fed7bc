"""What a run shows: progress on stderr, a line per id, how it ended and its summary.

``rich`` (the ``cli`` extra) is imported only when stderr is a terminal.
"""

from __future__ import annotations

import json
import math
import os
from typing import IO, Any, Protocol

import attrs

from .._bulk.journal import BulkOutcome, OutcomeKind, outcome_kinds
from .._bulk.runner import BulkProgress
from .._protocol.operations import Operation
from ._common import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_MEANINGS,
    EXIT_OK,
    EXIT_UNKNOWN,
    EXIT_USAGE,
    INSTALL_CLI_HINT,
    PROG,
    _isatty,
    printable,
)
from ._input import InputError
from ._settings import RunSettings

# Per bulk operation: what every id is after exit 0, and the progress bar's word.
_DONE_STATES = {
    Operation.CANCEL: "cancelled",
    Operation.PAUSE: "paused",
    Operation.CONTINUE: "active",
    Operation.GET: "read",
    Operation.UPDATE: "updated",
    Operation.START: "started",
}
_ACTIVITIES = {
    Operation.CANCEL: "cancelling",
    Operation.PAUSE: "pausing",
    Operation.CONTINUE: "continuing",
    Operation.GET: "reading",
    Operation.UPDATE: "updating",
    Operation.START: "starting",
}


def format_duration(seconds: float | None) -> str:
    """Format seconds for people: ``0.4s``, ``12s``, ``3m05s``, ``2h44m``.

    Args:
        seconds: the duration; None or a negative or infinite value gives ``?``.

    Returns:
        The short form.
    """
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _rate_per_minute(progress: BulkProgress) -> str:
    return f"{progress.rate * 60:.1f}/min"


def _done_text(progress: BulkProgress) -> str:
    if progress.total is None:
        return f"{progress.completed} done"
    share = 100.0 * progress.completed / progress.total if progress.total else 100.0
    return f"{progress.completed}/{progress.total} done ({share:.1f}%)"


def progress_line(progress: BulkProgress) -> str:
    """Render one plain progress line (for logs and non-terminal stderr).

    Args:
        progress: the job's snapshot.

    Returns:
        For example ``120/300 done (40.0%) | 58.2/min | 0 x 429 | ETA 1m05s``.
    """
    parts = [
        _done_text(progress),
        _rate_per_minute(progress),
        f"{progress.rate_limited} x 429",
        "stopping" if progress.stopping else f"ETA {format_duration(progress.eta)}",
    ]
    return " | ".join(parts)


@attrs.define
class RunReport:
    """How one ``cancel`` run ended.

    Attributes:
        progress: the last snapshot; None when the job never started (its
            journal could not be opened).
        failure: the error that ended the job early, if any.
        interrupted: a signal stopped it.
        abandoned: requests in flight given up at a second signal.
        error_types: ``error`` outcomes per exception class.
        failed_not_final: ``failed`` outcomes that are not final (errorCode
            7002 or none): the next run on the journal sends them again.
        statuses: for ``get``, ids per status (``ACTIVE``, ...; ``failed``,
            ``error``, ``invalid`` for those not read): of the whole report
            when one was written, else of this run's outcomes.
    """

    progress: BulkProgress | None
    failure: BaseException | None
    interrupted: bool
    abandoned: int = 0
    error_types: dict[str, int] = attrs.field(factory=dict)
    failed_not_final: int = 0
    statuses: dict[str, int] = attrs.field(factory=dict)

    @property
    def unknown(self) -> int:
        """Rows whose outcome is unknown (``start``): this run's and the journal's."""
        if self.progress is None:
            return 0
        kind = OutcomeKind.UNKNOWN
        return self.progress.counts.get(kind, 0) + self.progress.journal_counts.get(kind, 0)

    @property
    def exit_code(self) -> int:
        """The process exit code (see the ``schedcancel.cli`` docstring)."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        failure = self.failure
        if isinstance(failure, InputError) or (
            # Before the first snapshot: the journal is busy, corrupt or cannot be opened.
            self.progress is None and isinstance(failure, (OSError, ValueError))
        ):
            return EXIT_USAGE
        if failure is not None:
            # Anything that ended a started job early, a journal write failing too: the
            # ids not done are not in the journal, so a run again on it does them.
            return EXIT_INCOMPLETE
        counts = self.progress.counts if self.progress else {}
        before = self.progress.journal_counts if self.progress else {}
        if counts.get(OutcomeKind.ERROR, 0) or self.failed_not_final:
            return EXIT_INCOMPLETE
        if self.unknown:
            return EXIT_UNKNOWN
        for kind in (OutcomeKind.FAILED, OutcomeKind.INVALID, OutcomeKind.CONFLICT):
            if counts.get(kind, 0) or before.get(kind, 0):
                return EXIT_FAILED
        return EXIT_OK


class _Reporter(Protocol):
    last: BulkProgress | None

    def update(self, progress: BulkProgress) -> None: ...

    def print_line(self, text: str, stream: IO[str]) -> None: ...

    def note(self, text: str) -> None: ...

    def __enter__(self) -> _Reporter: ...

    def __exit__(self, *exc_info: object) -> None: ...


@attrs.define
class _PlainReporter:
    """Progress as a plain line every ``interval`` seconds (of the job's clock; inf: never)."""

    stream: IO[str]
    interval: float
    last: BulkProgress | None = None
    _printed_at: float = 0.0

    def update(self, progress: BulkProgress) -> None:
        self.last = progress
        if progress.finished:
            return
        if progress.elapsed - self._printed_at >= self.interval:
            self._printed_at = progress.elapsed
            self.stream.write(f"{PROG}: {progress_line(progress)}\n")
            self.stream.flush()

    def print_line(self, text: str, stream: IO[str]) -> None:
        stream.write(text + "\n")

    def note(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def __enter__(self) -> _PlainReporter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


class _RichReporter:
    """A ``rich`` progress bar on stderr: done/total, rate, 429s, ETA from the limiter."""

    def __init__(
        self, stream: IO[str], stdout_is_terminal: bool, activity: str = "cancelling"
    ) -> None:
        from rich.console import Console  # noqa: PLC0415 - rich is the optional cli extra
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.last: BulkProgress | None = None
        self._stdout_is_terminal = stdout_is_terminal
        self._activity = activity
        self.console = Console(file=stream, stderr=True)
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[rate_limited]} x 429"),
            TextColumn("ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.task = self.progress.add_task(activity, total=None, rate="-", rate_limited=0, eta="?")

    def update(self, progress: BulkProgress) -> None:
        self.last = progress
        self.progress.update(
            self.task,
            description="stopping" if progress.stopping else self._activity,
            total=progress.total,
            completed=progress.completed,
            rate=_rate_per_minute(progress),
            rate_limited=progress.rate_limited,
            eta=format_duration(progress.eta),
        )

    def print_line(self, text: str, stream: IO[str]) -> None:
        if self._stdout_is_terminal:
            # stdout and stderr are the same terminal: print above the live bar, not through it.
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            stream.write(text + "\n")

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def __enter__(self) -> _RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()


def _rich_available() -> bool:
    try:
        import rich.progress  # noqa: F401, PLC0415 - only probing for the optional extra
    except ImportError:
        return False
    return True


def _make_reporter(settings: RunSettings, stdout: IO[str], stderr: IO[str]) -> _Reporter:
    if not settings.show_progress:
        return _PlainReporter(stream=stderr, interval=math.inf)
    if _isatty(stderr):
        if _rich_available():
            return _RichReporter(
                stderr,
                stdout_is_terminal=_isatty(stdout),
                activity=_ACTIVITIES[settings.operation],
            )
        stderr.write(f"{PROG}: for a progress bar, {INSTALL_CLI_HINT}\n")
    return _PlainReporter(stream=stderr, interval=settings.progress_interval)


def outcome_text(outcome: BulkOutcome) -> str:
    """Render an outcome as one tab-separated line: id, outcome, detail.

    Args:
        outcome: the finished id.

    Returns:
        For example ``SC-1<TAB>cancelled<TAB>ACTIVE->CANCELLED``.
    """
    if outcome.kind is OutcomeKind.FAILED:
        detail = f"{outcome.error_code} {outcome.error or ''}".strip()
    elif outcome.kind is OutcomeKind.ERROR:
        detail = f"{outcome.error_type}: {outcome.error}"
    elif outcome.kind in (OutcomeKind.INVALID, OutcomeKind.CONFLICT, OutcomeKind.UNKNOWN):
        detail = outcome.error or ""
    elif outcome.kind is OutcomeKind.STARTED:
        detail = f"{outcome.new_schedule_id} {outcome.new_status}"
    elif outcome.kind is OutcomeKind.UPDATED:
        values = json.dumps(dict(outcome.values or {}), separators=(",", ":"))
        detail = f"{outcome.new_status} {values}"
    elif outcome.kind is OutcomeKind.READ:
        detail = str(outcome.new_status)
        if outcome.scheduled_at is not None:
            detail += f" next {outcome.scheduled_at.isoformat()}"
    else:
        detail = f"{outcome.old_status}->{outcome.new_status}"
    return "\t".join(printable(part) for part in (outcome.schedule_id, outcome.kind.value, detail))


def _outcome_json(outcome: BulkOutcome) -> str:
    # ASCII: no terminal escape (C1 controls, bidi overrides) reaches stdout raw.
    return json.dumps(outcome.to_record(), separators=(",", ":"))


def _summary_rows(
    progress: BulkProgress | None, operation: Operation
) -> list[tuple[str, int, int]]:
    rows = []
    for kind in outcome_kinds(operation):
        now = progress.counts.get(kind, 0) if progress else 0
        before = progress.journal_counts.get(kind, 0) if progress else 0
        rows.append((kind.value.replace("_", " "), now, before))
    return rows


def _by_count(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Most first, then by name: the same order whatever order the answers came in."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _exit_meaning(code: int, operation: Operation) -> str:
    if code == EXIT_OK:
        return f"every id is {_DONE_STATES[operation]}"
    return EXIT_MEANINGS[code]


def _progress_notes(progress: BulkProgress) -> list[str]:
    notes = [
        f"429 responses: {progress.rate_limited}",
        f"elapsed: {format_duration(progress.elapsed)}",
    ]
    if progress.duplicates:
        notes.append(f"duplicates skipped: {progress.duplicates}")
    if progress.stopping and progress.remaining:
        notes.append(f"not done (stopped early): {progress.remaining}")
    elif progress.stopping and progress.withdrawn:
        notes.append(f"not sent (stopped early): {progress.withdrawn}")
    if progress.unrecorded:
        notes.append(f"answered but not journaled (a run again sends them): {progress.unrecorded}")
    return notes


def _summary_notes(report: RunReport, settings: RunSettings, *, show_exit: bool) -> list[str]:
    progress = report.progress
    notes = [] if progress is None else _progress_notes(progress)
    if report.abandoned:
        notes.append(f"abandoned in flight: {report.abandoned}")
    if report.failed_not_final:
        notes.append(f"failed, not final (a run again sends them): {report.failed_not_final}")
    if report.unknown:
        notes.append(
            f"outcome unknown - check before re-running: {report.unknown} (never sent again;"
            " see docs/migration.md, then --retry-unknown KEY for each one not created)"
        )
    if report.error_types:
        kinds = ", ".join(f"{name} x{count}" for name, count in sorted(report.error_types.items()))
        notes.append(f"errors: {kinds}")
    if report.failure is not None:
        notes.append(
            f"stopped by: {type(report.failure).__name__}: {printable(str(report.failure))}"
        )
    if report.statuses:
        shown = ", ".join(
            f"{printable(status)} {count}" for status, count in _by_count(report.statuses)
        )
        notes.append(f"by status: {shown}")
    if settings.journal is not None:
        notes.append(f"journal: {settings.journal}")
    if settings.report is not None:
        notes.append(f"report: {settings.report}")
    if show_exit:
        code = report.exit_code
        notes.append(f"exit {code}: {_exit_meaning(code, settings.operation)}")
    return notes


def print_summary(
    report: RunReport, settings: RunSettings, stderr: IO[str], *, show_exit: bool = True
) -> None:
    """Print the summary table (rich on a terminal, plain text otherwise) to stderr.

    Args:
        report: how the run ended.
        settings: its settings.
        stderr: where to print.
        show_exit: end with the exit code and its meaning.
    """
    rows = _summary_rows(report.progress, settings.operation)
    with_journal = any(before for _, _, before in rows)
    notes = _summary_notes(report, settings, show_exit=show_exit)
    if _isatty(stderr) and _rich_available():
        from rich.console import Console  # noqa: PLC0415 - optional extra
        from rich.table import Table  # noqa: PLC0415

        table = Table(title=f"{PROG} summary", title_justify="left")
        table.add_column("outcome")
        table.add_column("this run", justify="right")
        if with_journal:
            table.add_column("from journal", justify="right")
        for label, now, before in rows:
            cells = [label, str(now)] + ([str(before)] if with_journal else [])
            table.add_row(*cells)
        console = Console(file=stderr, stderr=True)
        console.print(table)
        for note in notes:
            console.print(note, markup=False, highlight=False)
        return
    header = f"{'outcome':<18} {'this run':>9}" + (f" {'from journal':>13}" if with_journal else "")
    lines = [f"{PROG} summary", header]
    for label, now, before in rows:
        line = f"{label:<18} {now:>9}" + (f" {before:>13}" if with_journal else "")
        lines.append(line)
    lines.extend(notes)
    stderr.write("\n".join(lines) + "\n")


def summary_json(report: RunReport, settings: RunSettings) -> dict[str, Any]:
    """Return the machine-readable summary (``--json``).

    Args:
        report: how the run ended.
        settings: its settings.

    Returns:
        A JSON-ready object.
    """
    progress = report.progress
    kinds = outcome_kinds(settings.operation)
    counts = {kind.value: progress.counts.get(kind, 0) if progress else 0 for kind in kinds}
    journal = {
        kind.value: progress.journal_counts.get(kind, 0) if progress else 0 for kind in kinds
    }
    failure = report.failure
    summary: dict[str, Any] = {
        "operation": settings.operation.path,
        "exit_code": report.exit_code,
        "total": progress.total if progress else None,
        "counts": counts,
        "from_journal": journal,
        "skipped": progress.skipped if progress else 0,
        "duplicates": progress.duplicates if progress else 0,
        "not_done": progress.remaining if progress and progress.stopping else 0,
        "rate_limited": progress.rate_limited if progress else 0,
        "elapsed": round(progress.elapsed, 3) if progress else 0.0,
        "interrupted": report.interrupted,
        "error_types": dict(sorted(report.error_types.items())),
        "failed_not_final": report.failed_not_final,
        "failure": None if failure is None else f"{type(failure).__name__}: {failure}",
        "journal": None if settings.journal is None else os.fspath(settings.journal),
    }
    if settings.operation is Operation.GET:
        summary["statuses"] = dict(_by_count(report.statuses))
    if settings.operation is Operation.START:
        summary["unknown"] = report.unknown
    if settings.operation in (Operation.GET, Operation.UPDATE, Operation.START):
        summary["report"] = None if settings.report is None else os.fspath(settings.report)
    return summary
