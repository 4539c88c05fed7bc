"""Shared test setup: the mock-server fixtures, opted into as any user would."""

from __future__ import annotations

import asyncio
import errno
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from schedcancel import Journal

# schedcancel's fixtures load only where named (no pytest11 entry point); pytester runs
# the plugin again in a project of its own (strict mode) in tests/test_testing.py.
pytest_plugins = ["pytester", "schedcancel.pytest_plugin"]


@pytest.fixture(autouse=True, scope="session")
def _no_implicit_event_loop() -> None:
    """Stop ``get_event_loop()`` from creating a loop that nobody closes.

    looptime's ``pytest_pyfunc_call`` asks the policy for the event loop around
    every test, sync ones included. Before any loop was set, Python 3.11's policy
    answers by creating one, which then leaks as "unclosed event loop" when a sync
    test runs first. Marking the loop as explicitly unset makes the policy raise
    instead, which looptime handles.
    """
    asyncio.set_event_loop(None)


@pytest.fixture(name="journal_fails_after")
def _journal_fails_after(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``journal_fails_after(n)``: every journal line after the first ``n`` fails: a full disk."""

    def arm(writes: int) -> None:
        real = Journal.write_record
        count = 0

        def flaky(self: Journal, record: Mapping[str, Any]) -> None:
            nonlocal count
            count += 1
            if count > writes:
                raise OSError(errno.ENOSPC, "No space left on device")
            real(self, record)

        monkeypatch.setattr(Journal, "write_record", flaky)

    return arm


async def _tick(interval: float) -> None:
    while True:  # noqa: ASYNC110 - the point is a timer always pending, not a condition
        await asyncio.sleep(interval)


@pytest.fixture(name="virtual_redis")
async def _virtual_redis() -> AsyncIterator[tuple[Any, str]]:
    """A Redis client whose replies take (almost) no virtual time, and a key prefix to use.

    looptime moves its clock to the next timer once the loop has idled a few
    cycles; a Redis reply is real I/O and may take longer than that, and the
    next timer may be a window away. While a command is out, this client keeps a
    timer half a millisecond ahead, so a reply costs at most that much virtual
    time. The prefix's keys are deleted afterwards. Skips without Redis.
    """
    redis_asyncio = pytest.importorskip("redis.asyncio")
    from redis.exceptions import RedisError  # noqa: PLC0415 - the redis extra

    class VirtualTimeRedis(redis_asyncio.Redis):  # type: ignore[misc, name-defined]
        async def execute_command(self, *args: Any, **options: Any) -> Any:
            ticking = asyncio.ensure_future(_tick(0.0005))
            try:
                return await super().execute_command(*args, **options)
            finally:
                ticking.cancel()

    client = VirtualTimeRedis(host="127.0.0.1", port=6379)
    try:
        await client.ping()
    except (RedisError, OSError):
        await client.aclose()
        pytest.skip("no Redis server on 127.0.0.1:6379")
    prefix = f"sctest-{uuid.uuid4().hex[:12]}"
    yield client, prefix
    keys = [key async for key in client.scan_iter(match=f"{{{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
