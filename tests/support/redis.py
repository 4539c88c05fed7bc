"""What the Redis-backed tests share: the server on 127.0.0.1:6379, a key prefix per test,
and a client whose commands take no virtual time.

A ``RedisLimiter`` given ``clock=loop.time`` runs on looptime's virtual clock,
but its Redis calls are real I/O. looptime moves the clock to the next timer
whenever the loop has nothing ready to run; were it to do so while a reply is
on its way, a burst would be stamped late, or a call would time out, depending
on how fast the machine answers. :class:`InstantRedis` keeps a handle ready
while each command is out, so the virtual clock stands still until the reply
is in: in virtual time, Redis answers at once. A command that has not answered
within SPIN_LIMIT real seconds (Redis stalled, or redis-py waiting on a timer
of its own) lets the clock move again, so it fails as it would on any clock
instead of hanging the test; so does a driver that asks Redis again and again
while the virtual clock stands still (STUCK_LIMIT commands at one moment).

:func:`virtual_clock` is the clock to give such a limiter: the loop's. (RedisLimiter
once passed it to the script rounded *down* to whole microseconds, and
``130.771821 * 10**6`` is ``130771820.99999999``: the script answered "1 µs more"
at a moment the dispatcher counts as reached, for ever; ``test_redis.py`` keeps
the test of that livelock.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

HOST, PORT = "127.0.0.1", 6379
SCAN_COUNT = 1000  # keys a SCAN step looks at
SPIN_LIMIT = 5.0  # real seconds a command may hold the virtual clock still
STUCK_LIMIT = 10_000  # commands at one virtual moment before it counts as a livelock
#: The adaptive policy alone as a script, for the tests (the package does not ship it).
POLICY_LUA = Path(__file__).resolve().parent.parent / "lua" / "policy.lua"


class Policy(NamedTuple):
    """``tests/lua/policy.lua``'s ARGV, in order (its header lists the same names)."""

    now: str
    total: int
    hold: int
    event: str
    at: int
    a: int = 0
    b: int = 0


BACKGROUND_LUA = POLICY_LUA.parent / "background.lua"


class Background(NamedTuple):
    """``tests/lua/background.lua``'s ARGV, in order (its header lists the same names)."""

    now: str
    event: str
    at: int
    limit: int
    reserve: int
    hold: int
    window: int
    in_flight: int
    expiries: str  # comma-separated, ascending


def virtual_clock() -> Callable[[], float]:
    """The running loop's clock, for a RedisLimiter on looptime."""
    return asyncio.get_running_loop().time


class InstantRedis(aioredis.Redis):
    """A Redis client whose commands take no time on a virtual clock (real time as usual)."""

    _moment, _at_moment = math.nan, 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        now = asyncio.get_running_loop().time()
        if now != self._moment:
            self._moment, self._at_moment = now, 0
        self._at_moment += 1
        if self._at_moment > STUCK_LIMIT:
            self._at_moment = 0  # said once: what runs next (a cleanup) may go on
            raise RedisError(f"livelock: {STUCK_LIMIT} commands at one moment ({now})")
        command = asyncio.ensure_future(
            super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        )
        give_up = time.monotonic() + SPIN_LIMIT
        try:
            # Spinning is the point: a ready handle, so looptime does not move the clock.
            while not command.done() and time.monotonic() < give_up:  # noqa: ASYNC110
                await asyncio.sleep(0)
            return await command
        except asyncio.CancelledError:
            command.cancel()
            raise


@functools.cache
def redis_answers() -> bool:
    """Whether a Redis server answers PING on 127.0.0.1:6379 (asked once, without a loop)."""
    try:
        with socket.create_connection((HOST, PORT), timeout=2.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def require_redis() -> None:
    """Skip the test when no Redis server answers PING on 127.0.0.1:6379."""
    if not redis_answers():
        pytest.skip(f"no Redis server answers PING on {HOST}:{PORT}")


@contextlib.asynccontextmanager
async def local_redis() -> AsyncIterator[InstantRedis]:
    """A client of the Redis on 127.0.0.1:6379; the test is skipped when none answers PING."""
    require_redis()
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
