"""The mock server's six operations: state machine, body checks, auth, faults, one budget.

Driven with raw aiohttp requests on 127.0.0.1 (not the client), so every byte the
server judges is the test's own.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import schedcancel
import yarl
from schedcancel import InvalidParameterError, ScheduleStatus
from schedcancel._mock.limits import LimitBook
from schedcancel._mock.operations import operation_named
from schedcancel._protocol.wire import signature
from schedcancel.testing import (
    DEFAULT_API_KEY,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    MODEL_NAMES,
    Fault,
    MockSchedule,
    MockScheduleServer,
    ModelName,
    Operation,
    Outcome,
    ServerLimits,
    add_mock_server_arguments,
    server_from_args,
)

from support.auth import basic_auth

# The same hand-moved clock and fixtures as the older mock tests.
from test_testing import FakeClock, _clock, _session  # noqa: F401 - fixtures, found by name

AUTH = basic_auth(DEFAULT_USERNAME, DEFAULT_PASSWORD)
# The server's date-time at start, fixed so "older than 24 hours" is exact.
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
LATER = "2026-03-05T10:00:00+02:00"
ID_PATTERN = re.compile(r"SC(-[0-9A-F]{4}){6}")
SCHEDULED_AT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\+[0-9]{2}:[0-9]{2}"
)
START = {
    "registrationUuid": "RG-abc",
    "amount": "9.99",
    "currency": "EUR",
    "periodLength": 1,
    "periodUnit": "MONTH",
    "startDateTime": LATER,
    "merchantMetaData": "order 42",
    "callbackUrl": "https://shop.example/cb",
}
# A body each operation accepts.
GOOD: Mapping[Operation, Any] = {
    Operation.GET: None,
    Operation.PAUSE: {},
    Operation.CONTINUE: {"continueDateTime": LATER},
    Operation.UPDATE: {"amount": "5.00"},
    Operation.CANCEL: {},
    Operation.START: START,
}
PER_ID = [op for op in Operation if op is not Operation.START]


@pytest.fixture(name="server")
async def _server(clock: FakeClock) -> AsyncIterator[MockScheduleServer]:
    async with MockScheduleServer(clock=clock, wall_clock_at_start=T0) as server:
        yield server


async def call(
    session: aiohttp.ClientSession,
    server: MockScheduleServer,
    operation: Operation,
    schedule_id: str | None = None,
    body: Any = None,
    *,
    raw: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    api_key: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Send one operation (JSON ``body``, or ``raw`` bytes); return status and JSON answer."""
    if operation is not Operation.START and schedule_id is None:
        schedule_id = "SC-1"
    url = server.url_for(schedule_id, operation=operation, api_key=api_key)
    data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
    sent = {"Authorization": AUTH}
    if operation is not Operation.GET:
        sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    method = "GET" if operation is Operation.GET else "POST"
    async with session.request(
        method,
        yarl.URL(url, encoded=True),
        data=data,
        headers=sent,
        skip_auto_headers=["Content-Type"],
    ) as response:
        return response.status, json.loads(await response.read())


# -- the operations and the state machine ------------------------------------------------


async def test_get_answers_the_schedule_unchanged(
    session: aiohttp.ClientSession, server: MockScheduleServer
) -> None:
    """Get: success, old = new = current, registrationUuid, scheduledAt (+HH:MM), metadata."""
    server.seed(["SC-1"], "PAUSED", registration_uuid="RG-9")
    await call(session, server, Operation.UPDATE, body={"merchantMetaData": "m"})
    status, body = await call(session, server, Operation.GET)
    assert (status, body) == (
        200,
        {
            "success": True,
            "scheduleId": "SC-1",
            "registrationUuid": "RG-9",
            "oldStatus": "PAUSED",
            "newStatus": "PAUSED",
            "scheduledAt": "2026-03-02T12:00:00+00:00",
            "merchantMetaData": "m",
        },
    )
    assert server.recorder.arrivals[-1].outcome is Outcome.FETCHED


@pytest.mark.parametrize(
    ("operation", "before", "after"),
    [
        (Operation.PAUSE, "ACTIVE", "PAUSED"),
        (Operation.CONTINUE, "PAUSED", "ACTIVE"),
        (Operation.CONTINUE, "ERROR", "ACTIVE"),
        (Operation.UPDATE, "ACTIVE", "ACTIVE"),
        (Operation.UPDATE, "PAUSED", "PAUSED"),
        (Operation.UPDATE, "ERROR", "ERROR"),
        (Operation.CANCEL, "ACTIVE", "CANCELLED"),
        (Operation.CANCEL, "PAUSED", "CANCELLED"),
        (Operation.CANCEL, "ERROR", "CANCELLED"),
        *((Operation.GET, s.value, s.value) for s in ScheduleStatus if s.value != "NON-EXISTING"),
    ],
)
async def test_every_edge_of_the_state_machine(
    session: aiohttp.ClientSession,
    server: MockScheduleServer,
    operation: Operation,
    before: str,
    after: str,
) -> None:
    """Each allowed operation succeeds with oldStatus/newStatus and leaves the new status."""
    server.seed(["SC-1"], before)
    status, body = await call(session, server, operation, body=GOOD[operation])
    assert (status, body["success"], body["oldStatus"], body["newStatus"]) == (
        200,
        True,
        before,
        after,
    )
    assert server.status_of("SC-1") == after
    assert server.recorder.operations() == Counter({operation: 1})


@pytest.mark.parametrize(
    ("operation", "current"),
    [
        (Operation.PAUSE, "PAUSED"),
        (Operation.PAUSE, "ERROR"),
        (Operation.PAUSE, "CANCELLED"),
        (Operation.CONTINUE, "ACTIVE"),
        (Operation.CONTINUE, "CANCELLED"),
        (Operation.UPDATE, "CANCELLED"),
        (Operation.CANCEL, "CANCELLED"),
        *((op, "CREATE-PENDING") for op in PER_ID if op is not Operation.GET),
    ],
)
async def test_an_operation_not_valid_in_the_status_answers_7070_showing_it(
    session: aiohttp.ClientSession, server: MockScheduleServer, operation: Operation, current: str
) -> None:
    """HTTP 200, success false, 7070, oldStatus = newStatus = the current status, unchanged."""
    server.seed(["SC-1"], current)
    before = server.schedule("SC-1")
    status, body = await call(session, server, operation, body=GOOD[operation])
    assert (status, body) == (
        200,
        {
            "success": False,
            "scheduleId": "SC-1",
            "oldStatus": current,
            "newStatus": current,
            "errorMessage": "The status of the schedule is not valid for the requested operation",
            "errorCode": 7070,
        },
    )
    assert server.schedule("SC-1") == before
    assert server.recorder.arrivals[-1].outcome is Outcome.INVALID_STATUS


@pytest.mark.parametrize("operation", PER_ID)
async def test_an_unknown_id_answers_7040_for_every_operation(
    session: aiohttp.ClientSession, server: MockScheduleServer, operation: Operation
) -> None:
    """An id never seeded answers 7040 and stays unknown."""
    status, body = await call(session, server, operation, "SC-404", GOOD[operation])
    assert (status, body["success"], body["errorCode"]) == (200, False, 7040)
    assert server.status_of("SC-404") is None
    assert server.recorder.arrivals[-1].outcome is Outcome.UNKNOWN_ID


@pytest.mark.parametrize("operation", PER_ID)
async def test_unknown_ids_active_makes_every_operation_find_an_active_schedule(
    session: aiohttp.ClientSession, operation: Operation
) -> None:
    """With ``unknown_ids="active"`` an unseen id exists as ACTIVE from its first use."""
    async with MockScheduleServer(unknown_ids="active", wall_clock_at_start=T0) as server:
        _, body = await call(session, server, operation, "SC-new", GOOD[operation])
    assert (body["success"], body["oldStatus"]) == (operation is not Operation.CONTINUE, "ACTIVE")


async def test_start_creates_unique_active_ids_from_non_existing(
    session: aiohttp.ClientSession, server: MockScheduleServer
) -> None:
    """Start: a new 32-character id each time, NON-EXISTING to ACTIVE, the fields echoed."""
    server.seed(["SC-0000-0000-0000-0000-0000-0001"])  # the first id it would make
    answers = [await call(session, server, Operation.START, body=START) for _ in range(3)]
    ids = [body["scheduleId"] for _, body in answers]
    assert len(set(ids)) == 3
    assert "SC-0000-0000-0000-0000-0000-0001" not in ids
    for status, body in answers:
        assert ID_PATTERN.fullmatch(body["scheduleId"])
        assert len(body["scheduleId"]) == 32
        assert (status, body) == (
            200,
            {
                "success": True,
                "scheduleId": body["scheduleId"],
                "registrationUuid": "RG-abc",
                "oldStatus": "NON-EXISTING",
                "newStatus": "ACTIVE",
                "scheduledAt": LATER,
                "merchantMetaData": "order 42",
            },
        )
    assert server.schedule(ids[0]) == MockSchedule(
        schedule_id=ids[0],
        status=ScheduleStatus.ACTIVE,
        registration_uuid="RG-abc",
        scheduled_at=datetime(2026, 3, 5, 10, tzinfo=timezone(timedelta(hours=2))),
        amount="9.99",
        currency="EUR",
        period_length=1,
        period_unit="MONTH",
        merchant_metadata="order 42",
        callback_url="https://shop.example/cb",
    )
    [arrival, *_] = server.recorder.select(operation="start")
    assert (arrival.schedule_id, arrival.outcome, arrival.operation) == (
        None,
        Outcome.STARTED,
        Operation.START,
    )


async def test_start_with_only_a_registration_is_scheduled_now(
    session: aiohttp.ClientSession, server: MockScheduleServer, clock: FakeClock
) -> None:
    """Other StartSchedule fields are optional ([TILL]); scheduledAt is then the server's now."""
    clock.now += 90.0
    _, body = await call(session, server, Operation.START, body={"registrationUuid": "RG-1"})
    assert body["scheduledAt"] == "2026-03-01T12:01:30+00:00"
    assert SCHEDULED_AT.fullmatch(body["scheduledAt"])
    assert "merchantMetaData" not in body


async def test_update_changes_the_stored_fields_and_continue_the_next_charge(
    session: aiohttp.ClientSession, server: MockScheduleServer
) -> None:
    """Update sets the fields sent (null clears nullable ones); continue sets scheduledAt."""
    server.seed(["SC-1"], "PAUSED")
    await call(session, server, Operation.UPDATE, body=START)
    _, cleared = await call(
        session, server, Operation.UPDATE, body={"merchantMetaData": None, "currency": "USD"}
    )
    assert "merchantMetaData" not in cleared
    _, continued = await call(
        session, server, Operation.CONTINUE, body={"continueDateTime": "2026-04-01T00:00:00+00:00"}
    )
    assert continued["scheduledAt"] == "2026-04-01T00:00:00+00:00"
    schedule = server.schedule("SC-1")
    assert schedule is not None
    assert (schedule.currency, schedule.amount, schedule.merchant_metadata) == ("USD", "9.99", None)
    assert (schedule.status, schedule.callback_url) == ("ACTIVE", "https://shop.example/cb")
    assert server.recorder.outcomes() == Counter({Outcome.UPDATED: 2, Outcome.CONTINUED: 1})


async def test_an_empty_update_succeeds_and_changes_nothing(
    session: aiohttp.ClientSession, server: MockScheduleServer
) -> None:
    """Update's fields are all optional: {} is a valid, empty change."""
    server.seed(["SC-1"])
    before = server.schedule("SC-1")
    status, body = await call(session, server, Operation.UPDATE, body={})
    assert (status, body["success"]) == (200, True)
    assert server.schedule("SC-1") == before


# -- body checks -------------------------------------------------------------------------

BAD_DATA = (400, 1002)
BAD_BODY = (400, 1005)


@pytest.mark.parametrize(
    ("operation", "body", "expected"),
    [
        # start: registrationUuid
        (Operation.START, {"amount": "1"}, (200, 7010)),
        (Operation.START, {"registrationUuid": ""}, (200, 7010)),
        (Operation.START, {"registrationUuid": None}, (200, 7010)),
        (Operation.START, {"registrationUuid": "R" * 51}, BAD_DATA),
        (Operation.START, {"registrationUuid": 7}, BAD_DATA),
        (Operation.UPDATE, {"registrationUuid": None}, BAD_DATA),
        # amount
        (Operation.START, START | {"amount": "0"}, (200, 7080)),
        (Operation.UPDATE, {"amount": "0.000"}, (200, 7080)),
        (Operation.UPDATE, {"amount": "9.9999"}, BAD_DATA),
        (Operation.UPDATE, {"amount": "12345678901"}, BAD_DATA),
        (Operation.UPDATE, {"amount": "-1"}, BAD_DATA),
        (Operation.UPDATE, {"amount": "1e3"}, BAD_DATA),
        (Operation.UPDATE, {"amount": 9.99}, BAD_DATA),
        # currency
        (Operation.UPDATE, {"currency": "eur"}, BAD_DATA),
        (Operation.UPDATE, {"currency": "EURO"}, BAD_DATA),
        (Operation.START, START | {"currency": None}, BAD_DATA),
        # periodLength and periodUnit
        (Operation.UPDATE, {"periodLength": 0}, (200, 7090)),
        (Operation.START, START | {"periodLength": 365}, (200, 7090)),
        (Operation.UPDATE, {"periodLength": -1}, BAD_DATA),
        (Operation.UPDATE, {"periodLength": "1"}, BAD_DATA),
        (Operation.UPDATE, {"periodLength": True}, BAD_DATA),
        (Operation.UPDATE, {"periodLength": 1.5}, BAD_DATA),
        (Operation.UPDATE, {"periodUnit": "HOUR"}, BAD_DATA),
        (Operation.UPDATE, {"periodUnit": "month"}, BAD_DATA),
        # startDateTime: the spec's regex, a real date, not older than 24 h
        (Operation.START, START | {"startDateTime": "2026-03-05T10:00:00Z"}, (200, 7050)),
        (Operation.UPDATE, {"startDateTime": "2026-03-05T10:00:00.5+00:00"}, (200, 7050)),
        (Operation.UPDATE, {"startDateTime": "2026-03-05T10:00:00-02:00"}, (200, 7050)),
        (Operation.UPDATE, {"startDateTime": "2026-03-05 10:00:00+00:00"}, (200, 7050)),
        (Operation.UPDATE, {"startDateTime": "2026-02-30T10:00:00+00:00"}, (200, 7050)),
        (Operation.UPDATE, {"startDateTime": "2026-02-28T11:59:59+00:00"}, (200, 7050)),
        (Operation.UPDATE, {"startDateTime": "2026-03-05T10:00:00+00:00\n"}, (200, 7050)),
        (Operation.UPDATE, {"startDateTime": 1772366400}, BAD_DATA),
        # merchantMetaData and callbackUrl
        (Operation.UPDATE, {"merchantMetaData": "m" * 256}, BAD_DATA),
        (Operation.UPDATE, {"merchantMetaData": 42}, BAD_DATA),
        (Operation.UPDATE, {"callbackUrl": "u" * 4097}, BAD_DATA),
        # shape
        (Operation.UPDATE, {"unknownField": 1}, BAD_DATA),
        (Operation.START, [START], BAD_DATA),
        (Operation.UPDATE, "amount", BAD_DATA),
        # continue
        (Operation.CONTINUE, {}, (200, 7060)),
        (Operation.CONTINUE, {"continueDateTime": "tomorrow"}, (200, 7060)),
        (Operation.CONTINUE, {"continueDateTime": "2026-02-28T11:59:59+00:00"}, (200, 7060)),
        (Operation.CONTINUE, {"continueDateTime": None}, BAD_DATA),
        (Operation.CONTINUE, {"continueDateTime": LATER, "amount": "1"}, BAD_DATA),
        (Operation.CONTINUE, [], BAD_DATA),
        # cancel and pause take exactly an empty object
        (Operation.PAUSE, {"reason": "x"}, BAD_BODY),
        (Operation.CANCEL, {"reason": "x"}, BAD_BODY),
        (Operation.PAUSE, None, BAD_BODY),
    ],
)
async def test_bodies_that_break_the_schema_are_refused_and_change_nothing(
    session: aiohttp.ClientSession,
    server: MockScheduleServer,
    operation: Operation,
    body: Any,
    expected: tuple[int, int],
) -> None:
    """400 + 1002 for the wrong shape or type, 200 + the documented 70xx for refused values."""
    server.seed(["SC-1"], "PAUSED")
    before = server.statuses
    status, answer = await call(session, server, operation, body=body)
    assert (status, answer["success"], answer["errorCode"]) == (*expected[:1], False, expected[1])
    assert server.statuses == before
    assert server.schedule("SC-1") == MockSchedule(
        schedule_id="SC-1",
        status=ScheduleStatus.PAUSED,
        registration_uuid="RG-SC-1",
        scheduled_at=T0 + timedelta(days=1),
    )
    [arrival] = server.recorder.arrivals
    assert arrival.outcome is (
        Outcome.INVALID_REQUEST if expected[0] == 400 else Outcome.INVALID_DATA
    )
    assert arrival.accepted  # an admitted request spends budget whatever its body


@pytest.mark.parametrize(
    "body",
    [
        START | {"startDateTime": "2026-02-28T12:00:00+00:00"},  # exactly 24 h old
        START | {"periodLength": 364, "amount": "0.001", "merchantMetaData": "m" * 255},
        START | {"merchantMetaData": None, "callbackUrl": None, "registrationUuid": "R" * 50},
        START | {"callbackUrl": "u" * 4096, "amount": "9999999999.999", "periodUnit": "DAY"},
    ],
)
async def test_boundary_values_are_accepted(
    session: aiohttp.ClientSession, server: MockScheduleServer, body: dict[str, Any]
) -> None:
    """The limits themselves pass: 24 h old, 364, 255, 4096, 50 characters, 10.3 digits."""
    status, answer = await call(session, server, Operation.START, body=body)
    assert (status, answer["success"]) == (200, True)


async def test_24_hours_follow_the_servers_clock(
    session: aiohttp.ClientSession, server: MockScheduleServer, clock: FakeClock
) -> None:
    """A continueDateTime valid at start is refused once the server's clock passed it by 24 h."""
    server.seed(["SC-1", "SC-2"], "PAUSED")
    at = {"continueDateTime": "2026-03-01T12:00:00+00:00"}
    assert (await call(session, server, Operation.CONTINUE, "SC-1", at))[1]["success"] is True
    clock.now += 86_400.0 + 1.0
    assert server.now_datetime() == datetime(2026, 3, 2, 12, 0, 1, tzinfo=UTC)
    _, body = await call(session, server, Operation.CONTINUE, "SC-2", at)
    assert body["errorCode"] == 7060


@pytest.mark.parametrize(
    ("operation", "raw", "content_type"),
    [
        (Operation.START, b"{not json", "application/json"),
        (Operation.UPDATE, b"\xff\xfe", "application/json"),
        (Operation.CONTINUE, json.dumps(GOOD[Operation.CONTINUE]).encode(), "text/plain"),
        (Operation.START, json.dumps(START).encode(), None),
        (Operation.GET, b"{}", None),
    ],
)
async def test_unparsable_bodies_and_wrong_content_types_answer_400_1005(
    session: aiohttp.ClientSession,
    server: MockScheduleServer,
    operation: Operation,
    raw: bytes,
    content_type: str | None,
) -> None:
    """Not JSON, not UTF-8, not application/json, or a body on get: 400 with errorCode 1005."""
    server.seed(["SC-1"], "PAUSED")
    headers = {} if content_type is None else {"Content-Type": content_type}
    sent = {"Authorization": AUTH, **headers}
    method = "GET" if operation is Operation.GET else "POST"
    url = server.url_for(None if operation is Operation.START else "SC-1", operation=operation)
    async with session.request(
        method, url, data=raw, headers=sent, skip_auto_headers=["Content-Type"]
    ) as response:
        assert response.status == 400
        assert await response.json() == {
            "success": False,
            "errorMessage": "Invalid request body",
            "errorCode": 1005,
        }
    assert server.statuses == {"SC-1": ScheduleStatus.PAUSED}


async def test_registrations_are_checked_when_asked(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """With ``unknown_registrations="error"`` only seeded registrations and schedules' are valid."""
    async with MockScheduleServer(clock=clock, unknown_registrations="error") as server:
        server.seed(["SC-1"], registration_uuid="RG-of-SC-1")
        server.seed_registrations(["RG-seeded"])
        unknown = await call(session, server, Operation.START, body={"registrationUuid": "RG-x"})
        update = await call(session, server, Operation.UPDATE, body={"registrationUuid": "RG-x"})
        seeded = await call(
            session, server, Operation.START, body={"registrationUuid": "RG-seeded"}
        )
        own = await call(session, server, Operation.START, body={"registrationUuid": "RG-of-SC-1"})
    assert [body.get("errorCode") for _, body in (unknown, update, seeded, own)] == [
        7020,
        7020,
        None,
        None,
    ]
    assert unknown[1]["errorMessage"] == "registrationId is not valid"
    assert len(server.statuses) == 3


async def test_any_registration_is_accepted_by_default(
    session: aiohttp.ClientSession, server: MockScheduleServer
) -> None:
    """By default any registrationUuid is valid: start needs no seeding."""
    _, body = await call(session, server, Operation.START, body={"registrationUuid": "anything"})
    assert body["success"] is True


# -- auth, signature, apiKey, path on every endpoint -------------------------------------


@pytest.mark.parametrize("operation", list(Operation))
async def test_auth_apikey_and_path_checks_apply_to_every_operation(
    session: aiohttp.ClientSession, server: MockScheduleServer, operation: Operation
) -> None:
    """401 for bad Basic auth and an unknown apiKey; 400/1002 for a malformed scheduleId."""
    server.seed(["SC-1"])
    wrong = {"Authorization": basic_auth(DEFAULT_USERNAME, "nope")}
    bad_auth = await call(session, server, operation, body=GOOD[operation], headers=wrong)
    bad_key = await call(session, server, operation, body=GOOD[operation], api_key="other-key")
    answers = [bad_auth[0], bad_key[0]]
    if operation is not Operation.START:
        answers.append((await call(session, server, operation, "SC-" + "1" * 30))[0])
    assert answers == [401, 401, 400][: len(answers)]
    assert server.status_of("SC-1") == ScheduleStatus.ACTIVE
    assert {a.operation for a in server.recorder.arrivals} == {operation}
    assert all(DEFAULT_API_KEY not in (a.api_key or "") for a in server.recorder.arrivals)


def signed(
    server: MockScheduleServer, operation: Operation, body: Any, secret: str
) -> dict[str, str]:
    """The Date and X-Signature headers for one request to ``server``'s SC-1 (or start)."""
    url = yarl.URL(
        server.url_for(None if operation is Operation.START else "SC-1", operation=operation)
    )
    date = "Tue, 21 Jul 2020 13:15:03 GMT"
    data = b"" if body is None else json.dumps(body).encode()
    content_type = "" if operation is Operation.GET else "application/json"
    method = "GET" if operation is Operation.GET else "POST"
    return {
        "Date": date,
        "X-Signature": signature(
            secret,
            method=method,
            body=data,
            content_type=content_type,
            date=date,
            request_uri=url.raw_path,
        ),
    }


@pytest.mark.parametrize("operation", list(Operation))
async def test_signatures_are_checked_on_every_operation_get_signing_the_empty_body(
    session: aiohttp.ClientSession, operation: Operation
) -> None:
    """With a shared secret: signed requests pass, unsigned or mis-signed get 401/1004."""
    async with MockScheduleServer(
        connectors={DEFAULT_API_KEY: "s3cret"}, wall_clock_at_start=T0
    ) as server:
        server.seed(["SC-1"], "PAUSED" if operation is Operation.CONTINUE else "ACTIVE")
        body = GOOD[operation]
        unsigned = await call(session, server, operation, body=body)
        wrong = await call(
            session, server, operation, body=body, headers=signed(server, operation, body, "x")
        )
        good = await call(
            session, server, operation, body=body, headers=signed(server, operation, body, "s3cret")
        )
    assert (
        unsigned
        == wrong
        == (401, {"success": False, "errorMessage": "Invalid signature", "errorCode": 1004})
    )
    assert (good[0], good[1]["success"]) == (200, True)
    assert server.recorder.outcomes()[Outcome.BAD_SIGNATURE] == 2


# -- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize("operation", list(Operation))
@pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.MAINTENANCE, Fault.HTML])
async def test_error_faults_change_nothing_for_any_operation(
    session: aiohttp.ClientSession, server: MockScheduleServer, operation: Operation, fault: Fault
) -> None:
    """500, 503 and the 502 page come before the state machine: nothing changes or starts."""
    server.seed(["SC-1"], "PAUSED")
    server.script(fault)
    url = server.url_for(None if operation is Operation.START else "SC-1", operation=operation)
    data = json.dumps(GOOD[operation]).encode() if GOOD[operation] is not None else b""
    async with session.request(
        "GET" if operation is Operation.GET else "POST",
        url,
        data=data,
        headers={"Authorization": AUTH, "Content-Type": "application/json"},
    ) as response:
        assert response.status == {Fault.SERVER_ERROR: 500, Fault.MAINTENANCE: 503}.get(fault, 502)
    assert server.statuses == {"SC-1": ScheduleStatus.PAUSED}


@pytest.mark.parametrize("operation", [Operation.PAUSE, Operation.START])
async def test_a_dropped_or_truncated_answer_took_effect(
    session: aiohttp.ClientSession, server: MockScheduleServer, operation: Operation
) -> None:
    """DROP and TRUNCATED come after the state machine: a start made a schedule nobody heard of."""
    server.seed(["SC-1"])
    server.script(Fault.DROP, Fault.TRUNCATED)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await call(session, server, operation, body=GOOD[operation])
    with pytest.raises(json.JSONDecodeError):
        await call(session, server, operation, body=GOOD[operation])
    if operation is Operation.START:
        assert len(server.statuses) == 3
    else:
        assert server.statuses == {"SC-1": ScheduleStatus.PAUSED}
    assert server.recorder.outcomes() == Counter({Outcome.DROPPED: 1, Outcome.TRUNCATED: 1})
    assert server.recorder.operations() == Counter({operation: 2})


# -- one budget across operations --------------------------------------------------------


def mixed(index: int) -> tuple[Operation, str | None]:
    """The index-th request of a mixed workload over 60 ids (start every sixth)."""
    operation = list(Operation)[index % 6]
    return operation, None if operation is Operation.START else f"SC-{index}"


@pytest.mark.parametrize("model", MODEL_NAMES)
@pytest.mark.parametrize("last", list(Operation))
async def test_sixty_mixed_operations_fill_the_users_budget_in_every_model(
    session: aiohttp.ClientSession, clock: FakeClock, model: ModelName, last: Operation
) -> None:
    """60 requests of all six operations spend the user's 60: the 61st, of any kind, gets 429."""
    limits = ServerLimits(total=60, per_schedule=10, window=60.0, model=model)
    async with MockScheduleServer(
        limits=limits, clock=clock, wall_clock_at_start=T0, unknown_ids="active"
    ) as server:
        for index in range(60):
            operation, schedule_id = mixed(index)
            status, _ = await call(session, server, operation, schedule_id, GOOD[operation])
            assert status == 200
        status, body = await call(
            session, server, last, None if last is Operation.START else "SC-x", GOOD[last]
        )
        assert (status, body["errorCode"]) == (429, 1009)
        assert server.used(user=DEFAULT_USERNAME) == 60
        clock.now += 60.0 if model != "sliding-counter" else 120.0
        status, _ = await call(
            session, server, last, None if last is Operation.START else "SC-x", GOOD[last]
        )
        assert status == 200
    recorder = server.recorder
    assert recorder.select(outcome=Outcome.RATE_LIMITED)[0].limited_by == "total"
    assert recorder.operations() == Counter(dict.fromkeys(Operation, 10)) + Counter({last: 2})
    assert recorder.max_arrivals_in_window(60.0, accepted_only=True) == 60


@pytest.mark.parametrize("model", MODEL_NAMES)
async def test_ten_mixed_operations_on_one_id_fill_its_budget_in_every_model(
    session: aiohttp.ClientSession, clock: FakeClock, model: ModelName
) -> None:
    """get, pause, continue, update and cancel of one id share its 10; others and start do not."""
    limits = ServerLimits(total=60, per_schedule=10, window=60.0, model=model)
    async with MockScheduleServer(limits=limits, clock=clock, wall_clock_at_start=T0) as server:
        server.seed(["SC-1", "SC-2"])
        cycle = [Operation.GET, Operation.PAUSE, Operation.CONTINUE, Operation.UPDATE]
        for operation in cycle * 2 + [Operation.GET, Operation.UPDATE]:
            assert (await call(session, server, operation, body=GOOD[operation]))[0] == 200
        for operation in PER_ID:
            status, _ = await call(session, server, operation, body=GOOD[operation])
            assert status == 429
        assert (await call(session, server, Operation.CANCEL, "SC-2", {}))[0] == 200
        assert (await call(session, server, Operation.START, body=START))[0] == 200
    refused = server.recorder.select(outcome=Outcome.RATE_LIMITED)
    assert {a.limited_by for a in refused} == {"per_schedule"}
    assert (
        server.recorder.max_arrivals_in_window(60.0, schedule_id="SC-1", accepted_only=True) == 10
    )
    assert server.status_of("SC-1") == ScheduleStatus.ACTIVE


async def test_start_has_no_per_id_limit(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    """Starts count only against the user's limit, however many come at once."""
    limits = ServerLimits(total=5, per_schedule=1, window=60.0)
    async with MockScheduleServer(limits=limits, clock=clock, wall_clock_at_start=T0) as server:
        answers = [await call(session, server, Operation.START, body=START) for _ in range(6)]
    assert [status for status, _ in answers] == [200] * 5 + [429]
    assert server.recorder.arrivals[-1].limited_by == "total"


def test_limit_book_counts_an_arrival_without_a_schedule_id_on_the_users_level_only() -> None:
    """The pure book: ``schedule_id=None`` spends the user's budget and no scheduleId's."""
    book = LimitBook(ServerLimits(total=2, per_schedule=1, window=10.0))
    assert book.arrive(0.0, user="u", schedule_id=None).allowed
    assert book.arrive(0.0, user="u", schedule_id=None).allowed
    verdict = book.arrive(0.0, user="u", schedule_id=None)
    assert (verdict.allowed, verdict.level, verdict.wait) == (False, "total", 10.0)
    assert book.live_keys == 1


# -- recorder, urls, seeding, CLI ----------------------------------------------------------


async def test_recorder_counts_and_filters_by_operation(
    session: aiohttp.ClientSession, server: MockScheduleServer
) -> None:
    """Every arrival carries its operation; select, count and windows filter by it."""
    server.seed(["SC-1"])
    for operation in (Operation.GET, Operation.GET, Operation.PAUSE, Operation.START):
        await call(session, server, operation, body=GOOD[operation])
    recorder = server.recorder
    assert recorder.operations() == Counter(
        {Operation.GET: 2, Operation.PAUSE: 1, Operation.START: 1}
    )
    assert recorder.count(operation="get") == 2
    assert recorder.count(Outcome.PAUSED, operation=Operation.PAUSE) == 1
    assert recorder.max_arrivals_in_window(1.0, operation=Operation.START) == 1
    assert recorder.max_arrivals_in_window(1.0) == 4
    assert [a.operation for a in recorder.select(schedule_id="SC-1")] == [
        Operation.GET,
        Operation.GET,
        Operation.PAUSE,
    ]


def test_an_operation_is_found_by_its_path_segment() -> None:
    """Filters and url_for take an Operation or its name (or the client's Operation, by its
    name); an unknown name is a ValueError."""
    assert [operation_named(op.value) for op in Operation] == list(Operation)
    assert operation_named(Operation.CONTINUE) is Operation.CONTINUE
    assert operation_named(str(schedcancel.Operation.CONTINUE)) is Operation.CONTINUE
    with pytest.raises(ValueError, match="'resume' is not a Schedule API operation"):
        operation_named("resume")


async def test_url_for_every_operation(server: MockScheduleServer) -> None:
    """url_for builds each path, and refuses an id for start or none for the others."""
    base = server.base_url + "/schedule/" + DEFAULT_API_KEY
    assert server.url_for("SC-1", operation="get") == base + "/SC-1/get"
    assert server.url_for("SC-1") == base + "/SC-1/cancel"
    assert server.url_for(operation=Operation.START, api_key="k") == (
        server.base_url + "/schedule/k/start"
    )
    with pytest.raises(InvalidParameterError, match="start takes no scheduleId"):
        server.url_for("SC-1", operation="start")
    with pytest.raises(InvalidParameterError, match="pause takes a scheduleId"):
        server.url_for(operation="pause")


async def test_seeding_in_the_constructor_any_status_and_forgetting(
    clock: FakeClock,
) -> None:
    """``schedules={id: status}`` seeds at construction; seeding NON-EXISTING forgets an id."""
    at = datetime(2027, 1, 1, tzinfo=UTC)
    server = MockScheduleServer(schedules={"SC-1": "PAUSED", "SC-2": ScheduleStatus.CANCELLED})
    server.seed(["SC-3"], "ERROR", registration_uuid="RG-3", scheduled_at=at)
    server.seed(["SC-1"], "ACTIVE")
    server.seed(["SC-2"], "NON-EXISTING")
    assert server.statuses == {"SC-1": "ACTIVE", "SC-3": "ERROR"}
    assert server.schedule("SC-3") == MockSchedule(
        schedule_id="SC-3", status=ScheduleStatus.ERROR, registration_uuid="RG-3", scheduled_at=at
    )
    with pytest.raises(InvalidParameterError, match="timezone-aware"):
        MockScheduleServer(wall_clock_at_start=datetime(2026, 1, 1))
    with pytest.raises(RuntimeError, match="not started"):
        server.now_datetime()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_mock_server_arguments(parser)
    return parser.parse_args(argv)


def test_cli_seeds_statuses_per_line_and_registrations(tmp_path: Path) -> None:
    """A schedules file line is ``ID`` or ``ID STATUS``; the registration options arrive."""
    ids = tmp_path / "ids.txt"
    ids.write_text("SC-1 PAUSED\nSC-2\nSC-3 CANCELLED  # done\n", encoding="utf-8")
    server = server_from_args(
        parse(
            "--schedules-file", str(ids), "--status", "ERROR",
            "--registration", "RG-1", "--check-registrations",
        )
    )  # fmt: skip
    assert server.statuses == {"SC-1": "PAUSED", "SC-2": "ERROR", "SC-3": "CANCELLED"}
    assert server.unknown_registrations == "error"
    assert server_from_args(parse()).unknown_registrations == "accept"
    ids.write_text("SC-1 SLEEPING\n", encoding="utf-8")
    with pytest.raises(InvalidParameterError, match="SLEEPING"):
        server_from_args(parse("--schedules-file", str(ids)))
