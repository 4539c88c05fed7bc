"""Limiters on either store, for tests that run one behaviour against both."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Protocol, TypeAlias

import pytest
from schedcancel import RateLimiter, RateLimits
from schedcancel.redis import RedisLimiter

from support.redis import fresh_prefix, local_redis, virtual_clock

AnyLimiter: TypeAlias = RateLimiter | RedisLimiter

#: Both stores, as fixture params; -m "not redis" leaves the Redis one out.
STORES = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


class Make(Protocol):
    """Builds a limiter on the test's store; it is closed when the test ends."""

    def __call__(
        self, limits: RateLimits | None = None, *, clock: Callable[[], float] | None = None
    ) -> AnyLimiter: ...


@contextlib.asynccontextmanager
async def limiters(store: str) -> AsyncIterator[Make]:
    """``make(limits)`` for ``store``: a ``RateLimiter``, or a ``RedisLimiter`` on the loop's
    (virtual) clock; every limiter made is closed at the end.

    Each limiter made has a budget of its own (its own API user), as two
    ``RateLimiter`` objects have. Without a Redis server the test is skipped.
    """
    made: list[AnyLimiter] = []
    async with contextlib.AsyncExitStack() as stack:
        if store == "redis":
            client = await stack.enter_async_context(local_redis())
            prefix = await stack.enter_async_context(fresh_prefix(client))

        def make(
            limits: RateLimits | None = None, *, clock: Callable[[], float] | None = None
        ) -> AnyLimiter:
            limiter: AnyLimiter
            if store == "memory":
                limiter = RateLimiter(limits, clock=clock)
            else:
                limiter = RedisLimiter(
                    client,
                    username=f"user-{len(made)}",
                    key_prefix=prefix,
                    limits=limits,
                    clock=clock or virtual_clock(),
                    jitter=0,
                )
            made.append(limiter)
            return limiter

        try:
            yield make
        finally:
            for limiter in made:
                await limiter.aclose()
