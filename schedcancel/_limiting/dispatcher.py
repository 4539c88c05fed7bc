"""The one dispatcher: who waits, in what order, and what happens to them. Pure.

Both limiters queue through this module; only their *store* differs (memory
over ``window``, or Redis over the scripts in ``lua/``). The dispatcher never
reads a clock, sleeps or does I/O: every method takes ``now``, and the driver
in ``limiter`` asks the store between `Dispatcher.take()` and
`Dispatcher.settle()`.

* Waiters queue per scheduleId, best first by ``(-priority, seq)``; requests
  with no scheduleId (``start``, key None) share one queue that only the API
  user's level holds back, and rank as if alone (a pending count of 1). A
  scheduleId is *ready* unless the store said it is held (by its own log, a
  pause, spacing) until some time, or until a release (``math.inf``).
* Among ready scheduleIds the next candidate is the head waiter with the best
  ``(-priority, batch, -pending, seq)``: higher priority first; waiters that
  arrived together (one driver turn, a *batch*) before later ones, so a
  newcomer never overtakes a waiter already queued at its priority; inside a
  batch the scheduleId with the most pending requests first, which is what
  reaches the two-limit lower bound ``(max(ceil(M/N), max_k ceil(m_k/K)) - 1)
  * window``; then FIFO. A request back from a 429 (``requeue``) sorts before
  every ordinary waiter of its priority.
* `take()` hands the driver up to ``n`` candidates in that order; the
  store tries them in order and stops at the first one the API user's level
  refuses; `settle()` grants, or puts everyone else back in their place
  and remembers the holds the store reported. Requests held by their
  scheduleId never hold back other scheduleIds.
* A ``queue_timeout`` fails at once when a known hold outlasts it, else at its
  deadline; a waiter whose caller was cancelled leaves and uses nothing.

Granting, pushes and pops are O(log n) in the queued scheduleIds; dead entries
are dropped lazily and compacted once they dominate, so memory follows what is
live.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import Callable, Sequence
from typing import Final

import attrs

from .._protocol.models import Permit
from ..errors import QueueTimeoutError

__all__ = ["Answer", "Dispatcher", "Waiter"]

# A timer may fire a hair before the moment it was set for (clock resolution,
# looptime's microsecond grid); within this tolerance a moment counts as reached.
SNAP = 1e-6

# Requeued waiters (back from a 429) sort before every ordinary waiter of their
# priority, and FIFO among themselves.
_REQUEUE_BASE = -(1 << 62)


@attrs.frozen
class Answer:
    """What a store says about one round of candidates, tried in order.

    Attributes:
        handles: per candidate tried: the store's handle when granted, else None.
        waits: per candidate tried and not granted: seconds its scheduleId holds
            it (0: not held by it; ``math.inf``: until a release).
        user_wait: seconds until the API user's level admits one more (0: now;
            ``math.inf``: until a release). Candidates after the last one tried
            were not tried: the API user's level refused.
        background_wait: seconds until the API user's level admits one more
            *background* call (priority < 0; 0: now or not asked). When it
            refused one, the candidates after it (all background, by rank)
            were not tried.
    """

    handles: Sequence[object | None]
    waits: Sequence[float]
    user_wait: float
    background_wait: float = 0.0


class Waiter:
    """One ``acquire`` call waiting for its permit."""

    __slots__ = ("alive", "batch", "deadline", "future", "priority", "queue", "seq", "taken")

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
        self.alive = True  # not yet granted, failed or abandoned
        self.taken = False  # out in a round the store is answering


# Heap entries are plain tuples (they compare field by field, and a tuple is the
# cheapest thing to build per waiter); these name the fields read back.
#: A scheduleId's waiters ``(-priority, seq, waiter)``; deadlines ``(deadline, seq, waiter)``.
_DEADLINE: Final = 0
_WAITER: Final = 2
#: Ready scheduleIds: ``(-priority, batch, -pending, seq, version, queue)``; a rank
#: above 0 is a background waiter (priority < 0).
_RANK: Final = 0
_READY_VERSION: Final = 4
_READY_QUEUE: Final = 5
#: Held scheduleIds: ``(until, version, queue)``.
_UNTIL: Final = 0
_HELD_VERSION: Final = 1
_HELD_QUEUE: Final = 2


class _Queue:
    """The waiters of one scheduleId, best first: ``(-priority, seq)``."""

    __slots__ = ("blocked_until", "heap", "key", "live", "taken", "version")

    def __init__(self, key: str | None) -> None:
        self.key = key
        self.heap: list[tuple[int, int, Waiter]] = []
        self.live = 0  # alive waiters in ``heap``
        self.taken = 0  # waiters out in a round
        self.blocked_until = 0.0  # 0: ready; else held until then (inf: until a release)
        self.version = 0

    def head(self) -> Waiter | None:
        """The best live waiter; dead ones (cancelled, timed out) are dropped on the way."""
        heap = self.heap
        while heap and not heap[0][_WAITER].alive:
            heapq.heappop(heap)
        return heap[0][_WAITER] if heap else None

    def compact(self) -> None:
        """Forget dead waiters once they outnumber the live ones."""
        if len(self.heap) > 2 * self.live + 8:
            self.heap = [entry for entry in self.heap if entry[_WAITER].alive]
            heapq.heapify(self.heap)


class Dispatcher:
    """The wait queue of one limiter: ranking, holds, deadlines, cancellation.

    Args:
        make_permit: turns a granted candidate's key, store handle and the
            grant time into the [`Permit`][schedcancel.Permit] its caller receives.
        give_back: takes back a store handle granted to a caller that left
            (its request was never sent).
        expected_wait: forecasts the further wait of a waiter (key, priority,
            now) whose deadline passed, for its error.
    """

    def __init__(
        self,
        make_permit: Callable[[str | None, object, float], Permit],
        give_back: Callable[[str | None, object], None],
        expected_wait: Callable[[str | None, int, float], float],
    ) -> None:
        self._make_permit = make_permit
        self._give_back = give_back
        self._expected_wait = expected_wait
        self.queues: dict[str | None, _Queue] = {}
        # Ready scheduleIds: (-priority, batch, -pending, seq, version, queue).
        self.ready: list[tuple[int, int, int, int, int, _Queue]] = []
        # scheduleIds held until a known time: (until, version, queue).
        self.held: list[tuple[float, int, _Queue]] = []
        self.deadlines: list[tuple[float, int, Waiter]] = []
        self.user_blocked_until = 0.0
        # Background waiters (priority < 0) may be held longer: paced, and kept out
        # of the places reserved for the others.
        self.background_blocked_until = 0.0
        self.queued = 0  # alive waiters, taken ones included
        self.ready_live = 0  # alive waiters in the heaps of ready scheduleIds
        self.by_priority: dict[int, int] = {}
        self._seq = 0
        self._requeue_seq = _REQUEUE_BASE
        self._batch = 0
        self._version = 0

    # -- arrivals and departures ----------------------------------------------

    def enqueue(
        self,
        key: str | None,
        future: asyncio.Future[Permit],
        *,
        priority: int,
        requeue: bool,
        deadline: float,
    ) -> Waiter:
        """Queue a waiter for ``key``; the driver's next `take()` sees it."""
        queue = self.queues.get(key)
        if queue is None:
            queue = self.queues[key] = _Queue(key)
        if requeue:
            seq, batch = self._requeue_seq, -1
            self._requeue_seq += 1
        else:
            seq, batch = self._seq, self._batch
            self._seq += 1
        waiter = Waiter(future, queue, priority=priority, seq=seq, batch=batch, deadline=deadline)
        self.queued += 1
        self.by_priority[priority] = self.by_priority.get(priority, 0) + 1
        if deadline != math.inf:
            heapq.heappush(self.deadlines, (deadline, seq, waiter))
        self._push(queue, waiter)
        return waiter

    def abandon(self, waiter: Waiter) -> bool:
        """Take out a waiter whose caller was cancelled.

        Returns:
            True when it had been granted (its caller never used the permit:
            the limiter gives the store's entries back).
        """
        if waiter.alive:
            self._forget(waiter)
            if not waiter.taken:
                queue = waiter.queue
                queue.live -= 1
                if not queue.blocked_until:
                    self.ready_live -= 1
                self._settle_queue(queue)
            return False
        future = waiter.future
        return future.done() and not future.cancelled() and future.exception() is None

    def _push(self, queue: _Queue, waiter: Waiter) -> None:
        heapq.heappush(queue.heap, (-waiter.priority, waiter.seq, waiter))
        queue.live += 1
        if not queue.blocked_until:
            self.ready_live += 1
            self._rank(queue)

    def _forget(self, waiter: Waiter) -> None:
        """Take an alive waiter out of the counts (granted, failed or abandoned)."""
        waiter.alive = False
        self.queued -= 1
        count = self.by_priority[waiter.priority] - 1
        if count:
            self.by_priority[waiter.priority] = count
        else:
            del self.by_priority[waiter.priority]
        if waiter.deadline != math.inf and len(self.deadlines) > 2 * self.queued + 64:
            # Finished waiters stay in the heap until they surface; forget them once
            # they dominate, so memory follows what is live (each holds a future).
            self.deadlines = [e for e in self.deadlines if e[_WAITER].alive]
            heapq.heapify(self.deadlines)

    def _settle_queue(self, queue: _Queue) -> None:
        """After a waiter left ``queue``: drop the queue when empty, else re-rank it."""
        if queue.live == 0 and queue.taken == 0:
            self._drop(queue)
        else:
            queue.compact()
            if not queue.blocked_until:
                self._rank(queue)

    def _drop(self, queue: _Queue) -> None:
        queue.version = -1  # stale in every heap
        if self.queues.get(queue.key) is queue:
            del self.queues[queue.key]
            if len(self.queues) == 0:
                # A dict keeps its table at its peak size; start afresh when empty.
                self.queues = {}

    def _rank(self, queue: _Queue) -> None:
        """(Re)place a ready queue in the ready heap under its head waiter's rank."""
        head = queue.head()
        if head is None:
            return
        self._version += 1
        queue.version = version = self._version
        ready = self.ready
        # Most pending first serves the per-scheduleId bound; requests with no
        # scheduleId have none, so their queue ranks as one request.
        pending = queue.live if queue.key is not None else 1
        heapq.heappush(ready, (-head.priority, head.batch, -pending, head.seq, version, queue))
        if len(ready) > 64 and len(ready) > 4 * len(self.queues):
            # Re-ranked queues leave stale entries behind; keep memory linear in what is live.
            self.ready = [e for e in ready if e[_READY_QUEUE].version == e[_READY_VERSION]]
            heapq.heapify(self.ready)

    # -- holds ------------------------------------------------------------------

    def hold(self, key: str | None, until: float) -> None:
        """The store says ``key`` admits nothing before ``until`` (``inf``: a release)."""
        queue = self.queues.get(key)
        if queue is None or until <= queue.blocked_until:
            return
        if not queue.blocked_until:
            self.ready_live -= queue.live
        self._version += 1
        queue.version = self._version
        queue.blocked_until = until
        if until != math.inf:
            heapq.heappush(self.held, (until, queue.version, queue))

    def unhold(self, key: str | None, *, only_unknown: bool = False) -> None:
        """``key`` may admit earlier than the store said (a release, a give-back).

        Args:
            key: the scheduleId (None: the requests without one).
            only_unknown: lift only a hold "until a release" (``inf``).
        """
        queue = self.queues.get(key)
        if queue is None or not queue.blocked_until:
            return
        if only_unknown and queue.blocked_until != math.inf:
            return
        queue.blocked_until = 0.0
        self.ready_live += queue.live
        self._rank(queue)

    def hold_user(self, until: float) -> None:
        """The API user's level admits nothing before ``until`` (``inf``: a release)."""
        self.user_blocked_until = max(self.user_blocked_until, until)

    def unhold_user(self, *, only_unknown: bool = False) -> None:
        """The API user's level may admit earlier than the store said (background too)."""
        if not only_unknown or self.user_blocked_until == math.inf:
            self.user_blocked_until = 0.0
        if not only_unknown or self.background_blocked_until == math.inf:
            self.background_blocked_until = 0.0

    # -- the driver's round ----------------------------------------------------

    def take(self, now: float, n: int) -> list[Waiter]:
        """Up to ``n`` candidates, best first, for the store to try in this order.

        Waiters that arrive from here on form a new batch: they rank after
        everyone this round saw.
        """
        self._batch += 1
        held = self.held
        while held and held[0][_UNTIL] <= now + SNAP:
            _, version, queue = heapq.heappop(held)
            if queue.version == version:
                self.unhold(queue.key)
        if now + SNAP < self.user_blocked_until:
            return []
        background_held = now + SNAP < self.background_blocked_until
        taken: list[Waiter] = []
        while self.ready and len(taken) < n:
            # Not a local: re-ranking below may compact the heap into a new list.
            if background_held and self.ready[0][_RANK] > 0:
                break  # background by rank from here on (-priority > 0), and held
            entry = heapq.heappop(self.ready)
            queue = entry[_READY_QUEUE]
            if queue.version != entry[_READY_VERSION] or queue.blocked_until:
                continue
            waiter = queue.head()
            if waiter is None:
                continue
            heapq.heappop(queue.heap)
            queue.live -= 1
            self.ready_live -= 1
            if waiter.future.done():
                # Its caller was cancelled a moment ago and has not run yet.
                self._forget(waiter)
                self._settle_queue(queue)
                continue
            waiter.taken = True
            queue.taken += 1
            taken.append(waiter)
            # The scheduleId competes for the next place with its next waiter.
            self._rank(queue)
        return taken

    def settle(self, taken: Sequence[Waiter], answer: Answer, now: float) -> None:
        """Grant what the store granted; put everyone else back in their place.

        Args:
            taken: the candidates from `take()`, in the same order.
            answer: the store's answer for them.
            now: when the answer came.
        """
        handles, waits = answer.handles, answer.waits
        touched: dict[str | None, _Queue] = {}
        for index, waiter in enumerate(taken):
            queue = waiter.queue
            waiter.taken = False
            queue.taken -= 1
            touched[queue.key] = queue
            handle = handles[index] if index < len(handles) else None
            if handle is not None:
                if waiter.alive and not waiter.future.done():
                    self._forget(waiter)
                    waiter.future.set_result(self._make_permit(queue.key, handle, now))
                else:
                    if waiter.alive:
                        self._forget(waiter)
                    self._give_back(queue.key, handle)  # its caller left while we asked
                continue
            wait = waits[index] if index < len(waits) else 0.0
            if wait > 0:
                self.hold(queue.key, now + wait)
            if waiter.alive:
                self._push(queue, waiter)  # back in line, same place
        for queue in touched.values():
            if queue.blocked_until and queue.blocked_until != math.inf:
                self._expire_known(queue.blocked_until, now, queue)
            self._settle_queue(queue)
        self._hold_levels(answer, now)

    def _hold_levels(self, answer: Answer, now: float) -> None:
        """Remember the API user's holds in an answer; fail the deadlines they outlast."""
        if answer.user_wait > 0:
            self.hold_user(now + answer.user_wait)
            if self.user_blocked_until != math.inf:
                self._expire_known(self.user_blocked_until, now, None)
        if answer.background_wait > 0:
            until = now + answer.background_wait
            self.background_blocked_until = max(self.background_blocked_until, until)
            if until != math.inf:
                self._expire_known(until, now, None, background=True)

    # -- deadlines -------------------------------------------------------------

    def expire(self, now: float) -> None:
        """Fail the waiters whose ``queue_timeout`` ran out (not those out in a round)."""
        out: list[tuple[float, int, Waiter]] = []
        # self.deadlines each time: failing a waiter may compact it into a new list.
        while self.deadlines and self.deadlines[0][_DEADLINE] <= now + SNAP:
            entry = heapq.heappop(self.deadlines)
            waiter = entry[_WAITER]
            if waiter.alive and waiter.taken:
                out.append(entry)  # the store may grant it; judged again after settle
            elif waiter.alive:
                self._fail(waiter, math.nan, now)
        for entry in out:
            heapq.heappush(self.deadlines, entry)

    def _expire_known(
        self, until: float, now: float, queue: _Queue | None, *, background: bool = False
    ) -> None:
        """Fail at once the waiters whose deadline comes before a known hold ends.

        Args:
            until: when the hold ends.
            now: the current time.
            queue: only this scheduleId's waiters; None: every waiter.
            background: only background waiters (priority < 0).
        """
        if queue is not None:
            for _, _, waiter in queue.heap:
                if waiter.alive and waiter.deadline < until:
                    self._fail(waiter, until - now, now)
            return
        out: list[tuple[float, int, Waiter]] = []
        while self.deadlines and self.deadlines[0][_DEADLINE] < until:
            entry = heapq.heappop(self.deadlines)
            waiter = entry[_WAITER]
            if waiter.alive and (waiter.taken or (background and waiter.priority >= 0)):
                out.append(entry)
            elif waiter.alive:
                self._fail(waiter, until - now, now)
        for entry in out:
            heapq.heappush(self.deadlines, entry)

    def _fail(self, waiter: Waiter, expected: float, now: float) -> None:
        self._forget(waiter)
        queue = waiter.queue
        queue.live -= 1
        if not queue.blocked_until:
            self.ready_live -= 1
        if not waiter.future.done():
            if math.isnan(expected):
                expected = self._expected_wait(queue.key, waiter.priority, now)
                message = f"no permit within queue_timeout; expected further wait {expected:.1f}s"
            else:
                message = (
                    f"the limits admit no request for {expected:.3f}s, "
                    "longer than queue_timeout allows"
                )
            waiter.future.set_exception(QueueTimeoutError(message, expected_wait=expected))
        self._settle_queue(queue)

    # -- what the driver and forecasts need ----------------------------------

    def known_start(self, key: str | None, now: float, priority: int = 0) -> float:
        """The earliest start the holds known here allow (``now`` when none)."""
        at = now
        if self.user_blocked_until != math.inf:
            at = max(at, self.user_blocked_until)
        if priority < 0 and self.background_blocked_until != math.inf:
            at = max(at, self.background_blocked_until)
        queue = self.queues.get(key) if key is not None else None
        if queue is not None and queue.blocked_until != math.inf:
            at = max(at, queue.blocked_until)
        return at

    def ahead(self, priority: int, *, requeue: bool) -> int:
        """Waiters that a new one at ``priority`` would let go first."""
        if requeue:
            return sum(n for p, n in self.by_priority.items() if p > priority)
        return sum(n for p, n in self.by_priority.items() if p >= priority)

    def pending(self, key: str | None) -> int:
        """Waiters queued for ``key``."""
        queue = self.queues.get(key)
        return 0 if queue is None else queue.live + queue.taken

    def next_wake(self, now: float) -> float:
        """The earliest moment a hold ends or a deadline comes (``inf``: none)."""
        held = self.held
        while held and held[0][_HELD_QUEUE].version != held[0][_HELD_VERSION]:
            heapq.heappop(held)
        deadlines = self.deadlines
        while deadlines and not deadlines[0][_WAITER].alive:
            heapq.heappop(deadlines)
        wake = math.inf
        ready = self.ready
        while ready and ready[0][_READY_QUEUE].version != ready[0][_READY_VERSION]:
            heapq.heappop(ready)
        if ready:
            wake = max(now, self.user_blocked_until)
            if ready[0][_RANK] > 0:  # the best waiter that may go is a background one
                wake = max(wake, self.background_blocked_until)
        if held:
            wake = min(wake, max(held[0][_UNTIL], self.user_blocked_until))
        if deadlines:
            wake = min(wake, deadlines[0][_DEADLINE])
        return wake

    def waiters(self) -> list[Waiter]:
        """Every alive waiter in the heaps (not those out in a round)."""
        return [w for q in self.queues.values() for _, _, w in q.heap if w.alive]

    def fail_all(
        self, make_error: Callable[[], BaseException | None], taken: Sequence[Waiter]
    ) -> None:
        """Finish every waiter: with ``make_error()``, or cancelled when it returns None."""
        for waiter in [*self.waiters(), *(w for w in taken if w.alive)]:
            self._forget(waiter)
            if waiter.future.done():
                continue
            error = make_error()
            if error is None:
                waiter.future.cancel()
            else:
                waiter.future.set_exception(error)
        self.queues = {}
        self.ready.clear()
        self.held.clear()
        self.deadlines.clear()
        self.ready_live = 0
