"""RedisLimiter: its cost per permit next to the in-process limiter, and several processes at work.

Two parts, both against the Redis server on 127.0.0.1:6379 (override with
``--redis``) and the in-process mock server:

1. **Cost per permit**: acquire + release with limits out of reach, the
   in-process :class:`RateLimiter` and :class:`RedisLimiter` side by side in
   interleaved segments of the same run: one caller at a time (µs per
   acquire+release, the latency a call pays) and 64 callers at once (µs of
   wall clock per permit, the throughput a process gets).
2. **Processes sharing one API user**: P worker processes (default 4) each
   cancel their share of M distinct ids (default 600) through one
   ``RedisLimiter`` key space against one mock server (sliding log, N = 60 and
   K = 10 per W = 2 s, 2.5-10 ms one-way latency as in ``python -m benchmarks``).
   Workers start together after their imports, so Python's start-up is not
   measured. Figures as in ``benchmarks/harness.py``: makespan (last response
   minus first send, wall clock across processes), lower bound
   ``L = floor((M-1)/N) * W``, ``ratio = makespan / L``, the guard bound
   ``L_g = w * (W + guard + rtt) + rtt`` with the run's median round trip,
   ``ratio_g = makespan / L_g``, 429s and the most arrivals in any W.
   The same job in one process with the in-process limiter runs for comparison.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_redis [--ops 2000] [--processes 4] [--ids 600]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from schedcancel import (
    Limiter,
    Permit,
    RateLimiter,
    RateLimits,
    ScheduleClient,
    ScheduleResult,
)
from schedcancel.redis import RedisLimiter
from schedcancel.testing import Faults, MockScheduleServer, ServerLimits

from .harness import BenchConfig
from .peers import DelegatingLimiter

_ROOT = Path(__file__).resolve().parent.parent
_HUGE = RateLimits(total=10**9, per_schedule=10**9, window=60.0)


# -- part 1: cost per permit -------------------------------------------------------


async def _sequential(limiter: Limiter, ops: int) -> float:
    """µs per acquire+release, one caller at a time."""
    start = time.perf_counter()
    for i in range(ops):
        permit = await limiter.acquire(f"SC-{i % 1000}")
        await limiter.release(permit)
    return (time.perf_counter() - start) / ops * 1e6


async def _concurrent(limiter: Limiter, ops: int, callers: int = 64) -> float:
    """µs of wall clock per permit with ``callers`` acquiring and releasing at once."""

    async def caller(k: int) -> None:
        for i in range(k, ops, callers):
            permit = await limiter.acquire(f"SC-{i % 1000}")
            await limiter.release(permit)

    start = time.perf_counter()
    await asyncio.gather(*(caller(k) for k in range(callers)))
    return (time.perf_counter() - start) / ops * 1e6


async def cost_per_permit(redis_url: str, ops: int, rounds: int = 5) -> dict[str, Any]:
    """Interleave the two limiters over ``rounds`` segments; report medians in µs."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    in_process = RateLimiter(_HUGE)
    shared = RedisLimiter(redis_url, username="bench", key_prefix=prefix, limits=_HUGE)
    figures: dict[str, list[float]] = {}
    try:
        await _sequential(shared, 100)  # connect and load the script first
        for _ in range(rounds):
            for name, limiter in (("in_process", in_process), ("redis", shared)):
                figures.setdefault(f"{name}_sequential_us", []).append(
                    await _sequential(limiter, ops)
                )
                figures.setdefault(f"{name}_concurrent_us", []).append(
                    await _concurrent(limiter, ops)
                )
    finally:
        await in_process.aclose()
        await shared.aclose()
        client = aioredis.Redis.from_url(redis_url)
        keys = [key async for key in client.scan_iter(match=f"{{{prefix}:*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
    return {name: round(statistics.median(values), 1) for name, values in figures.items()}


# -- part 2: processes sharing one API user ------------------------------------------


class _Timed(DelegatingLimiter):
    """Notes round trips and the wall-clock first send and last response."""

    def __init__(self, inner: Limiter) -> None:
        super().__init__(inner)
        self.round_trips: list[float] = []
        self.first_send = float("inf")
        self.last_response = 0.0
        self._sent: dict[int, float] = {}

    async def acquire(
        self,
        schedule_id: str | None,
        *,
        priority: int = 0,
        queue_timeout: float | None = None,
        requeue: bool = False,
    ) -> Permit:
        permit = await super().acquire(
            schedule_id, priority=priority, queue_timeout=queue_timeout, requeue=requeue
        )
        self.first_send = min(self.first_send, time.time())
        self._sent[id(permit)] = time.perf_counter()
        return permit

    async def release(
        self, permit: Permit, *, rate_limited: bool = False, retry_after: float | None = None
    ) -> None:
        self.last_response = max(self.last_response, time.time())
        self.round_trips.append(time.perf_counter() - self._sent.pop(id(permit)))
        await super().release(permit, rate_limited=rate_limited, retry_after=retry_after)

    def report(self, results: list[ScheduleResult | BaseException]) -> dict[str, Any]:
        return {
            "done": sum(1 for r in results if isinstance(r, ScheduleResult) and r.is_cancelled),
            "errors": sorted({type(r).__name__ for r in results if isinstance(r, BaseException)}),
            "round_trips": self.round_trips,
            "first_send": self.first_send,
            "last_response": self.last_response,
        }


async def _worker(job: dict[str, Any]) -> dict[str, Any]:
    limiter = _Timed(
        RedisLimiter(
            job["redis"],
            username=job["client"]["username"],
            key_prefix=job["prefix"],
            limits=RateLimits(**job["limits"]),
        )
    )
    kwargs = dict(job["client"])
    try:
        async with ScheduleClient(kwargs.pop("api_key"), **kwargs, limiter=limiter) as client:
            print("ready", flush=True)  # the parent starts everyone together
            await asyncio.to_thread(sys.stdin.readline)
            results = await asyncio.gather(
                *(client.cancel(i) for i in job["ids"]), return_exceptions=True
            )
    finally:
        await limiter.aclose()
    return limiter.report(results)


def _server(config: BenchConfig) -> MockScheduleServer:
    return MockScheduleServer(
        limits=ServerLimits(
            total=config.total, per_schedule=config.per_schedule, window=config.window
        ),
        faults=Faults(request_latency=config.latency, response_latency=config.latency, seed=0),
        unknown_ids="active",
    )


def _figures(
    config: BenchConfig,
    server: MockScheduleServer,
    reports: list[dict[str, Any]],
    ids: int,
) -> dict[str, Any]:
    recorder = server.recorder
    makespan = max(r["last_response"] for r in reports) - min(r["first_send"] for r in reports)
    rtt = statistics.median(t for r in reports for t in r["round_trips"])
    windows = (ids - 1) // config.total
    bound = windows * config.window
    guard_bound = windows * (config.window + config.guard + rtt) + rtt
    return {
        "processes": len(reports),
        "ids": ids,
        "cancelled": sum(r["done"] for r in reports),
        "errors": sorted({e for r in reports for e in r["errors"]}),
        "makespan_s": round(makespan, 3),
        "lower_bound_s": bound,
        "ratio": round(makespan / bound, 4),
        "rtt_p50_ms": round(rtt * 1000, 2),
        "guard_bound_s": round(guard_bound, 3),
        "ratio_g": round(makespan / guard_bound, 4),
        "rate_limited": recorder.count_rate_limited(),
        "peak_per_window": recorder.max_arrivals_in_window(config.window),
        "per_process": [r["done"] for r in reports],
    }


async def processes(redis_url: str, config: BenchConfig, *, count: int, ids: int) -> dict[str, Any]:
    """Run ``count`` worker processes on one API user against one mock server."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    limits = {
        "total": config.total,
        "per_schedule": config.per_schedule,
        "window": config.window,
        "guard": config.guard,
    }
    names = [f"SC-{i:05d}" for i in range(ids)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    async with _server(config) as server:
        procs = []
        for k in range(count):
            job = {
                "redis": redis_url,
                "prefix": prefix,
                "limits": limits,
                "client": server.client_kwargs(),
                "ids": names[k::count],
            }
            procs.append(
                await asyncio.create_subprocess_exec(
                    *(sys.executable, "-m", "benchmarks.bench_redis", "--worker", json.dumps(job)),
                    env=env,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if line != b"ready\n":
                raise RuntimeError(f"worker did not start: {line!r}")
        outputs = await asyncio.gather(*(proc.communicate(b"go\n") for proc in procs))
        if any(proc.returncode for proc in procs):
            raise RuntimeError("a worker failed")
        return _figures(config, server, [json.loads(out) for out, _ in outputs], ids)


async def one_process_in_memory(config: BenchConfig, *, ids: int) -> dict[str, Any]:
    """The same job in one process with the in-process limiter, for comparison."""
    limiter = _Timed(RateLimiter(config.setup().rate_limits()))
    try:
        async with _server(config) as server, server.client(limiter=limiter) as client:
            results = await asyncio.gather(
                *(client.cancel(f"SC-{i:05d}") for i in range(ids)), return_exceptions=True
            )
            return _figures(config, server, [limiter.report(results)], ids)
    finally:
        await limiter.aclose()


# -- command line ----------------------------------------------------------------------


def _markdown(command: str, cost: dict[str, Any] | None, runs: dict[str, dict[str, Any]]) -> str:
    lines = [f"Command: `{command}`", ""]
    if cost is not None:
        lines += [
            "| limiter | µs per acquire+release, 1 caller | µs per permit, 64 callers |",
            "|---|---:|---:|",
            f"| in-process `RateLimiter` | {cost['in_process_sequential_us']} "
            f"| {cost['in_process_concurrent_us']} |",
            f"| `RedisLimiter` (local Redis) | {cost['redis_sequential_us']} "
            f"| {cost['redis_concurrent_us']} |",
            "",
        ]
    if runs:
        lines += [
            "| run | ids | makespan | L | ratio | rtt p50 | L_g | ratio_g | 429s | peak/W |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in runs.items():
            lines.append(
                f"| {name} | {r['cancelled']}/{r['ids']} | {r['makespan_s']} s "
                f"| {r['lower_bound_s']} s | {r['ratio']} | {r['rtt_p50_ms']} ms "
                f"| {r['guard_bound_s']} s | {r['ratio_g']} | {r['rate_limited']} "
                f"| {r['peak_per_window']} |"
            )
    return "\n".join(lines) + "\n"


async def _main(args: argparse.Namespace, command: str) -> None:
    config = BenchConfig(guard=args.guard)
    cost = None if args.skip_cost else await cost_per_permit(args.redis, args.ops)
    if cost is not None:
        print(json.dumps({"cost_per_permit_us": cost}, indent=2))
    runs: dict[str, dict[str, Any]] = {}
    if not args.skip_processes:
        name = f"RedisLimiter, {args.processes} processes"
        runs[name] = await processes(args.redis, config, count=args.processes, ids=args.ids)
        print(json.dumps({name: runs[name]}, indent=2))
        runs["RateLimiter, 1 process"] = await one_process_in_memory(config, ids=args.ids)
        print(json.dumps({"RateLimiter, 1 process": runs["RateLimiter, 1 process"]}, indent=2))
    table = _markdown(command, cost, runs)
    print(table)
    if args.markdown is not None:
        args.markdown.write_text(table, encoding="utf-8")


def main() -> None:
    """Parse the command line and run the benchmark (or, with ``--worker``, one worker)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_redis", description=__doc__)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the Redis URL")
    parser.add_argument("--ops", type=int, default=2000, help="permits per cost segment")
    parser.add_argument("--processes", type=int, default=4, help="worker processes")
    parser.add_argument("--ids", type=int, default=600, help="distinct ids, M")
    parser.add_argument("--guard", type=float, default=BenchConfig().guard, help="guard, s")
    parser.add_argument("--skip-cost", action="store_true", help="skip the cost per permit")
    parser.add_argument("--skip-processes", action="store_true", help="skip the process runs")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(asyncio.run(_worker(json.loads(args.worker)))))
        return
    command = " ".join([".venv/bin/python -m benchmarks.bench_redis", *sys.argv[1:]])
    asyncio.run(_main(args, command))


if __name__ == "__main__":
    main()
