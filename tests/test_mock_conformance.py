"""The emulator on its own: its table against the client's, its signer against the vectors,
and the official PHP SDK's requests, byte for byte, against the real server.

The mock server must not share the client's mistakes: it imports nothing of the client
(checked below on the source), has its own operation table (compared with the client's,
so a disagreement fails loudly) and its own signature check (checked against the
published vectors). It accepts what the gateway accepts: the deprecated MD5 body hash
and the SHA-1x10-hashed password the PHP SDK (php-ixopay 3.21) sends; each leniency can
be switched off.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schedcancel
import yarl
from schedcancel._mock import auth
from schedcancel._mock.operations import OPERATIONS, OperationSpec
from schedcancel.testing import (
    MockScheduleServer,
    Operation,
    ServerLimits,
    Status,
    add_mock_server_arguments,
    server_from_args,
)

# The same hand-moved clock as the other mock tests.
from test_mock_operations import LATER, START
from test_testing import FakeClock, _clock  # noqa: F401 - a fixture, found by name

MOCK = Path(schedcancel.__file__).parent / "_mock"

# -- the emulator imports nothing of the client -------------------------------------------

#: What ``_mock`` may import from the package: the exceptions (a leaf, importing nothing).
SHARED_LEAVES = {"errors"}


def _package_imports(path: Path) -> set[str]:
    """The schedcancel modules a ``_mock`` module imports (relative or absolute), by name."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 2 or module.startswith("schedcancel"):
                names.add(module.removeprefix("schedcancel").lstrip(".") or "schedcancel")
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("schedcancel"))
    return names


def test_the_emulator_imports_nothing_of_the_client() -> None:
    """No module of ``_mock`` imports the client's protocol, models, client, converter or
    redaction (even lazily): only its siblings and the exceptions."""
    found = {path.name: _package_imports(path) - SHARED_LEAVES for path in MOCK.glob("*.py")}
    assert len(found) >= 9
    assert {name: imports for name, imports in found.items() if imports} == {}
    assert _package_imports(MOCK / "server.py") == {"errors"}
    assert _package_imports(MOCK / "cli.py") == {"errors"}  # its own siblings aside


# -- the two tables agree -------------------------------------------------------------------


def _already_there(row: OperationSpec) -> Status | None:
    """The status the emulator's 7070 shows when the schedule is where ``row`` leads.

    Cancelling a CANCELLED schedule, pausing a PAUSED one, continuing an ACTIVE one
    answer 7070 with this status as old and new; None for an operation whose 7070
    never means that (get, update, start).
    """
    if row.target is None or row.sources is None or row.target in row.sources:
        return None
    return row.target


def disagreements(
    client: Sequence[schedcancel.Operation], server: Sequence[Operation] = tuple(Operation)
) -> list[str]:
    """Every way the client's operation table and the emulator's differ, one line each."""
    lines: list[str] = []
    client_names = {op.path for op in client}
    server_names = {op.value for op in server}
    lines += [f"{name}: only in the client's table" for name in sorted(client_names - server_names)]
    lines += [
        f"{name}: only in the emulator's table" for name in sorted(server_names - client_names)
    ]
    for op in client:
        if op.path not in server_names:
            continue
        row = OPERATIONS[Operation(op.path)]
        facts = {
            "method": (op.method, row.method),
            "path": (
                f"{{apiKey}}/{'{scheduleId}/' * op.has_schedule_id}{op.path}",
                row.path.removeprefix("/schedule/"),
            ),
            "body": (op.body.value, row.body.kind),
            "has_schedule_id": (op.has_schedule_id, row.has_schedule_id),
            # The client reads a 7070 showing this status as "already done"; the
            # emulator answers 7070 with it when the schedule is already there.
            "7070 target": (op.target_status, _already_there(row)),
        }
        for fact, (theirs, mine) in facts.items():
            if theirs != mine:
                lines.append(
                    f"{op.path}: {fact} is {theirs!r} in the client, {mine!r} in the emulator"
                )
    return lines


def test_the_client_and_the_emulator_have_the_same_operations() -> None:
    """Same operations, methods, paths, bodies, scheduleId flags and 7070 targets."""
    assert disagreements(list(schedcancel.Operation)) == []


def test_the_client_and_the_emulator_have_the_same_statuses() -> None:
    """The same status names and wire values; each equals the other's member."""
    assert {s.name: s.value for s in schedcancel.ScheduleStatus} == {
        s.name: s.value for s in Status
    }
    assert all(Status(client) == str(client) for client in schedcancel.ScheduleStatus)


def test_a_disagreement_fails_with_a_clear_message() -> None:
    """A client table missing an operation, or naming another target, is spelt out."""

    class Wrong:
        path, method, has_schedule_id = "pause", "POST", True
        body = schedcancel.Operation.PAUSE.body
        target_status = schedcancel.ScheduleStatus.CANCELLED

    others = [op for op in schedcancel.Operation if op.path not in {"pause", "start"}]
    lines = disagreements([*others, Wrong])  # type: ignore[list-item]
    assert lines == [
        "start: only in the emulator's table",
        "pause: 7070 target is <ScheduleStatus.CANCELLED: 'CANCELLED'> in the client, "
        "<Status.PAUSED: 'PAUSED'> in the emulator",
    ]


# -- the emulator's signer against the published vectors ----------------------------------

SECRET = "my-shared-secret"
DATE = "Tue, 21 Jul 2020 13:15:03 GMT"
CT = "application/json; charset=utf-8"


@pytest.mark.parametrize(
    ("secret", "body", "uri", "date", "expected"),
    [
        pytest.param(
            "",
            b"",
            "/api/v3/transaction/YOUR-API-KEY-HERE/debit",
            "Tue, 28 Apr 2026 15:23:40 GMT",
            "4ICq+hfHFA81dAJHcXoP2/Pb+nkp9GljLe2S+REN0vMBhbQYNQUHIw/YxUTEIWS5Uu5WgdDEc7keMtqS0mpnAA==",
            id="docs-tool",
        ),
        pytest.param(
            SECRET,
            b'{"merchantTransactionId":"2019-09-02-0004","amount":"9.99","currency":"EUR"}',
            "/api/v3/transaction/my-api-key/debit",
            DATE,
            "pJUnPq6NQFmpPEG0VmnwspAVeTA7uC+pFP0nYYwua3Diw7GuW+brdk4UR6ma70EstDs8mrxWfqh1KU0xfNC69g==",
            id="java-signing-lib",
        ),
        pytest.param(
            SECRET,
            b"{}",
            "/api/v3/schedule/my-api-key/SC-1234-1234-1234-1234-1234-1234/cancel",
            DATE,
            "w2xO8dAXM16+VPmYfTaQhyeoKoG9L9HsZVsBUaEEe/6BS/apDZIGy/qcF1KwlBE08jBMuV1QmpJR7/NjUY95Mg==",
            id="schedule-cancel",
        ),
    ],
)
def test_the_emulators_signature_reproduces_the_published_vectors(
    secret: str, body: bytes, uri: str, date: str, expected: str
) -> None:
    """IXOPAY's published SHA-512 vectors, with the emulator's own signer."""
    got = auth.signature(
        secret, method="POST", body=body, content_type=CT, date=date, request_uri=uri
    )
    assert got == expected


def php_sdk_signature(secret: str, method: str, body: bytes, date: str, uri: str) -> str:
    """The PHP SDK's ``signJson`` as documented: MD5 hex of the body in the message, then
    HMAC-SHA512 and base64 (computed here, independently of the emulator)."""
    message = f"{method}\n{hashlib.md5(body).hexdigest()}\n{CT}\n{date}\n{uri}"  # noqa: S324
    return base64.b64encode(
        hmac.new(secret.encode(), message.encode(), hashlib.sha512).digest()
    ).decode()


def test_the_emulators_md5_signature_matches_the_documented_layout() -> None:
    """The deprecated MD5 body hash: the same message with ``md5(body)`` hex."""
    uri = "/api/v3/schedule/my-api-key/SC-1234-1234-1234-1234-1234-1234/cancel"
    expected = php_sdk_signature(SECRET, "POST", b"[]", DATE, uri)
    got = auth.signature(
        SECRET,
        method="POST",
        body=b"[]",
        content_type=CT,
        date=DATE,
        request_uri=uri,
        body_hash="md5",
    )
    assert got == expected
    # Not the SHA-512 one: the two checks are different checks.
    assert got != auth.signature(
        SECRET, method="POST", body=b"[]", content_type=CT, date=DATE, request_uri=uri
    )


def sha1_ten_times(password: str) -> str:
    """The PHP SDK's constructor: ``sha1`` applied ten times, hex each round."""
    for _ in range(10):
        password = hashlib.sha1(password.encode()).hexdigest()  # noqa: S324 - the SDK's form
    return password


def test_the_sdk_hashed_password() -> None:
    """SHA-1 ten times, hex each round; accepted in place of the password unless strict."""
    hashed = sha1_ten_times("myPassword")
    assert auth.sdk_hashed_password("myPassword") == hashed
    assert len(hashed) == 40
    assert auth.password_matches(hashed, "myPassword", accept_sdk_hashed=True)
    assert not auth.password_matches(hashed, "myPassword", accept_sdk_hashed=False)
    assert auth.password_matches("myPassword", "myPassword", accept_sdk_hashed=False)
    assert not auth.password_matches(sha1_ten_times("other"), "myPassword", accept_sdk_hashed=True)


# -- the PHP SDK's requests, byte for byte, against the real server ------------------------

USER, PASSWORD, API_KEY = "anyApiUser", "myPassword", "my-api-key"
#: What php-ixopay 3.21 puts in ``Date``/``X-Date``: ``D, d M Y H:i:s T`` in UTC.
SDK_DATE = "Sun, 01 Mar 2026 12:00:00 UTC"
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def php_json(value: dict[str, Any]) -> bytes:
    """``json_encode``: compact, and ``/`` escaped as ``\\/``."""
    return json.dumps(value, separators=(",", ":")).replace("/", "\\/").encode()


#: The bodies the SDK sends: ``json_encode([])`` is ``[]`` for cancel and pause.
SDK_BODIES: dict[Operation, bytes] = {
    Operation.GET: b"",
    Operation.PAUSE: b"[]",
    Operation.CANCEL: b"[]",
    Operation.CONTINUE: php_json({"continueDateTime": LATER}),
    Operation.UPDATE: php_json({"amount": "5.00", "callbackUrl": "https://shop.example/cb"}),
    Operation.START: php_json(START),
}


async def sdk_request(
    server: MockScheduleServer,
    operation: Operation,
    schedule_id: str | None = "SC-1",
    *,
    secret: str = SECRET,
    password: str = PASSWORD,
) -> tuple[int, dict[str, Any]]:
    """One request as php-ixopay's ``CurlClient`` sends it, written to the socket as bytes.

    The route with ``str_replace`` (no encoding), the MD5-signed ``X-Signature``, ``Date``
    and ``X-Date`` ending in ``UTC``, ``Content-Type: application/json; charset=utf-8``,
    Basic auth of the SHA-1x10-hashed password (cURL's ``CURLOPT_USERPWD``), the
    ``X-SDK-*`` headers, and what cURL adds (``Host``, ``Accept: */*``, ``Content-Length``).
    """
    url = yarl.URL(
        server.url_for(None if operation is Operation.START else schedule_id, operation=operation)
    )
    body = SDK_BODIES[operation]
    method = "GET" if operation is Operation.GET else "POST"
    token = base64.b64encode(f"{USER}:{sha1_ten_times(password)}".encode()).decode()
    headers = [
        ("Host", f"{url.host}:{url.port}"),
        ("Authorization", f"Basic {token}"),
        ("Accept", "*/*"),
        ("Date", SDK_DATE),
        ("X-Date", SDK_DATE),
        ("X-Signature", php_sdk_signature(secret, method, body, SDK_DATE, url.raw_path)),
        ("Content-Type", CT),
        ("X-SDK-Type", "IXOPAY PHP Client"),
        ("X-SDK-Version", "3.21.0"),
        ("X-SDK-PlatformVersion", "8.2.12"),
    ]
    if method == "POST":
        headers.append(("Content-Length", str(len(body))))
    head = f"{method} {url.raw_path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(head.encode("ascii") + b"\r\n" + body)
        await writer.drain()
        status_line, *lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        length = next(
            int(line.split(":", 1)[1])
            for line in lines
            if line.lower().startswith("content-length:")
        )
        answer = json.loads(await reader.readexactly(length))
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split(" ")[1]), answer


def _sdk_server(clock: FakeClock, **settings: Any) -> MockScheduleServer:
    return MockScheduleServer(
        users={USER: PASSWORD},
        connectors={API_KEY: SECRET},
        clock=clock,
        wall_clock_at_start=T0,
        **settings,
    )


@pytest.fixture(name="server")
async def _server(clock: FakeClock) -> AsyncIterator[MockScheduleServer]:
    async with _sdk_server(clock) as server:
        server.seed(["SC-1"])
        yield server


async def test_every_sdk_call_behaves_as_documented(server: MockScheduleServer) -> None:
    """get, update, pause, continue, cancel and start, as the SDK sends them, succeed."""
    expected = [
        (Operation.GET, "ACTIVE", "ACTIVE"),
        (Operation.UPDATE, "ACTIVE", "ACTIVE"),
        (Operation.PAUSE, "ACTIVE", "PAUSED"),
        (Operation.CONTINUE, "PAUSED", "ACTIVE"),
        (Operation.CANCEL, "ACTIVE", "CANCELLED"),
        (Operation.START, "NON-EXISTING", "ACTIVE"),
    ]
    for operation, old, new in expected:
        status, answer = await sdk_request(server, operation)
        assert (operation, status, answer["success"]) == (operation, 200, True), answer
        assert (answer["oldStatus"], answer["newStatus"]) == (old, new)
    assert server.status_of("SC-1") == Status.CANCELLED
    schedule = server.schedule("SC-1")
    assert schedule is not None
    assert (schedule.amount, schedule.callback_url) == ("5.00", "https://shop.example/cb")
    assert [a.status for a in server.recorder.arrivals] == [200] * 6


async def test_sdk_business_errors_7040_and_7070(server: MockScheduleServer) -> None:
    """An unknown id answers 7040; cancelling a cancelled schedule answers 7070."""
    status, answer = await sdk_request(server, Operation.GET, "SC-404")
    assert (status, answer["success"], answer["errorCode"]) == (200, False, 7040)
    server.seed(["SC-1"], "CANCELLED")
    status, answer = await sdk_request(server, Operation.CANCEL)
    assert (status, answer["errorCode"], answer["newStatus"]) == (200, 7070, "CANCELLED")


async def test_an_sdk_request_signed_with_a_wrong_secret_answers_1004(
    server: MockScheduleServer,
) -> None:
    """The MD5 signature is checked, not waved through: another secret gives 1004."""
    status, answer = await sdk_request(server, Operation.CANCEL, secret="not-the-secret")
    assert (status, answer["errorCode"]) == (401, 1004)
    assert server.status_of("SC-1") == Status.ACTIVE


async def test_sdk_requests_over_the_limit_answer_429(clock: FakeClock) -> None:
    """The SDK's requests count like any other: one over the per-scheduleId limit is a 429."""
    async with _sdk_server(clock, limits=ServerLimits(per_schedule=2)) as server:
        server.seed(["SC-1"])
        answers = [await sdk_request(server, Operation.GET) for _ in range(3)]
    assert [status for status, _ in answers] == [200, 200, 429]
    assert answers[-1][1] == {
        "success": False,
        "errorMessage": "Too many requests",
        "errorCode": 1009,
    }


async def test_the_strict_switches_refuse_what_the_sdk_sends(clock: FakeClock) -> None:
    """Without the leniencies, the MD5 signature answers 1004 and the hashed password 401
    with 1000; the plain password and a SHA-512 signature still pass."""
    async with _sdk_server(clock, accept_md5_signatures=False) as server:
        server.seed(["SC-1"])
        status, answer = await sdk_request(server, Operation.CANCEL)
        assert (status, answer["errorCode"]) == (401, 1004)
    async with _sdk_server(clock, accept_sdk_hashed_password=False) as server:
        server.seed(["SC-1"])
        status, answer = await sdk_request(server, Operation.CANCEL)
        assert (status, answer["errorCode"]) == (401, 1000)
    async with (
        _sdk_server(clock, accept_md5_signatures=False, accept_sdk_hashed_password=False) as server,
        server.client() as client,
    ):
        server.seed(["SC-1"])
        assert (await client.cancel("SC-1")).success


def test_the_cli_switches_the_leniencies_off() -> None:
    """``--reject-md5-signatures`` and ``--reject-sdk-hashed-password``; both on by default."""
    parser = argparse.ArgumentParser()
    add_mock_server_arguments(parser)
    lenient = server_from_args(parser.parse_args([]))
    assert (lenient.accept_md5_signatures, lenient.accept_sdk_hashed_password) == (True, True)
    strict = server_from_args(
        parser.parse_args(["--reject-md5-signatures", "--reject-sdk-hashed-password"])
    )
    assert (strict.accept_md5_signatures, strict.accept_sdk_hashed_password) == (False, False)
