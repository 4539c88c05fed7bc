"""``schedcancel.cli._parser``: options, help, usage errors, dispatch, ``python -m schedcancel``."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from schedcancel.cli import _parser

from support.cli import (
    API_KEY,
    FAST,
    PASSWORD,
    USERNAME,
    cli_env,
    run_cli,
    schedcancel_argv,
    subprocess_env,
)


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
        (["cancel", "SC-1", "--interactive-reserve", "-1"], None, "must be at least 0"),
        (["cancel", "SC-1", "--priority", "low"], None, "invalid int value"),
        (["cancel", "SC-1", "--base-url", "http://example.com/api/v3", *FAST], None, "http"),
        (["cancel", "SC-1", "--api-key", "bad key", *FAST], None, "apiKey"),
        (["frobnicate"], None, "invalid choice"),
    ],
)
def test_usage_and_input_errors_exit_2(argv: list[str], env_drop: str | None, message: str) -> None:
    """Bad options, missing credentials and unreadable input exit 2 with a message, no traceback."""
    env = cli_env("http://127.0.0.1:9/api/v3")
    if env_drop:
        del env[env_drop]
    result = run_cli(argv, env)
    assert result.code == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_zero_window_is_a_usage_error() -> None:
    """A window of 0 seconds is refused by the argument parser."""
    result = run_cli(["cancel", "SC-1", "--window", "0"], cli_env("http://127.0.0.1:9/api/v3"))
    assert result.code == 2
    assert "must be > 0" in result.stderr


def test_no_command_prints_help_and_exits_2() -> None:
    """``schedcancel`` alone prints the help (to stderr) and exits 2."""
    result = run_cli([], {})
    assert result.code == 2
    assert "cancel" in result.stderr
    assert "demo" in result.stderr
    assert "mock-server" in result.stderr


def test_help_and_version_exit_0() -> None:
    """``--help`` for every command and ``--version`` go to stdout and exit 0."""
    for argv in (["--help"], ["cancel", "--help"], ["demo", "--help"], ["mock-server", "--help"]):
        result = run_cli(argv, {})
        assert result.code == 0
        assert "usage: schedcancel" in result.stdout
    cancel_help = run_cli(["cancel", "--help"], {}).stdout
    for needle in ("SCHEDCANCEL_API_KEY", "SCHEDCANCEL_PASSWORD", "exit codes", "130", "--journal"):
        assert needle in cancel_help
    version = run_cli(["--version"], {})
    assert version.code == 0
    assert version.stdout.startswith("schedcancel ")


def test_keyboard_interrupt_outside_the_loop_exits_130(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A KeyboardInterrupt before the signal handlers are in place still exits 130."""

    def interrupted(*args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(_parser, "_cmd_bulk", interrupted)
    result = run_cli(["cancel", "SC-1"], cli_env("http://127.0.0.1:9/api/v3"))
    assert result.code == 130
    assert "interrupted" in result.stderr


def test_python_dash_m_runs_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m schedcancel`` calls ``cli.main`` and exits with its code."""
    import runpy  # noqa: PLC0415 - only this test runs a module as __main__

    monkeypatch.setattr(sys, "argv", ["schedcancel", "--version"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("schedcancel", run_name="__main__")
    assert exit_info.value.code == 0


# --------------------------------------------------------------------------- mock-server


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
    result = run_cli(["mock-server", "--schedule", "SC-1", "--window", "2", "--port", "0"], {})
    assert result.code == 0
    assert seen[0].schedules == ["SC-1"]
    assert seen[0].window == 2.0


def test_mock_server_subcommand_serves_until_sigterm(tmp_path: Path) -> None:
    """``schedcancel mock-server`` prints its URL, serves cancels, and exits 0 on SIGTERM."""
    env = subprocess_env("unused")
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        schedcancel_argv(
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
        result = run_cli(["cancel", "SC-1", "SC-2", *FAST], cli_env(base_url))
        assert result.code == 1
        assert sorted(result.lines())[0] == "SC-1\tcancelled\tACTIVE->CANCELLED"
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0
