"""Shared test setup: the mock-server fixtures, opted into as any user would."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping
from typing import Any

import coverage
import pytest
from schedcancel import Journal

from support.redis import fresh_prefix, local_redis

# schedcancel's fixtures load only where named (no pytest11 entry point); pytester runs
# the plugin again in a project of its own (strict mode) in tests/test_testing.py.
pytest_plugins = ["pytester", "schedcancel.pytest_plugin"]

#: looptime moves its clock to the next timer after this many loop cycles with nothing to
#: run (its own default: 42). The cycles wait for I/O from outside the loop; here there is
#: none that they would catch: the mock server is in the same loop and a loopback send is in
#: the peer's socket when ``send()`` returns, `support.redis.InstantRedis` holds the clock
#: while Redis answers, and looptime waits for executor threads (the journal's writes) on
#: its own. Each idle cycle costs a loop turn, so at 42 they were most of a virtual-time
#: test's run (6,000 requests: 12.1 s at 42, 6.9 s at 1, the same figures to the last bit).
LOOPTIME_NOOP_CYCLES = 1
#: Temporary directories go to tmpfs when it has this much room (see pytest_configure).
# pytest makes its own directory there (pytest-of-USER, mode 0o700), as under /tmp.
TMPFS, TMPFS_ROOM = "/dev/shm", 1 << 30  # noqa: S108


def pytest_configure(config: pytest.Config) -> None:
    """Put ``tmp_path`` on tmpfs (``/dev/shm``) unless the run chose where temporaries go.

    The journal ``fsync``s every line (from a thread); on a disk that made the tests that
    journal thousands of lines wait on it (10,000 rows: 58 s on ext4, 23 s on tmpfs). A
    process killed with -9 loses nothing written to either, so the crash tests test the same.
    """
    chosen = config.option.basetemp or os.environ.get("PYTEST_DEBUG_TEMPROOT")
    if chosen or os.environ.get("TMPDIR") or not os.access(TMPFS, os.W_OK):
        return
    stat = os.statvfs(TMPFS)
    if stat.f_bavail * stat.f_frsize >= TMPFS_ROOM:
        os.environ["PYTEST_DEBUG_TEMPROOT"] = TMPFS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give every looptime test ``noop_cycles=LOOPTIME_NOOP_CYCLES`` (its own marker's win),
    and run the tests marked ``scale`` without coverage tracing (pytest-cov's ``no_cover``).

    A ``scale`` test sends thousands of requests (or ids) for a bound that needs the
    numbers; the small tests run the same code, so its lines and branches are covered
    without it (the report is the same), and tracing made it four to eight times slower.
    """
    cov = config.pluginmanager.hasplugin("_cov")
    for item in items:
        if item.get_closest_marker("looptime") is not None:
            # Appended: looptime applies the markers farthest first, so a test's own
            # ``@pytest.mark.looptime(...)`` options still override this one.
            item.add_marker(pytest.mark.looptime(noop_cycles=LOOPTIME_NOOP_CYCLES))
        if cov and item.get_closest_marker("scale") is not None:
            item.add_marker(pytest.mark.no_cover)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Inside pytest-cov's ``no_cover`` pause, stop the coverage that it left running.

    In an xdist worker pytest-cov starts two coverages, one on top of the other (pytest-cov
    7.1); its pause stops the top one, and coverage.py then resumes the one underneath, so
    the test was traced all the same. Stopped here too, a ``scale`` test runs untraced on a
    worker as in one process (where nothing is left running and this does nothing).
    """
    under = coverage.Coverage.current() if item.get_closest_marker("no_cover") else None
    if under is None:
        return (yield)
    under.stop()
    try:
        return (yield)
    finally:
        under.start()


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Start every looptime test's clock at exactly 0 (or its marker's ``start``).

    Until looptime turns on for the test body, the loop is in its real-time mode, in which
    each wait for I/O adds the real time it took to the clock that the test then starts
    from; and ``start=0`` cannot say otherwise (looptime 0.9 reads a start of 0 as "none
    given"). So a test whose fixtures talk to Redis (a PING) started at 2 µs, or at 572 µs
    on a loaded machine, and one that counts from 0 (a log entry expires at 61.2) failed
    by that much. Inside looptime's own wrapper (``trylast``), with its time mode on, the
    clock is set where the test expects it; ``tests/test_virtual_time.py`` tests this.
    """
    loop = _looptime_loop(pyfuncitem)
    if loop is not None and not any(
        "start" in marker.kwargs for marker in pyfuncitem.iter_markers("looptime")
    ):
        if not hasattr(loop, LOOPTIME_NOW):
            raise RuntimeError(f"looptime has no {LOOPTIME_NOW} (a new version?): see conftest")
        setattr(loop, LOOPTIME_NOW, 0)
    return (yield)


#: The looptime loop's own clock, in its resolution's integer steps (a private name).
LOOPTIME_NOW = "_LoopTimeEventLoop__now"


def _looptime_loop(pyfuncitem: pytest.Function) -> Any:
    """The test's event loop if looptime's time mode is on for it, else None."""
    policy = pyfuncitem.funcargs.get("event_loop_policy")
    if not isinstance(policy, asyncio.AbstractEventLoopPolicy):
        return None
    try:
        loop = policy.get_event_loop()
    except RuntimeError:  # a sync test: no loop set
        return None
    return loop if getattr(loop, "looptime_on", False) else None


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
