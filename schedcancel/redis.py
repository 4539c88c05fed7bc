"""RedisLimiter: one API user's budget shared by every process and host that uses it.

Several workers cancelling for the same API user must share its 60-per-window
budget, or together they overrun it. :class:`RedisLimiter` keeps the two-level
sliding-window log of ``RATE-LIMITS.md`` in Redis, and one Lua script
(``schedcancel/lua/limiter.lua``) checks and adds both levels atomically with
Redis ``TIME`` as the one clock.

Waiting stays local: when the script says "not yet, in 1.3 s", this process
sleeps that long (plus a little jitter, so processes do not wake in lock step)
and asks again. One dispatcher task per limiter asks on behalf of this
process's waiters in rounds: one script call tries up to 64 of them in the
in-process limiter's order, so a thousand local waiters do not stampede
Redis. Releases that arrive while a call is out go together in the next one.

Install with ``pip install 'schedcancel[redis]'``; importing :mod:`schedcancel`
never imports redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import itertools
import logging
import math
import random
import secrets
from importlib.resources import files
from typing import TYPE_CHECKING, Final, Literal, TypeAlias, cast
from urllib.parse import urlsplit

import attrs

try:
    import redis.asyncio as aioredis
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry
except ImportError as exc:
    raise ImportError(
        "schedcancel.redis needs redis-py; install it with: pip install 'schedcancel[redis]'"
    ) from exc

from ._models import Limiter, LimiterStats, Permit, RateLimits
from .errors import BackendError, InvalidParameterError, QueueTimeoutError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Sequence

__all__ = ["RedisLimiter"]

log = logging.getLogger("schedcancel.redis")

RedisClient: TypeAlias = "aioredis.Redis | aioredis.RedisCluster"

_SCRIPT: Final = files("schedcancel").joinpath("lua/limiter.lua").read_text(encoding="utf-8")
_US: Final = 1_000_000
_DEFAULT_PORT: Final = 6379
# Most candidates one script round tries: a full window's burst of the documented
# limit in one round trip, without unbounded key lists.
_ROUND: Final = 64


def _us(seconds: float) -> int:
    return math.ceil(seconds * _US)


def _describe_url(url: str) -> str:
    """Say where a Redis URL points without its password, user name or query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "redis (unparsable URL)"
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    where = f"{parts.scheme}://{host}:{port or _DEFAULT_PORT}"
    return where + (parts.path if parts.path not in ("", "/") else "")


def _describe_client(client: RedisClient) -> str:
    """Say where a client points, from its connection settings (never the password)."""
    pool = getattr(client, "connection_pool", None)
    kwargs: dict[str, object] = getattr(pool, "connection_kwargs", {}) if pool else {}
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    if "host" in kwargs:
        return f"redis://{kwargs['host']}:{kwargs.get('port', _DEFAULT_PORT)}/{kwargs.get('db', 0)}"
    return type(client).__name__


def _connect(
    redis: str | RedisClient, timeout: float
) -> tuple[RedisClient, str, tuple[str, ...], bool]:
    """Make (or adopt) the client.

    Returns:
        The client, where it points (no password), the secrets to scrub from
        messages, and whether the limiter owns (and so closes) the client.

    Raises:
        InvalidParameterError: the URL is not usable.
    """
    if not isinstance(redis, str):
        pool = getattr(redis, "connection_pool", None)
        password = getattr(pool, "connection_kwargs", {}).get("password") if pool else None
        secrets_ = (password,) if isinstance(password, str) and password else ()
        return redis, _describe_client(redis), secrets_, False
    where = _describe_url(redis)
    try:
        password = urlsplit(redis).password
        client = aioredis.Redis.from_url(
            redis,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # A few quick retries ride out a blip; the call's own timeout bounds them.
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), retries=2),
        )
    except ValueError as exc:
        raise InvalidParameterError(f"not a usable Redis URL: {where}") from exc
    return client, where, (password,) if password else (), True


@attrs.define(eq=False)
class _Handle:
    """A Redis permit's bookkeeping: which log members to re-score at release."""

    owner: RedisLimiter
    token: str
    acquired_us: int
    released: bool = False
    local: Permit | None = None  # the same request's place in the fallback limiter


@attrs.frozen
class _Round:
    """The acquire script's answer for one round of candidates, times in seconds.

    Attributes:
        now_us: Redis TIME when the script ran (the granted entries' acquire time).
        user_used: entries that count in the API user's log afterwards.
        user_limit: the API user's effective limit (adaptive may lower it).
        smooth: the API user's level runs smooth.
        user_wait: how long until the API user's level admits one more (0: now).
        results: per candidate tried, in order: None when granted, else how
            long its scheduleId holds it (0.0: not held by it).
    """

    now_us: int
    user_used: int
    user_limit: int
    smooth: bool
    user_wait: float
    results: tuple[float | None, ...]


@attrs.frozen
class _Release:
    """A release waiting for the next script call."""

    schedule_id: str
    handle: _Handle
    limited: bool
    retry_after: float | None
    done: asyncio.Future[None]


@attrs.define(eq=False)
class _Waiter:
    schedule_id: str
    order: tuple[int, int, int]  # (-priority, batch, arrival); see _push_ready
    deadline: float | None
    future: asyncio.Future[Permit]
    active: bool = True

    def __lt__(self, other: _Waiter) -> bool:
        return self.order < other.order


@attrs.define(eq=False)
class _IdQueue:
    """One scheduleId's local waiters, best first; inactive ones are dropped lazily."""

    heap: list[_Waiter] = attrs.Factory(list)
    active: int = 0  # waiters not finished, those out in a round included
    taken: int = 0  # waiters out in the round being asked (not in ``heap``)
    blocked_until: float = 0.0
    version: int = 0

    @property
    def idle(self) -> bool:
        return self.active == 0 and self.taken == 0 and self.blocked_until == 0.0

    def head(self) -> _Waiter | None:
        while self.heap and not self.heap[0].active:
            heapq.heappop(self.heap)
        return self.heap[0] if self.heap else None


class _UseFallback(Exception):  # noqa: N818 - a signal between our own tasks, never raised to users
    """Tells a queued acquire to ask the fallback limiter instead."""


class RedisLimiter:
    """One API user's rate limits kept in Redis and shared by every process using them.

    It implements :class:`schedcancel.Limiter` with the semantics of the
    in-process limiter (two-level sliding-window log, response-anchored
    release, 429 pauses, smooth and adaptive modes), but its state lives in
    Redis, so any number of processes and hosts that construct a
    ``RedisLimiter`` for the same ``username`` and ``key_prefix`` share one
    budget::

        limiter = RedisLimiter("redis://127.0.0.1:6379/0", username="api-user")
        async with ScheduleClient(key, username="api-user", password=pw, limiter=limiter) as client:
            ...
        await limiter.aclose()

    Keys live under one hash tag, ``{<key_prefix>:<first 16 hex of sha256(username)>}``,
    so a Redis Cluster keeps them in one slot, and never contain the username.

    Failure is closed by default: when Redis cannot be reached or fails, queued
    and new acquires raise :class:`BackendError` (no request is sent without
    the shared budget's consent). With ``fallback`` the limiter instead logs
    one WARNING and admits through the given in-process limiter for
    ``fallback_retry`` seconds before trying Redis again. The fallback is
    kept current all along: every request admitted through Redis also takes
    its place there, so switching to the fallback, or back to Redis, never
    lets this process send more than the limits within a window.

    Args:
        redis: a ``redis://`` / ``rediss://`` / ``unix://`` URL (the limiter
            makes and closes its own client), or a ``redis.asyncio.Redis`` /
            ``RedisCluster`` client (the caller keeps and closes it).
        username: the API user whose budget this is (the Basic-auth username);
            only a hash of it reaches Redis.
        limits: the server's limits; the same on every process sharing the budget.
        key_prefix: namespace for the keys (no braces).
        in_flight_timeout: the longest a request may be in flight; must exceed
            the client's request timeout. An entry not released within it
            (its process died) stops counting ``window + guard`` later.
        timeout: the longest any one Redis call may take before it counts as
            a failure.
        jitter: up to this many seconds are added at random to each local
            wait, so processes do not ask Redis in lock step.
        fallback: an in-process limiter to use while Redis fails.
        fallback_retry: seconds to stay on the fallback before trying Redis again.

    Raises:
        InvalidParameterError: an argument is invalid (before any I/O).
    """

    def __init__(
        self,
        redis: str | RedisClient,
        *,
        username: str,
        limits: RateLimits | None = None,
        key_prefix: str = "schedcancel",
        in_flight_timeout: float = 60.0,
        timeout: float = 5.0,
        jitter: float = 0.002,
        fallback: Limiter | None = None,
        fallback_retry: float = 30.0,
    ) -> None:
        if not username:
            raise InvalidParameterError("username must be a non-empty string")
        if not key_prefix or set(key_prefix) & set("{}"):
            raise InvalidParameterError("key_prefix must be a non-empty string without braces")
        for name, value in (
            ("in_flight_timeout", in_flight_timeout),
            ("timeout", timeout),
            ("fallback_retry", fallback_retry),
        ):
            if not value > 0:
                raise InvalidParameterError(f"{name} must be > 0, got {value!r}")
        if not jitter >= 0:
            raise InvalidParameterError(f"jitter must be >= 0, got {jitter!r}")
        self._limits = limits if limits is not None else RateLimits()
        self._in_flight_timeout = in_flight_timeout
        self._timeout = timeout
        self._jitter = jitter
        self._fallback = fallback
        self._fallback_retry = fallback_retry
        client, self._where, self._secrets, self._owns_client = _connect(redis, timeout)
        self._client = client
        self._script = client.register_script(_SCRIPT)
        self._user_hash = hashlib.sha256(username.encode()).hexdigest()[:16]
        self._tag = f"{{{key_prefix}:{self._user_hash}}}"
        self._user_keys = (
            f"{self._tag}:log:u",
            f"{self._tag}:pause:u",
            f"{self._tag}:last:u",
            f"{self._tag}:adapt:u",
        )

        # Local queue: per-id heaps, a heap of ids that may go (best first), a heap
        # of ids held back by their own log, and a heap of deadlines.
        self._ids: dict[str, _IdQueue] = {}
        self._ready: list[tuple[tuple[int, int, int, int], int, str]] = []
        self._blocked: list[tuple[float, str]] = []
        self._deadlines: list[tuple[float, int, _Waiter]] = []
        self._arrivals = itertools.count()
        # One counter for every queue's ready-heap entries: a queue dropped and made
        # again must not match the stale entries its predecessor left behind.
        self._versions = itertools.count(1)
        self._requeues = itertools.count(-(1 << 62))
        self._batch = 0
        self._queued = 0
        self._user_blocked_until = 0.0
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._in_flight: set[_Handle] = set()
        self._round: list[tuple[_Waiter, _IdQueue]] = []
        self._releases: list[_Release] = []
        self._releaser: asyncio.Task[None] | None = None
        self._closed = False

        self._fallback_until = 0.0
        self._rate_limited = 0
        self._last: _Round | None = None
        self._last_at = 0.0

    # -- public surface -------------------------------------------------------

    @property
    def limits(self) -> RateLimits:
        """The limits this limiter keeps."""
        return self._limits

    def keys(self, schedule_id: str | None = None) -> tuple[str, ...]:
        """The Redis keys the script touches for the API user (and ``schedule_id``).

        Args:
            schedule_id: also list this scheduleId's keys.

        Returns:
            Key names, all under this limiter's one hash tag.
        """
        if schedule_id is None:
            return self._user_keys
        return self._user_keys + self._id_keys(schedule_id)

    def __repr__(self) -> str:
        return (
            f"RedisLimiter(redis={self._where!r}, user={self._user_hash}, "
            f"total={self._limits.total}, per_schedule={self._limits.per_schedule}, "
            f"window={self._limits.window}, mode={self._limits.mode!r}, "
            f"queued={self._queued}, in_flight={len(self._in_flight)})"
        )

    async def acquire(
        self,
        schedule_id: str,
        *,
        priority: int = 0,
        queue_timeout: float | None = None,
        requeue: bool = False,
    ) -> Permit:
        """Wait until a request for ``schedule_id`` may start, and take its entries.

        Args:
            schedule_id: the id whose per-schedule log is charged too.
            priority: higher goes first among this process's eligible waiters.
            queue_timeout: give up when the shared log shows that the request
                cannot start within this many seconds; that is known at once
                from Redis's answer, so the call fails at once. A request
                that may start is never failed for the time the local queue
                takes to ask Redis on its behalf.
            requeue: a request coming back after a 429: it goes to the front.

        Returns:
            The permit to hand to :meth:`release`.

        Raises:
            InvalidParameterError: ``schedule_id`` or ``queue_timeout`` is invalid.
            QueueTimeoutError: not admitted within ``queue_timeout``.
            BackendError: Redis failed and there is no fallback.
            RuntimeError: the limiter is closed.
        """
        if not schedule_id:
            raise InvalidParameterError("schedule_id must be a non-empty string")
        if queue_timeout is not None and not queue_timeout >= 0:
            raise InvalidParameterError(f"queue_timeout must be >= 0, got {queue_timeout!r}")
        if self._closed:
            raise RuntimeError("RedisLimiter is closed")
        loop = asyncio.get_running_loop()
        deadline = None if queue_timeout is None else loop.time() + queue_timeout
        if self._on_fallback(loop.time()):
            return await self._fallback_acquire(schedule_id, priority, deadline, requeue)

        if deadline is not None:
            self._check_known_wait(schedule_id, deadline, loop.time())
        if requeue:
            # Back from a 429: before every ordinary waiter of its priority, FIFO among its kind.
            order = (-priority, -1, next(self._requeues))
        else:
            order = (-priority, self._batch, next(self._arrivals))
        waiter = _Waiter(schedule_id, order, deadline, loop.create_future())
        self._enqueue(waiter)
        try:
            try:
                permit = await waiter.future
            except asyncio.CancelledError:
                # Granted just as we were cancelled: the entries were never used,
                # so give them back rather than let them count.
                future = waiter.future
                if future.done() and not future.cancelled() and future.exception() is None:
                    self._give_back(future.result())
                raise
            finally:
                self._leave(waiter)
        except _UseFallback:
            return await self._fallback_acquire(schedule_id, priority, deadline, requeue)
        if self._fallback is not None:
            await self._shadow(permit, priority, deadline, requeue)
        return permit

    def _check_known_wait(self, schedule_id: str, deadline: float, now: float) -> None:
        """Fail now when a wait this process already knows of (a pause, a full log)
        outlasts the deadline, as the in-process limiter does, not when it ends."""
        queue = self._ids.get(schedule_id)
        known = max(self._user_blocked_until, queue.blocked_until if queue else 0.0)
        if known > deadline:
            raise QueueTimeoutError(
                f"expected wait {known - now:.3f}s exceeds queue_timeout {deadline - now:g}s",
                expected_wait=known - now,
            )

    async def _shadow(
        self, permit: Permit, priority: int, deadline: float | None, requeue: bool
    ) -> None:
        """Take the Redis permit's place in the fallback too, so it knows our own sends.

        Without this, the fallback would start empty after this process had
        just spent the budget through Redis (and Redis would not know what the
        fallback admitted): one process alone could send twice the limit in a
        window. Normally it admits at once: this process's sends are a part of
        what Redis admitted.
        """
        try:
            local = await self._fallback_acquire(permit.schedule_id, priority, deadline, requeue)
        except BaseException:
            self._give_back(permit)  # never sent
            raise
        cast("_Handle", permit.handle).local = local

    async def release(
        self,
        permit: Permit,
        *,
        rate_limited: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Report that the request's response (or failure) was observed now.

        The permit's entries are re-scored to count ``window + guard`` from
        now (Redis ``TIME``). With ``rate_limited`` the level that was hit
        pauses for every process. A Redis failure here is logged, not raised:
        the entries then keep their provisional score, which is the safe side.

        Args:
            permit: what :meth:`acquire` returned.
            rate_limited: the server answered 429.
            retry_after: the server's ``Retry-After`` in seconds, if it sent one.

        Raises:
            ValueError: the permit is not from this limiter.
        """
        handle = permit.handle
        if not isinstance(handle, _Handle):
            if self._fallback is None:
                raise ValueError("permit was not issued by this limiter")
            await self._fallback.release(permit, rate_limited=rate_limited, retry_after=retry_after)
            return
        if handle.owner is not self:
            raise ValueError("permit was not issued by this limiter")
        if handle.released:
            raise ValueError("permit was released already")
        handle.released = True
        if handle.local is not None and self._fallback is not None:
            await self._fallback.release(
                handle.local, rate_limited=rate_limited, retry_after=retry_after
            )
        if self._closed:
            return
        self._in_flight.discard(handle)
        if rate_limited:
            self._rate_limited += 1
        # Releases that come while one script call is out go together in the next
        # one: a burst of responses costs a few round trips, not one connection each.
        done = asyncio.get_running_loop().create_future()
        self._releases.append(_Release(permit.schedule_id, handle, rate_limited, retry_after, done))
        if self._releaser is None or self._releaser.done():
            self._releaser = asyncio.get_running_loop().create_task(
                self._release_all(), name="schedcancel-redis-releaser"
            )
        await done

    async def _release_all(self) -> None:
        """Send queued releases to Redis, up to a round's worth per script call."""
        limits = self._limits
        while self._releases:
            batch, self._releases = self._releases[:_ROUND], self._releases[_ROUND:]
            keys = list(self._user_keys)
            args: list[str | int] = [
                "release",
                limits.total,
                limits.per_schedule,
                _us(limits.window),
                _us(limits.guard),
                _us(limits.effective_retry_after_cap),
                int(limits.adaptive),
                int(limits.mode == "smooth"),
            ]
            for item in batch:
                keys.extend(self._id_keys(item.schedule_id))
                retry_after = -1 if item.retry_after is None else _us(max(0.0, item.retry_after))
                args += [item.handle.token, item.handle.acquired_us, int(item.limited), retry_after]
            try:
                raw = await self._eval(keys, *args)
            except BackendError as exc:
                log.warning(
                    "could not release %d permit(s); they keep counting until their "
                    "provisional expiry: %s",
                    len(batch),
                    exc,
                )
            else:
                _, user_pause, change, limit = (int(x) for x in cast("list[int]", raw))
                if user_pause:
                    until = self._loop_time() + user_pause / _US
                    self._user_blocked_until = max(self._user_blocked_until, until)
                if change:
                    self._log_adapted(change, limit)
            for item in batch:
                if not item.done.done():
                    item.done.set_result(None)

    async def estimate(self, schedule_id: str | None = None) -> float:
        """Seconds a new request would wait if it asked now, without asking.

        It is the later of what the shared log says and what this process's
        own queue adds (each full window of local waiters ahead costs a window).

        Args:
            schedule_id: also consider this scheduleId's log and waiters.

        Returns:
            A lower bound on the wait in seconds (0 when it could go now).

        Raises:
            BackendError: Redis failed and there is no fallback.
        """
        loop = asyncio.get_running_loop()
        if self._on_fallback(loop.time()) and self._fallback is not None:
            return await self._fallback.estimate(schedule_id)
        rnd, _ = await self._ask("peek", [] if schedule_id is None else [schedule_id])
        hold = self._limits.window + self._limits.guard
        wait = max([rnd.user_wait, *(r for r in rnd.results if r is not None)])
        wait = max(wait, (self._queued // max(1, rnd.user_limit)) * hold)
        queue = self._ids.get(schedule_id) if schedule_id is not None else None
        if queue is not None:
            wait = max(wait, (queue.active // self._limits.per_schedule) * hold)
        return wait

    def stats(self) -> LimiterStats:
        """A snapshot: local counts, and the shared log as of the last Redis round trip.

        Use :meth:`shared_stats` for the shared state read now.
        """
        now = self._loop_time()
        last = self._last
        next_free = max(0.0, self._user_blocked_until - now)
        if last is not None:
            next_free = max(next_free, last.user_wait - (now - self._last_at))
        return LimiterStats(
            queued=self._queued,
            in_flight=len(self._in_flight),
            total_used=last.user_used if last else 0,
            total_limit=last.user_limit if last else self._limits.total,
            schedule_ids=len(self._ids),
            next_free=next_free,
            rate_limited=self._rate_limited,
            mode="smooth" if (last.smooth if last else self._limits.mode == "smooth") else "exact",
        )

    async def shared_stats(self) -> LimiterStats:
        """Read the shared state from Redis now and return a snapshot.

        Raises:
            BackendError: Redis failed.
        """
        await self._ask("peek", [])
        return self.stats()

    async def aclose(self) -> None:
        """Stop the dispatcher, cancel queued waiters, close a client made from a URL.

        A client passed in and a fallback limiter stay open: they belong to the caller.
        """
        if self._closed:
            return
        self._closed = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher
        for waiter in self._waiters():
            waiter.future.cancel()
        pending = [t for t in (self._releaser, *self._background) if t is not None]
        if pending:
            await asyncio.wait(pending, timeout=self._timeout)
        if self._owns_client:
            await self._client.aclose()

    # -- Redis ------------------------------------------------------------------

    def _id_keys(self, schedule_id: str) -> tuple[str, str, str]:
        return (
            f"{self._tag}:log:s:{schedule_id}",
            f"{self._tag}:pause:s:{schedule_id}",
            f"{self._tag}:last:s:{schedule_id}",
        )

    async def _eval(self, keys: Sequence[str], *args: str | int | float) -> object:
        """Run the script (EVALSHA, loading it again after NOSCRIPT) within the timeout.

        Raises:
            BackendError: Redis failed, timed out or refused the script.
        """
        try:
            async with asyncio.timeout(self._timeout):
                return await self._script(keys=list(keys), args=list(args))
        except (RedisError, OSError, TimeoutError) as exc:
            raise BackendError(self._failure_message(exc)) from exc

    def _failure_message(self, exc: BaseException) -> str:
        detail = str(exc) or "no answer"
        if isinstance(exc, TimeoutError) and not isinstance(exc, RedisError):
            detail = f"no answer within {self._timeout}s"
        for secret in self._secrets:
            detail = detail.replace(secret, "***")
        return f"Redis at {self._where} failed: {type(exc).__name__}: {detail}"

    async def _ask(
        self, op: Literal["acquire", "peek"], schedule_ids: Sequence[str]
    ) -> tuple[_Round, str]:
        """Run one round of the script for candidates in the order they should be served.

        Args:
            op: ``"acquire"`` takes entries for every candidate both levels
                admit; ``"peek"`` only reports on the first one.
            schedule_ids: one per candidate (an id may repeat).

        Returns:
            The round's answer, and the token base its entries carry.

        Raises:
            BackendError: Redis failed.
        """
        limits = self._limits
        base = secrets.token_hex(6)
        keys = list(self._user_keys)
        for schedule_id in schedule_ids:
            keys.extend(self._id_keys(schedule_id))
        raw = await self._eval(
            keys,
            op,
            base,
            limits.total,
            limits.per_schedule,
            _us(limits.window),
            _us(limits.guard),
            _us(self._in_flight_timeout),
            int(limits.mode == "smooth"),
            repr(limits.slack),
            # An in-flight entry past its earliest possible end is looked at again this often.
            _us(max(0.01, limits.window / 100)),
            int(limits.adaptive),
        )
        now_us, user_used, user_limit, smooth, user_wait, *results = (
            int(x) for x in cast("list[int]", raw)
        )
        rnd = _Round(
            now_us=now_us,
            user_used=user_used,
            user_limit=user_limit,
            smooth=bool(smooth),
            user_wait=user_wait / _US,
            results=tuple(None if r < 0 else r / _US for r in results),
        )
        self._last = rnd
        self._last_at = self._loop_time()
        return rnd, base

    async def _undo(self, schedule_id: str, handle: _Handle) -> None:
        try:
            await self._eval(self.keys(schedule_id), "undo", handle.token, handle.acquired_us)
        except BackendError as exc:
            log.warning("could not give back an unused permit (it expires on its own): %s", exc)
            return
        # Places were freed before the time our local blocks assumed: ask again.
        self._user_blocked_until = 0.0
        queue = self._ids.get(schedule_id)
        if queue is not None and queue.blocked_until:
            queue.blocked_until = 0.0
            self._push_ready(schedule_id, queue)
        self._wake.set()

    # -- local queue -----------------------------------------------------------

    def _loop_time(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return 0.0

    def _waiters(self) -> list[_Waiter]:
        """Every unfinished waiter: queued, or out in the round being asked."""
        waiting = [w for queue in self._ids.values() for w in queue.heap if w.active]
        return waiting + [w for w, _ in self._round if w.active]

    def _enqueue(self, waiter: _Waiter) -> None:
        queue = self._ids.get(waiter.schedule_id)
        if queue is None:
            queue = self._ids[waiter.schedule_id] = _IdQueue()
        heapq.heappush(queue.heap, waiter)
        queue.active += 1
        self._queued += 1
        if waiter.deadline is not None:
            heapq.heappush(self._deadlines, (waiter.deadline, waiter.order[2], waiter))
        if not queue.blocked_until:
            self._push_ready(waiter.schedule_id, queue)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.get_running_loop().create_task(
                self._dispatch(), name="schedcancel-redis-dispatcher"
            )
        self._wake.set()

    def _push_ready(self, schedule_id: str, queue: _IdQueue) -> None:
        head = queue.head()
        if head is None:
            return
        queue.version = next(self._versions)
        # As the in-process limiter: priority first; then the batch (requests back
        # from a 429 first, then waiters that arrived in one loop turn before later
        # ones, so a newcomer never overtakes a queued waiter of its priority); in a
        # batch the id with the most pending requests (this reaches the two-limit
        # lower bound); then arrival.
        priority, batch, arrival = head.order
        key = (priority, batch, queue.taken - queue.active, arrival)
        heapq.heappush(self._ready, (key, queue.version, schedule_id))

    def _forget_if_idle(self, schedule_id: str, queue: _IdQueue) -> None:
        if queue.idle and self._ids.get(schedule_id) is queue:
            del self._ids[schedule_id]

    def _leave(self, waiter: _Waiter) -> None:
        """Take a waiter out of the counts once, whoever finishes it."""
        if not waiter.active:
            return
        waiter.active = False
        self._queued -= 1
        queue = self._ids.get(waiter.schedule_id)
        if queue is not None:
            queue.active -= 1
            self._forget_if_idle(waiter.schedule_id, queue)
        # Finished waiters stay in the heaps until they surface; rebuild the heap
        # of deadlines when it is mostly dead so memory follows what is live.
        if len(self._deadlines) > 2 * self._queued + 64:
            self._deadlines = [entry for entry in self._deadlines if entry[2].active]
            heapq.heapify(self._deadlines)

    def _finish(
        self, waiter: _Waiter, *, result: Permit | None = None, error: BaseException | None = None
    ) -> None:
        self._leave(waiter)
        if waiter.future.done():
            return
        if error is not None:
            waiter.future.set_exception(error)
        else:
            waiter.future.set_result(cast("Permit", result))

    def _pop_ready(self) -> tuple[str, _IdQueue] | None:
        """The best scheduleId that may go, taken off the ready heap."""
        while self._ready:
            _, version, schedule_id = heapq.heappop(self._ready)
            queue = self._ids.get(schedule_id)
            if queue is None or queue.version != version or queue.blocked_until:
                continue  # stale: re-ranked, blocked or gone since
            if queue.head() is not None:
                return schedule_id, queue
        return None

    def _take_round(self) -> list[tuple[_Waiter, _IdQueue]]:
        """Take the best waiters, in the order the script should try them."""
        taken: list[tuple[_Waiter, _IdQueue]] = []
        while len(taken) < _ROUND:
            ready = self._pop_ready()
            if ready is None:
                break
            schedule_id, queue = ready
            taken.append((heapq.heappop(queue.heap), queue))
            queue.taken += 1
            # The id competes again for the next place with its next waiter.
            self._push_ready(schedule_id, queue)
        if len(self._ready) > 4 * len(self._ids) + 64:
            # Re-ranked ids leave stale entries behind; keep memory linear in what is live.
            versions = {schedule_id: queue.version for schedule_id, queue in self._ids.items()}
            self._ready = [entry for entry in self._ready if versions.get(entry[2]) == entry[1]]
            heapq.heapify(self._ready)
        return taken

    def _unblock(self, now: float) -> None:
        while self._blocked and self._blocked[0][0] <= now:
            until, schedule_id = heapq.heappop(self._blocked)
            queue = self._ids.get(schedule_id)
            if queue is None or queue.blocked_until != until:
                continue  # gone, or unblocked early and perhaps blocked again since
            queue.blocked_until = 0.0
            self._push_ready(schedule_id, queue)
            self._forget_if_idle(schedule_id, queue)

    def _expire(self, until: float, now: float, queue: _IdQueue | None = None) -> None:
        """Fail at once the waiters whose deadline falls before the earliest possible start."""

        def error() -> QueueTimeoutError:
            return QueueTimeoutError(
                f"the shared budget admits no request for {until - now:.3f}s, "
                "longer than queue_timeout allows",
                expected_wait=until - now,
            )

        if queue is not None:
            for waiter in queue.heap:
                if waiter.active and waiter.deadline is not None and waiter.deadline < until:
                    self._finish(waiter, error=error())
            return
        while self._deadlines and self._deadlines[0][0] < until:
            _, _, waiter = heapq.heappop(self._deadlines)
            if waiter.active:
                self._finish(waiter, error=error())

    def _next_wake(self, now: float) -> float | None:
        """The earliest moment a local block ends (None: only a new waiter can change things)."""
        wakes = [t for t in (self._user_blocked_until,) if t > now]
        if self._blocked:
            wakes.append(self._blocked[0][0])
        return min(wakes) if wakes else None

    async def _sleep(self, until: float | None) -> None:
        """Sleep until ``until`` (plus jitter) or until a waiter arrives."""
        self._wake.clear()
        if until is None:
            await self._wake.wait()
            return
        delay = until - self._loop_time()
        if delay <= 0:
            return
        delay += random.uniform(0, self._jitter)  # noqa: S311 - jitter, not cryptography
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wake.wait()

    async def _dispatch(self) -> None:
        """Admit this process's waiters, best first, one script round at a time."""
        loop = asyncio.get_running_loop()
        while self._queued:
            self._batch += 1  # waiters arriving from now on rank after everyone queued
            now = loop.time()
            self._unblock(now)
            self._round = [] if now < self._user_blocked_until else self._take_round()
            if not self._round:
                await self._sleep(self._next_wake(now))
                continue
            try:
                rnd, base = await self._ask("acquire", [w.schedule_id for w, _ in self._round])
            except BackendError as exc:
                self._settle(None, "", loop.time())
                self._backend_failed(exc)
                continue
            self._settle(rnd, base, loop.time())

    def _settle(self, rnd: _Round | None, base: str, now: float) -> None:
        """Hand out a round's permits and put everyone else back in line."""
        taken, self._round = self._round, []
        results = rnd.results if rnd is not None else ()
        held: dict[str, _IdQueue] = {}
        for index, (waiter, queue) in enumerate(taken):
            queue.taken -= 1
            held[waiter.schedule_id] = queue
            result = results[index] if index < len(results) else 0.0
            if rnd is not None and result is None:
                handle = _Handle(self, f"{base}.{index + 1}", rnd.now_us)
                permit = Permit(schedule_id=waiter.schedule_id, acquired_at=now, handle=handle)
                self._in_flight.add(handle)
                if waiter.active:
                    self._finish(waiter, result=permit)
                else:
                    self._give_back(permit)  # its caller left while we asked
                continue
            if waiter.active:
                heapq.heappush(queue.heap, waiter)  # back in line, same place
            if result and now + result > queue.blocked_until:
                queue.blocked_until = now + result
                heapq.heappush(self._blocked, (queue.blocked_until, waiter.schedule_id))
        for schedule_id, queue in held.items():
            if queue.blocked_until:
                self._expire(queue.blocked_until, now, queue)
            elif queue.active:
                self._push_ready(schedule_id, queue)
            self._forget_if_idle(schedule_id, queue)
        if rnd is not None and rnd.user_wait > 0:
            self._user_blocked_until = now + rnd.user_wait
            self._expire(self._user_blocked_until, now)

    def _give_back(self, permit: Permit) -> None:
        """Remove a granted permit's entries that were never sent (in the background)."""
        handle = cast("_Handle", permit.handle)
        handle.released = True
        self._in_flight.discard(handle)
        self._spawn(self._undo(permit.schedule_id, handle))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _backend_failed(self, exc: BackendError) -> None:
        """Fail every queued waiter (fail closed), or send them all to the fallback."""
        if self._fallback is not None:
            log.warning(
                "%s; using the in-process fallback limiter for %ss, the budget is NOT shared "
                "with other processes meanwhile",
                exc,
                self._fallback_retry,
            )
            self._fallback_until = self._loop_time() + self._fallback_retry
        for waiter in self._waiters():
            error: Exception = _UseFallback()
            if self._fallback is None:
                error = BackendError(str(exc))
                error.__cause__ = exc.__cause__
            self._finish(waiter, error=error)

    # -- fallback ----------------------------------------------------------------

    def _on_fallback(self, now: float) -> bool:
        return self._fallback is not None and now < self._fallback_until

    async def _fallback_acquire(
        self, schedule_id: str, priority: int, deadline: float | None, requeue: bool
    ) -> Permit:
        fallback = cast("Limiter", self._fallback)
        queue_timeout = None
        if deadline is not None:
            queue_timeout = max(0.0, deadline - asyncio.get_running_loop().time())
        return await fallback.acquire(
            schedule_id, priority=priority, queue_timeout=queue_timeout, requeue=requeue
        )

    # -- adaptive ----------------------------------------------------------------

    def _log_adapted(self, change: int, limit: int) -> None:
        """Say once, at WARNING, what this process's 429 changed for every process."""
        window = self._limits.window
        if change == 1:
            log.warning(
                "429 with room in the shared log: foreign load or a counter-type server; "
                "every process sharing this API user now paces sends %.3gs apart",
                window / limit * (1 + self._limits.slack),
            )
        else:
            log.warning(
                "429 while pacing: lowering the shared limit to %d per %gs, raising it by 1 "
                "per %gs without a 429",
                limit,
                window,
                window + self._limits.guard,
            )
