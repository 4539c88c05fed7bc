"""Server-side rate-limit models: what a real server might count, with time passed in.

The IXOPAY docs say "60 requests per 60-second window per API user" and "10 per
60-second window per scheduleId" without saying how the window is kept,
so the mock server can count in any of four ways:

``sliding-log``
    Exact: a request is admitted while fewer than ``limit`` admitted requests
    arrived in the last ``window`` seconds (an arrival at ``t`` counts until
    ``t + window``, exclusive).
``fixed-window``
    Counters reset at ``origin + k * window``; at most ``limit`` per window.
    A client that bursts at a boundary can get ``2 * limit`` through in
    ``window`` seconds, which a sliding-log client never relies on.
``token-bucket``
    ``limit`` tokens, refilled at ``limit / window`` per second, starting full.
``sliding-counter``
    Cloudflare's weighted sliding-window counter over fixed windows aligned at
    ``origin``: a request is admitted while
    ``previous * (1 - elapsed / window) + current < limit``. It punishes a
    client that bursts early in a window after a full previous window, even
    when a sliding log has room.

Every model is a small mutable object whose methods take ``now``; nothing here
reads a clock or touches asyncio, so tests drive them with hand-computed
arrival sequences. `LimitBook` keys them the way the server does: one
per API user and one per scheduleId.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Literal, Protocol, get_args

import attrs

from ..errors import InvalidParameterError

__all__ = [
    "MODEL_NAMES",
    "FixedWindow",
    "LimitBook",
    "ModelName",
    "ServerLimits",
    "SlidingCounter",
    "SlidingLog",
    "TokenBucket",
    "Verdict",
    "WindowModel",
    "make_model",
]

ModelName = Literal["sliding-log", "fixed-window", "token-bucket", "sliding-counter"]
#: The server models, in the order the CLI lists them.
MODEL_NAMES: tuple[ModelName, ...] = get_args(ModelName)

Level = Literal["total", "per_schedule"]

# Float slack: a client spacing requests exactly window/limit apart must not lose a
# token to rounding; and the smallest wait a refused request is told.
_EPSILON = 1e-9

# Idle keys are swept after this many arrivals, so memory follows what is live.
_SWEEP_EVERY = 4096


class WindowModel(Protocol):
    """One key's counting state (one API user, or one scheduleId)."""

    def wait(self, now: float) -> float:
        """Seconds from ``now`` until a request would be admitted; 0.0 when it is now."""

    def add(self, now: float) -> None:
        """Count a request that arrived at ``now``."""

    def used(self, now: float) -> float:
        """How much of the limit is spent at ``now`` (requests, tokens or the estimate)."""

    def idle(self, now: float) -> bool:
        """True when the state equals a fresh one and can be dropped."""

    def remaining(self, now: float) -> int:
        """Requests admitted at ``now`` if they all came at once (the headers' ``Remaining``)."""

    def reset(self, now: float) -> float:
        """Seconds until `remaining()` grows without more requests (the headers' reset; 0: full)."""


def _check_limit_window(limit: int, window: float) -> None:
    if limit < 1:
        raise InvalidParameterError(f"limit must be >= 1, got {limit!r}")
    if not window > 0:
        raise InvalidParameterError(f"window must be > 0, got {window!r}")


@attrs.define
class SlidingLog:
    """Exact sliding log: at most ``limit`` arrivals in any ``window`` seconds.

    Args:
        limit: admitted requests per window.
        window: the window in seconds.
    """

    limit: int
    window: float
    _log: deque[float] = attrs.field(init=False, factory=deque, repr=False)

    def __attrs_post_init__(self) -> None:
        _check_limit_window(self.limit, self.window)

    def _expire(self, now: float) -> None:
        cutoff = now - self.window
        log = self._log
        while log and log[0] <= cutoff:
            log.popleft()

    def wait(self, now: float) -> float:
        """Seconds until the oldest entry that keeps the log full expires."""
        self._expire(now)
        excess = len(self._log) - self.limit
        if excess < 0:
            return 0.0
        # Never 0 while full: a rounding error must not read as "allowed".
        return max(self._log[excess] + self.window - now, _EPSILON)

    def add(self, now: float) -> None:
        """Append ``now`` to the log."""
        self._expire(now)
        self._log.append(now)

    def used(self, now: float) -> float:
        """Entries in the window ending at ``now``."""
        self._expire(now)
        return float(len(self._log))

    def idle(self, now: float) -> bool:
        """True when no entry is left in the window."""
        self._expire(now)
        return not self._log

    def remaining(self, now: float) -> int:
        """The limit minus the entries in the window."""
        self._expire(now)
        return max(0, self.limit - len(self._log))

    def reset(self, now: float) -> float:
        """Until the oldest entry leaves the window."""
        self._expire(now)
        return self._log[0] + self.window - now if self._log else 0.0


@attrs.define
class FixedWindow:
    """Fixed windows ``[origin + k*window, origin + (k+1)*window)``, ``limit`` each.

    Args:
        limit: admitted requests per window.
        window: the window in seconds.
        origin: a boundary; the phase of the windows.
    """

    limit: int
    window: float
    origin: float = 0.0
    _index: int | None = attrs.field(init=False, default=None)
    _count: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        _check_limit_window(self.limit, self.window)

    def _roll(self, now: float) -> int:
        index = math.floor((now - self.origin) / self.window)
        if index != self._index:
            self._index, self._count = index, 0
        return index

    def wait(self, now: float) -> float:
        """Seconds until the current window ends, when it is full."""
        index = self._roll(now)
        if self._count < self.limit:
            return 0.0
        # Never 0 for a refusal, even where float division put now on the boundary.
        return max(self.origin + (index + 1) * self.window - now, _EPSILON)

    def add(self, now: float) -> None:
        """Count ``now`` in its window."""
        self._roll(now)
        self._count += 1

    def used(self, now: float) -> float:
        """Requests counted in the window holding ``now``."""
        self._roll(now)
        return float(self._count)

    def idle(self, now: float) -> bool:
        """True when the window holding ``now`` has no request."""
        self._roll(now)
        return self._count == 0

    def remaining(self, now: float) -> int:
        """The limit minus this window's count."""
        self._roll(now)
        return max(0, self.limit - self._count)

    def reset(self, now: float) -> float:
        """Until this window ends (0 while nothing is counted)."""
        index = self._roll(now)
        return self.origin + (index + 1) * self.window - now if self._count else 0.0


@attrs.define
class TokenBucket:
    """A bucket of ``limit`` tokens refilled at ``limit / window`` per second, starting full.

    A rejected request that the server counts anyway takes a token it does not
    have: the bucket goes into debt, as a punishing server would.

    Args:
        limit: the bucket's capacity.
        window: seconds to refill from empty to full.
    """

    limit: int
    window: float
    _tokens: float = attrs.field(init=False, default=0.0)
    _at: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        _check_limit_window(self.limit, self.window)
        self._tokens = float(self.limit)

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.limit / self.window

    def _refill(self, now: float) -> None:
        if self._at is not None and now > self._at:
            self._tokens = min(float(self.limit), self._tokens + (now - self._at) * self.rate)
        self._at = now if self._at is None else max(self._at, now)

    def wait(self, now: float) -> float:
        """Seconds until one whole token is in the bucket."""
        self._refill(now)
        if self._tokens >= 1.0 - _EPSILON:
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def add(self, now: float) -> None:
        """Take a token (into debt if there is none)."""
        self._refill(now)
        self._tokens -= 1.0

    def used(self, now: float) -> float:
        """Tokens missing from a full bucket."""
        self._refill(now)
        return self.limit - self._tokens

    def idle(self, now: float) -> bool:
        """True when the bucket is full again."""
        self._refill(now)
        return self._tokens >= self.limit - _EPSILON

    def remaining(self, now: float) -> int:
        """Whole tokens in the bucket."""
        self._refill(now)
        return max(0, math.floor(self._tokens + _EPSILON))

    def reset(self, now: float) -> float:
        """Until the next whole token (0 when full)."""
        self._refill(now)
        if self._tokens >= self.limit - _EPSILON:
            return 0.0
        return (math.floor(self._tokens + _EPSILON) + 1 - self._tokens) / self.rate


@attrs.define
class SlidingCounter:
    """Weighted sliding-window counter (Cloudflare's approximation of a sliding window).

    The estimate at ``now`` is ``previous * (1 - elapsed / window) + current``,
    where ``current`` counts the fixed window holding ``now``, ``previous`` the
    one before, and ``elapsed`` is the time since the current window began.
    A request is admitted while the estimate is below ``limit``.

    Args:
        limit: the estimate's ceiling.
        window: the window in seconds.
        origin: a window boundary.
    """

    limit: int
    window: float
    origin: float = 0.0
    _index: int | None = attrs.field(init=False, default=None)
    _current: int = attrs.field(init=False, default=0)
    _previous: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        _check_limit_window(self.limit, self.window)

    def _roll(self, now: float) -> float:
        """Move to the window holding ``now``; return that window's start."""
        index = math.floor((now - self.origin) / self.window)
        if self._index is None or index > self._index + 1:
            self._previous, self._current = 0, 0
        elif index == self._index + 1:
            self._previous, self._current = self._current, 0
        self._index = index
        return self.origin + index * self.window

    def _estimate(self, now: float, start: float) -> float:
        return self._previous * (1.0 - (now - start) / self.window) + self._current

    def estimate(self, now: float) -> float:
        """The weighted count at ``now``."""
        return self._estimate(now, self._roll(now))

    def wait(self, now: float) -> float:
        """Seconds until the estimate falls below the limit.

        The estimate reaches the limit exactly at the returned instant and is
        below it just after; a refused request never gets less than
        ``1e-9`` s, so "refused" and ``wait > 0`` always agree.
        """
        start = self._roll(now)
        if self._estimate(now, start) < self.limit:
            return 0.0
        if self._current >= self.limit:
            # Nothing helps inside this window; in the next one the estimate is
            # current * (1 - e / window), below the limit once e > window * (1 - limit / current).
            until = start + self.window + self.window * (1 - self.limit / self._current)
        else:
            # previous > 0 here: previous * (1 - e / window) + current < limit.
            until = start + self.window * (1 - (self.limit - self._current) / self._previous)
        return max(until - now, _EPSILON)

    def add(self, now: float) -> None:
        """Count ``now`` in its window."""
        self._roll(now)
        self._current += 1

    def used(self, now: float) -> float:
        """The weighted estimate."""
        return self.estimate(now)

    def idle(self, now: float) -> bool:
        """True when neither the current nor the previous window counted anything."""
        self._roll(now)
        return self._current == 0 and self._previous == 0

    def remaining(self, now: float) -> int:
        """How many more the estimate admits at ``now``."""
        return max(0, math.ceil(self.limit - self.estimate(now) - _EPSILON))

    def reset(self, now: float) -> float:
        """Until the estimate has decayed enough to admit one more, or this window ends."""
        start = self._roll(now)
        end = start + self.window - now
        if not self._previous:
            return end if self._current else 0.0
        target = self.limit - self.remaining(now)  # the estimate must fall below it
        decay = self._previous / self.window
        return min(end, max(0.0, (self._estimate(now, start) - target) / decay))


def make_model(name: ModelName, *, limit: int, window: float, origin: float = 0.0) -> WindowModel:
    """Build a fresh model state for one key.

    Args:
        name: one of `MODEL_NAMES`.
        limit: requests per window.
        window: the window in seconds.
        origin: a window boundary (fixed-window and sliding-counter only).

    Returns:
        The new state.

    Raises:
        InvalidParameterError: unknown model name, limit < 1 or window <= 0.
    """
    if name == "sliding-log":
        return SlidingLog(limit, window)
    if name == "fixed-window":
        return FixedWindow(limit, window, origin)
    if name == "token-bucket":
        return TokenBucket(limit, window)
    if name == "sliding-counter":
        return SlidingCounter(limit, window, origin)
    raise InvalidParameterError(f"unknown rate-limit model {name!r}; choose from {MODEL_NAMES}")


def _at_least_one(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise InvalidParameterError(f"{attribute.name} must be >= 1, got {value!r}")


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise InvalidParameterError(f"{attribute.name} must be > 0, got {value!r}")


def _model_name(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if value not in MODEL_NAMES:
        raise InvalidParameterError(f"model must be one of {MODEL_NAMES}, got {value!r}")


@attrs.frozen(kw_only=True)
class ServerLimits:
    """How the mock server limits requests (defaults: the documented 60 and 10 per 60 s).

    Attributes:
        total: requests per window per API user (the Basic-auth username),
            whatever connector apiKey the path names.
        per_schedule: requests per window per scheduleId.
        window: the window in seconds; tests use 1-2 s.
        model: how the server counts: ``sliding-log``, ``fixed-window``,
            ``sliding-counter`` or ``token-bucket`` (the testing guide compares them).
        phase: for ``fixed-window`` and ``sliding-counter``, seconds from the
            server's start to the first window boundary (taken modulo ``window``).
        count_rejected: a 429 still counts against both levels (a punishing server).
        retry_after: send ``Retry-After`` (whole seconds, rounded up) on 429.
    """

    total: int = attrs.field(default=60, validator=_at_least_one)
    per_schedule: int = attrs.field(default=10, validator=_at_least_one)
    window: float = attrs.field(default=60.0, validator=_positive)
    model: ModelName = attrs.field(default="sliding-log", validator=_model_name)
    phase: float = 0.0
    count_rejected: bool = False
    retry_after: bool = False


@attrs.frozen
class Verdict:
    """The limiter's decision on one arrival.

    Attributes:
        allowed: both levels admitted it.
        level: the level that refused (``"per_schedule"`` when both did), or None.
        wait: seconds until the refusing levels would admit; 0.0 when allowed.
    """

    allowed: bool
    level: Level | None = None
    wait: float = 0.0


@attrs.define
class LimitBook:
    """Both levels' states, keyed like the real server: API user, and scheduleId.

    One book serves every operation: the API user's level counts all of them,
    start included; the scheduleId's level counts the operations on one
    schedule (get, pause, continue, update, cancel) whatever the operation.

    Args:
        limits: the configuration.
        origin: the time the window boundaries are measured from (plus ``limits.phase``).
    """

    limits: ServerLimits
    origin: float = 0.0
    _users: dict[str, WindowModel] = attrs.field(init=False, factory=dict, repr=False)
    _schedules: dict[str, WindowModel] = attrs.field(init=False, factory=dict, repr=False)
    _since_sweep: int = attrs.field(init=False, default=0, repr=False)

    def _model(self, table: dict[str, WindowModel], key: str, limit: int) -> WindowModel:
        model = table.get(key)
        if model is None:
            model = table[key] = make_model(
                self.limits.model,
                limit=limit,
                window=self.limits.window,
                origin=self.origin + self.limits.phase,
            )
        return model

    def _pair(self, user: str, schedule_id: str | None) -> tuple[WindowModel, WindowModel | None]:
        """The user's state and the scheduleId's (None for an operation without one: start)."""
        return (
            self._model(self._users, user, self.limits.total),
            None
            if schedule_id is None
            else self._model(self._schedules, schedule_id, self.limits.per_schedule),
        )

    def peek(self, now: float, *, user: str, schedule_id: str | None) -> Verdict:
        """Decide on an arrival at ``now`` without counting it.

        Args:
            now: the server's clock.
            user: the API user.
            schedule_id: the scheduleId; None for an operation that only the
                API user's limit counts (start).

        Returns:
            The verdict.
        """
        user_model, schedule_model = self._pair(user, schedule_id)
        user_wait = user_model.wait(now)
        schedule_wait = 0.0 if schedule_model is None else schedule_model.wait(now)
        if schedule_wait > 0:
            return Verdict(False, "per_schedule", max(user_wait, schedule_wait))
        if user_wait > 0:
            return Verdict(False, "total", user_wait)
        return Verdict(True)

    def arrive(self, now: float, *, user: str, schedule_id: str | None) -> Verdict:
        """Decide on an arrival at ``now`` and count it as the configuration says.

        Args:
            now: the server's clock.
            user: the API user.
            schedule_id: the scheduleId; None for an operation that only the
                API user's limit counts (start).

        Returns:
            The verdict.
        """
        verdict = self.peek(now, user=user, schedule_id=schedule_id)
        if verdict.allowed:
            self.count(now, user=user, schedule_id=schedule_id)
            return verdict
        return self.refuse(now, user=user, schedule_id=schedule_id, level=verdict.level)

    def refuse(
        self, now: float, *, user: str, schedule_id: str | None, level: Level | None = "total"
    ) -> Verdict:
        """Refuse an arrival at ``now``: count it if the server counts refusals, say the wait.

        The wait is read after the refusal was counted, so a client that waits
        that long is admitted even by a server that counts what it refused.

        Args:
            now: the server's clock.
            user: the API user.
            schedule_id: the scheduleId; None for an operation that only the
                API user's limit counts (start).
            level: the level that refused it.

        Returns:
            A refusing verdict.
        """
        if self.limits.count_rejected:
            self.count(now, user=user, schedule_id=schedule_id)
        return Verdict(False, level, self.peek(now, user=user, schedule_id=schedule_id).wait)

    def count(self, now: float, *, user: str, schedule_id: str | None) -> None:
        """Count an arrival at both levels without deciding on it.

        Args:
            now: the server's clock.
            user: the API user.
            schedule_id: the scheduleId; None for an operation that only the
                API user's limit counts (start).
        """
        for model in self._pair(user, schedule_id):
            if model is not None:
                model.add(now)
        self._since_sweep += 1
        if self._since_sweep >= _SWEEP_EVERY:
            self.sweep(now)

    def used(self, now: float, *, user: str | None = None, schedule_id: str | None = None) -> float:
        """How much of one key's limit is spent at ``now`` (0.0 for a key never seen).

        Args:
            now: the server's clock.
            user: the API user, or
            schedule_id: the scheduleId (give exactly one).

        Returns:
            Requests, tokens or the weighted estimate, per the model.

        Raises:
            InvalidParameterError: not exactly one key given.
        """
        if (user is None) == (schedule_id is None):
            raise InvalidParameterError("give exactly one of user and schedule_id")
        table, key = (self._users, user) if user is not None else (self._schedules, schedule_id)
        model = table.get(key or "")
        return model.used(now) if model is not None else 0.0

    def quotas(
        self, now: float, *, user: str, schedule_id: str | None
    ) -> dict[Level, tuple[int, int, float]]:
        """Each level's ``(limit, remaining, reset)`` at ``now``, as the headers state them.

        Args:
            now: the server's clock.
            user: the API user.
            schedule_id: the scheduleId; None for start (the API user's level only).
        """
        user_model, schedule_model = self._pair(user, schedule_id)
        found: dict[Level, tuple[int, int, float]] = {
            "total": (self.limits.total, user_model.remaining(now), user_model.reset(now))
        }
        if schedule_model is not None:
            found["per_schedule"] = (
                self.limits.per_schedule,
                schedule_model.remaining(now),
                schedule_model.reset(now),
            )
        return found

    def sweep(self, now: float) -> None:
        """Drop the states of keys that are idle at ``now``."""
        for table in (self._users, self._schedules):
            for key in [key for key, model in table.items() if model.idle(now)]:
                del table[key]
        self._since_sweep = 0

    @property
    def live_keys(self) -> int:
        """API users plus scheduleIds that have state."""
        return len(self._users) + len(self._schedules)
