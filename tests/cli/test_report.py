"""``schedcancel.cli._report``: progress, per-id lines, the summary (plain and rich), exit codes."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from schedcancel import (
    AuthenticationError,
    BulkOutcome,
    BulkProgress,
    InvalidParameterError,
    OutcomeKind,
    ScheduleError,
)
from schedcancel.cli import (
    InputError,
    RunReport,
    format_duration,
    outcome_text,
    print_summary,
    progress_line,
)
from schedcancel.cli._common import _isatty
from schedcancel.cli._report import _RichReporter
from schedcancel.testing import ServerLimits

from support.cli import (
    FAST,
    SLOW,
    ServerThread,
    Terminal,
    cli_env,
    make_ids,
    make_settings,
    run_cli,
    subprocess_env,
)

# --------------------------------------------------------------------------- outputs


def test_json_output_has_one_object_per_id_and_a_summary(
    serve: Callable[..., ServerThread],
) -> None:
    """``--json``: a journal-format object per id, then ``{"summary": ...}`` with the exit code."""
    server = serve(active=["SC-1"])
    result = run_cli(["cancel", "SC-1", "SC-404", "--json", *FAST], cli_env(server.base_url))
    assert result.code == 1
    objects = [json.loads(line) for line in result.lines()]
    per_id = {o["id"]: o for o in objects[:-1]}
    assert per_id["SC-1"]["outcome"] == "cancelled"
    assert per_id["SC-404"] == per_id["SC-404"] | {"outcome": "failed", "error_code": 7040}
    summary = objects[-1]["summary"]
    assert summary["exit_code"] == 1
    assert summary["counts"] == {
        "cancelled": 1,
        "already_cancelled": 0,
        "failed": 1,
        "invalid": 0,
        "error": 0,
    }
    assert summary["rate_limited"] == 0
    assert summary["interrupted"] is False


def test_quiet_prints_no_per_id_lines(serve: Callable[..., ServerThread]) -> None:
    """``--quiet`` keeps stdout empty; the summary still goes to stderr."""
    server = serve(active=["SC-1"])
    result = run_cli(["cancel", "SC-1", "-q", *FAST], cli_env(server.base_url))
    assert result.code == 0
    assert result.stdout == ""
    assert re.search(r"^cancelled +1$", result.stderr, re.MULTILINE)


def test_plain_progress_lines_when_stderr_is_not_a_terminal(
    serve: Callable[..., ServerThread],
) -> None:
    """Without a terminal, progress is a plain line per interval with done, rate, 429s, ETA."""
    server = serve(active=make_ids(30), limits=ServerLimits(total=10, per_schedule=10, window=0.5))
    result = run_cli(
        ["cancel", *make_ids(30), "-q", "--progress-interval", "0.2", *SLOW],
        cli_env(server.base_url),
    )
    assert result.code == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if " done (" in line]
    assert progress, result.stderr
    assert "/30 done (" in progress[0]
    assert "/min | 0 x 429 | ETA " in progress[0]


def test_no_progress_prints_no_progress_lines(serve: Callable[..., ServerThread]) -> None:
    """``--no-progress`` leaves only the summary on stderr."""
    server = serve(active=make_ids(30), limits=ServerLimits(total=10, per_schedule=10, window=0.5))
    result = run_cli(
        ["cancel", *make_ids(30), "-q", "--no-progress", "--progress-interval", "0.1", *SLOW],
        cli_env(server.base_url),
    )
    assert result.code == 0
    assert " done (" not in result.stderr


def test_rich_progress_bar_and_table_on_a_terminal(serve: Callable[..., ServerThread]) -> None:
    """On a terminal, rich draws the bar (rate, 429s, ETA) and the summary table."""
    server = serve(active=make_ids(20), limits=ServerLimits(total=10, per_schedule=10, window=0.5))
    err = Terminal()
    out = Terminal()
    result = run_cli(
        ["cancel", *make_ids(20), *SLOW],
        cli_env(server.base_url),
        stderr=err,
        stdout=out,
    )
    assert result.code == 0, result.stderr
    assert "cancelling" in result.stderr
    assert "x 429" in result.stderr
    assert "ETA" in result.stderr
    assert "schedcancel summary" in result.stderr
    assert "┃" in result.stderr or "│" in result.stderr  # a rich table, not the plain one
    # Per-id lines went through the live console (above the bar), i.e. to stderr.
    assert "SC-00000\tcancelled" in result.stderr or "SC-00000" in result.stderr


def test_rich_bar_with_stdout_redirected_keeps_results_on_stdout(
    serve: Callable[..., ServerThread],
) -> None:
    """With the bar on a terminal but stdout redirected, per-id lines go to stdout."""
    server = serve(active=["SC-1"])
    result = run_cli(["cancel", "SC-1", *FAST], cli_env(server.base_url), stderr=Terminal())
    assert result.code == 0
    assert result.lines() == ["SC-1\tcancelled\tACTIVE->CANCELLED"]


def test_without_rich_a_terminal_gets_plain_lines_and_a_hint(
    serve: Callable[..., ServerThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the ``cli`` extra is missing, a terminal gets an install hint and plain output."""
    for name in [n for n in sys.modules if n == "rich" or n.startswith("rich.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rich", None)
    server = serve(active=["SC-1"])
    err = Terminal()
    result = run_cli(["cancel", "SC-1", *FAST], cli_env(server.base_url), stderr=err)
    assert result.code == 0
    assert "pip install 'schedcancel[cli]'" in result.stderr
    assert re.search(r"^outcome +this run$", result.stderr, re.MULTILINE)


def test_importing_the_library_and_cli_does_not_import_rich() -> None:
    """``import schedcancel`` and ``import schedcancel.cli`` leave rich unimported."""
    code = "import sys, schedcancel, schedcancel.cli; print('rich' in sys.modules)"
    out = subprocess.run(  # noqa: S603 - our own interpreter and a fixed script
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=subprocess_env("http://127.0.0.1:9/api/v3"),
        timeout=60,
    )
    assert out.stdout.strip() == "False"


def test_a_closed_stream_is_not_a_terminal() -> None:
    """A closed stream (isatty raises) counts as no terminal."""
    stream = Terminal()
    stream.close()
    assert not _isatty(stream)
    assert not _isatty(object())


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (float("inf"), "?"), (-1, "?"), (0.44, "0.4s"), (12.4, "12s"), (185, "3m05s"),
     (9840, "2h44m")],
)  # fmt: skip
def test_format_duration(seconds: float | None, text: str) -> None:
    """Durations read as people write them."""
    assert format_duration(seconds) == text


def _progress(**overrides: Any) -> BulkProgress:
    values: dict[str, Any] = {
        "total": 300,
        "read": 120,
        "done": 120,
        "counts": dict.fromkeys(OutcomeKind, 0) | {OutcomeKind.CANCELLED: 120},
        "skipped": 0,
        "journal_counts": dict.fromkeys(OutcomeKind, 0),
        "duplicates": 0,
        "withdrawn": 0,
        "in_flight": 60,
        "rate_limited": 0,
        "elapsed": 120.0,
        "rate": 1.0,
        "eta": 185.0,
        "stopping": False,
        "finished": False,
    }
    values.update(overrides)
    return BulkProgress(**values)


def test_progress_line_shows_done_rate_429s_and_eta() -> None:
    """A plain progress line: done of total, rate per minute, 429s, ETA or stopping."""
    assert progress_line(_progress()) == "120/300 done (40.0%) | 60.0/min | 0 x 429 | ETA 3m05s"
    assert progress_line(_progress(total=None, stopping=True)) == (
        "120 done | 60.0/min | 0 x 429 | stopping"
    )
    assert progress_line(_progress(total=0, done=0)).startswith("0/0 done (100.0%)")


def test_summary_notes_what_a_stopped_run_left_undone() -> None:
    """A stopped run with an unknown total reports the ids taken but not sent."""
    report = RunReport(progress=_progress(total=None, stopping=True, withdrawn=7), failure=None,
                       interrupted=True)  # fmt: skip
    err = io.StringIO()
    print_summary(report, make_settings("http://127.0.0.1:9/api/v3"), err)
    assert "not sent (stopped early): 7" in err.getvalue()
    assert "exit 130" in err.getvalue()


def test_summary_of_a_run_interrupted_before_it_started() -> None:
    """A signal before the journal was opened: the zero table, exit 130 (nothing to resume)."""
    report = RunReport(progress=None, failure=None, interrupted=True)
    err = io.StringIO()
    print_summary(report, make_settings("http://127.0.0.1:9/api/v3"), err)
    assert "elapsed" not in err.getvalue()
    assert err.getvalue().endswith("exit 130: interrupted (Ctrl-C, SIGTERM); run again with the"
                                   " same --journal\n")  # fmt: skip


def test_summary_shows_what_a_server_or_an_input_said_escaped() -> None:
    """A status the server made up and a failure quoting input reach stderr escaped."""
    report = RunReport(
        progress=_progress(finished=True),
        failure=InputError("cannot read stdin: line 2 is \x1b]0;owned\x07"),
        interrupted=False,
        statuses={"ACT\x1b[2JIVE": 3},
    )
    err = io.StringIO()
    print_summary(report, make_settings("http://127.0.0.1:9/api/v3"), err)
    assert "by status: ACT\\x1b[2JIVE 3" in err.getvalue()
    assert "stopped by: InputError: cannot read stdin: line 2 is \\x1b]0;owned\\x07" in (
        err.getvalue()
    )
    assert all(c.isprintable() or c == "\n" for c in err.getvalue())


def test_rich_summary_shows_the_journal_column_on_a_terminal() -> None:
    """On a terminal the summary is a rich table, with a column for journal outcomes."""
    counts = dict.fromkeys(OutcomeKind, 0) | {OutcomeKind.CANCELLED: 4}
    report = RunReport(progress=_progress(journal_counts=counts, skipped=4), failure=None,
                       interrupted=False)  # fmt: skip
    err = Terminal()
    print_summary(report, make_settings("http://127.0.0.1:9/api/v3"), err)
    assert "from journal" in err.getvalue()
    assert "exit 0" in err.getvalue()


def test_outcome_text_for_each_kind() -> None:
    """Per-id lines: id, outcome and a detail, with tabs inside values shown escaped."""
    error = BulkOutcome.from_exception("SC-1", ScheduleError("reset\tby peer"))
    invalid = BulkOutcome.invalid("a\tb", "bad")
    assert outcome_text(error) == "SC-1\terror\tScheduleError: reset\\tby peer"
    assert outcome_text(invalid) == "a\\tb\tinvalid\tbad"


def test_rich_notes_print_above_the_live_bar() -> None:
    """Messages during a rich run (stop notices) go through the live console."""
    err = Terminal()
    reporter = _RichReporter(err, stdout_is_terminal=False)
    with reporter:
        reporter.note("schedcancel: stopping")
    assert "schedcancel: stopping" in err.getvalue()


# --------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("failure", "started", "code"),
    [
        (InputError("cannot read stdin: line 3 is not UTF-8"), True, 2),
        (OSError(13, "Permission denied"), False, 2),
        (InvalidParameterError("the journal is in use by another run"), False, 2),
        (AuthenticationError("refused", http_status=401), True, 3),
        (ValueError("corrupt journal"), False, 2),
        (OSError(28, "No space left on device"), True, 3),
        (ValueError("a bug mid-run"), True, 3),
        (None, True, 0),
    ],
)
def test_exit_code_tells_an_unusable_input_or_journal_from_a_job_cut_short(
    failure: BaseException | None, started: bool, code: int
) -> None:
    """Exit 2 for input errors and a journal that fails before the job starts; else 3."""
    progress = _progress(finished=True) if started else None
    report = RunReport(progress=progress, failure=failure, interrupted=False)
    assert report.exit_code == code
