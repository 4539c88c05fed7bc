"""Shared test setup: the mock-server fixtures, opted into as any user would."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from schedcancel import Journal

from support.redis import fresh_prefix, local_redis

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


@pytest.fixture(name="virtual_redis")
async def _virtual_redis() -> AsyncIterator[tuple[Any, str]]:
    """A client of the Redis on 127.0.0.1:6379 whose replies take no virtual time, and a prefix.

    See ``support.redis.InstantRedis``: looptime would otherwise move its clock to
    the next timer (a window away, perhaps) while a reply is on its way. The
    prefix's keys are deleted afterwards; without Redis the test is skipped.
    """
    async with local_redis() as client, fresh_prefix(client) as prefix:
        yield client, prefix
