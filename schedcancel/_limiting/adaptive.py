"""The adaptive policy: what a 429 the limiter could not have caused teaches it. Pure.

One rule, kept in two places that must agree step for step: this module (the
in-process store applies it) and ``lua/helpers.lua`` (the Redis store applies
it inside its scripts, atomically for every process). ``tests/test_adaptive.py``
runs one table of cases against both.

A 429 at the API user's level is *evidence*: our log never lets ``limit``
requests of ours into one server window besides the refused one, so either
another client spends the same budget (foreign load, or a lower limit than
configured) or the server counts bursts differently (a weighted sliding-window
counter overruns them). The policy:

1. **Open an episode** on a 429 at the API user's level whose request was
   granted after the last episode opened (``stamp >= episode_start``).
   Requests granted before belong to that episode and teach nothing new.
   Every such 429 restarts the recovery clock.
2. **Judge the episode when the pause ends** (by then the rest of the burst
   has answered), from ``peak``: the most acceptances of ours the server
   took in one window over the last `ACCEPTED_WINDOWS` windows.

   * ``peak < limit``: the server never took the full limit from us, so the
     budget is smaller. Lower the limit to ``max(1, peak, limit // 2)``.
   * else, in exact mode: our bursts were the problem. Go smooth.
   * else (already smooth): lower the limit by one.
3. **Recover**: after `QUIET_WINDOWS` holds (``window + guard``)
   without a 429, the limit grows back by one per hold, up to the base.
4. **Start and refill with the brakes on** (exact mode, until the policy
   goes smooth): while no acceptance of ours is remembered (a cold start: none
   in the last `ACCEPTED_WINDOWS` holds) or a grant would reuse a place whose
   acceptance stopped counting within the last window (a refill), at most
   `in_flight_cap()` (a sixth of the limit) of the API user's requests are in
   flight, one more per answer. A cold start hears the server's first answers
   (a stated limit, foreign load) before the rest go. A sliding log takes a
   refill whole; a counter still weighs the last window's burst and refuses
   part of it, and the cap keeps the requests sent before its first 429 comes
   back to a sixth of the limit. Once the places are spread out the cap rarely
   binds: it costs a job a few round trips, once. A request unanswered for
   longer than `cap_lapse()` (the guard, at least a hundredth of the window)
   stops counting against the cap: it waits for the server's first answers,
   not for a slow one, a caller that holds its permits, or a crashed
   process's entries.

Stamps are anything ordered: the in-process store uses grant serial numbers,
the script Redis microseconds.
"""

from __future__ import annotations

import enum
import math

import attrs

__all__ = [
    "ACCEPTED_WINDOWS",
    "CAP_SHARE",
    "QUIET_WINDOWS",
    "Action",
    "AdaptiveState",
    "accepted_peak",
    "cap_lapse",
    "in_flight_cap",
]

#: Holds without a 429 before a lowered limit starts to grow back.
QUIET_WINDOWS = 10

#: Windows of acceptances kept to judge an episode.
ACCEPTED_WINDOWS = 3

#: Starting cold or refilling, at most ``1 / CAP_SHARE`` of the limit is in flight.
CAP_SHARE = 6


class Action(enum.IntEnum):
    """What judging an episode changed (the script returns the same numbers)."""

    NONE = 0
    SMOOTH = 1
    LOWERED = 2


@attrs.define(kw_only=True)
class AdaptiveState:
    """The API user's adaptive state.

    Attributes:
        base_limit: the configured limit.
        hold: ``window + guard``, the recovery step.
        limit: the limit as last set; `limit_at()` adds the recovery since.
        smooth: the policy switched the level to smooth pacing.
        episode_open: a 429 episode awaits judgement.
        episode_start: requests stamped before this belong to the last episode.
        recover_from: when the last 429 at this level came (recovery counts from it).
    """

    base_limit: int
    hold: float
    limit: int = attrs.field(default=attrs.Factory(lambda self: self.base_limit, takes_self=True))
    smooth: bool = False
    episode_open: bool = False
    episode_start: float = -math.inf
    recover_from: float = -math.inf

    def limit_at(self, now: float) -> int:
        """The effective limit at ``now``: the last one plus one per quiet hold."""
        if self.limit >= self.base_limit:
            return self.limit
        steps = math.floor((now - self.recover_from) / self.hold) - QUIET_WINDOWS
        return min(self.base_limit, self.limit + max(0, steps))

    def next_step(self, now: float) -> float:
        """When `limit_at()` grows next (``math.inf`` at the base limit)."""
        if self.limit_at(now) >= self.base_limit:
            return math.inf
        steps = max(math.floor((now - self.recover_from) / self.hold) + 1, QUIET_WINDOWS + 1)
        at = self.recover_from + steps * self.hold
        # In floats ``(recover_from + steps * hold - recover_from) / hold`` may floor to
        # ``steps - 1``: `limit_at()` would not see the step at the moment named, and a
        # timer set for it would fire again and again at the same instant.
        while math.floor((at - self.recover_from) / self.hold) < steps:
            at = math.nextafter(at, math.inf)
        return max(now, at)

    def on_429(self, now: float, stamp: float, next_stamp: float) -> bool:
        """A 429 at the API user's level; return True when it opens an episode.

        Args:
            now: when the 429 was observed.
            stamp: the refused request's grant stamp.
            next_stamp: the stamp the next grant will carry; requests stamped
                before it belong to the episode this 429 opens.
        """
        self.limit = self.limit_at(now)
        self.recover_from = now
        if self.episode_open or stamp < self.episode_start:
            return False
        self.episode_open = True
        self.episode_start = next_stamp
        return True

    def judge(self, now: float, peak: int) -> Action:
        """Close the open episode (its pause is over) and adapt.

        Args:
            now: the current time.
            peak: the most acceptances of ours in one server window (see
                `accepted_peak()`).

        Returns:
            What changed.
        """
        self.episode_open = False
        limit = self.limit = self.limit_at(now)
        if peak < limit:
            self.limit = max(1, peak, limit // 2)
            return Action.LOWERED
        if not self.smooth:
            self.smooth = True
            return Action.SMOOTH
        self.limit = max(1, limit - 1)
        return Action.LOWERED


def accepted_peak(times: list[float], window: float) -> int:
    """The most acceptance times within one ``window`` (half-open), from sorted times."""
    peak = start = 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


def in_flight_cap(limit: int) -> int:
    """The most requests in flight while the API user's level starts cold or refills.

    ``ceil(limit / 6)``. Cold: no acceptance of ours after ``now - ACCEPTED_WINDOWS * hold``.
    Refilling: some acceptance ``a`` of ours lies in ``(now - window - hold, now - hold]``,
    so its place stopped counting within the last window (rule 4 above).
    """
    return -(-limit // CAP_SHARE)


def cap_lapse(window: float, guard: float) -> float:
    """How long an unanswered request counts against `in_flight_cap()`: ``guard``, at least
    a hundredth of the window (and 10 ms)."""
    return max(guard, 0.01, window / 100)
