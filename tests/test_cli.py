"""The ``schedcancel`` command, in process and as a subprocess, against the mock server.

The mock server runs in a thread with its own event loop, so ``cli.main``
(which runs ``asyncio.run``) can be called from a plain test, and so can a
``python -m schedcancel`` subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from schedcancel import (
    AuthenticationError,
    CancelOutcome,
    InvalidParameterError,
    RateLimits,
    RetryPolicy,
    ScheduleCancelError,
    cli,
)
from schedcancel._bulk import BulkProgress
from schedcancel._journal import OutcomeKind, read_journal
from schedcancel.cli import (
    CancelSettings,
    RunReport,
    _input,
    _parser,
    format_duration,
    main,
    run_cancel,
)
from schedcancel.cli._common import _isatty
from schedcancel.cli._demo import _demo_verdict
from schedcancel.cli._input import _LineReader
from schedcancel.cli._report import _RichReporter
from schedcancel.cli._run import _url_secrets
from schedcancel.testing import Faults, MockScheduleServer, ServerLimits

API_KEY = "cli-test-connector-key-77"
USERNAME = "cli-user"
PASSWORD = "pw-Very-Secret-4242"
SECRET = "shared-Secret-Value-9911"
ROOT = Path(__file__).resolve().parent.parent
# Client limits: out of reach, 10 per 0.5 s (a few windows per test), 20 per 30 s (one window).
FAST = ["--total", "1000", "--window", "1", "--guard", "0.05"]
SLOW = ["--total", "10", "--window", "0.5", "--guard", "0.05"]
TWENTY = ["--total", "20", "--window", "30", "--guard", "0.05"]
TINY_DEMO = ["--total", "10", "--window", "0.3", "--guard", "0.02"]


@attrs.define
class ServerThread:
    """A MockScheduleServer serving from its own thread and event loop."""

    server: MockScheduleServer
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """The server's base URL."""
        return self.server.base_url

    def start(self) -> ServerThread:
        """Start serving; return once the port is bound."""
        ready = threading.Event()

        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            async with self.server:
                ready.set()
                await self._stop.wait()

        self._thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
        self._thread.start()
        assert ready.wait(10), "mock server did not start"
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def sent_ids(self, start: int = 0) -> list[str]:
        """The scheduleIds of the arrivals from index ``start`` on."""
        return [a.schedule_id or "" for a in self.server.recorder.arrivals[start:]]


@pytest.fixture(name="serve")
def _serve() -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def serve(
        *,
        active: list[str] = (),  # type: ignore[assignment]
        cancelled: list[str] = (),  # type: ignore[assignment]
        limits: ServerLimits | None = None,
        faults: Faults | None = None,
        secret: str | None = None,
        username: str = USERNAME,
    ) -> ServerThread:
        server = MockScheduleServer(
            users={username: PASSWORD},
            connectors={API_KEY: secret},
            limits=limits or ServerLimits(total=1000, per_schedule=10, window=1.0),
            faults=faults or Faults(),
        )
        server.seed(active)
        server.seed(cancelled, "CANCELLED")
        thread = ServerThread(server).start()
        started.append(thread)
        return thread

    yield serve
    for thread in started:
        thread.stop()


def _env(base_url: str, **extra: str) -> dict[str, str]:
    env = {
        "SCHEDCANCEL_API_KEY": API_KEY,
        "SCHEDCANCEL_USERNAME": USERNAME,
        "SCHEDCANCEL_PASSWORD": PASSWORD,
        "SCHEDCANCEL_BASE_URL": base_url,
    }
    env.update(extra)
    return env


@attrs.frozen
class Result:
    """What one in-process run of ``main`` gave."""

    code: int
    stdout: str
    stderr: str

    def lines(self) -> list[str]:
        """Stdout's lines."""
        return self.stdout.splitlines()


def _run(
    argv: list[str],
    env: dict[str, str],
    *,
    stdin: str = "",
    stderr: io.StringIO | None = None,
    stdout: io.StringIO | None = None,
) -> Result:
    out = stdout or io.StringIO()
    err = stderr or io.StringIO()
    code = main(argv, stdin=io.StringIO(stdin), stdout=out, stderr=err, environ=env)
    return Result(code, out.getvalue(), err.getvalue())


def _assert_no_secrets(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert SECRET not in text
        assert API_KEY not in text


def _ids(n: int, prefix: str = "SC-") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def _subprocess_env(base_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SCHEDCANCEL_REDIS_URL", None)
    env.update(_env(base_url, **extra))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _schedcancel(*args: str) -> list[str]:
    return [sys.executable, "-m", "schedcancel", *args]


class _Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        """Pretend to be a terminal (and raise once closed, as StringIO does)."""
        super().isatty()
        return True


# --------------------------------------------------------------------------- input forms


def test_ids_as_arguments_are_cancelled_exit_0(serve: Callable[..., ServerThread]) -> None:
    """Ids given as arguments are cancelled; one TSV line each on stdout; exit 0."""
    server = serve(active=["SC-1", "SC-2"], cancelled=["SC-3"])
    result = _run(["cancel", "SC-1", "SC-2", "SC-3", *FAST], _env(server.base_url))
    assert result.code == 0, result.stderr
    assert sorted(result.lines()) == [
        "SC-1\tcancelled\tACTIVE->CANCELLED",
        "SC-2\tcancelled\tACTIVE->CANCELLED",
        "SC-3\talready_cancelled\tCANCELLED->CANCELLED",
    ]
    assert "schedcancel summary" in result.stderr
    assert "exit 0: every id is cancelled" in result.stderr
    assert server.server.status_of("SC-1") == "CANCELLED"
    _assert_no_secrets(result.stdout, result.stderr)


def test_ids_from_a_file_with_comments_and_blank_lines(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """``--from FILE`` reads one id per line, skipping blanks and comments, with a known total."""
    server = serve(active=_ids(5))
    path = tmp_path / "ids.txt"
    path.write_text("# export of 2026-04-28\n\n" + "\n".join(_ids(5)) + "\n  \n", encoding="utf-8")
    result = _run(
        ["cancel", "--from", str(path), "--json", *FAST],
        _env(server.base_url),
    )
    assert result.code == 0, result.stderr
    summary = json.loads(result.lines()[-1])["summary"]
    assert summary["total"] == 5
    assert summary["counts"]["cancelled"] == 5
    assert sorted(server.sent_ids()) == _ids(5)


def test_ids_from_stdin(serve: Callable[..., ServerThread]) -> None:
    """``--from -`` streams ids from stdin; the total is unknown."""
    server = serve(active=_ids(20))
    result = _run(
        ["cancel", "--from", "-", "--json", *FAST],
        _env(server.base_url),
        stdin="\n".join(_ids(20)) + "\n",
    )
    assert result.code == 0, result.stderr
    summary = json.loads(result.lines()[-1])["summary"]
    assert summary["total"] is None
    assert summary["counts"]["cancelled"] == 20


def test_arguments_and_a_file_together(serve: Callable[..., ServerThread], tmp_path: Path) -> None:
    """Ids from arguments and from ``--from`` are all cancelled, duplicates once."""
    server = serve(active=_ids(4))
    path = tmp_path / "ids.txt"
    path.write_text("SC-00002\nSC-00003\nSC-00000\n", encoding="utf-8")
    result = _run(
        ["cancel", "SC-00000", "SC-00001", "--from", str(path), "--json", *FAST],
        _env(server.base_url),
    )
    assert result.code == 0, result.stderr
    summary = json.loads(result.lines()[-1])["summary"]
    assert (summary["total"], summary["duplicates"]) == (5, 1)
    assert sorted(server.sent_ids()) == _ids(4)


def test_stdin_on_a_terminal_gets_a_hint(serve: Callable[..., ServerThread]) -> None:
    """Reading ids from a terminal says so, so nobody waits on a silent prompt."""
    server = serve(active=["SC-1"])
    err = io.StringIO()
    stdin = _Terminal("SC-1\n")
    code = main(
        ["cancel", "--from", "-", "--no-progress", *FAST],
        stdin=stdin,
        stdout=io.StringIO(),
        stderr=err,
        environ=_env(server.base_url),
    )
    assert code == 0
    assert "reading ids from stdin" in err.getvalue()


def test_flags_override_the_environment(serve: Callable[..., ServerThread]) -> None:
    """Credentials and base URL from flags win over the environment's."""
    server = serve(active=["SC-1"])
    env = _env("http://127.0.0.1:9/api/v3", SCHEDCANCEL_PASSWORD="wrong")
    result = _run(
        ["cancel", "SC-1", "--password", PASSWORD, "--base-url", server.base_url, *FAST], env
    )
    assert result.code == 0, result.stderr


# --------------------------------------------------------------------------- outputs


def test_json_output_has_one_object_per_id_and_a_summary(
    serve: Callable[..., ServerThread],
) -> None:
    """``--json``: a journal-format object per id, then ``{"summary": ...}`` with the exit code."""
    server = serve(active=["SC-1"])
    result = _run(["cancel", "SC-1", "SC-404", "--json", *FAST], _env(server.base_url))
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
    result = _run(["cancel", "SC-1", "-q", *FAST], _env(server.base_url))
    assert result.code == 0
    assert result.stdout == ""
    assert re.search(r"^cancelled +1$", result.stderr, re.MULTILINE)


def test_plain_progress_lines_when_stderr_is_not_a_terminal(
    serve: Callable[..., ServerThread],
) -> None:
    """Without a terminal, progress is a plain line per interval with done, rate, 429s, ETA."""
    server = serve(active=_ids(30), limits=ServerLimits(total=10, per_schedule=10, window=0.5))
    result = _run(
        ["cancel", *_ids(30), "-q", "--progress-interval", "0.2", *SLOW],
        _env(server.base_url),
    )
    assert result.code == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if " done (" in line]
    assert progress, result.stderr
    assert "/30 done (" in progress[0]
    assert "/min | 0 x 429 | ETA " in progress[0]


def test_no_progress_prints_no_progress_lines(serve: Callable[..., ServerThread]) -> None:
    """``--no-progress`` leaves only the summary on stderr."""
    server = serve(active=_ids(30), limits=ServerLimits(total=10, per_schedule=10, window=0.5))
    result = _run(
        ["cancel", *_ids(30), "-q", "--no-progress", "--progress-interval", "0.1", *SLOW],
        _env(server.base_url),
    )
    assert result.code == 0
    assert " done (" not in result.stderr


def test_rich_progress_bar_and_table_on_a_terminal(serve: Callable[..., ServerThread]) -> None:
    """On a terminal, rich draws the bar (rate, 429s, ETA) and the summary table."""
    server = serve(active=_ids(20), limits=ServerLimits(total=10, per_schedule=10, window=0.5))
    err = _Terminal()
    out = _Terminal()
    result = _run(
        ["cancel", *_ids(20), *SLOW],
        _env(server.base_url),
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


def test_without_rich_a_terminal_gets_plain_lines_and_a_hint(
    serve: Callable[..., ServerThread], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the ``cli`` extra is missing, a terminal gets an install hint and plain output."""
    for name in [n for n in sys.modules if n == "rich" or n.startswith("rich.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rich", None)
    server = serve(active=["SC-1"])
    err = _Terminal()
    result = _run(["cancel", "SC-1", *FAST], _env(server.base_url), stderr=err)
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
        env=_subprocess_env("http://127.0.0.1:9/api/v3"),
        timeout=60,
    )
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- journal


def test_journal_records_every_id_and_no_secret(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """The journal holds one line per id with its outcome, and no password, secret or apiKey."""
    server = serve(active=["SC-1"], cancelled=["SC-2"], secret=SECRET)
    journal = tmp_path / "run.jsonl"
    result = _run(
        ["cancel", "SC-1", "SC-2", "SC-404", "bad id!", "--journal", str(journal), *FAST],
        _env(server.base_url, SCHEDCANCEL_SHARED_SECRET=SECRET),
    )
    assert result.code == 1, result.stderr
    outcomes = {o.schedule_id: o for o in read_journal(journal)}
    assert {k: o.kind for k, o in outcomes.items()} == {
        "SC-1": OutcomeKind.CANCELLED,
        "SC-2": OutcomeKind.ALREADY_CANCELLED,
        "SC-404": OutcomeKind.FAILED,
        "bad id!": OutcomeKind.INVALID,
    }
    assert outcomes["SC-404"].error_code == 7040
    assert f"journal: {journal}" in result.stderr
    _assert_no_secrets(journal.read_text(encoding="utf-8"), result.stdout, result.stderr)


def test_rerun_on_the_journal_sends_nothing_final_again(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """A second run on the same journal skips what is final; the exit code covers both runs."""
    server = serve(active=["SC-1", "SC-2"])
    journal = tmp_path / "run.jsonl"
    argv = ["cancel", "SC-1", "SC-2", "SC-404", "--journal", str(journal), "--json", *FAST]
    first = _run(argv, _env(server.base_url))
    assert first.code == 1
    sent = len(server.server.recorder)
    second = _run(argv, _env(server.base_url))
    assert second.code == 1  # SC-404 failed for good in the first run
    assert len(server.server.recorder) == sent
    summary = json.loads(second.lines()[-1])["summary"]
    assert summary["skipped"] == 3
    assert summary["from_journal"]["cancelled"] == 2
    assert "from journal" in second.stderr
    third = _run([*argv, "--retry-failed"], _env(server.base_url))
    assert third.code == 1
    assert server.sent_ids(sent) == ["SC-404"]


def test_a_busy_journal_is_a_usage_error(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """A journal another run holds gives exit 2 before anything is sent."""
    from schedcancel import Journal  # noqa: PLC0415 - only this test opens one directly

    server = serve(active=["SC-1"])
    path = tmp_path / "run.jsonl"
    with Journal.open(path):
        result = _run(["cancel", "SC-1", "--journal", str(path), *FAST], _env(server.base_url))
    assert result.code == 2
    assert "in use by another run" in result.stderr
    assert len(server.server.recorder) == 0


def test_a_corrupt_journal_is_a_usage_error(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """A journal with a bad line in the middle gives exit 2 naming the line."""
    server = serve(active=["SC-1"])
    path = tmp_path / "run.jsonl"
    path.write_text('garbage\n{"id":"SC-1","outcome":"cancelled"}\n', encoding="utf-8")
    result = _run(["cancel", "SC-1", "--journal", str(path), *FAST], _env(server.base_url))
    assert result.code == 2
    assert "run.jsonl:1: not a schedcancel journal line" in result.stderr


# --------------------------------------------------------------------------- exit codes


def test_unknown_and_invalid_ids_exit_1(serve: Callable[..., ServerThread]) -> None:
    """An unknown id (7040) and an invalid id are failures: exit 1, the rest cancelled."""
    server = serve(active=["SC-1"])
    result = _run(["cancel", "SC-1", "SC-404", "x" * 40, *FAST], _env(server.base_url))
    assert result.code == 1
    lines = sorted(result.lines())
    assert lines[0] == "SC-1\tcancelled\tACTIVE->CANCELLED"
    assert lines[1].startswith("SC-404\tfailed\t7040 The scheduleId is not valid")
    assert lines[2].startswith("x" * 40 + "\tinvalid\tscheduleId")
    assert "exit 1: some ids failed" in result.stderr
    assert sorted(server.sent_ids()) == ["SC-1", "SC-404"]


@pytest.mark.parametrize(
    ("argv", "env_drop", "message"),
    [
        (["cancel", *FAST], None, "no ids"),
        (["cancel", "SC-1", *FAST], "SCHEDCANCEL_API_KEY", "missing the connector apiKey"),
        (["cancel", "SC-1", *FAST], "SCHEDCANCEL_USERNAME", "missing the API username"),
        (["cancel", "SC-1", *FAST], "SCHEDCANCEL_PASSWORD", "missing the API password"),
        (["cancel", "SC-1", "--from", "/nonexistent/ids.txt", *FAST], None, "cannot read"),
        (["cancel", "SC-1", "--total", "0"], None, "must be at least 1"),
        (["cancel", "SC-1", "--window", "-1"], None, "must be a finite number"),
        (["cancel", "SC-1", "--guard", "x"], None, "not a number"),
        (["cancel", "SC-1", "--per-schedule", "many"], None, "not an integer"),
        (["cancel", "SC-1", "--mode", "fast"], None, "invalid choice"),
        (["cancel", "SC-1", "--base-url", "http://example.com/api/v3", *FAST], None, "http"),
        (["cancel", "SC-1", "--api-key", "bad key", *FAST], None, "apiKey"),
        (["frobnicate"], None, "invalid choice"),
    ],
)
def test_usage_and_input_errors_exit_2(argv: list[str], env_drop: str | None, message: str) -> None:
    """Bad options, missing credentials and unreadable input exit 2 with a message, no traceback."""
    env = _env("http://127.0.0.1:9/api/v3")
    if env_drop:
        del env[env_drop]
    result = _run(argv, env)
    assert result.code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_no_command_prints_help_and_exits_2() -> None:
    """``schedcancel`` alone prints the help (to stderr) and exits 2."""
    result = _run([], {})
    assert result.code == 2
    assert "cancel" in result.stderr
    assert "demo" in result.stderr
    assert "mock-server" in result.stderr


def test_help_and_version_exit_0() -> None:
    """``--help`` for every command and ``--version`` go to stdout and exit 0."""
    for argv in (["--help"], ["cancel", "--help"], ["demo", "--help"], ["mock-server", "--help"]):
        result = _run(argv, {})
        assert result.code == 0
        assert "usage: schedcancel" in result.stdout
    cancel_help = _run(["cancel", "--help"], {}).stdout
    for needle in ("SCHEDCANCEL_API_KEY", "SCHEDCANCEL_PASSWORD", "exit codes", "130", "--journal"):
        assert needle in cancel_help
    version = _run(["--version"], {})
    assert version.code == 0
    assert version.stdout.startswith("schedcancel ")


def test_wrong_password_exits_3_and_stops_at_once(serve: Callable[..., ServerThread]) -> None:
    """A refused API user is an authentication failure: the job stops early and exits 3."""
    server = serve(active=_ids(50))
    result = _run(
        ["cancel", *_ids(50), "--concurrency", "2", *FAST],
        _env(server.base_url, SCHEDCANCEL_PASSWORD="not-the-password"),
    )
    assert result.code == 3
    assert "stopped by: AuthenticationError" in result.stderr
    assert len(server.server.recorder) <= 2
    assert "not-the-password" not in result.stdout + result.stderr


def test_missing_signature_exits_3(serve: Callable[..., ServerThread]) -> None:
    """A connector that requires signing refuses unsigned requests (1004): exit 3."""
    server = serve(active=["SC-1"], secret=SECRET)
    result = _run(["cancel", "SC-1", *FAST], _env(server.base_url))
    assert result.code == 3
    assert "AuthenticationError" in result.stderr


def test_server_errors_leave_the_job_incomplete_exit_3(
    serve: Callable[..., ServerThread],
) -> None:
    """Ids that end in errors (here 5xx after retries) make the job incomplete: exit 3."""
    server = serve(active=_ids(3), faults=Faults(server_error=1.0))
    settings = _settings(server.base_url, retry=RetryPolicy(attempts=1))
    report = _run_settings(settings, _ids(3))
    assert report.exit_code == 3
    assert report.error_types == {"ServerError": 3}
    assert report.progress is not None
    assert report.progress.counts[OutcomeKind.ERROR] == 3


def test_transport_failure_exits_3() -> None:
    """Nothing listening on the port: transport errors, exit 3."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = _settings(f"http://127.0.0.1:{port}/api/v3", retry=RetryPolicy(attempts=1))
    report = _run_settings(settings, ["SC-1", "SC-2"])
    assert report.exit_code == 3
    assert report.error_types == {"TransportError": 2}


def _settings(base_url: str, **overrides: Any) -> CancelSettings:
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "username": USERNAME,
        "password": PASSWORD,
        "base_url": base_url,
        "limits": RateLimits(total=1000, window=1.0, guard=0.05),
        "show_progress": False,
        "quiet": True,
    }
    values.update(overrides)
    return CancelSettings(**values)


def _run_settings(settings: CancelSettings, ids: list[str]) -> RunReport:
    err = io.StringIO()
    return asyncio.run(run_cancel(settings, ids, total=len(ids), stdout=io.StringIO(), stderr=err))


def test_settings_repr_shows_no_secret() -> None:
    """The settings' repr redacts the apiKey and leaves out password, secret and Redis URL."""
    settings = _settings(
        "http://127.0.0.1:9/api/v3",
        shared_secret=SECRET,
        redis_url="redis://:redis-pass@127.0.0.1:6379/0",
    )
    text = repr(settings)
    _assert_no_secrets(text)
    assert "redis-pass" not in text
    assert "cli-***" in text


def test_sigint_stops_cleanly_exit_130(serve: Callable[..., ServerThread], tmp_path: Path) -> None:
    """Ctrl-C: nothing new is sent, requests in flight finish and are journaled; exit 130."""
    server = serve(
        active=_ids(60),
        limits=ServerLimits(total=20, per_schedule=10, window=30.0),
        faults=Faults(response_latency=(0.3, 0.3)),
    )
    journal = tmp_path / "run.jsonl"

    def interrupt() -> None:
        deadline = time.monotonic() + 20
        while len(server.server.recorder) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    killer = threading.Thread(target=interrupt)
    killer.start()
    result = _run(
        ["cancel", *_ids(60), "--journal", str(journal), "--json", *TWENTY],
        _env(server.base_url),
    )
    killer.join()
    assert result.code == 130, result.stderr
    assert "stopping: no new requests" in result.stderr
    assert "exit 130: interrupted" in result.stderr
    sent = server.sent_ids()  # the client is closed: nothing more can arrive
    assert len(sent) == 20  # the 40 waiting for the next window were withdrawn, not sent
    journaled = list(read_journal(journal))
    assert sorted(o.schedule_id for o in journaled) == sorted(sent)
    assert all(o.kind is OutcomeKind.CANCELLED for o in journaled)
    summary = json.loads(result.lines()[-1])["summary"]
    assert summary["interrupted"] is True
    assert summary["not_done"] == 40


def test_second_sigint_abandons_requests_in_flight(serve: Callable[..., ServerThread]) -> None:
    """A second Ctrl-C does not wait for slow responses: exit 130 at once."""
    server = serve(active=_ids(5), faults=Faults(response_latency=(20.0, 20.0)))
    err = io.StringIO()

    def interrupt_twice() -> None:
        deadline = time.monotonic() + 20
        while len(server.server.recorder) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)
        while "stopping:" not in err.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    killer = threading.Thread(target=interrupt_twice)
    killer.start()
    started = time.monotonic()
    result = _run(["cancel", *_ids(5), *FAST], _env(server.base_url), stderr=err)
    killer.join()
    assert result.code == 130
    # The responses take 20 s: finishing well before shows they were not waited for.
    assert time.monotonic() - started < 15
    assert "abandoning the requests in flight" in result.stderr
    assert "abandoned in flight: 5" in result.stderr


# --------------------------------------------------------------------------- subprocesses


def test_subprocess_cancel_from_stdin_pipe(serve: Callable[..., ServerThread]) -> None:
    """``python -m schedcancel cancel --from -`` reads a pipe and exits 0."""
    server = serve(active=_ids(10))
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module
        _schedcancel("cancel", "--from", "-", *FAST),
        input="\n".join(_ids(10)) + "\n",
        capture_output=True,
        text=True,
        env=_subprocess_env(server.base_url),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 10
    assert "schedcancel summary" in proc.stderr
    _assert_no_secrets(proc.stdout, proc.stderr)


@pytest.mark.parametrize(
    ("argv", "code"),
    [(["SC-404"], 1), ([], 2), (["SC-1", "--password", "nope"], 3)],
)
def test_subprocess_exit_codes(
    serve: Callable[..., ServerThread], argv: list[str], code: int
) -> None:
    """The process exit status is the documented code (1 failed, 2 usage, 3 auth)."""
    server = serve(active=["SC-1"])
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module
        _schedcancel("cancel", *argv, *FAST),
        capture_output=True,
        text=True,
        env=_subprocess_env(server.base_url),
        timeout=60,
        check=False,
    )
    assert proc.returncode == code, proc.stderr


def test_subprocess_sigterm_stops_cleanly_exit_130(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """SIGTERM to the process: in-flight requests finish and are journaled; exit 130."""
    server = serve(
        active=_ids(60),
        limits=ServerLimits(total=20, per_schedule=10, window=30.0),
        faults=Faults(response_latency=(0.3, 0.3)),
    )
    journal = tmp_path / "run.jsonl"
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        _schedcancel("cancel", *_ids(60), "--journal", str(journal), *TWENTY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_subprocess_env(server.base_url),
    )
    try:
        deadline = time.monotonic() + 30
        while len(server.server.recorder) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert len(stdout.splitlines()) == 20
    assert sorted(o.schedule_id for o in read_journal(journal)) == sorted(server.sent_ids())
    assert len(server.sent_ids()) == 20


def test_kill_and_resume_sends_nothing_final_twice(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """SIGKILL mid-run, then a re-run on the same journal: one final line per id, no re-sends.

    The server's recorder shows that no id final in the journal when the
    process died was sent again by the second run.
    """
    ids = _ids(300, prefix="KILL-")
    server = serve(
        active=ids,
        limits=ServerLimits(total=100_000, per_schedule=10, window=1.0),
        faults=Faults(response_latency=(0.01, 0.04), seed=7),
    )
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
    journal = tmp_path / "run.jsonl"
    argv = _schedcancel(
        *("cancel", "--from", str(ids_file), "--journal", str(journal), "--concurrency", "8"),
        *("-q", "--total", "100000", "--window", "1", "--guard", "0.05"),
    )
    env = _subprocess_env(server.base_url)
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)  # noqa: S603
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if journal.exists() and journal.read_bytes().count(b'"outcome"') >= 80:
                break
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    final_at_kill = {o.schedule_id for o in read_journal(journal) if o.final}
    assert 80 <= len(final_at_kill) < 300, "the kill came too late to test anything"
    # Arrivals the server records from here on may include requests the dead process had
    # sent; none of those can be final in the journal (their answers were never read).
    resumed_from = len(server.server.recorder)

    second = subprocess.run(  # noqa: S603 - our own interpreter and module
        argv, capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert second.returncode == 0, second.stderr
    resent = set(server.sent_ids(resumed_from))
    assert not resent & final_at_kill
    outcomes = list(read_journal(journal))
    finals: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.final:
            finals[outcome.schedule_id] = finals.get(outcome.schedule_id, 0) + 1
    assert sorted(finals) == sorted(ids)
    assert set(finals.values()) == {1}
    assert all(o.ok for o in outcomes)
    assert all(server.server.status_of(i) == "CANCELLED" for i in ids)


def test_mock_server_subcommand_serves_until_sigterm(tmp_path: Path) -> None:
    """``schedcancel mock-server`` prints its URL, serves cancels, and exits 0 on SIGTERM."""
    env = _subprocess_env("unused")
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        _schedcancel(
            "mock-server",
            "--schedule",
            "SC-1",
            "--user",
            f"{USERNAME}:{PASSWORD}",
            "--api-key",
            API_KEY,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        result = _run(["cancel", "SC-1", "SC-2", *FAST], _env(base_url))
        assert result.code == 1
        assert sorted(result.lines())[0] == "SC-1\tcancelled\tACTIVE->CANCELLED"
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0


@pytest.mark.slow
def test_demo_runs_with_no_429_within_a_minute() -> None:
    """``schedcancel demo`` ends 0 with 0 x 429 and a makespan near its lower bound."""
    started = time.monotonic()
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module
        _schedcancel("demo", "--json"),
        capture_output=True,
        text=True,
        env=_subprocess_env("unused"),
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
    # Never below the bound (that would mean a 429 risk); near it, with slack for a busy machine.
    assert 16.0 <= demo["makespan"] <= 16.0 * 1.25
    assert "0 x 429" in proc.stderr
    assert "lower bound" in proc.stderr


# --------------------------------------------------------------------------- redis


@pytest.mark.redis
def test_redis_limiter_is_used_with_redis_flag(serve: Callable[..., ServerThread]) -> None:
    """``--redis URL`` shares the budget through Redis; the run works the same."""
    with socket.socket() as probe:
        try:
            probe.connect(("127.0.0.1", 6379))
        except OSError:
            pytest.skip("no Redis server on 127.0.0.1:6379")
    user = f"cli-{uuid.uuid4().hex[:8]}"
    server = serve(active=["SC-1", "SC-2"], username=user)
    result = _run(
        ["cancel", "SC-1", "SC-2", "--redis", "redis://127.0.0.1:6379/0", *FAST],
        _env(server.base_url, SCHEDCANCEL_USERNAME=user),
    )
    assert result.code == 0, result.stderr


def test_redis_flag_without_redis_py_gives_an_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without redis-py, ``--redis`` exits 2 telling how to install the extra."""
    monkeypatch.delitem(sys.modules, "schedcancel.redis", raising=False)
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    result = _run(
        ["cancel", "SC-1", "--redis", "redis://127.0.0.1:6379/0", *FAST],
        _env("http://127.0.0.1:9/api/v3"),
    )
    assert result.code == 2
    assert "pip install 'schedcancel[redis]'" in result.stderr


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "?"), (float("inf"), "?"), (-1, "?"), (0.44, "0.4s"), (12.4, "12s"), (185, "3m05s"),
     (9840, "2h44m")],
)  # fmt: skip
def test_format_duration(seconds: float | None, text: str) -> None:
    """Durations read as people write them."""
    assert format_duration(seconds) == text


def test_keyboard_interrupt_outside_the_loop_exits_130(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A KeyboardInterrupt before the signal handlers are in place still exits 130."""

    def interrupted(*args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(_parser, "_cmd_cancel", interrupted)
    result = _run(["cancel", "SC-1"], _env("http://127.0.0.1:9/api/v3"))
    assert result.code == 130
    assert "interrupted" in result.stderr


# --------------------------------------------------------------------------- more input forms


def test_arguments_then_stdin(serve: Callable[..., ServerThread]) -> None:
    """Ids given as arguments come first, then the ids read from stdin."""
    server = serve(active=_ids(4))
    result = _run(
        ["cancel", "SC-00000", "--from", "-", "--json", *FAST],
        _env(server.base_url),
        stdin="SC-00001\nSC-00002\nSC-00003\n",
    )
    assert result.code == 0, result.stderr
    assert sorted(server.sent_ids()) == _ids(4)


def test_ids_from_a_fifo_are_streamed_with_unknown_total(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """A named pipe is read as it is written; its total is not counted in advance."""
    server = serve(active=_ids(5))
    fifo = tmp_path / "ids.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with fifo.open("w", encoding="utf-8") as pipe:
            pipe.write("\n".join(_ids(5)) + "\n")

    writer = threading.Thread(target=write)
    writer.start()
    result = _run(["cancel", "--from", str(fifo), "--json", *FAST], _env(server.base_url))
    writer.join()
    assert result.code == 0, result.stderr
    summary = json.loads(result.lines()[-1])["summary"]
    assert summary["total"] is None
    assert summary["counts"]["cancelled"] == 5


def test_a_file_that_is_not_utf8_is_an_input_error(tmp_path: Path) -> None:
    """A file that is not UTF-8 exits 2 before anything is sent."""
    path = tmp_path / "ids.txt"
    path.write_bytes(b"SC-1\n\xff\xfe\n")
    result = _run(["cancel", "--from", str(path), *FAST], _env("http://127.0.0.1:9/api/v3"))
    assert result.code == 2
    assert "cannot read" in result.stderr


def test_stdin_that_is_not_utf8_stops_the_job_exit_2(serve: Callable[..., ServerThread]) -> None:
    """Undecodable stdin ends the job after what was read: summary printed, exit 2."""
    server = serve(active=["SC-1"])
    stdin = io.TextIOWrapper(io.BytesIO(b"SC-1\n" + b"\xff" * 70000 + b"\n"), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["cancel", "--from", "-", *FAST],
        stdin=stdin,
        stdout=out,
        stderr=err,
        environ=_env(server.base_url),
    )
    assert code == 2
    assert "stopped by: InputError: cannot read stdin: 'utf-8' codec can't decode" in err.getvalue()


def test_zero_window_is_a_usage_error() -> None:
    """A window of 0 seconds is refused by the argument parser."""
    result = _run(["cancel", "SC-1", "--window", "0"], _env("http://127.0.0.1:9/api/v3"))
    assert result.code == 2
    assert "must be > 0" in result.stderr


def test_rich_bar_with_stdout_redirected_keeps_results_on_stdout(
    serve: Callable[..., ServerThread],
) -> None:
    """With the bar on a terminal but stdout redirected, per-id lines go to stdout."""
    server = serve(active=["SC-1"])
    result = _run(["cancel", "SC-1", *FAST], _env(server.base_url), stderr=_Terminal())
    assert result.code == 0
    assert result.lines() == ["SC-1\tcancelled\tACTIVE->CANCELLED"]


def test_a_closed_stream_is_not_a_terminal() -> None:
    """A closed stream (isatty raises) counts as no terminal."""
    stream = _Terminal()
    stream.close()
    assert not _isatty(stream)
    assert not _isatty(object())


# --------------------------------------------------------------------------- rendering


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
    assert cli.progress_line(_progress()) == "120/300 done (40.0%) | 60.0/min | 0 x 429 | ETA 3m05s"
    assert cli.progress_line(_progress(total=None, stopping=True)) == (
        "120 done | 60.0/min | 0 x 429 | stopping"
    )
    assert cli.progress_line(_progress(total=0, done=0)).startswith("0/0 done (100.0%)")


def test_summary_notes_what_a_stopped_run_left_undone() -> None:
    """A stopped run with an unknown total reports the ids taken but not sent."""
    report = RunReport(progress=_progress(total=None, stopping=True, withdrawn=7), failure=None,
                       interrupted=True)  # fmt: skip
    err = io.StringIO()
    cli.print_summary(report, _settings("http://127.0.0.1:9/api/v3"), err)
    assert "not sent (stopped early): 7" in err.getvalue()
    assert "exit 130" in err.getvalue()


def test_rich_summary_shows_the_journal_column_on_a_terminal() -> None:
    """On a terminal the summary is a rich table, with a column for journal outcomes."""
    counts = dict.fromkeys(OutcomeKind, 0) | {OutcomeKind.CANCELLED: 4}
    report = RunReport(progress=_progress(journal_counts=counts, skipped=4), failure=None,
                       interrupted=False)  # fmt: skip
    err = _Terminal()
    cli.print_summary(report, _settings("http://127.0.0.1:9/api/v3"), err)
    assert "from journal" in err.getvalue()
    assert "exit 0" in err.getvalue()


def test_outcome_text_for_each_kind() -> None:
    """Per-id lines: id, outcome and a detail, with tabs inside values replaced."""
    error = CancelOutcome.from_exception("SC-1", ScheduleCancelError("reset\tby peer"))
    invalid = CancelOutcome.invalid("a\tb", "bad")
    assert cli.outcome_text(error) == "SC-1\terror\tScheduleCancelError: reset by peer"
    assert cli.outcome_text(invalid) == "a b\tinvalid\tbad"


def test_an_outside_cancellation_is_not_swallowed(serve: Callable[..., ServerThread]) -> None:
    """Cancelling run_cancel from outside (no signal) propagates CancelledError."""
    server = serve(active=["SC-1"], faults=Faults(response_latency=(5.0, 5.0)))
    settings = _settings(server.base_url)

    async def cancel_soon() -> None:
        task = asyncio.create_task(
            run_cancel(settings, ["SC-1"], total=1, stdout=io.StringIO(), stderr=io.StringIO())
        )
        while len(server.server.recorder) < 1:  # noqa: ASYNC110 - the recorder has no event
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_soon())


# --------------------------------------------------------------------------- demo, mock-server


def test_demo_in_process_with_a_tiny_window() -> None:
    """The demo cancels its seeded schedules with 0 x 429 and reports the makespan's bound."""
    result = _run(
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
    result = _run(
        ["demo", "--schedules", "20", *TINY_DEMO, "--no-progress", "--journal", str(journal)],
        {},
    )
    assert result.code == 1
    assert "unexpected outcome" in result.stderr
    assert journal.exists()
    assert f"journal: {journal}" in result.stderr


def test_mock_server_command_hands_its_options_to_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``mock-server`` parses the emulator's options and runs it (served in a subprocess test)."""
    from schedcancel import testing  # noqa: PLC0415 - patched for this test only

    seen: list[Any] = []

    def fake_main(args: Any) -> int:
        seen.append(args)
        return 0

    monkeypatch.setattr(testing, "main_mock_server", fake_main)
    result = _run(["mock-server", "--schedule", "SC-1", "--window", "2", "--port", "0"], {})
    assert result.code == 0
    assert seen[0].schedules == ["SC-1"]
    assert seen[0].window == 2.0


def test_python_dash_m_runs_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m schedcancel`` calls ``cli.main`` and exits with its code."""
    import runpy  # noqa: PLC0415 - only this test runs a module as __main__

    monkeypatch.setattr(sys, "argv", ["schedcancel", "--version"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("schedcancel", run_name="__main__")
    assert exit_info.value.code == 0


class _ClosedPipe(io.StringIO):
    """A stdout whose reader went away after the first line."""

    def write(self, text: str) -> int:
        """Take one line, then fail as a closed pipe does."""
        if self.getvalue():
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_a_closed_stdout_does_not_stop_the_job(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """When stdout's reader leaves (``| head -1``), every id is still cancelled and journaled."""
    server = serve(active=_ids(10))
    journal = tmp_path / "run.jsonl"
    result = _run(
        ["cancel", *_ids(10), "--journal", str(journal), "--json", "--concurrency", "1", *FAST],
        _env(server.base_url),
        stdout=_ClosedPipe(),
    )
    assert result.code == 0, result.stderr
    assert len(result.lines()) == 1
    assert result.stderr.count("stdout was closed; the job goes on") == 1
    assert sorted(o.schedule_id for o in read_journal(journal)) == _ids(10)


def test_subprocess_piped_into_head_finishes_the_job(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """``schedcancel cancel ... | head -1``: the process finishes the job, exits 0, no traceback."""
    ids = _ids(3000)
    server = serve(active=ids, limits=ServerLimits(total=100_000, per_schedule=10, window=1.0))
    journal = tmp_path / "run.jsonl"
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        _schedcancel(
            *("cancel", "--from", str(ids_file), "--journal", str(journal), "--no-progress"),
            *("--total", "100000", "--window", "1", "--guard", "0.05"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_subprocess_env(server.base_url),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    stderr = err.decode()
    assert proc.returncode == 0, stderr
    assert "stdout was closed; the job goes on" in stderr
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr
    assert len(list(read_journal(journal))) == 3000


def test_rich_notes_print_above_the_live_bar() -> None:
    """Messages during a rich run (stop notices) go through the live console."""
    err = _Terminal()
    reporter = _RichReporter(err, stdout_is_terminal=False)
    with reporter:
        reporter.note("schedcancel: stopping")
    assert "schedcancel: stopping" in err.getvalue()


@pytest.mark.parametrize(
    ("interrupted", "ok", "code"), [(True, True, 130), (False, True, 0), (False, False, 1)]
)
def test_demo_verdict(interrupted: bool, ok: bool, code: int) -> None:
    """The demo exits 130 when interrupted, else 0 exactly when the job went as seeded."""
    assert _demo_verdict(interrupted=interrupted, ok=ok) == code


# --------------------------------------------------------------------------- stdin as it comes


def _reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("schedcancel-read-")]


def test_stdin_pipe_ids_are_sent_as_they_arrive_and_sigint_stops_while_it_is_silent(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """An id written to a pipe that stays open is sent at once; Ctrl-C then stops the job.

    The producer is alive but silent: the job still stops (exit 130, the
    journal holds what was sent), and the reading thread ends once the pipe
    gives it something, without sending anything more.
    """
    server = serve(active=["SC-1", "SC-2"])
    journal = tmp_path / "run.jsonl"
    read_fd, write_fd = os.pipe()
    sent_before_eof: list[bool] = []

    def producer() -> None:
        os.write(write_fd, b"SC-1\n")
        deadline = time.monotonic() + 20
        while not server.sent_ids() and time.monotonic() < deadline:
            time.sleep(0.01)
        sent_before_eof.append(bool(server.sent_ids()))
        if sent_before_eof[0]:
            os.kill(os.getpid(), signal.SIGINT)
        else:  # a reader waiting for EOF or a full buffer: give it EOF; fail, do not hang
            os.close(write_fd)

    thread = threading.Thread(target=producer)
    thread.start()
    out, err = io.StringIO(), io.StringIO()
    with os.fdopen(read_fd, "r", encoding="utf-8") as stdin:
        code = main(
            ["cancel", "--from", "-", "--journal", str(journal), "--json", *FAST],
            stdin=stdin,
            stdout=out,
            stderr=err,
            environ=_env(server.base_url),
        )
    thread.join()
    assert sent_before_eof == [True]
    assert code == 130, err.getvalue()
    assert server.sent_ids() == ["SC-1"]
    assert [o.schedule_id for o in read_journal(journal)] == ["SC-1"]
    assert json.loads(out.getvalue().splitlines()[0])["id"] == "SC-1"
    os.write(write_fd, b"SC-2\n")  # too late: the job is over
    os.close(write_fd)
    for reader in _reader_threads():
        reader.join(10)
    assert _reader_threads() == []
    assert server.sent_ids() == ["SC-1"]


def test_subprocess_sigterm_while_stdin_is_silent_exits_130(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """SIGTERM while the stdin producer is alive but silent: the process ends, exit 130.

    The process does not wait for the read blocked on stdin (no executor
    thread to join, no lock held by the reading thread at shutdown).
    """
    server = serve(active=["SC-1"])
    journal = tmp_path / "run.jsonl"
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        _schedcancel("cancel", "--from", "-", "--journal", str(journal), "--no-progress", *FAST),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_subprocess_env(server.base_url),
    )
    assert proc.stdin is not None
    code: int | None = None
    try:
        proc.stdin.write("SC-1\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and '"id":"SC-1"' not in (
            journal.read_text(encoding="utf-8") if journal.exists() else ""
        ):
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = proc.wait(timeout=20)  # stdin still open: only the signal can end it
    finally:
        if proc.poll() is None:
            proc.kill()
        stdout, stderr = proc.communicate()
    assert code == 130, stderr
    assert server.sent_ids() == ["SC-1"]
    assert stdout.splitlines() == ["SC-1\tcancelled\tACTIVE->CANCELLED"]
    assert [o.schedule_id for o in read_journal(journal)] == ["SC-1"]
    assert "Fatal Python error" not in stderr
    assert "Traceback" not in stderr


async def test_line_reader_reads_what_a_text_file_would_give(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A BOM, CRLF, CR and LF line ends, comments, blanks and a last line without newline.

    Read three bytes at a time, so the BOM, a line end and a two-byte
    character are split between reads.
    """
    monkeypatch.setattr(_input, "_STDIN_CHUNK", 3)
    read_fd, write_fd = os.pipe()
    text = "\ufeffSC-1\r\nSC-2\rSC-3\n# café\n\n  SC-4  \nSC-5"
    os.write(write_fd, text.encode("utf-8"))
    os.close(write_fd)
    reader = _LineReader(read_fd, "pipe")
    assert [schedule_id async for schedule_id in reader] == ["SC-1", "SC-2", "SC-3", "SC-4", "SC-5"]
    with pytest.raises(StopAsyncIteration):
        await reader.__anext__()
    reader.close()


@pytest.mark.parametrize(
    ("data", "line"),
    [(b"SC-1\n\xff\n", 2), (b"SC-1\nSC-2\nSC-\xc3(\n", 3), (b"SC-1\n\xe2\x82", 2)],
)
def test_stdin_pipe_that_is_not_utf8_is_an_input_error_naming_the_line(
    serve: Callable[..., ServerThread], data: bytes, line: int
) -> None:
    """Bytes that are not UTF-8 on a pipe (a truncated character too) end the job: exit 2."""
    server = serve(active=["SC-1", "SC-2"])
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    out, err = io.StringIO(), io.StringIO()
    with os.fdopen(read_fd, "r", encoding="utf-8") as stdin:
        code = main(
            ["cancel", "--from", "-", "--no-progress", *FAST],
            stdin=stdin,
            stdout=out,
            stderr=err,
            environ=_env(server.base_url),
        )
    assert code == 2
    assert f"stopped by: InputError: cannot read stdin: line {line} is not UTF-8" in err.getvalue()
    assert "Traceback" not in err.getvalue()


async def test_line_reader_is_bounded_and_its_thread_ends_when_it_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A consumer that stops taking: the thread waits with one chunk queued, and ends at close."""
    monkeypatch.setattr(_input, "_STDIN_CHUNK", 8)
    read_fd, write_fd = os.pipe()
    os.write(write_fd, "".join(f"SC-{i:04d}\n" for i in range(100)).encode())
    reader = _LineReader(read_fd, "bounded", max_chunks=1)
    assert await reader.__anext__() == "SC-0000"
    deadline = time.monotonic() + 10
    while not reader._chunks.full() and time.monotonic() < deadline:  # noqa: ASYNC110 - a thread
        await asyncio.sleep(0.01)
    assert reader._chunks.qsize() == 1  # the rest waits in the pipe, not in memory
    reader.close()
    reader._thread.join(10)
    assert not reader._thread.is_alive()  # the writer is still open: it ended on the close
    os.close(write_fd)


def test_line_reader_closed_before_reading_closes_its_descriptor() -> None:
    """A job that never reads (a busy journal, say) leaves no descriptor and no thread behind."""
    read_fd, write_fd = os.pipe()
    reader = _LineReader(read_fd, "unused")
    reader.close()
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(read_fd)
    os.close(write_fd)
    assert reader._thread.ident is None


async def test_line_reader_read_error_is_an_input_error(tmp_path: Path) -> None:
    """A descriptor that cannot be read gives an InputError naming the source."""
    fd = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    reader = _LineReader(fd, "out")
    with pytest.raises(cli.InputError, match="cannot read out: Bad file descriptor"):
        await reader.__anext__()
    with pytest.raises(StopAsyncIteration):
        await reader.__anext__()


class _BrokenStdin(io.StringIO):
    """A stream whose descriptor is closed."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def fileno(self) -> int:
        """The closed descriptor."""
        return self._fd


def test_stdin_with_a_closed_descriptor_is_a_usage_error() -> None:
    """``--from -`` with stdin closed: exit 2 with a message, nothing else."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    os.close(write_fd)
    err = io.StringIO()
    code = main(
        ["cancel", "--from", "-", *FAST],
        stdin=_BrokenStdin(read_fd),
        stdout=io.StringIO(),
        stderr=err,
        environ=_env("http://127.0.0.1:9/api/v3"),
    )
    assert code == 2
    assert err.getvalue() == "schedcancel: error: cannot read stdin: Bad file descriptor\n"


def test_ids_from_a_silent_fifo_are_sent_as_they_arrive(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """``--from FIFO`` is read like stdin: an id is sent while the writer keeps the FIFO open."""
    server = serve(active=["SC-1", "SC-2"])
    fifo = tmp_path / "ids.fifo"
    os.mkfifo(fifo)
    sent_while_open: list[bool] = []

    def write() -> None:
        with fifo.open("w", encoding="utf-8") as pipe:
            pipe.write("SC-1\n")
            pipe.flush()
            deadline = time.monotonic() + 20
            while not server.sent_ids() and time.monotonic() < deadline:
                time.sleep(0.01)
            sent_while_open.append(bool(server.sent_ids()))
            pipe.write("SC-2\n")

    writer = threading.Thread(target=write)
    writer.start()
    result = _run(["cancel", "--from", str(fifo), "--json", *FAST], _env(server.base_url))
    writer.join()
    assert result.code == 0, result.stderr
    assert sent_while_open == [True]
    assert sorted(server.sent_ids()) == ["SC-1", "SC-2"]


# --------------------------------------------------------------------------- more exit codes


@pytest.mark.parametrize(
    "url",
    [
        "notaurl://x",
        "redis://:hunter2-Secret@127.0.0.1:notaport/0",
        "redis://user:hunter2-Secret@[::1/0",
        "redis://:hunter2%2DSecret@127.0.0.1:notaport/0",
    ],
)
@pytest.mark.parametrize("where", ["flag", "environment"])
def test_a_bad_redis_url_is_a_usage_error_without_its_password(url: str, where: str) -> None:
    """A bad ``--redis`` URL: exit 2, one line, no traceback, no password."""
    pytest.importorskip("redis")
    env = _env("http://127.0.0.1:9/api/v3")
    argv = ["cancel", "SC-1", "--no-progress", *FAST]
    if where == "flag":
        argv += ["--redis", url]
    else:
        env["SCHEDCANCEL_REDIS_URL"] = url
    result = _run(argv, env)
    assert result.code == 2
    assert result.stderr.startswith("schedcancel: error: --redis: not a usable Redis URL")
    assert result.stderr.count("\n") == 1
    assert "hunter2" not in result.stderr
    _assert_no_secrets(result.stderr)


def test_redis_url_secrets_are_found_however_the_url_is_broken() -> None:
    """The password of a URL, as written and decoded, even where ``urlsplit`` would raise."""
    assert _url_secrets("redis://u:p%40ss@[::1/0") == ["p%40ss", "p@ss"]
    assert _url_secrets("redis://:pw@host:6379") == ["pw", "pw"]
    assert _url_secrets("redis://host:6379/0") == []
    assert _url_secrets("notaurl") == []


@pytest.mark.parametrize(
    ("code", "message"), [(7002, "schedule request failed"), (1003, "system error"), (None, None)]
)
def test_a_refusal_that_is_not_final_exits_3_and_is_sent_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, code: int | None, message: str | None
) -> None:
    """A ``failed`` outcome the next run sends again (7002, 1xxx, no code) is incomplete: exit 3."""
    from schedcancel import CancelResult, ScheduleClient  # noqa: PLC0415 - this test only

    sent: list[str] = []

    async def refuse(self: ScheduleClient, schedule_id: str, **kwargs: object) -> CancelResult:
        sent.append(schedule_id)
        return CancelResult(success=False, error_code=code, error_message=message)

    monkeypatch.setattr(ScheduleClient, "cancel", refuse)
    journal = tmp_path / "run.jsonl"
    argv = ["cancel", "SC-1", "--journal", str(journal), "--json", *FAST]
    for run in (1, 2):
        result = _run(argv, _env("http://127.0.0.1:9/api/v3"))
        assert result.code == 3, result.stderr
        assert "failed, not final (a run again sends them): 1" in result.stderr
        assert "exit 3: incomplete" in result.stderr
        summary = json.loads(result.lines()[-1])["summary"]
        assert (summary["exit_code"], summary["failed_not_final"]) == (3, 1)
        assert sent == ["SC-1"] * run


def test_a_journal_failing_mid_run_exits_3(
    serve: Callable[..., ServerThread],
    journal_fails_after: Callable[[int], None],
    tmp_path: Path,
) -> None:
    """The journal cannot be written after the job started: exit 3 (run again), not 2."""
    server = serve(active=_ids(10))
    journal_fails_after(3)
    journal = tmp_path / "run.jsonl"
    argv = ["cancel", *_ids(10), "--journal", str(journal), "--concurrency", "1", *FAST]
    result = _run(argv, _env(server.base_url))
    assert result.code == 3, result.stderr
    assert "stopped by: OSError: [Errno 28] No space left on device" in result.stderr
    assert "exit 3: incomplete" in result.stderr


def test_a_journal_that_cannot_be_opened_exits_2(tmp_path: Path) -> None:
    """A journal in a directory that does not exist: exit 2 before anything is sent."""
    journal = tmp_path / "missing" / "run.jsonl"
    result = _run(
        ["cancel", "SC-1", "--journal", str(journal), *FAST], _env("http://127.0.0.1:9/api/v3")
    )
    assert result.code == 2, result.stderr
    assert "exit 2: usage or input error" in result.stderr


@pytest.mark.parametrize(
    ("failure", "started", "code"),
    [
        (cli.InputError("cannot read stdin: line 3 is not UTF-8"), True, 2),
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
