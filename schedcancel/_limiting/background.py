"""The background policy: when a background call (priority < 0) may take a place. Pure.

One rule, kept in two places that must agree step for step: this module (the
in-process store applies it) and ``lua/acquire.lua`` (the Redis store applies
it inside its script, for every process sharing the budget).
``tests/test_background.py`` runs one table of cases against both.

Terms: ``R`` is ``interactive_reserve`` (at most ``limit - 1``), ``hold`` is
``window + guard``, and an *interval* is ``hold / (limit - R)``: the pace at
which a background job that fills its share of the window frees places.

The rule has three parts; a background call may take a place at ``t`` when

1. **the interactive envelope holds**: once it has its place, the places
   free at ``t`` plus those that free within the next ``k`` intervals number
   at least ``R + k``, for every ``k = 0 ... D`` (the *depth*,
   ``D = min(4 R, (limit - R) // 2)``: 4 at the real limits). Interactive
   calls (priority >= 0) so find ``R`` places free at once and ``D`` more one
   interval apart, whatever the background job does, and each goes before
   every background call waiting. Requests in flight keep their place for
   the ``D`` intervals (their entry counts at least a hold from their
   response); answered entries free when their expiry says;
2. **and either it is paced**: an interval after the last background call;
3. **or it is part of a burst**: within one window of a background call that
   found the API user's log empty (nothing of ours counting). A job that
   starts on a quiet budget sends at once all the envelope allows
   (``limit - R - D``: 55 at the real limits), and the rest of its first
   window as places come free in time for the envelope.

Why the burst stops after one window: a weighted sliding-window counter (a
server model that punishes bursts after a full window) admits a burst into
an empty past, followed by an even pace of at most ``limit`` per window;
a burst every window it refuses. Pacing after the first window keeps
background jobs safe on it, as on every other server model.

What it costs: a job of up to ``limit - R - D`` calls on a quiet budget goes
in one burst, as at priority 0. A longer job settles at ``limit - R`` calls
per hold, one per interval: the share the reserve leaves it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs

__all__ = ["DEPTH_PER_RESERVE", "BackgroundState", "depth", "envelope_at", "interval"]

#: Places interactive calls get one interval apart once the reserve is taken, per reserved place.
DEPTH_PER_RESERVE = 4

#: "Not before a response": requests in flight leave no room (only a release can tell).
UNKNOWN = math.inf


def depth(limit: int, reserve: int) -> int:
    """How many intervals ahead the envelope looks: ``4 R``, at most half the rest."""
    return min(DEPTH_PER_RESERVE * reserve, (limit - reserve) // 2)


def interval(hold: float, limit: int, reserve: int) -> float:
    """Seconds between two paced background calls: ``hold / (limit - R)``."""
    return hold / (limit - reserve)


def envelope_at(
    now: float,
    *,
    limit: int,
    reserve: int,
    hold: float,
    in_flight: int,
    expiries: Sequence[float],
) -> float:
    """The earliest moment at or after ``now`` the interactive envelope admits one more call.

    Args:
        now: the current time.
        limit: the API user's effective limit.
        reserve: ``R``, between 1 and ``limit - 1``.
        hold: ``window + guard``.
        in_flight: the API user's entries whose response has not come (any priority).
        expiries: when the answered entries that count at ``now`` stop
            counting, sorted (each later than ``now``).

    Returns:
        ``now`` or later; `UNKNOWN` (``math.inf``) when the requests in
        flight leave no room (a release must come first).
    """
    look = depth(limit, reserve)
    step = interval(hold, limit, reserve)
    # Places beyond the reserve once this call has one, if no answered entry counted.
    spare = limit - in_flight - 1 - reserve
    if spare < look:
        return UNKNOWN
    count = len(expiries)
    at = now
    # At t + k * step at most spare - k answered entries may still count: the
    # (count - spare + k)-th earliest must have stopped counting by then.
    for k in range(look + 1):
        index = count - spare + k - 1
        if index >= 0:
            at = max(at, expiries[index] - k * step)
    return at


@attrs.define
class BackgroundState:
    """The API user's background state: the last background call, the last burst's start.

    Attributes:
        last_sent: when the last background call took its place (``-inf``: never).
        burst_start: when a background call last found the log empty (``-inf``: never).
    """

    last_sent: float = -math.inf
    burst_start: float = -math.inf

    def at(
        self,
        now: float,
        *,
        limit: int,
        reserve: int,
        hold: float,
        window: float,
        in_flight: int,
        expiries: Sequence[float],
    ) -> float:
        """The earliest moment at or after ``now`` a background call may take a place.

        Args:
            now: the current time.
            limit: the API user's effective limit.
            reserve: ``interactive_reserve``; 0 turns the rule off (background calls burst).
            hold: ``window + guard``.
            window: the server's window (a burst lasts one).
            in_flight: the API user's entries in flight (any priority).
            expiries: the answered entries' expiries that count at ``now``, sorted.

        Returns:
            ``now`` when it may go now; later when places must free or the pace
            holds it; ``math.inf`` when only a release can tell.
        """
        reserve = min(reserve, limit - 1)
        if reserve <= 0 or (in_flight == 0 and not expiries):
            return now  # no rule, or an empty log: a burst starts
        at = envelope_at(
            now, limit=limit, reserve=reserve, hold=hold, in_flight=in_flight, expiries=expiries
        )
        if at >= self.burst_start + window:
            at = max(at, self.last_sent + interval(hold, limit, reserve))
        return at

    def sent(self, now: float, *, empty: bool) -> None:
        """A background call took its place at ``now``; ``empty``: the log held nothing before."""
        self.last_sent = now
        if empty:
            self.burst_start = now
