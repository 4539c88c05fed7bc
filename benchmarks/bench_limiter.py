"""The limiter's core: time per acquire+release, memory per live key, and the leaky-bucket contrast.

Speed is measured on a plain asyncio loop with a limiter clock that stands
still, so the 100,000 keys stay live however long the measurement takes;
wall-clock figures come from ``time.perf_counter``. Memory is measured on a
looptime event loop (virtual time: "wait until the keys expire" costs no real
time) with ``tracemalloc``, in a separate pass, as tracing slows Python down.

    .venv/bin/python -m benchmarks.bench_limiter                # 100,000 keys, about 30 s
    .venv/bin/python -m benchmarks.bench_limiter --keys 10000   # quicker

Measured:

1. **µs per acquire+release** with ``--keys`` scheduleIds live in the
   limiter (each holding one answered entry), for new keys and for keys
   already live, one request at a time (each ``acquire`` waits one loop turn
   for the dispatcher) and 1,000 at a time (``gather``).
2. **bytes per live key**: traced memory held by the limiter for ``--keys``
   answered requests on distinct keys, divided by the count (the key strings
   themselves are the caller's and are excluded).
3. **memory after expiry**: traced memory once the window has passed; the
   limiter's one timer drops the idle keys, so it returns to the baseline.
4. **leaky bucket vs sliding log**: 600 acquisitions from
   ``aiolimiter.AsyncLimiter(60, 60)`` and from ``RateLimiter`` (default
   60 per 60 s, responses after 0.1 s): how many each admits in the first
   60 s and in the busiest 60 s span.

Exits 1 when memory does not return to within 64 KiB of the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import looptime
from aiolimiter import AsyncLimiter
from schedcancel import RateLimiter, RateLimits

# Limits that never hold anyone back: the cost measured is the bookkeeping.
_OPEN = RateLimits(total=10**9, per_schedule=10)


def _run(main: Callable[[], Awaitable[Any]], *, virtual: bool = True) -> Any:
    loop = looptime.new_event_loop(start=0) if virtual else asyncio.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


async def _one_at_a_time(limiter: RateLimiter, keys: list[str]) -> float:
    start = time.perf_counter()
    for key in keys:
        permit = await limiter.acquire(key)
        limiter.release_nowait(permit)
    return (time.perf_counter() - start) / len(keys) * 1e6


async def _in_batches(limiter: RateLimiter, keys: list[str], batch: int = 1000) -> float:
    async def one(key: str) -> None:
        permit = await limiter.acquire(key)
        limiter.release_nowait(permit)

    start = time.perf_counter()
    for i in range(0, len(keys), batch):
        await asyncio.gather(*(one(key) for key in keys[i : i + batch]))
    return (time.perf_counter() - start) / len(keys) * 1e6


async def _floor(ops: int) -> float:
    """The event loop's own share: one future resolved on the next turn and awaited."""
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    for _ in range(ops):
        future = loop.create_future()
        loop.call_soon(future.set_result, None)
        await future
    return (time.perf_counter() - start) / ops * 1e6


def speed(live: int, ops: int) -> dict[str, float]:
    """µs per acquire+release with ``live`` keys live, for new and for live keys."""

    async def main() -> dict[str, float]:
        # A plain event loop (looptime's patched select costs µs per turn) and a
        # clock that stands still, so the live keys stay live.
        limiter = RateLimiter(_OPEN, clock=lambda: 0.0)
        await _in_batches(limiter, [f"live-{i:06d}" for i in range(live)])
        assert limiter.stats().schedule_ids == live
        fresh = [f"new-{i:06d}" for i in range(ops)]
        again = [f"live-{i % live:06d}" for i in range(ops)]
        result = {
            "new keys, one at a time": await _one_at_a_time(limiter, fresh[: ops // 2]),
            "new keys, 1,000 at a time": await _in_batches(limiter, fresh[ops // 2 :]),
            "live keys, one at a time": await _one_at_a_time(limiter, again[: ops // 2]),
            "live keys, 1,000 at a time": await _in_batches(limiter, again[ops // 2 :]),
            "(asyncio alone: a future resolved next turn)": await _floor(ops // 2),
        }
        await limiter.aclose()
        return result

    gc.collect()
    return _run(main, virtual=False)  # type: ignore[no-any-return]


def memory(live: int) -> dict[str, float]:
    """Traced bytes per live key, and what is left once the keys expired."""

    async def main() -> dict[str, float]:
        keys = [f"SC-{i:029d}" for i in range(live)]  # 32 characters, like real ids
        limiter = RateLimiter(RateLimits())
        # The same traffic once before the baseline, so that what asyncio keeps
        # (its set of all tasks never shrinks its table) is not charged to the limiter.
        await _in_batches(limiter, [f"warm-{i}" for i in range(min(live, 2000))])
        await asyncio.sleep(62)
        gc.collect()
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
        big = RateLimiter(_OPEN)
        await _in_batches(big, keys)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - baseline
        assert big.stats().schedule_ids == live
        # The one timer sweeps the keys a window + guard after their release, and
        # adaptive mode's memory of acceptances three windows after the last one.
        await asyncio.sleep(3 * 61 + 1)
        gc.collect()
        left = tracemalloc.get_traced_memory()[0] - baseline
        live_after = big.stats().schedule_ids
        tracemalloc.stop()
        await big.aclose()
        await limiter.aclose()
        return {
            "bytes per live key": held / live,
            "bytes held after expiry": float(left),
            "keys live after expiry": float(live_after),
        }

    gc.collect()
    return _run(main)  # type: ignore[no-any-return]


def _counts(times: list[float], window: float) -> tuple[int, int]:
    """(admitted in the first ``window`` seconds, most admitted in any ``window`` span)."""
    times = sorted(times)
    first = bisect.bisect_left(times, times[0] + window)
    busiest = max(bisect.bisect_left(times, t + window) - i for i, t in enumerate(times))
    return first, busiest


def leaky_bucket(requests: int = 600) -> dict[str, tuple[int, int]]:
    """How many requests aiolimiter's leaky bucket and the sliding log admit per 60 s."""

    async def bucket() -> list[float]:
        loop = asyncio.get_running_loop()
        limiter = AsyncLimiter(60, 60)
        times = []
        for _ in range(requests):
            async with limiter:
                times.append(loop.time())
        return times

    async def sliding() -> list[float]:
        loop = asyncio.get_running_loop()
        limiter = RateLimiter(RateLimits())
        times: list[float] = []

        async def one(i: int) -> None:
            permit = await limiter.acquire(f"id-{i}")
            times.append(loop.time())
            await asyncio.sleep(0.1)
            await limiter.release(permit)

        await asyncio.gather(*(one(i) for i in range(requests)))
        await limiter.aclose()
        return times

    return {
        "aiolimiter.AsyncLimiter(60, 60)": _counts(_run(bucket), 60.0),
        "schedcancel.RateLimiter()": _counts(_run(sliding), 60.0),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the measurements and print them as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000, help="live scheduleIds")
    parser.add_argument("--ops", type=int, default=100_000, help="acquire+release pairs timed")
    args = parser.parse_args(argv)

    print(f"# limiter core, {args.keys:,} live keys, Python {sys.version.split()[0]}\n")
    print("| acquire + release | µs per pair |\n|---|---:|")
    for name, micros in speed(args.keys, args.ops).items():
        print(f"| {name} | {micros:.1f} |")
    mem = memory(args.keys)
    print("\n| memory | value |\n|---|---:|")
    print(f"| bytes per live key (one answered entry each) | {mem['bytes per live key']:.0f} |")
    print(f"| bytes held after the keys expired | {mem['bytes held after expiry']:.0f} |")
    print(f"| keys live after expiry | {mem['keys live after expiry']:.0f} |")
    print("\n| 600 acquisitions | first 60 s | busiest 60 s |\n|---|---:|---:|")
    for name, (first, busiest) in leaky_bucket().items():
        print(f"| `{name}` | {first} | {busiest} |")
    return 0 if mem["bytes held after expiry"] <= 64 * 1024 else 1


if __name__ == "__main__":
    sys.exit(main())
