"""The contestants: what a user would write instead of schedcancel, and schedcancel itself.

Every contestant gets the same list of scheduleIds at once (one task per call,
as a bulk job gathers them), sends the same ``POST .../cancel`` with Basic auth
to the same mock server, and reports each attempt's send and answer times on
the event loop's clock. What the server counted comes from its recorder, not
from here.

The peers are written the way the aiolimiter README and a typical retry
snippet suggest, scaled to the benchmark's window:

``naive``
    ``AsyncLimiter(N, W)`` for the API user plus one ``AsyncLimiter(K, W)``
    per scheduleId, entered per-id first (so a request held by its id does not
    burn the global budget), then the POST. A 429 is a failed call.
``naive-retry``
    The same, and on 429 sleep a capped exponential backoff with full jitter
    (``uniform(0, min(2W, W/8 * 2**n))``), re-enter both limiters, and retry,
    at most 5 times (schedcancel's default ``max_rate_limited``).
``pacing``
    ``AsyncLimiter(1, W/N)`` for the API user and ``AsyncLimiter(1, W/K)`` per
    scheduleId: one request every ``W/N`` seconds, no bursts.
``retry``
    No limiter: send everything, back off and retry on 429 as ``naive-retry``.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import aiohttp
import attrs
from aiolimiter import AsyncLimiter
from schedcancel import (
    Limiter,
    LimiterStats,
    Permit,
    RateLimiter,
    RateLimitHeaders,
    RateLimits,
    ScheduleClient,
    ScheduleResult,
)

__all__ = [
    "CONTESTANTS",
    "Attempt",
    "BackoffPolicy",
    "CallResult",
    "Contestant",
    "Outcome",
    "Target",
]


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` value a hand-written client sends (the API's Basic auth)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


@attrs.frozen(kw_only=True)
class Target:
    """Where and as whom to send: the mock server's base URL and credentials.

    Attributes:
        base_url: ends in ``/api/v3``.
        api_key: the connector apiKey in the path.
        username: the API user (Basic auth).
        password: the API user's password.
    """

    base_url: str
    api_key: str
    username: str
    password: str = attrs.field(repr=False)

    def url(self, schedule_id: str) -> str:
        """The cancel URL of one schedule (ids in the benchmark need no escaping)."""
        return f"{self.base_url}/schedule/{self.api_key}/{schedule_id}/cancel"


@attrs.frozen(kw_only=True)
class BackoffPolicy:
    """The peers' retry-on-429: capped exponential backoff with full jitter.

    Attributes:
        retries: retries after the first try.
        initial: the first backoff's upper bound in seconds.
        cap: the largest upper bound.
    """

    retries: int
    initial: float
    cap: float

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to sleep before retry ``retry`` (0-based)."""
        return rng.uniform(0.0, min(self.cap, self.initial * 2**retry))


@attrs.frozen(kw_only=True)
class Attempt:
    """One request on the wire, as the client saw it.

    Attributes:
        schedule_id: the scheduleId.
        sent: loop time just before it was sent (schedcancel: when the limiter granted it).
        answered: loop time its response (or failure) was observed.
        status: the HTTP status; 429 or 200 for schedcancel (its client hides
            the rest); None when no response came.
    """

    schedule_id: str
    sent: float
    answered: float
    status: int | None


@attrs.frozen(kw_only=True)
class CallResult:
    """How one cancel call ended.

    Attributes:
        schedule_id: the scheduleId.
        ok: the server answered HTTP 200 (a cancel or a business error such as 7070).
        error: why not: ``"429"`` or an exception type name.
    """

    schedule_id: str
    ok: bool
    error: str | None = None


@attrs.frozen(kw_only=True)
class Outcome:
    """What a contestant did with one list of calls.

    Attributes:
        started: loop time when all calls were handed over at once.
        attempts: every request sent, in the order they were answered.
        calls: how each call ended, in submission order.
        interactive: the scheduleId and start time of each interactive call, when
            calls arrived beside a bulk job (``benchmarks.interactive``).
    """

    started: float
    attempts: tuple[Attempt, ...]
    calls: tuple[CallResult, ...]
    interactive: tuple[tuple[str, float], ...] = ()


@attrs.frozen(kw_only=True)
class Setup:
    """What every contestant is told: the limits it must keep, and how to retry."""

    total: int
    per_schedule: int
    window: float
    guard: float
    backoff: BackoffPolicy
    seed: int = 0

    def rate_limits(self, **settings: Any) -> RateLimits:
        """schedcancel's ``RateLimits`` for these limits and guard, plus ``settings``."""
        return RateLimits(
            total=self.total,
            per_schedule=self.per_schedule,
            window=self.window,
            guard=self.guard,
            **settings,
        )


#: A contestant: send every call in ``schedule_ids`` to ``target``, report what happened.
Contestant = Callable[[Target, Sequence[str], Setup], Awaitable[Outcome]]


class Http:
    """One aiohttp session, as a user sets it up, that stamps every attempt."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._headers = {"Authorization": basic_auth(target.username, target.password)}
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._loop = asyncio.get_running_loop()
        self.attempts: list[Attempt] = []

    async def post(self, schedule_id: str) -> int | None:
        """Send one cancel; return its status, or None when no response came."""
        sent = self._loop.time()
        status: int | None
        try:
            async with self._session.post(
                self._target.url(schedule_id), json={}, headers=self._headers
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = None
        self.attempts.append(
            Attempt(schedule_id=schedule_id, sent=sent, answered=self._loop.time(), status=status)
        )
        return status

    async def aclose(self) -> None:
        await self._session.close()


def status_result(schedule_id: str, status: int | None) -> CallResult:
    """How a peer's call ended, from its last status."""
    if status == 200:
        return CallResult(schedule_id=schedule_id, ok=True)
    return CallResult(
        schedule_id=schedule_id, ok=False, error=str(status) if status else "no response"
    )


#: Sends one cancel through the limiters, retrying 429s as told; returns the last status.
Sender = Callable[[Http, str], Awaitable[int | None]]


async def _run_peer(
    target: Target,
    schedule_ids: Sequence[str],
    one: Sender,
) -> Outcome:
    http = Http(target)
    started = asyncio.get_running_loop().time()
    try:
        statuses = await asyncio.gather(*(one(http, sid) for sid in schedule_ids))
    finally:
        await http.aclose()
    return Outcome(
        started=started,
        attempts=tuple(http.attempts),
        calls=tuple(
            status_result(sid, status) for sid, status in zip(schedule_ids, statuses, strict=True)
        ),
    )


def per_id_limiters(max_rate: float, period: float) -> Callable[[str], AsyncLimiter]:
    """One ``AsyncLimiter(max_rate, period)`` per scheduleId, made on first use."""
    limiters: dict[str, AsyncLimiter] = {}

    def get(schedule_id: str) -> AsyncLimiter:
        limiter = limiters.get(schedule_id)
        if limiter is None:
            limiter = limiters[schedule_id] = AsyncLimiter(max_rate, period)
        return limiter

    return get


def limited_sender(
    total: AsyncLimiter, per_id: Callable[[str], AsyncLimiter], setup: Setup, *, retry: bool
) -> Sender:
    """One call as the aiolimiter peers make it: per-id limiter, then ``total``, then the POST.

    With ``retry``, a 429 sleeps the capped, jittered backoff and goes through both
    limiters again, at most ``setup.backoff.retries`` times.
    """
    rng = random.Random(setup.seed)  # jitter, not cryptography
    retries = setup.backoff.retries if retry else 0

    async def one(http: Http, schedule_id: str) -> int | None:
        for attempt in range(retries + 1):
            async with per_id(schedule_id), total:
                status = await http.post(schedule_id)
            if status != 429 or attempt == retries:
                return status
            await asyncio.sleep(setup.backoff.delay(attempt, rng))
        raise AssertionError("unreachable")  # pragma: no cover

    return one


def aiolimiters(
    setup: Setup, *, pacing: bool
) -> tuple[AsyncLimiter, Callable[[str], AsyncLimiter]]:
    """The API user's limiter and the per-id ones: N/W and K/W, or one per W/N and W/K."""
    if pacing:
        total = AsyncLimiter(1, setup.window / setup.total)
        return total, per_id_limiters(1, setup.window / setup.per_schedule)
    return AsyncLimiter(setup.total, setup.window), per_id_limiters(
        setup.per_schedule, setup.window
    )


def _limited_peer(*, pacing: bool, retry: bool) -> Contestant:
    async def run(target: Target, schedule_ids: Sequence[str], setup: Setup) -> Outcome:
        total, per_id = aiolimiters(setup, pacing=pacing)
        return await _run_peer(
            target, schedule_ids, limited_sender(total, per_id, setup, retry=retry)
        )

    return run


async def _retry_only(target: Target, schedule_ids: Sequence[str], setup: Setup) -> Outcome:
    rng = random.Random(setup.seed)  # jitter, not cryptography

    async def one(http: Http, schedule_id: str) -> int | None:
        for attempt in range(setup.backoff.retries + 1):
            status = await http.post(schedule_id)
            if status != 429 or attempt == setup.backoff.retries:
                return status
            await asyncio.sleep(setup.backoff.delay(attempt, rng))
        raise AssertionError("unreachable")  # pragma: no cover

    return await _run_peer(target, schedule_ids, one)


class DelegatingLimiter:
    """A :class:`schedcancel.Limiter` that hands every call to ``inner``.

    Benchmarks subclass it to stamp permits; since it only delegates,
    schedcancel schedules exactly as it would without it.
    """

    def __init__(self, inner: Limiter) -> None:
        self.inner = inner

    @property
    def limits(self) -> RateLimits:
        return self.inner.limits

    async def acquire(
        self,
        schedule_id: str | None,
        *,
        priority: int = 0,
        queue_timeout: float | None = None,
        requeue: bool = False,
    ) -> Permit:
        return await self.inner.acquire(
            schedule_id, priority=priority, queue_timeout=queue_timeout, requeue=requeue
        )

    async def release(
        self, permit: Permit, *, rate_limited: bool = False, retry_after: float | None = None
    ) -> None:
        await self.inner.release(permit, rate_limited=rate_limited, retry_after=retry_after)

    async def release_heard(
        self, permit: Permit, headers: RateLimitHeaders, *, rate_limited: bool = False
    ) -> None:
        # The client finds this with getattr; pass the headers on when the inner limiter takes them.
        heard = getattr(self.inner, "release_heard", None)
        if heard is not None:
            await heard(permit, headers, rate_limited=rate_limited)
        else:
            retry_after = headers.retry_after if rate_limited else None
            await self.inner.release(permit, rate_limited=rate_limited, retry_after=retry_after)

    async def estimate(self, schedule_id: str | None = None) -> float:
        return await self.inner.estimate(schedule_id)

    def stats(self) -> LimiterStats:
        return self.inner.stats()

    async def aclose(self) -> None:
        await self.inner.aclose()


class TimedLimiter(DelegatingLimiter):
    """Stamps each permit's grant and release: the send and answer times of each attempt."""

    def __init__(self, inner: Limiter) -> None:
        super().__init__(inner)
        self._loop = asyncio.get_running_loop()
        self.attempts: list[Attempt] = []

    async def release(
        self, permit: Permit, *, rate_limited: bool = False, retry_after: float | None = None
    ) -> None:
        self._stamp(permit, rate_limited)
        await super().release(permit, rate_limited=rate_limited, retry_after=retry_after)

    async def release_heard(
        self, permit: Permit, headers: RateLimitHeaders, *, rate_limited: bool = False
    ) -> None:
        self._stamp(permit, rate_limited)
        await super().release_heard(permit, headers, rate_limited=rate_limited)

    def _stamp(self, permit: Permit, rate_limited: bool) -> None:
        self.attempts.append(
            Attempt(
                schedule_id=permit.schedule_id or "",  # "": a start (no scheduleId)
                sent=permit.acquired_at,
                answered=self._loop.time(),
                status=429 if rate_limited else 200,
            )
        )


def timed_client(
    target: Target, setup: Setup, *, inner: Limiter | None = None, **settings: Any
) -> tuple[ScheduleClient, TimedLimiter]:
    """A ``ScheduleClient`` with its own ``RateLimiter`` of ``setup``'s limits, stamped.

    ``settings`` go to ``RateLimits`` as well (``mode``, ``adaptive``...); or ``inner``
    is the limiter to stamp (a ``RedisLimiter``...). Close both.
    """
    if inner is None:
        inner = RateLimiter(setup.rate_limits(**settings))
    limiter = TimedLimiter(inner)
    client = ScheduleClient(
        target.api_key,
        username=target.username,
        password=target.password,
        base_url=target.base_url,
        limiter=limiter,
    )
    return client, limiter


def call_results(
    schedule_ids: Sequence[str], results: Sequence[ScheduleResult | BaseException]
) -> list[CallResult]:
    """How each ``client.cancel`` ended, from ``gather(..., return_exceptions=True)``."""
    calls = []
    for sid, result in zip(schedule_ids, results, strict=True):
        if isinstance(result, ScheduleResult):
            calls.append(CallResult(schedule_id=sid, ok=True))
        else:
            calls.append(CallResult(schedule_id=sid, ok=False, error=type(result).__name__))
    return calls


def _schedcancel(
    *, mode: Literal["exact", "smooth"], adaptive: bool, probe: bool = False
) -> Contestant:
    async def run(target: Target, schedule_ids: Sequence[str], setup: Setup) -> Outcome:
        client, limiter = timed_client(target, setup, mode=mode, adaptive=adaptive, probe=probe)
        started = asyncio.get_running_loop().time()
        try:
            async with client:
                results = await asyncio.gather(
                    *(client.cancel(sid) for sid in schedule_ids), return_exceptions=True
                )
        finally:
            await limiter.aclose()
        calls = call_results(schedule_ids, results)
        return Outcome(started=started, attempts=tuple(limiter.attempts), calls=tuple(calls))

    return run


def _schedcancel_background(
    target: Target, schedule_ids: Sequence[str], setup: Setup
) -> Awaitable[Outcome]:
    """``client.cancel_many(ids)`` at its default priority: a background job, as the CLI runs."""

    async def run() -> Outcome:
        client, limiter = timed_client(target, setup, mode="exact", adaptive=True)
        started = asyncio.get_running_loop().time()
        try:
            async with client:
                outcomes = [o async for o in client.cancel_many(schedule_ids)]
        finally:
            await limiter.aclose()
        calls = [
            CallResult(schedule_id=o.schedule_id, ok=o.ok, error=None if o.ok else str(o.kind))
            for o in outcomes
        ]
        return Outcome(started=started, attempts=tuple(limiter.attempts), calls=tuple(calls))

    return run()


#: Every contestant by key, with the label the tables print.
CONTESTANTS: dict[str, tuple[str, Contestant]] = {
    "naive": ("aiolimiter N/W + K/W per id", _limited_peer(pacing=False, retry=False)),
    "naive-retry": ("same + retry on 429", _limited_peer(pacing=False, retry=True)),
    "pacing": ("aiolimiter 1/(W/N) pacing", _limited_peer(pacing=True, retry=False)),
    "retry": ("retry + backoff, no limiter", _retry_only),
    "sc-exact": ("schedcancel exact", _schedcancel(mode="exact", adaptive=True)),
    "sc-exact-fixed": (
        "schedcancel exact, adaptive off",
        _schedcancel(mode="exact", adaptive=False),
    ),
    "sc-smooth": ("schedcancel smooth", _schedcancel(mode="smooth", adaptive=True)),
    "sc-background": ("schedcancel, cancel_many (background)", _schedcancel_background),
    "sc-exact-probe": (
        "schedcancel exact, probe=True",
        _schedcancel(mode="exact", adaptive=True, probe=True),
    ),
}
