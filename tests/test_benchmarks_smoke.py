"""Smoke tests of the benchmark harness (``python -m benchmarks``), so it cannot rot.

The full benchmarks run minutes of real time and stay out of the test run;
this runs one tiny scenario through the same code: mock server, one peer and
schedcancel, figures, JSON report, Markdown and chart.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks import ab, one
from benchmarks.chart import draw
from benchmarks.harness import (
    BenchConfig,
    Scenario,
    bound_windows,
    machine_info,
    make_report,
    run_suite,
)
from benchmarks.report import markdown


def test_lower_bound_windows_follow_the_spec() -> None:
    """The bound spans floor((M-1)/N) windows for distinct ids, else the two-limit maximum."""
    distinct = [f"id-{i}" for i in range(600)]
    assert bound_windows(distinct, total=60, per_schedule=10) == 9
    assert bound_windows(distinct[:60], total=60, per_schedule=10) == 0
    assert bound_windows(distinct[:61], total=60, per_schedule=10) == 1
    mixed = ["hot"] * 30 + distinct[:170]
    assert bound_windows(mixed, total=60, per_schedule=10) == 3  # max(ceil(200/60), 30/10) - 1
    assert bound_windows(["hot"] * 31, total=60, per_schedule=10) == 3
    assert bound_windows(distinct, total=48, per_schedule=10) == 12  # 20 % foreign load
    assert bound_windows([], total=60, per_schedule=10) == 0


async def test_tiny_scenario_reports_every_figure_and_schedcancel_meets_no_429(
    tmp_path: Path,
) -> None:
    """Twenty ids at N = 8 per 0.5 s: the naive peer overruns the server, schedcancel does not."""
    config = BenchConfig(window=0.5, total=8, per_schedule=2, guard=0.02, latency=(0.001, 0.003))
    scenario = Scenario(
        name="tiny",
        title="20 distinct ids",
        calls=tuple(f"T-{i}" for i in range(20)),
        contestants=("naive", "sc-exact"),
        trace=True,
    )

    results = await run_suite([scenario], config)
    report = make_report([scenario], results, config, meta=machine_info() | {"command": "pytest"})

    report = json.loads(json.dumps(report))  # JSON-ready, and read back as the chart reads it
    runs = {run["contestant"]: run for run in report["runs"]}
    assert set(runs) == {"naive", "sc-exact"}
    mine = runs["sc-exact"]
    assert mine["rate_limited"] == 0
    assert mine["failed_ids"] == 0
    assert mine["sends"] == 20
    assert mine["peak"] <= 8
    assert (mine["windows"], mine["lower_bound"]) == (2, 1.0)
    # The server admitted every arrival within its limit, so the last one came >= L after the first.
    assert mine["ratio"] >= 1.0
    assert mine["ratio_guard"] is not None
    assert len(mine["trace"]["arrivals"]) == 20
    # AsyncLimiter(8, 0.5) admits 8 at once and then one every 1/16 s: 9 arrive within 0.5 s.
    assert runs["naive"]["rate_limited"] > 0
    assert runs["naive"]["peak"] > 8
    assert report["goals"] == []  # no scenario of the real set ran
    table = markdown(report)
    assert "| 20 distinct ids | schedcancel exact |" in table
    png = draw(report, tmp_path / "img" / "arrivals.png", scenario="tiny")
    assert png.read_bytes().startswith(b"\x89PNG")


def test_one_contestant_on_one_scenario_prints_its_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``python -m benchmarks.one`` runs a scenario for one contestant (here the small batch)."""
    assert one.main(["small-batch", "sc-exact"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("small-batch sc-exact #0: makespan ")
    assert line.endswith(" 0 x 429")


def _ab_tiny(tmp_path: Path, *extra: str) -> tuple[str, dict[str, object]]:
    """``python -m benchmarks.ab`` with this tree as both sides, one round, tiny sizes."""
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "ab.json"
    argv = ["--old-tree", str(root), "--new-tree", str(root), "--repeat", "1", "--json", str(out)]
    assert ab.main([*argv, *extra]) == 0
    return (tmp_path / "ab.md").read_text(encoding="utf-8"), json.loads(out.read_text())


def test_ab_runs_both_trees_in_child_processes_and_tables_the_ratios(tmp_path: Path) -> None:
    """The A/B tool: a scenario job and the limiter's micro-benchmarks, old and new side by side."""
    table, data = _ab_tiny(
        tmp_path,
        *("--scenario", "small-batch:sc-exact", "--only", "scenarios", "--only", "limiter"),
        *("--limiter-keys", "200", "--limiter-ops", "200", "--markdown", str(tmp_path / "ab.md")),
    )
    runs = data["runs"]
    assert isinstance(runs, list)
    assert [(r["label"], r["side"]) for r in runs] == [
        ("small-batch:sc-exact", "old"),
        ("small-batch:sc-exact", "new"),
        ("limiter", "old"),
        ("limiter", "new"),
    ]
    assert all(r["figures"]["rate_limited"] == 0 for r in runs[:2])
    assert "| small-batch:sc-exact | 429s | 0 | 0 | - | - |" in table
    assert "| in-process limiter (bench_limiter) | bytes per live key |" in table
    assert "| in-process limiter (bench_limiter) | µs per acquire+release, live keys, one" in table


def test_ab_table_pairs_rounds_and_takes_medians() -> None:
    """Medians per side, new/old of the medians, and the range of the per-round ratios."""
    runs = [
        {"label": "distinct:sc-exact", "side": side, "round": r, "figures": {"makespan_s": v}}
        for r, (old, new) in enumerate([(19.0, 19.2), (18.8, 19.4), (19.1, 19.1)])
        for side, v in (("old", old), ("new", new))
    ]
    line = ab.table(runs).splitlines()[2]
    assert line == (
        "| distinct:sc-exact | makespan, s | 19.0 (18.8-19.1) | 19.2 (19.1-19.4) "
        "| 1.011 | 1.000-1.032 |"
    )


@pytest.mark.redis
def test_ab_redis_cost_job(tmp_path: Path) -> None:
    """The Redis cost job runs against the local Redis (127.0.0.1:6379)."""
    table, _ = _ab_tiny(
        tmp_path,
        *("--only", "redis-cost", "--redis-ops", "20", "--markdown", str(tmp_path / "ab.md")),
    )
    assert (
        "| cost per permit (bench_redis) | µs per acquire+release, RedisLimiter, 1 caller |"
        in table
    )
