"""Bulk jobs: stream ids through one client, journal each end, report progress.

`run_many()` runs one per-id operation (cancel, pause, continue or get), or
one per row (update, start), for every item of any iterable or async
iterable, even one of a million lines,
and never holds more than ``concurrency`` of them at once: that many worker
tasks pull the next id when they are free. Every id ends as one
[`BulkOutcome`][schedcancel.BulkOutcome], written to the journal (if any) and then
yielded, as it finishes. `cancel_many()` is ``run_many`` for cancel;
`update_many()` and `start_many()` for update and start rows. A start
row's intent is journaled, durably, before its request is sent (the
job's gate's ``before_send``; ``intents`` holds the rest).

Memory: ids already seen (this run's, and the final ones in the journal)
are kept as 64-bit fingerprints in an open-addressing table of 9 bytes per
slot, at most half full, not as strings. A million streamed ids peak at
29 MiB of traced memory (the 18 MiB table, plus the old one while it
doubles); a ``set`` of the same 32-character ids alone holds 108 MiB
(``benchmarks/bench_bulk_memory.py``). Python's own salted string hash is the
fingerprint, so two different ids collide with probability about
``n**2 / 2**65`` (3 in 100 million for a million ids), and (with the
default random hash salt, i.e. no fixed ``PYTHONHASHSEED``) not the same
two in the next run: an id skipped that way is not in the journal, so a
re-run on the journal sends it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import os
from array import array
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sized,
)
from datetime import datetime
from functools import partial
from types import MappingProxyType
from typing import Any, Protocol, TypedDict, Unpack, cast

import attrs

from .._limiting.background import depth as background_depth
from .._limiting.gate import Gate
from .._limiting.limiter import RateLimiter
from .._protocol.models import LimiterStats, Permit, RateLimits, ScheduleResult
from .._protocol.operations import Operation
from .._protocol.redact import redact_key
from .._protocol.requests import ContinueSchedule, StartRow, UpdateRow, format_date_time
from .._protocol.validate import (
    check_int,
    check_number,
    check_priority,
    validate_api_key,
    validate_schedule_id,
)
from .._version import __version__
from ..errors import (
    BackendError,
    ClientClosedError,
    ConfigurationError,
    InvalidParameterError,
    RequestWithdrawnError,
    ScheduleError,
)
from .intents import Intent, StartLedger, intent_record, unknown_outcome
from .journal import (
    BULK_OPERATIONS,
    BulkOutcome,
    Journal,
    OutcomeKind,
    RecentRequests,
    kind_operations,
    outcome_kinds,
    recorded_id,
    run_operation,
    send_record,
    timestamp,
)

__all__ = [
    "BACKGROUND_PRIORITY",
    "BulkOptions",
    "BulkProgress",
    "cancel_many",
    "default_concurrency",
    "estimate_eta",
    "run_many",
    "send_interval",
    "start_many",
    "update_many",
]

logger = logging.getLogger("schedcancel.bulk")

#: Errors that would repeat for every id: the job stops at the first one (refused
#: credentials, a base URL whose route does not exist, the shared limiter's store down).
FATAL_ERRORS: tuple[type[BaseException], ...] = (ConfigurationError, BackendError)
#: The priority of a bulk job's calls: below every interactive call (0 and up).
BACKGROUND_PRIORITY = -1
#: Most workers one job runs, whatever the limits.
MAX_CONCURRENCY = 1024
# Hand the loop back this often while skipping ids without awaiting (a resumed
# job can skip a million journal ids in a row).
_YIELD_EVERY = 1024
_DONE = object()
#: A start job stops after this many ``unknown`` or ``error`` outcomes in a row (each unknown
#: row is one to check by hand), unless told otherwise.
START_MAX_CONSECUTIVE_ERRORS = 10
# The row types of the row operations; the other operations take scheduleIds (str).
_ROW_TYPES: Mapping[Operation, type[UpdateRow | StartRow]] = {
    Operation.UPDATE: UpdateRow,
    Operation.START: StartRow,
}
#: A bulk job's row.
Row = UpdateRow | StartRow
# The start row a worker is sending, for the gate's before_send (each worker is a task).
_SENDING: contextvars.ContextVar[StartRow | None] = contextvars.ContextVar(
    "schedcancel_bulk_sending", default=None
)


class _BulkLimiter(Protocol):
    """The part of a limiter a bulk job reads: its limits and its stats."""

    @property
    def limits(self) -> RateLimits: ...

    def stats(self) -> LimiterStats: ...


class BulkClient(Protocol):
    """What `cancel_many()` needs from a client (``ScheduleClient`` has it).

    `run_many()` needs the operation's method too: ``pause``,
    ``continue_`` (with ``at``) or ``get``, with the same keyword options.
    """

    @property
    def limiter(self) -> _BulkLimiter: ...

    @property
    def redactions(self) -> tuple[str, ...]:
        """What no outcome or journal line may contain (the client's secrets)."""

    @property
    def redacted_api_key(self) -> str:
        """The default apiKey as the journal may show it (``conn***``)."""

    async def cancel(
        self,
        schedule_id: str,
        *,
        api_key: str | None = None,
        priority: int = 0,
        queue_timeout: float | None = None,
        gate: Gate | None = None,
    ) -> ScheduleResult: ...


# --------------------------------------------------------------------------- id table


class _IdTable:
    """A set of strings kept as 64-bit fingerprints, each with a one-byte tag.

    Open addressing with linear probing, at most half full, in two flat
    arrays (8 + 1 bytes per slot). Tag 0 means "absent".
    """

    __slots__ = ("_keys", "_mask", "_size", "_tags")

    def __init__(self, capacity: int = 1024) -> None:
        # Repetition allocates the array once; array("Q", bytes(n)) would copy a
        # temporary buffer as big as the array itself.
        self._keys = array("Q", [0]) * capacity
        self._tags = bytearray(capacity)
        self._mask = capacity - 1
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def nbytes(self) -> int:
        """Bytes the two arrays take."""
        return len(self._keys) * 9

    @staticmethod
    def _fingerprint(text: str) -> int:
        # str hashes are salted SipHash, cached on the object; 0 marks an empty slot.
        return (hash(text) & 0xFFFF_FFFF_FFFF_FFFF) or 1

    def _slot(self, fingerprint: int) -> int:
        keys, mask = self._keys, self._mask
        index = fingerprint & mask
        while True:
            key = keys[index]
            if key in (0, fingerprint):
                return index
            index = (index + 1) & mask

    def get(self, text: str) -> int:
        """Return the tag stored for ``text`` (0 if absent)."""
        return self._tags[self._slot(self._fingerprint(text))]

    def put(self, text: str, tag: int) -> None:
        """Store ``text`` with ``tag`` (1-255), replacing any tag it had."""
        fingerprint = self._fingerprint(text)
        index = self._slot(fingerprint)
        if self._keys[index] == 0:
            self._keys[index] = fingerprint
            self._size += 1
            if 2 * self._size > len(self._keys):
                self._tags[index] = tag
                self._grow()
                return
        self._tags[index] = tag

    def _grow(self) -> None:
        old_keys, old_tags = self._keys, self._tags
        capacity = 2 * len(old_keys)
        self._keys = array("Q", [0]) * capacity
        self._tags = bytearray(capacity)
        self._mask = capacity - 1
        for key, tag in zip(old_keys, old_tags, strict=True):
            if key:
                index = self._slot(key)
                self._keys[index] = key
                self._tags[index] = tag


_SEEN = 1
_KIND_TAGS = {kind: 2 + number for number, kind in enumerate(OutcomeKind)}
_TAG_KINDS = {tag: kind for kind, tag in _KIND_TAGS.items()}
# A start row whose journaled intent has no outcome after it: reported unknown when read.
_DANGLING = 255


# --------------------------------------------------------------------------- progress


@attrs.frozen(kw_only=True)
class BulkProgress:
    """A snapshot of a bulk job, handed to the ``progress`` callback.

    Attributes:
        total: input items, when known (``len()`` of a sized input, or given).
        read: input items taken so far.
        done: outcomes this run (every kind).
        counts: outcomes this run per kind.
        skipped: ids already final in the journal, not sent again.
        journal_counts: those skipped ids per kind they had in the journal.
        duplicates: ids seen before in this input, not sent again.
        withdrawn: ids taken but not sent because the job was stopping.
        unrecorded: answers whose journal line could not be written (a full disk):
            not in ``done`` or ``counts`` and not yielded, since an outcome is reported
            only once it is durable; the next run on the journal sends their ids again.
        in_flight: calls running now (waiting for the limiter or the server).
        rate_limited: 429s the limiter saw since the job started.
        elapsed: seconds since the job started.
        rate: outcomes per second since the start, at most the rate the limiter's
            schedule sustains (a job sent in bursts finishes a whole window's burst at
            once; dividing that by the first second would be meaningless).
        eta: seconds until the last id is expected to be sent, from the limiter's
            schedule (paced or in bursts, see `estimate_eta()`); None when the
            total is unknown or the job is stopping.
        stopping: no new id is being started (stop requested, or an abort).
        finished: the job is over; this is the last snapshot.
    """

    total: int | None
    read: int
    done: int
    counts: Mapping[OutcomeKind, int]
    skipped: int
    journal_counts: Mapping[OutcomeKind, int]
    duplicates: int
    withdrawn: int
    in_flight: int
    rate_limited: int
    elapsed: float
    rate: float
    eta: float | None
    stopping: bool
    finished: bool
    unrecorded: int = 0

    @property
    def completed(self) -> int:
        """Input items dealt with: outcomes, journal skips and duplicates."""
        return self.done + self.skipped + self.duplicates

    @property
    def remaining(self) -> int | None:
        """Input items not yet dealt with, when the total is known."""
        return None if self.total is None else max(0, self.total - self.completed)


def send_interval(stats: LimiterStats, limits: RateLimits, *, background: bool) -> float:
    """Return the seconds between two sends of a paced job; 0 for a job sent in bursts.

    Background calls (priority < 0) go one per ``(window + guard) / (limit -
    reserve)`` while ``interactive_reserve`` is on; smooth mode spaces every
    call ``window / limit * (1 + slack)`` apart. The wider spacing wins.

    Args:
        stats: the limiter's snapshot: its effective limit and mode now (adaptive
            may have lowered the one and switched the other).
        limits: the limiter's limits.
        background: the job's calls have a priority below 0.
    """
    limit = max(1, stats.total_limit)
    interval = 0.0
    reserve = min(limits.interactive_reserve, limit - 1)
    if background and reserve:
        interval = (limits.window + limits.guard) / (limit - reserve)
    if stats.mode == "smooth":
        interval = max(interval, limits.window / limit * (1 + limits.slack))
    return interval


def estimate_eta(
    pending: int, stats: LimiterStats, limits: RateLimits, *, background: bool = False
) -> float:
    """Estimate the seconds until ``pending`` more requests have all been sent.

    Uses the limiter's own schedule. A paced job (background calls, or smooth
    mode) sends its next request when the limiter next admits one and the
    others `send_interval()` apart; a background job that starts on a quiet
    budget (nothing counting) first sends the burst the background policy
    allows, the rest of its first window as places come free, then one per
    interval. A job sent in bursts gets
    ``total_limit`` requests per ``window + guard``, starting with the room the
    API user's log has now. The per-schedule limit plays no part (a bulk job
    sends each id once).

    Args:
        pending: requests still to send (not counting those in flight).
        stats: the limiter's snapshot.
        limits: the limiter's limits.
        background: the requests are background calls (priority < 0), paced
            while ``limits.interactive_reserve`` is on.

    Returns:
        Seconds; 0 when nothing is pending.
    """
    if pending <= 0:
        return 0.0
    limit = max(1, stats.total_limit)
    period = limits.window + limits.guard
    # In-flight requests alone fill the log: it frees a period after they are answered.
    next_free = stats.next_free if math.isfinite(stats.next_free) else period
    interval = send_interval(stats, limits, background=background)
    reserve = min(limits.interactive_reserve, limit - 1)
    if background and reserve and not stats.total_used and stats.mode == "exact":
        # A quiet budget: the job bursts (_background), the rest of its first window goes
        # as the burst's places come free in time, then one per interval.
        look = background_depth(limit, reserve)
        rest = pending - (limit - reserve - look)
        if rest <= 0:
            return next_free
        if rest <= look:
            return next_free + period - (look - rest + 1) * interval
        return next_free + period + (rest - look - 1) * interval
    if interval:
        if background and math.isfinite(stats.background_next_free):
            next_free = max(next_free, stats.background_next_free)
        return next_free + (pending - 1) * interval
    free = max(0, limit - stats.total_used)
    if pending <= free:
        return next_free
    rounds = math.ceil((pending - free) / limit)
    if free == 0:
        # The first round starts when the log next admits; each later one a period on.
        return next_free + (rounds - 1) * period
    return rounds * period


def default_concurrency(limits: RateLimits) -> int:
    """Return the default number of workers: two windows' worth of the API user's limit.

    At least ``total`` calls must be ready when a window opens for the job to
    run at the limit; twice that keeps the limiter's queue full while the
    previous burst's responses come in.
    """
    return max(1, min(2 * limits.total, MAX_CONCURRENCY))


# --------------------------------------------------------------------------- the job


@attrs.define(eq=False, repr=False)
class _BulkRun:
    """The state of one ``run_many`` call.

    No generated repr: it would show the apiKey and the secrets to scrub, and a
    traceback that renders local variables (error trackers do) would print them.
    """

    client: BulkClient
    operation: Operation
    # The client's method for the operation (continue's ``at`` bound in).
    send: Callable[..., Awaitable[ScheduleResult]]
    continue_at: datetime | None
    ids: Iterable[object] | AsyncIterable[object]
    api_key: str | None
    concurrency: int
    journal_path: str | os.PathLike[str] | None
    journal: Journal | None
    progress: Callable[[BulkProgress], object] | None
    progress_interval: float
    total: int | None
    stop: asyncio.Event | None
    priority: int
    max_consecutive_errors: int | None
    retry_failed: bool
    secrets: tuple[str, ...]
    # Start rows whose unknown outcome the caller checked: sent again.
    retry_unknown: frozenset[str] = frozenset()

    _table: _IdTable = attrs.field(factory=_IdTable, init=False)
    # An update job's change digest per id seen (this run's rows and the journal's final
    # ones): a dict, as an update file holds thousands of rows, not a million ids.
    _changes: dict[str, str] = attrs.field(factory=dict, init=False)
    # A start job's bodies that may exist on the server (started, unknown, or sent this run),
    # digest -> row key: the same schedule under another key is a conflict, not sent again.
    _bodies: dict[str, str] = attrs.field(factory=dict, init=False)
    # A start job's intents without an outcome in the journal, by row key.
    _dangling: dict[str, Intent] = attrs.field(factory=dict, init=False)
    _counts: dict[OutcomeKind, int] = attrs.field(init=False)
    _journal_counts: dict[OutcomeKind, int] = attrs.field(init=False)
    _read: int = attrs.field(default=0, init=False)
    _done: int = attrs.field(default=0, init=False)
    _skipped: int = attrs.field(default=0, init=False)
    _duplicates: int = attrs.field(default=0, init=False)
    _withdrawn: int = attrs.field(default=0, init=False)
    _unrecorded: int = attrs.field(default=0, init=False)
    _in_flight: int = attrs.field(default=0, init=False)
    _streak: int = attrs.field(default=0, init=False)
    _stopping: bool = attrs.field(default=False, init=False)
    _exhausted: bool = attrs.field(default=False, init=False)
    _failure: BaseException | None = attrs.field(default=None, init=False)
    _started: float = attrs.field(default=0.0, init=False)
    _rate_limited_base: int = attrs.field(default=0, init=False)
    _last_report: float = attrs.field(default=-math.inf, init=False)
    _pull: Callable[[], object] | None = attrs.field(default=None, init=False)
    _apull: AsyncIterator[object] | None = attrs.field(default=None, init=False)
    _lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    _results: asyncio.Queue[object] = attrs.field(init=False)
    _workers: list[asyncio.Task[None]] = attrs.field(factory=list, init=False)
    # The worker awaiting the next item of an async input, if one is.
    _reading: asyncio.Task[Any] | None = attrs.field(default=None, init=False)
    # Workers the job cancelled itself (a stalled read of an async input).
    _interrupted: set[asyncio.Task[Any]] = attrs.field(factory=set, init=False)
    # Every call's wait for a permit passes it: closed, it withdraws the calls not sent yet.
    _gate: Gate = attrs.field(init=False)
    # The journal's send lines being written.
    _send_lines: set[asyncio.Task[None]] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        before_send = self._journal_intent if self.operation is Operation.START else None
        self._gate = Gate(on_grant=self._note_send, before_send=before_send)
        self._results = asyncio.Queue(maxsize=self.concurrency)
        self._counts = dict.fromkeys(outcome_kinds(self.operation), 0)
        self._journal_counts = dict.fromkeys(outcome_kinds(self.operation), 0)

    # ---- input

    async def _next_raw(self) -> object:
        if self._apull is not None:
            # Marked for _interrupt_read: an async input may stay silent for long (stdin).
            self._reading = asyncio.current_task()
            try:
                return await self._apull.__anext__()
            finally:
                self._reading = None
        assert self._pull is not None  # noqa: S101 - set by run() before any worker starts
        try:
            return self._pull()
        except StopIteration:
            raise StopAsyncIteration from None

    async def _next_id(self) -> tuple[str, Row | None] | None:
        """Take input items until one is a new, valid id (and its update row) to send; None
        when there is none."""
        async with self._lock:
            while not self._stopping and not self._exhausted:
                if self.stop is not None and self.stop.is_set():
                    self._stopping = True
                    break
                try:
                    raw = await self._next_raw()
                except StopAsyncIteration:
                    self._exhausted = True
                    break
                except Exception as exc:  # noqa: BLE001 - any input failure ends the job, raised at the end
                    self._fail(exc)
                    break
                if self._interrupted and asyncio.current_task() in self._interrupted:
                    # The input swallowed the cancel that stopped its read: drop the item.
                    self._own_cancellation()
                    break
                self._read += 1
                if self._read % _YIELD_EVERY == 0:
                    await asyncio.sleep(0)
                item = await self._admit(raw)
                if item is not None:
                    return item
            return None

    async def _admit(self, raw: object) -> tuple[str, Row | None] | None:
        row_type = _ROW_TYPES.get(self.operation)
        row = raw if row_type is not None and isinstance(raw, row_type) else None
        misplaced = row is None if row_type else isinstance(raw, (UpdateRow, StartRow))
        if misplaced:
            wanted = {None: "a str", UpdateRow: "an UpdateRow", StartRow: "a StartRow"}[row_type]
            message = f"a {self.operation} job's items must be {wanted}, got {type(raw).__name__}"
            await self._finish(BulkOutcome.invalid(raw, message))
            return None
        if row is not None:
            raw = row.key
        if not isinstance(raw, str):
            message = f"scheduleId must be a str, got {type(raw).__name__}"
            await self._finish(BulkOutcome.invalid(raw, message))
            return None
        key = recorded_id(raw)
        tag = self._table.get(key)
        if isinstance(row, StartRow) and tag == _DANGLING:
            self._table.put(key, _SEEN)
            await self._finish(unknown_outcome(self._dangling.pop(key), row))
            return None
        if row is not None and (conflict := self._conflict(row, seen=bool(tag))) is not None:
            await self._finish(conflict)
            return None
        if tag == _SEEN:
            self._duplicates += 1
            return None
        self._table.put(key, _SEEN)
        if tag:
            self._skipped += 1
            self._journal_counts[_TAG_KINDS[tag]] += 1
            return None
        if row is not None:
            self._changes[key] = row.digest
            if isinstance(row, StartRow):
                self._bodies[row.digest] = key
            return key, row
        try:
            return validate_schedule_id(raw), None
        except InvalidParameterError as exc:
            await self._finish(BulkOutcome.invalid(raw, str(exc)))
            return None

    def _conflict(self, row: Row, *, seen: bool) -> BulkOutcome | None:
        """A ``conflict`` outcome when ``row``'s key was ``seen`` with another change, or (a
        start row) its body under another key; else None."""
        known = self._changes.get(row.key) if seen else None
        other = self._bodies.get(row.digest) if isinstance(row, StartRow) else None
        if known is not None and known != row.digest:
            name = "scheduleId" if isinstance(row, UpdateRow) else "row key"
            error = (
                f"another change ({known}) was given for this {name} before (in the"
                " journal or earlier in the input); this one was not sent"
            )
        elif other is not None and other != row.key:
            error = (
                f"the same schedule (every field alike, {row.digest}) was started or sent under"
                f" the key {other[:40]!r} before (in the journal or earlier in the input); this"
                " one was not sent"
            )
        else:
            return None
        return BulkOutcome(
            schedule_id=row.key,
            kind=OutcomeKind.CONFLICT,
            error_type="InvalidParameterError",
            error=error,
            change=row.digest,
            values=row.values(),
        )

    # ---- work

    async def _worker(self) -> None:
        try:
            while True:
                try:
                    item = await self._next_id()
                except asyncio.CancelledError:
                    if not self._own_cancellation():
                        raise
                    return  # stopped while waiting for input: nothing was taken
                if item is None:
                    return
                outcome = await self._call(*item)
                await self._finish(outcome)
        except RequestWithdrawnError as exc:
            # Not sent: the gate closed while it waited for the limiter; the job is stopping.
            self._withdrawn += 1
            if isinstance(exc, ClientClosedError):  # the client was closed under the job
                self._fail(exc)
        except Exception as exc:  # noqa: BLE001 - a failing worker stops the job, raised at the end
            self._fail(exc)

    def _own_cancellation(self) -> bool:
        """Take back the job's own cancel of this worker; False if it came from outside.

        Called where a CancelledError was caught: True when the job cancelled
        this worker (see `_interrupt_read()`) and nobody else asked to
        cancel it too.
        """
        task = asyncio.current_task()
        if task is None or task not in self._interrupted:
            return False
        self._interrupted.discard(task)
        return task.uncancel() == 0

    def _interrupt(self, task: asyncio.Task[Any]) -> None:
        if task not in self._interrupted and not task.done():
            self._interrupted.add(task)
            task.cancel()

    def _interrupt_read(self) -> None:
        """Stop the worker waiting for the next input item: the job is stopping."""
        if self._reading is not None and self._reading is not asyncio.current_task():
            self._interrupt(self._reading)

    async def _watch_stop(self, stop: asyncio.Event) -> None:
        """Stop at once when ``stop`` is set: withdraw the calls not sent, end a slow read."""
        await stop.wait()
        self._stopping = True
        self._gate.close()
        self._interrupt_read()

    async def _call(self, schedule_id: str, row: Row | None) -> BulkOutcome:
        self._in_flight += 1
        if isinstance(row, StartRow):
            _SENDING.set(row)  # the worker's own context: read by _journal_intent
            args: tuple[object, ...] = (row.schedule,)
        else:
            args = (schedule_id,) if row is None else (schedule_id, row.changes)
        try:
            result = await self.send(
                *args, api_key=self.api_key, priority=self.priority, gate=self._gate
            )
        except RequestWithdrawnError:
            raise
        except Exception as exc:  # one id's failure must not end a long job
            if not isinstance(exc, ScheduleError):
                logger.exception("unexpected error in %s of %s", self.operation, schedule_id)
            outcome = BulkOutcome.from_exception(schedule_id, exc, secrets=self.secrets)
        else:
            outcome = BulkOutcome.from_result(
                schedule_id, result, secrets=self.secrets, operation=self.operation
            )
        finally:
            self._in_flight -= 1
        if row is None:
            return outcome
        return attrs.evolve(outcome, change=row.digest, values=row.values())

    async def _journal_intent(self, permit: Permit) -> None:
        """Make the start request's intent durable before it is sent (the gate's
        ``before_send``): a run killed while it is out reports its row ``unknown``.

        Raises:
            RequestWithdrawnError: the line could not be written (the job stops with
                that error): the request is not sent.
        """
        del permit  # a start's permit names no row; the worker's context does
        row = _SENDING.get()
        if self.journal is None or row is None:
            return
        try:
            await asyncio.to_thread(self.journal.write_record, intent_record(row))
        except OSError as exc:
            self._fail(exc)
            raise RequestWithdrawnError("not sent: its intent could not be journaled") from exc
        if self.journal.closed:  # closed under the write: the line may be missing
            raise RequestWithdrawnError("not sent: the journal was closed")

    async def _finish(self, outcome: BulkOutcome) -> None:
        if self.journal is not None:
            try:
                await self.journal.aappend(outcome)
            except OSError as exc:
                # The answer came but is not durable: stop rather than run on unrecorded, and
                # report it nowhere but here (the next run sends the id again).
                self._unrecorded += 1
                self._fail(exc)
                return
        self._done += 1
        self._counts[outcome.kind] += 1
        self._watch_errors(outcome)
        await self._results.put(outcome)

    def _watch_errors(self, outcome: BulkOutcome) -> None:
        if outcome.kind in (OutcomeKind.INVALID, OutcomeKind.CONFLICT) or (
            outcome.kind is OutcomeKind.UNKNOWN and outcome.exception is None
        ):
            return  # not an answer of this run's (an unknown read from the journal)
        if outcome.kind not in (OutcomeKind.ERROR, OutcomeKind.UNKNOWN):
            self._streak = 0
            return
        self._streak += 1
        exc = outcome.exception
        limit = self.max_consecutive_errors
        if exc is None or self._failure is not None:
            return
        if isinstance(exc, FATAL_ERRORS) or (limit is not None and self._streak >= limit):
            logger.error(
                "stopping the job after %d consecutive errors, the last: %s",
                self._streak,
                outcome.error,
            )
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._stopping = True
        # Nothing still waiting for a permit is sent: the job has failed.
        self._gate.close()
        self._interrupt_read()

    async def _supervise(self, workers: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*workers)
        await self._results.put(_DONE)

    # ---- journal

    async def _open_journal(self) -> None:
        if self.journal is None and self.journal_path is not None:
            self.journal = await asyncio.to_thread(Journal.open, self.journal_path)
        if self.journal is not None:
            limiter = self.client.limiter
            own = limiter.origin if isinstance(limiter, RateLimiter) else None
            recent = RecentRequests(hold=limiter.limits.window + limiter.limits.guard, own=own)
            await asyncio.to_thread(self._load_journal, self.journal, recent)
            # An in-process limiter knows nothing of the earlier runs' requests; a shared
            # store (Redis) has them already.
            if isinstance(limiter, RateLimiter) and (
                counted := limiter.remember(recent.answered())
            ):
                logger.info("counting %d requests of earlier runs in the limiter", counted)
            self.journal.write_record(self._run_record("start"))

    async def _close_journal(self) -> None:
        """Let the send lines be written, then write the run's ``end`` line."""
        await self._sends_written()
        if self.journal is not None and not self.journal.closed:
            try:
                self.journal.write_record(self._run_record("end"))
            except OSError as exc:
                self._fail(exc)

    async def _sends_written(self) -> None:
        await asyncio.gather(*self._send_lines, return_exceptions=True)

    def _note_send(self, permit: Permit) -> None:
        """Journal a request about to be sent, so that a run again can count it (the gate's
        ``on_grant``). Not awaited: the request does not wait for the disk."""
        if self.journal is None or permit.schedule_id is None:
            return
        write = asyncio.to_thread(self.journal.write_record, send_record(permit.schedule_id))
        task = asyncio.get_running_loop().create_task(write)
        self._send_lines.add(task)
        task.add_done_callback(self._send_line_written)

    def _send_line_written(self, task: asyncio.Task[None]) -> None:
        self._send_lines.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._fail(exc)

    def _load_journal(self, journal: Journal, recent: RecentRequests) -> None:
        def check(*operations: Operation | None) -> None:
            operation = operations[0] if operations else None
            if operation is not None and self.operation not in operations:
                raise InvalidParameterError(
                    f"journal {journal.path} is the journal of a {operation} job, not of"
                    f" {self.operation}: use another journal file; nothing was sent"
                )

        ledger = StartLedger() if self.operation is Operation.START else None

        at = None if self.continue_at is None else format_date_time("at", self.continue_at)

        def on_run(record: Mapping[str, Any]) -> None:
            recent.on_run(record)
            check(run_operation(record))
            if ledger is not None:
                ledger.on_run(record)
            earlier = record.get("continue_at")
            if at is not None and earlier is not None and earlier != at:
                # The ids it continued were sent another date: skipping them would hide that.
                raise InvalidParameterError(
                    f"journal {journal.path} continued schedules at {earlier!s:.40}, not at {at}:"
                    " use another journal file, or the same --at; nothing was sent"
                )

        for outcome in journal.replay(on_run):
            check(*kind_operations(outcome.kind))
            recent.on_outcome(outcome)
            if ledger is not None:
                ledger.on_outcome(outcome)  # a start row's state is its last line
            else:
                self._remember(outcome)
        if ledger is not None:
            self._load_starts(ledger)

    def _remember(self, outcome: BulkOutcome) -> None:
        """Take a final outcome of the journal: its id (row) is not sent again."""
        if not outcome.final or (self.retry_failed and outcome.kind is OutcomeKind.FAILED):
            return
        self._table.put(outcome.schedule_id, _KIND_TAGS[outcome.kind])
        if outcome.change is not None:
            self._changes[outcome.schedule_id] = outcome.change

    def _load_starts(self, ledger: StartLedger) -> None:
        """Take a start journal's rows: final ones are not sent again, nor are those whose
        intent has no outcome (reported ``unknown`` when read), but the ``retry_unknown``."""
        retry = ledger.check_retries(self.retry_unknown)
        for outcome in ledger.finals():
            if outcome.schedule_id in retry:
                continue
            self._remember(outcome)
            if outcome.change is not None and outcome.kind is not OutcomeKind.FAILED:
                self._bodies[outcome.change] = outcome.schedule_id
        for intent in ledger.dangling():
            if intent.key in retry:
                continue
            self._table.put(intent.key, _DANGLING)
            self._dangling[intent.key] = intent
            if intent.change is not None:
                self._changes[intent.key] = intent.change
                self._bodies[intent.change] = intent.key

    # ---- progress

    def snapshot(self, *, finished: bool = False) -> BulkProgress:
        """Return the job's progress now."""
        loop = asyncio.get_running_loop()
        elapsed = max(0.0, loop.time() - self._started)
        limiter = self.client.limiter
        stats = limiter.stats()
        eta: float | None = None
        if finished:
            eta = 0.0
        elif self.total is not None and not self._stopping:
            unfinished = self.total - self._done - self._skipped - self._duplicates
            pending = unfinished - stats.in_flight
            eta = estimate_eta(pending, stats, limiter.limits, background=self.priority < 0)
        return BulkProgress(
            total=self.total,
            read=self._read,
            done=self._done,
            counts=MappingProxyType(dict(self._counts)),
            skipped=self._skipped,
            journal_counts=MappingProxyType(dict(self._journal_counts)),
            duplicates=self._duplicates,
            withdrawn=self._withdrawn,
            unrecorded=self._unrecorded,
            in_flight=self._in_flight,
            rate_limited=max(0, stats.rate_limited - self._rate_limited_base),
            elapsed=elapsed,
            rate=self._rate(elapsed, stats, limiter.limits),
            eta=eta,
            stopping=self._stopping or (self.stop is not None and self.stop.is_set()),
            finished=finished,
        )

    def _rate(self, elapsed: float, stats: LimiterStats, limits: RateLimits) -> float:
        """Outcomes per second so far, at most the rate the limiter's schedule sustains.

        A job sent in bursts finishes a window's burst at once, and a paced job's
        first answers come quickly: dividing by the first seconds would be
        meaningless, so the rate is capped at one request per send interval, or
        ``total_limit`` per ``window + guard`` for bursts.
        """
        if not self._done:
            return 0.0
        interval = send_interval(stats, limits, background=self.priority < 0)
        if interval:
            sustained = 1 / interval
        else:
            sustained = max(1, stats.total_limit) / (limits.window + limits.guard)
        return min(self._done / elapsed, sustained) if elapsed else sustained

    def _report(self, *, force: bool = False, finished: bool = False) -> None:
        if self.progress is None:
            return
        now = asyncio.get_running_loop().time()
        if force or now - self._last_report >= self.progress_interval:
            self._last_report = now
            self.progress(self.snapshot(finished=finished))

    # ---- the generator

    async def run(self) -> AsyncGenerator[BulkOutcome, None]:
        """Run the job, yielding outcomes as they finish."""
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[None]] = []
        own_journal = self.journal is None and self.journal_path is not None
        try:
            await self._open_journal()
            if isinstance(self.ids, AsyncIterable):
                self._apull = aiter(self.ids)
            else:
                self._pull = iter(self.ids).__next__
            self._started = loop.time()
            self._rate_limited_base = self.client.limiter.stats().rate_limited
            self._report(force=True)
            workers = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]
            self._workers = workers
            tasks = [*workers, asyncio.create_task(self._supervise(workers))]
            if self.stop is not None:
                tasks.append(asyncio.create_task(self._watch_stop(self.stop)))
            while True:
                item = await self._next_result()
                if item is _DONE:
                    break
                yield cast("BulkOutcome", item)
                self._report()
            self._report(force=True, finished=True)
            await self._close_journal()
            if self._failure is not None:
                raise self._failure
        finally:
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await self._sends_written()
            if own_journal and self.journal is not None:
                self.journal.close()

    async def _next_result(self) -> object:
        """Wait for the next outcome (or _DONE), reporting progress while nothing comes."""
        if self.progress is None:
            return await self._results.get()
        while True:
            try:
                async with asyncio.timeout(self.progress_interval):
                    return await self._results.get()
            except TimeoutError:
                self._report()

    def _run_record(self, event: str) -> dict[str, object]:
        record: dict[str, object] = {"run": event}
        if event == "start":
            record["operation"] = self.operation.path
            if self.continue_at is not None:
                record["continue_at"] = format_date_time("at", self.continue_at)
        record["version"] = __version__
        record["pid"] = os.getpid()
        if event == "start":
            # The key the calls use: the job's, else the client's default.
            record["api_key"] = (
                redact_key(self.api_key) if self.api_key else self.client.redacted_api_key
            )
            if isinstance(self.client.limiter, RateLimiter):
                record["limiter"] = self.client.limiter.origin
        else:
            record["counts"] = {kind.value: n for kind, n in self._counts.items() if n}
            record["skipped"] = self._skipped
            record["duplicates"] = self._duplicates
            record["stopped"] = self._stopping
        record["at"] = timestamp()
        return record


class BulkOptions(TypedDict, total=False):
    """The keyword options of the bulk jobs (``ScheduleClient.run_many``, ``cancel_many``).

    All optional. A wrapper can pass them along typed as
    ``**options: Unpack[BulkOptions]``.

    Attributes:
        api_key: the connector apiKey for every call; None uses the client's.
        concurrency: calls at once (waiting in the limiter or on the wire);
            None means `default_concurrency()` of the client's limits.
        journal: an open [`Journal`][schedcancel.Journal] (the caller closes it) or a path
            (opened, locked and closed here).
        progress: called with a [`BulkProgress`][schedcancel.BulkProgress] at the start, at most
            every ``progress_interval`` seconds while the job runs, and at the end.
        progress_interval: seconds between progress reports (0.5).
        total: the number of input items, when known; defaults to ``len(ids)``
            for sized inputs. Only progress uses it.
        stop: set it to stop the job cleanly.
        priority: the limiter priority of every call; background (-1) by default:
            paced, and leaving ``RateLimits.interactive_reserve`` places to calls
            of priority 0 and up, so a service or bot sharing the budget stays
            responsive. Pass 0 to send in bursts when nothing else shares it.
        max_consecutive_errors: stop after this many ``error`` outcomes in a row
            (100; None: never).
        retry_failed: send ids whose journal line is ``failed`` again (False).
    """

    api_key: str | None
    concurrency: int | None
    journal: Journal | str | os.PathLike[str] | None
    progress: Callable[[BulkProgress], object] | None
    progress_interval: float
    total: int | None
    stop: asyncio.Event | None
    priority: int
    max_consecutive_errors: int | None
    retry_failed: bool


def cancel_many(
    client: BulkClient,
    ids: Iterable[object] | AsyncIterable[object],
    **options: Unpack[BulkOptions],
) -> AsyncGenerator[BulkOutcome, None]:
    """Cancel many schedules through one client: `run_many()` for ``Operation.CANCEL``.

    Each id ends as ``cancelled``, ``already_cancelled`` (7070, CANCELLED),
    ``failed``, ``invalid`` or ``error``; everything else (streaming, the
    journal and resuming it, stopping, duplicates, the background priority
    -1 by default) is as `run_many()` describes, and so are the options.

    Args:
        client: a ``ScheduleClient`` or anything with its ``cancel`` and ``limiter``.
        ids: scheduleIds, as an iterable or async iterable.
        **options: see [`BulkOptions`][schedcancel.BulkOptions] and `run_many()`.

    Returns:
        An async generator of [`BulkOutcome`][schedcancel.BulkOutcome].

    Raises:
        InvalidParameterError: as for `run_many()`.
    """
    return run_many(client, Operation.CANCEL, ids, **options)


def update_many(
    client: BulkClient,
    rows: Iterable[object] | AsyncIterable[object],
    **options: Unpack[BulkOptions],
) -> AsyncGenerator[BulkOutcome, None]:
    """Update many schedules, each with its own change: `run_many()` for ``Operation.UPDATE``.

    Each [`UpdateRow`][schedcancel.UpdateRow] ends as ``updated``, ``failed``, ``invalid``
    (an item that is no ``UpdateRow``), ``error`` or ``conflict``: a row whose
    scheduleId came before with another change, earlier in the input or final in
    the journal (its line keeps the change's digest), is not sent. A row repeated
    with the same change is a duplicate, sent once. The rest is as `run_many()`
    describes.

    Args:
        client: a ``ScheduleClient`` or anything with its ``update`` and ``limiter``.
        rows: [`UpdateRow`][schedcancel.UpdateRow] values, as an iterable or async iterable.
        **options: see [`BulkOptions`][schedcancel.BulkOptions] and `run_many()`.

    Returns:
        An async generator of [`BulkOutcome`][schedcancel.BulkOutcome].

    Raises:
        InvalidParameterError: as for `run_many()`.
    """
    return run_many(client, Operation.UPDATE, rows, **options)


def start_many(
    client: BulkClient,
    rows: Iterable[object] | AsyncIterable[object],
    *,
    retry_unknown: Iterable[str] = (),
    **options: Unpack[BulkOptions],
) -> AsyncGenerator[BulkOutcome, None]:
    """Start many schedules (a migration): `run_many()` for ``Operation.START``.

    ``ScheduleClient.start_many`` documents the job; this function is written
    against `BulkClient`. ``max_consecutive_errors`` defaults to
    `START_MAX_CONSECUTIVE_ERRORS` here.

    Args:
        client: a ``ScheduleClient`` or anything with its ``start`` and ``limiter``.
        rows: [`StartRow`][schedcancel.StartRow] values, as an iterable or async iterable.
        retry_unknown: keys of rows whose outcome the journal has as unknown, checked by
            you (no such schedule exists): sent again.
        **options: see [`BulkOptions`][schedcancel.BulkOptions] and `run_many()`.

    Returns:
        An async generator of [`BulkOutcome`][schedcancel.BulkOutcome].

    Raises:
        InvalidParameterError: as for `run_many()`; ``retry_unknown`` without a journal
            at once, or naming a row not unknown in it on the first iteration.
    """
    options.setdefault("max_consecutive_errors", START_MAX_CONSECUTIVE_ERRORS)
    return run_many(client, Operation.START, rows, retry_unknown=retry_unknown, **options)


# The client method each bulk operation calls.
_METHODS = {
    Operation.CANCEL: "cancel",
    Operation.PAUSE: "pause",
    Operation.CONTINUE: "continue_",
    Operation.GET: "get",
    Operation.UPDATE: "update",
    Operation.START: "start",
}


def _sender(
    client: BulkClient, operation: object, at: object
) -> Callable[..., Awaitable[ScheduleResult]]:
    """The client's method for ``operation``, with continue's ``at`` checked and bound."""
    if not isinstance(operation, Operation) or operation not in _METHODS:
        raise InvalidParameterError(
            f"operation must be one of {', '.join(f'Operation.{o.name}' for o in BULK_OPERATIONS)}"
            f", got {operation!r:.40}"
        )
    if operation is Operation.CONTINUE:
        if at is None:
            raise InvalidParameterError("continue needs at: the schedules' next charge")
        ContinueSchedule(cast("datetime", at))  # refuses a naive or non-datetime at, here
    elif at is not None:
        raise InvalidParameterError(f"at is for continue only, not for {operation}")
    method = getattr(client, _METHODS[operation], None)
    if not callable(method):
        raise InvalidParameterError(f"the client has no {_METHODS[operation]} method")
    send = cast("Callable[..., Awaitable[ScheduleResult]]", method)
    if operation is Operation.CONTINUE:
        return partial(send, at=at)
    return send


def run_many(
    client: BulkClient,
    operation: Operation,
    ids: Iterable[object] | AsyncIterable[object],
    *,
    at: datetime | None = None,
    api_key: str | None = None,
    concurrency: int | None = None,
    journal: Journal | str | os.PathLike[str] | None = None,
    progress: Callable[[BulkProgress], object] | None = None,
    progress_interval: float = 0.5,
    total: int | None = None,
    stop: asyncio.Event | None = None,
    priority: int = BACKGROUND_PRIORITY,
    max_consecutive_errors: int | None = 100,
    retry_failed: bool = False,
    retry_unknown: Iterable[str] = (),
) -> AsyncGenerator[BulkOutcome, None]:
    """Run one per-id operation for many schedules: the job behind ``ScheduleClient.run_many``.

    ``ScheduleClient.run_many`` documents the job (streaming, the journal,
    resuming, stopping); [`BulkOptions`][schedcancel.BulkOptions] the options and their defaults.
    This function is written against `BulkClient`, not the client
    class, so the bulk layer never imports the client.

    Args:
        client: a ``ScheduleClient``, or anything with its ``limiter`` and the
            operation's method (``cancel``, ``pause``, ``continue_``, ``get``).
        operation: the call to make for each id.
        ids: scheduleIds, as an iterable or async iterable.
        at: for continue only (and required there).
        api_key: see [`BulkOptions`][schedcancel.BulkOptions].
        concurrency: see [`BulkOptions`][schedcancel.BulkOptions].
        journal: see [`BulkOptions`][schedcancel.BulkOptions].
        progress: see [`BulkOptions`][schedcancel.BulkOptions].
        progress_interval: see [`BulkOptions`][schedcancel.BulkOptions].
        total: see [`BulkOptions`][schedcancel.BulkOptions].
        stop: see [`BulkOptions`][schedcancel.BulkOptions].
        priority: see [`BulkOptions`][schedcancel.BulkOptions].
        max_consecutive_errors: see [`BulkOptions`][schedcancel.BulkOptions].
        retry_failed: see [`BulkOptions`][schedcancel.BulkOptions].
        retry_unknown: for start only: see `start_many()`.

    Returns:
        An async generator of [`BulkOutcome`][schedcancel.BulkOutcome].

    Raises:
        InvalidParameterError: as [`run_many()`][schedcancel.ScheduleClient.run_many]
            describes: at once for a bad argument, on the first iteration for an
            unusable journal.
    """
    send = _sender(client, operation, at)
    if isinstance(ids, (str, bytes)):
        # Iterating "SC-1234" would cancel the schedules "S", "C", "-", "1"...
        raise InvalidParameterError("ids must be an iterable of ids, not a single str or bytes")
    if not isinstance(ids, (Iterable, AsyncIterable)):
        raise InvalidParameterError(
            f"ids must be an iterable or async iterable, got {type(ids).__name__}"
        )
    if api_key is not None:
        validate_api_key(api_key)
    check_int("concurrency", concurrency, minimum=1, optional=True)
    check_priority(priority)
    check_int("max_consecutive_errors", max_consecutive_errors, minimum=1, optional=True)
    check_int("total", total, minimum=0, optional=True)
    check_number("progress_interval", progress_interval, unit=" seconds")
    if progress is not None and not callable(progress):
        raise InvalidParameterError(f"progress must be callable, got {type(progress).__name__}")
    if journal is not None and not isinstance(journal, (Journal, str, os.PathLike)):
        raise InvalidParameterError(
            f"journal must be a Journal, a path or None, got {type(journal).__name__}"
        )
    retry = _retry_unknown(operation, retry_unknown, journal)
    if concurrency is None:
        concurrency = default_concurrency(client.limiter.limits)
    if total is None and isinstance(ids, Sized):
        total = len(ids)
    secrets = (api_key, *client.redactions) if api_key else client.redactions
    run = _BulkRun(
        client=client,
        operation=operation,
        send=send,
        continue_at=at,
        ids=ids,
        api_key=api_key,
        concurrency=concurrency,
        journal_path=None if isinstance(journal, Journal) else journal,
        journal=journal if isinstance(journal, Journal) else None,
        progress=progress,
        progress_interval=progress_interval,
        total=total,
        stop=stop,
        priority=priority,
        max_consecutive_errors=max_consecutive_errors,
        retry_failed=retry_failed,
        secrets=secrets,
        retry_unknown=retry,
    )
    return run.run()


def _retry_unknown(operation: Operation, keys: object, journal: object) -> frozenset[str]:
    """``retry_unknown`` checked: row keys, for a start job with a journal."""
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
        raise InvalidParameterError("retry_unknown must be an iterable of row keys, not one str")
    retry = frozenset(keys)
    if not retry:
        return retry
    if operation is not Operation.START:
        raise InvalidParameterError(f"retry_unknown is for start only, not for {operation}")
    if journal is None:
        raise InvalidParameterError("retry_unknown needs the journal that holds the unknown rows")
    if not all(isinstance(key, str) for key in retry):
        raise InvalidParameterError("retry_unknown must hold row keys (str)")
    return retry
