"""What the Redis-backed tests share: the server on 127.0.0.1:6379, a key prefix per test,
and a client whose commands take no virtual time.

A ``RedisLimiter`` given ``clock=loop.time`` runs on looptime's virtual clock,
but its Redis calls are real I/O. looptime moves the clock to the next timer
whenever the loop has nothing ready to run; were it to do so while a reply is
on its way, a burst would be stamped late, or a call would time out, depending
on how fast the machine answers. :class:`InstantRedis` keeps a handle ready
while each command is out, so the virtual clock stands still until the reply
is in: in virtual time, Redis answers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

HOST, PORT = "127.0.0.1", 6379
SCAN_COUNT = 1000  # keys a SCAN step looks at


class InstantRedis(aioredis.Redis):
    """A Redis client whose commands take no time on a virtual clock (real time as usual)."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        command = asyncio.ensure_future(
            super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        )
        try:
            # Spinning is the point: a ready handle, so looptime does not move the clock.
            while not command.done():  # noqa: ASYNC110
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            command.cancel()
            raise
        return command.result()


@contextlib.asynccontextmanager
async def local_redis() -> AsyncIterator[InstantRedis]:
    """A client of the Redis on 127.0.0.1:6379; the test is skipped when none answers PING."""
    client = InstantRedis(host=HOST, port=PORT)
    try:
        await client.ping()
    except (RedisError, OSError):
        await client.aclose()
        pytest.skip(f"no Redis server answers PING on {HOST}:{PORT}")
    try:
        yield client
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def fresh_prefix(client: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of the test's own; every key under it is deleted afterwards."""
    prefix = f"sctest-{uuid.uuid4().hex[:12]}"
    try:
        yield prefix
    finally:
        keys = await prefixed_keys(client, prefix)
        if keys:
            await client.delete(*keys)


async def prefixed_keys(client: aioredis.Redis, prefix: str) -> list[str]:
    """The keys under ``prefix``, sorted (a shared server may hold many others: large SCANs)."""
    found = client.scan_iter(match=f"{{{prefix}:*", count=SCAN_COUNT)
    return sorted([key.decode() async for key in found])
