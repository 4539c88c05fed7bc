"""Acquire+release pairs one at a time, for counting instructions under callgrind.

Wall-clock micro-benchmarks need a quiet machine; instruction counts do not:
``valgrind --tool=callgrind`` counts the same total for the same tree, inputs
and environment whatever else the machine does. Run it for a tree (``PYTHONPATH``)
with N pairs and with 0, and the difference over N is the instructions per pair:

    PYTHONPATH=/tmp/old valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python -m benchmarks.instructions memory-live 3000

Kinds: ``memory-live`` (a ``RateLimiter``, 1,000 ids in turn), ``memory-new`` (a
new id each pair), ``redis`` (a ``RedisLimiter`` on 127.0.0.1:6379, 1,000 ids in
turn, after one pair that loads the scripts). The limits are far above what the
pairs use, so nothing ever waits: the figure is the limiter's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets

from schedcancel import RateLimiter, RateLimits


async def _pairs(kind: str, n: int) -> None:
    limits = RateLimits(total=10**6, per_schedule=10**6, window=1.0, guard=0.0)
    now = [0.0]
    if kind == "redis":
        from schedcancel.redis import RedisLimiter  # noqa: PLC0415 - optional extra

        limiter: RateLimiter | RedisLimiter = RedisLimiter(
            "redis://127.0.0.1:6379/0",
            username="instructions",
            key_prefix=f"bench-{secrets.token_hex(4)}",
            limits=limits,
            timeout=60.0,  # callgrind slows this process, not Redis
        )
        await limiter.release(await limiter.acquire("warm-up"))
    else:
        limiter = RateLimiter(limits, clock=lambda: now[0])
    for i in range(n):
        key = f"SC-{i}" if kind == "memory-new" else f"SC-{i % 1000}"
        await limiter.release(await limiter.acquire(key))
        now[0] += 0.001
    await limiter.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["memory-live", "memory-new", "redis"])
    parser.add_argument("pairs", type=int)
    args = parser.parse_args()
    asyncio.run(_pairs(args.kind, args.pairs))


if __name__ == "__main__":
    main()
