"""FailoverLimiter: a limiter that admits through another while the first one's store fails.

A shared limiter (Redis) fails closed: while its store is down, its acquires
raise [`BackendError`][schedcancel.BackendError]. Wrapped in a `FailoverLimiter`, those
requests are admitted by the fallback (an in-process limiter) instead, for
``retry`` seconds, and then the primary is tried again.

The fallback is kept current all along: every request the primary admits
also takes its place in the fallback, so switching over, or back, never lets
this process send more than the limits within a window (without it, the
fallback would start empty just after this process had spent the budget
through the primary).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable

from .._protocol.models import Limiter, LimiterStats, Permit, RateLimitLevel, RateLimits
from .._protocol.ratelimit_headers import RateLimitHeaders
from .._protocol.validate import check_number
from ..errors import BackendError
from .limiter import QueuedLimiter

__all__ = ["FailoverLimiter"]

log = logging.getLogger("schedcancel.limiter")


class _Admitted:
    """Whose permit it is: the fallback's alone, or the primary's with its place in the fallback."""

    __slots__ = ("owner", "permit", "shadow")

    def __init__(self, owner: FailoverLimiter, permit: Permit, shadow: Permit | None) -> None:
        self.owner = owner
        self.permit = permit
        self.shadow = shadow  # None: admitted by the fallback alone


class FailoverLimiter:
    """Admit through ``primary``; while its store fails, through ``fallback``.

    Implements [`schedcancel.Limiter`][schedcancel.Limiter]. The usual pair is a shared
    limiter and an in-process one with the same limits:

        limiter = FailoverLimiter(
            RedisLimiter("redis://127.0.0.1:6379/0", username="api-user"),
            RateLimiter(),
        )

    When the primary raises [`BackendError`][schedcancel.BackendError] (for every request
    queued at the time), one WARNING is logged and requests go to the
    fallback for ``retry`` seconds; then the primary is asked again. While
    on the fallback the budget is not shared with other processes.

    Args:
        primary: the limiter to use while it works (a `RedisLimiter`).
        fallback: the limiter to use while the primary fails (a `RateLimiter`).
        retry: seconds on the fallback before the primary is tried again.

    Raises:
        InvalidParameterError: ``retry`` is not a number > 0.
    """

    def __init__(self, primary: Limiter, fallback: Limiter, *, retry: float = 30.0) -> None:
        self.primary = primary
        self.fallback = fallback
        self._retry = check_number("retry", retry)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._until = -math.inf  # the loop's time until which the fallback admits

    @property
    def limits(self) -> RateLimits:
        """The primary's limits."""
        return self.primary.limits

    def _on_fallback(self) -> bool:
        """True while the fallback admits (readable from any thread)."""
        return self._loop is not None and self._loop.time() < self._until

    def _switch(self, exc: BackendError) -> None:
        if self._on_fallback():
            return  # the other waiters of the failed round
        log.warning(
            "%s; using the in-process fallback limiter for %ss, the budget is NOT shared "
            "with other processes meanwhile",
            exc,
            self._retry,
        )
        self._loop = asyncio.get_running_loop()
        self._until = self._loop.time() + self._retry

    async def acquire(
        self,
        schedule_id: str | None,
        *,
        priority: int = 0,
        queue_timeout: float | None = None,
        requeue: bool = False,
    ) -> Permit:
        """Wait for a permit from the primary (and its place in the fallback), or the fallback.

        Args and raises as [`Limiter.acquire()`][schedcancel.Limiter.acquire];
        ``queue_timeout`` bounds the whole wait, on either limiter.
        """
        loop = asyncio.get_running_loop()
        deadline = None if queue_timeout is None else loop.time() + queue_timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - loop.time())

        if not self._on_fallback():
            try:
                permit = await self.primary.acquire(
                    schedule_id, priority=priority, queue_timeout=queue_timeout, requeue=requeue
                )
            except BackendError as exc:
                self._switch(exc)
            else:
                try:
                    shadow = await self.fallback.acquire(
                        schedule_id, priority=priority, queue_timeout=left(), requeue=requeue
                    )
                except BaseException:
                    self._unused(permit)
                    raise
                return self._permit(permit, shadow)
        permit = await self.fallback.acquire(
            schedule_id, priority=priority, queue_timeout=left(), requeue=requeue
        )
        return self._permit(permit, None)

    def _permit(self, permit: Permit, shadow: Permit | None) -> Permit:
        return Permit(
            schedule_id=permit.schedule_id,
            acquired_at=permit.acquired_at,
            handle=_Admitted(self, permit, shadow),
        )

    def _admitted(self, permit: Permit) -> _Admitted:
        admitted = permit.handle
        if not isinstance(admitted, _Admitted) or admitted.owner is not self:
            raise ValueError("permit was not issued by this limiter")
        return admitted

    def _unused(self, permit: Permit) -> None:
        """The primary's permit will not be sent: give it back (or count it, the safe side)."""
        if isinstance(self.primary, QueuedLimiter):
            self.primary.give_back(permit)
        else:
            release = asyncio.ensure_future(self.primary.release(permit))
            release.add_done_callback(lambda task: task.cancelled() or task.exception())

    async def release(
        self,
        permit: Permit,
        *,
        rate_limited: bool = False,
        retry_after: float | None = None,
    ) -> RateLimitLevel | None:
        """Release the permit where it was admitted (and its place in the fallback).

        Raises:
            ValueError: the permit is not from this limiter.
        """
        admitted = self._admitted(permit)
        if admitted.shadow is None:
            return await self.fallback.release(
                admitted.permit, rate_limited=rate_limited, retry_after=retry_after
            )
        await self.fallback.release(
            admitted.shadow, rate_limited=rate_limited, retry_after=retry_after
        )
        return await self.primary.release(
            admitted.permit, rate_limited=rate_limited, retry_after=retry_after
        )

    async def release_heard(
        self, permit: Permit, headers: RateLimitHeaders, *, rate_limited: bool = False
    ) -> RateLimitLevel | None:
        """Release as `release()` does, passing on what the answer's rate-limit headers said.

        Raises:
            ValueError: the permit is not from this limiter.
        """
        admitted = self._admitted(permit)
        if admitted.shadow is not None:
            await _release_heard(self.fallback, admitted.shadow, headers, rate_limited)
            return await _release_heard(self.primary, admitted.permit, headers, rate_limited)
        return await _release_heard(self.fallback, admitted.permit, headers, rate_limited)

    async def estimate(self, schedule_id: str | None = None) -> float:
        """The estimate of the limiter that would admit a request now.

        Raises:
            BackendError: never; a primary that fails is asked no more for ``retry`` seconds.
        """
        if not self._on_fallback():
            try:
                return await self.primary.estimate(schedule_id)
            except BackendError as exc:
                self._switch(exc)
        return await self.fallback.estimate(schedule_id)

    def stats(self) -> LimiterStats:
        """The stats of the limiter that admits now.

        Raises:
            AttributeError: that limiter has no ``stats()`` (both of schedcancel's have).
        """
        active = self.fallback if self._on_fallback() else self.primary
        stats: Callable[[], LimiterStats] = getattr(active, "stats")  # noqa: B009 - not in Limiter
        return stats()

    async def aclose(self) -> None:
        """Close the primary and the fallback (each that has an ``aclose()``)."""
        await self._close(self.primary)
        await self._close(self.fallback)

    @staticmethod
    async def _close(limiter: Limiter) -> None:
        aclose = getattr(limiter, "aclose", None)
        if aclose is not None:
            await aclose()


async def _release_heard(
    limiter: Limiter, permit: Permit, headers: RateLimitHeaders, rate_limited: bool
) -> RateLimitLevel | None:
    """Release on ``limiter``, with the headers when it takes them."""
    heard = getattr(limiter, "release_heard", None)
    if heard is not None:
        level: RateLimitLevel | None = await heard(permit, headers, rate_limited=rate_limited)
        return level
    retry_after = headers.retry_after if rate_limited else None
    return await limiter.release(permit, rate_limited=rate_limited, retry_after=retry_after)
