"""RedisLimiter against a live three-node Redis Cluster started on 127.0.0.1 for this module.

Every key of one API user carries one hash tag, so a cluster keeps them in one
slot and the script, which reads and writes keys it derives from that tag,
runs on the one node that owns them. These tests check that on a real cluster
(three masters, slots spread over them), not on the layout alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import subprocess
import time
from typing import TYPE_CHECKING

import pytest
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from schedcancel import QueueTimeoutError, RateLimits
from schedcancel.redis import RedisLimiter
from schedcancel.testing import MockScheduleServer, ServerLimits

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator
    from pathlib import Path

pytestmark = pytest.mark.redis

NODES = 3


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _cluster_ports(count: int) -> list[int]:
    """Ports whose cluster bus port (port + 10000) is free and valid too."""
    rng = random.Random()  # noqa: S311 - picking ports, not secrets
    ports: list[int] = []
    while len(ports) < count:
        port = rng.randrange(20000, 45000)
        if port not in ports and _port_is_free(port) and _port_is_free(port + 10000):
            ports.append(port)
    return ports


def _cluster_ok(cli: str, port: int) -> bool:
    info = subprocess.run(  # noqa: S603 - our own redis-cli, fixed arguments
        [cli, "-p", str(port), "cluster", "info"], capture_output=True, text=True, check=False
    )
    return "cluster_state:ok" in info.stdout


@pytest.fixture(name="cluster", scope="module")
def _cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[int]]:
    """Start three cluster-enabled redis-servers, join them, yield their ports, kill them."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        pytest.skip("redis-server or redis-cli is not installed")
    base: Path = tmp_path_factory.mktemp("cluster")
    ports = _cluster_ports(NODES)
    procs = []
    try:
        for port in ports:
            workdir = base / str(port)
            workdir.mkdir()
            argv = [
                *(server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)),
                *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                *("--save", "", "--appendonly", "no"),
            ]
            procs.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
            )
        deadline = time.monotonic() + 10
        while not all(not _port_is_free(port) for port in ports):
            assert time.monotonic() < deadline, "redis-server did not listen"
            assert all(proc.poll() is None for proc in procs), "redis-server exited"
            time.sleep(0.05)
        create = subprocess.run(  # noqa: S603
            [
                *(cli, "--cluster", "create"),
                *(f"127.0.0.1:{port}" for port in ports),
                *("--cluster-replicas", "0", "--cluster-yes"),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert create.returncode == 0, create.stdout + create.stderr
        while not all(_cluster_ok(cli, port) for port in ports):
            assert time.monotonic() < deadline + 20, "the cluster did not reach state ok"
            time.sleep(0.1)
        yield ports
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


@pytest.fixture(name="redis")
async def _redis(cluster: list[int]) -> AsyncIterator[RedisCluster]:
    client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port) for port in cluster])
    await client.initialize()
    yield client
    await client.aclose()


async def test_the_cluster_spreads_slots_over_three_masters(redis: RedisCluster) -> None:
    """The fixture is a real cluster: keys with different tags land on different nodes."""
    assert len(redis.get_primaries()) == NODES
    owners = {getattr(redis.get_node_from_key(f"{{tag-{i}}}:k"), "port", None) for i in range(64)}
    assert len(owners) == NODES


async def test_limits_hold_and_every_key_lives_on_one_node(redis: RedisCluster) -> None:
    """Both levels count on a cluster, and all keys of one API user share one slot."""
    # adaptive=False: the log's own bursts (the adaptive policy's in-flight cap would pace the
    # cold start and the refill).
    limits = RateLimits(total=3, per_schedule=2, window=30.0, guard=1.0, adaptive=False)
    limiter = RedisLimiter(redis, username="cluster-user", key_prefix="sc-cluster-a", limits=limits)
    try:
        first = [await limiter.acquire("SC-A"), await limiter.acquire("SC-A")]
        with pytest.raises(QueueTimeoutError):  # the id's own limit
            await limiter.acquire("SC-A", queue_timeout=1)
        third = await limiter.acquire("SC-B")
        with pytest.raises(QueueTimeoutError) as caught:  # the API user's limit
            await limiter.acquire("SC-C", queue_timeout=1)
        assert caught.value.expected_wait == pytest.approx(31.0, abs=0.5)
        await limiter.release(third, rate_limited=True)  # writes the pause keys too
        for permit in first:
            await limiter.release(permit)
        named = list(dict.fromkeys([*limiter.keys("SC-A"), *limiter.keys("SC-B")]))
        assert len({key_slot(key.encode()) for key in named}) == 1
        keys = [key for key in named if await redis.exists(key)]
        assert len(keys) >= 3  # the user's log and pause, the ids' logs
    finally:
        await limiter.aclose()
        await redis.delete(*limiter.keys("SC-A"))
        await redis.delete(*limiter.keys("SC-B"))


async def test_script_is_reloaded_after_a_flush_on_every_node(redis: RedisCluster) -> None:
    """SCRIPT FLUSH on all nodes: the next call reloads the script where its keys live."""
    limiter = RedisLimiter(redis, username="cluster-user", key_prefix="sc-cluster-b")
    try:
        await limiter.release(await limiter.acquire("SC-1"))
        owner = redis.get_node_from_key(limiter.keys()[0])
        sha = limiter._redis._scripts["acquire"].sha

        async def loaded() -> bool:
            found = await redis.execute_command("SCRIPT EXISTS", sha, target_nodes=owner)
            return bool(found[0])

        assert await loaded()
        await redis.execute_command("SCRIPT FLUSH", target_nodes=RedisCluster.ALL_NODES)
        assert not await loaded()
        await limiter.release(await limiter.acquire("SC-2"))
        assert await loaded()
        assert limiter.stats().in_flight == 0
    finally:
        await limiter.aclose()


async def test_two_clients_through_a_cluster_meet_no_429(cluster: list[int]) -> None:
    """Two clients, each with its own cluster connection, share one budget: 0 x 429."""
    total, window = 20, 0.5
    limits = RateLimits(total=total, per_schedule=10, window=window, guard=0.05)
    server_limits = ServerLimits(total=total, per_schedule=10, window=window)
    ids = [f"SC-{i:03d}" for i in range(60)]
    prefix = f"sc-cluster-{random.randrange(1 << 32):08x}"  # noqa: S311 - a unique name
    async with (
        MockScheduleServer(limits=server_limits, unknown_ids="active") as server,
        contextlib.AsyncExitStack() as stack,
    ):
        clients = []
        for _ in range(2):
            redis = RedisCluster(host="127.0.0.1", port=cluster[0])
            stack.push_async_callback(redis.aclose)
            limiter = RedisLimiter(redis, username="u", key_prefix=prefix, limits=limits)
            stack.push_async_callback(limiter.aclose)
            clients.append(await stack.enter_async_context(server.client(limiter=limiter)))
        results = await asyncio.gather(
            *(clients[i % 2].cancel(schedule_id) for i, schedule_id in enumerate(ids))
        )
    assert all(result.is_cancelled for result in results)
    assert server.recorder.count_rate_limited() == 0
    assert server.recorder.max_arrivals_in_window(window) <= total
