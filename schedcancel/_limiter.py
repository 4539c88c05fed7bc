"""The in-process rate limiter: an asyncio dispatcher over the pure logs of ``_window``.

Design, in short (RATE-LIMITS.md has the why):

* Two levels, one :class:`~schedcancel._window.SlidingLog` each: the API user
  (limit N) and every scheduleId (limit K). A request takes an entry in both
  at the same instant; entries count until ``window + guard`` after the
  response was observed (response-anchored release, safe under any jitter).
* Waiters queue per scheduleId. A scheduleId whose own log admits a request
  now is *ready*; the others wait in a heap keyed by the time their log opens,
  or, when their in-flight requests fill the limit, for a release. Requests
  held by their scheduleId never hold back other scheduleIds.
* Among ready scheduleIds the dispatcher grants by the key
  ``(-priority, batch, -pending, seq)`` of each one's head waiter: higher
  priority first; waiters that arrived together (in one event-loop turn, a
  *batch*) before later ones, so a newcomer never overtakes a waiter that
  was already queued at its priority; inside a batch the scheduleId with
  the most pending requests first, which is what reaches the two-limit lower
  bound ``(max(ceil(M/N), max_k ceil(m_k/K)) - 1) * window``; then FIFO.
* One dispatcher per limiter, run by ``loop.call_soon`` after queue changes
  and by ONE ``loop.call_at`` timer set to the earliest moment anything can
  change: the API user's log opening, a scheduleId's log opening, or a
  ``queue_timeout`` deadline (and, with nothing queued, the moment idle
  scheduleIds can be dropped). No polling, no timer per waiter.
* A 429 pauses the level it hit: the scheduleId when its log is full, else
  the API user, for ``Retry-After`` (capped) or ``window + guard``. With
  ``adaptive``, a 429 at the API user's level opens an *episode*, judged when
  the pause ends from when the server accepted our requests: it never took a
  full window from us, so the budget is smaller (foreign load): lower the
  limit to what it took; it did, so it counts bursts differently (a
  sliding-window counter): go smooth. A lowered limit grows back by one per
  window after ten quiet windows.

Granting, heap pushes and pops are O(log n) in the number of queued
scheduleIds, so 100,000 waiters over 100,000 scheduleIds dispatch without
scanning the queue; a scheduleId with no waiters whose entries expired is
dropped, so memory follows what is live.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from array import array
from collections import deque
from collections.abc import Callable

import attrs

from ._models import LimiterStats, Permit, RateLimits
from ._window import LevelPolicy, SlidingLog
from .errors import InvalidParameterError, QueueTimeoutError

__all__ = ["RateLimiter"]

logger = logging.getLogger("schedcancel.limiter")

# A timer may fire a hair before the moment it was set for (clock resolution,
# looptime's microsecond grid); within this tolerance the dispatcher treats the
# moment as reached instead of re-arming for a sub-microsecond wait. The guard
# (1 s by default) dwarfs it.
_SNAP = 1e-6

# Queue states of one scheduleId. NEW (not placed yet) and READY both count as
# "may take the API user's next places" in forecasts: ``state <= _READY``.
_NEW, _READY, _TIMED, _BLOCKED = 0, 1, 2, 3

# A dict of keys keeps its table at its peak size after deletions; it is copied
# (O(live), amortised over as many deletions) once more keys left than remain.
_REBUILD_AFTER = 1024

# Windows without a 429 before a lowered limit starts to grow back.
_QUIET_WINDOWS = 10

# Windows of acceptances kept to judge a 429 episode (adaptive mode).
_ACCEPTED_WINDOWS = 3

# Requeued waiters (back from a 429) sort before every ordinary waiter of their
# priority, and FIFO among themselves.
_REQUEUE_BASE = -(1 << 62)


class _Waiter:
    """One ``acquire`` call waiting for its permit."""

    __slots__ = ("alive", "batch", "deadline", "future", "priority", "queue", "seq")

    def __init__(
        self,
        future: asyncio.Future[Permit],
        queue: _Queue,
        *,
        priority: int,
        seq: int,
        batch: int,
        deadline: float,
    ) -> None:
        self.future = future
        self.queue = queue
        self.priority = priority
        self.seq = seq
        self.batch = batch
        self.deadline = deadline
        self.alive = True


class _Queue:
    """The waiters of one scheduleId, best first: ``(-priority, seq)``."""

    __slots__ = ("heap", "key", "live", "log", "state", "version")

    def __init__(self, key: str, log: SlidingLog) -> None:
        self.key = key
        self.log = log
        self.heap: list[tuple[int, int, _Waiter]] = []
        self.live = 0
        self.state = _NEW
        self.version = 0

    def head(self) -> _Waiter:
        """The best live waiter; dead ones (cancelled, timed out) are dropped on the way."""
        heap = self.heap
        while not heap[0][2].alive:
            heapq.heappop(heap)
        return heap[0][2]

    def compact(self) -> None:
        """Forget dead waiters once they outnumber the live ones."""
        if len(self.heap) > 2 * self.live + 8:
            self.heap = [entry for entry in self.heap if entry[2].alive]
            heapq.heapify(self.heap)


class _Ticket:
    """The bookkeeping behind a :class:`Permit`: which limiter, which key, still open?"""

    __slots__ = ("key", "limiter", "open", "serial")

    def __init__(self, limiter: RateLimiter, key: str, serial: int) -> None:
        self.limiter = limiter
        self.key = key
        self.serial = serial  # grant order: tells which 429s belong to one episode
        self.open = True


class _FloatQueue:
    """A FIFO of floats in an ``array('d')`` with a moving head: 8 bytes a value."""

    __slots__ = ("_head", "_values")

    def __init__(self) -> None:
        self._values = array("d")
        self._head = 0

    def __len__(self) -> int:
        return len(self._values) - self._head

    def append(self, value: float) -> None:
        self._values.append(value)

    def first(self) -> float:
        return self._values[self._head]

    def values(self) -> list[float]:
        return self._values[self._head :].tolist()

    def last(self) -> float:
        return self._values[-1]

    def popleft(self) -> float:
        value = self._values[self._head]
        self._head += 1
        if self._head == len(self._values):
            del self._values[:]
            self._head = 0
        elif self._head >= 1024 and self._head * 2 >= len(self._values):
            del self._values[: self._head]
            self._head = 0
        return value


def _limits_or_default(value: RateLimits | None) -> RateLimits:
    return RateLimits() if value is None else value


def _check_key(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidParameterError("schedule_id must be a non-empty string")
    return value


def _non_negative_timeout(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidParameterError(f"queue_timeout must be >= 0 or None, got {value!r}")
    return float(value)


@attrs.define(eq=False, repr=False, on_setattr=attrs.setters.NO_OP)
class RateLimiter:
    """An exact two-level sliding-window limiter for one API user, in this process.

    Implements :class:`schedcancel.Limiter`. Share one object among all clients
    that use the same API user (username); one ``ScheduleClient`` builds its
    own when none is given.

    The clock defaults to the running loop's ``loop.time()`` (monotonic, and
    virtual under looptime). Response-anchored release makes the limiter safe
    whatever the latency: an entry counts until ``window + guard`` after the
    response was observed, and the request's arrival at the server happened
    before that observation, so the next request that the entry's expiry lets
    through arrives more than ``window`` later (proof in ``_window``).

    A limiter binds to the event loop it is first used in.

    Args:
        limits: the limits to keep; ``RateLimits()`` (60 / 10 per 60 s) when None.
        clock: a monotonic clock in seconds; the running loop's ``time`` when None.
    """

    _limits: RateLimits = attrs.field(default=None, converter=_limits_or_default)
    _clock: Callable[[], float] | None = attrs.field(default=None, kw_only=True)

    _total_policy: LevelPolicy = attrs.field(init=False)
    _schedule_policy: LevelPolicy = attrs.field(init=False)
    _total: SlidingLog = attrs.field(init=False)
    _logs: dict[str, SlidingLog] = attrs.field(init=False, factory=dict)
    _queues: dict[str, _Queue] = attrs.field(init=False, factory=dict)
    # Ready scheduleIds: (-priority, batch, -pending, seq, version, queue).
    _ready: list[tuple[int, int, int, int, int, _Queue]] = attrs.field(init=False, factory=list)
    # scheduleIds whose own log opens at a known time: (time, version, queue).
    _timed: list[tuple[float, int, _Queue]] = attrs.field(init=False, factory=list)
    _deadlines: list[tuple[float, int, _Waiter]] = attrs.field(init=False, factory=list)
    # Queues to re-place on the next run, once each (a dict keeps arrival order).
    _dirty: dict[str, _Queue] = attrs.field(init=False, factory=dict)
    # Idle-key sweep: when each release's entry stops counting, and for which key.
    _sweep_times: _FloatQueue = attrs.field(init=False, factory=_FloatQueue)
    _sweep_keys: deque[str] = attrs.field(init=False, factory=deque)
    _by_priority: dict[int, int] = attrs.field(init=False, factory=dict)
    # Deletions since the dicts were last rebuilt (a dict never shrinks its table).
    _dropped_logs: int = attrs.field(init=False, default=0)
    _dropped_queues: int = attrs.field(init=False, default=0)
    _queued: int = attrs.field(init=False, default=0)
    _ready_live: int = attrs.field(init=False, default=0)
    _seq: int = attrs.field(init=False, default=0)
    _requeue_seq: int = attrs.field(init=False, default=_REQUEUE_BASE)
    _batch: int = attrs.field(init=False, default=0)
    _version: int = attrs.field(init=False, default=0)
    _loop: asyncio.AbstractEventLoop | None = attrs.field(init=False, default=None)
    _kick_handle: asyncio.Handle | None = attrs.field(init=False, default=None)
    _timer: asyncio.TimerHandle | None = attrs.field(init=False, default=None)
    _timer_at: float = attrs.field(init=False, default=math.inf)
    _closed: bool = attrs.field(init=False, default=False)
    _rate_limited: int = attrs.field(init=False, default=0)
    # Adaptive state: when the server accepted our requests (three windows),
    # whether a 429 episode awaits judgement, the grant count when the last
    # one opened (permits granted before it belong to it), and the start of
    # the current 429-free stretch.
    _accepted: _FloatQueue = attrs.field(init=False, factory=_FloatQueue)
    _episode_open: bool = attrs.field(init=False, default=False)
    _grants: int = attrs.field(init=False, default=0)
    _episode_start: int = attrs.field(init=False, default=-1)
    _recover_from: float = attrs.field(init=False, default=-math.inf)

    def __attrs_post_init__(self) -> None:
        limits = self._limits
        self._total_policy = LevelPolicy(
            base_limit=limits.total,
            window=limits.window,
            guard=limits.guard,
            mode=limits.mode,
            slack=limits.slack,
        )
        self._schedule_policy = LevelPolicy(
            base_limit=limits.per_schedule,
            window=limits.window,
            guard=limits.guard,
            mode=limits.mode,
            slack=limits.slack,
        )
        self._total = SlidingLog(self._total_policy)

    def __repr__(self) -> str:
        limits = self._limits
        return (
            f"<RateLimiter {limits.total}/{limits.per_schedule} per {limits.window:g}s"
            f" mode={self._total_policy.mode} queued={self._queued}"
            f" in_flight={self._total.in_flight} schedule_ids={len(self._logs)}>"
        )

    # -- the Limiter protocol -----------------------------------------------

    @property
    def limits(self) -> RateLimits:
        """The limits this limiter keeps."""
        return self._limits

    async def acquire(
        self,
        schedule_id: str,
        *,
        priority: int = 0,
        queue_timeout: float | None = None,
        requeue: bool = False,
    ) -> Permit:
        """Wait until a request for ``schedule_id`` may start, and take its entries.

        The request joins the queue even when the budget is free, and the
        dispatcher grants on the next loop turn: requests that arrive together
        are then ordered by priority and pending count, not by who came first
        by a microsecond.

        Args:
            schedule_id: the scheduleId whose log is charged with the API user's.
            priority: higher goes first among waiters that may start.
            queue_timeout: seconds to wait at most; when the expected wait is
                already longer, fail at once.
            requeue: the request is back after a 429; it goes to the front.

        Returns:
            The permit; hand it to :meth:`release` when the response (or failure) came.

        Raises:
            QueueTimeoutError: not admitted within ``queue_timeout``.
            InvalidParameterError: ``schedule_id`` is not a non-empty string or
                ``queue_timeout`` is negative.
            RuntimeError: the limiter is closed or bound to another event loop.
        """
        _check_key(schedule_id)
        timeout = _non_negative_timeout(queue_timeout)
        if self._closed:
            raise RuntimeError("RateLimiter is closed")
        loop = self._bind()
        deadline = math.inf
        if timeout is not None:
            now = self._now()
            expected = self._expected_start(schedule_id, priority, requeue, now) - now
            if expected > timeout:
                raise QueueTimeoutError(
                    f"expected wait {_seconds(expected)} exceeds queue_timeout {timeout:g}s",
                    expected_wait=expected,
                )
            deadline = now + timeout
        waiter = self._enqueue(schedule_id, loop, priority, requeue, deadline)
        try:
            return await waiter.future
        except asyncio.CancelledError:
            self._abandon(waiter)
            raise

    async def release(
        self,
        permit: Permit,
        *,
        rate_limited: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Report that the request's response (or failure, or cancellation) was observed now.

        The permit's entries keep counting for ``window + guard`` from now.

        Args:
            permit: a permit from this limiter's :meth:`acquire`, released once.
            rate_limited: the server answered 429.
            retry_after: the server's ``Retry-After`` in seconds, when it sent one.

        Raises:
            ValueError: the permit is not from this limiter or was released already.
        """
        self.release_nowait(permit, rate_limited=rate_limited, retry_after=retry_after)

    def release_nowait(
        self,
        permit: Permit,
        *,
        rate_limited: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Do what :meth:`release` does, synchronously (usable from ``finally`` blocks).

        Args:
            permit: a permit from this limiter's :meth:`acquire`, released once.
            rate_limited: the server answered 429.
            retry_after: the server's ``Retry-After`` in seconds, when it sent one.

        Raises:
            ValueError: the permit is not from this limiter or was released already.
        """
        ticket = permit.handle
        if not isinstance(ticket, _Ticket) or ticket.limiter is not self:
            raise ValueError("permit was not issued by this limiter")
        if not ticket.open:
            raise ValueError("permit was released already")
        ticket.open = False
        if self._closed:
            return
        now = self._now()
        key = ticket.key
        log = self._logs[key]
        if rate_limited:
            self._on_rate_limited(permit, log, now, retry_after)
        elif self._limits.adaptive:
            self._note_accepted(now)
        self._total.release(now)
        expiry = log.release(now)
        self._note_expiry(expiry, key)
        queue = self._queues.get(key)
        if queue is not None and queue.state != _READY:
            self._mark_dirty(queue)
        if self._queued:
            self._kick()
        else:
            self._arm(now)

    async def estimate(self, schedule_id: str | None = None) -> float:
        """Seconds a new request would wait if it asked now, without asking.

        It counts the waiters already queued that may go before it, assumes
        the requests in flight are answered now, and never promises: a forecast
        good enough to tell a user "queued, about 40 s".

        Args:
            schedule_id: the scheduleId it would be for; None for a fresh one.

        Returns:
            Seconds (0 when it would start now).
        """
        now = self._now()
        return max(0.0, self._expected_start(schedule_id, 0, False, now) - now)

    def stats(self) -> LimiterStats:
        """A snapshot of the limiter's state."""
        now = self._now()
        self._recover(now)
        total = self._total
        return LimiterStats(
            queued=self._queued,
            in_flight=total.in_flight,
            total_used=total.used(now),
            total_limit=self._total_policy.limit,
            schedule_ids=len(self._logs),
            next_free=max(0.0, total.earliest(now) - now),
            rate_limited=self._rate_limited,
            mode=self._total_policy.mode,
        )

    async def aclose(self) -> None:
        """Stop the dispatcher; waiters still queued get ``asyncio.CancelledError``."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._kick_handle is not None:
            self._kick_handle.cancel()
            self._kick_handle = None
        for queue in self._queues.values():
            for _, _, waiter in queue.heap:
                if waiter.alive:
                    waiter.alive = False
                    waiter.future.cancel()
        self._queues.clear()
        self._ready.clear()
        self._timed.clear()
        self._deadlines.clear()
        self._dirty.clear()
        self._by_priority.clear()
        self._queued = self._ready_live = 0

    # -- time ---------------------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("RateLimiter is bound to a different event loop")
        return loop

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        if self._loop is not None:
            return self._loop.time()
        # Never used yet: nothing is recorded, so every moment reads the same.
        return 0.0

    # -- queueing -----------------------------------------------------------

    def _enqueue(
        self,
        key: str,
        loop: asyncio.AbstractEventLoop,
        priority: int,
        requeue: bool,
        deadline: float,
    ) -> _Waiter:
        queue = self._queues.get(key)
        if queue is None:
            log = self._logs.get(key)
            if log is None:
                log = self._logs[key] = SlidingLog(self._schedule_policy)
            queue = self._queues[key] = _Queue(key, log)
        if requeue:
            seq = self._requeue_seq
            self._requeue_seq += 1
            batch = -1
        else:
            seq = self._seq
            self._seq += 1
            batch = self._batch
        waiter = _Waiter(
            loop.create_future(), queue, priority=priority, seq=seq, batch=batch, deadline=deadline
        )
        heapq.heappush(queue.heap, (-priority, seq, waiter))
        queue.live += 1
        if queue.state <= _READY:
            self._ready_live += 1
        self._queued += 1
        by_priority = self._by_priority
        by_priority[priority] = by_priority.get(priority, 0) + 1
        if deadline != math.inf:
            heapq.heappush(self._deadlines, (deadline, seq, waiter))
        self._dirty[key] = queue
        if self._kick_handle is None:
            self._kick()
        return waiter

    def _mark_dirty(self, queue: _Queue) -> None:
        self._dirty[queue.key] = queue

    def _forget(self, waiter: _Waiter) -> None:
        """Take a live waiter out of the counts (granted, cancelled or timed out)."""
        waiter.alive = False
        queue = waiter.queue
        queue.live -= 1
        if queue.state <= _READY:
            self._ready_live -= 1
        self._queued -= 1
        count = self._by_priority[waiter.priority] - 1
        if count:
            self._by_priority[waiter.priority] = count
        else:
            del self._by_priority[waiter.priority]

    def _abandon(self, waiter: _Waiter) -> None:
        """Undo a waiter whose caller was cancelled: leave the queue, or give the permit back."""
        future = waiter.future
        if waiter.alive:
            self._forget(waiter)
            self._settle(waiter.queue)
            return
        if future.done() and not future.cancelled() and future.exception() is None:
            # Granted, but the caller was cancelled before it could send: nothing
            # reached the server, so the entries are given back, not released.
            permit = future.result()
            ticket = permit.handle
            assert isinstance(ticket, _Ticket)  # noqa: S101 - our own handle type
            ticket.open = False  # the caller never saw it, so nobody else can release it
            self._total.revoke()
            log = self._logs[ticket.key]
            log.revoke()
            queue = self._queues.get(ticket.key)
            if queue is None:
                self._retire(ticket.key, log, self._now())
            elif queue.state != _READY:
                # Its scheduleId's level has room again: a waiter parked there (held by
                # in-flight requests, so no timer) must be looked at, as after a release.
                self._mark_dirty(queue)
            if self._queued:
                self._kick()

    def _settle(self, queue: _Queue) -> None:
        """After a waiter left ``queue``: drop the queue when empty, else re-rank it."""
        if queue.live == 0:
            self._drop_queue(queue)
            if self._queued:
                self._kick()
        else:
            queue.compact()
            self._mark_dirty(queue)
            self._kick()

    def _drop_queue(self, queue: _Queue) -> None:
        if queue.state <= _READY:
            self._ready_live -= queue.live
        queue.state = _NEW
        queue.version = -1  # stale in every heap
        # A queue is dropped once: only live waiters lead here, and a dropped
        # queue has none.
        del self._queues[queue.key]
        self._dropped_queues += 1
        if self._dropped_queues > _REBUILD_AFTER and self._dropped_queues > len(self._queues):
            self._queues = dict(self._queues)
            self._dropped_queues = 0
        self._retire(queue.key, queue.log, self._now())

    def _place(self, queue: _Queue, now: float) -> None:
        """Put a queue where its scheduleId's log says it belongs: ready, timed or blocked."""
        if queue.live == 0:
            self._drop_queue(queue)
            return
        at = queue.log.earliest(now)
        if queue.state <= _READY:
            self._ready_live -= queue.live
        self._version += 1
        queue.version = version = self._version
        if at <= now + _SNAP:
            queue.state = _READY
            self._ready_live += queue.live
            head = queue.head()
            heapq.heappush(
                self._ready, (-head.priority, head.batch, -queue.live, head.seq, version, queue)
            )
        elif at != math.inf:
            queue.state = _TIMED
            heapq.heappush(self._timed, (at, version, queue))
        else:
            queue.state = _BLOCKED

    # -- the dispatcher -----------------------------------------------------

    def _kick(self) -> None:
        if self._kick_handle is None and self._loop is not None and not self._closed:
            self._kick_handle = self._loop.call_soon(self._on_kick)

    def _on_kick(self) -> None:
        self._kick_handle = None
        self._run(self._now())

    def _on_timer(self) -> None:
        self._timer = None
        now = self._now()
        if self._timer_at - _SNAP <= now < self._timer_at:
            now = self._timer_at
        self._timer_at = math.inf
        self._run(now)

    def _run(self, now: float) -> None:
        """Grant what may go now, fail what timed out, drop idle keys, and set the one timer."""
        # Waiters that arrive from here on form a new batch: they rank after
        # everyone this run sees.
        self._batch += 1
        if self._episode_open and self._total.paused_until <= now + _SNAP:
            self._resolve_episode()
        self._recover(now)
        dirty, self._dirty = self._dirty, {}
        for queue in dirty.values():
            if self._queues.get(queue.key) is queue:
                self._place(queue, now)
        timed = self._timed
        while timed and timed[0][0] <= now + _SNAP:
            _, version, queue = heapq.heappop(timed)
            if queue.version == version:
                self._place(queue, now)
        self._grant(now)
        self._compact_ready()
        self._expire_deadlines(now)
        self._sweep(now)
        self._arm(now)

    def _grant(self, now: float) -> None:
        ready = self._ready
        total = self._total
        # Grants the API user's log admits without another look: within one run
        # its pause and spacing stay as they are, so only the count can fill up.
        room = 0
        while ready:
            if room <= 0:
                if total.earliest(now) > now + _SNAP:
                    return
                # Smooth spacing admits one at a time; a count within _SNAP of an
                # expiry admits one, then looks again.
                room = 1 if total.policy.spacing else max(1, total.room(now))
            entry = heapq.heappop(ready)
            queue = entry[-1]
            if queue.version != entry[-2] or queue.state != _READY:
                continue
            log = queue.log
            if log.earliest(now) > now + _SNAP:  # pragma: no cover - defensive
                # Every change that delays a log re-places its queue before
                # this loop runs; should one be missed, re-place rather than
                # grant past the scheduleId's limit.
                self._place(queue, now)
                continue
            waiter = queue.head()
            heapq.heappop(queue.heap)
            self._forget(waiter)
            future = waiter.future
            if future.done():
                # Its caller was cancelled a moment ago and has not run yet.
                self._place(queue, now)
                continue
            total.add(now)
            log.add(now)
            room -= 1
            serial = self._grants
            self._grants = serial + 1
            future.set_result(
                Permit(
                    schedule_id=queue.key,
                    acquired_at=now,
                    handle=_Ticket(self, queue.key, serial),
                )
            )
            self._place(queue, now)

    def _compact_ready(self) -> None:
        """Drop stale ready entries once they dominate, so the heap stays linear in what is live."""
        ready = self._ready
        if len(ready) > 64 and len(ready) > 4 * len(self._queues):
            self._ready = [e for e in ready if e[-1].version == e[-2]]
            heapq.heapify(self._ready)

    def _expire_deadlines(self, now: float) -> None:
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now + _SNAP:
            _, _, waiter = heapq.heappop(deadlines)
            if not waiter.alive:
                continue
            self._forget(waiter)
            if waiter.future.done():
                self._settle(waiter.queue)
                continue
            expected = max(
                0.0, self._expected_start(waiter.queue.key, waiter.priority, False, now) - now
            )
            waiter.future.set_exception(
                QueueTimeoutError(
                    f"no permit within queue_timeout; expected further wait {_seconds(expected)}",
                    expected_wait=expected,
                )
            )
            self._settle(waiter.queue)

    def _arm(self, now: float) -> None:
        """Set the one timer to the earliest moment a waiter could go or time out."""
        while self._timed and self._timed[0][2].version != self._timed[0][1]:
            heapq.heappop(self._timed)
        deadlines = self._deadlines
        while deadlines and not deadlines[0][2].alive:
            heapq.heappop(deadlines)
        if len(deadlines) > 2 * self._queued + 64:
            # Granted waiters behind a live one with an earlier deadline: forget them now,
            # not when their deadline would have come (each holds its future and permit).
            self._deadlines = deadlines = [e for e in deadlines if e[2].alive]
            heapq.heapify(deadlines)
        wake = math.inf
        if self._ready or self._timed:
            opens = now if self._ready else self._timed[0][0]
            wake = max(self._total.earliest(now), opens)
        if self._deadlines:
            wake = min(wake, self._deadlines[0][0])
        policy = self._total_policy
        if self._queued and policy.limit < policy.base_limit:
            next_step = self._recover_from + (_QUIET_WINDOWS + 1) * policy.hold
            wake = min(wake, max(now, next_step))
        if len(self._sweep_times) and (wake == math.inf or len(self._sweep_times) > _REBUILD_AFTER):
            # Nothing waits, or many keys went idle while one waits for long: wake
            # when the oldest idle key can be dropped, so memory returns to what is
            # live without anyone polling.
            wake = min(wake, max(self._sweep_times.first(), now))
        elif wake == math.inf and len(self._accepted):
            # All keys are gone; the adaptive memory of acceptances goes last.
            horizon = _ACCEPTED_WINDOWS * policy.hold
            wake = max(self._accepted.first() + horizon, now)
        if wake == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = wake
        if wake != math.inf and self._loop is not None:
            when = wake if self._clock is None else self._loop.time() + (wake - now)
            self._timer = self._loop.call_at(when, self._on_timer)

    # -- idle keys ----------------------------------------------------------

    def _note_expiry(self, expiry: float, key: str) -> None:
        times = self._sweep_times
        if len(times) and times.last() > expiry:
            expiry = times.last()
        times.append(expiry)
        self._sweep_keys.append(key)

    def _retire(self, key: str, log: SlidingLog, now: float) -> None:
        """Drop a scheduleId with no waiters once its log holds nothing that counts."""
        if log.in_flight:
            return  # its release will note an expiry
        if log.is_idle(now):
            del self._logs[key]
            self._dropped_logs += 1
            if self._dropped_logs > _REBUILD_AFTER and self._dropped_logs > len(self._logs):
                self._logs = dict(self._logs)
                self._dropped_logs = 0
        elif log.idle_at() > log.last_expiry:
            # Held by a pause or smooth spacing past its last entry: look again then.
            self._note_expiry(log.idle_at(), key)

    def _sweep(self, now: float) -> None:
        self._total.answered(now)  # prunes the API user's log too, even when nobody asks
        self._forget_accepted(now)
        times, keys = self._sweep_times, self._sweep_keys
        while len(times) and times.first() <= now:
            at = times.popleft()
            key = keys.popleft()
            log = self._logs.get(key)
            if log is None or key in self._queues or log.in_flight:
                continue
            if log.last_expiry > at:
                continue  # a later release of this key has its own sweep entry
            self._retire(key, log, now)

    # -- 429 handling ---------------------------------------------------------

    def _on_rate_limited(
        self, permit: Permit, log: SlidingLog, now: float, retry_after: float | None
    ) -> None:
        """Pause the level a 429 hit; at the API user's level, open an adaptive episode.

        Called before the permit's entries are released, so both logs still
        count the rejected request itself.
        """
        self._rate_limited += 1
        limits = self._limits
        if retry_after is None:
            # No Retry-After: treat the window as full from now on.
            pause = limits.window + limits.guard
        else:
            pause = min(max(retry_after, 0.0), limits.effective_retry_after_cap)
        if log.used(now) >= log.policy.limit:
            # The scheduleId's own log is full: blame that level, not the whole user.
            log.pause(now + pause)
            queue = self._queues.get(permit.schedule_id)
            if queue is not None:
                self._mark_dirty(queue)
            return
        self._total.pause(now + pause)
        self._recover_from = now
        ticket = permit.handle
        assert isinstance(ticket, _Ticket)  # noqa: S101 - checked by release_nowait
        if limits.adaptive and not self._episode_open and ticket.serial >= self._episode_start:
            # Requests granted before the last change are that episode's; they
            # teach nothing new. This one opens an episode, judged once the
            # pause is over and the rest of its burst has answered.
            self._episode_open = True
            self._episode_start = self._grants

    def _note_accepted(self, now: float) -> None:
        """Remember when the server accepted a request, for three windows (adaptive only)."""
        self._forget_accepted(now)
        self._accepted.append(now)

    def _forget_accepted(self, now: float) -> None:
        """Drop acceptances older than the three windows an episode is judged on."""
        accepted = self._accepted
        horizon = now - _ACCEPTED_WINDOWS * self._total_policy.hold
        # At the horizon too: the timer wakes exactly then, and must find it gone.
        while len(accepted) and accepted.first() <= horizon + _SNAP:
            accepted.popleft()

    def _accepted_peak(self) -> int:
        """The most acceptances of ours the server's window held in the remembered span."""
        times = self._accepted.values()
        window = self._total_policy.window
        peak = start = 0
        for end, at in enumerate(times):
            while times[start] <= at - window:
                start += 1
            peak = max(peak, end - start + 1)
        return peak

    def _resolve_episode(self) -> None:
        """Learn from a 429 at the API user's level that our own traffic cannot explain.

        For a sliding-log server to refuse a request it must have counted
        ``total`` others in its window. Our log holds every request of ours
        that could be there and never admits that many besides it, so such a
        429 is evidence: of foreign load on the same API user (or a lower
        limit than configured), or of a server that counts differently (a
        weighted sliding-window counter overruns bursts). The acceptances of
        the last three windows tell them apart. If the server never took the
        full limit from us in one window, the budget is smaller: lower the
        effective limit to the most it took (at most halving it per episode).
        If it did, the way we sent was the problem: pace sends evenly
        (smooth), which every server type accepts; already smooth, step the
        limit down by one.
        """
        self._episode_open = False
        policy = self._total_policy
        peak = self._accepted_peak()
        if peak < policy.limit:
            lowered = max(1, peak, policy.limit // 2)
            logger.warning(
                "429s although our own requests cannot fill the window: the server took"
                " at most %d of ours per %gs; lowering the limit from %d to %d (foreign"
                " load on this API user?), raising it by 1 per %gs after %d quiet windows",
                peak,
                policy.window,
                policy.limit,
                lowered,
                policy.hold,
                _QUIET_WINDOWS,
            )
            policy.limit = lowered
        elif policy.mode == "exact":
            policy.mode = "smooth"
            logger.warning(
                "429s although the server took a full window of %d from us: it counts"
                " bursts differently (a sliding-window counter?); pacing sends %.3gs"
                " apart from now on",
                peak,
                policy.spacing,
            )
        else:
            logger.warning(
                "429s while pacing: lowering the limit from %d to %d per %gs",
                policy.limit,
                policy.limit - 1,
                policy.window,
            )
            policy.limit = max(1, policy.limit - 1)

    def _recover(self, now: float) -> None:
        """Additive increase: after a quiet spell, one more request per ``window + guard``.

        A probe above the budget costs a paused window, so probing starts only
        after ``_QUIET_WINDOWS`` windows without a 429 at the API user's level.
        """
        policy = self._total_policy
        if policy.limit >= policy.base_limit:
            return
        steps = int((now - self._recover_from) // policy.hold) - _QUIET_WINDOWS
        if steps > 0:
            policy.limit = min(policy.base_limit, policy.limit + steps)
            self._recover_from += steps * policy.hold
            if policy.limit == policy.base_limit:
                logger.info("no 429 for a while: limit back to %d", policy.limit)

    # -- forecasts ----------------------------------------------------------

    def _expected_start(self, key: str | None, priority: int, requeue: bool, now: float) -> float:
        """When a new request would start, counting the waiters that go before it."""
        self._recover(now)
        if requeue:
            ahead = sum(n for p, n in self._by_priority.items() if p > priority)
        else:
            ahead = sum(n for p, n in self._by_priority.items() if p >= priority)
        # Waiters held by their own scheduleId do not take the API user's places
        # first; only the ready ones surely do.
        at = self._total.slot_time(now, min(ahead, self._ready_live))
        if key is not None:
            log = self._logs.get(key)
            if log is not None:
                queue = self._queues.get(key)
                mine = 0 if queue is None or requeue else queue.live
                at = max(at, log.slot_time(now, mine))
        return at


def _seconds(value: float) -> str:
    return f"{value:.1f}s"
