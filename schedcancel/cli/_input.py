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

from ._common import PROG, _UsageError

# Reading stdin (or a pipe) in a thread: at most this many bytes at a time.
_STDIN_CHUNK = 64 * 1024


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
