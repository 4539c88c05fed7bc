"""RedisLimiter through a Redis stall longer than its ``timeout``.

A private ``redis-server`` on a free loopback port (never the shared one: it is
stopped with ``SIGSTOP``), limits scaled to N = 10 per W = 1 s:

1. **One limiter**: 10 acquires queue while Redis is stopped; they fail with
   ``BackendError`` after ``timeout``; Redis continues. Figures: the
   in-flight entries left in the API user's log (ghosts: places held for
   nobody) and how long the next acquire then waits.
2. **Two processes** cancel M distinct ids (default 120) through one key space
   against the mock server (sliding log, N per W); once the first window is
   out, Redis stops for ``W + 3 * timeout``. A call that fails with
   ``BackendError`` is asked again at once (as a re-run would). Figures: ids
   cancelled, BackendErrors, 429s, the most arrivals in any W, the makespan
   and the makespan less the stall, next to ``floor((M-1)/N) * (W + guard)``.

Run from the repository root (needs ``redis-server`` on the PATH)::

    .venv/bin/python -m benchmarks.redis_stall [--ids 120] [--timeout 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
from schedcancel import BackendError, RateLimits, ScheduleClient, ScheduleResult
from schedcancel.redis import RedisLimiter
from schedcancel.testing import MockScheduleServer, ServerLimits

_ROOT = Path(__file__).resolve().parent.parent
TOTAL, WINDOW, GUARD = 10, 1.0, 0.05
LIMITS = RateLimits(total=TOTAL, per_schedule=TOTAL, window=WINDOW, guard=GUARD)


@contextlib.asynccontextmanager
async def private_redis() -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """A redis-server of our own on a free loopback port, and its URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = await asyncio.create_subprocess_exec(
        "redis-server", *argv, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        client = aioredis.Redis(port=port)
        for _ in range(100):  # up to 5 s for it to answer
            with contextlib.suppress(OSError, aioredis.ConnectionError):
                await client.ping()
                break
            await asyncio.sleep(0.05)
        await client.aclose()
        yield proc, f"redis://127.0.0.1:{port}/0"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        await proc.wait()


async def one_limiter(redis_timeout: float) -> dict[str, Any]:
    """Part 1: the ghost entries a stall leaves, and the next acquire's wait."""
    async with private_redis() as (proc, url):
        limiter = RedisLimiter(url, username="bench", limits=LIMITS, timeout=redis_timeout)
        try:
            await limiter.release(await limiter.acquire("SC-warm"))
            await asyncio.sleep(WINDOW + GUARD)  # the warm-up's entry stops counting
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                calls = [limiter.acquire(f"SC-{i}") for i in range(TOTAL)]
                outcomes = await asyncio.gather(*calls, return_exceptions=True)
            finally:
                os.kill(proc.pid, signal.SIGCONT)
            observer = aioredis.Redis.from_url(url)
            await observer.ping()  # the stalled rounds have run before this
            members = cast("list[bytes]", await observer.zrange(limiter.keys()[0], 0, -1))
            await observer.aclose()
            start = time.monotonic()
            await limiter.acquire("SC-next")
            waited = time.monotonic() - start
        finally:
            await limiter.aclose()
    return {
        "backend_errors": sum(1 for o in outcomes if isinstance(o, BackendError)),
        "ghost_entries": sum(1 for m in members if m.startswith(b"i")),
        "next_acquire_wait_s": round(waited, 3),
    }


async def _worker(job: dict[str, Any]) -> dict[str, Any]:
    limiter = RedisLimiter(
        job["redis"],
        username=job["client"]["username"],
        key_prefix="stall",
        limits=LIMITS,
        timeout=job["timeout"],
    )
    kwargs = dict(job["client"])
    failed = 0

    async def cancel(client: ScheduleClient, schedule_id: str) -> ScheduleResult:
        nonlocal failed
        while True:
            try:
                return await client.cancel(schedule_id)
            except BackendError:
                failed += 1

    try:
        async with ScheduleClient(kwargs.pop("api_key"), **kwargs, limiter=limiter) as client:
            print("ready", flush=True)  # the parent starts everyone together
            await asyncio.to_thread(sys.stdin.readline)
            results = await asyncio.gather(*(cancel(client, i) for i in job["ids"]))
    finally:
        await limiter.aclose()
    return {"done": sum(r.is_cancelled for r in results), "backend_errors": failed}


async def two_processes(ids: int, redis_timeout: float) -> dict[str, Any]:
    """Part 2: two worker processes sharing one budget through a stall."""
    names = [f"SC-{i:04d}" for i in range(ids)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    server_limits = ServerLimits(total=TOTAL, per_schedule=TOTAL, window=WINDOW)
    async with (
        private_redis() as (proc, url),
        MockScheduleServer(limits=server_limits, unknown_ids="active") as server,
    ):
        procs = []
        for k in range(2):
            job = {
                "redis": url,
                "timeout": redis_timeout,
                "client": server.client_kwargs(),
                "ids": names[k::2],
            }
            procs.append(
                await asyncio.create_subprocess_exec(
                    *(sys.executable, "-m", "benchmarks.redis_stall", "--worker", json.dumps(job)),
                    env=env,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        for worker in procs:
            assert worker.stdout is not None
            if await asyncio.wait_for(worker.stdout.readline(), 60) != b"ready\n":
                raise RuntimeError("a worker did not start")
        start = time.monotonic()
        working = asyncio.gather(*(worker.communicate(b"go\n") for worker in procs))
        while len(server.recorder) < TOTAL:  # noqa: ASYNC110 - the first window is out
            await asyncio.sleep(0.01)
        stall = WINDOW + 3 * redis_timeout
        os.kill(proc.pid, signal.SIGSTOP)
        await asyncio.sleep(stall)
        os.kill(proc.pid, signal.SIGCONT)
        outputs = await working
        makespan = time.monotonic() - start
        reports = [json.loads(out) for out, _ in outputs]
        recorder = server.recorder
        return {
            "ids": ids,
            "cancelled": sum(r["done"] for r in reports),
            "backend_errors": sum(r["backend_errors"] for r in reports),
            "rate_limited": recorder.count_rate_limited(),
            "peak_per_window": recorder.max_arrivals_in_window(WINDOW),
            "stall_s": stall,
            "makespan_s": round(makespan, 3),
            "makespan_less_stall_s": round(makespan - stall, 3),
            "bound_s": (ids - 1) // TOTAL * (WINDOW + GUARD),
        }


def main() -> None:
    """Parse the command line and run both parts (or, with ``--worker``, one worker)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_stall", description=__doc__)
    parser.add_argument("--ids", type=int, default=120, help="distinct ids in part 2, M")
    parser.add_argument("--timeout", type=float, default=0.5, help="RedisLimiter timeout, s")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(asyncio.run(_worker(json.loads(args.worker)))))
        return
    print(json.dumps({"one limiter": asyncio.run(one_limiter(args.timeout))}, indent=2))
    print(
        json.dumps({"two processes": asyncio.run(two_processes(args.ids, args.timeout))}, indent=2)
    )


if __name__ == "__main__":
    main()
