"""What the CLI tests share: credentials, limits, a mock server in a thread, running ``main``.

The mock server runs in a thread with its own event loop, so ``cli.main``
(which runs ``asyncio.run``) can be called from a plain test, and so can a
``python -m schedcancel`` subprocess.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import attrs
from schedcancel import RateLimits
from schedcancel.cli import RunReport, RunSettings, main, run_bulk
from schedcancel.testing import MockScheduleServer

API_KEY = "cli-test-connector-key-77"
USERNAME = "cli-user"
PASSWORD = "pw-Very-Secret-4242"
SECRET = "shared-Secret-Value-9911"
ROOT = Path(__file__).resolve().parent.parent.parent
# Client limits: out of reach, 10 per 0.5 s (a few windows per test), 20 per 30 s (one window).
FAST = ["--total", "1000", "--window", "1", "--guard", "0.05"]
SLOW = ["--total", "10", "--window", "0.5", "--guard", "0.05"]
# Twenty go at once, the rest wait a window: a job at priority 0 sends in bursts.
TWENTY = ["--total", "20", "--window", "30", "--guard", "0.05", "--priority", "0"]
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


def cli_env(base_url: str, **extra: str) -> dict[str, str]:
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


def run_cli(
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


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text
        assert SECRET not in text
        assert API_KEY not in text


def make_ids(n: int, prefix: str = "SC-") -> list[str]:
    return [f"{prefix}{i:05d}" for i in range(n)]


def subprocess_env(base_url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SCHEDCANCEL_REDIS_URL", None)
    env.update(cli_env(base_url, **extra))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def schedcancel_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "schedcancel", *args]


class Terminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        """Pretend to be a terminal (and raise once closed, as StringIO does)."""
        super().isatty()
        return True


def make_settings(base_url: str, **overrides: Any) -> RunSettings:
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
    return RunSettings(**values)


def run_settings(settings: RunSettings, ids: list[str]) -> RunReport:
    err = io.StringIO()
    return asyncio.run(run_bulk(settings, ids, total=len(ids), stdout=io.StringIO(), stderr=err))


def kill_9_when(
    argv: list[str], env: dict[str, str], journal: Path, marker: bytes, count: int
) -> int:
    """Run ``argv`` and SIGKILL it once ``journal`` holds ``count`` lines with ``marker``
    (``b'"outcome"'``: outcomes; ``b'"intent"'``: start requests about to go out), or after
    60 s; wait for it to die and return its exit status (``-SIGKILL``, unless it ended first)."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)  # noqa: S603 - our own interpreter and module
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if journal.exists() and journal.read_bytes().count(marker) >= count:
                break
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode
