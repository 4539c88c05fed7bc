"""``schedcancel.cli._input``: ids from arguments, files, FIFOs and stdin, read as they come."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest
from schedcancel._bulk.journal import read_journal
from schedcancel.cli import InputError, _input, main
from schedcancel.cli._common import printable
from schedcancel.cli._input import MAX_LINE, _LineReader, _Splitter

from support.cli import (
    FAST,
    ServerThread,
    Terminal,
    assert_no_secrets,
    cli_env,
    make_ids,
    run_cli,
    schedcancel_argv,
    subprocess_env,
)

# --------------------------------------------------------------------------- input forms


def test_ids_from_a_file_with_comments_and_blank_lines(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """``--from FILE`` reads one id per line, skipping blanks and comments, with a known total."""
    server = serve(active=make_ids(5))
    path = tmp_path / "ids.txt"
    path.write_text(
        "# export of 2026-04-28\n\n" + "\n".join(make_ids(5)) + "\n  \n", encoding="utf-8"
    )
    result = run_cli(
        ["cancel", "--from", str(path), "--json", *FAST],
        cli_env(server.base_url),
    )
    assert result.code == 0, result.stderr
    summary = json.loads(result.lines()[-1])["summary"]
    assert summary["total"] == 5
    assert summary["counts"]["cancelled"] == 5
    assert sorted(server.sent_ids()) == make_ids(5)


def test_ids_from_stdin(serve: Callable[..., ServerThread]) -> None:
    """``--from -`` streams ids from stdin; the total is unknown."""
    server = serve(active=make_ids(20))
    result = run_cli(
        ["cancel", "--from", "-", "--json", *FAST],
        cli_env(server.base_url),
        stdin="\n".join(make_ids(20)) + "\n",
    )
    assert result.code == 0, result.stderr
    summary = json.loads(result.lines()[-1])["summary"]
    assert summary["total"] is None
    assert summary["counts"]["cancelled"] == 20


def test_arguments_and_a_file_together(serve: Callable[..., ServerThread], tmp_path: Path) -> None:
    """Ids from arguments and from ``--from`` are all cancelled, duplicates once."""
    server = serve(active=make_ids(4))
    path = tmp_path / "ids.txt"
    path.write_text("SC-00002\nSC-00003\nSC-00000\n", encoding="utf-8")
    result = run_cli(
        ["cancel", "SC-00000", "SC-00001", "--from", str(path), "--json", *FAST],
        cli_env(server.base_url),
    )
    assert result.code == 0, result.stderr
    summary = json.loads(result.lines()[-1])["summary"]
    assert (summary["total"], summary["duplicates"]) == (5, 1)
    assert sorted(server.sent_ids()) == make_ids(4)


def test_arguments_then_stdin(serve: Callable[..., ServerThread]) -> None:
    """Ids given as arguments come first, then the ids read from stdin."""
    server = serve(active=make_ids(4))
    result = run_cli(
        ["cancel", "SC-00000", "--from", "-", "--json", *FAST],
        cli_env(server.base_url),
        stdin="SC-00001\nSC-00002\nSC-00003\n",
    )
    assert result.code == 0, result.stderr
    assert sorted(server.sent_ids()) == make_ids(4)


def test_stdin_on_a_terminal_gets_a_hint(serve: Callable[..., ServerThread]) -> None:
    """Reading ids from a terminal says so, so nobody waits on a silent prompt."""
    server = serve(active=["SC-1"])
    err = io.StringIO()
    stdin = Terminal("SC-1\n")
    code = main(
        ["cancel", "--from", "-", "--no-progress", *FAST],
        stdin=stdin,
        stdout=io.StringIO(),
        stderr=err,
        environ=cli_env(server.base_url),
    )
    assert code == 0
    assert "reading ids from stdin" in err.getvalue()


def test_subprocess_cancel_from_stdin_pipe(serve: Callable[..., ServerThread]) -> None:
    """``python -m schedcancel cancel --from -`` reads a pipe and exits 0."""
    server = serve(active=make_ids(10))
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module
        schedcancel_argv("cancel", "--from", "-", *FAST),
        input="\n".join(make_ids(10)) + "\n",
        capture_output=True,
        text=True,
        env=subprocess_env(server.base_url),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 10
    assert "schedcancel summary" in proc.stderr
    assert_no_secrets(proc.stdout, proc.stderr)


def test_ids_from_a_fifo_are_streamed_with_unknown_total(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """A named pipe is read as it is written; its total is not counted in advance."""
    server = serve(active=make_ids(5))
    fifo = tmp_path / "ids.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with fifo.open("w", encoding="utf-8") as pipe:
            pipe.write("\n".join(make_ids(5)) + "\n")

    writer = threading.Thread(target=write)
    writer.start()
    result = run_cli(["cancel", "--from", str(fifo), "--json", *FAST], cli_env(server.base_url))
    writer.join()
    assert result.code == 0, result.stderr
    summary = json.loads(result.lines()[-1])["summary"]
    assert summary["total"] is None
    assert summary["counts"]["cancelled"] == 5


def test_a_file_that_is_not_utf8_is_an_input_error(tmp_path: Path) -> None:
    """A file that is not UTF-8 exits 2 before anything is sent."""
    path = tmp_path / "ids.txt"
    path.write_bytes(b"SC-1\n\xff\xfe\n")
    result = run_cli(["cancel", "--from", str(path), *FAST], cli_env("http://127.0.0.1:9/api/v3"))
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
        environ=cli_env(server.base_url),
    )
    assert code == 2
    assert "stopped by: InputError: cannot read stdin: line 2 is not UTF-8" in err.getvalue()


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
            environ=cli_env(server.base_url),
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
        schedcancel_argv(
            "cancel", "--from", "-", "--journal", str(journal), "--no-progress", *FAST
        ),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(server.base_url),
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
            environ=cli_env(server.base_url),
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
    with pytest.raises(InputError, match="cannot read out: Bad file descriptor"):
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
        environ=cli_env("http://127.0.0.1:9/api/v3"),
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
    result = run_cli(["cancel", "--from", str(fifo), "--json", *FAST], cli_env(server.base_url))
    writer.join()
    assert result.code == 0, result.stderr
    assert sent_while_open == [True]
    assert sorted(server.sent_ids()) == ["SC-1", "SC-2"]


# --------------------------------------------------------------------------- untrusted input shown


def test_invalid_ids_are_echoed_escaped_never_raw(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """NUL, terminal escapes, C1 controls and bidi overrides in an id reach no stream raw."""
    server = serve(active=["SC-1"])
    hostile = "SC-\x1b[31mRED\x00\x9b2J\u202eX"
    path = tmp_path / "ids.txt"
    path.write_text(f"SC-1\n{hostile}\n", encoding="utf-8")
    text = run_cli(
        ["cancel", "--from", str(path), "--no-progress", *FAST], cli_env(server.base_url)
    )
    as_json = run_cli(
        ["cancel", "--from", str(path), "--no-progress", "--json", *FAST], cli_env(server.base_url)
    )
    assert (text.code, as_json.code) == (1, 1)
    line = next(line for line in text.lines() if "\tinvalid\t" in line)
    assert line.split("\t")[0] == "SC-\\x1b[31mRED\\x00\\x9b2J\\u202eX"
    for output in (text.stdout, text.stderr, as_json.stdout, as_json.stderr):
        assert all(c.isprintable() or c in "\t\n" for c in output), repr(output)
    record = next(json.loads(line) for line in as_json.lines() if '"invalid"' in line)
    assert record["id"] == hostile  # the JSON still carries the id itself


def test_a_message_quoting_input_is_printable_and_cut_with_its_length(tmp_path: Path) -> None:
    """A usage error naming an untrusted path: escapes shown escaped, a long one cut."""
    result = run_cli(
        ["cancel", "--from", str(tmp_path / "ids\x1b]0;owned\x07.txt")],
        cli_env("http://127.0.0.1:9/api/v3"),
    )
    assert result.code == 2
    shown = str(tmp_path / "ids\\x1b]0;owned\\x07.txt")
    assert result.stderr == f"schedcancel: error: cannot read {shown}: No such file or directory\n"
    assert printable("a" * 600) == "a" * 500 + "… (600 characters)"
    assert printable("x\ty\n", limit=2) == "x\\t… (4 characters)"


# --------------------------------------------------------------------------- bounded lines


def _write_long_line(path: Path, size: int) -> None:
    """ids.txt with SC-1, a line of ``size`` characters, SC-2: written in chunks."""
    with path.open("wb") as file:
        file.write(b"SC-1\n")
        block = b"A" * (1 << 20)
        for _ in range(size // len(block)):
            file.write(block)
        file.write(b"\nSC-2\n")


def test_an_over_long_line_in_a_file_is_refused_by_number_in_bounded_memory(
    serve: Callable[..., ServerThread], tmp_path: Path
) -> None:
    """A 32 MB line: exit 2 naming line 2, nothing sent, and never held whole (peak < 4 MiB)."""
    server = serve(active=["SC-1", "SC-2"])
    path = tmp_path / "ids.txt"
    _write_long_line(path, 32 << 20)
    tracemalloc.start()
    try:
        result = run_cli(["cancel", "--from", str(path), *FAST], cli_env(server.base_url))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.code == 2
    assert result.stderr == (
        f"schedcancel: error: cannot read {path}: line 2 is longer than {MAX_LINE} characters"
        " (no scheduleId is longer than 32)\n"
    )
    assert not server.sent_ids()
    assert peak < 4 << 20, f"peak {peak / 2**20:.1f} MiB"


def test_an_over_long_line_on_stdin_is_refused_by_number_in_bounded_memory(
    serve: Callable[..., ServerThread],
) -> None:
    """The same line on a pipe: the job stops (exit 2) naming it, bounded; SC-2 is never sent."""
    server = serve(active=["SC-1", "SC-2"])
    read_fd, write_fd = os.pipe()
    line = b"B" * (32 << 20)

    def producer() -> None:
        with contextlib.suppress(BrokenPipeError):
            os.write(write_fd, b"SC-1\n")
            view = memoryview(line)
            while view:
                view = view[os.write(write_fd, view[: 1 << 16]) :]
            os.write(write_fd, b"\nSC-2\n")
        os.close(write_fd)

    writer = threading.Thread(target=producer)
    tracemalloc.start()
    try:
        writer.start()
        with os.fdopen(read_fd, "r", encoding="utf-8") as stdin:
            out, err = io.StringIO(), io.StringIO()
            code = main(
                ["cancel", "--from", "-", "--no-progress", *FAST],
                stdin=stdin,
                stdout=out,
                stderr=err,
                environ=cli_env(server.base_url),
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        writer.join(30)
    assert code == 2
    assert f"stopped by: InputError: cannot read stdin: line 2 is longer than {MAX_LINE}" in (
        err.getvalue()
    )
    assert "SC-2" not in server.sent_ids()  # SC-1 was read: sent, or withdrawn at the stop
    assert peak < 4 << 20, f"peak {peak / 2**20:.1f} MiB"


def test_a_long_comment_line_is_skipped(
    serve: Callable[..., ServerThread], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A comment longer than any id line is fine, also split between reads; ids go on."""
    monkeypatch.setattr(_input, "_STDIN_CHUNK", 7)
    server = serve(active=make_ids(3))
    path = tmp_path / "ids.txt"
    comment = "  # " + "c" * (3 * MAX_LINE)
    path.write_text(f"SC-00000\n{comment}\r\nSC-00001\n{comment}\nSC-00002", encoding="utf-8")
    result = run_cli(["cancel", "--from", str(path), "--json", *FAST], cli_env(server.base_url))
    assert result.code == 0, result.stderr
    assert json.loads(result.lines()[-1])["summary"]["total"] == 3
    assert sorted(server.sent_ids()) == make_ids(3)


@pytest.mark.parametrize(
    ("data", "line"),
    [
        (b"SC-1\r\nSC-2\r\n\xff\n", 3),
        (b"SC-1\rSC-2\r\r\nSC-\xc3(\n", 4),
        (b"\xef\xbb\xbfSC-1\nSC-2\xe2\x82", 2),
        (b"\xef\xbb\xbf\xff", 1),
    ],
)
@pytest.mark.parametrize("chunk", [3, 64 * 1024])
def test_a_file_that_is_not_utf8_is_refused_naming_the_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, line: int, chunk: int
) -> None:
    """Not UTF-8 in a file: the line (CRLF, CR and LF counted as one line end), not a byte."""
    monkeypatch.setattr(_input, "_STDIN_CHUNK", chunk)
    path = tmp_path / "ids.txt"
    path.write_bytes(data)
    result = run_cli(["cancel", "--from", str(path), *FAST], cli_env("http://127.0.0.1:9/api/v3"))
    assert result.code == 2
    assert result.stderr.startswith(
        f"schedcancel: error: cannot read {path}: line {line} is not UTF-8 ("
    )
    assert result.stderr.count("\n") == 1


# --------------------------------------------------------------------------- no ids at all


@pytest.mark.parametrize("text", ["", "\n\n", "# export of 2026-04-28\n  \n# none today\n"])
def test_a_file_with_no_ids_is_an_input_error(
    serve: Callable[..., ServerThread], tmp_path: Path, text: str
) -> None:
    """An empty file (or blanks and comments only): exit 2, one line that says so, no request."""
    server = serve(active=["SC-1"])
    path = tmp_path / "ids.txt"
    path.write_text(text, encoding="utf-8")
    result = run_cli(["cancel", "--from", str(path), "--json", *FAST], cli_env(server.base_url))
    assert result.code == 2
    assert result.stderr == (
        f"schedcancel: error: no ids in {path} (empty, or blank lines and # comments only)\n"
    )
    assert result.stdout == ""
    assert not server.server.recorder.arrivals


@pytest.mark.parametrize("via", ["stream", "pipe", "fifo"])
def test_stdin_with_no_ids_is_an_input_error(
    serve: Callable[..., ServerThread], tmp_path: Path, via: str
) -> None:
    """Nothing on stdin (or a FIFO), known only at its end: exit 2, one line, no summary."""
    server = serve(active=["SC-1"])
    source, name = "-", "stdin"
    stdin: IO[str] = io.StringIO("# nothing\n")
    if via == "pipe":
        read_fd, write_fd = os.pipe()
        os.close(write_fd)
        stdin = os.fdopen(read_fd, "r", encoding="utf-8")
    elif via == "fifo":
        fifo = tmp_path / "ids.fifo"
        os.mkfifo(fifo)
        source = name = str(fifo)
        threading.Thread(target=fifo.write_text, args=("\n",)).start()
    out, err = io.StringIO(), io.StringIO()
    with stdin:
        code = main(
            ["cancel", "--from", source, "--json", *FAST],
            stdin=stdin,
            stdout=out,
            stderr=err,
            environ=cli_env(server.base_url),
        )
    assert code == 2
    assert err.getvalue() == f"schedcancel: error: no ids read from {name}\n"
    assert out.getvalue() == ""


def test_ids_as_arguments_and_an_empty_stdin_are_fine(serve: Callable[..., ServerThread]) -> None:
    """Ids were read (from the arguments): an empty stdin beside them is no error."""
    server = serve(active=["SC-1"])
    result = run_cli(["cancel", "SC-1", "--from", "-", *FAST], cli_env(server.base_url))
    assert result.code == 0, result.stderr


def test_the_splitter_numbers_lines_across_reads() -> None:
    """A CRLF split between two reads is one line end; the error names the line it is on."""
    splitter = _Splitter("ids.txt")
    assert splitter.feed(b"SC-1\r") == ([], None)
    assert splitter.feed(b"\nSC-2\r") == (["SC-1"], None)
    ids, failure = splitter.feed(b"\nSC-3\n\xff")
    assert ids == ["SC-2", "SC-3"]
    assert str(failure) == "cannot read ids.txt: line 4 is not UTF-8 (invalid start byte)"
    ended = _Splitter("ids.txt")
    assert ended.feed(b"SC-1\r") == ([], None)
    assert ended.feed(b"") == (["SC-1"], None)


class _FailingRead(io.BytesIO):
    """A file whose reads fail, as on an I/O error."""

    def read(self, _size: int | None = -1, /) -> bytes:
        """Fail."""
        raise OSError(5, "Input/output error")


def test_streams_without_a_descriptor_are_read_in_chunks_too() -> None:
    """A text wrapper is read through its bytes; a plain text stream in characters; both bounded."""
    wrapped = io.TextIOWrapper(io.BytesIO(b"SC-1\n\nSC-2"), encoding="utf-8")
    assert list(_input._stream_ids(wrapped, "stdin")) == ["SC-1", "SC-2"]
    text = io.StringIO("SC-1\n" + "x" * (MAX_LINE + 1) + "\nSC-2\n")
    ids = _input._stream_ids(text, "stdin")
    assert next(ids) == "SC-1"
    with pytest.raises(InputError, match=f"line 2 is longer than {MAX_LINE} characters"):
        next(ids)
    with pytest.raises(InputError, match=r"cannot read ids\.txt: Input/output error"):
        list(_input._file_ids(_FailingRead(), "ids.txt"))
