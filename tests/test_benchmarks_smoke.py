"""Smoke tests of the benchmark harness (``python -m benchmarks``), so it cannot rot.

The full benchmarks run minutes of real time and stay out of the test run;
this runs tiny scenarios through the same code: mock server, peers and
schedcancel, figures, JSON report, Markdown and chart; and the bulk +
interactive scenario of issue 13 with every one of its contestants.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, cast

import pytest
from benchmarks import ab, background, floor, headers, instructions, one, redis_stall
from benchmarks.chart import draw
from benchmarks.harness import (
    BenchConfig,
    Scenario,
    bound_windows,
    interactive_scenario,
    machine_info,
    make_report,
    operations_scenario,
    run_suite,
)
from benchmarks.interactive import MIXED_CONTESTANTS
from benchmarks.mixed import OPERATION_CONTESTANTS, mixed_calls, split_calls
from benchmarks.report import markdown, quantile
from schedcancel._mock.limits import make_model

from support.redis import redis_answers


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


async def test_bulk_and_interactive_calls_tiny_every_contestant() -> None:
    """24 bulk ids at N = 8 per 0.5 s with calls every W/2: waits, bulk bound, goals, table."""
    config = BenchConfig(window=0.5, total=8, per_schedule=2, guard=0.02, latency=(0.001, 0.003))
    scenario = interactive_scenario(config, 24, contestants=tuple(MIXED_CONTESTANTS), repeat=1)
    assert (scenario.name, scenario.interactive_gap) == ("bulk-interactive-24", 0.25)

    results = await run_suite([scenario], config)
    report = make_report([scenario], results, config, meta=machine_info() | {"command": "pytest"})

    report = json.loads(json.dumps(report))
    runs = {run["contestant"]: run for run in report["runs"]}
    assert set(runs) == set(MIXED_CONTESTANTS)
    for run in runs.values():
        assert run["interactive_calls"] > 0
        assert len(run["interactive_waits"]) + run["interactive_failed"] == run["interactive_calls"]
        assert run["calls"] == 24  # the bulk job; interactive calls come on top
        # Every request counts: ceil((24 + I) / 8) - 1 cycles of at least W + guard.
        cycles = -(-(24 + run["interactive_calls"]) // 8) - 1
        assert run["bulk_bound"] >= cycles * 0.52
        assert run["bulk_ratio"] == run["bulk_makespan"] / run["bulk_bound"]
    mine = runs["sc-exact"]
    assert (mine["rate_limited"], mine["failed_ids"], mine["interactive_failed"]) == (0, 0, 0)
    assert mine["peak"] <= 8
    # With the reserve a call finds a place within about one interval, far below W.
    assert quantile(mine["interactive_waits"], 1.0) < config.window
    assert runs["sc-exact-reserve-0"]["rate_limited"] == 0
    goals = [g["goal"] for g in report["goals"]]
    assert goals == [
        "interactive calls beside 24 bulk ids: wait",
        "24 bulk ids beside interactive calls: makespan",
    ]
    table = markdown(report)
    assert "| 24 bulk ids + a call every W/2 at random | schedcancel, interactive_reserve=0 |" in (
        table
    )
    figures = ab._interactive_figures(results[0])
    assert figures["interactive_calls"] == mine["interactive_calls"]
    assert figures["wait_max_ms"] == max(mine["interactive_waits"]) * 1000


async def test_mixed_operations_tiny_every_contestant() -> None:
    """Issue 12's workload, tiny (4 ids x 5 operations + 4 starts at N = 8 per 0.5 s):
    schedcancel meets no 429, in process and on Redis; the naive peer overruns."""
    config = BenchConfig(window=0.5, total=8, per_schedule=5, guard=0.02, latency=(0.001, 0.003))
    contestants = tuple(OPERATION_CONTESTANTS)
    if not redis_answers():  # the suite runs with Redis; without, schedcancel in process only
        contestants = tuple(c for c in contestants if c != "sc-redis")
    scenario = operations_scenario(config, ids=4, starts=4, contestants=contestants, repeat=1)
    assert scenario.calls == mixed_calls(4, 4)
    assert split_calls(scenario.calls) == (["OP-00000", "OP-00001", "OP-00002", "OP-00003"], 4)

    results = await run_suite([scenario], config)
    report = json.loads(
        json.dumps(
            make_report([scenario], results, config, meta=machine_info() | {"command": "pytest"})
        )
    )
    runs = {run["contestant"]: run for run in report["runs"]}
    assert set(runs) == set(contestants)
    for key in ("sc-exact", "sc-redis"):
        if key in runs:
            mine = runs[key]
            assert (mine["rate_limited"], mine["failed_calls"], mine["sends"]) == (0, 0, 24)
            assert mine["peak"] == 8
            assert mine["peak_per_id"] <= 5
            # 24 calls at 8 per window: ceil(24 / 8) - 1 = 2 windows at least.
            assert (mine["windows"], mine["lower_bound"]) == (2, 1.0)
            assert mine["ratio"] >= 1.0
    naive = runs["naive"]
    assert naive["rate_limited"] > 0
    assert naive["failed_calls"] > 0
    assert runs["naive-retry"]["failed_calls"] == 0
    assert "| 4 ids x 5 operations + 4 starts | schedcancel, in-process limiter |" in (
        markdown(report)
    )


def test_one_refuses_a_contestant_the_scenario_does_not_take() -> None:
    """The bulk + interactive scenario has its own contestants."""
    with pytest.raises(SystemExit):
        one.main(["bulk-interactive", "naive"])


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


@pytest.mark.redis
async def test_redis_stall_leaves_no_ghost_entries() -> None:
    """Part 1 of ``benchmarks.redis_stall`` (a private redis-server, stopped): no ghost entries."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    figures = await redis_stall.one_limiter(0.5)
    assert figures["backend_errors"] == redis_stall.TOTAL
    assert figures["ghost_entries"] == 0


def test_ab_background_job_small_part(tmp_path: Path) -> None:
    """``benchmarks.background``'s small job through the A/B tool: one burst, no 429."""
    table, data = _ab_tiny(
        tmp_path,
        *("--only", "background", "--background-part", "small"),
        *("--markdown", str(tmp_path / "ab.md")),
    )
    figures = [run["figures"] for run in cast("list[dict[str, Any]]", data["runs"])]
    assert [f["part"] for f in figures] == ["small", "small"]
    assert all(f["rate_limited"] == 0 and f["makespan_s"] < 0.2 for f in figures)
    assert "| background-small (benchmarks.background) | makespan, s |" in table


def test_background_models_part_tiny() -> None:
    """The models part on a tiny job: every model at both priorities, 0 x 429 in the background."""
    figures = background.run_models(count=61)
    assert figures["sliding-counter-0.5 bg 429s"] == 0
    assert figures["sliding-log-0 burst ratio"] > 0
    assert len(figures) == 3 * 2 * len(background.MODELS)


def test_headers_runs_every_style_and_case_tiny() -> None:
    """``benchmarks.headers`` on a tiny job: a triple per style x case; the word is heard."""
    figures = headers.run(2.0, seeds=1, count=61)
    assert figures.pop("window") == 2.0
    assert len(figures) == len(headers.STYLES) * len(headers.CASES)
    assert all(len(runs) == 1 and len(runs[0]) == 3 for runs in figures.values())
    assert figures["x-all foreign"][0][2] == 0  # Remaining leaves the foreign load its share
    assert figures["x-all log"][0][1] > 0


async def test_instructions_runs_each_kind() -> None:
    """``benchmarks.instructions`` (the callgrind pairs) runs on both stores, so it cannot rot."""
    for kind in ("memory-live", "memory-new", "redis"):
        await instructions._pairs(kind, 3)


def test_the_oracle_floor_is_exact_where_it_can_be_computed_by_hand() -> None:
    """A sliding log alone: bursts of N every W; with one place reserved, 59 per W."""
    assert floor.floor_makespan(600, 60, 2.0) == 18.0
    assert floor.floor_makespan(600, 60, 2.0, reserve=1) == 20.0  # 600 = 10 * 59 + 10
    assert floor.floor_makespan(60, 60, 2.0, phases=(0.5,)) == 0.0  # a fresh budget: one burst


@pytest.mark.parametrize("phase", [0.1, 0.5, 0.9])
def test_the_oracle_schedule_is_what_the_mock_server_admits_and_no_earlier(phase: float) -> None:
    """Replayed on the mock's own models every arrival is admitted; any earlier, one is refused."""
    window, limit = 2.0, 60
    times = floor.floor_schedule(300, limit, window, phases=(phase,))

    def refused(arrivals: list[float]) -> int:
        models = [
            make_model("sliding-log", limit=limit, window=window),
            make_model("sliding-counter", limit=limit, window=window, origin=phase * window),
        ]
        count = 0
        for at in arrivals:
            if any(model.wait(at) > 0 for model in models):
                count += 1
                continue
            for model in models:
                model.add(at)
        return count

    assert refused(times) == 0
    waited = [i for i in range(1, len(times)) if times[i] > times[i - 1]]
    assert len(waited) > 10
    for i in waited:
        assert refused([*times[:i], times[i] - 0.001]) == 1, i


def test_the_floor_table_prints_every_server(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m benchmarks.floor`` prints the bound and one row per server."""
    assert floor.main(["--count", "130", "--phases", "8"]) == 0
    out = capsys.readouterr().out
    assert "bound 4 s" in out
    assert out.count("| sliding") == 5
