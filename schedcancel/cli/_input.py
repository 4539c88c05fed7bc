"""The ids of a run: from arguments, a file, a FIFO or stdin (read by a daemon thread)."""

from __future__ import annotations

import argparse
import asyncio
import codecs
import contextlib
import itertools
import os
import queue
import stat
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

import attrs

from .._protocol.requests import StartRow, UpdateRow
from .._protocol.validate import MAX_SCHEDULE_ID
from ._common import PROG, _UsageError

# Reading an input: at most this many bytes (or characters) at a time.
_STDIN_CHUNK = 64 * 1024

#: The longest input line taken, in characters. No scheduleId is longer than
#: ``MAX_SCHEDULE_ID``: a longer line is refused by its number, read in chunks,
#: never whole (a comment line may be longer: it is skipped).
MAX_LINE = 1024


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
    """The ids could not be read: an unreadable file or stdin, text that is not UTF-8, or a
    line too long to hold an id."""


def _split(text: str) -> list[str]:
    """Universal newlines, as a file opened in text mode: \\r\\n, \\r and \\n end a line."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


class _Splitter:
    """The ids of an input read in chunks, in bounded memory, numbering its lines.

    Bytes are decoded as UTF-8 (a BOM is fine) incrementally; a line is held
    only up to ``MAX_LINE`` characters. The input's errors name it and the
    line: bytes that are not UTF-8, a line too long to hold an id. Each feed
    returns the ids of the lines it completed before the first error, and
    that error; nothing may be fed after an error or the end.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self._held = ""  # a last \r, maybe the first half of \r\n
        self._tail = ""  # the line read so far
        self._line = 1  # its number
        self._skipping = False  # it is a long comment: dropped up to its end
        #: The line numbers of the ids the last feed returned.
        self.numbers: list[int] = []

    def feed(self, data: bytes) -> tuple[list[str], InputError | None]:
        """Take the next bytes; ``b""`` ends the input."""
        buffered = self._decoder.getstate()[0]
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            before = (buffered + data)[: exc.start].decode("utf-8", "replace")
            if self._line == 1 and not self._tail:
                before = before.removeprefix("\ufeff")  # the BOM the decoder did not take
            ids, failure = self.feed_text(before, final=False)
            return ids, failure or self._error(f"line {self._line} is not UTF-8 ({exc.reason})")
        return self.feed_text(text, final=not data)

    def feed_text(self, text: str, *, final: bool) -> tuple[list[str], InputError | None]:
        """Take the next characters; ``final``: the input ends with them."""
        text, self._held = self._held + text, ""
        if text.endswith("\r") and not final:
            text, self._held = text[:-1], "\r"
        *complete, last = _split(text)
        lines: list[tuple[int, str]] = []
        try:
            for piece in complete:
                if not self._skipping:
                    lines.append((self._line, self._hold(piece)))
                self._tail, self._line, self._skipping = "", self._line + 1, False
            if not self._skipping and self._hold(last) and final:
                lines.append((self._line, self._tail))
        except InputError as exc:
            return self._ids(lines), exc
        return self._ids(lines), None

    def _ids(self, lines: list[tuple[int, str]]) -> list[str]:
        """The ids of ``lines``; their line numbers are left in ``numbers``."""
        numbered = [(number, text.strip()) for number, text in lines]
        numbered = [(n, text) for n, text in numbered if text and not text.startswith("#")]
        self.numbers = [number for number, _ in numbered]
        return [text for _, text in numbered]

    def _hold(self, piece: str) -> str:
        """Add ``piece`` to the current line and return the line, unless it grows too long."""
        self._tail += piece
        if len(self._tail) > MAX_LINE:
            if not self._tail.lstrip().startswith("#"):
                raise self._error(
                    f"line {self._line} is longer than {MAX_LINE} characters"
                    f" (no scheduleId is longer than {MAX_SCHEDULE_ID})"
                )
            self._tail, self._skipping = "", True
        return self._tail

    def _error(self, text: str) -> InputError:
        return InputError(f"cannot read {self._name}: {text}")


# What the reader thread hands over after the last line.
_EOF = object()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _LineReader:
    """The ids of a file descriptor (stdin, a pipe), read by a daemon thread as they arrive.

    The thread reads the raw descriptor with ``os.read``, so an id is handed
    over as soon as its line is complete, not when a buffer fills. A
    `_Splitter` decodes and splits each chunk; the thread hands its ids
    (then the input's error, if any) to the event loop through a bounded queue
    (backpressure: at most ``max_chunks`` chunks wait), waking the loop only
    when the consumer waits. It is a daemon thread reading a descriptor of its own (a
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
                self._pending = iter(item)
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
        splitter = _Splitter(self._name)
        try:
            while not self._closed.is_set():
                data = os.read(self._fd, _STDIN_CHUNK)
                ids, failure = splitter.feed(data)
                if ids and not self._hand(ids):
                    return
                if failure is not None or not data:
                    self._hand(failure or _EOF)
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


def _file_ids(file: IO[bytes], name: str) -> Iterator[str]:
    """The ids of a binary file, read in chunks in the event loop's thread."""
    for _, schedule_id in numbered_ids(file, name):
        yield schedule_id


def numbered_ids(file: IO[bytes], name: str) -> Iterator[tuple[int, str]]:
    """The ids of a binary file (or stdin's bytes) with their line numbers, read in chunks.

    Raises:
        InputError: the input cannot be read, is not UTF-8 or has a line too long for an id.
    """
    splitter = _Splitter(name)
    while True:
        try:
            data = file.read(_STDIN_CHUNK)
        except OSError as exc:
            raise InputError(f"cannot read {name}: {exc.strerror or exc}") from None
        ids, failure = splitter.feed(data)
        yield from zip(splitter.numbers, ids, strict=True)
        if failure is not None:
            raise failure
        if not data:
            return


def _stream_ids(stream: IO[str], name: str) -> Iterator[str]:
    """The ids of a stream with no descriptor, read in the event loop's thread."""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:  # a text wrapper: its bytes, so that errors name the line
        yield from _file_ids(buffer, name)
        return
    splitter = _Splitter(name)
    while True:
        text = stream.read(_STDIN_CHUNK)
        ids, failure = splitter.feed_text(text, final=not text)
        yield from ids
        if failure is not None:
            raise failure
        if not text:
            return


async def _chain(first: Iterable[str], rest: AsyncIterator[str]) -> AsyncIterator[str]:
    for item in first:
        yield item
    async for item in rest:
        yield item


@attrs.define
class _Input:
    """The ids of one run and what is known of their number."""

    ids: Iterable[str] | Iterable[UpdateRow | StartRow] | AsyncIterator[str]
    total: int | None
    close: Callable[[], None] = lambda: None


def _descriptor(stream: IO[str]) -> int | None:
    """A duplicate of the stream's file descriptor, or None when it has none (StringIO)."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return os.dup(fd)


def _read_in_thread(fd: int, name: str, given: list[str]) -> _Input:
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
        if fd is None:
            return _Input(ids=itertools.chain(given, _stream_ids(stdin, "stdin")), total=None)
        return _read_in_thread(fd, "stdin", given)
    path = Path(source)
    try:
        file = path.open("rb")
        mode = os.fstat(file.fileno()).st_mode
        if not stat.S_ISREG(mode):
            # A pipe or a device: read as it comes, in a thread, like stdin.
            with file:
                return _read_in_thread(os.dup(file.fileno()), source, given)
    except OSError as exc:
        raise _UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        total = len(given) + sum(1 for _ in _file_ids(file, source))  # checks every line too
    except InputError as exc:
        file.close()
        raise _UsageError(str(exc)) from None
    if not total:
        file.close()
        raise _UsageError(f"no ids in {source} (empty, or blank lines and # comments only)")
    file.seek(0)

    def lines() -> Iterator[str]:
        yield from given
        yield from _file_ids(file, source)

    return _Input(ids=lines(), total=total, close=file.close)
