"""The bulk run: ``run_bulk`` (limiter, signals, per-id output) and the bulk commands
(``cancel``, ``pause``, ``continue``, ``get``, ``update``, ``start``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Mapping
from typing import IO, TYPE_CHECKING

import attrs

from .._bulk.journal import BulkOutcome, OutcomeKind
from .._bulk.runner import BulkOptions, run_many, start_many
from .._client.hooks import LoggingHook
from .._protocol.operations import Operation
from .._protocol.redact import scrub, url_secrets
from .._protocol.requests import StartRow, UpdateRow
from ..errors import InvalidParameterError, ScheduleError
from ._common import EXIT_OK, EXIT_USAGE, INSTALL_REDIS_HINT, PROG, _isatty, _Streams, _UsageError
from ._input import _open_input
from ._metrics import JobMetrics
from ._report import (
    RunReport,
    _make_reporter,
    _outcome_json,
    _Reporter,
    outcome_text,
    print_summary,
    summary_json,
)
from ._settings import RunSettings, _settings_from_args
from ._status_report import latest_outcomes, status_key, write_report
from ._update import dry_run, row_input

if TYPE_CHECKING:
    from .._protocol.models import Limiter


def _make_limiter(settings: RunSettings) -> Limiter:
    """Make the run's limiter; a bad ``--redis`` URL is a usage error (without its password)."""
    if settings.redis_url is None:
        from .._limiting.limiter import RateLimiter  # noqa: PLC0415 - loaded with the client anyway

        return RateLimiter(settings.limits)
    try:
        from ..redis import RedisLimiter  # noqa: PLC0415 - optional extra
    except ImportError:
        raise _UsageError(f"--redis needs redis-py: {INSTALL_REDIS_HINT}") from None
    try:
        return RedisLimiter(settings.redis_url, username=settings.username, limits=settings.limits)
    except InvalidParameterError as exc:
        message = scrub(str(exc), url_secrets(settings.redis_url))
        raise _UsageError(f"--redis: {message}") from None


async def _serve_metrics(port: int | None, limiter: Limiter) -> JobMetrics | None:
    """Start ``--metrics-port``'s endpoint; on failure close ``limiter`` and raise a usage error."""
    if port is None:
        return None
    try:
        metrics = JobMetrics()
        await metrics.serve(port)
    except _UsageError:
        await limiter.aclose()
        raise
    return metrics


def _install_signal_handlers(on_signal: Callable[[], None]) -> Callable[[], None]:
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal)
        except (
            NotImplementedError,
            RuntimeError,
            ValueError,
        ):  # pragma: no cover - no POSIX signals
            continue
        installed.append(signum)

    def remove() -> None:
        for signum in installed:
            loop.remove_signal_handler(signum)

    return remove


def _stdout_closed(stdout: IO[str], reporter: _Reporter) -> None:
    """Note once that stdout's reader went away, and make later writes to it harmless."""
    reporter.note(f"{PROG}: stdout was closed; the job goes on without per-id lines")
    # The interpreter flushes sys.stdout at exit; pointing its descriptor at /dev/null keeps
    # that flush from raising BrokenPipeError again. (StringIO has no descriptor.)
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stdout.fileno())
        finally:
            os.close(devnull)


@attrs.define
class _Tally:
    """What the per-id lines tell beyond the job's own counts."""

    error_types: dict[str, int] = attrs.field(factory=dict)
    failed_not_final: int = 0
    statuses: dict[str, int] = attrs.field(factory=dict)


async def _consume(
    outcomes: AsyncGenerator[BulkOutcome, None],
    settings: RunSettings,
    reporter: _Reporter,
    stdout: IO[str],
    tally: _Tally,
) -> BaseException | None:
    """Print each outcome as it comes; return the error that ended the job early, if any.

    A reader of stdout that goes away (``| head``) does not stop the job: the
    cancels have effects, and the journal and summary still record them.
    """
    printing = settings.json_output or not settings.quiet
    error_types = tally.error_types
    async with contextlib.aclosing(outcomes):
        try:
            async for outcome in outcomes:
                if outcome.kind is OutcomeKind.ERROR and outcome.error_type:
                    error_types[outcome.error_type] = error_types.get(outcome.error_type, 0) + 1
                elif outcome.kind is OutcomeKind.FAILED and not outcome.final:
                    tally.failed_not_final += 1
                if settings.operation is Operation.GET:
                    key = status_key(outcome)
                    tally.statuses[key] = tally.statuses.get(key, 0) + 1
                if not printing:
                    continue
                text = _outcome_json(outcome) if settings.json_output else outcome_text(outcome)
                try:
                    reporter.print_line(text, stdout)
                except BrokenPipeError:
                    printing = False
                    _stdout_closed(stdout, reporter)
        except (ScheduleError, OSError, ValueError) as exc:
            return exc
    return None


async def run_bulk(
    settings: RunSettings,
    ids: Iterable[str] | Iterable[UpdateRow | StartRow] | AsyncIterator[str],
    *,
    total: int | None,
    stdout: IO[str],
    stderr: IO[str],
) -> RunReport:
    """Run a bulk job the way ``schedcancel cancel`` (``pause``, ``continue``, ``get``) does.

    The job runs ``settings.operation`` on every id (continue with
    ``settings.continue_at``), and this reports how it ended.

    SIGINT and SIGTERM stop it cleanly: no id is started any more, requests
    still waiting for the limiter are withdrawn, requests on the wire finish
    and are journaled. A second signal abandons those too.

    Args:
        settings: the resolved settings.
        ids: the ids.
        total: how many input items there are, when known.
        stdout: per-id result lines (and the JSON summary).
        stderr: progress and messages.

    Returns:
        The run's report; its ``exit_code`` is the command's.

    Raises:
        _UsageError: the settings cannot make a client or limiter.
    """
    from .._client.client import ScheduleClient  # noqa: PLC0415 - keeps `schedcancel --help` fast

    limiter = _make_limiter(settings)
    metrics = await _serve_metrics(settings.metrics_port, limiter)
    stop = asyncio.Event()
    current = asyncio.current_task()
    if current is None:  # pragma: no cover - a coroutine always runs in a task
        raise RuntimeError("run_bulk must run in a task")
    state = {"signals": 0, "abandoned": 0}
    tally = _Tally()
    reporter = _make_reporter(settings, stdout, stderr)

    def on_signal() -> None:
        state["signals"] += 1
        if state["signals"] == 1:
            stop.set()  # the job withdraws the calls still waiting for the limiter
            reporter.note(
                f"{PROG}: stopping: no new requests; waiting for those in flight "
                "(signal again to abandon them)"
            )
        else:
            state["abandoned"] = limiter.stats().in_flight
            reporter.note(f"{PROG}: abandoning the requests in flight")
            current.cancel()

    failure: BaseException | None = None
    abandoned = False
    remove_handlers = _install_signal_handlers(on_signal)
    try:
        try:
            client = ScheduleClient(
                settings.api_key,
                username=settings.username,
                password=settings.password,
                shared_secret=settings.shared_secret,
                base_url=settings.base_url,
                limiter=limiter,
                retry=settings.retry,
                timeout=settings.timeout,
                hooks=None if metrics is None else (LoggingHook(), metrics.hook),
            )
        except InvalidParameterError as exc:
            raise _UsageError(str(exc)) from None
        async with client:
            with reporter:
                options = BulkOptions(
                    concurrency=settings.concurrency,
                    journal=settings.journal,
                    progress=reporter.update if metrics is None else metrics.tee(reporter.update),
                    progress_interval=min(0.25, settings.progress_interval),
                    total=total,
                    stop=stop,
                    priority=settings.priority,
                    retry_failed=settings.retry_failed,
                )
                if settings.operation is Operation.START:
                    outcomes = start_many(
                        client, ids, retry_unknown=settings.retry_unknown, **options
                    )
                else:
                    outcomes = run_many(
                        client, settings.operation, ids, at=settings.continue_at, **options
                    )
                failure = await _consume(outcomes, settings, reporter, stdout, tally)
    except asyncio.CancelledError:
        if state["signals"] < 2:
            raise
        current.uncancel()
        abandoned = True
    finally:
        remove_handlers()
        if metrics is not None:
            await metrics.aclose()
        await limiter.aclose()
        with contextlib.suppress(OSError, ValueError):
            stdout.flush()
    return RunReport(
        progress=reporter.last,
        failure=failure,
        interrupted=state["signals"] > 0,
        abandoned=state["abandoned"] if abandoned else 0,
        error_types=tally.error_types,
        failed_not_final=tally.failed_not_final,
        statuses=tally.statuses,
    )


def _write_status_report(report: RunReport, settings: RunSettings, streams: _Streams) -> None:
    """Write ``get --report`` from the journal: every id the journal holds, once.

    Also when the run stopped early: the report then holds the ids done so
    far, and a run again on the same journal completes it. A report that
    cannot be written makes the run incomplete (exit 3); the journal keeps
    everything, so a run again writes it.
    """
    if settings.report is None or settings.journal is None or report.progress is None:
        return
    try:
        report.statuses = write_report(
            settings.report,
            settings.report_format,
            latest_outcomes(settings.journal, settings.operation),
            settings.operation,
        )
    except (OSError, ValueError) as exc:
        streams.stderr.write(f"{PROG}: the report was not written: {exc}\n")
        if report.failure is None:
            report.failure = exc


def _cmd_bulk(args: argparse.Namespace, streams: _Streams, environ: Mapping[str, str]) -> int:
    if args.dry_run:
        return dry_run(args, streams)
    settings = _settings_from_args(args, environ)
    if args.from_file == "-" and _isatty(streams.stdin):
        streams.stderr.write(f"{PROG}: reading ids from stdin, one per line (end with Ctrl-D)\n")
    if settings.operation in (Operation.UPDATE, Operation.START):
        source = row_input(args, streams)
    else:
        source = _open_input(args, streams.stdin)
    try:
        report = asyncio.run(
            run_bulk(
                settings,
                source.ids,
                total=source.total,
                stdout=streams.stdout,
                stderr=streams.stderr,
            )
        )
    finally:
        source.close()
    _refuse_if_nothing_read(report, settings, args.from_file)
    _write_status_report(report, settings, streams)
    return _finish(report, settings, streams)


def _refuse_if_nothing_read(report: RunReport, settings: RunSettings, source: str | None) -> None:
    """A job that read no id ends as a usage error: one line that says why, no summary.

    Its journal could not be used (busy, corrupt, another operation's, its
    directory missing), its input could not be read from the first line on,
    or the input held no id (stdin or a FIFO: a file's ids are counted before).

    Raises:
        _UsageError: no id was read, and no signal stopped the job (exit 130) or
            anything else did (exit 3: the summary tells what).
    """
    progress = report.progress
    if report.exit_code not in (EXIT_OK, EXIT_USAGE) or (progress is not None and progress.read):
        return
    failure = report.failure
    if failure is None:
        name = "stdin" if source == "-" else source
        raise _UsageError(f"no ids read from {name}")
    if isinstance(failure, OSError) and progress is None:
        raise _UsageError(f"cannot use the journal {settings.journal}: {failure.strerror}")
    raise _UsageError(str(failure))


def _finish(report: RunReport, settings: RunSettings, streams: _Streams) -> int:
    print_summary(report, settings, streams.stderr)
    if settings.json_output:
        with contextlib.suppress(BrokenPipeError):  # noted already when the reader left
            streams.stdout.write(json.dumps({"summary": summary_json(report, settings)}) + "\n")
            streams.stdout.flush()
    return report.exit_code
