"""Pure sliding-window logs: the arithmetic of the rate limits, with no clock and no asyncio.

Every operation takes ``now`` from the caller, so the same code runs under the
event loop's clock, a test's fake clock or a simulation (docs/development.md,
"Design notes": pure cores, time passed in).

The server counts a request at its *arrival*, which lies somewhere between
our send and the moment its response reaches us. A `SlidingLog`
therefore keeps each entry from the acquisition until ``window + guard`` after
the response (or failure, or cancellation) was observed; while a request is
in flight its entry always counts. Why that is safe under any latency jitter:
if an earlier request was answered at ``r`` it arrived at some ``a <= r``; a
later request may only be sent at ``s >= r + window + guard``, so it arrives at
``a' >= s > a + window``, outside every window of the server that holds ``a``.
So no ``window`` seconds of arrivals ever hold more than ``limit`` of our
requests, whatever the latencies were. The cost is about one round trip per
window, compared with an oracle that knew the arrival times.

One log type serves both levels: the API user's log (limit N) and one log per
scheduleId (limit K); the store (``stores``) checks both and then adds to
both, with nothing in between, so a request never holds half a permit.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_right, insort
from typing import Literal

import attrs

from ..errors import InvalidParameterError

__all__ = [
    "LevelPolicy",
    "SlidingLog",
]

#: "Not before some response is observed": a level whose in-flight requests
#: alone fill its limit cannot name a time; only a release can.
UNKNOWN = math.inf

# Compact an expiry array once this many dead slots lead it (and they are half of it),
# so pruning stays amortised O(1) without shifting the array on every expiry.
_COMPACT_AT = 32


def _check_limit(_instance: LevelPolicy, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise InvalidParameterError(f"{attribute.name} must be >= 1, got {value!r}")


@attrs.define(kw_only=True)
class LevelPolicy:
    """The settings one level's logs share: limit, window, guard, mode.

    The API user's level has its own policy; all scheduleId logs share one, so
    a per-key log stays small. The policy is mutable because adaptive mode
    lowers ``limit`` and may switch ``mode`` at run time.

    Attributes:
        base_limit: the configured limit (N or K).
        limit: the effective limit now; ``base_limit`` unless adaptive lowered it.
        window: the server's window in seconds.
        guard: seconds an entry counts beyond ``window`` after its response.
        mode: ``"exact"`` or ``"smooth"``.
        slack: smooth mode's extra spacing (0.01 is 1 %).
    """

    base_limit: int = attrs.field(validator=_check_limit)
    window: float
    guard: float = 0.0
    mode: Literal["exact", "smooth"] = "exact"
    slack: float = 0.0
    limit: int = attrs.field(
        init=False, default=attrs.Factory(lambda self: self.base_limit, takes_self=True)
    )

    @property
    def hold(self) -> float:
        """How long an entry counts after its response: ``window + guard``."""
        return self.window + self.guard

    @property
    def spacing(self) -> float:
        """Smooth mode's minimum gap between two sends; 0 in exact mode."""
        if self.mode == "smooth":
            return self.window / self.limit * (1.0 + self.slack)
        return 0.0


class SlidingLog:
    """One level's log: in-flight count plus the expiry times of answered requests.

    Expiry times are appended in release order. Releases are stamped with a
    monotonic clock, so the array is sorted; a stamp that goes backwards is
    raised to the last one (counting longer is always safe). A log holds
    about ``80 + 8 * entries`` bytes plus its slots, so 100,000 live
    scheduleIds stay cheap.
    """

    __slots__ = ("_expiries", "_head", "_in_flight", "_last_send", "_paused_until", "policy")

    def __init__(self, policy: LevelPolicy) -> None:
        """Start an empty log.

        Args:
            policy: the level's settings, shared with the other logs of the level.
        """
        self.policy = policy
        self._expiries = array("d")
        self._head = 0
        self._in_flight = 0
        self._last_send = -math.inf
        self._paused_until = -math.inf

    def __repr__(self) -> str:
        return (
            f"<SlidingLog limit={self.policy.limit} in_flight={self._in_flight}"
            f" answered={len(self._expiries) - self._head}>"
        )

    # -- reading ------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Entries acquired and not yet released."""
        return self._in_flight

    @property
    def paused_until(self) -> float:
        """The end of the current 429 pause (``-inf`` when never paused)."""
        return self._paused_until

    @property
    def last_expiry(self) -> float:
        """When the latest answered entry stops counting (``-inf`` when none)."""
        if len(self._expiries) > self._head:
            return self._expiries[-1]
        return -math.inf

    def _counting(self, now: float) -> int:
        """Index of the first answered entry still counting at ``now`` (a read: nothing changes)."""
        expiries, head = self._expiries, self._head
        if head < len(expiries) and expiries[head] <= now:
            return bisect_right(expiries, now, head)
        return head

    def answered(self, now: float) -> int:
        """Entries released but still counting at ``now``."""
        return len(self._expiries) - self._counting(now)

    def live_expiries(self, now: float) -> array[float]:
        """When the answered entries that count at ``now`` stop counting, oldest first (a copy)."""
        return self._expiries[self._counting(now) :]

    def used(self, now: float) -> int:
        """Entries that count at ``now``: in flight plus answered within ``window + guard``."""
        return self._in_flight + self.answered(now)

    def earliest(self, now: float) -> float:
        """The earliest moment at or after ``now`` this level admits one more request.

        Args:
            now: the current time.

        Returns:
            ``now`` when a request may start now; a later time when the count,
            a 429 pause or smooth spacing holds it; ``math.inf`` when the
            in-flight requests alone fill the limit (only a release can tell).
        """
        policy = self.policy
        limit = policy.limit
        start = now
        start = max(start, self._paused_until)
        spacing = policy.spacing
        if spacing and self._last_send + spacing > start:
            start = self._last_send + spacing
        first = self._counting(now)
        over = self._in_flight + len(self._expiries) - first - limit
        if over < 0:
            return start
        if self._in_flight >= limit:
            return UNKNOWN
        # The (over + 1)-th oldest answered entry must stop counting first.
        free_at = self._expiries[first + over]
        return free_at if free_at > start else start

    def room(self, now: float) -> int:
        """How many more entries the count admits at ``now`` (pauses and spacing aside).

        Args:
            now: the current time.

        Returns:
            ``limit`` minus the entries that count at ``now``; 0 or less when full.
        """
        return self.policy.limit - self._in_flight - self.answered(now)

    def is_idle(self, now: float) -> bool:
        """True when the log holds nothing that counts and no pause or spacing is pending."""
        return self._in_flight == 0 and self.idle_at() <= now and self.answered(now) == 0

    def idle_at(self) -> float:
        """When this log would be idle if nothing more were acquired (ignores in-flight)."""
        return max(self.last_expiry, self._paused_until, self._last_send + self.policy.spacing)

    def slot_time(self, now: float, ahead: int) -> float:
        """When this level could admit a request with ``ahead`` others in front of it.

        A forecast for ``estimate``: it assumes the requests in flight are
        answered now and every later request is answered at once. Each of the
        ``limit`` places recycles every ``window + guard``.

        Args:
            now: the current time.
            ahead: requests that will take a place at this level first.

        Returns:
            The forecast start time (``>= now``).
        """
        policy = self.policy
        limit = policy.limit
        hold = policy.hold
        first = self._counting(now)
        answered = len(self._expiries) - first
        used = self._in_flight + answered
        cycles, lane = divmod(ahead, limit)
        # The places in time order: free ones now, then answered entries as they
        # expire, then in-flight ones a hold from now. With more entries than the
        # (perhaps lowered) limit, the oldest ``used - limit`` must expire first.
        index = lane - (limit - used) if used < limit else lane + used - limit
        if index < 0:
            place = now
        elif index < answered:
            place = self._expiries[first + index]
        else:
            place = now + hold
        start = max(now, self._paused_until, place) + cycles * hold
        spacing = policy.spacing
        if spacing:
            start = max(start, max(now, self._last_send + spacing) + ahead * spacing)
        return start

    # -- changing -----------------------------------------------------------

    def add(self, now: float) -> None:
        """Take one entry for a request starting at ``now`` (it counts while in flight)."""
        self._in_flight += 1
        self._last_send = now

    def prune(self, now: float) -> None:
        """Drop the entries that stopped counting by ``now`` (to free memory: reads skip them)."""
        head = self._counting(now)
        if head == self._head:
            return
        expiries = self._expiries
        if head == len(expiries):
            del expiries[:]
            head = 0
        elif head >= _COMPACT_AT and head * 2 >= len(expiries):
            del expiries[:head]
            head = 0
        self._head = head

    def release(self, now: float) -> float:
        """Mark one in-flight entry answered at ``now``; return when it stops counting.

        Raises:
            RuntimeError: nothing is in flight (a permit released twice).
        """
        if self._in_flight <= 0:
            raise RuntimeError("release without a matching acquisition")
        self._in_flight -= 1
        self.prune(now)
        expiry = now + self.policy.hold
        expiries = self._expiries
        if len(expiries) > self._head and expiries[-1] > expiry:
            expiry = expiries[-1]
        expiries.append(expiry)
        return expiry

    def remember(self, expiry: float) -> None:
        """Count an answered request this log did not see until ``expiry`` (kept in order).

        For requests made before the log existed: another process's, read from a
        bulk job's journal.
        """
        insort(self._expiries, expiry, lo=self._head)

    def revoke(self) -> None:
        """Give back an in-flight entry whose request was never sent.

        Raises:
            RuntimeError: nothing is in flight.
        """
        if self._in_flight <= 0:
            raise RuntimeError("revoke without a matching acquisition")
        self._in_flight -= 1

    def pause(self, until: float) -> None:
        """Admit nothing before ``until`` (a 429); an earlier end never shortens a pause."""
        self._paused_until = max(self._paused_until, until)
