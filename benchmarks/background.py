"""Background jobs beside the interactive lane (issue 24), at the real limits on virtual time.

    .venv/bin/python -m benchmarks.background                  # every part, as JSON lines
    .venv/bin/python -m benchmarks.background --only small --only real

Every part runs on looptime's virtual clock (seconds of CPU for hours of
virtual time) against the mock server with the real limits, W = 60 s, N = 60
per API user, K = 10 per scheduleId, and one-way latency drawn uniformly from
5-20 ms each way (a round trip of at most 40 ms, ``RTT``); the client has the
default ``RateLimits()`` (guard 1 s, exact, adaptive, ``interactive_reserve=1``).
Bulk jobs are ``client.cancel_many(ids)`` at its default priority, the
background one (-1), as the CLI runs them.

``small``
    20 ids alone on the budget: the makespan, first arrival at the server to
    the last response (the issue's "20 ids from the CLI": 20.2 s before).
``real``
    6,000 bulk ids and, on the same client, interactive calls
    (``client.cancel(id)``, priority 0) at random: exponential gaps with a
    mean of W (seed 13), until the job ends. The interactive *wait* runs from
    a call's start to its arrival at the server (p50, p90, p99 as
    ``statistics.quantiles(n=100)``, the tests' definition, and the max); the
    bulk *makespan* from its first arrival to its last; its *bound*
    ``(ceil((M + I) / N) - 1) * (W + guard + RTT)``: every request, bulk and
    interactive, takes a place, and a place is free again a hold and a round
    trip after it was taken.
``models``
    600 ids alone at the benchmark set's scale (W = 2 s, guard 0.05 s, 2.5-10 ms
    one-way latency) on each of the mock server's models, at the default
    (background) priority and at priority 0: ratio to ``floor((M - 1) / N) * W``
    and 429s.
``redis``
    ``real`` through Redis: the job and the caller on two ``RedisLimiter``
    objects that share nothing but the Redis on 127.0.0.1:6379 (the job's
    process and the caller's, in one process here so that they share the
    virtual clock; ``tests/support/redis.py``'s client lets no virtual time
    pass while Redis answers).

The figures come back as one JSON object per part (``benchmarks.ab`` runs
this module on two trees side by side: ``--only background``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import looptime
from schedcancel import RateLimits, ScheduleClient
from schedcancel.testing import Faults, MockScheduleServer, ModelName, ServerLimits

W, N, K, GUARD = 60.0, 60, 10, 1.0
LATENCY = (0.005, 0.02)
RTT = 2 * LATENCY[1]
PARTS = ("small", "real", "redis", "models")
#: The mock server's models as the benchmark set runs them (W = 2 s), and the counter at
#: the other two phases too.
MODELS: tuple[tuple[ModelName, float], ...] = (
    ("sliding-log", 0.0),
    ("fixed-window", 0.1),
    ("fixed-window", 0.5),
    ("fixed-window", 0.9),
    ("token-bucket", 0.0),
    ("sliding-counter", 0.1),
    ("sliding-counter", 0.5),
    ("sliding-counter", 0.9),
)
_TESTS = Path(__file__).resolve().parent.parent / "tests"


def _server() -> MockScheduleServer:
    faults = Faults(request_latency=LATENCY, response_latency=LATENCY, seed=5)
    limits = ServerLimits(total=N, per_schedule=K, window=W)
    return MockScheduleServer(limits=limits, faults=faults, unknown_ids="active")


async def _job(client: ScheduleClient, ids: list[str]) -> int:
    outcomes = [o async for o in client.cancel_many(ids)]
    if not all(o.ok for o in outcomes):
        raise RuntimeError("a bulk id failed")
    return len(outcomes)


async def small(count: int = 20) -> dict[str, Any]:
    """A job of ``count`` ids alone on the budget: its makespan."""
    async with _server() as server, server.client(limits=RateLimits()) as client:
        await _job(client, [f"B-{i:05d}" for i in range(count)])
    arrivals = server.recorder.select(foreign=False)
    first = min(a.time for a in arrivals)
    last = max(a.time for a in arrivals) + LATENCY[1]  # the last response, at the latest
    return {
        "ids": count,
        "makespan_s": last - first,
        "rate_limited": server.recorder.count_rate_limited(),
    }


async def _caller(
    call: Callable[[str], Awaitable[object]], done: asyncio.Future[Any]
) -> list[tuple[str, float]]:
    """Call at random times (exponential gaps, mean W, seed 13) until ``done``."""
    rng = random.Random(13)
    loop = asyncio.get_running_loop()
    started: list[tuple[str, float]] = []
    while True:
        await asyncio.wait({done}, timeout=rng.expovariate(1 / W))
        if done.done():
            return started
        schedule_id = f"I-{len(started):04d}"
        started.append((schedule_id, loop.time()))
        await call(schedule_id)


def _figures(
    server: MockScheduleServer, started: list[tuple[str, float]], bulk: int
) -> dict[str, Any]:
    recorder = server.recorder
    arrival = {a.schedule_id: a.time for a in recorder.select(foreign=False)}
    waits = sorted(arrival[i] - t for i, t in started)
    bulk_times = [a.time for a in recorder.select(foreign=False) if str(a.schedule_id)[0] == "B"]
    makespan = max(bulk_times) - min(bulk_times)
    bound = (math.ceil((bulk + len(started)) / N) - 1) * (W + GUARD + RTT)
    cuts = statistics.quantiles(waits, n=100)
    return {
        "ids": bulk,
        "interactive_calls": len(started),
        "wait_p50_ms": cuts[49] * 1000,
        "wait_p90_ms": cuts[89] * 1000,
        "wait_p99_ms": cuts[98] * 1000,
        "wait_max_ms": waits[-1] * 1000,
        "bulk_makespan_s": makespan,
        "bulk_bound_s": bound,
        "bulk_ratio": makespan / bound,
        "rate_limited": recorder.count_rate_limited(),
        "peak_per_window": recorder.max_arrivals_in_window(W),
    }


async def real(bulk: int = 6000) -> dict[str, Any]:
    """``bulk`` ids and interactive calls at random on one client (one process)."""
    ids = [f"B-{i:05d}" for i in range(bulk)]
    async with _server() as server, server.client(limits=RateLimits()) as client:
        job = asyncio.ensure_future(_job(client, ids))
        started = await _caller(client.cancel, job)
        await job
    return _figures(server, started, bulk)


async def redis(bulk: int = 6000) -> dict[str, Any]:
    """``real`` with the job and the caller on two ``RedisLimiter`` objects."""
    sys.path.insert(0, str(_TESTS))
    from schedcancel.redis import RedisLimiter  # noqa: PLC0415 - the redis extra

    from support.redis import fresh_prefix, local_redis  # noqa: PLC0415 - the tests' client

    loop = asyncio.get_running_loop()
    ids = [f"B-{i:05d}" for i in range(bulk)]
    async with local_redis() as client, fresh_prefix(client) as prefix:

        def limiter() -> RedisLimiter:
            return RedisLimiter(
                client, username="u", key_prefix=prefix, clock=loop.time, jitter=0, timeout=3600
            )

        job_limiter, caller_limiter = limiter(), limiter()
        try:
            async with _server() as server:
                kwargs = server.client_kwargs()
                async with (
                    ScheduleClient(**kwargs, limiter=job_limiter) as job_client,
                    ScheduleClient(**kwargs, limiter=caller_limiter) as caller,
                ):
                    job = asyncio.ensure_future(_job(job_client, ids))
                    started = await _caller(caller.cancel, job)
                    await job
        finally:
            for made in (job_limiter, caller_limiter):
                await made.aclose()
    return _figures(server, started, bulk)


async def models(count: int = 600) -> dict[str, Any]:
    """``count`` ids alone at W = 2 s (the benchmark set's scale) on each server model.

    The set-up of ``benchmarks.harness`` on virtual time: N = 60, K = 10, guard
    0.05 s, 2.5-10 ms one-way latency; the bulk job at its default priority
    (``bg``) and at priority 0 (``burst``). Per model and phase: the makespan
    (first arrival to the last response), its ratio to ``floor((M - 1) / N) * W``,
    and the 429s.
    """
    window, latency = 2.0, (0.0025, 0.010)
    limits = RateLimits(total=N, per_schedule=K, window=window, guard=0.05)
    bound = (count - 1) // N * window
    figures: dict[str, Any] = {}
    for model, phase in MODELS:
        for name, priority in (("bg", -1), ("burst", 0)):
            server = MockScheduleServer(
                limits=ServerLimits(
                    total=N, per_schedule=K, window=window, model=model, phase=phase * window
                ),
                faults=Faults(request_latency=latency, response_latency=latency, seed=5),
                unknown_ids="active",
            )
            ids = [f"B-{i:05d}" for i in range(count)]
            async with server, server.client(limits=limits) as client:
                outcomes = [o async for o in client.cancel_many(ids, priority=priority)]
            times = [a.time for a in server.recorder.select(foreign=False)]
            makespan = max(times) + latency[1] - min(times)
            key = f"{model}-{phase:g} {name}"
            figures[f"{key} ratio"] = makespan / bound
            figures[f"{key} 429s"] = server.recorder.count_rate_limited()
            figures[f"{key} failed"] = sum(1 for o in outcomes if not o.ok)
    return figures


def run_models(count: int) -> dict[str, Any]:
    """The models part with ``count`` ids, on a fresh looptime loop."""
    loop = looptime.new_event_loop(start=0)
    try:
        return loop.run_until_complete(models(count))
    finally:
        loop.close()


def run(part: str) -> dict[str, Any]:
    """One part on a fresh looptime loop; its figures."""
    body = {"small": small, "real": real, "redis": redis, "models": models}[part]
    loop = looptime.new_event_loop(start=0)
    try:
        return {"part": part} | loop.run_until_complete(body())
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for; print one JSON object per part."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.background")
    parser.add_argument("--only", action="append", choices=PARTS, help="this part only")
    args = parser.parse_args(argv)
    for part in args.only or PARTS:
        print(json.dumps(run(part)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
