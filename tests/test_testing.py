"""Tests for the mock IXOPAY server, driven with plain aiohttp requests on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl
from schedcancel import InvalidParameterError, ScheduleStatus
from schedcancel._mock.faults import FaultInjector
from schedcancel._mock.limits import make_model
from schedcancel._protocol.wire import Operation, RequestBuilder
from schedcancel.testing import (
    DEFAULT_API_KEY,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    MODEL_NAMES,
    Arrival,
    Fault,
    Faults,
    MockScheduleServer,
    ModelName,
    Outcome,
    Recorder,
    ServerLimits,
    add_mock_server_arguments,
    main_mock_server,
    max_in_window,
    run_mock_server,
    server_from_args,
)

from support.auth import basic_auth

REPO = Path(__file__).resolve().parent.parent
AUTH = basic_auth(DEFAULT_USERNAME, DEFAULT_PASSWORD)
JSON = "application/json"
TOO_MANY = {"success": False, "errorMessage": "Too many requests", "errorCode": 1009}


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(name="session")
async def _session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    return FakeClock()


async def post(
    session: aiohttp.ClientSession,
    url: str,
    *,
    auth: str | None = AUTH,
    body: bytes = b"{}",
    content_type: str | None = JSON,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Mapping[str, str], bytes]:
    """POST raw bytes to ``url`` (sent as written, no re-encoding); return status, headers, body."""
    sent: dict[str, str] = {}
    if auth is not None:
        sent["Authorization"] = auth
    if content_type is not None:
        sent["Content-Type"] = content_type
    sent.update(headers or {})
    # skip_auto_headers keeps aiohttp from adding a Content-Type of its own.
    async with session.post(
        yarl.URL(url, encoded=True),
        data=body,
        headers=sent,
        skip_auto_headers=["Content-Type"],
    ) as response:
        return response.status, response.headers, await response.read()


async def cancel(
    session: aiohttp.ClientSession, server: MockScheduleServer, schedule_id: str, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    """Cancel ``schedule_id`` with the default credentials; return status and JSON body."""
    api_key = kwargs.pop("api_key", None)
    status, _, body = await post(session, server.url_for(schedule_id, api_key=api_key), **kwargs)
    return status, json.loads(body)


# -- the state machine -------------------------------------------------------------------


async def test_cancel_of_an_active_schedule_succeeds_and_is_recorded(
    session: aiohttp.ClientSession,
) -> None:
    """ACTIVE goes to CANCELLED with the documented success body, and the arrival is recorded."""
    async with MockScheduleServer() as server:
        server.seed(["SC-1"])
        status, body = await cancel(session, server, "SC-1")
    assert status == 200
    assert body == {
        "success": True,
        "scheduleId": "SC-1",
        "oldStatus": "ACTIVE",
        "newStatus": "CANCELLED",
    }
    assert server.status_of("SC-1") == ScheduleStatus.CANCELLED
    [arrival] = server.recorder.arrivals
    assert arrival.user == DEFAULT_USERNAME
    assert arrival.schedule_id == "SC-1"
    assert arrival.status == 200
    assert arrival.outcome is Outcome.CANCELLED
    assert arrival.accepted
    assert not arrival.foreign
    assert arrival.api_key is not None
    assert DEFAULT_API_KEY not in arrival.api_key


async def test_cancel_of_a_paused_schedule_succeeds(session: aiohttp.ClientSession) -> None:
    """PAUSED goes to CANCELLED too, reporting oldStatus PAUSED."""
    async with MockScheduleServer() as server:
        server.seed(["SC-1"], ScheduleStatus.PAUSED)
        status, body = await cancel(session, server, "SC-1")
    assert (status, body["success"], body["oldStatus"]) == (200, True, "PAUSED")


async def test_second_cancel_answers_7070_cancelled_to_cancelled(
    session: aiohttp.ClientSession,
) -> None:
    """Cancelling a cancelled schedule answers HTTP 200, 7070, CANCELLED/CANCELLED (documented)."""
    async with MockScheduleServer() as server:
        server.seed(["SC-1"])
        await cancel(session, server, "SC-1")
        status, body = await cancel(session, server, "SC-1")
    assert status == 200
    assert body == {
        "success": False,
        "scheduleId": "SC-1",
        "oldStatus": "CANCELLED",
        "newStatus": "CANCELLED",
        "errorMessage": "The status of the schedule is not valid for the requested operation",
        "errorCode": 7070,
    }
    assert server.recorder.outcomes() == Counter({Outcome.CANCELLED: 1, Outcome.INVALID_STATUS: 1})


async def test_create_pending_has_no_cancel_edge_and_answers_7070_unchanged(
    session: aiohttp.ClientSession,
) -> None:
    """CREATE-PENDING has no cancel edge: 7070, status kept."""
    async with MockScheduleServer() as server:
        server.seed(["SC-1"], ScheduleStatus.CREATE_PENDING)
        code, body = await cancel(session, server, "SC-1")
    assert (code, body["errorCode"], body["oldStatus"], body["newStatus"]) == (
        200,
        7070,
        "CREATE-PENDING",
        "CREATE-PENDING",
    )
    assert server.status_of("SC-1") == ScheduleStatus.CREATE_PENDING


async def test_cancellable_statuses_are_configurable(session: aiohttp.ClientSession) -> None:
    """A server told that only ACTIVE is cancellable refuses a cancel from ERROR with 7070."""
    cancellable = frozenset({ScheduleStatus.ACTIVE})
    async with MockScheduleServer(cancellable=cancellable) as server:
        server.seed(["SC-1"], "ERROR")
        _, body = await cancel(session, server, "SC-1")
    assert (body["success"], body["errorCode"], body["oldStatus"]) == (False, 7070, "ERROR")


@pytest.mark.parametrize("seeded", [False, True])
async def test_unknown_id_answers_7040(session: aiohttp.ClientSession, seeded: bool) -> None:
    """An id never seeded (or seeded NON-EXISTING) answers HTTP 200 with errorCode 7040."""
    async with MockScheduleServer() as server:
        if seeded:
            server.seed(["SC-404"], ScheduleStatus.NON_EXISTING)
        status, body = await cancel(session, server, "SC-404")
    assert status == 200
    assert body == {
        "success": False,
        "errorMessage": "The scheduleId is not valid or does not match to the connector",
        "errorCode": 7040,
    }
    assert server.recorder.count(Outcome.UNKNOWN_ID) == 1


async def test_unknown_ids_active_makes_every_id_exist(session: aiohttp.ClientSession) -> None:
    """With unknown_ids="active" any id cancels once, then answers 7070."""
    async with MockScheduleServer(unknown_ids="active") as server:
        _, first = await cancel(session, server, "SC-any")
        _, second = await cancel(session, server, "SC-any")
    assert first["success"] is True
    assert second["errorCode"] == 7070
    assert server.statuses == {"SC-any": ScheduleStatus.CANCELLED}


# -- authentication and parameters -----------------------------------------------------


@pytest.mark.parametrize(
    "auth",
    [
        None,
        basic_auth(DEFAULT_USERNAME, "wrong"),
        basic_auth("someone-else", DEFAULT_PASSWORD),
        "Bearer token",
        "Basic !!!not-base64!!!",
        "Basic " + "bm8tY29sb24=",  # "no-colon"
        "Basic " + "/w==",  # not UTF-8
    ],
    ids=["missing", "wrong-password", "unknown-user", "bearer", "bad-base64", "no-colon", "bytes"],
)
async def test_bad_basic_auth_answers_401_and_is_not_counted(
    session: aiohttp.ClientSession, auth: str | None
) -> None:
    """Anything but a configured user's credentials gets 401 with a JSON body, uncounted."""
    async with MockScheduleServer() as server:
        server.seed(["SC-1"])
        status, headers, body = await post(session, server.url_for("SC-1"), auth=auth)
        assert server.used(user=DEFAULT_USERNAME) == 0
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert json.loads(body) == {
        "success": False,
        "errorMessage": "Invalid API user credentials",
        "errorCode": 1000,
    }
    [arrival] = server.recorder.arrivals
    assert (arrival.user, arrival.outcome, arrival.accepted) == (None, Outcome.UNAUTHORIZED, False)
    assert server.status_of("SC-1") == ScheduleStatus.ACTIVE


async def test_every_configured_user_is_accepted(session: aiohttp.ClientSession) -> None:
    """Each configured API user authenticates with their own password."""
    users = {"alice": "pw-a", "bob": "pw-b"}
    async with MockScheduleServer(users=users, unknown_ids="active") as server:
        for name, password in users.items():
            auth = basic_auth(name, password)
            status, _ = await cancel(session, server, f"SC-{name}", auth=auth)
            assert status == 200
    assert [a.user for a in server.recorder] == ["alice", "bob"]


async def test_unknown_api_key_answers_401(session: aiohttp.ClientSession) -> None:
    """A connector apiKey the server does not know is refused with 401, uncounted."""
    async with MockScheduleServer() as server:
        server.seed(["SC-1"])
        status, body = await cancel(session, server, "SC-1", api_key="other-key")
    assert (status, body["errorCode"]) == (401, 1000)
    [arrival] = server.recorder.arrivals
    assert (arrival.user, arrival.outcome, arrival.accepted) == (
        DEFAULT_USERNAME,
        Outcome.UNAUTHORIZED,
        False,
    )


@pytest.mark.parametrize(
    ("api_key", "schedule_id"),
    [
        ("k" * 51, "SC-1"),
        (DEFAULT_API_KEY, "S" * 33),
        (DEFAULT_API_KEY, "SC%201"),
        ("key%2Bplus", "SC-1"),
    ],
    ids=["long-key", "long-id", "space-in-id", "plus-in-key"],
)
async def test_invalid_path_parameters_answer_400_1002(
    session: aiohttp.ClientSession, api_key: str, schedule_id: str
) -> None:
    """An over-long or non-unreserved apiKey or scheduleId gets 400 with errorCode 1002."""
    async with MockScheduleServer(connectors={api_key: None, DEFAULT_API_KEY: None}) as server:
        status, body = await cancel(session, server, schedule_id, api_key=api_key)
        assert server.used(user=DEFAULT_USERNAME) == 0
    assert status == 400
    assert body == {"success": False, "errorMessage": "Invalid request data", "errorCode": 1002}
    assert server.recorder.arrivals[0].outcome is Outcome.INVALID_REQUEST


async def test_longest_valid_path_parameters_are_accepted(session: aiohttp.ClientSession) -> None:
    """A 50-character apiKey and a 32-character scheduleId are within the documented limits."""
    api_key, schedule_id = "k" * 50, "S" * 32
    async with MockScheduleServer(connectors={api_key: None}) as server:
        server.seed([schedule_id])
        status, body = await cancel(session, server, schedule_id, api_key=api_key)
    assert (status, body["success"]) == (200, True)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", JSON),
        (b"{", JSON),
        (b'{"reason": "x"}', JSON),
        (b"\xff\xfe", JSON),
        (b"null", JSON),
        (b"{}", "text/plain"),
        (b"{}", None),
    ],
    ids=["empty", "malformed", "properties", "not-utf8", "null", "text-plain", "no-content-type"],
)
async def test_bad_body_answers_400_1005_and_counts(
    session: aiohttp.ClientSession, body: bytes, content_type: str | None
) -> None:
    """The cancel body must be an empty JSON object sent as application/json (400, 1005)."""
    async with MockScheduleServer() as server:
        server.seed(["SC-1"])
        status, _, data = await post(
            session, server.url_for("SC-1"), body=body, content_type=content_type
        )
        assert server.used(user=DEFAULT_USERNAME) == 1
    assert status == 400
    assert json.loads(data)["errorCode"] == 1005
    assert server.status_of("SC-1") == ScheduleStatus.ACTIVE


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(b"{}", "application/json; charset=utf-8"), (b"[]", JSON), (b" { } ", JSON)],
)
async def test_empty_object_array_and_charset_are_accepted(
    session: aiohttp.ClientSession, body: bytes, content_type: str
) -> None:
    """``{}`` with or without a charset, and ``[]`` as the PHP SDK sends it, are accepted."""
    async with MockScheduleServer() as server:
        server.seed(["SC-1"])
        status, _, _ = await post(
            session, server.url_for("SC-1"), body=body, content_type=content_type
        )
    assert status == 200


# -- signatures --------------------------------------------------------------------------

SPEC_SECRET = "my-shared-secret"
SPEC_DATE = "Tue, 21 Jul 2020 13:15:03 GMT"
SPEC_ID = "SC-1234-1234-1234-1234-1234-1234"
# The documented vector, derived for cancel: body {}, URI /api/v3/schedule/my-api-key/<id>/...
SPEC_SIGNATURE = (
    "w2xO8dAXM16+VPmYfTaQhyeoKoG9L9HsZVsBUaEEe/6BS/apDZIGy/qcF1KwlBE08jBMuV1QmpJR7/NjUY95Mg=="
)
SIGNED_CONTENT_TYPE = "application/json; charset=utf-8"


async def test_signature_matching_the_spec_vector_is_accepted(
    session: aiohttp.ClientSession,
) -> None:
    """The cancel test vector verifies: the server signs exactly the documented message."""
    async with MockScheduleServer(connectors={"my-api-key": SPEC_SECRET}) as server:
        server.seed([SPEC_ID])
        status, _, body = await post(
            session,
            server.url_for(SPEC_ID, api_key="my-api-key"),
            content_type=SIGNED_CONTENT_TYPE,
            headers={"Date": SPEC_DATE, "X-Signature": SPEC_SIGNATURE},
        )
    assert status == 200
    assert json.loads(body)["success"] is True


async def test_request_signed_by_the_client_protocol_is_accepted(
    session: aiohttp.ClientSession,
) -> None:
    """A request from the client's ``RequestBuilder`` with the shared secret passes verification."""
    async with MockScheduleServer(connectors={"conn-key": "s3cret"}) as server:
        server.seed(["SC-1"])
        builder = RequestBuilder(
            base_url=server.base_url,
            api_key="conn-key",
            username=DEFAULT_USERNAME,
            password=DEFAULT_PASSWORD,
            shared_secret="s3cret",
        )
        request = builder.build(Operation.CANCEL, "SC-1", date=datetime.now(UTC))
        async with session.post(
            request.url, data=request.body, headers=dict(request.headers)
        ) as response:
            assert response.status == 200
            assert (await response.json())["success"] is True


@pytest.mark.parametrize(
    "headers",
    [
        {"Date": SPEC_DATE, "X-Signature": "AAAA" + SPEC_SIGNATURE[4:]},
        {"X-Signature": SPEC_SIGNATURE},
        {"Date": SPEC_DATE},
        {"Date": "Tue, 21 Jul 2020 13:15:04 GMT", "X-Signature": SPEC_SIGNATURE},
        {
            "X-Date": "Tue, 21 Jul 2020 13:15:04 GMT",
            "Date": SPEC_DATE,
            "X-Signature": SPEC_SIGNATURE,
        },
    ],
    ids=["wrong", "no-date", "no-signature", "other-date", "x-date-wins"],
)
async def test_bad_signature_answers_401_1004(
    session: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    """A missing, wrong or stale signature gets 401 with errorCode 1004 and changes nothing."""
    async with MockScheduleServer(connectors={"my-api-key": SPEC_SECRET}) as server:
        server.seed([SPEC_ID])
        status, _, body = await post(
            session,
            server.url_for(SPEC_ID, api_key="my-api-key"),
            content_type=SIGNED_CONTENT_TYPE,
            headers=headers,
        )
    assert status == 401
    assert json.loads(body) == {
        "success": False,
        "errorMessage": "Invalid signature",
        "errorCode": 1004,
    }
    assert server.status_of(SPEC_ID) == ScheduleStatus.ACTIVE
    [arrival] = server.recorder.arrivals
    assert (arrival.outcome, arrival.accepted) == (Outcome.BAD_SIGNATURE, True)


async def test_x_date_takes_precedence_over_date(session: aiohttp.ClientSession) -> None:
    """When both are sent, the signature covers X-Date, not Date, as documented."""
    async with MockScheduleServer(connectors={"my-api-key": SPEC_SECRET}) as server:
        server.seed([SPEC_ID])
        status, _, _ = await post(
            session,
            server.url_for(SPEC_ID, api_key="my-api-key"),
            content_type=SIGNED_CONTENT_TYPE,
            headers={"X-Date": SPEC_DATE, "Date": "garbage", "X-Signature": SPEC_SIGNATURE},
        )
    assert status == 200


async def test_connector_without_secret_ignores_signature_headers(
    session: aiohttp.ClientSession,
) -> None:
    """Signing is per connector: one without a shared secret accepts unsigned and mis-signed."""
    async with MockScheduleServer() as server:
        server.seed(["SC-1", "SC-2"])
        unsigned, _ = await cancel(session, server, "SC-1")
        mis_signed, _ = await cancel(session, server, "SC-2", headers={"X-Signature": "nope"})
    assert (unsigned, mis_signed) == (200, 200)


# -- rate limits -------------------------------------------------------------------------


async def test_total_limit_answers_429_with_the_documented_body(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Over the per-user limit: 429, errorCode 1009, no Retry-After unless configured."""
    limits = ServerLimits(total=3, per_schedule=10, window=10.0)
    async with MockScheduleServer(limits=limits, clock=clock, unknown_ids="active") as server:
        codes = [(await post(session, server.url_for(f"SC-{i}")))[0] for i in range(3)]
        status, headers, body = await post(session, server.url_for("SC-3"))
        clock.now += 9.999
        early, _, _ = await post(session, server.url_for("SC-4"))
        clock.now += 0.001
        late, _, _ = await post(session, server.url_for("SC-5"))
    assert codes == [200, 200, 200]
    assert status == 429
    assert json.loads(body) == TOO_MANY
    assert "Retry-After" not in headers
    assert (early, late) == (429, 200)
    limited = server.recorder.select(outcome=Outcome.RATE_LIMITED)
    assert [(a.limited_by, a.accepted) for a in limited] == [("total", False)] * 2
    assert server.recorder.count_rate_limited() == 2


async def test_per_schedule_limit_applies_to_one_id(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Over the per-scheduleId limit only that id is refused; others still go."""
    limits = ServerLimits(total=10, per_schedule=2, window=10.0)
    async with MockScheduleServer(limits=limits, clock=clock) as server:
        server.seed(["SC-1", "SC-2"])
        codes = [(await post(session, server.url_for("SC-1")))[0] for _ in range(3)]
        other, _, _ = await post(session, server.url_for("SC-2"))
    assert codes == [200, 200, 429]
    assert other == 200
    assert server.recorder.arrivals[2].limited_by == "per_schedule"
    assert server.recorder.sends_per_id() == Counter({"SC-1": 3, "SC-2": 1})


@pytest.mark.parametrize(("offset", "expected"), [(0.0, "10"), (0.5, "9"), (1.5, "8")])
async def test_retry_after_is_the_first_whole_second_after_the_wait(
    session: aiohttp.ClientSession, clock: FakeClock, offset: float, expected: str
) -> None:
    """With retry_after on, a 429 says when the window frees: the next whole second after it."""
    limits = ServerLimits(total=2, window=10.0, retry_after=True)
    async with MockScheduleServer(limits=limits, clock=clock, unknown_ids="active") as server:
        await post(session, server.url_for("SC-1"))
        clock.now += 1.0
        await post(session, server.url_for("SC-2"))
        clock.now += offset
        status, headers, _ = await post(session, server.url_for("SC-3"))
    # The window frees 10 s after the first arrival: 9 - offset seconds from now.
    assert status == 429
    assert headers["Retry-After"] == expected


async def test_limits_are_keyed_by_api_user_not_by_connector(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """Two connectors share one user's budget; another user has a budget of their own."""
    users = {"alice": "a", "bob": "b"}
    connectors: dict[str, str | None] = {"conn-1": None, "conn-2": None}
    limits = ServerLimits(total=2, window=10.0)
    async with MockScheduleServer(
        users=users, connectors=connectors, limits=limits, clock=clock, unknown_ids="active"
    ) as server:
        alice, bob = (
            basic_auth("alice", "a"),
            basic_auth("bob", "b"),
        )
        codes = [
            (await cancel(session, server, "SC-1", api_key="conn-1", auth=alice))[0],
            (await cancel(session, server, "SC-2", api_key="conn-2", auth=alice))[0],
            (await cancel(session, server, "SC-3", api_key="conn-1", auth=alice))[0],
            (await cancel(session, server, "SC-4", api_key="conn-2", auth=bob))[0],
        ]
        assert server.used(user="alice") == 2
        assert server.used(user="bob") == 1
    assert codes == [200, 200, 429, 200]


@pytest.mark.parametrize("count_rejected", [False, True])
async def test_count_rejected_decides_whether_429s_spend_budget(
    session: aiohttp.ClientSession, clock: FakeClock, count_rejected: bool
) -> None:
    """A punishing server counts refused requests, so retrying early keeps the window full."""
    limits = ServerLimits(total=1, window=10.0, count_rejected=count_rejected)
    async with MockScheduleServer(limits=limits, clock=clock, unknown_ids="active") as server:
        first, _, _ = await post(session, server.url_for("SC-1"))
        clock.now += 5.0
        early, _, _ = await post(session, server.url_for("SC-2"))
        clock.now += 5.0
        later, _, _ = await post(session, server.url_for("SC-3"))
    # The refused request at +5 s counts until +15 s only on a punishing server.
    assert (first, early, later) == (200, 429, 429 if count_rejected else 200)


@pytest.mark.parametrize("model", MODEL_NAMES)
async def test_each_server_model_admits_what_the_pure_model_admits(
    session: aiohttp.ClientSession, clock: FakeClock, model: ModelName
) -> None:
    """Over HTTP, each model (phase included) admits exactly the pure model's admissions."""
    limits = ServerLimits(total=3, per_schedule=100, window=10.0, model=model, phase=4.0)
    offsets = [1.0, 2.0, 3.0, 3.5, 4.0, 4.0, 5.0, 6.0, 11.0, 13.0, 14.0, 14.0]
    start = clock.now
    reference = make_model(model, limit=3, window=10.0, origin=start + 4.0)
    expected = []
    for offset in offsets:
        admitted = reference.wait(start + offset) == 0.0
        if admitted:
            reference.add(start + offset)
        expected.append(200 if admitted else 429)
    async with MockScheduleServer(limits=limits, clock=clock, unknown_ids="active") as server:
        codes = []
        for i, offset in enumerate(offsets):
            clock.now = start + offset
            codes.append((await post(session, server.url_for(f"SC-{i}")))[0])
    assert codes == expected
    assert 429 in codes


# -- faults ------------------------------------------------------------------------------


async def test_scripted_server_error_and_maintenance_change_nothing(
    session: aiohttp.ClientSession,
) -> None:
    """Scripted 500/1008 and 503/1010 answer with the documented bodies; the schedule stays."""
    async with MockScheduleServer(
        faults=Faults(script=[Fault.SERVER_ERROR, "maintenance"])
    ) as server:
        server.seed(["SC-1"])
        first = await cancel(session, server, "SC-1")
        second = await cancel(session, server, "SC-1")
        assert server.status_of("SC-1") == ScheduleStatus.ACTIVE
        third = await cancel(session, server, "SC-1")
    assert first == (
        500,
        {"success": False, "errorMessage": "System Error occurred", "errorCode": 1008},
    )
    assert second[0] == 503
    assert second[1]["errorCode"] == 1010
    assert second[1]["errorMessage"].startswith("The system is currently undergoing")
    assert third[1]["success"] is True
    assert [a.outcome for a in server.recorder] == [
        Outcome.SERVER_ERROR,
        Outcome.MAINTENANCE,
        Outcome.CANCELLED,
    ]


async def test_html_fault_sends_a_502_page(session: aiohttp.ClientSession) -> None:
    """An HTML fault answers 502 text/html, as a proxy would, and cancels nothing."""
    async with MockScheduleServer() as server:
        server.seed(["SC-1"])
        server.script(Fault.HTML)
        status, headers, body = await post(session, server.url_for("SC-1"))
    assert status == 502
    assert headers["Content-Type"].startswith("text/html")
    assert body.startswith(b"<!DOCTYPE html>")
    assert server.status_of("SC-1") == ScheduleStatus.ACTIVE


async def test_truncated_fault_cuts_the_json_but_the_cancel_took_effect(
    session: aiohttp.ClientSession,
) -> None:
    """A truncated body is not JSON; the schedule is CANCELLED, so a retry answers 7070."""
    async with MockScheduleServer() as server:
        server.seed(["SC-1"])
        server.script(Fault.TRUNCATED)
        status, _, body = await post(session, server.url_for("SC-1"))
        _, retry = await cancel(session, server, "SC-1")
    assert status == 200
    assert body.startswith(b'{"success": true')
    with pytest.raises(ValueError, match=r"Unterminated|Expecting"):
        json.loads(body)
    assert retry["errorCode"] == 7070


async def test_drop_fault_closes_the_connection_after_the_cancel_took_effect(
    session: aiohttp.ClientSession,
) -> None:
    """A dropped connection gives the client no response at all; the cancel still happened."""
    async with MockScheduleServer() as server:
        server.seed(["SC-1"])
        server.script(Fault.DROP)
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await post(session, server.url_for("SC-1"))
        assert server.status_of("SC-1") == ScheduleStatus.CANCELLED
        _, retry = await cancel(session, server, "SC-1")
    [dropped, _] = server.recorder.arrivals
    assert (dropped.status, dropped.outcome, dropped.accepted) == (None, Outcome.DROPPED, True)
    assert retry["errorCode"] == 7070


@pytest.mark.parametrize("count_rejected", [False, True])
async def test_forced_429_counts_only_on_a_punishing_server(
    session: aiohttp.ClientSession, clock: FakeClock, count_rejected: bool
) -> None:
    """A scripted 429 answers 1009 with Retry-After >= 1 s; it spends budget only if 429s count."""
    limits = ServerLimits(retry_after=True, count_rejected=count_rejected)
    async with MockScheduleServer(limits=limits, clock=clock) as server:
        server.seed(["SC-1"])
        server.script(Fault.RATE_LIMITED, None)
        status, headers, body = await post(session, server.url_for("SC-1"))
        assert server.used(user=DEFAULT_USERNAME) == (1 if count_rejected else 0)
        after, _ = await cancel(session, server, "SC-1")
    assert (status, json.loads(body), headers["Retry-After"]) == (429, TOO_MANY, "1")
    assert after == 200
    assert server.status_of("SC-1") == ScheduleStatus.CANCELLED


async def test_script_before_start_and_faults_assigned_while_running_apply(
    session: aiohttp.ClientSession,
) -> None:
    """A fault scripted before start survives it; assigning faults replaces the script."""
    server = MockScheduleServer(unknown_ids="active")
    server.script(Fault.SERVER_ERROR, Fault.SERVER_ERROR)
    async with server:
        first, _, _ = await post(session, server.url_for("SC-1"))
        server.faults = Faults(script=[Fault.MAINTENANCE])
        second, _, _ = await post(session, server.url_for("SC-1"))
        third, _, _ = await post(session, server.url_for("SC-1"))
    assert (first, second, third) == (500, 503, 200)


async def test_assigning_limits_while_running_counts_afresh(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """New limits take effect at once, with empty windows."""
    server = MockScheduleServer(clock=clock, unknown_ids="active")
    server.limits = ServerLimits(total=1)
    async with server:
        first, _, _ = await post(session, server.url_for("SC-1"))
        refused, _, _ = await post(session, server.url_for("SC-2"))
        server.limits = ServerLimits(total=2, model="fixed-window")
        assert server.used(user=DEFAULT_USERNAME) == 0
        codes = [(await post(session, server.url_for(f"SC-{i}")))[0] for i in range(3, 6)]
    assert (first, refused, codes) == (200, 429, [200, 200, 429])


async def test_faults_hit_only_authenticated_well_formed_requests(
    session: aiohttp.ClientSession,
) -> None:
    """A 401, a bad body or signature, or a 429 does not use up a fault; the next good one does."""
    limits = ServerLimits(total=60, per_schedule=1, window=60.0)
    async with MockScheduleServer(
        unknown_ids="active", limits=limits, connectors={DEFAULT_API_KEY: None, "signed-key": "s3"}
    ) as server:
        server.script(Fault.SERVER_ERROR, Fault.MAINTENANCE)
        codes = [
            (await post(session, server.url_for("SC-A"), auth=None))[0],
            (await post(session, server.url_for("SC-B"), body=b"{bad"))[0],
            (await post(session, server.url_for("SC-C", api_key="signed-key")))[0],
            (await post(session, server.url_for("SC-1")))[0],  # the first good one
            (await post(session, server.url_for("SC-1")))[0],  # SC-1's limit: 429
            (await post(session, server.url_for("SC-2")))[0],
            (await post(session, server.url_for("SC-3")))[0],
        ]
    assert codes == [401, 400, 401, 500, 429, 503, 200]


async def test_fault_probabilities_follow_the_seeded_generator(
    session: aiohttp.ClientSession,
) -> None:
    """With probabilities, the server's faults are exactly the seeded injector's draws."""
    faults = Faults(server_error=0.2, maintenance=0.1, html=0.1, truncated=0.1, seed=42)
    reference = FaultInjector(faults)
    expected = [reference.next_fault() for _ in range(40)]
    outcome_of = {
        None: Outcome.CANCELLED,
        Fault.SERVER_ERROR: Outcome.SERVER_ERROR,
        Fault.MAINTENANCE: Outcome.MAINTENANCE,
        Fault.HTML: Outcome.HTML,
        Fault.TRUNCATED: Outcome.TRUNCATED,
    }
    async with MockScheduleServer(faults=faults, unknown_ids="active") as server:
        for i in range(40):
            await post(session, server.url_for(f"SC-{i}"))
    assert [a.outcome for a in server.recorder] == [outcome_of[f] for f in expected]
    assert len(set(expected)) == 5


def test_fault_injector_plays_the_script_then_draws() -> None:
    """Scripted entries come first, in order, then the seeded draws; extend_script appends."""
    injector = FaultInjector(Faults(drop=1.0, script=[None, "html"]))
    injector.extend_script([Fault.MAINTENANCE])
    assert [injector.next_fault() for _ in range(5)] == [
        None,
        Fault.HTML,
        Fault.MAINTENANCE,
        Fault.DROP,
        Fault.DROP,
    ]


def test_fault_injector_draws_match_the_probabilities() -> None:
    """Over 20,000 seeded draws each fault's share is within 1.5 points of its probability."""
    faults = Faults(server_error=0.1, maintenance=0.05, truncated=0.05, html=0.05, drop=0.15)
    injector = FaultInjector(faults)
    draws = Counter(injector.next_fault() for _ in range(20_000))
    for fault, probability in faults.probabilities():
        assert abs(draws[fault] / 20_000 - probability) < 0.015
    assert abs(draws[None] / 20_000 - 0.6) < 0.015


def test_fault_injector_latency_is_uniform_within_bounds() -> None:
    """Latencies stay within their bounds; equal bounds give that exact delay."""
    injector = FaultInjector(Faults(request_latency=(0.1, 0.3), response_latency=(0.5, 0.5)))
    requests = [injector.request_latency() for _ in range(1000)]
    assert 0.1 <= min(requests) < 0.12
    assert 0.28 < max(requests) <= 0.3
    assert injector.response_latency() == 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drop": 1.5}, "drop"),
        ({"html": -0.1}, "html"),
        ({"server_error": 0.6, "maintenance": 0.5}, "sum"),
        ({"request_latency": (2.0, 1.0)}, "request_latency"),
        ({"response_latency": (-1.0, 1.0)}, "response_latency"),
    ],
)
def test_faults_reject_impossible_settings(kwargs: dict[str, Any], message: str) -> None:
    """Probabilities outside [0, 1] or summing over 1, and inverted latencies, are refused."""
    with pytest.raises(InvalidParameterError, match=message):
        Faults(**kwargs)


@pytest.mark.looptime
async def test_latency_comes_before_the_arrival_and_before_the_response(
    session: aiohttp.ClientSession,
) -> None:
    """Request latency delays the counted arrival; response latency delays only the answer."""
    loop = asyncio.get_running_loop()
    faults = Faults(request_latency=(2.0, 2.0), response_latency=(3.0, 3.0))
    async with MockScheduleServer(faults=faults, unknown_ids="active") as server:
        sent = loop.time()
        status, _ = await cancel(session, server, "SC-1")
        answered = loop.time()
    assert status == 200
    assert server.recorder.arrivals[0].time - sent == pytest.approx(2.0)
    assert answered - sent == pytest.approx(5.0)


# -- foreign load ------------------------------------------------------------------------


@pytest.mark.looptime
async def test_foreign_load_spends_its_share_of_the_users_budget(
    session: aiohttp.ClientSession,
) -> None:
    """20 % of 10 per second is one foreign arrival every 0.5 s, charged to the same user."""
    limits = ServerLimits(total=10, per_schedule=10, window=1.0)
    loop = asyncio.get_running_loop()
    async with MockScheduleServer(limits=limits, foreign_load=0.2, unknown_ids="active") as server:
        start = loop.time()
        await asyncio.sleep(5.25)
        # Foreign arrivals at 4.5 and 5.0 are in the last second: 8 of 10 are left.
        codes = [(await post(session, server.url_for(f"SC-{i}")))[0] for i in range(10)]
    foreign = server.recorder.select(foreign=True)
    assert [a.time - start for a in foreign] == pytest.approx([0.5 * k for k in range(11)])
    assert {(a.user, a.api_key, a.outcome) for a in foreign} == {
        (DEFAULT_USERNAME, None, Outcome.CANCELLED)
    }
    assert codes == [200] * 8 + [429] * 2
    assert server.recorder.max_arrivals_in_window(1.0, accepted_only=True) == 10
    assert server.recorder.count_rate_limited() == 2


@pytest.mark.looptime
async def test_foreign_load_follows_limits_assigned_while_it_runs(
    session: aiohttp.ClientSession,
) -> None:
    """New limits count the foreign load from then on, at the new rate, in the new book."""
    limits = ServerLimits(total=10, per_schedule=10, window=1.0)
    loop = asyncio.get_running_loop()
    async with MockScheduleServer(limits=limits, foreign_load=0.5, unknown_ids="active") as server:
        await asyncio.sleep(0.3)
        server.limits = ServerLimits(total=20, per_schedule=20, window=1.0)
        changed = loop.time()
        await asyncio.sleep(2.05)
        # In the last second 10 foreign arrivals (0.5 x 20, one per 0.1 s): 10 are left.
        codes = [(await post(session, server.url_for(f"SC-{i}")))[0] for i in range(12)]
        used = server.used(user=DEFAULT_USERNAME)
    assert codes == [200] * 10 + [429] * 2
    assert used == 20
    times = [a.time for a in server.recorder.select(foreign=True) if a.time > changed]
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([0.1] * (len(times) - 1))


@pytest.mark.looptime
async def test_foreign_arrivals_are_refused_when_the_client_spent_the_budget(
    session: aiohttp.ClientSession,
) -> None:
    """A foreign arrival over the limit is recorded as a foreign 429, not as the client's."""
    users = {"alice": "a", "bob": "b"}
    limits = ServerLimits(total=4, window=1.0)
    async with MockScheduleServer(
        users=users, limits=limits, foreign_load=0.5, foreign_user="bob", unknown_ids="active"
    ) as server:
        bob = basic_auth("bob", "b")
        # The foreign load sent one at 0.0; bob fills the other three at 0.1.
        await asyncio.sleep(0.1)
        for i in range(3):
            await cancel(session, server, f"SC-{i}", auth=bob)
        await asyncio.sleep(0.5)
    recorder = server.recorder
    assert [a.outcome for a in recorder.select(foreign=True)] == [
        Outcome.CANCELLED,
        Outcome.RATE_LIMITED,
    ]
    assert recorder.count_rate_limited() == 0
    assert recorder.count_rate_limited(foreign=None) == 1
    assert recorder.count_rate_limited(user="bob", foreign=True) == 1


def test_foreign_load_settings_are_checked() -> None:
    """The foreign share must be in [0, 1) and needs someone whose budget it spends."""
    with pytest.raises(InvalidParameterError, match="foreign_load"):
        MockScheduleServer(foreign_load=1.0)
    with pytest.raises(InvalidParameterError, match="foreign_user"):
        MockScheduleServer(users={}, foreign_load=0.5)


# -- the recorder ------------------------------------------------------------------------


def arrival(time: float, **kwargs: Any) -> Arrival:
    """An arrival with defaults for what the test does not care about."""
    values: dict[str, Any] = {
        "user": "u",
        "api_key": "k***",
        "schedule_id": "SC-1",
        "status": 200,
        "outcome": Outcome.CANCELLED,
        "accepted": True,
    }
    return Arrival(time=time, **(values | kwargs))


def test_max_in_window_counts_the_busiest_half_open_interval() -> None:
    """The busiest [t, t + window) is found by hand-computed examples, in any order."""
    assert max_in_window([1.2, 0.0, 2.5, 0.5, 1.0], 1.0) == 3  # 0.5, 1.0, 1.2
    assert max_in_window([0.0, 1.0], 1.0) == 1  # half-open: 1.0 is outside [0, 1)
    assert max_in_window([0.0, 0.999], 1.0) == 2
    assert max_in_window([5.0] * 4, 0.001) == 4
    assert max_in_window([], 1.0) == 0
    with pytest.raises(InvalidParameterError, match="window"):
        max_in_window([1.0], 0.0)


def test_recorder_helpers_filter_and_count() -> None:
    """select, count, counts per id and outcome, and first/last honour every filter."""
    recorder = Recorder()
    recorder.record(arrival(0.0, schedule_id="SC-1"))
    recorder.record(arrival(0.2, schedule_id="SC-2", user="v"))
    recorder.record(
        arrival(0.4, outcome=Outcome.RATE_LIMITED, status=429, accepted=False, limited_by="total")
    )
    recorder.record(arrival(0.6, schedule_id="foreign-0", foreign=True))
    recorder.record(arrival(1.5, schedule_id="SC-1", outcome=Outcome.INVALID_STATUS))
    assert len(recorder) == 5
    assert repr(recorder) == "Recorder(arrivals=5)"
    assert [a.time for a in recorder] == [0.0, 0.2, 0.4, 0.6, 1.5]
    assert [a.time for a in recorder.select(user="u", foreign=False)] == [0.0, 0.4, 1.5]
    assert [a.time for a in recorder.select(schedule_id="SC-1")] == [0.0, 0.4, 1.5]
    assert [a.time for a in recorder.select(accepted_only=True)] == [0.0, 0.2, 0.6, 1.5]
    assert recorder.max_arrivals_in_window(1.0) == 4
    assert recorder.max_arrivals_in_window(1.0, accepted_only=True) == 3
    assert recorder.max_arrivals_in_window(1.0, foreign=False) == 3
    assert recorder.max_arrivals_in_window(1.0, user="v") == 1
    assert recorder.max_arrivals_in_window(2.0, schedule_id="SC-1") == 3
    assert recorder.count() == 5
    assert recorder.count(Outcome.CANCELLED) == 3
    assert recorder.count(Outcome.CANCELLED, foreign=False) == 2
    assert recorder.count_rate_limited() == 1
    assert recorder.count_rate_limited(user="v") == 0
    assert recorder.outcomes() == Counter(
        {Outcome.CANCELLED: 2, Outcome.RATE_LIMITED: 1, Outcome.INVALID_STATUS: 1}
    )
    assert recorder.sends_per_id() == Counter({"SC-1": 3, "SC-2": 1})
    assert recorder.sends_per_id(foreign=None)["foreign-0"] == 1
    assert (recorder.first_arrival(), recorder.last_arrival()) == (0.0, 1.5)
    assert recorder.first_arrival(foreign=True) == recorder.last_arrival(foreign=True) == 0.6
    assert recorder.first_arrival(user="nobody") is None
    assert recorder.last_arrival(user="nobody") is None
    recorder.clear()
    assert recorder.arrivals == ()


# -- lifecycle, repr, clients ------------------------------------------------------------


def is_started(server: MockScheduleServer) -> bool:
    """``server.started``, read through a call so the type checker does not narrow it."""
    return server.started


async def test_lifecycle_base_url_and_double_start() -> None:
    """base_url exists only while started, ends in /api/v3 on 127.0.0.1; aclose is idempotent."""
    server = MockScheduleServer()
    with pytest.raises(RuntimeError, match="not started"):
        server.base_url  # noqa: B018 - the property raises
    with pytest.raises(RuntimeError, match="not started"):
        server.now()
    with pytest.raises(RuntimeError, match="not started"):
        server.used(user=DEFAULT_USERNAME)
    assert not is_started(server)
    await server.start()
    try:
        assert is_started(server)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v3", server.base_url)
        assert server.url_for("SC-1") == f"{server.base_url}/schedule/{DEFAULT_API_KEY}/SC-1/cancel"
        with pytest.raises(RuntimeError, match="already started"):
            await server.start()
    finally:
        await server.aclose()
    await server.aclose()
    assert not is_started(server)


async def test_ipv6_loopback_gets_a_bracketed_base_url(session: aiohttp.ClientSession) -> None:
    """On ::1 the base URL brackets the address and requests work."""
    async with MockScheduleServer(host="::1", unknown_ids="active") as server:
        assert re.fullmatch(r"http://\[::1\]:\d+/api/v3", server.base_url)
        status, _ = await cancel(session, server, "SC-1")
    assert status == 200


async def test_port_in_use_raises_and_leaks_nothing() -> None:
    """Starting on a taken port raises OSError and leaves the server closed."""
    async with MockScheduleServer() as first:
        port = int(first.base_url.split(":")[2].split("/")[0])
        second = MockScheduleServer(port=port)
        with pytest.raises(OSError, match="in use"):
            await second.start()
        assert not second.started


def test_repr_shows_counts_and_config_but_no_secrets() -> None:
    """The repr counts users and connectors and never shows passwords, secrets or apiKeys."""
    server = MockScheduleServer(
        users={"alice": "hunter2"}, connectors={"connector-key-1": "s3cret-shared"}
    )
    server.seed(["SC-1"])
    text = repr(server)
    assert "users=1" in text
    assert "connectors=1" in text
    assert "signing=1" in text
    assert "schedules=1" in text
    for secret in ("hunter2", "s3cret-shared", "connector-key-1"):
        assert secret not in text


async def test_client_kwargs_describe_this_server() -> None:
    """client_kwargs gives the first user and connector, with the connector's shared secret."""
    async with MockScheduleServer(connectors={"conn": "secret", "other": None}) as server:
        assert server.client_kwargs() == {
            "api_key": "conn",
            "username": DEFAULT_USERNAME,
            "password": DEFAULT_PASSWORD,
            "shared_secret": "secret",
            "base_url": server.base_url,
        }
        assert server.client_kwargs(api_key="other")["shared_secret"] is None


# -- the pytest plugin -------------------------------------------------------------------


async def test_mock_schedule_server_fixture_is_a_started_default_server(
    mock_schedule_server: MockScheduleServer, session: aiohttp.ClientSession
) -> None:
    """The fixture yields a started server with the default credentials and limits."""
    assert mock_schedule_server.started
    assert mock_schedule_server.limits == ServerLimits()
    mock_schedule_server.seed(["SC-1"])
    status, body = await cancel(session, mock_schedule_server, "SC-1")
    assert (status, body["success"]) == (200, True)


async def test_mock_schedule_server_factory_starts_configured_servers(
    mock_schedule_server_factory: Any,
) -> None:
    """The factory passes its keywords to MockScheduleServer and starts each server."""
    one = await mock_schedule_server_factory(limits=ServerLimits(window=1.0))
    two = await mock_schedule_server_factory(unknown_ids="active")
    assert one.started
    assert two.started
    assert one.base_url != two.base_url
    assert one.limits.window == 1.0
    assert two.unknown_ids == "active"


def _subprocess_can_import_schedcancel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a pytester subprocess import schedcancel from this checkout, installed or not."""
    env_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", env_path)


def test_plugin_works_in_strict_mode_and_closes_what_it_made(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opted into from a conftest, in strict mode, the fixtures work and are closed afterwards."""
    pytester.makeconftest('pytest_plugins = ["schedcancel.pytest_plugin"]\n')
    pytester.makepyfile(
        textwrap.dedent(
            """
            import sys

            import pytest

            made = []

            def test_nothing_imported_until_requested():
                assert "schedcancel.testing" not in sys.modules

            @pytest.mark.asyncio
            async def test_factory(mock_schedule_server_factory):
                made.append(await mock_schedule_server_factory(unknown_ids="active"))
                made.append(await mock_schedule_server_factory())
                assert all(server.started for server in made)

            @pytest.mark.asyncio
            async def test_default(mock_schedule_server):
                made.append(mock_schedule_server)
                assert mock_schedule_server.base_url.endswith("/api/v3")

            def test_all_closed():
                assert len(made) == 3
                assert not any(server.started for server in made)
            """
        )
    )
    pytester.makeini("[pytest]\nasyncio_mode = strict\n")
    _subprocess_can_import_schedcancel(monkeypatch)
    result = pytester.runpytest_subprocess("-p", "asyncio")
    result.assert_outcomes(passed=4)


def test_plugin_is_not_loaded_unless_named(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project that does not opt in has no such fixture, whatever is installed."""
    pytester.makepyfile("def test_wants_it(mock_schedule_server):\n    pass\n")
    _subprocess_can_import_schedcancel(monkeypatch)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'mock_schedule_server' not found*"])


def test_importing_the_plugin_imports_neither_the_server_nor_aiohttp_web() -> None:
    """Loading the plugin leaves the server modules unimported until a fixture is requested."""
    code = (
        "import sys, schedcancel.pytest_plugin; "
        "print(sorted(m for m in ('schedcancel.testing', 'aiohttp.web') if m in sys.modules))"
    )
    output = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert output.stdout.strip() == "[]"


# -- the CLI hook ------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    """Parse ``argv`` with the mock-server options."""
    parser = argparse.ArgumentParser(prog="mock-server", exit_on_error=False)
    add_mock_server_arguments(parser)
    return parser.parse_args(argv)


def test_cli_defaults_describe_the_default_server() -> None:
    """With no options the server has the default user and connector and the real limits."""
    server = server_from_args(parse())
    assert server.users == {DEFAULT_USERNAME: DEFAULT_PASSWORD}
    assert server.connectors == {DEFAULT_API_KEY: None}
    assert server.limits == ServerLimits()
    assert server.faults == Faults()
    assert (server.unknown_ids, server.host, server.port) == ("error", "127.0.0.1", 0)
    assert server.statuses == {}


def test_cli_options_configure_everything(tmp_path: Path) -> None:
    """Every option reaches the server: users, keys, secret, ids, limits, faults, foreign load."""
    ids = tmp_path / "ids.txt"
    ids.write_text("# seeded\nSC-2\n\n  SC-3  \n  # indented\nSC-3  # again\n", encoding="utf-8")
    args = parse(
        "--host", "::1", "--port", "8080",
        "--user", "alice:pw:with:colons", "--user", "bob:",
        "--api-key", "k1", "--api-key", "k2", "--shared-secret", "s",
        "--schedule", "SC-1", "--schedules-file", str(ids), "--status", "PAUSED",
        "--accept-any-id",
        "--total", "6", "--per-schedule", "2", "--window", "1.5", "--model", "token-bucket",
        "--phase", "0.25", "--count-rejected", "--retry-after",
        "--server-error-rate", "0.1", "--maintenance-rate", "0.05", "--truncate-rate", "0.01",
        "--html-rate", "0.02", "--drop-rate", "0.03", "--rate-limit-rate", "0.04",
        "--request-latency", "0.01:0.02", "--response-latency", "0.5",
        "--fault-seed", "9", "--foreign-load", "0.2",
    )  # fmt: skip
    server = server_from_args(args)
    assert server.users == {"alice": "pw:with:colons", "bob": ""}
    assert server.connectors == {"k1": "s", "k2": "s"}
    assert server.statuses == dict.fromkeys(["SC-1", "SC-2", "SC-3"], ScheduleStatus.PAUSED)
    assert (server.unknown_ids, server.host, server.port) == ("active", "::1", 8080)
    assert server.limits == ServerLimits(
        total=6,
        per_schedule=2,
        window=1.5,
        model="token-bucket",
        phase=0.25,
        count_rejected=True,
        retry_after=True,
    )
    assert server.faults == Faults(
        server_error=0.1,
        maintenance=0.05,
        truncated=0.01,
        html=0.02,
        drop=0.03,
        rate_limited=0.04,
        request_latency=(0.01, 0.02),
        response_latency=(0.5, 0.5),
        seed=9,
    )
    assert server.foreign_load == 0.2


@pytest.mark.parametrize(
    "argv",
    [
        ["--user", "no-colon"],
        ["--user", ":pw"],
        ["--drop-rate", "1.5"],
        ["--drop-rate", "often"],
        ["--request-latency", "2:1"],
        ["--request-latency", "fast"],
        ["--model", "leaky-bucket"],
    ],
)
def test_cli_rejects_malformed_options(argv: list[str]) -> None:
    """Malformed values are argparse errors (exit status 2 in a real CLI)."""
    with pytest.raises(argparse.ArgumentError):
        parse(*argv)


async def test_run_mock_server_returns_2_for_an_impossible_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A limit of 0 is reported on stderr with exit status 2, before anything listens."""
    assert await run_mock_server(parse("--total", "0")) == 2
    assert "total must be >= 1" in capsys.readouterr().err


def test_main_mock_server_runs_the_server_in_a_new_loop(capsys: pytest.CaptureFixture[str]) -> None:
    """The synchronous entry point returns run_mock_server's exit status."""
    assert main_mock_server(parse("--window", "-1")) == 2
    assert "window must be > 0" in capsys.readouterr().err


async def test_run_mock_server_returns_1_when_it_cannot_start(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A missing schedules file or a taken port is reported with exit status 1."""
    assert await run_mock_server(parse("--schedules-file", str(tmp_path / "none.txt"))) == 1
    assert "cannot read schedules" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert await run_mock_server(parse("--port", str(port))) == 1
    assert "cannot listen" in capsys.readouterr().err


class _Stdout(io.StringIO):
    """A stdout that tells the test when a line was written."""

    def __init__(self) -> None:
        super().__init__()
        self.line = asyncio.Event()

    def write(self, text: str) -> int:
        if "\n" in text:
            self.line.set()
        return super().write(text)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_run_mock_server_serves_until_a_signal_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, session: aiohttp.ClientSession, signum: signal.Signals
) -> None:
    """The base URL is the first stdout line; requests are served; a signal stops it with 0."""
    stdout = _Stdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    task = asyncio.create_task(run_mock_server(parse("--schedule", "SC-1", "--window", "2")))
    await stdout.line.wait()
    base_url = stdout.getvalue().splitlines()[0]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v3", base_url)
    status, _, body = await post(session, f"{base_url}/schedule/{DEFAULT_API_KEY}/SC-1/cancel")
    assert (status, json.loads(body)["success"]) == (200, True)
    signal.raise_signal(signum)
    assert await task == 0
    # The handlers are gone again: the loop no longer owns the signal.
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, signal.default_int_handler)


@pytest.mark.parametrize(
    "command",
    [["-m", "schedcancel", "mock-server"], ["-m", "schedcancel.testing"]],
    ids=["schedcancel-mock-server", "python-m-schedcancel-testing"],
)
def test_mock_server_process_answers_curl_and_stops_on_sigterm(command: list[str]) -> None:
    """``schedcancel mock-server`` prints its URL, answers curl, and exits 0 on SIGTERM."""
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, *command, "--schedule", "SC-1", "--window", "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v3", base_url)
        curl = subprocess.run(  # noqa: S603 - fixed arguments
            [  # noqa: S607 - curl from PATH is what users run
                "curl",
                "--silent",
                "--show-error",
                "--max-time",
                "10",
                "--user",
                f"{DEFAULT_USERNAME}:{DEFAULT_PASSWORD}",
                "--header",
                "Content-Type: application/json",
                "--data",
                "{}",
                f"{base_url}/schedule/{DEFAULT_API_KEY}/SC-1/cancel",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(curl.stdout) == {
            "success": True,
            "scheduleId": "SC-1",
            "oldStatus": "ACTIVE",
            "newStatus": "CANCELLED",
        }
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stderr is not None
        assert "stopped after 1 requests (0 answered 429)" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


async def test_a_client_that_leaves_before_its_body_arrived_is_not_counted_nor_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A request cut off mid-body never reached the server: no arrival, no ERROR traceback."""
    async with MockScheduleServer(unknown_ids="active") as server:
        url = yarl.URL(server.base_url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(
            b"POST /api/v3/schedule/test-api-key/SC-1/cancel HTTP/1.1\r\n"
            b"Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        assert await reader.read() == b""
        for _ in range(20):  # let the server see the lost connection
            await asyncio.sleep(0)
    assert list(server.recorder) == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
