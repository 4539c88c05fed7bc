"""The examples in ``examples/``, each run against the mock server."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from schedcancel import RateLimits, ScheduleClient, ScheduleStatus
from schedcancel.testing import MockScheduleServer, Operation, ServerLimits

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Small windows keep the examples' real waits short; the server counts the same limits.
LIMITS = RateLimits(total=10, per_schedule=10, window=0.5, guard=0.05)


def _load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module (examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"schedcancel_example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(name="server")
async def _server() -> AsyncIterator[MockScheduleServer]:
    limits = ServerLimits(
        total=LIMITS.total, per_schedule=LIMITS.per_schedule, window=LIMITS.window
    )
    async with MockScheduleServer(limits=limits) as server:
        server.seed([f"SC-{i:03d}" for i in range(25)])
        server.seed(["SC-done"], "CANCELLED")
        yield server


def _client_factory(
    server: MockScheduleServer, limits: RateLimits = LIMITS
) -> Callable[[], ScheduleClient]:
    return lambda: server.client(limits=limits)


# --------------------------------------------------------------------------- bulk_gather


async def test_bulk_gather_counts_every_outcome_without_429(
    server: MockScheduleServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """gather over 27 cancels: 25 cancelled, 1 already, 1 refused; never over the limit."""
    example = _load("bulk_gather")
    ids = [f"SC-{i:03d}" for i in range(25)] + ["SC-done", "SC-unknown"]
    counts = await example.main(ids, limits=LIMITS, environ=server.client_environ())
    assert counts == Counter({"cancelled": 25, "already cancelled": 1, "refused 7040": 1})
    assert server.recorder.count_rate_limited() == 0
    assert server.recorder.max_arrivals_in_window(LIMITS.window) <= LIMITS.total
    assert "cancelled: 25" in capsys.readouterr().out


async def test_bulk_gather_describes_exceptions_and_reraises_bugs() -> None:
    """Library errors become buckets; anything else is a bug and is raised."""
    example = _load("bulk_gather")
    assert example.describe(KeyError("x")) == "KeyError"

    class Broken:
        limiter = None

        async def cancel(self, schedule_id: str) -> None:
            raise KeyError(schedule_id)

    with pytest.raises(KeyError):
        await example.cancel_all(Broken(), ["SC-000"])


@pytest.mark.parametrize(
    ("ids", "code", "line"),
    [
        (["SC-000", "SC-done"], 0, "cancelled: 1"),
        (["SC-001", "SC-unknown"], 1, "refused 7040: 1"),
        ([], 1, "usage:"),
    ],
)
async def test_bulk_gather_as_a_script_uses_the_base_url_and_exits_non_zero_on_failures(
    server: MockScheduleServer, ids: list[str], code: int, line: str
) -> None:
    """``python examples/bulk_gather.py IDS`` goes where SCHEDCANCEL_BASE_URL says; exit 1 on a
    refused id (or none given), 0 when every id ends cancelled."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "bulk_gather.py"),
        *ids,
        env={k: v for k, v in os.environ.items() if not k.startswith("SCHEDCANCEL_")}
        | server.client_environ(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        output, _ = await process.communicate()
    assert process.returncode == code, output.decode()
    assert line in output.decode()
    # Each id once; the order is not the script's to keep (two connections race).
    assert Counter(arrival.schedule_id for arrival in server.recorder.arrivals) == Counter(ids)


# --------------------------------------------------------------------------- aiohttp_service


@pytest.fixture(name="service")
async def _service(server: MockScheduleServer) -> AsyncIterator[TestClient[Any, Any]]:
    example = _load("aiohttp_service")
    tight = RateLimits(total=3, per_schedule=10, window=30.0, guard=0.05)
    app = example.make_app(_client_factory(server, tight), queue_timeout=1.0)
    async with TestClient(TestServer(app)) as http:
        yield http


async def test_service_cancels_one_schedule(service: TestClient[Any, Any]) -> None:
    """POST /schedules/{id}/cancel answers with what the API said, for each kind of answer."""
    response = await service.post("/schedules/SC-000/cancel")
    assert response.status == 200
    assert await response.json() == {
        "schedule_id": "SC-000",
        "cancelled": True,
        "already_cancelled": False,
        "status": "CANCELLED",
        "error_code": None,
    }
    already = await (await service.post("/schedules/SC-done/cancel")).json()
    assert (already["cancelled"], already["already_cancelled"]) == (True, True)
    unknown = await (await service.post("/schedules/SC-nope/cancel")).json()
    assert (unknown["cancelled"], unknown["error_code"]) == (False, 7040)


async def test_service_reads_pauses_and_cancels_on_one_budget(
    server: MockScheduleServer, service: TestClient[Any, Any]
) -> None:
    """GET /schedules/{id} reads, POST .../pause pauses (again: already), then cancel."""
    server.seed(["SC-030"], scheduled_at=datetime(2030, 5, 1, 12, 0, tzinfo=UTC))
    read = await service.get("/schedules/SC-030")
    assert read.status == 200
    assert await read.json() == {
        "schedule_id": "SC-030",
        "found": True,
        "status": "ACTIVE",
        "next_charge": "2030-05-01T12:00:00+00:00",
        "error_code": None,
    }
    paused = await (await service.post("/schedules/SC-030/pause")).json()
    assert paused == {
        "schedule_id": "SC-030",
        "paused": True,
        "already_paused": False,
        "status": "PAUSED",
        "error_code": None,
    }
    again = await (await service.post("/schedules/SC-030/pause")).json()
    assert (again["paused"], again["already_paused"], again["status"]) == (True, True, "PAUSED")
    # The budget (3 per 30 s) is one for every operation: the fourth call would wait.
    full = await service.post("/schedules/SC-030/cancel")
    assert full.status == 503
    assert server.status_of("SC-030") == ScheduleStatus.PAUSED
    assert server.recorder.operations() == Counter({Operation.GET: 1, Operation.PAUSE: 2})


async def test_service_cancels_a_paused_schedule_and_reports_unknown_ids(
    server: MockScheduleServer,
) -> None:
    """A paused schedule cancels; an unknown id is not found (7040); a bad one is 400."""
    example = _load("aiohttp_service")
    async with TestClient(TestServer(example.make_app(_client_factory(server)))) as http:
        assert (await http.post("/schedules/SC-021/pause")).status == 200
        cancelled = await (await http.post("/schedules/SC-021/cancel")).json()
        assert (cancelled["cancelled"], cancelled["status"]) == (True, "CANCELLED")
        unknown = await (await http.get("/schedules/SC-nope")).json()
        assert (unknown["found"], unknown["next_charge"], unknown["error_code"]) == (
            False,
            None,
            7040,
        )
        assert (await http.get(f"/schedules/{'x' * 40}")).status == 400
    assert server.recorder.count_rate_limited() == 0


async def test_service_refuses_a_bad_id_and_a_long_queue(service: TestClient[Any, Any]) -> None:
    """A bad id is 400; once the limiter's queue is longer than the timeout, 503 + Retry-After."""
    bad = await service.post(f"/schedules/{'x' * 40}/cancel")
    assert bad.status == 400
    for i in range(3):  # the window's whole budget (3 per 30 s)
        assert (await service.post(f"/schedules/SC-00{i}/cancel")).status == 200
    full = await service.post("/schedules/SC-010/cancel")
    assert full.status == 503
    assert int(full.headers["Retry-After"]) >= 29


async def test_service_reports_upstream_failures_as_502(server: MockScheduleServer) -> None:
    """Refused credentials upstream become 502 for the caller, with no detail leaked."""
    example = _load("aiohttp_service")

    def wrong_password() -> ScheduleClient:
        return server.client(password="wrong", limits=LIMITS)

    async with TestClient(TestServer(example.make_app(wrong_password))) as http:
        response = await http.post("/schedules/SC-000/cancel")
        assert response.status == 502
        assert await response.json() == {"error": "AuthenticationError"}
        bulk = await http.post("/schedules/cancel", json={"ids": ["SC-001", "SC-002"]})
        lines = [json.loads(line) for line in (await bulk.text()).splitlines()]
        assert lines[-1] == {"error": "AuthenticationError"}


async def test_service_streams_a_bulk_cancel(server: MockScheduleServer) -> None:
    """POST /schedules/cancel streams one JSON line per id as each finishes."""
    example = _load("aiohttp_service")
    async with TestClient(TestServer(example.make_app(_client_factory(server)))) as http:
        ids = ["SC-020", "SC-021", "SC-done", "not valid!"]
        response = await http.post("/schedules/cancel", json={"ids": ids})
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in (await response.text()).splitlines()]
        assert {line["id"]: line["outcome"] for line in lines} == {
            "SC-020": "cancelled",
            "SC-021": "cancelled",
            "SC-done": "already_cancelled",
            "not valid!": "invalid",
        }
        bodies: list[object] = [{"ids": "SC-1"}, {"nope": []}, "not json"]
        for body in bodies:
            bad = await http.post("/schedules/cancel", data=json.dumps(body))
            assert bad.status == 400


async def test_service_main_uses_the_base_url_of_the_environment(
    server: MockScheduleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``main()`` serves with a client built from SCHEDCANCEL_*: its base URL too."""
    example = _load("aiohttp_service")
    for name, value in server.client_environ().items():
        monkeypatch.setenv(name, value)
    apps: list[web.Application] = []
    monkeypatch.setattr(example.web, "run_app", lambda app, **_: apps.append(app))
    example.main()
    async with TestClient(TestServer(apps[0])) as http:
        response = await http.post("/schedules/SC-005/cancel")
        assert (await response.json())["cancelled"] is True
    assert server.status_of("SC-005") == ScheduleStatus.CANCELLED


# --------------------------------------------------------------------------- chat_bot


def _append_to(replies: list[str]) -> Callable[[str], Awaitable[None]]:
    """A bot's ``reply`` that appends to ``replies``."""

    async def reply(text: str) -> None:
        replies.append(text)

    return reply


async def test_chat_bot_cancels_now_when_there_is_room(server: MockScheduleServer) -> None:
    """With room in the window the bot says "now", then one line per schedule."""
    example = _load("chat_bot")
    replies: list[str] = []

    async def reply(text: str) -> None:
        replies.append(text)

    async with server.client(limits=LIMITS) as client:
        await example.handle_command("/cancel SC-000 SC-done SC-nope", reply, client)
    assert replies[0] == "Cancelling 3 schedules now."
    assert sorted(replies[1:]) == [
        "SC-000: cancelled",
        "SC-done: was already cancelled",
        "SC-nope: refused (error 7040)",
    ]


@pytest.mark.looptime
async def test_chat_bot_tells_the_expected_wait_before_cancelling(
    server: MockScheduleServer,
) -> None:
    """When the window is full the bot first says how long, from the limiter's estimate.

    On virtual time, so the load of the machine cannot move it: the wait is a hold (1.05 s)
    less the round trips, which the bot rounds up to 2 s.
    """
    example = _load("chat_bot")
    replies: list[str] = []

    async def reply(text: str) -> None:
        replies.append(text)

    limits = RateLimits(total=2, per_schedule=10, window=1.0, guard=0.05)
    async with server.client(limits=limits) as client:
        await client.cancel("SC-000")
        await client.cancel("SC-001")
        await example.handle_command("/cancel SC-002", reply, client)
        await example.handle_command("/help", reply, client)
        await example.handle_command("/cancel", reply, client)
    assert replies[0] == "Queued 1 schedule: about 2 s."
    assert replies[1] == "SC-002: cancelled"
    assert replies[2:] == [example.USAGE, example.USAGE]


async def test_chat_bot_wait_counts_windows_for_big_batches(server: MockScheduleServer) -> None:
    """150 ids at 60 per window from an idle limiter: two more windows (61 s each)."""
    example = _load("chat_bot")
    async with server.client() as client:
        assert await example.expected_wait(client, 150) == pytest.approx(122.0)
        assert await example.expected_wait(client, 60) == 0.0


async def test_chat_bot_answers_status_with_the_status_and_next_charge(
    server: MockScheduleServer,
) -> None:
    """/status ID reads the schedule: its status and next charge, or why it cannot."""
    example = _load("chat_bot")
    replies: list[str] = []
    server.seed(["SC-040"], scheduled_at=datetime(2030, 5, 1, 12, 0, tzinfo=UTC))
    server.seed(["SC-041"], "CANCELLED", scheduled_at=datetime(2030, 6, 1, 8, 0, tzinfo=UTC))
    async with server.client(limits=LIMITS) as client:
        for text in ("/status SC-040", "/status SC-041", "/status SC-nope", "/status bad!id"):
            await example.handle_command(text, _append_to(replies), client)
        await example.handle_command("/status SC-1 SC-2", _append_to(replies), client)
    assert replies == [
        "SC-040: ACTIVE, next charge 2030-05-01 12:00 UTC",
        "SC-041: CANCELLED, next charge 2030-06-01 08:00 UTC",
        "SC-nope: not found (error 7040)",
        "bad!id: not a schedule id",
        example.USAGE,
    ]
    assert server.recorder.operations() == Counter({Operation.GET: 3})


async def test_chat_bot_status_reports_a_failure_in_a_line(server: MockScheduleServer) -> None:
    """A transport or API failure of /status is one line, not an exception."""
    example = _load("chat_bot")
    async with server.client(password="wrong", limits=LIMITS) as client:
        line = await example.status_line(client, "SC-000")
    assert line == "SC-000: failed (AuthenticationError), try again later"


async def test_chat_bot_describes_errors_and_invalid_ids() -> None:
    """Every outcome kind has a line a person understands."""
    from schedcancel import BulkOutcome, TransportError  # noqa: PLC0415 - this test only

    example = _load("chat_bot")
    error = BulkOutcome.from_exception("SC-1", TransportError("reset"))
    assert example._line(error) == "SC-1: failed (TransportError), try again later"
    invalid = BulkOutcome.invalid("bad id", "no")
    assert example._line(invalid) == "bad id: not a schedule id"
