"""RedisLimiter's own behaviour against the real Redis server on 127.0.0.1:6379 (and
private ones it kills): keys, scores, expiry, the script, failures, sharing between
limiters and processes.

The behaviour it shares with the in-process limiter (bursts, ordering, deadlines,
cancellation, 429 pauses, adaptive, estimates) is tested against both stores in
``test_limiter.py``. Tests about timing run on an injected clock, never on the
wall clock: on looptime's virtual clock (marked ``looptime``; ``make`` then passes
``clock=loop.time``, and ``support.redis.InstantRedis`` keeps that clock still while
a command is out) or on a list the test advances by hand. Key lifetimes are
Redis's own real-time countdown (on an injected clock every key lives an hour at
least): they are checked on Redis ``TIME``, against the real time that passed
since the key was set (``_assert_pttl``), never with a margin for a slow machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.crc import key_slot
from redis.exceptions import RedisError
from schedcancel import (
    BackendError,
    FailoverLimiter,
    InvalidParameterError,
    Limiter,
    Permit,
    QueueTimeoutError,
    RateLimiter,
    RateLimitHeaders,
    RateLimits,
    ScheduleClient,
    ScheduleResult,
    StatedQuota,
)
from schedcancel._limiting import redis_scripts as scripts
from schedcancel._limiting.adaptive import QUIET_WINDOWS, in_flight_cap
from schedcancel.redis import RedisLimiter
from schedcancel.testing import MockScheduleServer, ServerLimits

from support.redis import fresh_prefix, local_redis, prefixed_keys, virtual_clock

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
USERNAME = "api-user-secretive"
US = 1_000_000


@pytest.fixture(name="client")
async def _client() -> AsyncIterator[aioredis.Redis]:
    """A client of the Redis on 127.0.0.1:6379 (skips the test when none answers)."""
    async with local_redis() as client:
        yield client


@pytest.fixture(name="prefix")
async def _prefix(client: aioredis.Redis) -> AsyncIterator[str]:
    """A key prefix of the test's own, its keys deleted afterwards."""
    async with fresh_prefix(client) as prefix:
        yield prefix


@pytest.fixture(name="make")
async def _make(
    request: pytest.FixtureRequest, client: aioredis.Redis, prefix: str
) -> AsyncIterator[Callable[..., RedisLimiter]]:
    """``make(**kwargs)``: a RedisLimiter on ``client`` and the test's prefix, closed afterwards.

    In a test on looptime's virtual clock it runs on the loop's clock, without jitter.
    """
    virtual = request.node.get_closest_marker("looptime") is not None
    made: list[RedisLimiter] = []

    def make(**kwargs: object) -> RedisLimiter:
        kwargs.setdefault("username", USERNAME)
        kwargs.setdefault("key_prefix", prefix)
        if virtual:
            kwargs.setdefault("clock", virtual_clock())
            kwargs.setdefault("jitter", 0)
        limiter = RedisLimiter(kwargs.pop("redis", client), **kwargs)  # type: ignore[arg-type]
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


def _limits(**kwargs: float | str | bool) -> RateLimits:
    defaults: dict[str, float | str | bool] = {"window": 30.0, "guard": 0.0}
    return RateLimits(**{**defaults, **kwargs})  # type: ignore[arg-type]


async def _assert_pttl(client: aioredis.Redis, key: str, ms: int, since: float) -> None:
    """``key`` expires ``ms`` after it was set, at or after ``since`` (``time.monotonic()``).

    Redis counts a PTTL down in real time: it may have lost what passed since then.
    """
    pttl = await client.pttl(key)
    passed = (time.monotonic() - since) * 1000
    assert ms - passed - 1 <= pttl <= ms, (pttl, ms, passed)


async def _entries(client: aioredis.Redis, key: str) -> list[tuple[str, float]]:
    raw = cast("list[tuple[bytes, float]]", await client.zrange(key, 0, -1, withscores=True))
    return [(member.decode(), float(score)) for member, score in raw]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(name="private_redis")
def _private_redis() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    for _ in range(100):  # up to 5 s for it to listen
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=0.05)
        assert proc.poll() is None, "redis-server exited"
    yield proc, port
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGCONT)
    proc.kill()
    proc.wait()


# -- importing --------------------------------------------------------------


async def test_import_without_redis_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing schedcancel.redis without redis-py fails with the pip hint."""
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    monkeypatch.delitem(sys.modules, "schedcancel.redis")
    monkeypatch.delitem(sys.modules, "schedcancel._limiting.redis_store")
    with pytest.raises(ImportError, match=r"pip install 'schedcancel\[redis\]'"):
        importlib.import_module("schedcancel.redis")


async def test_importing_schedcancel_never_imports_redis() -> None:
    """``import schedcancel`` leaves redis-py unimported."""
    code = "import sys, schedcancel; sys.exit('redis' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, env=env)
    assert await proc.wait() == 0


# -- construction -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"username": ""}, "username"),
        ({"key_prefix": "a{b"}, "key_prefix"),
        ({"in_flight_timeout": 0}, "in_flight_timeout"),
        ({"timeout": -1}, "timeout"),
        ({"jitter": -0.1}, "jitter"),
        ({"fallback_retry": 0}, "fallback_retry"),
        ({"redis": "redis://127.0.0.1:notaport/0"}, "not a usable Redis URL"),
    ],
)
async def test_invalid_arguments_fail_before_io(kwargs: dict[str, object], message: str) -> None:
    """Bad settings raise InvalidParameterError at construction, before touching Redis."""
    args: dict[str, object] = {"redis": "redis://127.0.0.1:1/0", "username": "u", **kwargs}
    with pytest.raises(InvalidParameterError, match=message):
        RedisLimiter(**args)  # type: ignore[arg-type]


async def test_bad_acquire_arguments_fail_before_io(make: Callable[..., RedisLimiter]) -> None:
    """An empty scheduleId or a negative queue_timeout is refused without a round trip."""
    limiter = make(redis="redis://127.0.0.1:1/0")
    with pytest.raises(InvalidParameterError, match="schedule_id"):
        await limiter.acquire("")
    with pytest.raises(InvalidParameterError, match="queue_timeout"):
        await limiter.acquire("SC-1", queue_timeout=-1)


async def test_is_a_limiter_and_repr_hides_secrets(make: Callable[..., RedisLimiter]) -> None:
    """The limiter is a Limiter; its repr shows config, never the user name or a password."""
    limiter = make(redis="redis://admin:hunter2@127.0.0.1:1/3")
    assert isinstance(limiter, Limiter)
    text = repr(limiter)
    assert "redis://127.0.0.1:1/3" in text
    assert "total=60" in text
    for secret in ("hunter2", "admin", USERNAME):
        assert secret not in text


# -- the script: both levels ---------------------------------------------------


@pytest.mark.looptime
async def test_user_level_admits_n_then_says_how_long(make: Callable[..., RedisLimiter]) -> None:
    """N requests go at once; the next fails at once when its wait exceeds queue_timeout."""
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace the
    # cold start and the refill).
    limits = _limits(total=3, per_schedule=10, window=30.0, guard=1.0, adaptive=False)
    limiter = make(limits=limits)
    permits = [await limiter.acquire(f"SC-{i}") for i in range(3)]
    assert limiter.stats().total_used == 3
    with pytest.raises(QueueTimeoutError) as caught:
        await limiter.acquire("SC-9", queue_timeout=5)
    # All three are in flight: the earliest any can stop counting is acquire + window + guard.
    assert caught.value.expected_wait == pytest.approx(31.0)
    assert await limiter.estimate("SC-9") == pytest.approx(31.0)
    assert await limiter.estimate() == pytest.approx(31.0)
    assert limiter.stats().in_flight == 3
    for permit in permits:
        await limiter.release(permit)


@pytest.mark.looptime
async def test_schedule_level_holds_only_its_own_id(make: Callable[..., RedisLimiter]) -> None:
    """K requests per scheduleId; a full id waits while other ids still go (no head-of-line)."""
    limiter = make(limits=_limits(total=60, per_schedule=2))
    await limiter.acquire("SC-A")
    await limiter.acquire("SC-A")
    with pytest.raises(QueueTimeoutError):
        await limiter.acquire("SC-A", queue_timeout=1)
    blocked = asyncio.ensure_future(limiter.acquire("SC-A"))
    permit = await asyncio.wait_for(limiter.acquire("SC-B"), 5)
    assert permit.schedule_id == "SC-B"
    assert not blocked.done()
    assert limiter.stats().queued == 1
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    assert limiter.stats().queued == 0


async def test_concurrent_acquirers_never_exceed_the_limit(
    client: aioredis.Redis, prefix: str, make: Callable[..., RedisLimiter]
) -> None:
    """Five limiters on separate connections racing 200 acquires admit exactly N."""
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace the
    # cold start and the refill).
    limits = _limits(total=20, adaptive=False)
    limiters = [make(redis=aioredis.Redis(port=6379), limits=limits) for _ in range(5)]

    async def try_once(limiter: RedisLimiter, i: int) -> bool:
        try:
            await limiter.acquire(f"SC-{i}", queue_timeout=0)
        except QueueTimeoutError:
            return False
        return True

    try:
        granted = await asyncio.gather(*(try_once(limiters[i % 5], i) for i in range(200)))
        assert sum(granted) == 20
        assert await client.zcard(limiters[0].keys()[0]) == 20
    finally:
        for limiter in limiters:
            await limiter.aclose()
            await limiter._redis._client.aclose()


@pytest.mark.looptime
async def test_release_rescores_from_provisional_to_response_anchored(
    client: aioredis.Redis, make: Callable[..., RedisLimiter]
) -> None:
    """An in-flight entry counts until acquire+in_flight+hold; released, until release+hold."""
    limiter = make(limits=_limits(window=20.0, guard=2.0), in_flight_timeout=40.0)
    user_log, *_ = limiter.keys()
    id_log = limiter.keys("SC-1")[-3]
    permit = await limiter.acquire("SC-1")
    acquired = round(permit.acquired_at * US)
    for key in (user_log, id_log):
        ((member, score),) = await _entries(client, key)
        assert member.startswith(f"i{acquired}:")
        assert score == acquired + 62 * US
    await asyncio.sleep(5)  # the response comes 5 s later
    await limiter.release(permit)
    for key in (user_log, id_log):
        ((member, score),) = await _entries(client, key)
        assert member.startswith("r:")
        assert score == acquired + (5 + 22) * US


@pytest.mark.looptime
async def test_crashed_holders_entries_expire(
    client: aioredis.Redis, make: Callable[..., RedisLimiter]
) -> None:
    """A permit never released stops counting in_flight_timeout + window + guard after acquire."""
    limiter = make(limits=_limits(total=1, window=0.1), in_flight_timeout=0.4)
    crashed = await limiter.acquire("SC-1")  # its process "dies": no release
    user_log = limiter.keys()[0]
    # Past acquire + hold the entry may end any moment, so the wait is a short poll
    # (window / 100, at least 10 ms) ...
    await asyncio.sleep(0.12)
    with pytest.raises(QueueTimeoutError) as caught:
        await limiter.acquire("SC-2", queue_timeout=0)
    assert caught.value.expected_wait == pytest.approx(0.01)
    # ... until its provisional score, when it stops counting.
    permit = await limiter.acquire("SC-2")
    assert permit.acquired_at - crashed.acquired_at == pytest.approx(0.5)
    assert await client.zcard(user_log) == 1
    await limiter.release(permit)


@pytest.mark.looptime
async def test_waiter_is_admitted_when_an_entry_expires(make: Callable[..., RedisLimiter]) -> None:
    """A queued request goes once the released entry has counted window + guard."""
    limiter = make(limits=_limits(total=1, window=0.1, guard=0.02))
    first = await limiter.acquire("SC-1")
    waiting = asyncio.ensure_future(limiter.acquire("SC-2"))
    await asyncio.sleep(0)
    await limiter.release(first)
    second = await waiting
    assert second.acquired_at - first.acquired_at == pytest.approx(0.12)
    await limiter.release(second)


# -- 429 pauses ---------------------------------------------------------------


@pytest.mark.looptime
async def test_user_429_pause_is_shared_between_limiters(
    client: aioredis.Redis, make: Callable[..., RedisLimiter]
) -> None:
    """A 429 reported by one process pauses the API user for every other one."""
    first = make(limits=_limits(adaptive=False))
    second = make(limits=_limits(adaptive=False))
    permit = await first.acquire("SC-1")
    await first.release(permit, rate_limited=True, retry_after=7.0)
    with pytest.raises(QueueTimeoutError) as caught:
        await second.acquire("SC-2", queue_timeout=1)
    assert caught.value.expected_wait == pytest.approx(7.0)
    assert await client.exists(first.keys()[1]) == 1  # the pause lives in Redis
    assert first.stats().rate_limited == 1
    assert second.stats().next_free == pytest.approx(7.0)


@pytest.mark.looptime
async def test_429_without_retry_after_pauses_a_full_id_for_a_hold(
    client: aioredis.Redis, make: Callable[..., RedisLimiter]
) -> None:
    """A 429 on an id whose log is full pauses that id for window + guard, not the API user."""
    first = make(limits=_limits(per_schedule=1, window=10.0, guard=1.0))
    second = make(limits=_limits(per_schedule=1, window=10.0, guard=1.0))
    permit = await first.acquire("SC-1")
    await first.release(permit, rate_limited=True)
    with pytest.raises(QueueTimeoutError) as caught:
        await second.acquire("SC-1", queue_timeout=1)
    assert caught.value.expected_wait == pytest.approx(11.0)
    assert await client.exists(first.keys()[1]) == 0
    other = await second.acquire("SC-2")
    assert other.acquired_at == permit.acquired_at
    await second.release(other)


@pytest.mark.looptime
async def test_retry_after_is_capped_and_pauses_only_grow(
    make: Callable[..., RedisLimiter],
) -> None:
    """Retry-After is capped (2 * window by default) and a shorter one never shortens a pause."""
    limiter = make(limits=_limits(window=3.0, adaptive=False))
    other = make(limits=_limits(window=3.0, adaptive=False))  # another process
    permits = [await limiter.acquire("SC-1") for _ in range(2)]
    for permit, retry_after in zip(permits, (3600.0, 1.0), strict=True):
        await limiter.release(permit, rate_limited=True, retry_after=retry_after)
        with pytest.raises(QueueTimeoutError) as caught:
            await other.acquire("SC-2", queue_timeout=1)
        assert caught.value.expected_wait == pytest.approx(6.0)


# -- smooth and adaptive ----------------------------------------------------------


@pytest.mark.looptime
async def test_smooth_mode_spaces_sends_through_a_shared_key(
    client: aioredis.Redis, make: Callable[..., RedisLimiter]
) -> None:
    """In smooth mode a second process must wait window / N * (1 + slack) after any send."""
    first = make(limits=_limits(total=4, window=2.0, mode="smooth", slack=0.01))
    second = make(limits=_limits(total=4, window=2.0, mode="smooth", slack=0.01))
    await first.acquire("SC-1")
    with pytest.raises(QueueTimeoutError) as caught:
        await second.acquire("SC-2", queue_timeout=0.1)
    assert caught.value.expected_wait == pytest.approx(0.505)
    assert await client.exists(first.keys()[2]) == 1  # the last send lives in Redis
    assert second.stats().mode == "smooth"


async def test_adaptive_policy_is_shared_and_judged_when_the_pause_ends(
    client: aioredis.Redis, make: Callable[..., RedisLimiter], caplog: pytest.LogCaptureFixture
) -> None:
    """The script applies _adaptive's policy for every process, on an injected clock.

    A 429 opens an episode; when its pause is over the next call judges it: the
    server took a full window of ours, so every process goes smooth; a second
    episode while smooth steps the shared limit down; quiet holds raise it back.

    The three first calls go one after the other, each answered before the next: a
    cold start admits ceil(3 / 6) = 1 in flight (rule 4), and their acceptances end it.
    """
    caplog.set_level(logging.INFO, logger="schedcancel.redis")
    now = [1000.0]
    first = make(limits=_limits(total=3, window=10.0), clock=lambda: now[0])
    second = make(limits=_limits(total=3, window=10.0), clock=lambda: now[0])
    adapt = second.keys()[3]
    for i in range(3):  # three acceptances in one window
        await first.release(await first.acquire(f"SC-{i}"))
    now[0] = 1011.0
    refused = await first.acquire("SC-9")
    await first.release(refused, rate_limited=True, retry_after=1.0)
    assert await client.hget(adapt, "open") == b"1"
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]  # judged later
    now[0] = 1012.5  # the pause is over: the next call judges the episode
    stats = await second.shared_stats()
    assert (stats.total_limit, stats.mode) == (3, "smooth")
    assert (await first.shared_stats()).mode == "smooth"
    now[0] = 1020.0
    refused = await second.acquire("SC-8")
    await second.release(refused, rate_limited=True, retry_after=1.0)
    now[0] = 1022.0
    assert (await first.shared_stats()).total_limit == 2  # smooth already: one less
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "every process sharing this API user now paces sends 3.37s apart" in warnings[0]
    assert "the shared limit is now 2 per 10s" in warnings[1]
    # On an injected clock, keys live an hour of Redis's own time at least (see lua/helpers.lua).
    assert 3_590_000 < await client.pttl(adapt) <= 3_600_000
    # Additive increase: one more per hold after ten quiet holds; pacing stays.
    now[0] = 1020.0 + 10 * 10.0 + 5.0
    assert (await second.shared_stats()).total_limit == 2
    now[0] = 1020.0 + 11 * 10.0
    stats = await second.shared_stats()
    assert (stats.total_limit, stats.mode) == (3, "smooth")


async def test_non_adaptive_429_leaves_the_limit(
    client: aioredis.Redis, make: Callable[..., RedisLimiter]
) -> None:
    """With adaptive off a 429 only pauses; the limit stays."""
    limiter = make(limits=_limits(total=10, adaptive=False))
    permit = await limiter.acquire("SC-1")
    await limiter.release(permit, rate_limited=True, retry_after=0.001)
    assert await client.exists(limiter.keys()[3]) == 0


@pytest.mark.looptime(start=120.771821)
async def test_a_wait_ending_on_a_microsecond_a_float_misses_ends(
    make: Callable[..., RedisLimiter],
) -> None:
    """On the loop's own virtual clock, a wait that ends at 130.771821 s ends then.

    (130.771821 * 10**6 is 130771820.99999999: a clock floored to microseconds left
    the script 1 µs behind the dispatcher, which asked again at the same moment for ever.)
    """
    limiter = make(limits=_limits(total=1, window=10.0), clock=asyncio.get_running_loop().time)
    await limiter.release(await limiter.acquire("SC-1"))
    permit = await limiter.acquire("SC-2")
    assert permit.acquired_at == pytest.approx(130.771821)


# -- keys -----------------------------------------------------------------------


@pytest.mark.looptime
async def test_keys_share_one_hash_tag_and_hide_the_username(
    client: aioredis.Redis, prefix: str, make: Callable[..., RedisLimiter]
) -> None:
    """Every key the script creates shares one hash tag (one cluster slot), without the user."""
    # Smooth: sends 10.1 s apart (virtual); the last-send stamp lives that long (real).
    limiter = make(limits=_limits(total=3, per_schedule=1, mode="smooth"))
    ids = ["SC-1", "SC-2", "x{y}z"]
    permits = [await limiter.acquire(i) for i in ids]
    await limiter.release(permits[0], rate_limited=True)  # the id's log is full: id pause
    await limiter.release(permits[1])
    # Same user, room in the id's log: a 429 pauses the API user and adapts.
    same_user = make(limits=_limits(total=5))
    await same_user.release(await same_user.acquire("x{y}z"), rate_limited=True)
    limiter_b = make(username="someone-else", limits=_limits())
    await limiter_b.release(await limiter_b.acquire("SC-1"))
    keys = await prefixed_keys(client, prefix)
    expected = {
        *limiter.keys()[:5],  # log, pause, last send, adaptive state, acceptances
        *limiter.keys("SC-1")[-3:],  # log, pause, last send
        limiter.keys("SC-2")[-3],
        limiter.keys("SC-2")[-1],
        limiter.keys("x{y}z")[-3],
        limiter.keys("x{y}z")[-1],
    }
    # Theirs: log, last send (an adaptive policy may turn smooth), acceptances; the id's log.
    theirs = {*(limiter_b.keys()[i] for i in (0, 2, 4)), limiter_b.keys("SC-1")[-3]}
    assert set(keys) == expected | theirs
    tag = f"{{{prefix}:{limiter._user_hash}}}"
    assert len(tag) == len(prefix) + 16 + 3
    assert all(key.startswith(tag + ":") for key in expected)
    assert len({key_slot(key.encode()) for key in expected}) == 1
    assert not any(name in key for key in keys for name in ("someone-else", USERNAME))


async def test_keys_live_as_long_as_what_they_hold(
    client: aioredis.Redis, make: Callable[..., RedisLimiter]
) -> None:
    """On Redis's own clock, a key expires when what it holds stops mattering: a log with its
    last entry, a pause at its end, a last-send stamp one spacing on, acceptances after three
    holds; so an idle API user leaves nothing behind."""
    limits = _limits(total=10, per_schedule=1, window=10.0, guard=1.0)  # a hold: 11 s
    since = time.monotonic()
    in_flight = make(username="in-flight", limits=limits, in_flight_timeout=20.0)
    await in_flight.acquire("SC-1")  # never answered: acquire + in_flight + hold
    for key in (in_flight.keys()[0], in_flight.keys("SC-1")[-3]):
        await _assert_pttl(client, key, 31_000, since)
    answered = make(username="answered", limits=limits)
    await answered.release(await answered.acquire("SC-1"))  # response-anchored: a hold
    await answered.release(await answered.acquire("SC-2"), rate_limited=True)  # SC-2 full
    keys, one, two = answered.keys(), answered.keys("SC-1"), answered.keys("SC-2")
    for key in (keys[0], one[-3], two[-3], two[-2]):  # the logs, and SC-2's pause (a hold)
        await _assert_pttl(client, key, 11_000, since)
    await _assert_pttl(client, keys[4], 33_001, since)  # acceptances: three holds
    paused = make(username="paused", limits=_limits(window=10.0, guard=1.0, adaptive=False))
    await paused.release(await paused.acquire("SC-1"), rate_limited=True, retry_after=3600)
    await _assert_pttl(client, paused.keys()[1], 20_000, since)  # capped at two windows
    smooth = make(
        username="smooth", limits=_limits(total=4, per_schedule=2, window=10.0, mode="smooth")
    )
    await smooth.acquire("SC-1")
    await _assert_pttl(client, smooth.keys()[2], 2_525, since)  # window / N * (1 + slack)
    await _assert_pttl(client, smooth.keys("SC-1")[-1], 5_050, since)  # window / K * ...


# -- NOSCRIPT ---------------------------------------------------------------------


async def test_script_is_reloaded_after_script_flush(
    private_redis: tuple[subprocess.Popen[bytes], int], make: Callable[..., RedisLimiter]
) -> None:
    """After SCRIPT FLUSH the next call gets NOSCRIPT, loads the script again and succeeds.

    On a private Redis: a flush of the shared one would reach the tests running beside it.
    """
    _, port = private_redis
    client = aioredis.Redis(port=port)
    limiter = make(redis=client)
    await limiter.release(await limiter.acquire("SC-1"))
    shas = [script.sha for script in limiter._redis._scripts.values()]
    assert (await client.script_exists(*shas))[:2] == [True, True]  # acquire, release
    await client.script_flush()
    assert not any(await client.script_exists(*shas))
    await limiter.release(await limiter.acquire("SC-2"))
    assert (await client.script_exists(*shas))[:2] == [True, True]
    await limiter.aclose()
    await client.aclose()


# -- the local queue -----------------------------------------------------------


async def test_closing_while_a_round_is_out_to_redis_cancels_its_waiters(
    make: Callable[..., RedisLimiter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """aclose() while Redis has not answered a round: its waiters are cancelled, nothing hangs."""
    limiter = make()
    out = asyncio.Event()

    async def ask_forever(*_: object, **__: object) -> Any:
        out.set()
        await asyncio.Event().wait()  # Redis never answers

    monkeypatch.setattr(limiter._redis, "ask", ask_forever)
    waiter = asyncio.ensure_future(limiter.acquire("SC-1"))
    await out.wait()
    await limiter.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_an_unexpected_error_in_a_round_reaches_its_waiters(
    make: Callable[..., RedisLimiter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round that fails with anything but BackendError fails its waiters with that error."""
    limiter = make()
    real_ask = limiter._redis.ask

    async def broken(*_: object, **__: object) -> Any:
        raise ZeroDivisionError("a bug in a store")

    monkeypatch.setattr(limiter._redis, "ask", broken)
    with pytest.raises(ZeroDivisionError, match="a bug in a store"):
        await limiter.acquire("SC-1")
    monkeypatch.setattr(limiter._redis, "ask", real_ask)
    await limiter.release(await limiter.acquire("SC-2"))  # the driver goes on


async def test_give_back_failure_is_logged(
    private_redis: tuple[subprocess.Popen[bytes], int],
    make: Callable[..., RedisLimiter],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If Redis fails while an unused permit is given back, a WARNING says it will expire."""
    proc, port = private_redis
    limiter = make(redis=f"redis://127.0.0.1:{port}/0", timeout=0.3)
    caller = asyncio.ensure_future(limiter.acquire("SC-1"))
    settle = limiter._core.settle

    def settle_then_fail(*args: Any) -> None:
        settle(*args)
        caller.cancel()
        os.kill(proc.pid, signal.SIGSTOP)

    monkeypatch.setattr(limiter._core, "settle", settle_then_fail)
    with pytest.raises(asyncio.CancelledError):
        await caller
    await limiter.aclose()  # waits for the give-back
    assert "could not give back an unused permit" in caplog.text


async def test_cancelled_waiter_consumes_nothing(
    client: aioredis.Redis, make: Callable[..., RedisLimiter]
) -> None:
    """A caller cancelled while queued leaves; one cancelled mid-grant gives its entries back."""
    limiter = make(limits=_limits(total=1))
    queued = asyncio.ensure_future(limiter.acquire("SC-1"))
    await asyncio.sleep(0)
    queued.cancel()  # the dispatcher is asking Redis for it right now
    with pytest.raises(asyncio.CancelledError):
        await queued
    await asyncio.wait_for(limiter.acquire("SC-2"), 5)
    assert await client.zcard(limiter.keys()[0]) == 1
    with pytest.raises(QueueTimeoutError):
        await limiter.acquire("SC-3", queue_timeout=0)


@pytest.mark.looptime
async def test_cancelled_head_of_an_id_is_skipped(make: Callable[..., RedisLimiter]) -> None:
    """When an id's first waiter was cancelled, its next waiter goes once the id's log has room."""
    limiter = make(limits=_limits(per_schedule=1, window=0.1))
    holder = await limiter.acquire("SC-1")
    first = asyncio.ensure_future(limiter.acquire("SC-1"))
    second = asyncio.ensure_future(limiter.acquire("SC-1"))
    await asyncio.sleep(0.01)
    # Two waiters ahead on an id that admits one per window + guard.
    assert await limiter.estimate("SC-1") == pytest.approx(0.2)
    first.cancel()
    await limiter.release(holder)
    permit = await asyncio.wait_for(second, 5)
    assert first.cancelled()
    await limiter.release(permit)


@pytest.mark.looptime
async def test_many_waiters_on_one_id_leave_no_stale_bookkeeping(
    make: Callable[..., RedisLimiter],
) -> None:
    """Waiters piling onto one id re-rank it each time; the ready heap stays near the live ids."""
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace the
    # cold start and the refill).
    limiter = make(limits=_limits(total=100, per_schedule=1000, adaptive=False))
    calls = [asyncio.ensure_future(limiter.acquire("SC-1")) for _ in range(300)]
    await asyncio.sleep(1)  # virtual: the rounds (real I/O) are over before it is
    assert limiter.stats().in_flight == 100
    assert limiter.stats().queued == 200
    assert len(limiter._core.ready) <= 4 + 64 + 1
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)


async def test_many_deadlines_are_forgotten_once_granted(make: Callable[..., RedisLimiter]) -> None:
    """Waiters with a queue_timeout that were granted leave no bookkeeping behind."""
    limiter = make(limits=_limits(total=1000, per_schedule=1000))
    permits = await asyncio.gather(
        *(limiter.acquire(f"SC-{i}", queue_timeout=10) for i in range(150))
    )
    assert len(limiter._core.deadlines) < 64
    for permit in permits:
        await limiter.release(permit)
    assert limiter.stats().in_flight == 0


async def test_stats_work_outside_the_event_loop(make: Callable[..., RedisLimiter]) -> None:
    """stats() is synchronous and works from a thread without a running loop."""
    limiter = make()
    stats = await asyncio.to_thread(limiter.stats)
    assert (stats.queued, stats.total_limit, stats.next_free) == (0, 60, 0.0)


async def test_where_a_limiter_points_is_described_without_secrets(
    prefix: str, tmp_path: Path
) -> None:
    """Unix-socket URLs and clients, and clients of unknown shape, are named safely."""
    sock = tmp_path / "no.sock"
    by_url = RedisLimiter(f"unix://{sock}?password=pw", username="u", key_prefix=prefix)
    assert f"unix://{sock}" in repr(by_url)
    assert "password" not in repr(by_url)
    client = aioredis.Redis(unix_socket_path=str(sock), password="sekrit")
    by_client = RedisLimiter(client, username="u", key_prefix=prefix)
    assert f"unix://{sock}" in repr(by_client)

    class Odd:
        def register_script(self, script: str) -> object:  # noqa: ARG002 - redis-py's signature
            return object()

    odd = RedisLimiter(Odd(), username="u", key_prefix=prefix)  # type: ignore[arg-type]
    assert "redis='Odd'" in repr(odd)
    for limiter in (by_url, by_client, odd):
        await limiter.aclose()
    await client.aclose()


@pytest.mark.looptime
async def test_queue_timeout_shorter_than_a_known_wait_fails_at_once(
    make: Callable[..., RedisLimiter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pause or a full id this process knows of fails a short queue_timeout now, not later."""
    limiter = make(limits=_limits(total=5, per_schedule=5, window=2.0, adaptive=False))
    paused = await limiter.acquire("SC-P")
    # A 429 with room in SC-P's log: the API user's level was hit, and is paused.
    await limiter.release(paused, rate_limited=True, retry_after=1.5)
    asked: list[str] = []
    real_ask = limiter._redis.ask

    async def ask(schedule_ids: Sequence[str | None], *args: Any, **kwargs: Any) -> Any:
        asked.append(",".join(map(str, schedule_ids)))
        return await real_ask(schedule_ids, *args, **kwargs)

    monkeypatch.setattr(limiter._redis, "ask", ask)
    with pytest.raises(QueueTimeoutError) as caught:
        await limiter.acquire("SC-Q", queue_timeout=0.1)
    assert asked == []  # at once: no round trip, no waiting for the pause to end
    assert caught.value.expected_wait == pytest.approx(1.5)

    other = make(limits=_limits(total=5, per_schedule=1, window=2.0, adaptive=False))
    await other.release(await other.acquire("SC-X"))  # SC-X's log is full for 2 s
    first = asyncio.ensure_future(other.acquire("SC-X"))  # learns that, and waits
    await asyncio.sleep(0.05)
    with pytest.raises(QueueTimeoutError) as caught:
        await other.acquire("SC-X", queue_timeout=0.1)
    # At least the hold SC-X's log is under (1.95 s), and a whole hold for the waiter before it.
    assert caught.value.expected_wait == pytest.approx(2.0)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)


async def test_release_refuses_an_in_process_permit_without_a_fallback(
    make: Callable[..., RedisLimiter],
) -> None:
    """A RateLimiter's permit is not one of a RedisLimiter that has no fallback: ValueError."""
    limiter = make()
    in_process = RateLimiter()
    permit = await in_process.acquire("SC-1")
    with pytest.raises(ValueError, match="not issued by this limiter"):
        await limiter.release(permit)
    await in_process.aclose()


@pytest.mark.looptime
async def test_aclose_cancels_waiters_and_keeps_a_given_client(
    client: aioredis.Redis, make: Callable[..., RedisLimiter]
) -> None:
    """aclose cancels queued waiters, refuses new acquires and leaves the caller's client open."""
    limiter = make(limits=_limits(total=1))
    permit = await limiter.acquire("SC-1")
    waiting = asyncio.ensure_future(limiter.acquire("SC-2"))
    await asyncio.sleep(0.01)
    await limiter.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    with pytest.raises(RuntimeError, match="closed"):
        await limiter.acquire("SC-3")
    await limiter.release(permit)  # after close: accepted, nothing to do
    await limiter.aclose()
    assert await client.ping()


async def test_limiter_from_url_owns_and_closes_its_client(prefix: str) -> None:
    """A limiter built from a URL works and closes the client it made."""
    limiter = RedisLimiter("redis://127.0.0.1:6379/0", username="u", key_prefix=prefix)
    await limiter.release(await limiter.acquire("SC-1"))
    await limiter.aclose()
    assert limiter._redis._client.connection_pool._in_use_connections == set()  # type: ignore[union-attr]


async def test_limiter_from_url_warns_nothing(prefix: str) -> None:
    """The client it makes gets redis.asyncio's Retry: redis-py 8.2 warns on the sync one."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        limiter = RedisLimiter("redis://127.0.0.1:6379/0", username="u", key_prefix=prefix)
        await limiter.release(await limiter.acquire("SC-1"))
        await limiter.aclose()
    retry = limiter._redis._client.connection_pool.connection_kwargs["retry"]  # type: ignore[union-attr]
    assert isinstance(retry, AsyncRetry)


# -- failures -------------------------------------------------------------------


async def test_unreachable_redis_fails_closed_without_the_password(
    make: Callable[..., RedisLimiter],
) -> None:
    """With Redis down, acquire and estimate raise BackendError naming the host, no password."""
    port = _free_port()
    limiter = make(redis=f"redis://admin:hunter2@127.0.0.1:{port}/0", timeout=1.0)
    with pytest.raises(BackendError) as caught:
        await asyncio.wait_for(limiter.acquire("SC-1"), 5)
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "hunter2" not in message
    assert "admin" not in message
    with pytest.raises(BackendError):
        await limiter.estimate()


async def test_redis_killed_mid_run_fails_every_waiter(
    private_redis: tuple[subprocess.Popen[bytes], int], make: Callable[..., RedisLimiter]
) -> None:
    """Killing Redis while requests queue fails them all with BackendError; no task hangs."""
    proc, port = private_redis
    limiter = make(
        redis=f"redis://127.0.0.1:{port}/0",
        limits=_limits(total=2, window=0.2),
        timeout=1.0,
    )
    outcomes: list[str] = []
    two_sent = asyncio.Event()

    async def one(i: int) -> None:
        try:
            permit = await limiter.acquire(f"SC-{i}")
        except BackendError:
            outcomes.append("backend")
            return
        outcomes.append("sent")
        if outcomes.count("sent") == 2:
            two_sent.set()
        await limiter.release(permit)

    tasks = [asyncio.ensure_future(one(i)) for i in range(20)]
    await asyncio.wait_for(two_sent.wait(), 5)
    proc.kill()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert outcomes.count("backend") == 20 - outcomes.count("sent") >= 16
    assert limiter.stats().queued == 0


async def test_stalled_redis_times_out_as_backend_error(
    private_redis: tuple[subprocess.Popen[bytes], int],
    make: Callable[..., RedisLimiter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Redis that stops answering (SIGSTOP) costs at most the timeout, then BackendError."""
    proc, port = private_redis
    limiter = make(redis=f"redis://127.0.0.1:{port}/0", timeout=0.3)
    permit = await limiter.acquire("SC-1")
    os.kill(proc.pid, signal.SIGSTOP)
    with pytest.raises(BackendError, match=r"no answer within 0\.3s|Timeout"):
        await asyncio.wait_for(limiter.acquire("SC-2"), 3)
    await asyncio.wait_for(limiter.release(permit), 3)  # logged, not raised
    assert "could not release" in caplog.text
    os.kill(proc.pid, signal.SIGCONT)


async def test_a_round_redis_runs_after_its_caller_gave_up_grants_nothing(
    private_redis: tuple[subprocess.Popen[bytes], int], make: Callable[..., RedisLimiter]
) -> None:
    """Redis stalls (SIGSTOP) longer than ``timeout``: its callers get BackendError, and the
    acquire round they gave up on, run when Redis wakes, takes no place (issue 20, item 2).

    Before, the round ran and left a window's worth of in-flight entries that nobody would
    release: they counted for ``in_flight_timeout + window + guard`` (61 s here, W = 1 s),
    and every process sharing the API user waited that long.
    """
    proc, port = private_redis
    limits = _limits(total=10, per_schedule=10, window=1.0, guard=0.05)
    limiter = make(redis=f"redis://127.0.0.1:{port}/0", limits=limits, timeout=0.5)
    await limiter.release(await limiter.acquire("SC-warm"))  # connected, script loaded
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        calls = [limiter.acquire(f"SC-{i}") for i in range(10)]
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert [type(outcome) for outcome in outcomes] == [BackendError] * 10
    observer = aioredis.Redis(port=port)
    try:
        # Accepted after the stall, so the stalled connections' commands have run before this.
        await observer.ping()
        entries = await _entries(observer, limiter.keys()[0])
    finally:
        await observer.aclose()
    assert [m for m, _ in entries if m.startswith("i")] == []  # no ghost in flight
    # The whole budget but the one request really sent is free at once.
    permits = [await limiter.acquire(f"SC-{i}", queue_timeout=0) for i in range(limits.total - 1)]
    for permit in permits:
        await limiter.release(permit)


async def test_a_round_whose_answer_was_lost_is_taken_back(
    client: aioredis.Redis, make: Callable[..., RedisLimiter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis ran an acquire round in time, but its answer never came (the caller gave up):
    the store takes back what the round granted once Redis answers again (issue 20, item 2).
    """
    limiter = make(limits=_limits(total=5), timeout=2.0)
    await limiter.release(await limiter.acquire("SC-0"))  # the clock learnt
    store = limiter._redis
    script = store._scripts["acquire"]
    granted: list[int] = []

    async def answer_lost(keys: list[str], args: list[str | int]) -> object:
        await script(keys=keys, args=args)
        granted.append(await client.zcard(keys[0]))
        raise TimeoutError  # the answer is lost on its way back

    monkeypatch.setitem(store._scripts, "acquire", answer_lost)
    with pytest.raises(BackendError, match="no answer within"):
        await limiter.acquire("SC-1")
    await limiter.aclose()  # waits for its work in the background
    assert granted == [2]  # SC-0's released entry, and the round's lost one
    for key in (limiter.keys()[0], limiter.keys("SC-1")[-3]):
        assert [m for m, _ in await _entries(client, key) if m.startswith("i")] == []


@pytest.mark.looptime
async def test_a_release_redis_failed_is_sent_again(
    client: aioredis.Redis,
    make: Callable[..., RedisLimiter],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A release that did not reach Redis (it failed, or stalled while a connection was made)
    is sent again after ``timeout``: its places are not held as in flight for a minute
    (``in_flight_timeout + window + guard``) after their responses came (issue 20, item 2).
    """
    limits = _limits(total=2, window=1.0, guard=0.05)
    limiter = make(limits=limits, timeout=0.5)
    permits = [await limiter.acquire(f"SC-{i}") for i in range(2)]
    store = limiter._redis
    script = store._scripts["release"]
    failed: list[str] = []

    async def first_release_fails(keys: list[str], args: list[str | int]) -> object:
        if not failed:
            failed.append("release")
            raise RedisError("Connection reset by peer")
        return await script(keys=keys, args=args)

    monkeypatch.setitem(store._scripts, "release", first_release_fails)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.gather(*(limiter.release(permit) for permit in permits))
    assert "could not release 2 permit(s)" in caplog.text
    await limiter.release(await limiter.acquire("SC-2"))
    # Sent again after the timeout, the releases let the next request go one hold later.
    assert loop.time() - start == pytest.approx(0.5 + 1.05)
    assert failed == ["release"]
    for member, _ in await _entries(client, limiter.keys()[0]):
        assert member.startswith("r:")


@pytest.mark.looptime
async def test_a_release_is_sent_again_only_while_its_entries_count(
    make: Callable[..., RedisLimiter],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While Redis keeps failing, a release is sent again every ``timeout`` with one WARNING
    in all, until its entries' provisional expiry has passed; then it is dropped.
    """
    limiter = make(limits=_limits(window=1.0, guard=0.05), timeout=0.5, in_flight_timeout=2.0)
    permit = await limiter.acquire("SC-1")
    store = limiter._redis
    sent: list[float] = []
    loop = asyncio.get_running_loop()

    async def outage(keys: list[str], args: list[str | int]) -> object:
        sent.append(loop.time())
        raise RedisError("Connection refused")

    monkeypatch.setattr(store, "_scripts", dict.fromkeys(store._scripts, outage))
    start = loop.time()
    await limiter.release(permit)
    await asyncio.sleep(10)
    # Every 0.5 s while in_flight_timeout + window + guard (3.05 s) had not passed.
    assert [round(at - start, 6) for at in sent] == [0.5 * k for k in range(7)]
    assert store.resend is None
    assert caplog.text.count("could not release") == 1


async def test_an_expired_round_is_asked_again_once_then_fails(
    client: aioredis.Redis, make: Callable[..., RedisLimiter], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A round whose deadline passed before Redis ran it grants nothing and says so.

    The store asks once more on Redis's clock as that answer told it (Redis's clock
    stepped forward, say); a second expired round is a BackendError, and neither left
    an entry.
    """
    limiter = make(limits=_limits(total=5), timeout=2.0)
    store = limiter._redis
    learn = store._learn_time
    learnt: list[int] = []
    ahead = [60 * US]  # Redis's clock, as the next answer shows it: a minute ahead

    def learn_behind(redis_time: int) -> None:
        learn(redis_time - (ahead.pop(0) if ahead else 0))
        learnt.append(redis_time)

    monkeypatch.setattr(store, "_learn_time", learn_behind)
    permit = await limiter.acquire("SC-1")  # a peek to learn the clock, expired, then granted
    assert len(learnt) == 3
    await limiter.release(permit)

    # From now on every answer seems a minute behind Redis's clock: every round expires.
    monkeypatch.setattr(store, "_learn_time", lambda redis_time: learn(redis_time - 60 * US))
    store._learn_time(learnt[-1])
    with pytest.raises(BackendError, match=r"more than 1s after it was sent, twice"):
        await limiter.acquire("SC-2")
    assert [m for m, _ in await _entries(client, limiter.keys()[0]) if m.startswith("i")] == []


@pytest.mark.looptime
async def test_fallback_is_used_with_one_warning_then_redis_again(
    make: Callable[..., RedisLimiter], caplog: pytest.LogCaptureFixture
) -> None:
    """With a fallback, a Redis failure logs one WARNING and admits through the fallback."""
    port = _free_port()
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace the
    # cold start and the refill).
    fallback = RateLimiter(RateLimits(total=3, adaptive=False))
    redis = make(redis=f"redis://127.0.0.1:{port}/0", timeout=1.0)
    limiter = FailoverLimiter(redis, fallback, retry=0.2)
    permits = [await asyncio.wait_for(limiter.acquire(f"SC-{i}"), 5) for i in range(3)]
    assert fallback.stats().in_flight == 3
    assert await limiter.estimate() == pytest.approx(61)
    for permit in permits:
        await limiter.release(permit)
    assert fallback.stats().in_flight == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "fallback" in warnings[0].getMessage()
    with pytest.raises(QueueTimeoutError):
        await limiter.acquire("SC-1", queue_timeout=0)  # the fallback's own verdict
    await asyncio.sleep(0.25)  # virtual; past fallback_retry: Redis is tried (and fails) again
    with pytest.raises(QueueTimeoutError):
        await asyncio.wait_for(limiter.acquire("SC-9", queue_timeout=0.5), 5)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


@pytest.mark.looptime
@pytest.mark.parametrize("first", ["redis", "fallback"])
async def test_switching_to_and_from_the_fallback_keeps_this_process_within_the_limit(
    make: Callable[..., RedisLimiter], monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """Sends through Redis count in the fallback, and the fallback's own still count after it."""
    limits = _limits(total=3, per_schedule=3, window=2.0, adaptive=False)
    fallback = RateLimiter(limits)
    redis = make(limits=limits, timeout=1.0)
    limiter = FailoverLimiter(redis, fallback, retry=0.3)
    scripts = redis._redis._scripts

    async def outage(*_: object, **__: object) -> object:
        raise RedisError("simulated outage")

    loop = asyncio.get_running_loop()
    sent: list[float] = []

    async def burst() -> None:
        async def one(i: int) -> None:
            permit = await limiter.acquire(f"SC-{len(sent)}-{i}")
            sent.append(loop.time())
            await limiter.release(permit)

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(3))), 10)

    if first == "fallback":
        monkeypatch.setattr(redis._redis, "_scripts", dict.fromkeys(scripts, outage))
    await burst()  # the whole budget, through Redis or through the fallback
    assert fallback.stats().total_used == 3  # the fallback knows either way
    if first == "redis":
        monkeypatch.setattr(redis._redis, "_scripts", dict.fromkeys(scripts, outage))
    else:
        await asyncio.sleep(0.35)  # past the retry: Redis again
        monkeypatch.setattr(redis._redis, "_scripts", scripts)
    await burst()  # through the other one: must wait for the window
    assert sum(1 for t in sent if t < sent[0] + limits.window) == limits.total
    assert fallback.stats().in_flight == 0


@pytest.mark.looptime
async def test_a_redis_permit_the_fallback_refuses_is_given_back(
    client: aioredis.Redis, make: Callable[..., RedisLimiter]
) -> None:
    """When the fallback (still full from an outage) refuses in time, Redis gets its place back."""
    limits = _limits(total=3, per_schedule=3, window=30.0, adaptive=False)
    fallback = RateLimiter(limits)
    held = [await fallback.acquire(f"SC-{i}") for i in range(3)]  # as during an outage
    redis = make(limits=limits)
    limiter = FailoverLimiter(redis, fallback)
    with pytest.raises(QueueTimeoutError):
        await limiter.acquire("SC-9", queue_timeout=0.2)
    await asyncio.sleep(0.01)  # virtual: the give-back (real I/O, in the background) is over
    assert await client.zcard(redis.keys()[0]) == 0
    assert limiter.stats().in_flight == 0
    for permit in held:
        await fallback.release(permit)


@pytest.mark.looptime
async def test_the_0_1_fallback_argument_still_works_with_a_deprecation_warning(
    client: aioredis.Redis, prefix: str
) -> None:
    """`RedisLimiter(fallback=...)` makes the FailoverLimiter, warns, keeps the fallback open."""
    fallback = RateLimiter(RateLimits(total=3))
    with pytest.warns(DeprecationWarning, match=r"FailoverLimiter\(RedisLimiter"):
        limiter = RedisLimiter(
            f"redis://127.0.0.1:{_free_port()}/0",
            username=USERNAME,
            key_prefix=prefix,
            fallback=fallback,
            fallback_retry=0.2,
            timeout=1.0,
            clock=virtual_clock(),
        )
    assert isinstance(limiter, FailoverLimiter)
    assert limiter.keys()[0].startswith(f"{{{prefix}:")  # the RedisLimiter's own methods too
    await limiter.release(await asyncio.wait_for(limiter.acquire("SC-1"), 5))  # the fallback's
    assert fallback.stats().total_used == 1
    await limiter.aclose()
    await fallback.release(await fallback.acquire("SC-2"))  # the caller's fallback stays open


# -- several processes, one API user, against the mock server -----------------------


def _worker_main() -> None:
    """Run one worker process: cancel the ids of the JSON job in argv[1] through Redis."""
    job = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(_worker(job))))  # noqa: T201 - the parent reads this line


async def _worker(job: dict[str, Any]) -> dict[str, Any]:
    limiter = RedisLimiter(
        job["redis"],
        username=job["client"]["username"],
        key_prefix=job["prefix"],
        limits=RateLimits(**job["limits"]),
        timeout=job.get("timeout", 5.0),
    )
    client_kwargs = dict(job["client"])
    failed = 0  # BackendErrors retried (with "retry": a job re-run at once after one)

    async def cancel(client: ScheduleClient, schedule_id: str) -> ScheduleResult:
        nonlocal failed
        while True:
            try:
                return await client.cancel(schedule_id)
            except BackendError:
                if not job.get("retry"):
                    raise
                failed += 1

    try:
        async with ScheduleClient(
            client_kwargs.pop("api_key"), **client_kwargs, limiter=limiter
        ) as client:
            # Start together: one process's start-up must not hand it the budget alone.
            print("ready", flush=True)  # noqa: T201 - the parent waits for this line
            await asyncio.to_thread(sys.stdin.readline)
            results = await asyncio.gather(
                *(cancel(client, i) for i in job["ids"]), return_exceptions=True
            )
    finally:
        await limiter.aclose()
    return {
        "done": sum(1 for r in results if isinstance(r, ScheduleResult) and r.is_cancelled),
        "errors": [repr(r) for r in results if not isinstance(r, ScheduleResult)],
        "backend_errors": failed,
    }


async def _run_workers(
    server: MockScheduleServer,
    prefix: str,
    limits: dict[str, float],
    jobs: list[list[str]],
    *,
    meanwhile: Callable[[], Awaitable[None]] | None = None,
    **options: object,
) -> list[dict[str, Any]]:
    """Run one worker process per job, started together; ``meanwhile`` runs as they work.

    ``options`` go into every job: ``redis`` (the URL), ``timeout``, ``retry``.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    code = "import test_redis; test_redis._worker_main()"
    procs = []
    for ids in jobs:
        job = {
            "redis": "redis://127.0.0.1:6379/0",
            "prefix": prefix,
            "limits": limits,
            "client": server.client_kwargs(),
            "ids": ids,
            **options,
        }
        procs.append(
            await asyncio.create_subprocess_exec(
                *(sys.executable, "-c", code, json.dumps(job)),
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        )
    for proc in procs:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 60) == b"ready\n"
    # All at once: one at a time, each would wait for the one before to finish.
    working = asyncio.gather(*(proc.communicate(b"go\n") for proc in procs))
    if meanwhile is not None:
        await meanwhile()
    outputs = await asyncio.wait_for(working, 60)
    assert [proc.returncode for proc in procs] == [0] * len(procs)
    return [json.loads(out) for out, _ in outputs]


async def test_four_processes_share_one_budget(prefix: str) -> None:
    """Four processes, 60 ids each, one API user: no 429, never more than N per window.

    Alone, each process would send its 60 at once; sharing, they send N per
    window between them, and the first window is used in full. How early the
    last one goes (the lower bound) is judged on the virtual clock in
    test_limiter.py, and measured by the benchmarks: on the wall clock it
    depends on how fast the machine is.
    """
    total, window = 60, 1.0
    limits = {"total": total, "per_schedule": 10, "window": window, "guard": 0.02}
    ids = [f"SC-{i:04d}" for i in range(4 * total)]
    server_limits = ServerLimits(total=total, per_schedule=10, window=window)
    async with MockScheduleServer(limits=server_limits, unknown_ids="active") as server:
        reports = await _run_workers(server, prefix, limits, [ids[k::4] for k in range(4)])
        recorder = server.recorder
    assert sum(r["done"] for r in reports) == len(ids)
    assert [r["errors"] for r in reports] == [[]] * 4
    assert recorder.count_rate_limited() == 0
    assert recorder.max_arrivals_in_window(window) == total


async def test_two_processes_hammering_one_id_keep_its_limit(prefix: str) -> None:
    """Two processes sending 15 cancels each for one scheduleId never exceed K per window."""
    per_schedule, window = 10, 1.0
    limits = {"total": 60, "per_schedule": per_schedule, "window": window, "guard": 0.01}
    server_limits = ServerLimits(total=60, per_schedule=per_schedule, window=window)
    async with MockScheduleServer(limits=server_limits, unknown_ids="active") as server:
        reports = await _run_workers(server, prefix, limits, [["SC-ONE"] * 15] * 2)
    assert sum(r["done"] for r in reports) == 30
    assert server.recorder.count_rate_limited() == 0
    assert server.recorder.max_arrivals_in_window(window, schedule_id="SC-ONE") == per_schedule


async def test_two_processes_through_a_redis_stall_keep_the_limit_and_lose_no_time(
    private_redis: tuple[subprocess.Popen[bytes], int], prefix: str
) -> None:
    """Redis stalls (SIGSTOP) for longer than ``timeout`` while two processes share one budget:
    their calls fail with BackendError and are asked again, nothing gets a 429, and the job
    goes on at the limits' pace (issue 20, item 2).

    Before, the rounds that timed out ran when Redis woke and took the free places for nobody
    for ``in_flight_timeout + window + guard``: about a minute with nothing sent here.
    """
    proc, port = private_redis
    total, window = 10, 1.0
    limits = {"total": total, "per_schedule": total, "window": window, "guard": 0.05}
    ids = [f"SC-{i:03d}" for i in range(6 * total)]
    server_limits = ServerLimits(total=total, per_schedule=total, window=window)

    async def stall() -> None:
        while len(server.recorder) < total:  # noqa: ASYNC110 - the first window is out
            await asyncio.sleep(0.01)
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(window + 3 * 0.5)  # the next round, and then two timeouts
        finally:
            os.kill(proc.pid, signal.SIGCONT)

    async with MockScheduleServer(limits=server_limits, unknown_ids="active") as server:
        reports = await asyncio.wait_for(
            _run_workers(
                server,
                prefix,
                limits,
                [ids[::2], ids[1::2]],
                meanwhile=stall,
                redis=f"redis://127.0.0.1:{port}/0",
                timeout=0.5,
                retry=True,
            ),
            30,  # 60 ids at 10 per second and the stall: about 9 s
        )
    assert sum(r["done"] for r in reports) == len(ids)
    assert all(r["backend_errors"] > 0 for r in reports), reports  # the stall hit both
    assert server.recorder.count_rate_limited() == 0
    assert server.recorder.max_arrivals_in_window(window) <= total


@pytest.mark.looptime
async def test_keys_lost_mid_job_cost_a_sixth_of_a_window_of_429s_then_a_halved_limit(
    client: aioredis.Redis,
    prefix: str,
    make: Callable[..., RedisLimiter],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Redis that restarts empty, is flushed or swapped forgets the window: another process
    then finds an empty log, but starts cold (the adaptive policy's rule 4: no acceptance
    remembered), so it sends at most ceil(N / 6) before its first 429 comes back (the server
    sees N + ceil(N / 6) in one window, the extra ones get 429, absorbed; without the cap it
    was up to a whole window more, 2 N). Every process pauses, and the adaptive rule halves
    the shared limit, which grows back after ten quiet windows.
    """
    total, window, guard = 10, 10.0, 0.5
    limits = RateLimits(total=total, per_schedule=total, window=window, guard=guard)
    first, second = make(limits=limits), make(limits=limits)  # two processes, one budget
    server_limits = ServerLimits(total=total, per_schedule=total, window=window)
    async with (
        MockScheduleServer(limits=server_limits, unknown_ids="active") as server,
        server.client(limiter=first) as one,
        server.client(limiter=second) as other,
    ):
        ids = [f"SC-{i:03d}" for i in range(8 * total)]
        job = asyncio.gather(*(one.cancel(i) for i in ids[::2]))
        await asyncio.sleep(1)  # the first window is spent
        await client.delete(*await prefixed_keys(client, prefix))  # FLUSHDB, an empty restart
        results = [*await asyncio.gather(*(other.cancel(i) for i in ids[1::2])), *await job]
    assert all(r.is_cancelled for r in results)
    recorder = server.recorder
    capped = in_flight_cap(total)  # 2 of 10: the cold start's cap, once
    assert recorder.count_rate_limited() == capped
    assert recorder.max_arrivals_in_window(window) == total + capped
    assert recorder.max_arrivals_in_window(window + guard, accepted_only=True) == total
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"the shared limit is now {total // 2} per" in warnings[0]
    # Bursts of accepted sends: the window before the loss, then half the limit for ten quiet
    # windows, then one more per window. Refilling, rule 4 lets ceil(limit / 6) = 1 be in
    # flight: a process's own release (answers are instant here) lifts it at once, the other
    # process's is seen by its poll (window / 100 = 0.1 s), so a burst may span a few polls;
    # bursts are told apart by gaps of over a second (they come a hold, 10.5 s, apart).
    accepted = sorted(a.time for a in recorder if a.status == 200)
    bursts = [1]
    for before, after in itertools.pairwise(accepted):
        if after - before > 1.0:
            bursts.append(1)
        else:
            bursts[-1] += 1
    assert bursts[: QUIET_WINDOWS + 2] == [
        total,
        *[total // 2] * QUIET_WINDOWS,
        total // 2 + 1,
    ]


@pytest.mark.looptime
async def test_a_start_touches_no_per_id_key(
    client: aioredis.Redis, prefix: str, make: Callable[..., RedisLimiter]
) -> None:
    """A request with no scheduleId lives in the API user's keys only, granted, released or undone.

    A 429 on it pauses the API user's level; a full per-id log never stops it.
    """
    limiter = make(limits=_limits(total=5, per_schedule=1, adaptive=False))
    first = await limiter.acquire(None)
    token = cast("Any", first.handle).handle.token
    log = limiter.keys()[0]  # the API user's log
    assert [member for member, _ in await _entries(client, log)] == [
        f"i{cast('Any', first.handle).handle.acquired_us}:{token}"
    ]
    await limiter.release(first)
    mixed = [await limiter.acquire("SC-1"), await limiter.acquire(None)]
    for permit in mixed:
        await limiter.release(permit, rate_limited=permit.schedule_id is None, retry_after=5)
    if limiter._redis.releaser is not None:
        await limiter._redis.releaser
    keys = set(await prefixed_keys(client, prefix))
    assert keys <= set(limiter.keys("SC-1"))
    assert not any(key.endswith(":None") for key in keys)
    assert f"{limiter.keys()[1]}" in keys  # the API user's pause, from the start's 429
    start = asyncio.get_running_loop().time()
    await limiter.release(await limiter.acquire(None, requeue=True))
    assert asyncio.get_running_loop().time() - start == pytest.approx(5)
    # Undo: a start granted and then withdrawn leaves nothing behind.
    store = limiter._redis
    rnd, base = await store.ask([None], limiter._now())
    assert rnd.results == (None,)
    undo = scripts.Undo(store._now_arg(), f"{base}.1", rnd.now_us)
    removed = await store.eval(scripts.call(undo, store.user_keys, []))
    assert removed == 1


@pytest.mark.looptime
async def test_the_fallback_hears_what_redis_hears(make: Callable[..., RedisLimiter]) -> None:
    """release_heard reaches the fallback's shadow permit too, and a permit the fallback made."""
    limits = _limits(total=60, per_schedule=10, window=30.0, adaptive=False)
    fallback = RateLimiter(limits)
    limiter = FailoverLimiter(make(limits=limits), fallback)
    said = RateLimitHeaders(quotas=(StatedQuota(limit=40),))
    await limiter.release_heard(await limiter.acquire("SC-1"), said)
    assert fallback.stats().total_limit == 40  # the shadow's release carried the headers
    down = make(redis=f"redis://127.0.0.1:{_free_port()}/0", limits=limits, timeout=1.0)
    on_fallback = FailoverLimiter(down, fallback)
    admitted = await asyncio.wait_for(on_fallback.acquire("SC-2"), 5)  # Redis down
    lower = RateLimitHeaders(quotas=(StatedQuota(limit=30),))
    assert await on_fallback.release_heard(admitted, lower) is None
    assert fallback.stats().total_limit == 30


@pytest.mark.looptime
async def test_a_fallback_without_release_heard_gets_release(
    make: Callable[..., RedisLimiter],
) -> None:
    """A fallback written without release_heard is released the old way, Retry-After and all."""
    limits = _limits(total=60, per_schedule=10, window=30.0, adaptive=False)
    inner = RateLimiter(limits)
    calls: list[tuple[bool, float | None]] = []

    class Old:
        limits = inner.limits
        acquire = inner.acquire
        estimate = inner.estimate
        stats = inner.stats
        aclose = inner.aclose

        async def release(
            self, permit: Permit, *, rate_limited: bool = False, retry_after: float | None = None
        ) -> None:
            calls.append((rate_limited, retry_after))
            await inner.release(permit, rate_limited=rate_limited, retry_after=retry_after)

    limiter = FailoverLimiter(make(limits=limits), Old())
    said = RateLimitHeaders(retry_after=3.0)
    await limiter.release_heard(await limiter.acquire("SC-1"), said, rate_limited=True)
    assert calls == [(True, 3.0)]
