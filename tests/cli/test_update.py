"""``schedcancel update``: rows of changes from CSV or JSON Lines, checked before any request;
``--dry-run`` of every bulk command."""

from __future__ import annotations

import csv
import json
import random
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from schedcancel._bulk.journal import read_journal
from schedcancel.testing import Faults, ServerLimits

from support.cli import (
    FAST,
    ServerThread,
    assert_no_secrets,
    cli_env,
    kill_9_when,
    make_ids,
    run_cli,
    schedcancel_argv,
    subprocess_env,
)

HEADER = "scheduleId,amount,currency,periodLength,periodUnit"
UNITS = ("DAY", "WEEK", "MONTH", "YEAR")


def _changes(ids: list[str]) -> dict[str, tuple[str, str, int, str]]:
    """A different change per id: amount, currency, periodLength, periodUnit."""
    return {
        sid: (
            f"{n % 90 + 10}.{n % 100:02d}",
            ("EUR", "USD", "CHF")[n % 3],
            n % 12 + 1,
            UNITS[n % 4],
        )
        for n, sid in enumerate(ids)
    }


def _write_csv(path: Path, changes: dict[str, tuple[str, str, int, str]]) -> None:
    lines = [HEADER, *(",".join(map(str, (sid, *c))) for sid, c in changes.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _state(server: ServerThread, schedule_id: str) -> tuple[object, ...]:
    schedule = server.server.schedule(schedule_id)
    assert schedule is not None
    return (schedule.amount, schedule.currency, schedule.period_length, schedule.period_unit)


def test_a_1000_row_csv_is_applied_exactly_with_a_report(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """End to end: the server's state per id equals the file; the report has every row."""
    ids = make_ids(1000, prefix="UPD-")
    server = serve(active=ids)
    changes = _changes(ids)
    path = tmp_path / "changes.csv"
    _write_csv(path, changes)
    report = tmp_path / "updated.csv"
    result = run_cli(
        ["update", "--from", str(path), "--report", str(report), "-q", "--no-progress", *FAST],
        cli_env(server.base_url),
    )
    assert result.code == 0, result.stderr
    assert all(_state(server, sid) == changes[sid] for sid in ids)
    assert server.server.recorder.count_rate_limited() == 0
    with report.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert sorted(row["id"] for row in rows) == sorted(ids)
    for row in rows:
        amount, currency, length, unit = changes[row["id"]]
        assert (row["success"], row["outcome"], row["status"]) == ("true", "updated", "ACTIVE")
        assert (row["amount"], row["currency"]) == (amount, currency)
        assert (row["periodLength"], row["periodUnit"]) == (str(length), unit)
    assert_no_secrets(result.stdout, result.stderr, report.read_text(encoding="utf-8"))


BAD_CSV = """\
scheduleId,amount,currency,periodLength,periodUnit
SC-OK1,12.90,EUR,1,MONTH
SC-BAD-AMOUNT,12.9.0,EUR,1,MONTH
SC-BAD-CURRENCY,12.90,EURO,1,MONTH
SC-BAD-UNIT,12.90,EUR,1,FORTNIGHT
SC-BAD-LENGTH,12.90,EUR,-1,MONTH
SC-SHORT,12.90,EUR
SC-TWICE,12.90,EUR,1,MONTH
SC-OK2,5,USD,,
SC-TWICE,13.90,EUR,1,MONTH
SC-OK2,5,USD,,
"""


def test_bad_rows_are_named_by_line_and_column_before_any_request(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """Bad amount, currency, period, a missing column, a conflicting duplicate: nothing sent."""
    server = serve(active=["SC-OK1", "SC-OK2", "SC-TWICE"])
    path = tmp_path / "changes.csv"
    path.write_text(BAD_CSV, encoding="utf-8")
    journal = tmp_path / "j.jsonl"
    argv = ["update", "--from", str(path), "--journal", str(journal), "--no-progress", *FAST]
    result = run_cli(argv, cli_env(server.base_url))
    assert result.code == 2
    assert len(server.server.recorder) == 0
    assert not journal.exists()
    expected = [
        "line 3, column amount: amount must be",
        "line 4, column currency: currency must be three upper-case letters",
        "line 5, column periodUnit: period_unit must be one of",
        "line 6, column periodLength: periodLength must be a whole number",
        "line 7, column periodLength: 3 cells, the header has 5",
        "line 10, column scheduleId: scheduleId given on line 8 with another change",
    ]
    for text in expected:
        assert text in result.stderr
    assert "7 bad rows" in result.stderr  # lines 3-7, and both rows of the conflict (8, 10)
    assert "line 11" not in result.stderr  # an exact repeat is one row

    skipped = run_cli([*argv, "--skip-invalid", "-q"], cli_env(server.base_url))
    assert skipped.code == 0, skipped.stderr
    assert sorted(server.sent_ids()) == ["SC-OK1", "SC-OK2"]
    assert _state(server, "SC-OK2")[:2] == ("5", "USD")
    twice = server.server.schedule("SC-TWICE")
    assert twice is not None
    assert twice.amount is None


def test_dry_run_shows_the_first_requests_and_touches_nothing(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """--dry-run: no request, no journal, no credentials; exit 0 for valid rows, 2 for bad."""
    ids = make_ids(30, prefix="DRY-")
    server = serve(active=ids)
    path = tmp_path / "changes.csv"
    _write_csv(path, _changes(ids))
    journal = tmp_path / "j.jsonl"
    result = run_cli(["update", "--from", str(path), "--journal", str(journal), "--dry-run"], {})
    assert result.code == 0, result.stderr
    assert len(result.lines()) == 10
    assert result.lines()[0] == (
        'DRY-00000\tupdate\t{"amount":"10.00","currency":"EUR","periodLength":1,"periodUnit":"DAY"}'
    )
    assert "30 read, 30 to send" in result.stderr
    assert not journal.exists()
    assert len(server.server.recorder) == 0

    bad = tmp_path / "bad.csv"
    bad.write_text(BAD_CSV, encoding="utf-8")
    result = run_cli(["update", "--from", str(bad), "--dry-run"], {})
    assert result.code == 2
    assert "line 4, column currency" in result.stderr
    assert result.lines() == [
        'SC-OK1\tupdate\t{"amount":"12.90","currency":"EUR","periodLength":1,"periodUnit":"MONTH"}',
        'SC-OK2\tupdate\t{"amount":"5","currency":"USD"}',
    ]


@pytest.mark.parametrize(
    "command", [["cancel"], ["pause"], ["get"], ["continue", "--at", "2027-01-05T10:00:00+01:00"]]
)
def test_dry_run_of_the_id_commands_checks_every_id(tmp_path: Path, command: list[str]) -> None:
    """Each bad id named by its line; the first ids shown; nothing read from a journal."""
    ids = tmp_path / "ids.txt"
    ids.write_text("SC-1\n# a comment\n\nbad id!\nSC-2\nSC-1\n", encoding="utf-8")
    result = run_cli([*command, "--from", str(ids), "--dry-run"], {})
    assert result.code == 2
    assert "line 4: " in result.stderr
    assert [line.split("\t")[:2] for line in result.lines()] == [
        ["SC-1", command[0]],
        ["SC-2", command[0]],
    ]
    assert "4 read, 2 to send" in result.stderr
    assert "1 repeated" in result.stderr
    good = run_cli([*command, "SC-9", "--from", "-", "--dry-run"], {}, stdin="SC-1\nSC-2\n")
    assert good.code == 0, good.stderr
    assert "3 read, 3 to send" in good.stderr


def test_a_uniform_change_for_every_id_and_json_lines(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """--amount/--currency for the ids of a file; JSON Lines rows with the same keys."""
    ids = make_ids(5, prefix="UNI-")
    server = serve(active=ids)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
    argv = ["update", "--from", str(ids_file), "--amount", "12.90", "--currency", "EUR", "-q"]
    with socket.socket() as probe:  # a free port for --metrics-port: the shared job options
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    result = run_cli(
        [*argv, "--no-progress", "--metrics-port", port, *FAST], cli_env(server.base_url)
    )
    assert result.code == 0, result.stderr
    assert all(_state(server, sid)[:2] == ("12.90", "EUR") for sid in ids)

    rows = tmp_path / "changes.jsonl"
    rows.write_text(
        "\n".join(json.dumps({"scheduleId": sid, "periodLength": 3}) for sid in ids) + "\n",
        encoding="utf-8",
    )
    argv = ["update", "--from", str(rows), "--period-unit", "WEEK", "-q", "--no-progress"]
    result = run_cli([*argv, *FAST], cli_env(server.base_url))
    assert result.code == 0, result.stderr
    assert all(_state(server, sid) == ("12.90", "EUR", 3, "WEEK") for sid in ids)

    refused = run_cli(["update", "--from", str(ids_file)], cli_env(server.base_url))
    assert refused.code == 2
    assert "update needs changes" in refused.stderr
    bad_flag = run_cli([*argv[:3], "--amount", "1,5"], cli_env(server.base_url))
    assert bad_flag.code == 2
    assert "amount" in bad_flag.stderr


def test_a_rerun_with_a_changed_row_reports_a_conflict_exit_1(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """The journal's digest per id: the same file again sends nothing; a changed row is a
    conflict, named, not sent."""
    ids = make_ids(4, prefix="CON-")
    server = serve(active=ids)
    changes = _changes(ids)
    path = tmp_path / "changes.csv"
    _write_csv(path, changes)
    journal = tmp_path / "j.jsonl"
    argv = ["update", "--from", str(path), "--journal", str(journal), "--no-progress", *FAST]
    assert run_cli(argv, cli_env(server.base_url)).code == 0
    sent = len(server.server.recorder)
    assert run_cli(argv, cli_env(server.base_url)).code == 0
    changes[ids[0]] = ("99.99", "EUR", 1, "DAY")
    _write_csv(path, changes)
    result = run_cli(argv, cli_env(server.base_url))
    assert result.code == 1
    assert f"{ids[0]}\tconflict\tanother change" in result.stdout
    assert len(server.server.recorder) == sent
    assert _state(server, ids[0])[0] != "99.99"


@pytest.mark.parametrize("trial", range(10))
def test_kill_9_and_rerun_loses_no_row(
    serve: Callable[..., ServerThread], tmp_path: Path, trial: int
) -> None:
    """SIGKILL at a random moment, then a re-run on the same journal: every id's final state
    equals the file, and no row final in the journal at the kill is sent again."""
    ids = make_ids(200, prefix="K9-")
    server = serve(
        active=ids,
        limits=ServerLimits(total=100_000, per_schedule=10, window=1.0),
        faults=Faults(response_latency=(0.01, 0.04), seed=trial),
    )
    changes = _changes(ids)
    path = tmp_path / "changes.csv"
    _write_csv(path, changes)
    journal = tmp_path / "run.jsonl"
    argv = schedcancel_argv(
        *("update", "--from", str(path), "--journal", str(journal), "--concurrency", "8"),
        *("-q", "--total", "100000", "--window", "1", "--guard", "0.05"),
    )
    env = subprocess_env(server.base_url)
    kill_after = random.Random(trial).randint(1, 150)  # noqa: S311 - a test's kill moment
    kill_9_when(argv, env, journal, b'"outcome"', kill_after)
    final_at_kill = {o.schedule_id for o in read_journal(journal) if o.final}
    assert len(final_at_kill) < len(ids), "the kill came too late to test anything"
    resumed_from = len(server.server.recorder)
    second = subprocess.run(  # noqa: S603 - our own interpreter and module
        argv, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert second.returncode == 0, second.stderr
    assert not set(server.sent_ids(resumed_from)) & final_at_kill
    assert all(_state(server, sid) == changes[sid] for sid in ids)
    finals = [o.schedule_id for o in read_journal(journal) if o.final]
    assert sorted(finals) == sorted(ids)
