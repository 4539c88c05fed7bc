"""The one limiter: a dispatcher, a store and a clock, and one driver over them.

Design, in short (docs/rate-limits.md and docs/development.md, "Design notes", have the why):

* Two levels: the API user (limit N) and every scheduleId (limit K). A
  request takes an entry in both at the same instant; entries count until
  ``window + guard`` after the response was observed (response-anchored
  release, safe under any jitter; proof in ``window.py``).
* The *store* keeps the logs: `MemoryStore` in
  this process ([`RateLimiter`][schedcancel.RateLimiter]), or Redis (``schedcancel.redis``).
* The *dispatcher* (``dispatcher.py``) keeps the waiters: ranking, holds, deadlines,
  cancellation. It is pure; `QueuedLimiter` drives it: take the best
  candidates, let the store try them, settle, and wait for ONE timer set to
  the earliest moment anything can change (a hold ending, a deadline, a
  recovery step) or for a waiter or release to arrive. No polling, no timer
  per waiter. With nothing queued, the same timer drops idle keys when their
  entries stop counting, so memory follows what is live. The driver runs in
  loop callbacks (``call_soon``, the timer, a round's answer): the in-memory
  store answers a round at once, a store that does I/O returns an awaitable
  and the driver waits for that round's answer before it asks again.
* A 429 pauses the level it hit (the scheduleId when its log is full, else
  the API user) for ``Retry-After`` (capped) or ``window + guard``; with
  ``adaptive``, the one policy of ``adaptive.py`` learns from it.
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
from collections.abc import Callable, Iterable, Sequence

import attrs

from .._protocol.models import LimiterStats, Permit, RateLimitLevel, RateLimits
from .._protocol.ratelimit_headers import RateLimitHeaders
from .._protocol.validate import check_key, check_priority, check_queue_timeout
from ..errors import BackendError, QueueTimeoutError
from .dispatcher import SNAP, Answer, Dispatcher, Waiter
from .server_state import Heard, digest
from .stores import Holds, MemoryStore, Store

__all__ = ["QueuedLimiter", "RateLimiter"]


class _Ticket:
    """The bookkeeping behind a [`Permit`][schedcancel.Permit]: whose, which key, the store's
    handle, open?"""

    __slots__ = ("handle", "key", "open", "owner")

    def __init__(self, owner: QueuedLimiter, key: str | None, handle: object) -> None:
        self.owner = owner
        self.key = key
        self.handle = handle
        self.open = True


class QueuedLimiter:
    """The [`schedcancel.Limiter`][schedcancel.Limiter] behaviour shared by every store.

    Subclasses pass their store; everything about waiting lives here and in
    ``dispatcher``, once.

    Args:
        limits: the limits to keep.
        store: where the logs live.
        clock: a monotonic clock in seconds; the running loop's ``time`` when None.
    """

    _name = "QueuedLimiter"

    def __init__(
        self, limits: RateLimits, store: Store, clock: Callable[[], float] | None = None
    ) -> None:
        self._limits = limits
        self._store = store
        self._clock = clock
        self._core = Dispatcher(self._make_permit, self._give_back, self._expected_wait)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kick_handle: asyncio.Handle | None = None
        self._asking: asyncio.Future[Answer] | None = None  # a store's round out for an answer
        self._round: Sequence[Waiter] = ()  # the waiters of that round
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = self._fired_at = math.inf
        self._closed = False

    # -- the Limiter protocol -----------------------------------------------------

    @property
    def limits(self) -> RateLimits:
        """The limits this limiter keeps."""
        return self._limits

    async def acquire(
        self,
        schedule_id: str | None,
        *,
        priority: int = 0,
        queue_timeout: float | None = None,
        requeue: bool = False,
    ) -> Permit:
        """Wait until a request for ``schedule_id`` may start, and take its entries.

        The request joins the queue even when the budget is free, and the
        driver grants on its next turn: requests that arrive together are then
        ordered by priority and pending count, not by who came first by a
        microsecond.

        Args:
            schedule_id: the scheduleId whose log is charged with the API user's;
                None for a request with no scheduleId (``start``): the API
                user's level only, never held back by a per-scheduleId limit.
            priority: higher goes first among waiters that may start.
            queue_timeout: seconds to wait at most; when the expected wait is
                already longer, fail at once.
            requeue: the request is back after a 429; it goes to the front.

        Returns:
            The permit; hand it to [`release()`][schedcancel.Limiter.release] when the response (or
            failure) came.

        Raises:
            QueueTimeoutError: not admitted within ``queue_timeout``.
            InvalidParameterError: ``schedule_id`` is not a non-empty string or None,
                ``queue_timeout`` is not a number >= 0 or ``priority`` no int.
            BackendError: the store failed.
            RuntimeError: the limiter is closed or bound to another event loop.
        """
        if schedule_id is not None:
            check_key("schedule_id", schedule_id)
        timeout = check_queue_timeout(queue_timeout)
        check_priority(priority)
        if self._closed:
            raise RuntimeError(f"{self._name} is closed")
        loop = self._bind()
        deadline = math.inf
        if timeout is not None:
            now = self._now()
            expected = self._expected_start(schedule_id, priority, requeue, now) - now
            if expected > timeout:
                raise QueueTimeoutError(
                    f"expected wait {expected:.1f}s exceeds queue_timeout {timeout:g}s",
                    expected_wait=expected,
                )
            deadline = now + timeout
        waiter = self._core.enqueue(
            schedule_id, loop.create_future(), priority=priority, requeue=requeue, deadline=deadline
        )
        self._kick()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if self._core.abandon(waiter):
                # Granted, but the caller was cancelled before it could send: nothing
                # reached the server, so the entries are given back, not released.
                ticket = waiter.future.result().handle
                assert isinstance(ticket, _Ticket)  # noqa: S101 - our own handle type
                ticket.open = False  # the caller never saw it, so nobody else can release it
                self._give_back(ticket.key, ticket.handle)
            elif self._core.queued:
                self._kick()
            raise

    async def release(
        self,
        permit: Permit,
        *,
        rate_limited: bool = False,
        retry_after: float | None = None,
    ) -> RateLimitLevel | None:
        """Report that the request's response (or failure, or cancellation) was observed now.

        The permit's entries keep counting for ``window + guard`` from now.

        Args:
            permit: a permit from this limiter's `acquire()`, released once.
            rate_limited: the server answered 429.
            retry_after: the server's ``Retry-After`` in seconds, when it sent one.

        Returns:
            After a 429, the level that was blamed and paused; None when not known.

        Raises:
            ValueError: the permit is not from this limiter or was released already.
        """
        return await self._release(permit, rate_limited, retry_after, None)

    async def release_heard(
        self, permit: Permit, headers: RateLimitHeaders, *, rate_limited: bool = False
    ) -> RateLimitLevel | None:
        """Do what `release()` does, and take in what the answer's rate-limit headers said.

        The client calls it for every answer, 429 or not (docs/rate-limits.md,
        "The server's own word"): a stated limit, the ``Remaining`` and its reset,
        the level a 429 names, and ``Retry-After``.

        Args:
            permit: a permit from this limiter's `acquire()`, released once.
            headers: the answer's rate-limit headers, parsed.
            rate_limited: the server answered 429.

        Returns:
            After a 429, the level that was blamed and paused; None when not known.

        Raises:
            ValueError: the permit is not from this limiter or was released already.
        """
        heard = digest(headers, self._limits)
        return await self._release(permit, rate_limited, headers.retry_after, heard)

    async def _release(
        self, permit: Permit, rate_limited: bool, retry_after: float | None, heard: Heard | None
    ) -> RateLimitLevel | None:
        ticket = self._close_ticket(permit)
        if self._closed:
            return None
        now = self._now()
        holds = await self._store.release(
            ticket.key, ticket.handle, now, rate_limited, retry_after, heard=heard
        )
        if heard is not None and heard.user_remaining is not None and not rate_limited:
            self._core.unhold_user()  # a reading may let more go than the holds known here
        self._released(ticket.key, holds, now)
        return holds.level

    async def estimate(self, schedule_id: str | None = None) -> float:
        """Seconds a new request would wait if it asked now, without asking.

        It counts the waiters already queued that may go before it, assumes
        the requests in flight are answered now, and never promises: a forecast
        good enough to tell a user "queued, about 40 s".

        Args:
            schedule_id: the scheduleId it would be for; None for a request
                with no per-scheduleId constraint (a fresh id, or ``start``).

        Returns:
            Seconds (0 when it would start now).
        """
        await self._store.refresh(schedule_id, self._now())
        now = self._now()
        return max(0.0, self._expected_start(schedule_id, 0, False, now) - now)

    async def aclose(self) -> None:
        """Stop the driver; waiters still queued get ``asyncio.CancelledError``.

        The store finishes what it started (releases on their way) and closes
        what it owns.
        """
        if self._closed:
            return
        self._closed = True
        self._cancel_timer()
        if self._kick_handle is not None:
            self._kick_handle.cancel()
            self._kick_handle = None
        self._core.fail_all(lambda: None, self._round)
        asking, self._asking = self._asking, None
        if asking is not None:
            asking.cancel()
            await asyncio.gather(asking, return_exceptions=True)
        await self._store.aclose()

    def stats(self) -> LimiterStats:
        """A snapshot of the limiter's state; it reads and changes nothing.

        Safe to call from another thread (a metrics exporter's): it reads
        counters and the store's logs, and changes neither.
        """
        now = self._now()
        core = self._core
        # list(): one step under the GIL, so another thread never sees the dict change size.
        stats = self._store.stats(now, list(core.queues))
        next_free = stats.next_free
        if core.user_blocked_until != math.inf:
            next_free = max(next_free, core.user_blocked_until - now)
        return attrs.evolve(
            stats,
            queued=core.queued,
            next_free=next_free,
            background_next_free=max(next_free, stats.background_next_free),
        )

    def give_back(self, permit: Permit) -> None:
        """Return a permit whose request was never sent: its entries are removed, not counted.

        Args:
            permit: a permit from this limiter's `acquire()`, not released yet.

        Raises:
            ValueError: the permit is not from this limiter or was released already.
        """
        ticket = self._close_ticket(permit)
        if not self._closed:
            self._give_back(ticket.key, ticket.handle)

    # -- the driver -------------------------------------------------------------

    def _kick(self) -> None:
        """Something changed: run a turn of the driver soon (once, however many ask)."""
        if self._kick_handle is None and self._loop is not None and not self._closed:
            self._kick_handle = self._loop.call_soon(self._run)

    def _on_timer(self) -> None:
        """The one timer fired: a hold or deadline ended, or idle keys can go."""
        self._timer = None
        self._fired_at, self._timer_at = self._timer_at, math.inf
        self._run()

    def _run(self) -> None:
        """The driver: grant what may go now, a round at a time, then set the one timer.

        It runs in loop callbacks (`_kick`, the timer, a round's answer), never
        in a task of its own. A store that answers at once (in this process)
        is asked round after round in one turn; a store that does I/O returns
        an awaitable, and the driver waits for that one round's answer
        (`_answered`) before it asks again.
        """
        self._kick_handle = None
        if self._asking is not None or self._closed:
            return  # the round out there runs the driver again when it is answered
        core, store = self._core, self._store
        now = self._snapped_now()
        if not core.queued:
            store.tick(now)  # the timer came for idle keys
        while core.queued:
            taken = self._next_round(now)
            if taken is None:
                break
            keys = [w.queue.key for w in taken]
            answer = store.acquire(keys, [w.priority < 0 for w in taken], now)
            if not isinstance(answer, Answer):
                self._round = taken
                self._asking = asyncio.ensure_future(answer)
                self._asking.add_done_callback(self._answered)
                return
            core.settle(taken, answer, now)
        self._arm(now)

    def _answered(self, asking: asyncio.Future[Answer]) -> None:
        """A store's round came back: settle it and run the driver again."""
        self._asking = None
        taken, self._round = self._round, ()
        if self._closed or asking.cancelled():
            return  # aclose() finished the waiters
        error = asking.exception()
        if error is None:
            self._core.settle(taken, asking.result(), self._now())
        elif isinstance(error, BackendError):
            self._backend_failed(error, taken)
        else:
            self._core.fail_all(lambda: error, taken)
        self._run()

    def _next_round(self, now: float) -> list[Waiter] | None:
        """Housekeeping, then the candidates the store should try now (None: nobody may go).

        Deadlines are judged once nothing more can go now: a request that may
        start is never failed for the time it took to ask.
        """
        core, store = self._core, self._store
        if store.tick(now):
            core.unhold_user()
        taken = core.take(now, store.round_size(now))
        if taken:
            return taken
        core.expire(now)
        return None

    def _backend_failed(self, exc: BackendError, taken: Sequence[Waiter]) -> None:
        """The store failed a round: every waiter gets the error (fail closed)."""

        def error() -> BaseException:
            failure = BackendError(str(exc))
            failure.__cause__ = exc.__cause__
            return failure

        self._core.fail_all(error, taken)

    def _arm(self, now: float) -> None:
        """Set the one timer to the earliest moment anything can change (or clear it)."""
        if self._loop is None or self._closed:
            return
        if self._core.queued:
            wake = min(self._core.next_wake(now), self._store.next_wake(now, queued=True))
            if wake != math.inf and self._store.jitter:
                # Processes sharing a store should not all ask at the same instant.
                wake += random.uniform(0, self._store.jitter)  # noqa: S311 - not cryptography
        else:
            wake = self._store.next_wake(now, queued=False)
        if wake == math.inf:
            self._cancel_timer()
            return
        if self._timer is not None:
            if self._timer_at == wake:
                return
            self._timer.cancel()
        self._timer_at = wake
        when = wake if self._clock is None else self._loop.time() + (wake - now)
        self._timer = self._loop.call_at(max(when, self._loop.time()), self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def _snapped_now(self) -> float:
        """The clock, raised to the timer's moment when the timer fired a hair early."""
        now = self._now()
        if self._fired_at - SNAP <= now < self._fired_at:
            now = self._fired_at
        return now

    # -- permits ------------------------------------------------------------------

    def _make_permit(self, key: str | None, handle: object, now: float) -> Permit:
        return Permit(schedule_id=key, acquired_at=now, handle=_Ticket(self, key, handle))

    def _close_ticket(self, permit: Permit) -> _Ticket:
        ticket = permit.handle
        if not isinstance(ticket, _Ticket) or ticket.owner is not self:
            raise ValueError("permit was not issued by this limiter")
        if not ticket.open:
            raise ValueError("permit was released already")
        ticket.open = False
        return ticket

    def _released(self, key: str | None, holds: Holds, now: float) -> None:
        """After a release: lift holds only a release could end, add the 429's pauses."""
        core = self._core
        core.unhold(key, only_unknown=True)
        core.unhold_user(only_unknown=True)
        if holds.user:
            core.hold_user(now + holds.user)
        if holds.key:
            core.hold(key, now + holds.key)
        if core.queued:
            self._kick()
        else:
            self._arm(now)

    def _give_back(self, key: str | None, handle: object) -> None:
        """Give a never-sent permit's entries back to the store."""
        self._store.give_back(key, handle, self._now(), lambda: self._freed(key))

    def _freed(self, key: str | None) -> None:
        """Places were freed before the holds known here said: ask the store again."""
        if self._closed:
            return
        self._core.unhold(key)
        self._core.unhold_user()
        if self._core.queued:
            self._kick()

    # -- time and forecasts ----------------------------------------------------

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(f"{self._name} is bound to a different event loop")
        return loop

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        if self._loop is not None:
            return self._loop.time()
        # Never used yet: nothing is recorded, so every moment reads the same.
        return 0.0

    def _expected_wait(self, key: str | None, priority: int, now: float) -> float:
        return max(0.0, self._expected_start(key, priority, False, now) - now)

    def _expected_start(self, key: str | None, priority: int, requeue: bool, now: float) -> float:
        """When a new request would start, counting the waiters that go before it."""
        core = self._core
        # Waiters held by their own scheduleId do not take the API user's places
        # first; only the ready ones surely do.
        ahead = min(core.ahead(priority, requeue=requeue), core.ready_live)
        mine = 0 if key is None or requeue else core.pending(key)
        at = self._store.forecast(key, ahead, mine, now)
        return max(at, core.known_start(key, now, priority))


class RateLimiter(QueuedLimiter):
    """An exact two-level sliding-window limiter for one API user, in this process.

    Implements [`schedcancel.Limiter`][schedcancel.Limiter]. Share one object among all clients
    that use the same API user (username); one ``ScheduleClient`` builds its
    own when none is given.

    The clock defaults to the running loop's ``loop.time()`` (monotonic, and
    virtual under looptime). Response-anchored release makes the limiter safe
    whatever the latency: an entry counts until ``window + guard`` after the
    response was observed, and the request's arrival at the server happened
    before that observation, so the next request that the entry's expiry lets
    through arrives more than ``window`` later (Rate limits explained has the proof).

    A limiter binds to the event loop it is first used in.

    Args:
        limits: the limits to keep; ``RateLimits()`` (60 / 10 per 60 s) when None.
        clock: a monotonic clock in seconds; the running loop's ``time`` when None.
    """

    _name = "RateLimiter"

    def __init__(
        self, limits: RateLimits | None = None, *, clock: Callable[[], float] | None = None
    ) -> None:
        limits = RateLimits() if limits is None else limits
        self._memory = MemoryStore(limits)
        self._origin = secrets.token_hex(8)
        super().__init__(limits, self._memory, clock)

    def __repr__(self) -> str:
        limits = self._limits
        return (
            f"<RateLimiter {limits.total}/{limits.per_schedule} per {limits.window:g}s"
            f" mode={self._memory.total_policy.mode} queued={self._core.queued}"
            f" in_flight={self._memory.total.in_flight}"
            f" schedule_ids={len(self._memory.logs)}>"
        )

    def release_nowait(
        self,
        permit: Permit,
        *,
        rate_limited: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Do what [`release()`][schedcancel.Limiter.release] does, synchronously (usable from
        ``finally`` blocks).

        Args:
            permit: a permit from this limiter's `acquire()`, released once.
            rate_limited: the server answered 429.
            retry_after: the server's ``Retry-After`` in seconds, when it sent one.

        Raises:
            ValueError: the permit is not from this limiter or was released already.
        """
        ticket = self._close_ticket(permit)
        if self._closed:
            return
        now = self._now()
        holds = self._memory.release_now(ticket.key, ticket.handle, now, rate_limited, retry_after)
        self._released(ticket.key, holds, now)

    # -- requests made before this limiter existed

    @property
    def origin(self) -> str:
        """A random name of this limiter object, for a journal's run lines.

        A bulk job records it, so that a job resumed through the same limiter
        does not count its earlier requests twice (this limiter has them).
        """
        return self._origin

    def remember(self, answered: Iterable[tuple[str | None, float]]) -> int:
        """Count requests this limiter did not see: another process's, read from a journal.

        A bulk job resumed on a journal calls it with the requests its earlier
        runs sent within the last ``window + guard``, so that a job killed and run
        again at once does not send a second window's worth on top of them. Call
        it in the event loop the limiter runs in.

        Args:
            answered: ``(schedule_id, seconds since its response)`` per request,
                the id None for a request with no scheduleId. An age below 0 (a
                clock that went back) counts as 0; a request answered
                ``window + guard`` ago or earlier counts no more.

        Returns:
            How many requests still count.
        """
        self._bind()
        now = self._now()
        hold = self._limits.window + self._limits.guard
        expiries = sorted(
            ((now + hold - max(0.0, age), key) for key, age in answered if age < hold),
            key=lambda entry: entry[0],
        )
        for expiry, key in expiries:
            self._memory.remember(key, expiry)
        if expiries:
            self._arm(now)
        return len(expiries)
