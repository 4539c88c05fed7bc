"""``update``'s rows and ``--dry-run``: each bad row named by line and column, before any I/O."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from schedcancel.cli import main
from schedcancel.cli._rows import (
    check_rows,
    csv_records,
    id_records,
    jsonl_records,
    row_format,
    uniform_change,
    update_rows,
)
from schedcancel.errors import InvalidParameterError

from support.cli import ServerThread, cli_env, run_cli


def _problems(path: Path, text: str, fmt: str = "csv") -> list[str]:
    path.write_text(text, encoding="utf-8")
    records = csv_records(path) if fmt == "csv" else jsonl_records(path)
    return [str(problem) for problem in check_rows(records, update_rows({})).problems]


def test_row_format_follows_the_suffix_unless_given() -> None:
    """.csv, .jsonl, .ndjson hold rows; anything else ids; --input-format wins."""
    assert row_format("a.CSV", None) == "csv"
    assert row_format("a.ndjson", None) == "jsonl"
    assert row_format("ids.txt", None) is None
    assert row_format("a.csv", "ids") is None
    assert row_format("ids.txt", "jsonl") == "jsonl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "line 1: no header row"),
        ("scheduleId,price\n", "line 1, column price: unknown column"),
        ("amount,currency\n", "line 1, column scheduleId: missing column"),
        ("scheduleId,amount,amount\n", "line 1: a column is named twice"),
        ("scheduleId,amount\nSC-1,1,2\n", "line 2: 3 cells, the header has 2"),
        ("scheduleId,amount\n,1\n", "line 2, column scheduleId: no scheduleId"),
        ("scheduleId,amount\nSC-1,\n", "line 2, column scheduleId: nothing to change"),
        ("scheduleId,amount\nbad id!,1\n", "line 2, column scheduleId: scheduleId"),
        ("scheduleId,periodLength\nSC-1,1.5\n", "line 2, column periodLength: periodLength must"),
        ("scheduleId,startDateTime\nSC-1,soon\n", "line 2, column startDateTime: startDateTime"),
        (
            "scheduleId,startDateTime\nSC-1,2027-01-01T09:00:00\n",
            "line 2, column startDateTime: start_date_time must be timezone-aware",
        ),
        ("scheduleId,callbackUrl\nSC-1,ftp://x\n", "line 2, column callbackUrl: callback_url"),
    ],
)
def test_each_bad_csv_row_is_named(tmp_path: Path, text: str, expected: str) -> None:
    """Header problems on line 1, cell problems on their line and column."""
    problems = _problems(tmp_path / "c.csv", text)
    assert len(problems) == 1
    assert problems[0].startswith(expected)


def test_good_cells_of_every_kind_and_blank_lines(tmp_path: Path) -> None:
    """Every column converts; blank lines are skipped; a third conflicting row is bad too."""
    path = tmp_path / "c.csv"
    path.write_text(
        "scheduleId,periodLength,startDateTime,merchantMetaData\n"
        "SC-1,3,2027-01-01T09:00:00+01:00,plan B\n"
        ",,,\n"
        "SC-2,1,,\n"
        "SC-2,2,,\n"
        "SC-2,3,,\n",
        encoding="utf-8",
    )
    check = check_rows(csv_records(path), update_rows({}))
    assert check.rows == 4
    assert check.valid == 1
    assert check.bad_lines == {4, 5, 6}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "line 2: not a JSON object"),
        ("[1, 2]", "line 2: not a JSON object"),
        ('{"scheduleId": "SC-1", "price": 1}', "line 2, column price: unknown key"),
        ('{"amount": "1"}', "line 2, column scheduleId: missing key"),
        ('{"scheduleId": "SC-1", "amount": 1.5}', "line 2, column amount: amount must be"),
    ],
)
def test_each_bad_json_line_is_named(tmp_path: Path, line: str, expected: str) -> None:
    """A JSON Lines file: the same checks, and JSON's own (a float amount is refused)."""
    text = '{"scheduleId": "SC-0", "amount": "1"}\n' + line + "\n\n"
    problems = _problems(tmp_path / "c.jsonl", text, "jsonl")
    assert problems == [problems[0]]
    assert problems[0].startswith(expected)


def test_a_uniform_change_is_checked_and_fills_empty_cells() -> None:
    """--amount etc. are checked like cells; a bad one names its column."""
    assert uniform_change({"amount": "12.90", "currency": None, "periodLength": "2"}) == {
        "amount": "12.90",
        "period_length": 2,
    }
    with pytest.raises(InvalidParameterError, match="currency"):
        uniform_change({"currency": "eur"})
    with pytest.raises(InvalidParameterError, match="periodLength"):
        uniform_change({"periodLength": "two"})
    check = check_rows(
        id_records([(1, "SC-1"), (2, "SC-1"), (3, "bad id!")]), update_rows({"amount": "1"})
    )
    assert (check.valid, check.repeats, check.bad_lines) == (1, 1, {3})


def test_update_input_errors_are_usage_errors_before_any_request(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """Stdin, a directory, a missing file, ids and a file together, an empty or unreadable file,
    no valid row: exit 2, nothing sent."""
    server = serve(active=["SC-1"])
    env = cli_env(server.base_url)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    blank = tmp_path / "blank.csv"
    blank.write_text("scheduleId,amount\n", encoding="utf-8")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"scheduleId,merchantMetaData\nSC-1,caf\xe9\n")
    huge = tmp_path / "huge.csv"
    huge.write_text("scheduleId,merchantMetaData\nSC-1," + "x" * 200_000 + "\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("scheduleId,amount\nSC-1,x\n", encoding="utf-8")
    cases = {
        ("--from", "-", "--amount", "1"): "does not read stdin",
        ("--from", str(tmp_path), "--input-format", "csv"): "is not one",
        ("--from", str(tmp_path / "none.csv")): "cannot read",
        ("SC-1", "--from", str(empty)): "not both",
        ("--amount", "1"): "no ids",
        ("--from", str(blank)): "no rows",
        ("--from", str(latin)): "not UTF-8",
        ("--from", str(huge)): "field larger than field limit",
        ("--from", str(bad), "--skip-invalid"): "no valid rows",
    }
    for argv, message in cases.items():
        result = run_cli(["update", *argv], env)
        assert result.code == 2, argv
        assert message in result.stderr, (argv, result.stderr)
    assert len(server.server.recorder) == 0
    result = run_cli(["update", "SC-1", "SC-1", "--amount", "2", "-q", "--no-progress"], env)
    assert result.code == 0, result.stderr
    assert len(server.server.recorder) == 1


def test_a_file_changed_between_the_check_and_the_run_stops_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serve: Callable[..., ServerThread]
) -> None:
    """A row bad in the second pass, not in the first: the job stops, exit 2."""
    import schedcancel.cli._update as update  # noqa: PLC0415 - patched below

    server = serve(active=["SC-1", "SC-2"])
    path = tmp_path / "c.csv"
    path.write_text("scheduleId,amount\nSC-1,1\nSC-2,2\n", encoding="utf-8")
    passes: list[int] = []
    real = csv_records

    def records(target: Path, *kind: Any) -> object:
        passes.append(1)
        if len(passes) == 2:
            target.write_text("scheduleId,amount\nSC-1,1\nSC-2,x\n", encoding="utf-8")
        return real(target, *kind)

    monkeypatch.setattr(update, "csv_records", records)
    result = run_cli(
        ["update", "--from", str(path), "--no-progress", "-q"], cli_env(server.base_url)
    )
    assert result.code == 2
    assert "changed while it was read: line 3" in result.stderr


def test_dry_run_shows_hidden_fields_by_name_and_reads_stdin_bytes(tmp_path: Path) -> None:
    """merchantMetaData and callbackUrl are named, not shown; stdin with a descriptor works;
    an unreadable id file and no ids are usage errors."""
    path = tmp_path / "c.csv"
    path.write_text(
        "scheduleId,amount,callbackUrl,merchantMetaData\nSC-1,1,https://u:t@h.example/cb,x\n"
        + "".join(f"SC-{n},1,,\n" for n in range(2, 14)),
        encoding="utf-8",
    )
    result = run_cli(["update", "--from", str(path), "--dry-run"], {})
    assert result.code == 0
    assert result.lines()[0] == 'SC-1\tupdate\t{"amount":"1"} +merchantMetaData +callbackUrl'
    assert len(result.lines()) == 10
    assert "t@h" not in result.stdout

    read, write = os.pipe()
    os.write(write, b"SC-1\nSC-2\n")
    os.close(write)
    with open(read, encoding="utf-8") as stdin:
        out, err = io.StringIO(), io.StringIO()
        code = main(["get", "--from", "-", "--dry-run"], stdin=stdin, stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert "2 read, 2 to send" in err.getvalue()

    long_line = tmp_path / "ids.txt"
    long_line.write_text("x" * 2000 + "\n", encoding="utf-8")
    assert run_cli(["cancel", "--from", str(long_line), "--dry-run"], {}).code == 2
    assert run_cli(["pause", "--dry-run"], {}).code == 2
    many = run_cli(["pause", *(f"SC-{n}" for n in range(12)), "--dry-run"], {})
    assert many.code == 0
    assert len(many.lines()) == 10
    assert run_cli(["pause", "--from", str(tmp_path / "none"), "--dry-run"], {}).code == 2
