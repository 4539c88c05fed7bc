"""The picture: requests the server saw per sliding window, and cancels done over time.

Drawn from the ``distinct`` scenario's traces (sliding-log server) with
matplotlib's Agg backend, so it needs no display::

    .venv/bin/python -m benchmarks.chart benchmarks/results/latest.json docs/img/arrivals.png
"""

from __future__ import annotations

import argparse
import bisect
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # before pyplot: render to files, never to a display

import matplotlib.pyplot as plt  # the backend must be chosen first

__all__ = ["draw", "trailing_counts"]

# Colour-blind-safe (Okabe-Ito) colours per contestant; schedcancel in blue.
_STYLE: dict[str, tuple[str, str]] = {
    "sc-exact": ("#0072B2", "-"),
    "sc-smooth": ("#56B4E9", "-"),
    "naive": ("#D55E00", "-"),
    "naive-retry": ("#E69F00", "--"),
    "pacing": ("#009E73", "--"),
    "retry": ("#CC79A7", ":"),
}
# The top panel: schedcancel against the naive design.
_TOP = ("naive", "sc-exact")
# Points; the figure is shown at about 0.75 of its size, so 11 pt reads as about 12 px.
_LEGEND_SIZE = 11


def trailing_counts(times: Sequence[float], window: float, grid: Sequence[float]) -> list[int]:
    """How many of ``times`` fall in ``(t - window, t]`` for each ``t`` of ``grid``.

    Args:
        times: arrival times, sorted.
        window: the window in seconds.
        grid: the instants to count at.

    Returns:
        One count per grid instant.
    """
    return [bisect.bisect_right(times, t) - bisect.bisect_right(times, t - window) for t in grid]


def draw(report: Mapping[str, Any], path: Path, *, scenario: str = "distinct") -> Path:
    """Draw the chart of one traced scenario into a PNG file.

    Args:
        report: the harness's JSON report (``config`` and ``runs``).
        path: where to write the PNG (parents are created).
        scenario: the traced scenario to draw.

    Returns:
        ``path``.

    Raises:
        ValueError: the report has no trace of ``scenario``.
    """
    config = report["config"]
    window, limit = float(config["window"]), int(config["total"])
    runs = {
        run["contestant"]: run
        for run in report["runs"]
        if run["scenario"] == scenario and run.get("trace")
    }
    if not runs:
        raise ValueError(f"no trace of scenario {scenario!r} in the report")
    end = 0.3 * window + max(
        max(t for t, _ in [*run["trace"]["arrivals"], *run["trace"]["completions"]])
        for run in runs.values()
    )
    steps = 2000
    grid = [end * i / steps for i in range(steps + 1)]
    # Drawn for the documentation's content column (about 800 px): 8 x 6.5 in at 110 dpi, text
    # large enough to read there without opening the image.
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    for key in _TOP:
        run = runs.get(key)
        if run is None:
            continue
        colour, _ = _STYLE[key]
        times = sorted(t for t, _ in run["trace"]["arrivals"])
        top.plot(
            grid,
            trailing_counts(times, window, grid),
            color=colour,
            linewidth=1.6,
            label=f"{run['label']}: {run['rate_limited']} x 429, {run['failed_ids']} ids failed",
        )
        limited = [t for t, flag in run["trace"]["arrivals"] if flag]
        if limited:
            top.plot(
                limited,
                [2.0] * len(limited),
                "|",
                color=colour,
                markersize=12,
                label=f"{run['label']}: requests answered 429",
            )
    top.axhline(
        limit, color="black", linestyle="--", linewidth=1.2, label=f"server limit N = {limit}"
    )
    top.set_ylabel(f"requests the server saw\nin the last W = {window:g} s")
    top.set_ylim(0, max(limit * 2.2, 10))
    top.set_title(
        f"{runs[next(iter(runs))]['calls']} cancels, distinct ids, sliding-log server "
        f"(N = {limit} per {window:g} s, round trip 5-20 ms)"
    )
    top.legend(loc="upper right", fontsize=_LEGEND_SIZE, framealpha=0.95)
    top.grid(alpha=0.3)

    bound = next(iter(runs.values()))["lower_bound"]
    for key, run in runs.items():
        colour, style = _STYLE.get(key, ("grey", "-"))
        done = [t for t, _ in run["trace"]["completions"]]
        bottom.step(
            [0.0, *done],
            range(len(done) + 1),
            where="post",
            color=colour,
            linestyle=style,
            linewidth=1.5,
            label=f"{run['label']} ({run['makespan']:.1f} s{_failed(run)})",
        )
    bottom.axvline(
        bound, color="black", linestyle="--", linewidth=1.0, label=f"lower bound {bound:g} s"
    )
    bottom.set_xlabel("seconds since the first request")
    bottom.set_ylabel("cancels done (HTTP 200)")
    bottom.legend(loc="upper left", fontsize=_LEGEND_SIZE - 1, framealpha=0.95)
    bottom.grid(alpha=0.3)
    bottom.set_xlim(0, end)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _failed(run: Mapping[str, Any]) -> str:
    return f", {run['failed_ids']} failed" if run["failed_ids"] else ""


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.chart REPORT.json OUT.png``: redraw from saved results."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chart", description=__doc__)
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    report = json.loads(args.report.read_text(encoding="utf-8"))
    print(draw(report, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
