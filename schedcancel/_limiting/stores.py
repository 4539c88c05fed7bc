"""The store seam under the one dispatcher, and the in-memory store. Pure.

A *store* keeps the two levels' logs and answers the dispatcher's questions,
and only those (a narrow seam; docs/development.md, "Design notes"): try these
candidates in this order, release this permit, give this one back, when could
one start. `MemoryStore` keeps them in
this process over ``window``; ``schedcancel.redis`` keeps them in Redis over
the scripts in ``lua/``. Both apply the one adaptive policy of ``adaptive``
and the one background policy of ``background``.

The memory store reads no clock: ``now`` comes with every call.
"""

from __future__ import annotations

import logging
import math
from array import array
from bisect import bisect_right
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import NamedTuple, Protocol

from .._protocol.models import LimiterStats, RateLimitLevel, RateLimits
from .adaptive import (
    ACCEPTED_WINDOWS,
    QUIET_WINDOWS,
    Action,
    AdaptiveState,
    accepted_peak,
    cap_lapse,
    in_flight_cap,
)
from .background import BackgroundState
from .dispatcher import SNAP, Answer
from .server_state import SILENT, Heard, ServerState
from .window import UNKNOWN, LevelPolicy, SlidingLog

__all__ = ["Holds", "MemoryStore", "Store"]


class Holds(NamedTuple):
    """What a release returns: the new holds in seconds (0.0: none), and the level a 429 hit."""

    #: how long the API user's level is paused
    user: float
    #: how long the released permit's scheduleId is paused
    key: float
    #: the level a 429 was blamed on (None: no 429, or unknown)
    level: RateLimitLevel | None


#: A release without a 429: nothing paused (shared: the common case builds nothing).
_NO_HOLDS = Holds(0.0, 0.0, None)

logger = logging.getLogger("schedcancel.limiter")

# A dict of keys keeps its table at its peak size after deletions; it is copied
# (O(live), amortised over as many deletions) once more keys left than remain.
_REBUILD_AFTER = 1024


class Store(Protocol):
    """Where the two levels' logs live, as the limiter's driver sees it.

    The driver asks a round at a time. A store in this process answers at
    once (it returns the `Answer` itself); a store that does I/O returns an
    awaitable, and the driver asks nothing more until it is answered.
    `forecast()` and `stats()` only read: they tell what the store knows
    now, and never change it (the driver's `tick()` keeps house).
    """

    #: seconds added at random to each wait, so processes sharing a store do not wake in step
    jitter: float

    def round_size(self, now: float) -> int:
        """How many candidates one `acquire()` should try."""

    def acquire(
        self, keys: Sequence[str | None], backgrounds: Sequence[bool], now: float
    ) -> Answer | Awaitable[Answer]:
        """Try candidates in order: grant each that both levels admit, stop at the user level.

        A key None is a request with no scheduleId: only the API user's level
        counts it. ``backgrounds[i]`` says candidate ``i`` is a background call (priority < 0),
        which also needs the background policy (``background``): the places it leaves
        the others, and its pace.

        A store that does I/O must not grant a round whose caller gave up on
        it (a timeout): its places would be held for nobody. The Redis store
        gives each round a deadline and takes back a round whose answer was
        lost; the memory store answers within the call, so no round outlives it.
        """

    async def release(
        self,
        key: str | None,
        handle: object,
        now: float,
        limited: bool,
        retry_after: float | None,
        *,
        heard: Heard | None = None,
    ) -> Holds:
        """Release a permit's entries; return the new `Holds` (0.0: none).

        ``heard`` is what the answer's rate-limit headers said (``server_state``);
        None for an answer that said nothing, or a failure.
        """

    def give_back(
        self, key: str | None, handle: object, now: float, freed: Callable[[], None]
    ) -> None:
        """Remove a never-sent permit's entries; call ``freed()`` once they are gone."""

    def tick(self, now: float) -> bool:
        """Housekeeping; True when the API user's level may admit earlier than last said."""

    def next_wake(self, now: float, *, queued: bool) -> float:
        """When `tick()` has work (``math.inf``: never)."""

    def forecast(self, key: str | None, ahead: int, mine: int, now: float) -> float:
        """When a request with ``ahead`` others before it (``mine`` of its key) could start."""

    def stats(self, now: float, queued: Collection[str | None]) -> LimiterStats:
        """A snapshot of the logs as known now; ``queued``: the keys with waiters."""

    async def refresh(self, key: str | None, now: float) -> None:
        """Learn the shared state now, for a forecast of ``key`` (this process's store knows it)."""

    async def aclose(self) -> None:
        """Finish what is on its way; close what the store owns."""


class FloatQueue:
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

    def first_after(self, value: float) -> float:
        """The first value above ``value`` (``math.inf``: none); the values must be sorted."""
        at = bisect_right(self._values, value, self._head)
        return self._values[at] if at < len(self._values) else math.inf

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


def _policy(limits: RateLimits, limit: int) -> LevelPolicy:
    return LevelPolicy(
        base_limit=limit,
        window=limits.window,
        guard=limits.guard,
        mode=limits.mode,
        slack=limits.slack,
    )


class MemoryStore:
    """One API user's logs in this process: the API user's and one per scheduleId.

    A handle is the grant's serial number (the adaptive policy's stamp).
    Idle scheduleIds are forgotten once their entries stop counting, so
    memory follows what is live (about 290 bytes per live scheduleId).
    """

    jitter = 0.0

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        self.total_policy = _policy(limits, limits.total)
        self.schedule_policy = _policy(limits, limits.per_schedule)
        self.total = SlidingLog(self.total_policy)
        self.logs: dict[str, SlidingLog] = {}
        self.adaptive = AdaptiveState(base_limit=limits.total, hold=self.total_policy.hold)
        self.server = ServerState(speaks=limits.probe)
        # The server's word bounds the levels once it said something (or `probe` asks
        # it first); until then grants and releases skip it, at no cost (issue 23).
        self._listening = limits.probe
        self.rate_limited = 0
        self._grants = 0
        self.background = BackgroundState()
        # When the server accepted our requests, for ACCEPTED_WINDOWS holds (adaptive only).
        self.accepted = FloatQueue()
        # The requests in flight the in-flight cap counts: grant serial -> grant time, for
        # cap_lapse() (adaptive only).
        self._young: OrderedDict[int, float] = OrderedDict()
        self._lapse = cap_lapse(limits.window, limits.guard)
        # Until when the cap is known to be off (a cold limiter is capped at once), or on.
        self._uncapped_until = -math.inf if limits.adaptive else math.inf
        self._capped_until = -math.inf
        # Idle-key sweep: when each release's entry stops counting, and for which key.
        self.sweep_times = FloatQueue()
        self._sweep_keys: deque[str] = deque()
        self._dropped = 0

    # -- the store protocol ---------------------------------------------------

    def round_size(self, now: float) -> int:
        """As many as the API user's count admits (one at a time when smooth)."""
        if self.total_policy.spacing:
            return 1
        return min(64, max(1, self.total.room(now)))

    def acquire(
        self, keys: Sequence[str | None], backgrounds: Sequence[bool], now: float
    ) -> Answer:
        """Grant each candidate both levels admit at ``now``; stop at the API user's level.

        A candidate with key None (no scheduleId) needs the API user's level only.

        A background candidate also needs the background rule (`background_at()`);
        the first one it refuses ends the round (the rest are background too, by rank).
        """
        total = self.total
        handles: list[object | None] = []
        waits: list[float] = []
        user_wait = background_wait = 0.0
        cap = self._in_flight_cap(now)
        for key, background in zip(keys, backgrounds, strict=True):
            user_wait = self._user_wait(now, cap)
            if user_wait:
                break
            if background:
                at = self.background_at(now)
                if at > now + SNAP:
                    background_wait = at - now
                    break
            log = None
            if key is not None:
                log = self.logs.get(key)
                if log is None:
                    log = self.logs[key] = SlidingLog(self.schedule_policy)
                at = log.earliest(now)
                if at > now + SNAP:
                    handles.append(None)
                    waits.append(at - now)
                    continue
                log.add(now)
            if background:
                self.background.sent(now, empty=total.used(now) == 0)
            total.add(now)
            if self.limits.adaptive:
                self._young[self._grants] = now
            handles.append(self._grants)
            waits.append(0.0)
            self._grants += 1
        else:
            # Every candidate went: say when the next could, so the driver need not ask.
            user_wait = self._user_wait(now, cap)
            if any(backgrounds):
                background_wait = max(0.0, self.background_at(now) - now)
        return Answer(handles, waits, user_wait, background_wait)

    def _in_flight_cap(self, now: float) -> float:
        """The most requests in flight now (``math.inf``: no cap; the adaptive policy's rule 4)."""
        if now < self._uncapped_until:
            return math.inf
        policy = self.total_policy
        if now >= self._capped_until:
            if policy.spacing:
                self._uncapped_until = math.inf  # configured smooth
                return math.inf
            accepted, hold = self.accepted, policy.hold
            if len(accepted):
                cold_at = accepted.last() + ACCEPTED_WINDOWS * hold
                first = accepted.first_after(now - policy.window - hold)
                if now < first + hold:
                    if now < cold_at:
                        # Warm, and no place of ours stopped counting within a window. A
                        # new acceptance may only bring the refill forward (release_now()).
                        self._uncapped_until = min(cold_at, first + hold)
                        return math.inf
                else:
                    self._capped_until = first + policy.window + hold  # refilling till then
        return in_flight_cap(policy.limit)

    def _user_wait(self, now: float, cap: float) -> float:
        """How long until the API user's level admits one more (0.0: now; `UNKNOWN`: a release).

        ``cap``: the most requests in flight now (`_in_flight_cap()`).
        """
        total = self.total
        at = total.earliest(now)
        if at > now + SNAP:
            return at - now
        return UNKNOWN if total.in_flight >= cap and self._flying(now) >= cap else 0.0

    def _flying(self, now: float) -> int:
        """The requests in flight the cap counts: sent within `cap_lapse()` of ``now``."""
        young, lapse = self._young, self._lapse
        while young and young[next(iter(young))] + lapse <= now:  # as next_wake() names it
            young.popitem(last=False)
        return len(young)

    def background_at(self, now: float) -> float:
        """When the API user's level admits one more background call (priority < 0).

        The rule of ``background``: the reserve stays free and one more place
        frees per interval for the next intervals, so interactive calls find
        room at once and then one interval apart; a job on a quiet budget
        bursts through its first window, then goes one per interval.
        """
        policy, total = self.total_policy, self.total
        return self.background.at(
            now,
            limit=policy.limit,
            reserve=self.limits.interactive_reserve,
            hold=policy.hold,
            window=policy.window,
            in_flight=total.in_flight,
            expiries=total.live_expiries(now),
        )

    async def release(
        self,
        key: str | None,
        handle: object,
        now: float,
        limited: bool,
        retry_after: float | None,
        *,
        heard: Heard | None = None,
    ) -> Holds:
        """See `release_now()`."""
        return self.release_now(key, handle, now, limited, retry_after, heard=heard)

    def release_now(
        self,
        key: str | None,
        handle: object,
        now: float,
        limited: bool,
        retry_after: float | None,
        *,
        heard: Heard | None = None,
    ) -> Holds:
        """Count the permit's entries until ``window + guard`` from now; pause after a 429.

        ``heard`` (the answer's rate-limit headers, digested) names the level a
        429 hit and its pause, and feeds the server's word (``server_state``).
        """
        log = None if key is None else self.logs[key]
        self._young.pop(handle, None)  # type: ignore[call-overload] # a grant's serial
        said = SILENT if heard is None else heard
        holds = _NO_HOLDS
        if limited:
            pause = retry_after if said.pause is None else said.pause
            holds = self._on_rate_limited(log, handle, now, pause, said.blamed)
        elif self.limits.adaptive:
            self._forget_accepted(now)
            self.accepted.append(now)
            # Its place stops counting a hold from now: the cap's refill may start then.
            self._uncapped_until = min(self._uncapped_until, now + self.total_policy.hold)
        self.total.release(now)
        if key is not None and log is not None:
            self._note_expiry(log.release(now), key)
        if self._listening or said.says_anything:
            self._hear(said, now, limited, handle)
        return holds

    def _hear(self, heard: Heard, now: float, limited: bool, handle: object) -> None:
        """Feed one answer's digest to the server's word; bound the scheduleId's level by it."""
        server = self.server
        server.observe(
            heard,
            now=now,
            answered=self.total.answered(now),
            limited=limited,
            hold=self.total_policy.hold,
            sent=handle,  # type: ignore[arg-type] # a grant's serial: our send order
        )
        self.schedule_policy.limit = server.id_limit(
            self.schedule_policy.base_limit, higher=self.limits.accept_higher_limits
        )
        self._listening = server.listening

    def remember(self, key: str | None, expiry: float) -> None:
        """Count a request made elsewhere, answered before, on both levels until ``expiry``."""
        self.total.remember(expiry)
        if key is not None:
            log = self.logs.get(key)
            if log is None:
                log = self.logs[key] = SlidingLog(self.schedule_policy)
            log.remember(expiry)
            self._note_expiry(expiry, key)

    def give_back(
        self,
        key: str | None,
        handle: object,
        now: float,
        freed: Callable[[], None],
    ) -> None:
        """Remove the entries of a permit whose request was never sent."""
        self._young.pop(handle, None)  # type: ignore[call-overload] # a grant's serial
        self.total.revoke()
        if key is not None:
            log = self.logs[key]
            log.revoke()
            self._retire(key, log, now)
        freed()

    def tick(self, now: float) -> bool:
        """Judge a 429 episode whose pause ended, grow a lowered limit back, drop idle keys."""
        changed = False
        state = self.adaptive
        if state.episode_open and self.total.paused_until <= now + SNAP:
            self._judge(now)
            changed = True
        limit = self._user_limit(now)
        if limit != self.total_policy.limit:
            changed = limit > self.total_policy.limit
            self.total_policy.limit = limit
            if limit == self.total_policy.base_limit and state.limit < limit:
                logger.info("no 429 for a while: limit back to %d", limit)
        young = len(self._young)
        if young and self._flying(now) < young:
            changed = True  # unanswered past the in-flight cap's lapse: they count no more
        self._sweep(now)
        return changed

    def next_wake(self, now: float, *, queued: bool) -> float:
        """The next recovery step while requests wait; the next idle key to drop."""
        wake = math.inf
        if queued:
            wake = self.adaptive.next_step(now)
            young = self._young
            if young and len(young) >= self._in_flight_cap(now):
                wake = min(wake, young[next(iter(young))] + self._lapse)
            if self._listening:
                wake = min(wake, self.server.next_change(now))
        sweep = self.sweep_times
        if len(sweep) and (not queued or len(sweep) > _REBUILD_AFTER):
            # Nothing waits, or many keys went idle while one waits for long: wake
            # when the oldest idle key can be dropped.
            wake = min(wake, max(sweep.first(), now))
        elif not queued and len(self.accepted):
            # All keys are gone; the adaptive memory of acceptances goes last.
            wake = max(self.accepted.first() + ACCEPTED_WINDOWS * self.total_policy.hold, now)
        return wake

    def forecast(self, key: str | None, ahead: int, mine: int, now: float) -> float:
        """When a request with ``ahead`` others before it could start (places recycle per hold)."""
        at = self.total.slot_time(now, ahead)
        log = self.logs.get(key) if key is not None else None
        if log is not None:
            at = max(at, log.slot_time(now, mine))
        return at

    def stats(self, now: float, queued: Collection[str | None]) -> LimiterStats:
        """A snapshot of the logs (``queued``: the keys with waiters, counted too)."""
        total, logs = self.total, self.logs
        waiting = sum(1 for key in queued if key is not None and key not in logs)
        return LimiterStats(
            queued=0,
            in_flight=total.in_flight,
            total_used=total.used(now),
            total_limit=self._user_limit(now),
            schedule_ids=len(logs) + waiting,
            next_free=max(0.0, total.earliest(now) - now),
            rate_limited=self.rate_limited,
            mode=self.total_policy.mode,
            background_next_free=max(0.0, max(total.earliest(now), self.background_at(now)) - now),
        )

    async def refresh(self, key: str | None, now: float) -> None:
        """Nothing to learn: this process holds the logs."""

    async def aclose(self) -> None:
        """Nothing to finish or close."""

    # -- 429s and the adaptive policy -----------------------------------------

    def _user_limit(self, now: float) -> int:
        """The API user's effective limit: the adaptive policy's, bounded by the server's word."""
        if not self._listening:
            return self.adaptive.limit_at(now)
        return self.server.user_limit(
            now,
            base=self.total_policy.base_limit,
            adaptive=self.adaptive.limit_at(now),
            answered=self.total.answered(now),
            higher=self.limits.accept_higher_limits,
        )

    def _on_rate_limited(
        self,
        log: SlidingLog | None,
        handle: object,
        now: float,
        retry_after: float | None,
        blamed: RateLimitLevel | None = None,
    ) -> Holds:
        """Pause the level a 429 hit (before the entries are released, so both count it).

        The level is ``blamed`` when the answer's headers named it, else the
        scheduleId when its own log is full, else the API user.
        """
        self.rate_limited += 1
        limits = self.limits
        if retry_after is None:
            pause = limits.window + limits.guard  # no Retry-After: treat the window as full
        else:
            pause = min(max(retry_after, 0.0), limits.effective_retry_after_cap)
        if blamed is None and log is not None and log.used(now) >= log.policy.limit:
            blamed = "schedule"
        if blamed == "schedule" and log is not None:
            # The scheduleId's own log is full: blame that level, not the whole user.
            log.pause(now + pause)
            return Holds(0.0, pause, "schedule")
        self.total.pause(now + pause)
        if limits.adaptive:
            assert isinstance(handle, int)  # noqa: S101 - our own handle type
            self.adaptive.on_429(now, handle, self._grants)
        return Holds(pause, 0.0, "user")

    def _forget_accepted(self, now: float) -> None:
        accepted = self.accepted
        horizon = now - ACCEPTED_WINDOWS * self.total_policy.hold
        # At the horizon too: the timer wakes exactly then, and must find it gone.
        while len(accepted) and accepted.first() <= horizon + SNAP:
            accepted.popleft()

    def _judge(self, now: float) -> None:
        policy = self.total_policy
        before = self.adaptive.limit_at(now)
        peak = accepted_peak(self.accepted.values(), policy.window)
        action = self.adaptive.judge(now, peak)
        policy.limit = self._user_limit(now)
        if action is Action.SMOOTH:
            policy.mode = "smooth"
            self._uncapped_until = math.inf  # smooth pacing has no in-flight cap (rule 4)
            logger.warning(
                "429s although the server took a full window of %d from us: it counts"
                " bursts differently (a sliding-window counter?); pacing sends %.3gs"
                " apart from now on",
                peak,
                policy.spacing,
            )
        else:
            logger.warning(
                "429s although our own requests cannot fill the window: the server took"
                " at most %d of ours per %gs; lowering the limit from %d to %d (foreign"
                " load on this API user?), raising it by 1 per %gs after %d quiet windows",
                peak,
                policy.window,
                before,
                self.adaptive.limit_at(now),  # the policy's, not the server word's too
                policy.hold,
                QUIET_WINDOWS,
            )

    # -- idle keys --------------------------------------------------------------

    def _note_expiry(self, expiry: float, key: str) -> None:
        times = self.sweep_times
        if len(times) and times.last() > expiry:
            expiry = times.last()
        times.append(expiry)
        self._sweep_keys.append(key)

    def _retire(self, key: str, log: SlidingLog, now: float) -> None:
        """Drop a scheduleId's log once it holds nothing that counts."""
        if log.in_flight:
            return  # its release will note an expiry
        if log.is_idle(now):
            del self.logs[key]
            self._dropped += 1
            if self._dropped > _REBUILD_AFTER and self._dropped > len(self.logs):
                self.logs = dict(self.logs)
                self._dropped = 0
        elif log.idle_at() > log.last_expiry:
            # Held by a pause or smooth spacing past its last entry: look again then.
            self._note_expiry(log.idle_at(), key)

    def _sweep(self, now: float) -> None:
        self.total.prune(now)  # the API user's log too, even when nobody asks
        self._forget_accepted(now)
        times, keys = self.sweep_times, self._sweep_keys
        while len(times) and times.first() <= now:
            at = times.popleft()
            key = keys.popleft()
            log = self.logs.get(key)
            if log is None or log.in_flight or log.last_expiry > at:
                continue  # gone, busy, or a later release has its own sweep entry
            self._retire(key, log, now)
