"""Two trees side by side in one run: the figures before and after a change, interleaved.

    .venv/bin/python -m benchmarks.ab --old 592a78f --new d29c30d --repeat 3
    .venv/bin/python -m benchmarks.ab --old-tree /tmp/ab-old --new-tree /tmp/ab-new \\
        --only limiter --limiter-keys 10000

``--old`` and ``--new`` name commits; each is exported with ``git archive``
into a temporary directory (or pass directories you exported yourself with
``--old-tree`` and ``--new-tree``). Every measurement runs in a child process
of this virtualenv's Python with ``PYTHONPATH=<tree>`` and the tree as its
working directory, so ``schedcancel`` *and* ``benchmarks`` are the tree's own;
this module only drives them and reads back JSON. The trees need the
``benchmarks`` package as it is since ``benchmarks.one`` was added. With
``--same-benchmarks`` the old export gets the new tree's ``benchmarks``
package instead of its own: for a scenario the old tree does not have (the
bulk + interactive one), run by the old ``schedcancel``.

Each round runs every job on both trees, the order alternating by round (old
then new, then new then old...), so that machine noise and drift hit both
alike. The scenario jobs are what ``python -m benchmarks.one SCENARIO
CONTESTANT`` runs (``harness.run_one``, a fresh mock server), with round r as
the repetition on both trees: both meet the same latency draws. Jobs:

- ``SCENARIO:CONTESTANT`` (``--scenario``, repeatable; default: the ones the
  limiter decides, below): makespan, ratio, ratio_g, 429s, failed ids; for a
  bulk + interactive scenario also the interactive waits (p50, p90, p99, max)
  and the bulk job's ratio to its bound.
- ``limiter``: ``bench_limiter.speed`` (µs per acquire+release in process)
  and ``bench_limiter.memory`` (bytes per live key, bytes left after expiry).
- ``redis-cost``: ``bench_redis.cost_per_permit``: µs per acquire+release,
  in process and through ``RedisLimiter``, one caller and 64.
- ``background`` (only with ``--only background``): the parts of
  ``benchmarks.background`` (``--background-part``): a 20-id job, and 6,000 bulk
  ids beside interactive calls at the real limits on virtual time, in process
  and through Redis.
- ``overhead`` (only with ``--only overhead``): ``overhead.measure_overhead``:
  the client's req/s and CPU µs per request beside a raw aiohttp loop.
- ``redis-processes``: ``bench_redis.processes`` (P worker processes on one
  Redis key space) and ``one_process_in_memory``: makespan, ratios, 429s.

Prints one line per child run to stderr and a Markdown table to stdout:
median (min-max) over the rounds for each tree, the ratio new/old of the
medians, and the range of the per-round ratios (each round pairs an old and a
new run). ``--json PATH`` keeps every figure of every run; ``--table-from PATH``
prints the table of such a file again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve()
_ROOT = _HERE.parent.parent

#: The scenario jobs run when none is named: the 600-id makespan, the two-limit mixed load,
#: the counter-type server and the foreign load, exact and smooth, adaptive off where it matters.
DEFAULT_SCENARIOS = (
    "distinct:sc-exact",
    "distinct:sc-smooth",
    "mixed:sc-exact",
    "sliding-counter:sc-exact",
    "sliding-counter:sc-smooth",
    "sliding-counter:sc-exact-fixed",
    "foreign-20:sc-exact",
    "foreign-20:sc-smooth",
    "foreign-20:sc-exact-fixed",
)
KINDS = ("scenarios", "limiter", "redis-cost", "redis-processes", "overhead", "background")
#: What runs without ``--only``: the overhead and background jobs take minutes, asked for by name.
DEFAULT_KINDS = ("scenarios", "limiter", "redis-cost", "redis-processes")

#: (job figure key, what the table prints); a figure a job does not report is skipped.
_SCENARIO_FIGURES = (
    ("makespan_s", "makespan, s"),
    ("ratio", "ratio"),
    ("ratio_g", "ratio_g"),
    ("rate_limited", "429s"),
    ("failed_ids", "failed ids"),
    ("wait_p50_ms", "interactive wait p50, ms"),
    ("wait_p90_ms", "interactive wait p90, ms"),
    ("wait_p99_ms", "interactive wait p99, ms"),
    ("wait_max_ms", "interactive wait max, ms"),
    ("interactive_calls", "interactive calls"),
    ("bulk_makespan_s", "bulk makespan, s"),
    ("bulk_ratio", "bulk ratio to its bound"),
)
_LIMITER_FIGURES = (
    ("new keys, one at a time", "µs per acquire+release, new keys, one at a time"),
    ("new keys, 1,000 at a time", "µs per acquire+release, new keys, 1,000 at a time"),
    ("live keys, one at a time", "µs per acquire+release, live keys, one at a time"),
    ("live keys, 1,000 at a time", "µs per acquire+release, live keys, 1,000 at a time"),
    ("(asyncio alone: a future resolved next turn)", "µs, asyncio alone (a future, next turn)"),
    ("bytes per live key", "bytes per live key"),
    ("bytes held after expiry", "bytes held after expiry"),
)
_REDIS_COST_FIGURES = (
    ("in_process_sequential_us", "µs per acquire+release, in process, 1 caller"),
    ("in_process_concurrent_us", "µs per permit, in process, 64 callers"),
    ("redis_sequential_us", "µs per acquire+release, RedisLimiter, 1 caller"),
    ("redis_concurrent_us", "µs per permit, RedisLimiter, 64 callers"),
)
_OVERHEAD_FIGURES = (
    ("client_rps_median", "client req/s"),
    ("client_cpu_us_median", "client CPU µs per request"),
    ("raw_rps_median", "raw aiohttp req/s"),
    ("raw_cpu_us_median", "raw aiohttp CPU µs per request"),
    ("ratio", "client / raw, req/s"),
)
_BACKGROUND_FIGURES = (
    ("makespan_s", "makespan, s"),
    ("wait_p50_ms", "interactive wait p50, ms"),
    ("wait_p90_ms", "interactive wait p90, ms"),
    ("wait_p99_ms", "interactive wait p99, ms"),
    ("wait_max_ms", "interactive wait max, ms"),
    ("interactive_calls", "interactive calls"),
    ("bulk_makespan_s", "bulk makespan, s"),
    ("bulk_ratio", "bulk ratio to its bound"),
    ("rate_limited", "429s"),
)
_REDIS_RUN_FIGURES = (
    ("makespan_s", "makespan, s"),
    ("ratio", "ratio"),
    ("ratio_g", "ratio_g"),
    ("rate_limited", "429s"),
    ("peak_per_window", "peak / W"),
)


# -- the child: one job on one tree --------------------------------------------------


def _child(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job with the tree's own ``benchmarks`` and ``schedcancel`` (found on PYTHONPATH)."""
    kind = job["kind"]
    if kind == "scenario":
        from benchmarks.harness import BenchConfig, run_one, scenarios  # noqa: PLC0415

        config = BenchConfig()
        by_name = {scenario.name: scenario for scenario in scenarios(config)}
        result = asyncio.run(
            run_one(
                by_name[job["scenario"]], job["contestant"], config, repetition=job["repetition"]
            )
        )
        return _interactive_figures(result) | {
            "makespan_s": result.makespan,
            "ratio": result.ratio,
            "ratio_g": result.ratio_guard,
            "rate_limited": result.rate_limited,
            "failed_ids": result.failed_ids,
            "rtt_p50_ms": result.rtt_p50 * 1000,
            "rtt_p99_ms": result.rtt_p99 * 1000,
            "peak": result.peak,
            "held_ms": result.queue_delay * 1000,
        }
    if kind == "limiter":
        from benchmarks import bench_limiter  # noqa: PLC0415

        return bench_limiter.speed(job["keys"], job["ops"]) | bench_limiter.memory(job["keys"])
    if kind == "redis-cost":
        from benchmarks import bench_redis  # noqa: PLC0415

        return asyncio.run(bench_redis.cost_per_permit(job["redis"], job["ops"]))
    if kind == "redis-processes":
        from benchmarks import bench_redis  # noqa: PLC0415
        from benchmarks.harness import BenchConfig  # noqa: PLC0415

        config = BenchConfig()
        shared = asyncio.run(
            bench_redis.processes(job["redis"], config, count=job["processes"], ids=job["ids"])
        )
        alone = asyncio.run(bench_redis.one_process_in_memory(config, ids=job["ids"]))
        return {"redis": shared, "in_process": alone}
    if kind == "background":
        from benchmarks import background  # noqa: PLC0415

        return background.run(job["part"])
    if kind == "overhead":
        from benchmarks.overhead import measure_overhead  # noqa: PLC0415

        figures = asyncio.run(measure_overhead(rounds=job["rounds"], requests=job["requests"]))
        figures.pop("loops")
        return dict(figures)
    raise ValueError(f"unknown job kind {kind!r}")


def _interactive_figures(result: Any) -> dict[str, Any]:
    """A bulk + interactive run's waits and bulk figures; none for other scenarios."""
    if not getattr(result, "interactive_calls", 0):
        return {}
    from benchmarks.report import quantile  # noqa: PLC0415

    waits = result.interactive_waits
    return {
        "wait_p50_ms": quantile(waits, 0.5) * 1000,
        "wait_p90_ms": quantile(waits, 0.9) * 1000,
        "wait_p99_ms": quantile(waits, 0.99) * 1000,
        "wait_max_ms": quantile(waits, 1.0) * 1000,
        "interactive_calls": result.interactive_calls,
        "interactive_failed": result.interactive_failed,
        "bulk_makespan_s": result.bulk_makespan,
        "bulk_ratio": result.bulk_ratio,
    }


def _child_main(job_json: str, out: str) -> int:
    # Run by path, this file's directory heads sys.path: drop it, so that only the
    # tree on PYTHONPATH provides ``benchmarks``.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE.parent]
    job = json.loads(job_json)
    load = os.getloadavg()[0]
    figures = _child(job)
    Path(out).write_text(
        json.dumps({"figures": figures, "load": [load, os.getloadavg()[0]]}), encoding="utf-8"
    )
    return 0


# -- the parent: exports, rounds, table ----------------------------------------------


def export(rev: str, into: Path) -> Path:
    """``git archive REV`` of this repository, unpacked into ``into``; returns ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(  # noqa: S603 - git from PATH, the revision the user named
        ["git", "-C", str(_ROOT), "archive", rev],  # noqa: S607
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(  # noqa: S603 - tar from PATH, our own arguments
        ["tar", "-x", "-C", str(into)],  # noqa: S607
        input=archive,
        check=True,
    )
    return into


def _commit(tree: Path, rev: str | None) -> str:
    if rev is None:
        return str(tree)
    found = subprocess.run(  # noqa: S603 - git from PATH, the revision the user named
        ["git", "-C", str(_ROOT), "rev-parse", "--short", rev],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
    )
    return found.stdout.strip()


def run_child(tree: Path, job: dict[str, Any]) -> dict[str, Any]:
    """One job in a child process on ``tree``; returns its figures and the load around it."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory(prefix="ab-") as tmp:
        out = Path(tmp) / "out.json"
        subprocess.run(  # noqa: S603 - our own interpreter and this file
            [sys.executable, str(_HERE), "--child", json.dumps(job), "--out", str(out)],
            cwd=tree,
            env=env,
            check=True,
        )
        data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return data


def _jobs(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """(label, job) for every job asked for; scenario jobs get their repetition per round."""
    jobs: list[tuple[str, dict[str, Any]]] = []
    kinds = set(args.only or DEFAULT_KINDS)
    if "scenarios" in kinds:
        for name in args.scenario or DEFAULT_SCENARIOS:
            scenario, _, contestant = name.partition(":")
            jobs.append(
                (name, {"kind": "scenario", "scenario": scenario, "contestant": contestant})
            )
    if "limiter" in kinds:
        jobs.append(
            ("limiter", {"kind": "limiter", "keys": args.limiter_keys, "ops": args.limiter_ops})
        )
    if "redis-cost" in kinds:
        jobs.append(
            ("redis-cost", {"kind": "redis-cost", "redis": args.redis, "ops": args.redis_ops})
        )
    if "redis-processes" in kinds:
        job = {
            "kind": "redis-processes",
            "redis": args.redis,
            "processes": args.processes,
            "ids": args.ids,
        }
        jobs.append(("redis-processes", job))
    if "overhead" in kinds:
        job = {"kind": "overhead", "rounds": args.overhead_rounds, "requests": 1500}
        jobs.append(("overhead", job))
    if "background" in kinds:
        parts = args.background_part or ("small", "real", "redis", "models")
        jobs += [(f"background-{p}", {"kind": "background", "part": p}) for p in parts]
    return jobs


def _flatten(label: str, figures: dict[str, Any]) -> dict[tuple[str, str], float]:
    """The figures a job reports, keyed (row group, figure) as the table prints them."""
    rows: dict[tuple[str, str], float] = {}

    def take(group: str, source: dict[str, Any], wanted: Sequence[tuple[str, str]]) -> None:
        for key, name in wanted:
            if source.get(key) is not None:
                rows[group, name] = source[key]

    if label == "limiter":
        take("in-process limiter (bench_limiter)", figures, _LIMITER_FIGURES)
    elif label == "redis-cost":
        take("cost per permit (bench_redis)", figures, _REDIS_COST_FIGURES)
    elif label == "overhead":
        take(
            "the client against a raw aiohttp loop (benchmarks.overhead)",
            figures,
            _OVERHEAD_FIGURES,
        )
    elif label == "redis-processes":
        name = f"RedisLimiter, {figures['redis']['processes']} processes (bench_redis)"
        take(name, figures["redis"], _REDIS_RUN_FIGURES)
        take("RateLimiter, 1 process (bench_redis)", figures["in_process"], _REDIS_RUN_FIGURES)
    elif label == "background-models":
        shown = [(key, key) for key in figures if key != "part"]
        take(f"{label} (benchmarks.background)", figures, shown)
    elif label.startswith("background-"):
        take(f"{label} (benchmarks.background)", figures, _BACKGROUND_FIGURES)
    else:
        take(label, figures, _SCENARIO_FIGURES)
    return rows


def _number(value: float) -> str:
    if isinstance(value, int):  # a count (JSON keeps ints as ints)
        return str(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) < 2 else f"{value:.2f}"


def _spread(values: Sequence[float]) -> str:
    median = statistics.median(values)
    if all(isinstance(v, int) for v in values) and median == int(median):
        median = int(median)  # a count stays a count
    if len(values) == 1 or min(values) == max(values):
        return _number(median)
    return f"{_number(median)} ({_number(min(values))}-{_number(max(values))})"


def _ratio(new: float, old: float) -> str:
    if old == 0:
        return "-" if new == 0 else "new only"
    return f"{new / old:.3f}"


def table(runs: Sequence[dict[str, Any]]) -> str:
    """Markdown: each figure's old and new median (min-max), new/old, and per-round ratios."""
    values: dict[tuple[str, str], dict[str, list[float]]] = {}
    paired: dict[tuple[str, str], dict[int, dict[str, float]]] = {}
    for run in runs:
        for key, value in _flatten(run["label"], run["figures"]).items():
            values.setdefault(key, {"old": [], "new": []})[run["side"]].append(value)
            paired.setdefault(key, {}).setdefault(run["round"], {})[run["side"]] = value
    lines = [
        "| job | figure | old | new | new/old | per round |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for (group, name), sides in values.items():
        old, new = sides["old"], sides["new"]
        if not old or not new:
            continue
        rounds = [
            pair["new"] / pair["old"]
            for pair in paired[group, name].values()
            if "old" in pair and "new" in pair and pair["old"] != 0
        ]
        per_round = f"{min(rounds):.3f}-{max(rounds):.3f}" if rounds else "-"
        lines.append(
            f"| {group} | {name} | {_spread(old)} | {_spread(new)} "
            f"| {_ratio(statistics.median(new), statistics.median(old))} | {per_round} |"
        )
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _trees(args: argparse.Namespace) -> Iterator[tuple[Path, Path]]:
    if args.old_tree is not None and args.new_tree is not None:
        yield args.old_tree.resolve(), args.new_tree.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="schedcancel-ab-") as tmp:
        old, new = export(args.old, Path(tmp) / "old"), export(args.new, Path(tmp) / "new")
        if args.same_benchmarks:
            shutil.rmtree(old / "benchmarks")
            shutil.copytree(new / "benchmarks", old / "benchmarks")
        yield old, new


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ab",
        description=(__doc__ or "").split("\n\n", 1)[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--old", help="the commit before (exported with git archive)")
    parser.add_argument("--new", help="the commit after (exported with git archive)")
    parser.add_argument("--old-tree", type=Path, help="an exported tree instead of --old")
    parser.add_argument("--new-tree", type=Path, help="an exported tree instead of --new")
    parser.add_argument(
        "--same-benchmarks",
        action="store_true",
        help="with --old and --new: run the new tree's benchmarks package on both trees",
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds (each runs both trees)")
    parser.add_argument("--only", action="append", choices=KINDS, help="these kinds of job only")
    parser.add_argument(
        "--scenario",
        action="append",
        metavar="SCENARIO:CONTESTANT",
        help=f"a scenario job (repeatable; default: {', '.join(DEFAULT_SCENARIOS)})",
    )
    parser.add_argument("--limiter-keys", type=int, default=100_000, help="bench_limiter --keys")
    parser.add_argument("--limiter-ops", type=int, default=100_000, help="bench_limiter --ops")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the Redis URL")
    parser.add_argument("--redis-ops", type=int, default=2000, help="bench_redis --ops")
    parser.add_argument("--processes", type=int, default=4, help="bench_redis --processes")
    parser.add_argument("--ids", type=int, default=600, help="bench_redis --ids")
    parser.add_argument(
        "--overhead-rounds", type=int, default=3, help="benchmarks.overhead --rounds, per job"
    )
    parser.add_argument(
        "--background-part",
        action="append",
        choices=("small", "real", "redis", "models"),
        help="with --only background: these parts of benchmarks.background (default all)",
    )
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    parser.add_argument(
        "--table-from", type=Path, help="print the table of a --json file; run nothing"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the rounds, print the table."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.child is not None:
        return _child_main(args.child, args.out)
    if args.table_from is not None:
        print(table(json.loads(args.table_from.read_text(encoding="utf-8"))["runs"]))
        return 0
    if (args.old is None) == (args.old_tree is None) or (args.new is None) == (
        args.new_tree is None
    ):
        parser.error("give --old or --old-tree, and --new or --new-tree")
    if args.same_benchmarks and args.old is None:
        parser.error("--same-benchmarks works on exports: give --old and --new")
    for name in args.scenario or ():
        scenario, _, contestant = name.partition(":")
        if not scenario or not contestant:
            parser.error(f"--scenario takes SCENARIO:CONTESTANT, got {name!r}")
    jobs = _jobs(args)
    started = datetime.datetime.now(datetime.UTC)
    load_start = os.getloadavg()
    runs: list[dict[str, Any]] = []
    with _trees(args) as (old_tree, new_tree):
        sides = {"old": old_tree, "new": new_tree}
        for round_ in range(args.repeat):
            order = ("old", "new") if round_ % 2 == 0 else ("new", "old")
            for label, job in jobs:
                for side in order:
                    clock = time.perf_counter()
                    data = run_child(sides[side], job | {"repetition": round_})
                    run = {
                        "label": label,
                        "side": side,
                        "round": round_,
                        "seconds": round(time.perf_counter() - clock, 1),
                        **data,
                    }
                    runs.append(run)
                    shown = _flatten(label, data["figures"]).items()
                    summary = ", ".join(f"{name} {_number(v)}" for (_, name), v in shown)
                    print(
                        f"round {round_} {side} {label}: {summary} "
                        f"(load {data['load'][0]:.2f}-{data['load'][1]:.2f})",
                        file=sys.stderr,
                        flush=True,
                    )
    load_end = os.getloadavg()
    meta = {
        "old": _commit(old_tree, args.old)
        + (" (with the new tree's benchmarks)" if args.same_benchmarks else ""),
        "new": _commit(new_tree, args.new),
        "started": started.isoformat(timespec="seconds"),
        "ended": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "load_start": load_start,
        "load_end": load_end,
        "command": " ".join([".venv/bin/python -m benchmarks.ab", *(argv or sys.argv[1:])]),
        "python": sys.version.split()[0],
        "nproc": os.cpu_count(),
    }
    text = (
        f"old `{meta['old']}`, new `{meta['new']}`, {args.repeat} rounds, "
        f"{meta['started']} to {meta['ended']}, load average {load_start[0]:.2f} at the start "
        f"and {load_end[0]:.2f} at the end\n\n" + table(runs)
    )
    print(text)
    if args.markdown is not None:
        args.markdown.write_text(text, encoding="utf-8")
    if args.json is not None:
        args.json.write_text(json.dumps({"meta": meta, "runs": runs}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
