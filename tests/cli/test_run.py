"""``schedcancel.cli._run``: the bulk run: journal, exit codes, signals, Redis, a closed stdout."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from schedcancel import OutcomeKind, RetryPolicy
from schedcancel._bulk.journal import read_journal
from schedcancel.cli import run_bulk
from schedcancel.testing import Faults, ServerLimits

from support.cli import (
    FAST,
    SECRET,
    TWENTY,
    ServerThread,
    assert_no_secrets,
    cli_env,
    make_ids,
    make_settings,
    run_cli,
    run_settings,
    schedcancel_argv,
    subprocess_env,
)


def test_ids_as_arguments_are_cancelled_exit_0(serve: Callable[..., ServerThread]) -> None:
    """Ids given as arguments are cancelled; one TSV line each on stdout; exit 0."""
    server = serve(active=["SC-1", "SC-2"], cancelled=["SC-3"])
    result = run_cli(["cancel", "SC-1", "SC-2", "SC-3", *FAST], cli_env(server.base_url))
    assert result.code == 0, result.stderr
    assert sorted(result.lines()) == [
        "SC-1\tcancelled\tACTIVE->CANCELLED",
        "SC-2\tcancelled\tACTIVE->CANCELLED",
        "SC-3\talready_cancelled\tCANCELLED->CANCELLED",
    ]
    assert "schedcancel summary" in result.stderr
    assert "exit 0: every id is cancelled" in result.stderr
    assert server.server.status_of("SC-1") == "CANCELLED"
    assert_no_secrets(result.stdout, result.stderr)


# --------------------------------------------------------------------------- journal


def test_journal_records_every_id_and_no_secret(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """The journal holds one line per id with its outcome, and no password, secret or apiKey."""
    server = serve(active=["SC-1"], cancelled=["SC-2"], secret=SECRET)
    journal = tmp_path / "run.jsonl"
    result = run_cli(
        ["cancel", "SC-1", "SC-2", "SC-404", "bad id!", "--journal", str(journal), *FAST],
        cli_env(server.base_url, SCHEDCANCEL_SHARED_SECRET=SECRET),
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
    assert_no_secrets(journal.read_text(encoding="utf-8"), result.stdout, result.stderr)


def test_rerun_on_the_journal_sends_nothing_final_again(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """A second run on the same journal skips what is final; the exit code covers both runs."""
    server = serve(active=["SC-1", "SC-2"])
    journal = tmp_path / "run.jsonl"
    argv = ["cancel", "SC-1", "SC-2", "SC-404", "--journal", str(journal), "--json", *FAST]
    first = run_cli(argv, cli_env(server.base_url))
    assert first.code == 1
    sent = len(server.server.recorder)
    second = run_cli(argv, cli_env(server.base_url))
    assert second.code == 1  # SC-404 failed for good in the first run
    assert len(server.server.recorder) == sent
    summary = json.loads(second.lines()[-1])["summary"]
    assert summary["skipped"] == 3
    assert summary["from_journal"]["cancelled"] == 2
    assert "from journal" in second.stderr
    third = run_cli([*argv, "--retry-failed"], cli_env(server.base_url))
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
        result = run_cli(
            ["cancel", "SC-1", "--journal", str(path), *FAST], cli_env(server.base_url)
        )
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
    result = run_cli(["cancel", "SC-1", "--journal", str(path), *FAST], cli_env(server.base_url))
    assert result.code == 2
    assert "run.jsonl:1: not a schedcancel journal line" in result.stderr


def test_a_journal_failing_mid_run_exits_3(
    serve: Callable[..., ServerThread],
    journal_fails_after: Callable[[int], None],
    tmp_path: Path,
) -> None:
    """The journal cannot be written after the job started: exit 3 (run again), not 2."""
    server = serve(active=make_ids(10))
    journal_fails_after(3)
    journal = tmp_path / "run.jsonl"
    argv = ["cancel", *make_ids(10), "--journal", str(journal), "--concurrency", "1", *FAST]
    result = run_cli(argv, cli_env(server.base_url))
    assert result.code == 3, result.stderr
    assert "stopped by: OSError: [Errno 28] No space left on device" in result.stderr
    assert "exit 3: incomplete" in result.stderr


def test_the_summary_counts_only_what_the_journal_kept(
    serve: Callable[..., ServerThread],
    journal_fails_after: Callable[[int], None],
    tmp_path: Path,
) -> None:
    """A full disk with calls on the wire: the summary and the per-id lines hold only the
    outcomes in the journal, and name the answers it could not keep (issue 20, item 6)."""
    server = serve(active=make_ids(20))
    journal_fails_after(3)
    journal = tmp_path / "run.jsonl"
    argv = [
        "cancel",
        *make_ids(20),
        "--journal",
        str(journal),
        "--concurrency",
        "8",
        "--json",
        *FAST,
    ]
    result = run_cli(argv, cli_env(server.base_url))
    assert result.code == 3, result.stderr
    journaled = sorted(o.schedule_id for o in read_journal(journal))
    *lines, summary = (json.loads(line) for line in result.lines())
    assert sorted(line["id"] for line in lines) == journaled
    counts = summary["summary"]["counts"]
    assert sum(counts.values()) == len(journaled) < len(server.sent_ids())
    unrecorded = len(server.sent_ids()) - len(journaled)
    assert f"answered but not journaled (a run again sends them): {unrecorded}" in result.stderr


def test_a_journal_that_cannot_be_opened_exits_2(tmp_path: Path) -> None:
    """A journal in a directory that does not exist: exit 2 before anything is sent, one line."""
    journal = tmp_path / "missing" / "run.jsonl"
    result = run_cli(
        ["cancel", "SC-1", "--journal", str(journal), "--json", *FAST],
        cli_env("http://127.0.0.1:9/api/v3"),
    )
    assert result.code == 2, result.stderr
    assert result.stderr == (
        f"schedcancel: error: cannot use the journal {journal}: No such file or directory\n"
    )
    assert result.stdout == ""


@pytest.mark.parametrize("case", ["another operation", "busy", "corrupt", "no directory"])
def test_an_unusable_journal_prints_one_line_and_no_summary(
    serve: Callable[..., ServerThread], tmp_path: Path, case: str
) -> None:
    """Before any work, an unusable journal is the one line that matters: no zero table, exit 2."""
    from schedcancel import Journal  # noqa: PLC0415 - only this test opens one directly

    server = serve(active=["SC-1", "SC-2"])
    journal = tmp_path / "run.jsonl"
    expected = {
        "another operation": f"journal {journal} is the journal of a cancel job, not of pause:"
        " use another journal file; nothing was sent",
        "busy": f"journal {journal} is in use by another run",
        "corrupt": f"{journal}:1: not a schedcancel journal line: '\\x1b[2Jgarbage';"
        " nothing was changed",
        "no directory": f"cannot use the journal {journal}: No such file or directory",
    }[case]
    if case == "another operation":
        first = run_cli(
            ["cancel", "--journal", str(journal), *FAST, "SC-1"], cli_env(server.base_url)
        )
        assert first.code == 0, first.stderr
    elif case == "corrupt":
        journal.write_bytes(b'\x1b[2Jgarbage\n{"id":"SC-1","outcome":"cancelled"}\n')
    elif case == "no directory":
        journal = tmp_path / "missing" / "run.jsonl"
        expected = expected.replace(str(tmp_path / "run.jsonl"), str(journal))
    sent = len(server.server.recorder)
    argv = ["pause", "SC-2", "--journal", str(journal), "--json", *FAST]
    with contextlib.ExitStack() as stack:
        if case == "busy":
            stack.enter_context(Journal.open(journal))
        result = run_cli(argv, cli_env(server.base_url))
    assert result.code == 2
    assert result.stderr == f"schedcancel: error: {expected}\n"
    assert result.stdout == ""
    assert len(server.server.recorder) == sent


# --------------------------------------------------------------------------- exit codes


def test_unknown_and_invalid_ids_exit_1(serve: Callable[..., ServerThread]) -> None:
    """An unknown id (7040) and an invalid id are failures: exit 1, the rest cancelled."""
    server = serve(active=["SC-1"])
    result = run_cli(["cancel", "SC-1", "SC-404", "x" * 40, *FAST], cli_env(server.base_url))
    assert result.code == 1
    lines = sorted(result.lines())
    assert lines[0] == "SC-1\tcancelled\tACTIVE->CANCELLED"
    assert lines[1].startswith("SC-404\tfailed\t7040 The scheduleId is not valid")
    assert lines[2].startswith("x" * 40 + "\tinvalid\tscheduleId")
    assert "exit 1: some ids failed" in result.stderr
    assert sorted(server.sent_ids()) == ["SC-1", "SC-404"]


def test_wrong_password_exits_3_and_stops_at_once(serve: Callable[..., ServerThread]) -> None:
    """A refused API user is an authentication failure: the job stops early and exits 3."""
    server = serve(active=make_ids(50))
    result = run_cli(
        ["cancel", *make_ids(50), "--concurrency", "2", *FAST],
        cli_env(server.base_url, SCHEDCANCEL_PASSWORD="not-the-password"),
    )
    assert result.code == 3
    assert "stopped by: AuthenticationError" in result.stderr
    assert len(server.server.recorder) <= 2
    assert "not-the-password" not in result.stdout + result.stderr


def test_a_wrong_base_url_path_exits_3_and_stops_at_the_first_404(
    serve: Callable[..., ServerThread],
) -> None:
    """A base URL typo (/api/v33) gets 404 for every id: a configuration error, like a wrong
    password; the job stops at once (two ids on the wire) instead of sending all fifty."""
    server = serve(active=make_ids(50))
    base_url = server.base_url.replace("/api/v3", "/api/v33")
    result = run_cli(["cancel", *make_ids(50), "--concurrency", "2", *FAST], cli_env(base_url))
    assert result.code == 3
    assert (
        "stopped by: EndpointNotFoundError: no such route: check the base URL's path "
        "(it ends in /api/v3) | HTTP 404"
    ) in result.stderr
    assert 1 <= len(result.lines()) <= 2
    assert all("\terror\t" in line for line in result.lines())
    assert len(server.server.recorder) == 0


def test_missing_signature_exits_3(serve: Callable[..., ServerThread]) -> None:
    """A connector that requires signing refuses unsigned requests (1004): exit 3."""
    server = serve(active=["SC-1"], secret=SECRET)
    result = run_cli(["cancel", "SC-1", *FAST], cli_env(server.base_url))
    assert result.code == 3
    assert "AuthenticationError" in result.stderr


def test_server_errors_leave_the_job_incomplete_exit_3(
    serve: Callable[..., ServerThread],
) -> None:
    """Ids that end in errors (here 5xx after retries) make the job incomplete: exit 3."""
    server = serve(active=make_ids(3), faults=Faults(server_error=1.0))
    settings = make_settings(server.base_url, retry=RetryPolicy(attempts=1))
    report = run_settings(settings, make_ids(3))
    assert report.exit_code == 3
    assert report.error_types == {"ServerError": 3}
    assert report.progress is not None
    assert report.progress.counts[OutcomeKind.ERROR] == 3


def test_transport_failure_exits_3() -> None:
    """Nothing listening on the port: transport errors, exit 3."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = make_settings(f"http://127.0.0.1:{port}/api/v3", retry=RetryPolicy(attempts=1))
    report = run_settings(settings, ["SC-1", "SC-2"])
    assert report.exit_code == 3
    assert report.error_types == {"TransportError": 2}


@pytest.mark.parametrize(
    ("code", "message"), [(7002, "schedule request failed"), (1003, "system error"), (None, None)]
)
def test_a_refusal_that_is_not_final_exits_3_and_is_sent_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, code: int | None, message: str | None
) -> None:
    """A ``failed`` outcome the next run sends again (7002, 1xxx, no code) is incomplete: exit 3."""
    from schedcancel import ScheduleClient, ScheduleResult  # noqa: PLC0415 - this test only

    sent: list[str] = []

    async def refuse(self: ScheduleClient, schedule_id: str, **kwargs: object) -> ScheduleResult:
        sent.append(schedule_id)
        return ScheduleResult(success=False, error_code=code, error_message=message)

    monkeypatch.setattr(ScheduleClient, "cancel", refuse)
    journal = tmp_path / "run.jsonl"
    argv = ["cancel", "SC-1", "--journal", str(journal), "--json", *FAST]
    for run in (1, 2):
        result = run_cli(argv, cli_env("http://127.0.0.1:9/api/v3"))
        assert result.code == 3, result.stderr
        assert "failed, not final (a run again sends them): 1" in result.stderr
        assert "exit 3: incomplete" in result.stderr
        summary = json.loads(result.lines()[-1])["summary"]
        assert (summary["exit_code"], summary["failed_not_final"]) == (3, 1)
        assert sent == ["SC-1"] * run


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
        schedcancel_argv("cancel", *argv, *FAST),
        capture_output=True,
        text=True,
        env=subprocess_env(server.base_url),
        timeout=60,
        check=False,
    )
    assert proc.returncode == code, proc.stderr


# --------------------------------------------------------------------------- signals


def test_sigint_stops_cleanly_exit_130(serve: Callable[..., ServerThread], tmp_path: Path) -> None:
    """Ctrl-C: nothing new is sent, requests in flight finish and are journaled; exit 130."""
    server = serve(
        active=make_ids(60),
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
    result = run_cli(
        ["cancel", *make_ids(60), "--journal", str(journal), "--json", *TWENTY],
        cli_env(server.base_url),
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
    server = serve(active=make_ids(5), faults=Faults(response_latency=(20.0, 20.0)))
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
    result = run_cli(["cancel", *make_ids(5), *FAST], cli_env(server.base_url), stderr=err)
    killer.join()
    assert result.code == 130
    # The responses take 20 s: finishing well before shows they were not waited for.
    assert time.monotonic() - started < 15
    assert "abandoning the requests in flight" in result.stderr
    assert "abandoned in flight: 5" in result.stderr


def test_subprocess_sigterm_stops_cleanly_exit_130(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """SIGTERM to the process: in-flight requests finish and are journaled; exit 130."""
    server = serve(
        active=make_ids(60),
        limits=ServerLimits(total=20, per_schedule=10, window=30.0),
        faults=Faults(response_latency=(0.3, 0.3)),
    )
    journal = tmp_path / "run.jsonl"
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        schedcancel_argv("cancel", *make_ids(60), "--journal", str(journal), *TWENTY),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(server.base_url),
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


def test_an_outside_cancellation_is_not_swallowed(serve: Callable[..., ServerThread]) -> None:
    """Cancelling run_bulk from outside (no signal) propagates CancelledError."""
    server = serve(active=["SC-1"], faults=Faults(response_latency=(5.0, 5.0)))
    settings = make_settings(server.base_url)

    async def cancel_soon() -> None:
        task = asyncio.create_task(
            run_bulk(settings, ["SC-1"], total=1, stdout=io.StringIO(), stderr=io.StringIO())
        )
        while len(server.server.recorder) < 1:  # noqa: ASYNC110 - the recorder has no event
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_soon())


# --------------------------------------------------------------------------- a closed stdout


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
    server = serve(active=make_ids(10))
    journal = tmp_path / "run.jsonl"
    result = run_cli(
        ["cancel", *make_ids(10), "--journal", str(journal), "--json", "--concurrency", "1", *FAST],
        cli_env(server.base_url),
        stdout=_ClosedPipe(),
    )
    assert result.code == 0, result.stderr
    assert len(result.lines()) == 1
    assert result.stderr.count("stdout was closed; the job goes on") == 1
    assert sorted(o.schedule_id for o in read_journal(journal)) == make_ids(10)


def test_subprocess_piped_into_head_finishes_the_job(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """``schedcancel cancel ... | head -1``: the process finishes the job, exits 0, no traceback."""
    ids = make_ids(3000)
    server = serve(active=ids, limits=ServerLimits(total=100_000, per_schedule=10, window=1.0))
    journal = tmp_path / "run.jsonl"
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n", encoding="utf-8")
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        schedcancel_argv(
            *("cancel", "--from", str(ids_file), "--journal", str(journal), "--no-progress"),
            *("--total", "100000", "--window", "1", "--guard", "0.05"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=subprocess_env(server.base_url),
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
    result = run_cli(
        ["cancel", "SC-1", "SC-2", "--redis", "redis://127.0.0.1:6379/0", *FAST],
        cli_env(server.base_url, SCHEDCANCEL_USERNAME=user),
    )
    assert result.code == 0, result.stderr


def test_redis_flag_without_redis_py_gives_an_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without redis-py, ``--redis`` exits 2 telling how to install the extra."""
    monkeypatch.delitem(sys.modules, "schedcancel.redis", raising=False)
    monkeypatch.delitem(sys.modules, "schedcancel._limiting.redis_store", raising=False)
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    result = run_cli(
        ["cancel", "SC-1", "--redis", "redis://127.0.0.1:6379/0", *FAST],
        cli_env("http://127.0.0.1:9/api/v3"),
    )
    assert result.code == 2
    assert "pip install 'schedcancel[redis]'" in result.stderr


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
    env = cli_env("http://127.0.0.1:9/api/v3")
    argv = ["cancel", "SC-1", "--no-progress", *FAST]
    if where == "flag":
        argv += ["--redis", url]
    else:
        env["SCHEDCANCEL_REDIS_URL"] = url
    result = run_cli(argv, env)
    assert result.code == 2
    assert result.stderr.startswith("schedcancel: error: --redis: not a usable Redis URL")
    assert result.stderr.count("\n") == 1
    assert "hunter2" not in result.stderr
    assert_no_secrets(result.stderr)
