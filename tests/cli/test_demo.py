"""``schedcancel.cli._demo``: the demo against an in-process mock server."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from schedcancel.cli._demo import _demo_verdict
from schedcancel.testing import ServerLimits

from support.cli import TINY_DEMO, run_cli, schedcancel_argv, subprocess_env


@pytest.mark.slow
def test_demo_runs_with_no_429_within_a_minute() -> None:
    """``schedcancel demo`` ends 0 with 0 x 429 and a makespan near its lower bound."""
    started = time.monotonic()
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module
        schedcancel_argv("demo", "--json"),
        capture_output=True,
        text=True,
        env=subprocess_env("unused"),
        timeout=90,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 60
    summary = json.loads(proc.stdout.splitlines()[-1])["summary"]
    demo = summary["demo"]
    assert demo["rate_limited"] == 0
    assert demo["as_expected"] is True
    assert demo["requests"] == 300
    assert demo["lower_bound"] == 16.0
    # Never below the bound (that would mean a 429 risk). The job is a background one
    # (issue 24): 55 at once, the first window's rest by 4.1 s, then one per 4.1 / 59 s:
    # about 20.8 s (1.30 x the bound); slack for a busy machine.
    assert 16.0 <= demo["makespan"] <= 16.0 * 1.45
    assert "a background job" in proc.stderr
    assert "0 x 429" in proc.stderr
    assert "lower bound" in proc.stderr


def test_demo_in_process_with_a_tiny_window() -> None:
    """The demo cancels its seeded schedules with 0 x 429 and reports the makespan's bound."""
    result = run_cli(
        ["demo", "--schedules", "40", *TINY_DEMO, "--no-progress", "--json"],
        {},
    )
    assert result.code == 0, result.stderr
    summary = json.loads(result.lines()[-1])["summary"]
    assert summary["exit_code"] == 0  # the demo's verdict, though its unknown ids failed
    demo = summary["demo"]
    assert demo == demo | {"requests": 40, "rate_limited": 0, "as_expected": True}
    assert demo["lower_bound"] == pytest.approx(0.9)
    assert demo["makespan"] >= demo["lower_bound"]
    assert "all as expected: 0 x 429" in result.stderr
    assert "exit " not in result.stderr  # the demo's summary has no cancel exit line


def test_demo_reports_429s_as_a_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """If the server's limit is tighter than the client's, the demo sees 429s and exits 1."""
    from schedcancel import testing  # noqa: PLC0415 - patched for this test only

    real = testing.ServerLimits

    def tighter(**kwargs: Any) -> ServerLimits:
        return real(**{**kwargs, "total": kwargs["total"] // 2})

    monkeypatch.setattr(testing, "ServerLimits", tighter)
    journal = tmp_path / "demo.jsonl"
    result = run_cli(
        ["demo", "--schedules", "20", *TINY_DEMO, "--no-progress", "--journal", str(journal)],
        {},
    )
    assert result.code == 1
    assert "unexpected outcome" in result.stderr
    assert journal.exists()
    assert f"journal: {journal}" in result.stderr


@pytest.mark.parametrize(
    ("interrupted", "ok", "code"), [(True, True, 130), (False, True, 0), (False, False, 1)]
)
def test_demo_verdict(interrupted: bool, ok: bool, code: int) -> None:
    """The demo exits 130 when interrupted, else 0 exactly when the job went as seeded."""
    assert _demo_verdict(interrupted=interrupted, ok=ok) == code
