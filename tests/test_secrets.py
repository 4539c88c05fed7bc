"""The whole-system secret scan: no credential in any byte the programs write.

The mock server and every ``schedcancel`` command run as real processes
(``python -m schedcancel``) with DEBUG logging, configured with recognisable
credentials; afterwards every byte they wrote to stdout and stderr, and every
file left in the working directory (journals, outputs), is searched for the
password, the shared secret, the whole apiKey and the Basic-auth token.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import logging
import os
import signal
import socket
import sys
import urllib.parse
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import attrs
import pytest
from schedcancel import (
    BackendError,
    OutcomeUnknownError,
    RetryPolicy,
    ScheduleClient,
    StartSchedule,
    UpdateSchedule,
)
from schedcancel.redis import RedisLimiter
from schedcancel.testing import Faults, MockScheduleServer, Outcome, ServerLimits

from test_client import (
    LocalServer,
    _server,  # noqa: F401 - the fixture "server": a scripted raw server
)

PASSWORD = "PW-SENTINEL-7f3a"
SECRET = "SS-SENTINEL-91bc"
API_KEY = "AK-SENTINEL-0d2e-long-connector-key"
USER = "api-user"
DEMO_USER = "demo-user"
NEEDLES = {
    "password": PASSWORD,
    "shared secret": SECRET,
    "apiKey": API_KEY,
    "Basic token": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
    "demo Basic token": base64.b64encode(f"{DEMO_USER}:{PASSWORD}".encode()).decode(),
}
REPO = Path(__file__).resolve().parent.parent
#: Real seconds any one process may take before the test gives up on it.
PROCESS_LIMIT = 60.0


def _lines_at_least(path: Path, count: int) -> bool:
    return path.exists() and path.read_bytes().count(b"\n") >= count


@attrs.define
class Process:
    """One finished ``python -m schedcancel`` run."""

    argv: tuple[str, ...]
    code: int
    stdout: bytes
    stderr: bytes


@attrs.define
class Scan:
    """Every blob the system wrote, labelled, to be searched for credentials at the end."""

    blobs: dict[str, bytes] = attrs.field(factory=dict)

    def add(self, label: str, data: bytes) -> None:
        """Keep one blob (a stream or a file) under a unique label."""
        self.blobs[f"{label}#{len(self.blobs)}"] = data

    def add_process(self, label: str, process: Process) -> None:
        """Keep a process's stdout and stderr."""
        self.add(f"{label} stdout", process.stdout)
        self.add(f"{label} stderr", process.stderr)

    def add_tree(self, root: Path) -> int:
        """Keep every file under ``root``; return how many there were."""
        files = [path for path in sorted(root.rglob("*")) if path.is_file()]
        for path in files:
            self.add(str(path.relative_to(root)), path.read_bytes())
        return len(files)

    def leaks(self) -> list[str]:
        """Where a credential appears: ``"<blob>: <what>"`` for each find."""
        return [
            f"{label}: {what}"
            for label, data in self.blobs.items()
            for what, needle in NEEDLES.items()
            if needle.encode() in data
        ]


def child_env(**variables: str) -> dict[str, str]:
    """The environment for a child: ours without SCHEDCANCEL_*, the source tree importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDCANCEL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env | variables


def credentials_env(base_url: str, *, password: str = PASSWORD) -> dict[str, str]:
    """The SCHEDCANCEL_* variables for the sentinel connector."""
    return child_env(
        SCHEDCANCEL_API_KEY=API_KEY,
        SCHEDCANCEL_USERNAME=USER,
        SCHEDCANCEL_PASSWORD=password,
        SCHEDCANCEL_SHARED_SECRET=SECRET,
        SCHEDCANCEL_BASE_URL=base_url,
    )


async def run_cli(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    interrupt_when: Path | None = None,
    prefix: Sequence[str] = ("-m", "schedcancel"),
) -> Process:
    """Run ``python -m schedcancel ARGS`` to its end and collect its output.

    With ``interrupt_when``, SIGINT is sent once that file has three lines
    (the journal's start line and two outcomes).
    """
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        *prefix,
        *args,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(PROCESS_LIMIT):
            communicating = asyncio.ensure_future(child.communicate())
            if interrupt_when is not None:
                # Another process writes the file: polling is the only way to see it grow.
                while not _lines_at_least(interrupt_when, 3):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                child.send_signal(signal.SIGINT)
            stdout, stderr = await communicating
    finally:
        if child.returncode is None:  # pragma: no cover - only when the limit was hit
            child.kill()
            await child.wait()
    assert child.returncode is not None
    return Process(tuple(args), child.returncode, stdout, stderr)


@contextlib.asynccontextmanager
async def mock_server_process(
    folder: Path, *options: str, scan: Scan, label: str
) -> AsyncIterator[str]:
    """Serve ``schedcancel -vv mock-server`` with the sentinel credentials; yield its base URL."""
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - a local tmp dir, instant
    out, err = folder / "server.out", folder / "server.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "schedcancel",
            "-vv",
            "mock-server",
            "--user",
            f"{USER}:{PASSWORD}",
            "--api-key",
            API_KEY,
            "--shared-secret",
            SECRET,
            *options,
            cwd=folder,
            env=child_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        async with asyncio.timeout(PROCESS_LIMIT):
            while not out.read_bytes().endswith(b"\n"):
                assert child.returncode is None, err.read_text()
                await asyncio.sleep(0.05)
        yield out.read_text().strip()
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGINT)
            async with asyncio.timeout(PROCESS_LIMIT):
                await child.wait()
        scan.add(f"{label} stdout", out.read_bytes())
        scan.add(f"{label} stderr", err.read_bytes())
    assert child.returncode == 0


def outcome_lines(journal: Path) -> list[dict[str, object]]:
    """The journal's per-id lines (not its run lines)."""
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    return [line for line in lines if "id" in line]


async def test_no_credential_in_any_output_of_cli_demo_journal_logs_or_mock_server(
    tmp_path: Path,
) -> None:
    """Every exit (0, 1, 2, 3, 130), the demo, journals and DEBUG logs: no credential anywhere."""
    scan = Scan()
    work = tmp_path / "work"
    work.mkdir()
    (work / "ids.txt").write_text("".join(f"SC-{i:03d}\n" for i in range(20)))
    schedules = [f"--schedule=SC-{i:03d}" for i in range(46)]
    scaled = ["--window", "2", "--guard", "0.1"]
    runs: dict[str, Process] = {}
    async with (
        mock_server_process(
            tmp_path / "server", *schedules, "--window", "2", scan=scan, label="server"
        ) as url,
        mock_server_process(
            tmp_path / "faulty",
            *schedules,
            "--window=2",
            "--server-error-rate=0.3",
            "--drop-rate=0.2",
            "--truncate-rate=0.2",
            "--html-rate=0.1",
            scan=scan,
            label="faulty server",
        ) as faulty_url,
    ):
        env = credentials_env(url)
        # 0: every id cancelled, with the journal, JSON output and DEBUG logs.
        runs["ok"] = await run_cli(
            ["-vv", "cancel", "--from", "ids.txt", "--journal", "ok.jsonl", "--json", *scaled],
            cwd=work,
            env=env,
        )
        # 1: unknown ids (7040) and an invalid one; credentials as flags this time.
        runs["failed"] = await run_cli(
            [
                "-vv",
                "cancel",
                "--api-key",
                API_KEY,
                "--username",
                USER,
                "--password",
                PASSWORD,
                "--shared-secret",
                SECRET,
                "--base-url",
                url,
                "--journal",
                "failed.jsonl",
                *scaled,
                "SC-020",
                "GONE-1",
                "not a valid id!",
            ],
            cwd=work,
            env=child_env(),
        )
        # 2: usage errors whose input holds a credential: none may be echoed.
        runs["usage-url"] = await run_cli(
            [
                "-vv",
                "cancel",
                "--base-url",
                f"https://{USER}:{PASSWORD}@gw.example.test/api/v3",
                "SC-1",
            ],
            cwd=work,
            env=credentials_env(url),
        )
        runs["usage-password"] = await run_cli(
            ["-vv", "cancel", "SC-1"], cwd=work, env=credentials_env(url, password=PASSWORD + "\n")
        )
        runs["usage-key"] = await run_cli(
            ["-vv", "cancel", "--api-key", API_KEY + "-and-thirty-more-characters-x", "SC-1"],
            cwd=work,
            env=credentials_env(url),
        )
        runs["usage-missing"] = await run_cli(
            ["-vv", "cancel", "SC-1"],
            cwd=work,
            env=child_env(SCHEDCANCEL_PASSWORD=PASSWORD, SCHEDCANCEL_SHARED_SECRET=SECRET),
        )
        # 3: the server refuses the password (which contains the real one).
        runs["auth"] = await run_cli(
            ["-vv", "cancel", "--journal", "auth.jsonl", *scaled, "SC-021", "SC-022"],
            cwd=work,
            env=credentials_env(url, password=PASSWORD + "-wrong"),
        )
        # 3: transport, server and parse errors after retries, all logged at DEBUG.
        runs["faults"] = await run_cli(
            ["-vv", "cancel", "--journal", "faults.jsonl", "--json", *scaled]
            + [f"SC-{i:03d}" for i in range(23, 33)],
            cwd=work,
            env=credentials_env(faulty_url),
        )
        # 3: the shared limiter's Redis (its URL holds a password) cannot be reached.
        runs["redis"] = await run_cli(
            ["-vv", "cancel", "--redis", f"redis://{USER}:{PASSWORD}@127.0.0.1:1/0", "SC-039"],
            cwd=work,
            env=env,
        )
        # 130: SIGINT while ids wait for the (tiny) budget: 2 per 30 s.
        runs["interrupted"] = await run_cli(
            ["-vv", "cancel", "--journal", "int.jsonl", "--total", "2", "--window", "30"]
            + [f"SC-{i:03d}" for i in range(33, 40)],
            cwd=work,
            env=env,
            interrupt_when=work / "int.jsonl",
        )
        # The other bulk commands: pause, continue, get with both report formats, and a
        # journal of another operation refused (2).
        bulk = [f"SC-{i:03d}" for i in range(40, 46)]
        runs["pause"] = await run_cli(
            ["-vv", "pause", "--journal", "pause.jsonl", "--json", *scaled, *bulk],
            cwd=work,
            env=env,
        )
        runs["continue"] = await run_cli(
            ["-vv", "continue", "--at", "2027-01-05T09:00:00+01:00", *scaled, *bulk],
            cwd=work,
            env=env,
        )
        for report in ("report.csv", "report.jsonl"):
            runs[f"get {report}"] = await run_cli(
                ["-vv", "get", "--report", report, "--json", *scaled, *bulk, "GONE-2"],
                cwd=work,
                env=env,
            )
        runs["other journal"] = await run_cli(
            ["-vv", "pause", "--journal", "ok.jsonl", *scaled, "SC-040"], cwd=work, env=env
        )
    # The demo, with its generated password replaced by the sentinel.
    patch = (
        "import runpy, secrets; secrets.token_urlsafe = lambda *a: "
        f"{PASSWORD!r}; runpy.run_module('schedcancel', run_name='__main__')"
    )
    runs["demo"] = await run_cli(
        ["-vv", "demo", "--schedules", "30", "--window", "1", "--json", "--journal", "demo.jsonl"],
        cwd=work,
        env=child_env(),
        prefix=("-c", patch),
    )
    for label, process in runs.items():
        scan.add_process(label, process)
    files = scan.add_tree(tmp_path)

    codes = {label: process.code for label, process in runs.items()}
    assert codes == {
        "ok": 0,
        "failed": 1,
        "usage-url": 2,
        "usage-password": 2,
        "usage-key": 2,
        "usage-missing": 2,
        "auth": 3,
        "faults": 3,
        "redis": 3,
        "interrupted": 130,
        "pause": 0,
        "continue": 0,
        "get report.csv": 1,
        "get report.jsonl": 1,
        "other journal": 2,
        "demo": 0,
    }, {label: process.stderr[-600:] for label, process in runs.items()}
    assert scan.leaks() == []
    # The scan looked at real output: DEBUG logs, journals, the redacted key.
    everything = b"\n".join(scan.blobs.values())
    assert b"DEBUG" in everything
    assert API_KEY[:4].encode() + b"***" in everything
    assert len(outcome_lines(work / "ok.jsonl")) == 20
    assert {line["outcome"] for line in outcome_lines(work / "faults.jsonl")} >= {"error"}
    assert files >= 9  # 5 journals + the ids file + 4 server logs (demo's journal too)
    assert (work / "report.csv").read_text().count("\n") == 8  # a header and 7 rows
    assert len((work / "report.jsonl").read_text().splitlines()) == 7


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    """The scanner reports each needle in a stream and in a file (it is not blind)."""
    scan = Scan()
    for what, needle in NEEDLES.items():
        (tmp_path / f"{what}.txt").write_text(f"prefix {needle} suffix")
    scan.add_tree(tmp_path)
    scan.add("stream", f"..{PASSWORD}..".encode())
    assert len(scan.leaks()) == len(NEEDLES) + 1


async def test_redis_url_password_stays_out_of_reprs_and_errors() -> None:
    """A Redis URL's password shows in neither the limiter's repr nor its BackendError."""
    limiter = RedisLimiter(f"redis://{USER}:{PASSWORD}@127.0.0.1:1/0", username=USER)
    try:
        with pytest.raises(BackendError) as info:
            await limiter.acquire("SC-1")
    finally:
        await limiter.aclose()
    scan = Scan()
    error: BaseException | None = info.value
    while error is not None:
        scan.add("error", f"{error} {error!r}".encode())
        error = error.__cause__ or error.__context__
    scan.add("repr", repr(limiter).encode())
    assert scan.leaks() == []


@pytest.mark.looptime
async def test_library_debug_logs_and_errors_hold_no_credential(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In process, DEBUG logs of client, limiter and mock server under faults show no credential."""
    caplog.set_level(logging.DEBUG)
    faults = Faults(server_error=0.3, drop=0.2, truncated=0.2, html=0.1, seed=5)
    ids = [f"SC-{i}" for i in range(30)]
    async with MockScheduleServer(
        users={USER: PASSWORD},
        connectors={API_KEY: SECRET},
        limits=ServerLimits(window=60.0),
        faults=faults,
    ) as server:
        server.seed(ids)
        async with server.client(retry=RetryPolicy(attempts=3, backoff_initial=0.0)) as client:
            outcomes = await asyncio.gather(
                *(client.cancel(s) for s in ids), return_exceptions=True
            )
            texts = [repr(client), repr(client.limiter), repr(server)]
    texts += [f"{o} {o!r} {getattr(o, '__notes__', '')}" for o in outcomes]
    texts += [record.getMessage() for record in caplog.records]
    texts += [caplog.text]
    assert any(isinstance(o, Exception) for o in outcomes)
    assert any("DEBUG" in record.levelname for record in caplog.records)
    scan = Scan()
    for text in texts:
        scan.add("in-process", text.encode())
    assert scan.leaks() == []


@pytest.mark.looptime
async def test_a_traceback_with_local_variables_from_a_bulk_job_holds_no_credential() -> None:
    """Error trackers render each frame's locals: a bulk job's frames must not show secrets."""
    import traceback  # noqa: PLC0415 - only this test renders tracebacks

    def broken_display(_: object) -> None:
        raise RuntimeError("progress display broke")

    async with (
        MockScheduleServer(
            users={USER: PASSWORD}, connectors={API_KEY: SECRET}, unknown_ids="active"
        ) as server,
        server.client() as client,
    ):
        with pytest.raises(RuntimeError) as caught:
            async for _ in client.cancel_many(["SC-1"], progress=broken_display):
                pass  # pragma: no cover - the first progress report raises
    rendered = traceback.TracebackException.from_exception(caught.value, capture_locals=True)
    text = "".join(rendered.format())
    assert "_BulkRun" in text  # the job's own frame was rendered
    for needle in NEEDLES.values():
        assert needle not in text


async def test_no_credential_in_the_metrics_endpoint_of_a_running_job(tmp_path: Path) -> None:
    """``cancel --metrics-port`` scraped mid-run (ids still coming on stdin), with faults and
    DEBUG logs: neither the scrape nor the process's output holds a credential."""
    import aiohttp  # noqa: PLC0415 - only this test scrapes

    scan = Scan()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with mock_server_process(
        tmp_path / "server",
        "--accept-any-id",
        "--window=2",
        "--server-error-rate=0.3",
        "--rate-limit-rate=0.2",
        scan=scan,
        label="server",
    ) as url:
        child = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "schedcancel", "-vv", "cancel", "--from", "-", "--json"),
            *("--metrics-port", str(port), "--window", "2", "--guard", "0.1"),
            cwd=tmp_path,
            env=credentials_env(url),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            async with asyncio.timeout(PROCESS_LIMIT):
                child.stdin.write(b"".join(b"SC-%03d\n" % i for i in range(6)))
                await child.stdin.drain()
                lines = [await child.stdout.readline() for _ in range(6)]
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"http://127.0.0.1:{port}/metrics") as response,
                ):
                    scrape = await response.read()
                child.stdin.close()
                rest, stderr = await child.communicate()
        finally:
            if child.returncode is None:  # pragma: no cover - only when the limit was hit
                child.kill()
                await child.wait()
    assert b"schedcancel_calls_total" in scrape
    assert b"schedcancel_job_total" in scrape
    scan.add("metrics scrape", scrape)
    scan.add("cancel stdout", b"".join(lines) + rest)
    scan.add("cancel stderr", stderr)
    assert b"schedcancel.calls" in stderr  # the DEBUG records of the logging hook are there
    assert scan.leaks() == []


async def test_every_operation_and_start_outcome_unknown_hold_no_credential(
    caplog: pytest.LogCaptureFixture, server: LocalServer
) -> None:
    """Results, errors (OutcomeUnknownError's chain too), reprs and DEBUG logs of every
    operation hold no credential, even when the server echoes them into odd fields."""
    caplog.set_level(logging.DEBUG)
    echo = f"{API_KEY} {NEEDLES['Basic token']} {PASSWORD} {SECRET}"
    refusal = {
        "success": False,
        "errorCode": 7070,
        "newStatus": "PAUSED",
        "errorMessage": echo,
        "merchantMetaData": {"echo": echo},  # malformed: kept raw, scrubbed
        "scheduledAt": echo,
    }
    server.replies.extend([(200, {}, json.dumps(refusal).encode())] * 5)
    server.replies.append((500, {}, json.dumps({"success": False, "errorMessage": echo}).encode()))
    token = "CB-TOKEN-SENTINEL"
    schedule = StartSchedule(
        registration_uuid="reg-1",
        amount="1.00",
        currency="EUR",
        period_length=1,
        period_unit="MONTH",
        start_date_time=datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC),
        callback_url=f"https://hooks.example/cb?token={token}",
    )
    texts = [repr(schedule)]
    async with ScheduleClient(
        API_KEY, username=USER, password=PASSWORD, shared_secret=SECRET, base_url=server.base_url
    ) as client:
        results = [
            await client.get("SC-1"),
            await client.pause("SC-1"),
            await client.continue_("SC-1", at=datetime.datetime.now(datetime.UTC)),
            await client.update("SC-1", UpdateSchedule(amount="2")),
            await client.cancel("SC-1"),
        ]
        with pytest.raises(OutcomeUnknownError) as info:
            await client.start(schedule)
        texts.append(repr(client))
    assert results[1].already_done
    texts += [f"{r} {r!r} {dict(r.malformed)}" for r in results]
    error: BaseException | None = info.value
    while error is not None:
        texts.append(f"{error} {error!r} {vars(error)} {getattr(error, '__notes__', '')}")
        error = error.__cause__ or error.__context__
    texts += [record.getMessage() for record in caplog.records]
    scan = Scan()
    for text in texts:
        scan.add("operations", text.encode())
    assert scan.leaks() == []
    assert not any(token in text for text in texts)


async def test_mock_server_operations_hold_no_credential(caplog: pytest.LogCaptureFixture) -> None:
    """Every operation, signed and mis-signed: answers, arrivals, schedules and logs show none."""
    import aiohttp  # noqa: PLC0415 - only this test sends raw requests
    from schedcancel._protocol.wire import basic_auth, signature  # noqa: PLC0415
    from schedcancel.testing import Operation  # noqa: PLC0415

    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    auth = basic_auth(USER, PASSWORD)
    date = "Tue, 21 Jul 2020 13:15:03 GMT"
    bodies = {
        Operation.GET: b"",
        Operation.CONTINUE: b'{"continueDateTime": "2099-01-01T00:00:00+00:00"}',
        Operation.UPDATE: b'{"merchantMetaData": "m"}',
        Operation.START: b'{"registrationUuid": "RG-1"}',
    }
    async with (
        MockScheduleServer(users={USER: PASSWORD}, connectors={API_KEY: SECRET}) as server,
        aiohttp.ClientSession() as session,
    ):
        server.seed(["SC-1"])
        for operation in Operation:
            url = server.url_for(
                None if operation is Operation.START else "SC-1", operation=operation
            )
            body = bodies.get(operation, b"{}")
            method = "GET" if operation is Operation.GET else "POST"
            for secret in (SECRET, "wrong"):
                headers = {"Authorization": auth, "Content-Type": "application/json", "Date": date}
                headers["X-Signature"] = signature(
                    secret,
                    method=method,
                    body=body,
                    content_type="application/json",
                    date=date,
                    request_uri=url[url.index("/api/v3") :],
                )
                async with session.request(method, url, data=body, headers=headers) as response:
                    texts.append(f"{response.status} {response.headers!r} {await response.text()}")
        texts += [repr(server), repr(server.recorder), *map(repr, server.recorder.arrivals)]
        texts += [repr(server.schedule(key)) for key in server.statuses]
    texts += [record.getMessage() for record in caplog.records] + [caplog.text]
    assert server.recorder.outcomes()[Outcome.BAD_SIGNATURE] == 6
    scan = Scan()
    for text in texts:
        scan.add("mock operations", text.encode())
    assert scan.leaks() == []


async def test_the_examples_answers_hold_no_credential(caplog: pytest.LogCaptureFixture) -> None:
    """The service's routes (read, pause, cancel, a bad id, refused credentials) and the bot's
    /status and /cancel lines, on a signing server: no credential in any answer or log."""
    from aiohttp.test_utils import TestClient, TestServer  # noqa: PLC0415 - this test only

    from test_examples import _append_to, _load  # noqa: PLC0415 - the examples' loader

    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    service, bot = _load("aiohttp_service"), _load("chat_bot")
    async with MockScheduleServer(users={USER: PASSWORD}, connectors={API_KEY: SECRET}) as server:
        server.seed(["SC-1", "SC-2"])
        for password in (PASSWORD, "wrong-password"):
            app = service.make_app(lambda p=password: server.client(password=p))
            async with TestClient(TestServer(app)) as http:
                for method, path in (
                    ("GET", "/schedules/SC-1"),
                    ("POST", "/schedules/SC-1/pause"),
                    ("POST", "/schedules/SC-1/cancel"),
                    ("POST", f"/schedules/{'x' * 40}/cancel"),
                ):
                    response = await http.request(method, path)
                    texts.append(f"{response.status} {response.headers!r} {await response.text()}")
        replies: list[str] = []
        async with server.client() as client:
            for text in ("/status SC-2", "/status SC-404", "/cancel SC-2 bad!id", "/status x y"):
                await bot.handle_command(text, _append_to(replies), client)
        async with server.client(password="wrong-password") as client:
            replies.append(await bot.status_line(client, "SC-2"))
        texts += replies
    texts += [record.getMessage() for record in caplog.records] + [caplog.text]
    assert "SC-2: cancelled" in replies
    scan = Scan()
    for text in texts:
        scan.add("examples", text.encode())
    assert scan.leaks() == []


# --- bodies that echo credentials in any form ---------------------------------------------------

#: A password whose Basic token holds "+" and "/" (PHP's json_encode writes "/" as "\/").
SLASHY_PASSWORD = "PW-SENTINEL-He>9Z?"
SLASHY_TOKEN = base64.b64encode(f"{USER}:{SLASHY_PASSWORD}".encode()).decode()


def _written(secret: str) -> dict[str, str]:
    """The forms a body may carry ``secret`` in."""
    units = secret.encode("utf-16-be")
    escapes = [int.from_bytes(units[i : i + 2]) for i in range(0, len(units), 2)]
    return {
        "raw": secret,
        "php json": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "json escapes": "".join(f"\\u{unit:04x}" for unit in escapes),
        "JSON ESCAPES": "".join(f"\\u{unit:04X}" for unit in escapes),
        "percent": urllib.parse.quote(secret, safe=""),
        "percent twice": urllib.parse.quote(urllib.parse.quote(secret, safe=""), safe=""),
        "html": "".join(f"&#x{ord(c):x};" if not c.isalnum() else c for c in secret),
        "base64": base64.b64encode(secret.encode()).decode(),
        "base64url": base64.urlsafe_b64encode(secret.encode()).decode().rstrip("="),
    }


@pytest.mark.looptime
async def test_bodies_echoing_credentials_in_any_form_leave_them_in_no_output(
    server: LocalServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """Bodies echo the password, the shared secret and the Basic token (with "/" and "+")
    raw, JSON-escaped as PHP and as \\u escapes, percent-encoded, as HTML references, in
    base64, and cut short inside the token: exception messages, the journal's error fields,
    OpenTelemetry span attributes and events, and DEBUG logs hold none of them, nor any
    8-character start of one."""
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415 - the otel extra
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: PLC0415
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: PLC0415
        InMemorySpanExporter,
    )
    from schedcancel.hooks import LoggingHook  # noqa: PLC0415
    from schedcancel.otel import OpenTelemetryHook  # noqa: PLC0415

    caplog.set_level(logging.DEBUG)
    credentials = (SLASHY_PASSWORD, SECRET, SLASHY_TOKEN)
    assert "/" in SLASHY_TOKEN
    assert "+" in SLASHY_TOKEN
    forms = [_written(secret) for secret in credentials]
    for name in forms[0]:
        echo = "Authorization: Basic " + " ".join(form[name] for form in forms)
        server.replies += [
            (200, {}, f'["{echo}"]'.encode()),  # not a schedule response: an excerpt of it
            (400, {}, json.dumps({"success": False, "errorMessage": echo}).encode()),
            (
                200,
                {},
                json.dumps({"success": False, "errorCode": 7002, "errorMessage": echo}).encode(),
            ),
        ]
    # A body cut short inside the token (a proxy's excerpt): the message cuts it again.
    server.replies.append((200, {}, ("x" * 190 + SLASHY_TOKEN[:30]).encode()))
    ids = [f"SC-{i}" for i in range(len(server.replies))]
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    path = tmp_path / "journal.jsonl"
    async with ScheduleClient(
        API_KEY,
        username=USER,
        password=SLASHY_PASSWORD,
        shared_secret=SECRET,
        base_url=server.base_url,
        retry=RetryPolicy(attempts=1),
        hooks=[LoggingHook(), OpenTelemetryHook(tracer_provider=provider)],
    ) as client:
        outcomes = [o async for o in client.cancel_many(ids, journal=path, concurrency=1)]
    provider.shutdown()
    assert len(outcomes) == len(ids)
    assert {o.error_type for o in outcomes} == {"ResponseParseError", "ApiError", None}
    texts = [path.read_text()]
    for outcome in outcomes:
        texts.append(f"{outcome!r} {outcome.error} {outcome.result!r}")
        error = outcome.exception
        while error is not None:
            texts.append(f"{error} {error!r} {vars(error)} {getattr(error, '__notes__', '')}")
            error = error.__cause__ or error.__context__
    for span in exporter.get_finished_spans():
        texts.append(repr(dict(span.attributes or {})))
        texts += [repr(dict(event.attributes or {})) for event in span.events]
    texts += [record.getMessage() for record in caplog.records] + [caplog.text]
    needles = {text for form in forms for text in form.values()}
    needles |= {needle[:8] for needle in needles}
    leaks = sorted({needle for needle in needles for text in texts if needle in text})
    assert leaks == []
    assert any("***" in text for text in texts)
