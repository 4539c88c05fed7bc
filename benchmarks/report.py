"""Judge a report against the goals (benchmarks/README.md), and print it as Markdown tables."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

__all__ = ["goals", "markdown", "quantile"]

Run = Mapping[str, Any]


def quantile(values: Sequence[float], q: float) -> float:
    """The nearest-rank quantile: the value at index ``floor(q * n)`` of the sorted values.

    ``q = 1`` is the maximum, and so is ``q = 0.99`` below 100 values. NaN when empty.
    """
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.floor(q * len(ordered)))]


def _find(report: Mapping[str, Any], scenario: str, contestant: str) -> Run | None:
    runs: list[Run] = report["runs"]
    for run in runs:
        if run["scenario"] == scenario and run["contestant"] == contestant:
            return run
    return None


def _goal(goal: str, target: str, measured: str, met: bool) -> dict[str, Any]:
    return {"goal": goal, "target": target, "measured": measured, "met": met}


def _ratio_goal(name: str, run: Run, limit: float) -> dict[str, Any]:
    ratio_g = run["ratio_guard"]
    met = run["rate_limited"] == 0 and run["failed_ids"] == 0 and ratio_g <= limit
    return _goal(
        name,
        f"ratio_g <= {limit:g}, 0 x 429",
        f"ratio_g {ratio_g:.3f} (ratio {run['ratio']:.3f}), {run['rate_limited']} x 429",
        met,
    )


def _makespan_goals(report: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    distinct = _find(report, "distinct", "sc-exact")
    if distinct is not None:
        yield _ratio_goal(f"makespan, {distinct['calls']} distinct ids", distinct, 1.01)
    mixed = _find(report, "mixed", "sc-exact")
    if mixed is not None:
        yield _ratio_goal("mixed ids, two-limit bound", mixed, 1.02)
    for run in report["runs"]:
        name = run["scenario"]
        if run["contestant"] == "sc-exact" and (
            name.startswith("fixed-") or name == "token-bucket"
        ):
            yield _ratio_goal(f"server type {name}", run, 1.01)


def _small_batch_goal(report: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    run = _find(report, "small-batch", "sc-exact")
    if run is None:
        return
    config = report["config"]
    limit = 2 * config["latency"][1] + 0.005
    yield _goal(
        "small batch of 50: what the limiter holds back",
        "last of 50 sent <= 5 ms after they were handed over, 0 x 429",
        f"{run['queue_delay'] * 1e3:.1f} ms, {run['rate_limited']} x 429",
        run["queue_delay"] <= 0.005 and run["rate_limited"] == 0,
    )
    floor = _find(report, "small-batch", "retry")
    floor_text = (
        "" if floor is None else f"; with no limiter at all: {floor['makespan'] * 1e3:.0f} ms"
    )
    yield _goal(
        "small batch of 50: first send to last response",
        f"<= one RTT + 5 ms = {limit * 1e3:.0f} ms",
        f"{run['makespan'] * 1e3:.0f} ms (median of {len(run['makespans'])}){floor_text}",
        run["makespan"] <= limit,
    )


def _counter_goals(report: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    smooth = _find(report, "sliding-counter", "sc-smooth")
    if smooth is not None:
        yield _goal(
            "counter server, smooth",
            "0 x 429",
            f"{smooth['rate_limited']} x 429, ratio_g {smooth['ratio_guard']:.3f}",
            smooth["rate_limited"] == 0,
        )
    adaptive = _find(report, "sliding-counter", "sc-exact")
    if adaptive is not None:
        yield _goal(
            "counter server, exact + adaptive",
            "one episode of 429s at most, then none",
            f"{adaptive['rate_limited']} x 429 in {adaptive['episodes_429']} episode(s), "
            f"last at {_seconds(adaptive['last_429'])}",
            adaptive["episodes_429"] <= 1,
        )


def _foreign_goal(report: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    run = _find(report, "foreign-20", "sc-exact")
    if run is None:
        return
    share = run["rate_limited_share"]
    yield _goal(
        "20 % foreign load",
        "every id succeeds; 429s <= 5 % of requests; ratio_g <= 1.1 (remaining budget)",
        f"{run['failed_ids']} ids failed; {run['rate_limited']} x 429 = {share:.1%} of "
        f"{run['sends']}; ratio_g {run['ratio_guard']:.3f}",
        run["failed_ids"] == 0 and share <= 0.05 and run["ratio_guard"] <= 1.1,
    )


def _interactive_goals(report: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Issue 13: p99 wait <= W/N + one round trip; bulk <= 1.05 x its bound; no 429."""
    config = report["config"]
    limit = config["window"] / config["total"] + 2 * config["latency"][1]
    for run in report["runs"]:
        if run["contestant"] != "sc-exact" or not run["scenario"].startswith("bulk-interactive"):
            continue
        waits = run["interactive_waits"]
        p99 = quantile(waits, 0.99)
        yield _goal(
            f"interactive calls beside {run['calls']} bulk ids: wait",
            f"p99 <= W/N + one RTT = {limit * 1e3:.0f} ms, none failed",
            f"p99 {p99 * 1e3:.0f} ms (p50 {quantile(waits, 0.5) * 1e3:.0f} ms) over "
            f"{len(waits)} calls; {run['interactive_failed']} failed",
            p99 <= limit and run["interactive_failed"] == 0,
        )
        ratios = run["bulk_ratios"]
        spread = (
            f"{min(ratios):.3f}-{max(ratios):.3f} x over {len(ratios)} runs"
            if len(ratios) > 1
            else f"{max(ratios):.3f} x"
        )
        yield _goal(
            f"{run['calls']} bulk ids beside interactive calls: makespan",
            "<= 1.05 x the bound counting every request, 0 x 429",
            f"{spread}, {run['rate_limited']} x 429",
            max(ratios) <= 1.05 and run["rate_limited"] == 0,
        )


def _overhead_goal(report: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    overhead = report.get("overhead")
    if not overhead:
        return
    yield _goal(
        "overhead: client vs raw aiohttp POST loop",
        ">= 0.9 x raw req/s",
        f"{overhead['ratio']:.2f} x ({overhead['client_rps_median']:.0f} vs "
        f"{overhead['raw_rps_median']:.0f} req/s, medians); CPU per request "
        f"{overhead['cpu_ratio']:.2f} x raw",
        overhead["ratio"] >= 0.9,
    )


def goals(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every goal (benchmarks/README.md) that the report has figures for, met or not.

    Args:
        report: the harness's report (``config``, ``runs``, optional ``overhead``).

    Returns:
        One entry per goal: ``goal``, ``target``, ``measured``, ``met``.
    """
    return [
        *_makespan_goals(report),
        *_small_batch_goal(report),
        *_counter_goals(report),
        *_foreign_goal(report),
        *_interactive_goals(report),
        *_overhead_goal(report),
    ]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _makespan(run: Run, kind: str) -> str:
    if kind == "latency":
        spread = run["makespans"]
        low, high = min(spread), max(spread)
        return (
            f"{run['makespan'] * 1e3:.0f} ms ({low * 1e3:.0f}-{high * 1e3:.0f}); "
            f"held {run['queue_delay'] * 1e3:.1f} ms"
        )
    return f"{run['makespan']:.2f} s"


def markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown: where it ran, the results table, the goals table.

    Args:
        report: the harness's report.

    Returns:
        Markdown text.
    """
    meta, config = report["meta"], report["config"]
    lines = [
        f"Measured {meta['date']} on {meta['nproc']} x {meta['cpu']}, Python {meta['python']}, "
        f"aiohttp {meta['aiohttp']}; load average {meta['load_average'][0]} before, "
        f"{meta.get('load_average_after', ['?'])[0]} after. Command: `{meta['command']}`.",
        "",
        f"W = {config['window']:g} s, N = {config['total']}, K = {config['per_schedule']}, "
        f"schedcancel guard {config['guard']:g} s, one-way latency "
        f"{config['latency'][0] * 1e3:g}-{config['latency'][1] * 1e3:g} ms each way.",
    ]
    kinds = {s["name"]: s for s in report["scenarios"]}
    rows = [
        f"| {kinds[run['scenario']]['title']} | {run['label']} "
        f"| {_makespan(run, kinds[run['scenario']]['kind'])} "
        f"| {run['lower_bound']:g} s | {_ratio(run['ratio'])} | {_ratio(run['ratio_guard'])} "
        f"| {run['rate_limited']} | {run['failed_ids']} | {run['peak']} |"
        for run in report["runs"]
        if kinds[run["scenario"]]["kind"] != "interactive"
    ]
    if rows:
        lines += [
            "",
            "| scenario | contestant | makespan | bound L | ratio | ratio_g | 429s | failed ids "
            "| peak / W |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|",
            *rows,
        ]
    lines += _interactive_table(report)
    lines += ["", "| goal | target | measured | met |", "|---|---|---|---|"]
    if meta.get("quick"):
        lines[-2:-2] = [
            "The quick set: fewer calls (M = 120 where the full set has 600; 240 bulk ids beside",
            "interactive calls where it has 480 and 1,200), one fixed-window phase, fewer peers,",
            "fewer runs. The goals are written for the full set; here they are indicative.",
            "",
        ]
    lines += [
        f"| {g['goal']} | {g['target']} | {g['measured']} | {'yes' if g['met'] else '**no**'} |"
        for g in report["goals"]
    ]
    overhead = report.get("overhead")
    if overhead:
        lines += [
            "",
            f"Overhead ({overhead['server']}; {overhead['concurrency']} workers, "
            f"{overhead['rounds']} interleaved rounds of {overhead['requests_per_segment']} "
            "requests each):",
            "",
            "| loop | req/s median | req/s min-max | CPU per request (this process) |",
            "|---|--:|--:|--:|",
        ]
        lines += [_overhead_row(name, f) for name, f in overhead["loops"].items()]
    return "\n".join(lines) + "\n"


def _ms(value: float) -> str:
    return f"{value * 1e3:.0f} ms" if value < 1 else f"{value:.2f} s"


def _interactive_table(report: Mapping[str, Any]) -> list[str]:
    """Bulk + interactive runs: waits pooled over the repetitions, the median run's bulk job."""
    kinds = {s["name"]: s for s in report["scenarios"]}
    runs = [r for r in report["runs"] if kinds[r["scenario"]]["kind"] == "interactive"]
    if not runs:
        return []
    lines = [
        "",
        "| scenario | contestant | wait p50 | p90 | p99 | max | calls (failed) "
        "| bulk makespan | bound | ratio (all runs) | 429s (worst run) | failed ids |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for run in runs:
        waits = run["interactive_waits"]
        quantiles = " | ".join(_ms(quantile(waits, q)) for q in (0.5, 0.9, 0.99, 1.0))
        ratios = run["bulk_ratios"]
        spread = f" ({min(ratios):.3f}-{max(ratios):.3f})" if len(ratios) > 1 else ""
        lines.append(
            f"| {kinds[run['scenario']]['title']} | {run['label']} | {quantiles} "
            f"| {run['interactive_calls']} ({run['interactive_failed']}) "
            f"| {run['bulk_makespan']:.2f} s | {run['bulk_bound']:.2f} s "
            f"| {_ratio(run['bulk_ratio'])}{spread} | {run['rate_limited']} "
            f"| {run['failed_ids']} |"
        )
    return lines


_LOOP_LABELS = {"raw": "raw aiohttp POST loop", "client": "ScheduleClient.cancel"}


def _overhead_row(name: str, loop: Mapping[str, Any]) -> str:
    low, high = loop["rps_spread"]
    return (
        f"| {_LOOP_LABELS.get(name, name)} | {loop['rps_median']:.0f} | {low:.0f}-{high:.0f} "
        f"| {loop['cpu_us_median']:.0f} µs |"
    )
