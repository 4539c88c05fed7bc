"""The virtual clock every looptime test runs on starts at 0, whatever its fixtures waited.

looptime keeps the time that a loop's fixtures spent waiting for I/O (in its real-time
mode) as the start of the test's virtual time; the suite's ``conftest.py`` sets it back to
0, where the tests count from (a log entry of a send at 0.2 expires at 61.2).
"""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.looptime


@pytest.fixture(name="waited")
async def _waited() -> float:
    """A fixture that waits for real, as one that talks to Redis or a server does."""
    loop = asyncio.get_running_loop()
    before = loop.time()
    await asyncio.sleep(0.01)
    return loop.time() - before


async def test_the_clock_starts_at_zero_after_a_fixture_that_waited(waited: float) -> None:
    assert waited >= 0.01  # real time: the fixture ran before looptime's time mode
    assert asyncio.get_running_loop().time() == 0.0


@pytest.mark.looptime(start=120.5)
async def test_a_start_the_test_names_is_kept(waited: float) -> None:
    assert waited >= 0.01
    assert asyncio.get_running_loop().time() == 120.5
