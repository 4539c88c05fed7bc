"""The ``schedcancel`` command: bulk ``cancel``, the ``demo``, and the ``mock-server``.

A thin shell over :func:`~schedcancel._bulk.cancel_many`: it parses
arguments, streams ids from arguments, a file or stdin, shows progress on
stderr, writes one result line per id to stdout, and maps how the job ended
to an exit code:

====  ==================================================================
0     every id is cancelled, by this run or before
1     some ids failed for good: the API refused them (e.g. 7040 unknown
      id), or they are no valid scheduleIds
2     usage or input error: bad option (a bad ``--redis`` URL too), missing
      credential, unreadable input (also when stdin or a pipe turns out
      not to be UTF-8 mid-run), a busy or corrupt journal or one that
      cannot be opened
3     the job is incomplete: authentication, transport, server or
      rate-limit failures, refusals the API does not call final (errorCode
      7002 or none: the next run sends those ids again), or the journal
      failing mid-run (the ids not done are not in it); run again with the
      same ``--journal`` to finish
130   interrupted (SIGINT or SIGTERM); run again with the same ``--journal``
====  ==================================================================

``rich`` (the ``cli`` extra) draws the progress bar and the summary table on a
terminal; without it, or when stderr is not a terminal, progress is a plain
line every few seconds. Importing this module imports neither.
"""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import itertools
import json
import logging
import math
import os
import queue
import random
import secrets
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

import attrs

from ._bulk import BulkProgress, GatedLimiter, cancel_many
from ._journal import CancelOutcome, OutcomeKind
from ._models import RateLimits, RetryPolicy
from ._protocol import DEFAULT_BASE_URL, redact_key
from .errors import InvalidParameterError, ScheduleCancelError

if TYPE_CHECKING:
    from ._models import Limiter

__all__ = [
    "EXIT_FAILED",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130

ENV_API_KEY = "SCHEDCANCEL_API_KEY"
ENV_USERNAME = "SCHEDCANCEL_USERNAME"
ENV_PASSWORD = "SCHEDCANCEL_PASSWORD"  # noqa: S105 - the variable's name, not a password
ENV_SHARED_SECRET = "SCHEDCANCEL_SHARED_SECRET"  # noqa: S105 - the variable's name
ENV_BASE_URL = "SCHEDCANCEL_BASE_URL"
ENV_REDIS_URL = "SCHEDCANCEL_REDIS_URL"

PROG = "schedcancel"
INSTALL_CLI_HINT = "pip install 'schedcancel[cli]'"
INSTALL_REDIS_HINT = "pip install 'schedcancel[redis]'"

_LABELS = {
    OutcomeKind.CANCELLED: "cancelled",
    OutcomeKind.ALREADY_CANCELLED: "already cancelled",
    OutcomeKind.FAILED: "failed",
    OutcomeKind.INVALID: "invalid",
    OutcomeKind.ERROR: "error",
}
_EXIT_MEANINGS = {
    EXIT_OK: "every id is cancelled",
    EXIT_FAILED: "some ids failed",
    EXIT_USAGE: "usage or input error",
    EXIT_INCOMPLETE: (
        "incomplete: authentication, transport, server or journal failures, or failures "
        "that are not final; run again"
    ),
    EXIT_INTERRUPTED: "interrupted; run again with the same --journal to finish",
}
# Reading stdin (or a pipe) in a thread: at most this many bytes at a time.
_STDIN_CHUNK = 64 * 1024

logger = logging.getLogger("schedcancel.cli")


# --------------------------------------------------------------------------- small helpers


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


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


# --------------------------------------------------------------------------- settings


@attrs.frozen(kw_only=True)
class CancelSettings:
    """Everything a ``cancel`` run needs, resolved from flags and environment.

    The repr shows no secret: the apiKey is redacted, the password, shared
    secret and Redis URL (which may hold a password) are left out.
    """

    api_key: str = attrs.field(repr=redact_key)
    username: str
    password: str = attrs.field(repr=False)
    shared_secret: str | None = attrs.field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    limits: RateLimits = attrs.field(factory=RateLimits)
    redis_url: str | None = attrs.field(default=None, repr=False)
    journal: Path | None = None
    retry_failed: bool = False
    concurrency: int | None = None
    timeout: float = 30.0
    retry: RetryPolicy | None = None
    show_progress: bool = True
    progress_interval: float = 10.0
    json_output: bool = False
    quiet: bool = False


class _UsageError(Exception):
    """A problem with the command line or its inputs: exit 2 with this message."""


def _credential(value: str | None, environ: Mapping[str, str], variable: str) -> str | None:
    if value is not None:
        return value
    return environ.get(variable) or None


def _require(value: str | None, what: str, flag: str, variable: str) -> str:
    if value is None:
        raise _UsageError(f"missing {what}: set {variable} (or pass {flag})")
    return value


def _settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> CancelSettings:
    api_key = _credential(args.api_key, environ, ENV_API_KEY)
    username = _credential(args.username, environ, ENV_USERNAME)
    password = _credential(args.password, environ, ENV_PASSWORD)
    # The argument types already refused every value RateLimits would.
    limits = RateLimits(
        total=args.total,
        per_schedule=args.per_schedule,
        window=args.window,
        guard=args.guard,
        mode=args.mode,
        adaptive=not args.no_adaptive,
    )
    return CancelSettings(
        api_key=_require(api_key, "the connector apiKey", "--api-key", ENV_API_KEY),
        username=_require(username, "the API username", "--username", ENV_USERNAME),
        password=_require(password, "the API password", "--password", ENV_PASSWORD),
        shared_secret=_credential(args.shared_secret, environ, ENV_SHARED_SECRET),
        base_url=args.base_url or environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL,
        limits=limits,
        redis_url=args.redis or environ.get(ENV_REDIS_URL) or None,
        journal=args.journal,
        retry_failed=args.retry_failed,
        concurrency=args.concurrency,
        timeout=args.timeout,
        show_progress=not args.no_progress,
        progress_interval=args.progress_interval,
        json_output=args.json,
        quiet=args.quiet,
    )


# --------------------------------------------------------------------------- input


def iter_ids(lines: Iterable[str]) -> Iterator[str]:
    """Yield the ids in text lines: stripped, skipping blank lines and ``#`` comments.

    Args:
        lines: lines of a file or of stdin.

    Yields:
        One id per other line.
    """
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            yield text


class InputError(ValueError):
    """The ids could not be read: an unreadable file or stdin, or text that is not UTF-8."""


# What the reader thread hands over after the last line.
_EOF = object()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _LineReader:
    """The ids of a file descriptor (stdin, a pipe), read by a daemon thread as they arrive.

    The thread reads the raw descriptor with ``os.read``, so an id is handed
    over as soon as its line is complete, not when a buffer fills. It decodes
    UTF-8 (a BOM is fine) incrementally and hands each chunk's complete lines
    to the event loop through a bounded queue (backpressure: at most
    ``max_chunks`` chunks wait), waking the loop only when the consumer
    waits. It is a daemon thread reading a descriptor of its own (a
    duplicate), holding no lock while it blocks, so a job that stops while
    the producer is silent ends, and the process exits, without waiting for
    that read; the thread closes its descriptor when it is done. Nothing goes
    through ``sys.stdin``'s buffered object: a daemon thread blocked inside it
    would hold its lock at interpreter shutdown.
    """

    def __init__(self, fd: int, name: str, *, max_chunks: int = 8) -> None:
        self._fd = fd
        self._name = name
        self._chunks: queue.Queue[object] = queue.Queue(max_chunks)
        self._lock = threading.Lock()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = threading.Event()
        self._ended = False
        self._pending: Iterator[str] = iter(())
        self._thread = threading.Thread(target=self._pump, name=f"{PROG}-read-{name}", daemon=True)

    def __aiter__(self) -> _LineReader:
        return self

    async def __anext__(self) -> str:
        while True:
            text = next(self._pending, None)
            if text is not None:
                return text
            if self._ended:
                raise StopAsyncIteration
            item = await self._next_chunk()
            if isinstance(item, list):
                self._pending = iter_ids(item)
                continue
            self._ended = True
            if isinstance(item, InputError):
                raise item
            raise StopAsyncIteration

    async def _next_chunk(self) -> object:
        if self._thread.ident is None:
            self._thread.start()  # on the first read: nothing is read if the job never starts
        while True:
            try:
                return self._chunks.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                # Checked under the lock the thread takes after each put: no wake is lost.
                if not self._chunks.empty():
                    continue
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                with self._lock:
                    self._waiter = None

    def close(self) -> None:
        """Stop reading: the thread ends after its current read (it may block until then)."""
        self._closed.set()
        if self._thread.ident is None:
            os.close(self._fd)  # never started: nobody else holds the descriptor
            return
        with contextlib.suppress(queue.Empty):
            while True:  # make room, so a thread blocked on a full queue sees the close
                self._chunks.get_nowait()

    # ---- the thread

    def _pump(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        tail = ""
        line = 1
        try:
            while not self._closed.is_set():
                data = os.read(self._fd, _STDIN_CHUNK)
                buffered = decoder.getstate()[0]
                try:
                    text = decoder.decode(data, final=not data)
                except UnicodeDecodeError as exc:
                    line += (buffered + data)[: exc.start].count(b"\n")
                    message = f"cannot read {self._name}: line {line} is not UTF-8 ({exc.reason})"
                    self._hand(InputError(message))
                    return
                line += data.count(b"\n")
                # Universal newlines, as a file opened in text mode: \r\n, \r and \n.
                lines = (tail + text).replace("\r", "\n").split("\n")
                if not data:
                    if self._hand(lines):
                        self._hand(_EOF)
                    return
                tail = lines.pop()
                if lines and not self._hand(lines):
                    return
        except OSError as exc:
            self._hand(InputError(f"cannot read {self._name}: {exc.strerror or exc}"))
        finally:
            os.close(self._fd)

    def _hand(self, item: object) -> bool:
        """Queue ``item`` for the loop (waiting while the queue is full); False once closed."""
        if self._closed.is_set():
            return False
        self._chunks.put(item)
        if self._closed.is_set():
            return False
        with self._lock:
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            try:
                waiter.get_loop().call_soon_threadsafe(_wake, waiter)
            except RuntimeError:  # the loop is closed: nobody reads any more
                return False
        return True


def _stream_ids(stream: IO[str], name: str) -> Iterator[str]:
    """The ids of a stream read in the event loop's thread (for streams with no descriptor)."""
    try:
        yield from iter_ids(stream)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {name}: {exc}") from None


async def _chain(first: Iterable[str], rest: AsyncIterator[str]) -> AsyncIterator[str]:
    for item in first:
        yield item
    async for item in rest:
        yield item


def _count_ids(path: Path) -> int:
    with path.open(encoding="utf-8-sig") as file:
        return sum(1 for _ in iter_ids(file))


@attrs.define
class _Input:
    """The ids of one run and what is known of their number."""

    ids: Iterable[str] | AsyncIterator[str]
    total: int | None
    close: Callable[[], None] = lambda: None


def _descriptor(stream: IO[str]) -> int | None:
    """A duplicate of the stream's file descriptor, or None when it has none (StringIO)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return os.dup(fd)


def _read_from(fd: int | None, stream: IO[str], name: str, given: list[str]) -> _Input:
    if fd is None:
        return _Input(ids=itertools.chain(given, _stream_ids(stream, name)), total=None)
    reader = _LineReader(fd, name)
    return _Input(ids=_chain(given, reader), total=None, close=reader.close)


def _open_input(args: argparse.Namespace, stdin: IO[str]) -> _Input:
    given: list[str] = list(args.ids)
    source = args.from_file
    if source is None:
        if not given:
            raise _UsageError("no ids: pass them as arguments, or use --from FILE (- for stdin)")
        return _Input(ids=given, total=len(given))
    if source == "-":
        try:
            fd = _descriptor(stdin)
        except OSError as exc:
            raise _UsageError(f"cannot read stdin: {exc.strerror or exc}") from None
        return _read_from(fd, stdin, "stdin", given)
    path = Path(source)
    try:
        file = path.open(encoding="utf-8-sig")
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            # A pipe or a device: read as it comes, in a thread, like stdin.
            with file:
                return _read_from(os.dup(file.fileno()), file, source, given)
    except OSError as exc:
        raise _UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        total = len(given) + _count_ids(path)
    except (OSError, UnicodeDecodeError) as exc:
        file.close()
        raise _UsageError(f"cannot read {source}: {exc}") from None

    def lines() -> Iterator[str]:
        yield from given
        yield from _stream_ids(file, source)

    return _Input(ids=lines(), total=total, close=file.close)


# --------------------------------------------------------------------------- output


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

    def __init__(self, stream: IO[str], stdout_is_terminal: bool) -> None:
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
        self.task = self.progress.add_task(
            "cancelling", total=None, rate="-", rate_limited=0, eta="?"
        )

    def update(self, progress: BulkProgress) -> None:
        self.last = progress
        self.progress.update(
            self.task,
            description="stopping" if progress.stopping else "cancelling",
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


def _make_reporter(settings: CancelSettings, stdout: IO[str], stderr: IO[str]) -> _Reporter:
    if not settings.show_progress:
        return _PlainReporter(stream=stderr, interval=math.inf)
    if _isatty(stderr):
        if _rich_available():
            return _RichReporter(stderr, stdout_is_terminal=_isatty(stdout))
        stderr.write(f"{PROG}: for a progress bar, {INSTALL_CLI_HINT}\n")
    return _PlainReporter(stream=stderr, interval=settings.progress_interval)


def outcome_text(outcome: CancelOutcome) -> str:
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
    elif outcome.kind is OutcomeKind.INVALID:
        detail = outcome.error or ""
    else:
        detail = f"{outcome.old_status}->{outcome.new_status}"
    return "\t".join(
        part.replace("\t", " ").replace("\n", " ")
        for part in (outcome.schedule_id, outcome.kind.value, detail)
    )


def _outcome_json(outcome: CancelOutcome) -> str:
    return json.dumps(outcome.to_record(), ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------- the run


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
    """

    progress: BulkProgress | None
    failure: BaseException | None
    interrupted: bool
    abandoned: int = 0
    error_types: dict[str, int] = attrs.field(factory=dict)
    failed_not_final: int = 0

    @property
    def exit_code(self) -> int:
        """The process exit code (see the module docstring)."""
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
        for kind in (OutcomeKind.FAILED, OutcomeKind.INVALID):
            if counts.get(kind, 0) or before.get(kind, 0):
                return EXIT_FAILED
        return EXIT_OK


def _make_limiter(settings: CancelSettings) -> Limiter:
    """Make the run's limiter; a bad ``--redis`` URL is a usage error (without its password)."""
    if settings.redis_url is None:
        from ._limiter import RateLimiter  # noqa: PLC0415 - loaded with the client anyway

        return RateLimiter(settings.limits)
    try:
        from .redis import RedisLimiter  # noqa: PLC0415 - optional extra
    except ImportError:
        raise _UsageError(f"--redis needs redis-py: {INSTALL_REDIS_HINT}") from None
    try:
        return RedisLimiter(settings.redis_url, username=settings.username, limits=settings.limits)
    except InvalidParameterError as exc:
        message = str(exc)
        for secret in _url_secrets(settings.redis_url):
            message = message.replace(secret, "***")
        raise _UsageError(f"--redis: {message}") from None


def _url_secrets(url: str) -> list[str]:
    """The password in a URL (as written and %-decoded), to keep it out of messages.

    Split by hand: ``urlsplit`` raises on some of the malformed URLs this is for.
    """
    userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    return [secret for secret in (password, unquote(password)) if secret]


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


async def _consume(
    outcomes: AsyncGenerator[CancelOutcome, None],
    settings: CancelSettings,
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
                if not printing:
                    continue
                text = _outcome_json(outcome) if settings.json_output else outcome_text(outcome)
                try:
                    reporter.print_line(text, stdout)
                except BrokenPipeError:
                    printing = False
                    _stdout_closed(stdout, reporter)
        except (ScheduleCancelError, OSError, ValueError) as exc:
            return exc
    return None


async def run_cancel(
    settings: CancelSettings,
    ids: Iterable[str] | AsyncIterator[str],
    *,
    total: int | None,
    stdout: IO[str],
    stderr: IO[str],
) -> RunReport:
    """Run a bulk cancel the way ``schedcancel cancel`` does, and report how it ended.

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
    from ._client import ScheduleClient  # noqa: PLC0415 - keeps `schedcancel --help` fast

    limiter = GatedLimiter(_make_limiter(settings))
    stop = asyncio.Event()
    current = asyncio.current_task()
    if current is None:  # pragma: no cover - a coroutine always runs in a task
        raise RuntimeError("run_cancel must run in a task")
    state = {"signals": 0, "abandoned": 0}
    tally = _Tally()
    reporter = _make_reporter(settings, stdout, stderr)

    def on_signal() -> None:
        state["signals"] += 1
        if state["signals"] == 1:
            stop.set()
            limiter.close_gate()
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
            )
        except InvalidParameterError as exc:
            raise _UsageError(str(exc)) from None
        async with client:
            with reporter:
                outcomes = cancel_many(
                    client,
                    ids,
                    concurrency=settings.concurrency,
                    journal=settings.journal,
                    progress=reporter.update,
                    progress_interval=min(0.25, settings.progress_interval),
                    total=total,
                    stop=stop,
                    retry_failed=settings.retry_failed,
                )
                failure = await _consume(outcomes, settings, reporter, stdout, tally)
    except asyncio.CancelledError:
        if state["signals"] < 2:
            raise
        current.uncancel()
        abandoned = True
    finally:
        remove_handlers()
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
    )


# --------------------------------------------------------------------------- summary


def _summary_rows(progress: BulkProgress | None) -> list[tuple[str, int, int]]:
    rows = []
    for kind in OutcomeKind:
        now = progress.counts.get(kind, 0) if progress else 0
        before = progress.journal_counts.get(kind, 0) if progress else 0
        rows.append((_LABELS[kind], now, before))
    return rows


def _summary_notes(report: RunReport, settings: CancelSettings, *, show_exit: bool) -> list[str]:
    progress = report.progress
    notes = []
    if progress is not None:
        notes.append(f"429 responses: {progress.rate_limited}")
        notes.append(f"elapsed: {format_duration(progress.elapsed)}")
        if progress.duplicates:
            notes.append(f"duplicates skipped: {progress.duplicates}")
        if progress.stopping and progress.remaining:
            notes.append(f"not done (stopped early): {progress.remaining}")
        elif progress.stopping and progress.withdrawn:
            notes.append(f"not sent (stopped early): {progress.withdrawn}")
    if report.abandoned:
        notes.append(f"abandoned in flight: {report.abandoned}")
    if report.failed_not_final:
        notes.append(f"failed, not final (a run again sends them): {report.failed_not_final}")
    if report.error_types:
        kinds = ", ".join(f"{name} x{count}" for name, count in sorted(report.error_types.items()))
        notes.append(f"errors: {kinds}")
    if report.failure is not None:
        notes.append(f"stopped by: {type(report.failure).__name__}: {report.failure}")
    if settings.journal is not None:
        notes.append(f"journal: {settings.journal}")
    if show_exit:
        code = report.exit_code
        notes.append(f"exit {code}: {_EXIT_MEANINGS[code]}")
    return notes


def print_summary(
    report: RunReport, settings: CancelSettings, stderr: IO[str], *, show_exit: bool = True
) -> None:
    """Print the summary table (rich on a terminal, plain text otherwise) to stderr.

    Args:
        report: how the run ended.
        settings: its settings.
        stderr: where to print.
        show_exit: end with the exit code and its meaning.
    """
    rows = _summary_rows(report.progress)
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


def summary_json(report: RunReport, settings: CancelSettings) -> dict[str, Any]:
    """Return the machine-readable summary (``--json``).

    Args:
        report: how the run ended.
        settings: its settings.

    Returns:
        A JSON-ready object.
    """
    progress = report.progress
    counts = {kind.value: progress.counts.get(kind, 0) if progress else 0 for kind in OutcomeKind}
    journal = {
        kind.value: progress.journal_counts.get(kind, 0) if progress else 0 for kind in OutcomeKind
    }
    failure = report.failure
    return {
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


# --------------------------------------------------------------------------- commands


@attrs.frozen
class _Streams:
    stdin: IO[str]
    stdout: IO[str]
    stderr: IO[str]


def _cmd_cancel(args: argparse.Namespace, streams: _Streams, environ: Mapping[str, str]) -> int:
    settings = _settings_from_args(args, environ)
    if args.from_file == "-" and _isatty(streams.stdin):
        streams.stderr.write(f"{PROG}: reading ids from stdin, one per line (end with Ctrl-D)\n")
    source = _open_input(args, streams.stdin)
    try:
        report = asyncio.run(
            run_cancel(
                settings,
                source.ids,
                total=source.total,
                stdout=streams.stdout,
                stderr=streams.stderr,
            )
        )
    finally:
        source.close()
    return _finish(report, settings, streams)


def _finish(report: RunReport, settings: CancelSettings, streams: _Streams) -> int:
    print_summary(report, settings, streams.stderr)
    if settings.json_output:
        with contextlib.suppress(BrokenPipeError):  # noted already when the reader left
            streams.stdout.write(json.dumps({"summary": summary_json(report, settings)}) + "\n")
            streams.stdout.flush()
    return report.exit_code


# ---- demo

DEMO_API_KEY = "demo-connector"
DEMO_USERNAME = "demo-user"


def _lower_bound(requests: int, limits: RateLimits) -> float:
    """The earliest the last of ``requests`` distinct-id requests can be sent (RATE-LIMITS.md)."""
    return ((requests - 1) // limits.total) * limits.window if requests else 0.0


def _demo_verdict(*, interrupted: bool, ok: bool) -> int:
    """Return the demo's exit code.

    The verdict is whether the job went as seeded (its unknown ids fail on
    purpose), not the cancel command's own verdict on those ids.
    """
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if ok else EXIT_FAILED


async def _demo(args: argparse.Namespace, streams: _Streams) -> int:
    from .testing import MockScheduleServer, ServerLimits  # noqa: PLC0415 - only the demo serves

    count = args.schedules
    already = count // 10
    unknown = count // 10
    active = count - already - unknown
    rng = random.Random(args.seed)  # noqa: S311 - shuffling demo data, not cryptography
    active_ids = [f"DEMO-{i:05d}" for i in range(active)]
    cancelled_ids = [f"DEMO-{i:05d}" for i in range(active, active + already)]
    unknown_ids = [f"GONE-{i:05d}" for i in range(unknown)]
    ids = active_ids + cancelled_ids + unknown_ids
    rng.shuffle(ids)
    password = secrets.token_urlsafe(16)
    server = MockScheduleServer(
        users={DEMO_USERNAME: password},
        connectors={DEMO_API_KEY: None},
        limits=ServerLimits(total=args.total, per_schedule=10, window=args.window),
    )
    limits = RateLimits(total=args.total, per_schedule=10, window=args.window, guard=args.guard)
    stderr = streams.stderr
    async with server:
        server.seed(active_ids)
        server.seed(cancelled_ids, "CANCELLED")
        stderr.write(
            f"{PROG} demo: a mock server at {server.base_url} allows {limits.total} requests per "
            f"{limits.window:g} s window; cancelling {count} schedules ({active} active, "
            f"{already} already cancelled, {unknown} unknown)\n"
        )
        with contextlib.ExitStack() as stack:
            journal = args.journal
            if journal is None:
                journal = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "demo.jsonl"
            settings = CancelSettings(
                api_key=DEMO_API_KEY,
                username=DEMO_USERNAME,
                password=password,
                base_url=server.base_url,
                limits=limits,
                journal=journal,
                show_progress=not args.no_progress,
                progress_interval=2.0,
                json_output=args.json,
                quiet=not args.json,
            )
            report = await run_cancel(
                settings, ids, total=len(ids), stdout=streams.stdout, stderr=stderr
            )
            if args.journal is None:
                settings = attrs.evolve(settings, journal=None)
        arrivals = [a for a in server.recorder.arrivals if not a.foreign]
    print_summary(report, settings, stderr, show_exit=False)
    rejected = sum(1 for a in arrivals if a.status == 429)
    sent = len(arrivals)
    makespan = arrivals[-1].time - arrivals[0].time if arrivals else 0.0
    bound = _lower_bound(sent, limits)
    ratio = f", ratio {makespan / bound:.3f}" if bound else ""
    stderr.write(
        f"\n{PROG} demo: {sent} requests, {rejected} x 429; makespan (first to last request) "
        f"{makespan:.2f} s; lower bound floor((M-1)/N)*W = floor({sent - 1}/{limits.total})*"
        f"{limits.window:g} = {bound:.2f} s{ratio}\n"
    )
    progress = report.progress
    expected = {
        OutcomeKind.CANCELLED: active,
        OutcomeKind.ALREADY_CANCELLED: already,
        OutcomeKind.FAILED: unknown,
    }
    as_expected = progress is not None and all(
        progress.counts.get(kind, 0) == number for kind, number in expected.items()
    )
    code = _demo_verdict(interrupted=report.interrupted, ok=as_expected and not rejected)
    if args.json:
        summary = summary_json(report, settings)
        summary["exit_code"] = code
        summary["demo"] = {
            "requests": sent,
            "rate_limited": rejected,
            "makespan": round(makespan, 3),
            "lower_bound": bound,
            "as_expected": as_expected,
        }
        streams.stdout.write(json.dumps({"summary": summary}) + "\n")
    if code == EXIT_FAILED:
        stderr.write(f"{PROG} demo: unexpected outcome (see above)\n")
    elif code == EXIT_OK:
        stderr.write(f"{PROG} demo: all as expected: 0 x 429\n")
    return code


def _cmd_demo(args: argparse.Namespace, streams: _Streams, environ: Mapping[str, str]) -> int:
    del environ  # the demo uses its own credentials
    return asyncio.run(_demo(args, streams))


def _cmd_mock_server(
    args: argparse.Namespace, streams: _Streams, environ: Mapping[str, str]
) -> int:
    del streams, environ  # the server prints its URL on the process's own stdout
    from .testing import main_mock_server  # noqa: PLC0415 - only this command serves

    return main_mock_server(args)


# --------------------------------------------------------------------------- parser


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


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


_CANCEL_EPILOG = f"""\
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
  0    every id is cancelled (by this run or before)
  1    some ids failed for good: refused by the API (e.g. 7040 unknown id) or not valid ids
  2    usage or input error (options, credentials, input, an unusable journal)
  3    incomplete: authentication, transport, server or journal failures, or
       refusals that are not final (7002); run again with the same --journal
  130  interrupted (Ctrl-C, SIGTERM); run again with the same --journal

examples:
  export {ENV_API_KEY}=... {ENV_USERNAME}=... {ENV_PASSWORD}=...
  {PROG} cancel SC-1234 SC-5678
  {PROG} cancel --from ids.txt --journal cancel.jsonl > results.tsv
  cut -f1 ids.tsv | {PROG} cancel --from - --journal cancel.jsonl --json
"""


def _add_cancel_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "cancel",
        help="cancel schedules in bulk, within the rate limits",
        description=(
            "Cancel schedules through the IXOPAY Transaction API, as fast as the rate\n"
            "limits allow and without 429s. With --journal a run can be killed and\n"
            "started again: ids already final in the journal are not sent twice."
        ),
        epilog=_CANCEL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("ids", nargs="*", metavar="ID", help="scheduleIds to cancel")
    parser.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="read ids from FILE, one per line (# comments), or - for stdin; streamed",
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
    parser.set_defaults(handler=_cmd_cancel)


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
    parser.set_defaults(handler=_cmd_demo)


def _add_mock_server_parser(commands: Any) -> None:
    from .testing import add_mock_server_arguments  # noqa: PLC0415 - aiohttp.web loads only here

    parser = commands.add_parser(
        "mock-server",
        help="serve the mock IXOPAY schedule API on 127.0.0.1 (for tests and demos)",
        description=(
            "Serve the cancel endpoint emulated: Basic auth, signatures, the schedule "
            "state machine, both rate limits and fault injection. Prints its base URL."
        ),
    )
    add_mock_server_arguments(parser)
    parser.set_defaults(handler=_cmd_mock_server)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``schedcancel`` argument parser.

    Returns:
        The parser with its ``cancel``, ``demo`` and ``mock-server`` subcommands.
    """
    from . import __version__  # noqa: PLC0415 - the package imports this module lazily only

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Cancel IXOPAY recurring-payment schedules in bulk, within the API's rate "
            "limits (60 per minute per API user, 10 per minute per schedule)."
        ),
        epilog=f"Run '{PROG} demo' to see it work, '{PROG} cancel --help' for the real thing.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-vv for debug)"
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_cancel_parser(commands)
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
        The exit code (see the module docstring).
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
            streams.stderr.write(f"{PROG}: error: {exc}\n")
            return EXIT_USAGE
        except KeyboardInterrupt:
            streams.stderr.write(f"\n{PROG}: interrupted\n")
            return EXIT_INTERRUPTED
    return code
