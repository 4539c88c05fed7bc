"""Memory of ``cancel_many`` over a million ids: streamed input, bounded peak.

A generator yields ``--ids`` distinct 32-character scheduleIds into
``cancel_many`` over a stub client that answers at once (limits out of
reach), so the job's own bookkeeping is all that is measured. tracemalloc
reports the peak of traced memory above the baseline; with ``--journal`` the
outcomes are also written (and fsynced) to a journal in a temporary directory.

For comparison the script also measures what a plain ``set`` of the same ids
would hold, the structure the fingerprint table replaces.

    .venv/bin/python -m benchmarks.bench_bulk_memory                 # 1,000,000 ids, ~2 min
    .venv/bin/python -m benchmarks.bench_bulk_memory --ids 100000 --journal

Exits 1 when the peak is above ``--bound-mb`` (default 40).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from schedcancel import Gate, LimiterStats, RateLimits, ScheduleResult, ScheduleStatus
from schedcancel._bulk.runner import cancel_many

HUGE = RateLimits(total=10**9, per_schedule=10**9)
ANSWER = ScheduleResult(
    success=True, old_status=ScheduleStatus.ACTIVE, new_status=ScheduleStatus.CANCELLED
)


class _Limiter:
    limits = HUGE

    def stats(self) -> LimiterStats:
        return LimiterStats(
            queued=0, in_flight=0, total_used=0, total_limit=HUGE.total, schedule_ids=0, next_free=0
        )


class _Client:
    """Answers every cancel at once; keeps nothing."""

    limiter = _Limiter()
    redactions: tuple[str, ...] = ()
    redacted_api_key = "stub***"

    async def cancel(
        self,
        schedule_id: str,
        *,
        api_key: str | None = None,
        priority: int = 0,
        queue_timeout: float | None = None,
        gate: Gate | None = None,
    ) -> ScheduleResult:
        del schedule_id, api_key, priority, queue_timeout, gate  # the stub answers alike
        await asyncio.sleep(0)
        return ANSWER


def _ids(count: int) -> Iterator[str]:
    for i in range(count):
        yield f"SC-{i:08d}-0000-0000-0000-0000"[:32]


async def _run(count: int, journal: Path | None) -> tuple[int, float, int]:
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    done = 0
    async for outcome in cancel_many(_Client(), _ids(count), journal=journal):
        done += outcome.ok
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    return done, elapsed, peak


def _set_size(count: int) -> int:
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    held = set(_ids(count))
    size = tracemalloc.get_traced_memory()[0] - baseline
    tracemalloc.stop()
    del held
    return size


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print one line per figure.

    Returns:
        0 when the peak stays under the bound, else 1.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=1_000_000, help="ids to stream (1,000,000)")
    parser.add_argument("--journal", action="store_true", help="write a journal too")
    parser.add_argument("--bound-mb", type=float, default=40.0, help="fail above this peak")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "bench.jsonl" if args.journal else None
        done, elapsed, peak = asyncio.run(_run(args.ids, journal))
    mib = peak / 2**20
    print(f"ids: {args.ids:,}  cancelled: {done:,}  journal: {'yes' if journal else 'no'}")
    print(f"peak traced memory: {mib:.1f} MiB ({peak / args.ids:.1f} bytes per id)")
    print(f"time under tracemalloc: {elapsed:.1f} s ({elapsed / args.ids * 1e6:.1f} us per id)")
    print(f"a set of the same ids alone: {_set_size(args.ids) / 2**20:.1f} MiB")
    if done != args.ids or mib > args.bound_mb:
        print(f"FAIL: bound {args.bound_mb} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
