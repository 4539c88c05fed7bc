"""What the server said about its limits, and how it bounds the API user's level. Pure.

One rule, kept in two places that must agree step for step, like the adaptive
policy (``adaptive``): this module (the in-process store applies it) and
``lua/helpers.lua`` (the Redis store applies it inside its scripts, so every
process sharing the API user learns what one of them heard).
``tests/test_server_state.py`` runs one table of cases against both.

An answer's rate-limit headers (``_ratelimit_headers``) are first *digested*
against the configured limits (`digest()`, in Python for both stores): each
stated quota is put on a level by its limit (at or above ``sqrt(total *
per_schedule)``, the API user's; below, the scheduleId's; a quota whose window
differs from ours is left out), and the most restrictive per level is kept.
Then `ServerState` keeps, per API user:

* **a stated limit** (``stated``, ``stated_id``): below the configured one it
  lowers the level at once; above it, only with
  ``RateLimits.accept_higher_limits`` (a misconfigured server, or a header
  from another layer, must not make us send more than documented).
* **what the server still takes** (``seen``): on an answer that is not a 429,
  our answered entries that still count plus the ``Remaining`` it stated, so
  foreign load on the same API user is left its share from the first answer
  on. While the last reset has not passed, a new reading can only lower it
  (answers of one burst come back in any order); after the reset our log
  recycles our own places as they expire, up to it, unless the server speaks
  (then the staleness rule below decides). It lapses two holds
  (``window + guard``) after it was read, when the places taken on its word
  have expired.
* **what every answer since spends** (``left``, ``released``, ``read_from``):
  until the reset, every request of ours sent since the reading (or in flight
  then) also spends its ``Remaining``, so our places that expire in between
  are not reused on its word (a sliding-window counter still weighs them).
  ``left`` is ``released + Remaining`` (``released`` counts our answers) and
  the level holds at most ``left - released + answered``. A reading replaces
  ``left`` when it answers a request sent after the one whose reading set it
  (``read_from``: our send order); an older request's can only lower it.
* **staleness** (``speaks``, ``fresh_until``): when the last answer stated a
  ``Remaining`` and its reset has passed, the server's count may have changed
  (another client, a counter's estimate): one request goes first and its
  answer tells the rest. The stale reading's own bounds (``seen`` too) stop
  there, and the limiter wakes at the reset for it (`next_change()`): a
  sliding-window counter's ``Remaining`` grows during the window, and a
  reading of a burst's answers is low by the answers still on their way, so
  holding to it until our own places expire left a counter's window half
  used. ``RateLimits.probe`` starts a fresh limiter in this state, so not
  even the first window is filled blind.

Times are anything ordered (seconds here, microseconds in the script).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .._protocol.models import RateLimitLevel, RateLimits
    from .._protocol.ratelimit_headers import RateLimitHeaders, StatedQuota

__all__ = ["Heard", "ServerState", "digest", "level_of"]


@attrs.frozen(kw_only=True)
class Heard:
    """An answer's rate-limit headers, digested for one API user's two levels.

    Attributes:
        user_limit: the API user's limit as stated (None: not stated).
        user_remaining: requests the API user's level still takes (None: not stated).
        user_reset: seconds until that grows again (None: not stated).
        id_limit: the scheduleId's limit as stated.
        blamed: on a 429, the level a stated quota says is exhausted (None: unknown).
        pause: on a 429, how long to wait: ``Retry-After``, else the exhausted quota's reset.
    """

    user_limit: int | None = None
    user_remaining: int | None = None
    user_reset: float | None = None
    id_limit: int | None = None
    blamed: RateLimitLevel | None = None
    pause: float | None = None

    @property
    def says_anything(self) -> bool:
        """It states a limit or a ``Remaining``: something `ServerState` keeps."""
        return (
            self.user_limit is not None
            or self.user_remaining is not None
            or self.id_limit is not None
        )


#: An answer that said nothing.
SILENT = Heard()


def level_of(limit: int | None, limits: RateLimits) -> RateLimitLevel:
    """The level a stated limit is about: the API user's from ``sqrt(total * per_schedule)`` up.

    A quota that states no limit (a ``Remaining`` alone) is taken as the API user's.
    """
    if limit is None or limit * limit >= limits.total * limits.per_schedule:
        return "user"
    return "schedule"


def digest(headers: RateLimitHeaders, limits: RateLimits) -> Heard:
    """Put each stated quota on a level, keep the most restrictive per level.

    Args:
        headers: what the answer said.
        limits: the configured limits (the levels' sizes and the window).

    Returns:
        The digest both stores apply.
    """
    if not headers.quotas:  # the common case: nothing stated (a Retry-After at most)
        return SILENT if headers.retry_after is None else Heard(pause=headers.retry_after)
    user: list[StatedQuota] = []
    ids: list[StatedQuota] = []
    for quota in headers.quotas:
        if quota.window is not None and not math.isclose(
            quota.window, limits.window, rel_tol=0.01, abs_tol=0.5
        ):
            continue  # another window (a daily quota, a burst per second): not these limits
        (user if level_of(quota.limit, limits) == "user" else ids).append(quota)
    user_limit = min((q.limit for q in user if q.limit is not None), default=None)
    id_limit = min((q.limit for q in ids if q.limit is not None), default=None)
    counted = [q for q in user if q.remaining is not None]
    tightest = min(counted, key=lambda q: q.remaining or 0, default=None)
    exhausted = [q for q in (*user, *ids) if q.remaining == 0]
    levels = {level_of(q.limit, limits) for q in exhausted}
    if not exhausted:
        levels = {level_of(q.limit, limits) for q in (*user, *ids)}
    blamed: RateLimitLevel | None = levels.pop() if len(levels) == 1 else None
    pause = headers.retry_after
    if pause is None:
        resets = [q.reset for q in exhausted if q.reset is not None]
        pause = max(resets) if resets else None
    return Heard(
        user_limit=user_limit,
        user_remaining=None if tightest is None else tightest.remaining,
        user_reset=None if tightest is None else tightest.reset,
        id_limit=id_limit,
        blamed=blamed,
        pause=pause,
    )


@attrs.define(kw_only=True)
class ServerState:
    """What the server said about one API user's limits (see the module docstring).

    Attributes:
        speaks: the last answer that was not a 429 stated a ``Remaining`` for the
            API user's level.
        stated: the API user's limit as last stated (None: never).
        stated_id: the scheduleId's limit as last stated.
        seen: our answered entries plus the last ``Remaining`` (None: none yet).
        left: our answers counted so far plus the last ``Remaining`` (with ``seen``).
        released: our answers taken in since this state first listened.
        read_from: the send order of the request whose answer set ``left``.
        seen_until: when ``seen`` lapses.
        fresh_until: when the last ``Remaining`` stops being current (its reset).
    """

    speaks: bool = False
    stated: int | None = None
    stated_id: int | None = None
    seen: int | None = None
    left: int = 0
    released: int = 0
    read_from: float = -math.inf
    seen_until: float = -math.inf
    fresh_until: float = -math.inf

    def observe(
        self,
        heard: Heard,
        *,
        now: float,
        answered: int,
        limited: bool,
        hold: float,
        sent: float = math.inf,
    ) -> None:
        """Take in one answer's digest.

        Args:
            heard: the digest (`SILENT` for an answer without rate-limit headers,
                or a failure).
            now: when the answer was observed.
            answered: our answered entries that count at the API user's level
                now, this one included.
            limited: the answer was a 429 (its ``Remaining`` is not a reading).
            hold: ``window + guard``.
            sent: the answered request's place in our send order (its grant);
                by default after every other (the reading is new).
        """
        self.released += 1
        if not limited:
            self.speaks = heard.user_remaining is not None
        if heard.user_limit is not None:
            self.stated = heard.user_limit
        if heard.id_limit is not None:
            self.stated_id = heard.id_limit
        if limited or heard.user_remaining is None:
            return
        seen = answered + heard.user_remaining
        left = self.released + heard.user_remaining
        if self.seen is not None and now < self.fresh_until and now < self.seen_until:
            seen = min(seen, self.seen)  # the same reading period: the lowest holds
            if sent <= self.read_from:  # an answer to an older request: out of order
                left, sent = min(left, self.left), self.read_from
        self.seen, self.left, self.read_from = seen, left, sent
        self.seen_until = now + 2 * hold
        self.fresh_until = now + (heard.user_reset or 0.0)

    @property
    def listening(self) -> bool:
        """It bounds a level: it speaks, or keeps a stated limit or a reading.

        While False, `user_limit()` is the adaptive limit, `id_limit()` the base and
        an answer that states nothing changes nothing, so a store may skip it.
        """
        return (
            self.speaks
            or self.stated is not None
            or self.stated_id is not None
            or self.seen is not None
        )

    def user_limit(
        self, now: float, *, base: int, adaptive: int, answered: int, higher: bool
    ) -> int:
        """The API user's effective limit at ``now``.

        Args:
            now: the current time.
            base: the configured limit.
            adaptive: the adaptive policy's limit now (``base`` when it lowered nothing).
            answered: our answered entries that count now.
            higher: a stated limit above ``base`` may raise it.
        """
        cap = base
        if self.stated is not None and (self.stated < base or higher):
            cap = self.stated
        limit = cap if adaptive >= base else min(adaptive, cap)
        if self.speaks and now >= self.fresh_until:
            limit = min(limit, answered + 1)  # stale: one goes first, its answer tells
        elif self.seen is not None and now < self.seen_until:
            limit = min(limit, self.seen)
            if now < self.fresh_until:  # every answer since the reading spent it
                limit = min(limit, self.left - self.released + answered)
        return max(1, limit)

    def id_limit(self, base: int, *, higher: bool) -> int:
        """The scheduleId's effective limit: the stated one when lower (or ``higher``)."""
        if self.stated_id is not None and (self.stated_id < base or higher):
            return max(1, self.stated_id)
        return base

    def next_change(self, now: float) -> float:
        """When `user_limit()` may grow without an answer (``math.inf``: not before one):
        the reading's reset (stale then: one goes first), or when ``seen`` lapses."""
        at = self.fresh_until if self.speaks and now < self.fresh_until else math.inf
        if self.seen is not None and now < self.seen_until:
            at = min(at, self.seen_until)
        return at
