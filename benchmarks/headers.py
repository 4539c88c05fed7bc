"""The server's own word (issue 23) at the real limits, on virtual time: what reading costs.

    .venv/bin/python -m benchmarks.headers                 # W = 60 s, the real limits
    .venv/bin/python -m benchmarks.headers --window 2      # the benchmark set's scale

600 distinct ids gathered at priority 0 (``client.cancel``, as ``tests/test_server_word.py``
sends them), N = 60 per API user, K = 10 per scheduleId, the client's default ``RateLimits``
for the window (guard 1 s at W = 60 s, 0.05 s at W = 2 s), one-way latency 5-20 ms (2.5-10
ms at W = 2 s), seeds 1-3 (``--seeds``). Each header style (``none``: nothing but ``Retry-After``;
``x-all``: ``X-RateLimit-*`` on every answer) meets each case: a sliding log alone
(``log``), a sliding-window counter (phase 0.5, ``counter``), a sliding log with 20 %
foreign load on the same API user (``foreign``), and both. Per run: the makespan (first
arrival to the last, plus the longest response latency), its ratio to ``floor((M - 1) / n) * W``
where ``n`` is what the server leaves us (60, or 48 with foreign load), and our 429s; one
such triple per seed.

The figures come back as one JSON object per window; on looptime's virtual clock they do
not depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import looptime
from schedcancel import RateLimits
from schedcancel.testing import Faults, HeaderStyle, MockScheduleServer, ModelName, ServerLimits

N, K, M = 60, 10, 600
FOREIGN = 0.2
STYLES: tuple[HeaderStyle, ...] = ("none", "x-all")
#: name, server model, foreign load
CASES: tuple[tuple[str, ModelName, float], ...] = (
    ("log", "sliding-log", 0.0),
    ("counter", "sliding-counter", 0.0),
    ("foreign", "sliding-log", FOREIGN),
    ("both", "sliding-counter", FOREIGN),
)


async def job(
    style: HeaderStyle, model: ModelName, foreign: float, *, window: float, seed: int, count: int
) -> list[Any]:
    """One run of ``count`` ids: [makespan, ratio, our 429s]."""
    big = window >= 60
    latency = (0.005, 0.02) if big else (0.0025, 0.01)
    guard = 1.0 if big else 0.05
    server = MockScheduleServer(
        limits=ServerLimits(total=N, per_schedule=K, window=window, model=model, phase=window / 2),
        faults=Faults(request_latency=latency, response_latency=latency, seed=seed),
        foreign_load=foreign,
        rate_limit_headers=style,
        unknown_ids="active",
    )
    ids = [f"H-{i:04d}" for i in range(count)]
    limits = RateLimits(total=N, per_schedule=K, window=window, guard=guard)
    async with server:
        if foreign:
            await asyncio.sleep(window)  # the foreign load is steady when the job starts
        async with server.client(limits=limits) as client:
            await asyncio.gather(*(client.cancel(i) for i in ids))
    ours = server.recorder.select(foreign=False)
    times = [a.time for a in ours]
    makespan = max(times) + latency[1] - min(times)
    share = round(N * (1 - foreign))
    bound = max(1, (count - 1) // share) * window
    return [round(makespan, 2), round(makespan / bound, 3), server.recorder.count_rate_limited()]


def run(window: float, seeds: int = 3, count: int = M) -> dict[str, Any]:
    """Every style x case at ``window``, once per seed, each on a fresh looptime loop."""
    figures: dict[str, Any] = {"window": window}
    for style in STYLES:
        for name, model, foreign in CASES:
            runs = figures[f"{style} {name}"] = []
            for seed in range(1, seeds + 1):
                loop = looptime.new_event_loop(start=0)
                try:
                    one = job(style, model, foreign, window=window, seed=seed, count=count)
                    runs.append(loop.run_until_complete(one))
                finally:
                    loop.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print one JSON object per window asked for."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.headers")
    parser.add_argument("--window", action="append", type=float, help="seconds (default 60)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per cell, seeds 1..SEEDS")
    args = parser.parse_args(argv)
    for window in args.window or [60.0]:
        print(json.dumps(run(window, args.seeds)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
