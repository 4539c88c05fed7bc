"""Both levels' logs decided together, one request at a time: the tests' model of a store.

``check`` and ``try_acquire`` are the two-level rule at its simplest (the store in
``schedcancel._limiting.stores`` applies it to whole rounds); ``test_window`` and ``test_limiter``
drive :class:`~schedcancel._limiting.window.SlidingLog` pairs with them.
"""

from __future__ import annotations

from typing import Literal

import attrs
from schedcancel._limiting.window import SlidingLog

Level = Literal["total", "schedule"]


@attrs.frozen
class Decision:
    """The answer to "may a request start now?".

    Attributes:
        allowed: the request may start now (and, from ``try_acquire``, has its entries).
        at: the earliest moment it could start: ``now`` when allowed,
            ``math.inf`` when only a response still in flight can tell.
        blocked_by: the level that decides ``at`` when not allowed.
    """

    allowed: bool
    at: float
    blocked_by: Level | None = None


def check(total: SlidingLog, schedule: SlidingLog, now: float) -> Decision:
    """Whether a request may start at ``now`` on both levels, without taking anything.

    Args:
        total: the API user's log.
        schedule: the scheduleId's log.
        now: the current time.

    Returns:
        The decision; ``at`` is the later of the two levels' earliest times.
    """
    at_total = total.earliest(now)
    at_schedule = schedule.earliest(now)
    if at_total <= now and at_schedule <= now:
        return Decision(allowed=True, at=now)
    if at_schedule > at_total:
        return Decision(allowed=False, at=at_schedule, blocked_by="schedule")
    return Decision(allowed=False, at=at_total, blocked_by="total")


def try_acquire(total: SlidingLog, schedule: SlidingLog, now: float) -> Decision:
    """Check both levels and, when both admit, add an entry to both at ``now``.

    Args:
        total: the API user's log.
        schedule: the scheduleId's log.
        now: the current time.

    Returns:
        The decision; when ``allowed`` both logs have the new entry.
    """
    decision = check(total, schedule, now)
    if decision.allowed:
        total.add(now)
        schedule.add(now)
    return decision
