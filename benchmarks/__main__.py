"""``python -m benchmarks``: run the benchmark set, write JSON, the chart and a Markdown table.

From the repository root, with the project's virtualenv::

    .venv/bin/python -m benchmarks            # full set (about 34 minutes)
    .venv/bin/python -m benchmarks --quick    # reduced set (under 3 minutes)
    .venv/bin/python -m benchmarks --only distinct --only small-batch --no-overhead
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from .harness import BenchConfig, machine_info, make_report, run_suite, scenarios
from .overhead import measure_overhead
from .report import markdown

_HERE = Path(__file__).resolve().parent
_CHART = _HERE.parent / "docs" / "img" / "arrivals.png"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="schedcancel against the rate limiters a user would write instead.",
    )
    parser.add_argument("--quick", action="store_true", help="the reduced set (< 3 minutes)")
    parser.add_argument(
        "--only",
        action="append",
        metavar="SCENARIO",
        help="run only this scenario (repeatable): distinct, small-batch, mixed, fixed-PHASE, "
        "token-bucket, sliding-counter, foreign-20, operations, bulk-interactive, "
        "bulk-interactive-1200 "
        "(bulk-interactive-240 with --quick)",
    )
    parser.add_argument("--no-overhead", action="store_true", help="skip the overhead figure")
    parser.add_argument(
        "--json",
        type=Path,
        help="where to write the results (default benchmarks/results/latest.json, "
        "or quick.json with --quick; *.json there is gitignored)",
    )
    parser.add_argument(
        "--chart",
        type=Path,
        help=f"where to draw the PNG (default {_CHART.relative_to(_HERE.parent)} for the full "
        "set; none for --quick unless given)",
    )
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    return parser


async def _run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    config = BenchConfig()
    chosen = scenarios(config, quick=args.quick)
    if args.only:
        unknown = set(args.only) - {s.name for s in chosen}
        if unknown:
            raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        chosen = [s for s in chosen if s.name in args.only]
    meta = machine_info() | {"command": command, "quick": args.quick}

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    runs = sum(len(s.contestants) * s.repeat for s in chosen)
    say(f"load average {meta['load_average']}; {runs} runs")
    results = await run_suite(chosen, config, progress=say)
    overhead = None
    if not args.no_overhead:
        rounds, requests = (3, 600) if args.quick else (7, 1500)
        overhead = await measure_overhead(
            rounds=rounds, requests=requests, breakdown=not args.quick, progress=say
        )
    meta["load_average_after"] = machine_info()["load_average"]
    return make_report(chosen, results, config, meta=meta, overhead=overhead)


def main(argv: list[str] | None = None) -> int:
    """Run, write the outputs, print the tables; 0 even when a goal is missed (see the table)."""
    args = _parser().parse_args(argv)
    # The limiter's adaptive changes are logged once at WARNING: show them among the runs.
    logging.basicConfig(level=logging.WARNING, format="    %(name)s: %(message)s")
    shown = sys.argv[1:] if argv is None else argv
    command = shlex.join([".venv/bin/python", "-m", "benchmarks", *shown])
    report = asyncio.run(_run(args, command))
    out = args.json or _HERE / "results" / ("quick.json" if args.quick else "latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"results: {os.path.relpath(out)}", file=sys.stderr)
    chart = args.chart or (None if args.quick else _CHART)
    if chart is not None and any(run.get("trace") for run in report["runs"]):
        from .chart import draw  # noqa: PLC0415 - matplotlib only when drawing

        print(f"chart: {os.path.relpath(draw(report, chart))}", file=sys.stderr)
    text = markdown(report)
    if args.markdown is not None:
        args.markdown.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
