"""RedisLimiter: one API user's budget shared by every process and host that uses it.

Several workers cancelling for the same API user must share its 60-per-window
budget, or together they overrun it. [`RedisLimiter`][schedcancel.redis.RedisLimiter] keeps the
two-level sliding-window log (docs/rate-limits.md) in Redis, and Lua scripts,
one per operation (``schedcancel/_limiting/lua/``, their KEYS and ARGV defined in
``redis_scripts``), check and add both levels atomically with Redis ``TIME``
as the one clock.

Waiting stays local, in the same dispatcher as the in-process limiter
(``dispatcher``, driven by ``limiter.QueuedLimiter``); only the store differs.
Each round, one script call tries up to 64 of this process's waiters in the
dispatcher's order, so a thousand local waiters do not stampede Redis; when
the script says "not yet, in 1.3 s", the driver sleeps that long (plus a
little jitter, so processes do not wake in lock step) and asks again.
Releases that arrive while a call is out go together in the next one. The
adaptive policy runs inside the script, step for step as ``adaptive``.

Install with ``pip install 'schedcancel[redis]'``; importing `schedcancel`
never imports redis-py.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import secrets
import time
import warnings
from typing import TYPE_CHECKING, Any, Final, TypeAlias, cast
from urllib.parse import urlsplit

import attrs

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import EqualJitterBackoff
    from redis.exceptions import RedisError
except ImportError as exc:
    raise ImportError(
        "schedcancel.redis needs redis-py; install it with: pip install 'schedcancel[redis]'"
    ) from exc

from .._protocol.models import Limiter, LimiterStats, Permit, RateLimitLevel, RateLimits
from .._protocol.redact import Hidden, scrub, url_secrets
from .._protocol.validate import check_key, check_number
from ..errors import BackendError, InvalidParameterError
from .adaptive import QUIET_WINDOWS, Action
from .dispatcher import SNAP, Answer
from .failover import FailoverLimiter
from .limiter import QueuedLimiter
from .redis_scripts import (
    SCRIPTS,
    Acquire,
    Call,
    Forget,
    IdKeys,
    Release,
    ReleasedPermit,
    Undo,
    UserKeys,
    call,
)
from .server_state import SILENT, Heard
from .stores import Holds
from .window import UNKNOWN

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Coroutine, Iterable, Sequence

__all__ = ["RedisLimiter"]

log = logging.getLogger("schedcancel.redis")

RedisClient: TypeAlias = "aioredis.Redis | aioredis.RedisCluster"

_US: Final = 1_000_000
_DEFAULT_PORT: Final = 6379
# Most candidates one script round tries: a full window's burst of the documented
# limit in one round trip, without unbounded key lists.
_ROUND: Final = 64
# The share of `timeout` within which Redis must run an acquire round for it to grant:
# the caller gives up at `timeout`, and the answer needs time to come back.
_GRANT_WITHIN: Final = 0.5
# The release script's code for the level a 429 was blamed on.
_LEVELS: Final[tuple[RateLimitLevel | None, ...]] = (None, "user", "schedule")


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
) -> tuple[RedisClient, str, tuple[Hidden, ...], bool]:
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
        secrets_ = (Hidden(password),) if isinstance(password, str) and password else ()
        return redis, _describe_client(redis), secrets_, False
    where = _describe_url(redis)
    try:
        client = aioredis.Redis.from_url(
            redis,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # A few quick retries ride out a blip; the call's own timeout bounds them.
            retry=Retry(EqualJitterBackoff(cap=0.2, base=0.01), retries=2),
        )
    except ValueError as exc:
        raise InvalidParameterError(f"not a usable Redis URL: {where}") from exc
    return client, where, url_secrets(redis), True


@attrs.define(eq=False)
class _Handle:
    """A Redis permit's bookkeeping: which log members to re-score at release."""

    token: str
    acquired_us: int
    local: Permit | None = None  # the same request's place in the fallback limiter


@attrs.frozen
class _Round:
    """The acquire script's answer for one round of candidates, times in seconds.

    Attributes:
        now_us: the script's time (the granted entries' acquire time).
        user_used: entries that count in the API user's log afterwards.
        user_limit: the API user's effective limit (adaptive may lower it, and the
            server's word).
        adapted: the adaptive policy's limit alone.
        smooth: the API user's level runs smooth.
        user_wait: how long until the API user's level admits one more (0: now).
        capped: the API user's level admits one more after a release (the adaptive
            policy's rule 4: starting or refilling, the cap on requests in flight).
        action: what judging a 429 episode changed in this call.
        background_wait: how long until a background call may go (0: now, or not asked).
        results: per candidate tried, in order: None when granted, else how
            long its scheduleId holds it (0.0: not held by it).
    """

    now_us: int
    user_used: int
    user_limit: int
    adapted: int
    smooth: bool
    user_wait: float
    capped: bool
    action: Action
    background_wait: float
    results: tuple[float | None, ...]


@attrs.frozen
class _Release:
    """A release waiting for the next script call."""

    schedule_id: str | None
    handle: _Handle
    limited: bool
    retry_after: float | None
    done: asyncio.Future[tuple[float, RateLimitLevel | None]]
    since: float  # the loop's time when it was asked for: its entries expire by then + horizon
    again: bool = False  # sent once already, and Redis failed
    heard: Heard = SILENT  # what the answer's rate-limit headers said


#: An answer that said nothing, as release.lua's per-permit ARGV.
_SILENT_ARGS = (-1, -1, -1, -1, 0)


def _count(value: int | None) -> int:
    return -1 if value is None else value


def _heard_args(heard: Heard) -> tuple[int, int, int, int, int]:
    """A digest as release.lua's per-permit ARGV (-1: not stated)."""
    if heard is SILENT:
        return _SILENT_ARGS
    count = _count
    reset = -1 if heard.user_reset is None else _us(heard.user_reset)
    blamed = 0 if heard.blamed is None else _LEVELS.index(heard.blamed)
    return (
        count(heard.user_limit),
        count(heard.user_remaining),
        reset,
        count(heard.id_limit),
        blamed,
    )


class _RedisStore:
    """The store seam over the scripts in ``lua/``: the logs live in Redis."""

    def __init__(
        self,
        client: RedisClient,
        *,
        tag: str,
        limits: RateLimits,
        where: str,
        secrets_: tuple[Hidden, ...],
        owns_client: bool,
        in_flight_timeout: float,
        timeout: float,
        jitter: float,
        clock: Callable[[], float] | None,
    ) -> None:
        self._client = client
        self._scripts = {name: client.register_script(text) for name, text in SCRIPTS.items()}
        self.tag = tag
        self._limits = limits
        self._where = where
        self._secrets = secrets_
        self._owns_client = owns_client
        self._in_flight_timeout = in_flight_timeout
        self._timeout = timeout
        self.jitter = jitter
        self._clock = clock
        self.user_keys = UserKeys.under(tag)
        self.in_flight: set[_Handle] = set()
        self.rate_limited = 0
        self.last: _Round | None = None
        self.last_at = 0.0
        self._releases: list[_Release] = []
        self.releaser: asyncio.Task[None] | None = None
        self._unsent: list[_Release] = []  # releases Redis failed, to send again
        self.resend: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # give-backs and forgotten rounds (_spawn)
        self._peeked: tuple[str, float] | None = None  # refresh(): a key, its hold then
        # An in-flight entry past its earliest possible end is looked at again this often.
        self._poll = max(0.01, limits.window / 100)
        # A capped round (the adaptive policy's rule 4) waits for a release; another
        # process's release is not heard here, so the driver asks again by then.
        self._poll_at = math.inf
        # Redis TIME minus this process's monotonic clock, in µs (None: not known yet).
        self._time_offset: int | None = None

    # -- the store protocol -----------------------------------------------------

    def round_size(self, now: float) -> int:  # noqa: ARG002 - the protocol's signature
        return _ROUND

    async def acquire(
        self, keys: Sequence[str | None], backgrounds: Sequence[bool], now: float
    ) -> Answer:
        rnd, base = await self.ask(keys, now, backgrounds)
        user_wait = rnd.user_wait
        if rnd.capped:
            user_wait = UNKNOWN  # a release of ours lifts it, the poll another process's
            self._poll_at = now + self._poll
        handles: list[object | None] = []
        waits: list[float] = []
        for index, result in enumerate(rnd.results):
            if result is None:
                handle = _Handle(f"{base}.{index + 1}", rnd.now_us)
                self.in_flight.add(handle)
                handles.append(handle)
                waits.append(0.0)
            else:
                handles.append(None)
                waits.append(result)
        return Answer(handles, waits, user_wait, rnd.background_wait)

    async def release(
        self,
        key: str | None,
        handle: object,
        now: float,  # noqa: ARG002 - Redis stamps the release itself
        limited: bool,
        retry_after: float | None,
        *,
        heard: Heard | None = None,
    ) -> Holds:
        assert isinstance(handle, _Handle)  # noqa: S101 - our own handle type
        heard = SILENT if heard is None else heard
        if heard.pause is not None:
            retry_after = heard.pause
        self.in_flight.discard(handle)
        if limited:
            self.rate_limited += 1
        # Releases that come while one script call is out go together in the next
        # one: a burst of responses costs a few round trips, not one connection each.
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._releases.append(
            _Release(key, handle, limited, retry_after, done, loop.time(), heard=heard)
        )
        self._send_releases()
        user_pause, level = await done
        return Holds(user_pause, 0.0, level)

    def give_back(
        self,
        key: str | None,
        handle: object,
        now: float,  # noqa: ARG002 - Redis stamps it itself
        freed: Callable[[], None],
    ) -> None:
        """Remove a granted permit's entries that were never sent (in the background)."""
        assert isinstance(handle, _Handle)  # noqa: S101 - our own handle type
        self._spawn(self._give_back(key, handle, freed))

    async def _give_back(self, key: str | None, handle: _Handle, freed: Callable[[], None]) -> None:
        self.in_flight.discard(handle)
        try:
            undo = Undo(self._now_arg(), handle.token, handle.acquired_us)
            await self.eval(call(undo, self.user_keys, self.ids([key])))
        except BackendError as exc:
            log.warning("could not give back an unused permit (it expires on its own): %s", exc)
        else:
            freed()  # places were freed before the holds known locally said

    def tick(self, now: float) -> bool:
        """Redis keeps its own house; True when a capped round's poll is due."""
        if self._poll_at > now + SNAP:
            return False
        self._poll_at = math.inf
        return True

    def next_wake(self, now: float, *, queued: bool) -> float:  # noqa: ARG002
        """A capped round's poll, while requests wait."""
        return self._poll_at if queued else math.inf

    def forecast(self, key: str | None, ahead: int, mine: int, now: float) -> float:
        """From the last answer: its waits (less the time since), each full limit ahead a hold.

        Other processes' use is known as of that answer (`refresh()` asks now).
        """
        limits, last = self._limits, self.last
        hold = limits.window + limits.guard
        at = now + (mine // limits.per_schedule) * hold
        if last is None:
            return at
        wait = last.user_wait
        if self._peeked is not None and self._peeked[0] == key:
            wait = max(wait, self._peeked[1])
        at = max(at, now + (ahead // max(1, last.user_limit)) * hold)
        return max(at, now + wait - (now - self.last_at))

    def stats(self, now: float, queued: Collection[str | None]) -> LimiterStats:
        """The local counts, and the shared log as of the last Redis answer."""
        limits, last = self._limits, self.last
        next_free = background = 0.0
        if last is not None:
            next_free = max(0.0, last.user_wait - (now - self.last_at))
            background = last.background_wait - (now - self.last_at)
        return LimiterStats(
            queued=0,
            in_flight=len(self.in_flight),
            total_used=last.user_used if last else 0,
            total_limit=last.user_limit if last else limits.total,
            schedule_ids=sum(1 for key in queued if key is not None),
            next_free=next_free,
            rate_limited=self.rate_limited,
            mode="smooth" if (last.smooth if last else limits.mode == "smooth") else "exact",
            background_next_free=max(next_free, background),
        )

    async def refresh(self, key: str | None, now: float) -> None:
        """Read the shared state now (a round that takes nothing), and ``key``'s own hold."""
        rnd, _ = await self.ask([] if key is None else [key], now, peek=True)
        held = rnd.results[0] if rnd.results else None
        self._peeked = (key, held or 0.0) if key is not None else None

    async def aclose(self) -> None:
        """Let the releases on their way go out (within ``timeout``); close a client it made."""
        pending = [t for t in (self.releaser, *self._tasks) if t is not None]
        if pending:
            await asyncio.wait(pending, timeout=self._timeout)
        if self.resend is not None:
            self.resend.cancel()  # what was not released yet expires on its own
        if self._owns_client:
            await self._client.aclose()

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        """Run ``work`` in the background, kept until it is done (aclose waits for it)."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- Redis ------------------------------------------------------------------

    def _send_releases(self) -> None:
        """Start the task that sends queued releases, unless it runs."""
        if self.releaser is None or self.releaser.done():
            self.releaser = asyncio.get_running_loop().create_task(
                self._release_all(), name="schedcancel-redis-releaser"
            )

    def _send_again_later(self, batch: Sequence[_Release], exc: BackendError) -> None:
        """Send releases Redis failed again after ``timeout``, while their entries count.

        Until its release reaches Redis an entry keeps its provisional score,
        ``in_flight_timeout + window + guard`` after its acquire: long after
        the response, a place held for nobody after a stall. So a failed
        release is sent again (its caller has its answer already) until it
        goes through or that provisional expiry has passed.
        """
        loop = asyncio.get_running_loop()
        limits = self._limits
        horizon = self._in_flight_timeout + limits.window + limits.guard
        if not all(item.again for item in batch):
            log.warning(
                "could not release %d permit(s) (they count as in flight until released); "
                "trying again every %gs: %s",
                len(batch),
                self._timeout,
                exc,
            )
        again_at = loop.time() + self._timeout
        self._unsent += [
            attrs.evolve(item, again=True) for item in batch if again_at < item.since + horizon
        ]
        if self._unsent and self.resend is None:
            self.resend = loop.call_later(self._timeout, self._send_unsent)

    def _send_unsent(self) -> None:
        self.resend = None
        self._releases += self._unsent
        self._unsent = []
        self._send_releases()

    async def _release_all(self) -> None:
        """Send queued releases to Redis, up to a round's worth per script call."""
        limits = self._limits
        while self._releases:
            batch, self._releases = self._releases[:_ROUND], self._releases[_ROUND:]
            release = Release(
                self._now_arg(),
                limits.total,
                limits.per_schedule,
                _us(limits.window),
                _us(limits.guard),
                _us(limits.effective_retry_after_cap),
                int(limits.adaptive),
                int(limits.accept_higher_limits),
                int(limits.probe),
            )
            permits = [
                ReleasedPermit(
                    item.handle.token,
                    item.handle.acquired_us,
                    int(item.limited),
                    -1 if item.retry_after is None else _us(max(0.0, item.retry_after)),
                    int(item.schedule_id is not None),
                    *_heard_args(item.heard),
                )
                for item in batch
            ]
            user_pause = 0.0
            levels: list[RateLimitLevel | None] = [None] * len(batch)
            try:
                raw = await self.eval(
                    call(release, self.user_keys, self.ids(i.schedule_id for i in batch), *permits)
                )
            except BackendError as exc:
                self._send_again_later(batch, exc)
            else:
                reply = cast("list[int]", raw)
                user_pause = int(reply[1]) / _US
                levels = [_LEVELS[int(code)] for code in reply[2:]]
            for item, level in zip(batch, levels, strict=True):
                if not item.done.done():
                    item.done.set_result((user_pause, level))

    async def ask(
        self,
        schedule_ids: Sequence[str | None],
        now: float = 0.0,
        backgrounds: Sequence[bool] = (),
        *,
        peek: bool = False,
    ) -> tuple[_Round, str]:
        """Run one round of the acquire script for candidates in the order they should be served.

        Args:
            schedule_ids: one per candidate (an id may repeat; None: a request
                with no scheduleId, for which no per-id key is passed or touched).
            now: the local clock, to date the answer.
            backgrounds: per candidate, whether it is a background call.
            peek: report on the first candidate only, and take nothing; else
                take entries for every candidate both levels admit.

        Returns:
            The round's answer, and the token base its entries carry.

        Raises:
            BackendError: Redis failed.
        """
        limits = self._limits
        ids = self.ids(schedule_ids)
        # One flag per candidate: bit 1 background, bit 2 no scheduleId (no per-id keys).
        flags = "".join(
            str(int(index < len(backgrounds) and backgrounds[index]) + 2 * (schedule_id is None))
            for index, schedule_id in enumerate(schedule_ids)
        )
        settings = Acquire(
            now="",  # each try's own, below
            peek=int(peek),
            base="",
            total=limits.total,
            per_schedule=limits.per_schedule,
            window=_us(limits.window),
            guard=_us(limits.guard),
            in_flight=_us(self._in_flight_timeout),
            smooth=int(limits.mode == "smooth"),
            slack=repr(limits.slack),
            poll=_us(self._poll),
            adaptive=int(limits.adaptive),
            reserve=limits.interactive_reserve,
            flags=flags,
            deadline="",
            probe=int(limits.probe),
            higher=int(limits.accept_higher_limits),
        )
        # An expired round (see _deadline) is asked once more, on the clock its answer taught.
        for _ in range(2):
            base = secrets.token_hex(6)
            deadline = "" if peek else await self._deadline(now)
            acquire = settings._replace(now=self._now_arg(), base=base, deadline=deadline)
            try:
                raw = await self.eval(call(acquire, self.user_keys, ids))
            except BackendError:
                if not peek:
                    self._forget(ids, base)
                raise
            reply = [int(x) for x in cast("list[int]", raw)]
            self._learn_time(reply[1])
            if len(reply) > 2:
                break
        else:
            raise BackendError(
                f"Redis at {self._where} failed: it ran the round more than "
                f"{self._timeout * _GRANT_WITHIN:g}s after it was sent, twice; nothing was granted"
            )
        (
            now_us,
            _,
            user_used,
            user_limit,
            smooth,
            user_wait,
            action,
            background_wait,
            adapted,
            *results,
        ) = reply
        rnd = _Round(
            now_us=now_us,
            user_used=user_used,
            user_limit=user_limit,
            adapted=adapted,
            smooth=bool(smooth),
            user_wait=max(0, user_wait) / _US,
            capped=user_wait < 0,
            action=Action(action),
            background_wait=background_wait / _US,
            results=tuple(None if r < 0 else r / _US for r in results),
        )
        if rnd.action:
            self._log_adapted(rnd)
        self.last = rnd
        self.last_at = now
        return rnd, base

    def _forget(self, ids: Sequence[IdKeys], base: str) -> None:
        """Take back, in the background, what a round whose answer never came granted.

        The round's deadline keeps Redis from granting it once its caller gave
        up; this takes back a round Redis ran in time whose answer was lost
        (cut off, or late past the timeout). Best effort: if Redis fails again,
        the entries expire on their own.
        """
        self._spawn(self._forget_round(ids, base))

    async def _forget_round(self, ids: Sequence[IdKeys], base: str) -> None:
        try:
            await self.eval(call(Forget(self._now_arg(), base), self.user_keys, ids))
        except BackendError as exc:
            log.debug("could not take back a round whose answer was lost: %s", exc)

    async def _deadline(self, now: float) -> int:
        """The latest Redis TIME at which an acquire round may still grant, in microseconds.

        The caller gives up on Redis ``timeout`` after it sent a round; a
        round that Redis runs later (it stalled meanwhile) would take places
        for nobody, counted until their provisional expiry. So the script
        grants only within the first ``_GRANT_WITHIN`` of the timeout (the
        rest is for the answer to come back), on Redis's clock as learnt from
        the last answer (asked first when none came yet). A stall is real
        time whatever clock paces the limiter, so the deadline is made on
        ``time.monotonic`` (the event loop's own clock), not on an injected one.
        """
        if self._time_offset is None:
            await self.ask([], now, peek=True)
        assert self._time_offset is not None  # noqa: S101 - set by every answer
        return int((time.monotonic() + self._timeout * _GRANT_WITHIN) * _US) + self._time_offset

    def _learn_time(self, redis_time: int) -> None:
        """Note how Redis TIME relates to this process's monotonic clock.

        Redis read its TIME before its answer arrived, so ``redis_time - now``
        is a lower bound of the offset: a deadline made with it is early, never late.
        """
        self._time_offset = redis_time - _us(time.monotonic())

    def _now_arg(self) -> str:
        """The script's clock: Redis TIME, or the injected clock in microseconds."""
        # Rounded, not floored: 130.771821 * 10**6 is 130771820.99999999, and a floor would
        # put the script a microsecond behind the local clock, which then never catches up.
        return "" if self._clock is None else str(round(self._clock() * _US))

    def _log_adapted(self, rnd: _Round) -> None:
        """Say once, at WARNING, what a judged 429 episode changed for every process."""
        limits = self._limits
        if rnd.action is Action.SMOOTH:
            log.warning(
                "429s although the server took a full window from us: it counts bursts "
                "differently (a sliding-window counter?); every process sharing this API "
                "user now paces sends %.3gs apart",
                limits.window / rnd.user_limit * (1 + limits.slack),
            )
        else:
            log.warning(
                "429s although our own requests cannot fill the window (foreign load?): "
                "the shared limit is now %d per %gs, raising it by 1 per %gs after %d "
                "quiet windows",
                rnd.adapted,
                limits.window,
                limits.window + limits.guard,
                QUIET_WINDOWS,
            )

    def ids(self, schedule_ids: Iterable[str | None]) -> list[IdKeys]:
        """The keys of each scheduleId, in order; none for None (a request with no scheduleId)."""
        return [IdKeys.under(self.tag, s) for s in schedule_ids if s is not None]

    async def eval(self, script: Call) -> object:
        """Run a script (EVALSHA, loading it again after NOSCRIPT) within the timeout.

        Raises:
            BackendError: Redis failed, timed out or refused the script.
        """
        try:
            async with asyncio.timeout(self._timeout):
                return await self._scripts[script.script](keys=script.keys, args=script.args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise BackendError(self._failure_message(exc)) from exc

    def _failure_message(self, exc: BaseException) -> str:
        detail = str(exc) or "no answer"
        if isinstance(exc, TimeoutError) and not isinstance(exc, RedisError):
            detail = f"no answer within {self._timeout}s"
        return (
            f"Redis at {self._where} failed: {type(exc).__name__}: {scrub(detail, self._secrets)}"
        )


class RedisLimiter(QueuedLimiter):
    """One API user's rate limits kept in Redis and shared by every process using them.

    It implements [`schedcancel.Limiter`][schedcancel.Limiter] with the in-process limiter's
    dispatcher (``dispatcher``: ranking, deadlines, cancellation, requeue) and
    semantics (two-level sliding-window log, response-anchored release, 429
    pauses, smooth mode, the one adaptive policy), but its logs live in Redis,
    so any number of processes and hosts that construct a ``RedisLimiter``
    for the same ``username`` and ``key_prefix`` share one budget:

        limiter = RedisLimiter("redis://127.0.0.1:6379/0", username="api-user")
        async with ScheduleClient(key, username="api-user", password=pw, limiter=limiter) as client:
            ...
        await limiter.aclose()

    Keys live under one hash tag, ``{<key_prefix>:<first 16 hex of sha256(username)>}``,
    so a Redis Cluster keeps them in one slot, and never contain the username.

    Failure is closed: when Redis cannot be reached or fails, queued and new
    acquires raise [`BackendError`][schedcancel.BackendError] (no request is sent without
    the shared budget's consent). To admit through an in-process limiter
    while Redis fails instead, wrap it:
    [`FailoverLimiter`][schedcancel.FailoverLimiter]``(RedisLimiter(...), RateLimiter(limits))``.

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
            a failure. An acquire round that Redis runs more than half of it
            after it was sent (it stalled meanwhile) grants nothing, so a
            caller that gave up never leaves places taken for nobody.
        jitter: up to this many seconds are added at random to each local
            wait, so processes do not ask Redis in lock step.
        fallback: deprecated since 0.2 (use [`FailoverLimiter`][schedcancel.FailoverLimiter]):
            an in-process limiter to use while Redis fails; the limiter made is
            then ``FailoverLimiter(RedisLimiter(...), fallback, retry=fallback_retry)``.
        fallback_retry: deprecated with ``fallback``.
        clock: a monotonic clock in seconds, as for ``RateLimiter``. By default
            the running loop's ``time`` paces this process and Redis ``TIME``
            stamps the shared logs; an injected clock does both (tests on a
            virtual clock; every process sharing the keys must share it).

    Raises:
        InvalidParameterError: an argument is invalid (before any I/O).
    """

    _name = "RedisLimiter"

    def __new__(
        cls,
        redis: str | RedisClient,
        *,
        fallback: Limiter | None = None,
        fallback_retry: float = 30.0,
        **settings: Any,
    ) -> RedisLimiter:
        if fallback is None:
            return super().__new__(cls)
        # 0.1's form: the failover is its own wrapper now; this keeps old code working.
        warnings.warn(
            "RedisLimiter(fallback=...) is deprecated and will be removed in 0.3; use "
            "FailoverLimiter(RedisLimiter(...), fallback, retry=...)",
            DeprecationWarning,
            stacklevel=2,
        )
        primary = cls(redis, **settings)
        wrapper = _LegacyFailover(primary, fallback, retry=fallback_retry)
        return cast("RedisLimiter", wrapper)  # callers use the Limiter and RedisLimiter methods

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
        fallback: Limiter | None = None,  # noqa: ARG002 - __new__ takes it
        fallback_retry: float = 30.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        check_key("username", username)
        if set(check_key("key_prefix", key_prefix)) & set("{}"):
            raise InvalidParameterError("key_prefix must be a non-empty string without braces")
        for name, value in (
            ("in_flight_timeout", in_flight_timeout),
            ("timeout", timeout),
            ("fallback_retry", fallback_retry),
        ):
            check_number(name, value)
        check_number("jitter", jitter, zero=True)
        limits = limits if limits is not None else RateLimits()
        client, self._where, secrets_, owns_client = _connect(redis, timeout)
        self._user_hash = hashlib.sha256(username.encode()).hexdigest()[:16]
        self._redis = _RedisStore(
            client,
            tag=f"{{{key_prefix}:{self._user_hash}}}",
            limits=limits,
            where=self._where,
            secrets_=secrets_,
            owns_client=owns_client,
            in_flight_timeout=in_flight_timeout,
            timeout=timeout,
            jitter=jitter,
            clock=clock,
        )
        super().__init__(limits, self._redis, clock)

    def keys(self, schedule_id: str | None = None) -> tuple[str, ...]:
        """The Redis keys the script touches for the API user (and ``schedule_id``).

        Args:
            schedule_id: also list this scheduleId's keys.

        Returns:
            Key names, all under this limiter's one hash tag.
        """
        if schedule_id is None:
            return tuple(self._redis.user_keys)
        return (*self._redis.user_keys, *IdKeys.under(self._redis.tag, schedule_id))

    def __repr__(self) -> str:
        limits = self._limits
        return (
            f"RedisLimiter(redis={self._where!r}, user={self._user_hash}, "
            f"total={limits.total}, per_schedule={limits.per_schedule}, "
            f"window={limits.window}, mode={limits.mode!r}, "
            f"queued={self._core.queued}, in_flight={len(self._redis.in_flight)})"
        )

    async def shared_stats(self) -> LimiterStats:
        """Read the shared state from Redis now and return a snapshot.

        [`stats()`][schedcancel.redis.RedisLimiter.stats] tells the shared log as of the last
        Redis round trip.

        Raises:
            BackendError: Redis failed.
        """
        await self._redis.refresh(None, self._now())
        return self.stats()


class _LegacyFailover(FailoverLimiter):
    """``RedisLimiter(fallback=...)`` as 0.1 made it: the RedisLimiter's own methods work too."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.primary, name)

    async def aclose(self) -> None:
        """Close the RedisLimiter; the fallback stays open (it belongs to the caller, as in 0.1)."""
        await self._close(self.primary)
