"""Run one contestant on one scenario a few times: quick A/B checks between two trees.

    .venv/bin/python -m benchmarks.one distinct sc-exact --repeat 3
    .venv/bin/python -m benchmarks.one bulk-interactive sc-exact-reserve-0
    .venv/bin/python -m benchmarks.one operations sc-redis

Each repetition is a fresh mock server with that repetition's latency draws,
as in the full set; one line per run. To compare two commits, export each with
``git archive`` and run this module from both, interleaved, so that machine
noise hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio

from .harness import BenchConfig, interactive_summary, run_one, scenarios
from .interactive import MIXED_CONTESTANTS
from .mixed import OPERATION_CONTESTANTS
from .peers import CONTESTANTS


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, print one line per repetition."""
    config = BenchConfig()
    by_name = {scenario.name: scenario for scenario in scenarios(config)}
    parser = argparse.ArgumentParser(prog="python -m benchmarks.one", description=__doc__)
    parser.add_argument("scenario", choices=sorted(by_name))
    parser.add_argument(
        "contestant", choices=sorted({*CONTESTANTS, *MIXED_CONTESTANTS, *OPERATION_CONTESTANTS})
    )
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    scenario = by_name[args.scenario]
    known: set[str] = set(CONTESTANTS)
    if scenario.kind == "interactive":
        known = set(MIXED_CONTESTANTS)
    elif scenario.kind == "operations":
        known = set(OPERATION_CONTESTANTS)
    if args.contestant not in known:
        parser.error(f"{args.scenario} takes the contestants {', '.join(sorted(known))}")
    for repetition in range(args.repeat):
        result = asyncio.run(run_one(scenario, args.contestant, config, repetition=repetition))
        ratio = "-" if result.ratio is None else f"{result.ratio:.4f}"
        ratio_g = "-" if result.ratio_guard is None else f"{result.ratio_guard:.4f}"
        print(
            f"{args.scenario} {args.contestant} #{repetition}: makespan {result.makespan:.3f} s, "
            f"ratio {ratio}, ratio_g {ratio_g}, "
            f"rtt p50 {result.rtt_p50 * 1000:.1f} ms p99 {result.rtt_p99 * 1000:.1f} ms, "
            f"{result.rate_limited} x 429"
            + (f"; {interactive_summary(result)}" if result.interactive_calls else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
