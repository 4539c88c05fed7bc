"""Tests for ScheduleClient and its aiohttp transport, against a tiny local server."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import attrs
import pytest
from aiohttp import web
from aioresponses import aioresponses
from schedcancel import (
    AiohttpTransport,
    ApiError,
    AuthenticationError,
    ClientClosedError,
    Clock,
    EndpointNotFoundError,
    InvalidParameterError,
    Limiter,
    LimiterStats,
    Permit,
    RateLimitedError,
    RateLimits,
    Request,
    ResponseMismatchError,
    ResponseParseError,
    RetryPolicy,
    ScheduleClient,
    ScheduleResult,
    ScheduleStatus,
    ServerError,
    Transport,
    TransportError,
)
from schedcancel._protocol.wire import CONTENT_TYPE, USER_AGENT, http_date, signature

SAMPLES = Path(__file__).parent / "samples"
KEY = "APIKEY-SENTINEL-0123456789abcdef"
PASSWORD = "PASSWORD-SENTINEL-4f1d2c"
SECRET = "SECRET-SENTINEL-9a8b7c"
USER = "api-user"
SID = "SC-1234-1234-1234-1234-1234-1234"
REMOTE = "https://gateway.example.test/api/v3"
NOW = datetime(2020, 7, 21, 13, 15, 3, tzinfo=UTC)
E = TypeVar("E", bound=BaseException)


def sample(name: str) -> bytes:
    """Return the bytes of a canned response body from tests/samples."""
    return (SAMPLES / name).read_bytes()


def assert_clean(*objects: object) -> None:
    """Assert that neither str() nor repr() of any object shows a secret or the whole apiKey."""
    for obj in objects:
        for text in (str(obj), repr(obj)):
            for secret in (KEY, PASSWORD, SECRET):
                assert secret not in text, f"secret leaked: {text!r}"


@contextlib.contextmanager
def raises_clean(
    expected: type[E], *, match: str | None = None
) -> Iterator[pytest.ExceptionInfo[E]]:
    """pytest.raises that also checks the exception, its notes and its chain show no secret.

    The chain (``__cause__`` and ``__context__``, even when suppressed) is what error
    trackers walk; aiohttp's own exceptions there would hold the URL and the Basic token.
    """
    with pytest.raises(expected, match=match) as info:
        yield info
    error: BaseException | None = info.value
    while error is not None:
        assert_clean(error, *getattr(error, "__notes__", ()), *vars(error).values())
        error = error.__cause__ or error.__context__


# --- test doubles -------------------------------------------------------------------------------


@attrs.define
class FakeLimiter:
    """A Limiter that admits at once and records every call."""

    limits: RateLimits = attrs.field(factory=RateLimits)
    events: list[tuple[Any, ...]] = attrs.field(factory=list)
    closed: bool = False

    async def acquire(
        self,
        schedule_id: str | None,
        *,
        priority: int = 0,
        queue_timeout: float | None = None,
        requeue: bool = False,
    ) -> Permit:
        """Record the call and grant a permit."""
        self.events.append(("acquire", schedule_id, priority, queue_timeout, requeue))
        return Permit(schedule_id=schedule_id, acquired_at=0.0, handle=len(self.events))

    async def release(
        self, permit: Permit, *, rate_limited: bool = False, retry_after: float | None = None
    ) -> None:
        """Record the release."""
        self.events.append(("release", permit.schedule_id, rate_limited, retry_after))

    async def estimate(self, schedule_id: str | None = None) -> float:  # noqa: ARG002
        """Never any wait."""
        return 0.0

    def stats(self) -> LimiterStats:
        """An empty snapshot."""
        return LimiterStats(
            queued=0, in_flight=0, total_used=0, total_limit=60, schedule_ids=0, next_free=0.0
        )

    async def aclose(self) -> None:
        """Remember being closed."""
        self.closed = True

    def kinds(self) -> list[str]:
        """The sequence of call kinds, e.g. ["acquire", "release"]."""
        return [event[0] for event in self.events]


@attrs.define
class FakeTime:
    """A clock whose async sleep records the delay and moves the clock forward."""

    now: float = 1000.0
    sleeps: list[float] = attrs.field(factory=list)

    def clock(self) -> float:
        """The current fake time."""
        return self.now

    async def sleep(self, delay: float) -> None:
        """Record the delay and advance the clock by it, without waiting."""
        self.sleeps.append(delay)
        self.now += delay


Reply = tuple[int, dict[str, str], bytes] | Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.define
class Arrival:
    """One request as the server saw it."""

    method: str
    raw_path: str
    headers: dict[str, str]
    body: bytes
    peer: object


def _success_for(path: str) -> bytes:
    """The documented cancel success, about the scheduleId in ``path`` (SID for start)."""
    *_, schedule_id, operation = path.split("/")
    answer = json.loads(sample("cancel_success.json"))
    if operation != "start":
        answer["scheduleId"] = schedule_id
    return json.dumps(answer).encode()


@attrs.define
class LocalServer:
    """A scripted aiohttp server on 127.0.0.1: replies in order, records arrivals."""

    base_url: str = ""
    replies: list[Reply] = attrs.field(factory=list)
    arrivals: list[Arrival] = attrs.field(factory=list)
    connections: int = 0
    gate: asyncio.Event = attrs.field(factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Record the request, then answer with the next scripted reply (default: success)."""
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.arrivals.append(
            Arrival(
                request.method, request.raw_path, dict(request.headers), await request.read(), peer
            )
        )
        reply = self.replies.pop(0) if self.replies else (200, {}, _success_for(request.path))
        if callable(reply):
            return await reply(request)
        status, headers, body = reply
        return web.Response(status=status, headers=headers, body=body)

    def peers(self) -> set[object]:
        """The distinct client sockets that sent requests."""
        return {arrival.peer for arrival in self.arrivals}


@pytest.fixture(name="server")
async def _server() -> AsyncIterator[LocalServer]:
    """Run a LocalServer for one test and shut it down cleanly."""
    server = LocalServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    server.base_url = f"http://{host}:{port}/api/v3"
    yield server
    server.gate.set()
    await runner.cleanup()


@pytest.fixture(name="limiter")
def _limiter() -> FakeLimiter:
    """A recording limiter that admits at once."""
    return FakeLimiter()


@pytest.fixture(name="fake_time")
def _fake_time() -> FakeTime:
    """A fake clock and sleep for backoff and deadline tests."""
    return FakeTime()


@pytest.fixture(autouse=True)
def _no_secrets_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture schedcancel's DEBUG logs in every test and check none shows a secret."""
    caplog.set_level(logging.DEBUG, logger="schedcancel")
    yield
    formatter = logging.Formatter()
    for record in caplog.records:
        text = record.getMessage()
        if record.exc_info:
            text += formatter.formatException(record.exc_info)
        assert_clean(text)


def _with_jitter(retry: object, jitter: Callable[[], float] | None) -> object:
    """Every backoff at its bound (jitter 1.0), unless a test says otherwise; a bad value as is."""
    if not isinstance(retry, RetryPolicy):
        return retry
    return attrs.evolve(retry, jitter=jitter if jitter is not None else lambda: 1.0)


def make_client(
    base_url: str, limiter: Limiter | None, fake_time: FakeTime | None = None, **kwargs: Any
) -> ScheduleClient:
    """Build a client with sentinel credentials, a fake limiter and no real sleeping."""
    fake_time = fake_time if fake_time is not None else FakeTime()
    options: dict[str, Any] = {
        "username": USER,
        "password": PASSWORD,
        "shared_secret": SECRET,
        "base_url": base_url,
        "limiter": limiter,
        "retry": _with_jitter(kwargs.pop("retry", RetryPolicy()), kwargs.pop("jitter", None)),
        "clock": Clock(
            monotonic=fake_time.clock, wall=lambda: NOW, sleep=kwargs.pop("sleep", fake_time.sleep)
        ),
    }
    options.update(kwargs)
    return ScheduleClient(KEY, **options)


def cancel_url(base_url: str, schedule_id: str = SID, key: str = KEY) -> str:
    """The cancel URL for an id under a base URL."""
    return f"{base_url}/schedule/{key}/{schedule_id}/cancel"


# --- validation before any I/O ------------------------------------------------------------------

BAD_IDS: list[object] = [
    None,
    b"SC-1",
    42,
    "",
    "S" * 33,
    "SC/1",
    "..",
    "SC?1",
    "SC#1",
    "SC%2F1",
    "SC 1",
    "SC1\n",
    "SC\t1",
    "SC+1",
    "SC@1",
    "SC:1",
    "SCé1",
    "SC;1",
    "SC\x00",
    "SC&x=1",
    "SC\\1",
    "SC\r\nX-Evil: 1",
]


@pytest.mark.parametrize("schedule_id", BAD_IDS)
async def test_bad_schedule_id_makes_no_request(schedule_id: object, limiter: FakeLimiter) -> None:
    """A bad scheduleId raises InvalidParameterError before the limiter or the network is used."""
    with aioresponses() as mocked:
        async with make_client(REMOTE, limiter) as client:
            with raises_clean(InvalidParameterError) as info:
                await client.cancel(schedule_id)  # type: ignore[arg-type]
        assert mocked.requests == {}
    assert limiter.events == []
    assert_clean(info.value)


@pytest.mark.parametrize(
    "api_key",
    [*(v for v in BAD_IDS if v not in (None, "S" * 33)), "K" * 51, KEY + "/x", KEY + "\n"],
)
async def test_bad_api_key_per_call_makes_no_request(api_key: object, limiter: FakeLimiter) -> None:
    """A bad per-call apiKey raises before any I/O, and its message never shows the key."""
    with aioresponses() as mocked:
        async with make_client(REMOTE, limiter) as client:
            with raises_clean(InvalidParameterError, match="apiKey") as info:
                await client.cancel(SID, api_key=api_key)  # type: ignore[arg-type]
        assert mocked.requests == {}
    assert limiter.events == []
    assert_clean(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"priority": True},
        {"priority": "1"},
        {"priority": 1.5},
        {"queue_timeout": -1},
        {"queue_timeout": float("nan")},
        {"queue_timeout": float("-inf")},
        {"queue_timeout": "5"},
        {"queue_timeout": False},
        {"gate": "closed"},
        {"gate": True},
    ],
)
async def test_bad_call_options_make_no_request(
    kwargs: dict[str, Any], limiter: FakeLimiter
) -> None:
    """Bad priority, queue_timeout or gate values fail before any I/O."""
    with aioresponses() as mocked:
        async with make_client(REMOTE, limiter) as client:
            with raises_clean(InvalidParameterError):
                await client.cancel(SID, **kwargs)
        assert mocked.requests == {}
    assert limiter.events == []


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"base_url": "http://gateway.ixopay.com/api/v3"}, "plain http"),
        ({"base_url": "http://10.0.0.1/api/v3"}, "plain http"),
        ({"base_url": "http://localhost.evil.example/api/v3"}, "plain http"),
        ({"base_url": "ftp://gateway.ixopay.com/api/v3"}, "https://"),
        ({"base_url": "gateway.ixopay.com/api/v3"}, "https://"),
        ({"base_url": "https:///api/v3"}, "https://"),
        ({"base_url": f"https://user:{PASSWORD}@gateway.ixopay.com/api/v3"}, "credentials"),
        ({"base_url": "https://gateway.ixopay.com/"}, "API path"),
        ({"base_url": "https://gateway.ixopay.com"}, "API path"),
        ({"base_url": "https://gateway.ixopay.com/api/v3?x=1"}, "query"),
        ({"base_url": "https://gateway.ixopay.com/api/v3#frag"}, "fragment"),
        ({"base_url": "https://gateway.ixopay.com:99999/api/v3"}, "valid URL"),
        ({"base_url": "https://[::1/api/v3"}, "valid URL"),
        ({"base_url": "https://gateway.ixopay.com/api v3"}, "whitespace"),
        ({"base_url": b"https://gateway.ixopay.com"}, "str"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": float("inf")}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"timeout": "30"}, "timeout"),
        ({"username": ""}, "username"),
        ({"username": None}, "username"),
        ({"username": "a:b"}, "username"),
        ({"username": "user\n"}, "username"),
        ({"password": ""}, "password"),
        ({"password": None}, "password"),
        ({"password": PASSWORD + "\n"}, "newline"),
        ({"shared_secret": ""}, "shared_secret"),
        ({"shared_secret": SECRET + "\r\n"}, "shared_secret"),
        ({"shared_secret": 5}, "shared_secret"),
        ({"limits": RateLimits()}, "not both"),
        ({"limiter": None, "limits": {"total": 60}}, "RateLimits"),
        ({"limiter": object()}, "Limiter"),
        ({"retry": {"attempts": 3}}, "RetryPolicy"),
        ({"session": object()}, "ClientSession"),
        ({"ssl": False}, "SSLContext"),
        ({"ssl": True}, "SSLContext"),
        ({"clock": object()}, "Clock"),
        ({"transport": object()}, "Transport"),
        ({"transport": AiohttpTransport(), "ssl": ssl.create_default_context()}, "not both"),
    ],
)
def test_bad_config_is_refused(kwargs: dict[str, Any], fragment: str) -> None:
    """Invalid constructor settings raise InvalidParameterError that names the problem only."""
    options: dict[str, Any] = {"base_url": REMOTE, "limiter": FakeLimiter(), **kwargs}
    with raises_clean(InvalidParameterError, match=fragment) as info:
        make_client(options.pop("base_url"), options.pop("limiter"), **options)
    assert_clean(info.value)


@pytest.mark.parametrize("api_key", [None, "", "K" * 51, KEY + "/"])
def test_bad_default_api_key_is_refused(api_key: object) -> None:
    """The client's own apiKey is validated in the constructor without echoing it."""
    with raises_clean(InvalidParameterError, match="apiKey") as info:
        ScheduleClient(api_key, username=USER, password=PASSWORD, limiter=FakeLimiter())  # type: ignore[arg-type]
    assert_clean(info.value)


@pytest.mark.parametrize(
    ("base_url", "insecure"),
    [
        ("http://127.0.0.1:8080/api/v3", False),
        ("http://127.9.8.7/api/v3/", False),
        ("http://[::1]:8080/api/v3", False),
        ("http://localhost/api/v3", False),
        ("http://mock.internal/api/v3", True),
        ("https://gateway.us.pop.ixopay.com/api/v3", False),
        ("HTTPS://sandbox.ixopay.com/api/v3/", False),
    ],
)
async def test_accepted_base_urls(base_url: str, insecure: bool) -> None:
    """Loopback http, explicitly allowed http and https base URLs are accepted, slash trimmed."""
    async with make_client(base_url, FakeLimiter(), allow_insecure_http=insecure) as client:
        assert client.base_url == base_url.rstrip("/")


async def test_ssl_context_is_accepted() -> None:
    """A custom SSLContext (for a private CA) is accepted."""
    async with make_client(REMOTE, FakeLimiter(), ssl=ssl.create_default_context()) as client:
        assert client.base_url == REMOTE


# --- the happy path -----------------------------------------------------------------------------


async def test_cancel_sends_the_signed_request(server: LocalServer, limiter: FakeLimiter) -> None:
    """One cancel sends exactly the documented, signed request and returns the parsed result."""
    async with make_client(server.base_url, limiter) as client:
        result = await client.cancel(SID)
    assert result == ScheduleResult(
        success=True,
        schedule_id=SID,
        old_status=ScheduleStatus.ACTIVE,
        new_status=ScheduleStatus.CANCELLED,
    )
    (arrival,) = server.arrivals
    uri = f"/api/v3/schedule/{KEY}/{SID}/cancel"
    assert arrival.method == "POST"
    assert arrival.raw_path == uri
    assert arrival.body == b"{}"
    headers = arrival.headers
    assert headers["Content-Type"] == CONTENT_TYPE
    assert headers["Accept"] == "application/json"
    assert headers["User-Agent"] == USER_AGENT
    assert headers["Date"] == "Tue, 21 Jul 2020 13:15:03 GMT"
    token = base64.b64decode(headers["Authorization"].removeprefix("Basic "))
    assert token == f"{USER}:{PASSWORD}".encode()
    assert headers["X-Signature"] == signature(
        SECRET,
        method="POST",
        body=arrival.body,
        content_type=headers["Content-Type"],
        date=headers["Date"],
        request_uri=arrival.raw_path,
    )
    assert limiter.events == [
        ("acquire", SID, 0, None, False),
        ("release", SID, False, None),
    ]


async def test_unsigned_client_sends_no_signature(
    server: LocalServer, limiter: FakeLimiter
) -> None:
    """Without a shared secret neither Date nor X-Signature is sent."""
    async with make_client(server.base_url, limiter, shared_secret=None) as client:
        await client.cancel(SID)
    headers = server.arrivals[0].headers
    assert "X-Signature" not in headers
    assert "Date" not in headers


async def test_per_call_api_key_priority_and_queue_timeout(
    server: LocalServer, limiter: FakeLimiter
) -> None:
    """api_key, priority and queue_timeout of a call reach the URL and the limiter."""
    async with make_client(server.base_url, limiter) as client:
        await client.cancel("SC-2", api_key="other-connector", priority=3, queue_timeout=2.5)
    assert server.arrivals[0].raw_path == "/api/v3/schedule/other-connector/SC-2/cancel"
    assert limiter.events[0] == ("acquire", "SC-2", 3, 2.5, False)


async def test_infinite_queue_timeout_means_no_deadline(
    server: LocalServer, limiter: FakeLimiter
) -> None:
    """queue_timeout=math.inf is taken, as by the limiters, and reaches them as None."""
    async with make_client(server.base_url, limiter) as client:
        await client.cancel(SID, queue_timeout=math.inf)
    assert limiter.events[0] == ("acquire", SID, 0, None, False)


async def test_per_call_api_keys_beyond_the_builder_cache(
    server: LocalServer, limiter: FakeLimiter
) -> None:
    """Many per-call apiKeys, the client's own among them, each reach their own URL path."""
    from schedcancel._client.client import _MAX_BUILDERS  # noqa: PLC0415 - the cache's size

    keys = [f"connector-{i}" for i in range(_MAX_BUILDERS + 2)]
    sent = [*keys, keys[0], keys[-1], KEY]  # the first was evicted by now, the last was not
    async with make_client(server.base_url, limiter) as client:
        for key in sent:
            await client.cancel(SID, api_key=key)
    assert [a.raw_path for a in server.arrivals] == [
        f"/api/v3/schedule/{key}/{SID}/cancel" for key in sent
    ]


async def test_body_in_several_chunks_is_read_whole(
    server: LocalServer, limiter: FakeLimiter
) -> None:
    """A body that arrives in pieces, its end later still, is read whole."""
    body = sample("cancel_success.json")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 16):
            await response.write(body[start : start + 16])
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        await response.write_eof()
        return response

    server.replies.append(chunked)
    async with make_client(server.base_url, limiter) as client:
        result = await client.cancel(SID)
    assert result.success
    assert result.schedule_id == "SC-1234-1234-1234-1234-1234-1234"


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("cancel_already_cancelled.json", lambda r: r.already_cancelled and r.is_cancelled),
        ("cancel_unknown_id.json", lambda r: r.error_code == 7040 and not r.is_cancelled),
        ("success_string.json", lambda r: r.success is True),
        ("unknown_status.json", lambda r: r.old_status == "SUSPENDED-BY-RISK"),
    ],
)
async def test_business_results_are_returned(
    server: LocalServer, limiter: FakeLimiter, name: str, check: Callable[[ScheduleResult], bool]
) -> None:
    """HTTP 200 answers, success false included, come back as results after one request."""
    server.replies.append((200, {"Content-Type": "application/json"}, sample(name)))
    async with make_client(server.base_url, limiter) as client:
        result = await client.cancel(json.loads(sample(name)).get("scheduleId", SID))
    assert check(result)
    assert len(server.arrivals) == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ((401, {}, b""), AuthenticationError),
        ((403, {}, b"<html>denied</html>"), AuthenticationError),
        ((200, {}, sample("invalid_signature.json")), AuthenticationError),
        ((400, {}, b'{"success": false, "errorCode": 1002}'), ApiError),
        ((404, {}, b"not found"), EndpointNotFoundError),
        ((404, {}, b'{"success": false, "errorCode": 7040}'), ApiError),
        ((200, {}, sample("array.json")), ResponseParseError),
        (
            (200, {}, b'{"success": true, "scheduleId": "SC-OTHER", "newStatus": "CANCELLED"}'),
            ResponseMismatchError,
        ),
        ((200, {}, sample("missing_success.json")), ResponseParseError),
    ],
)
async def test_non_retryable_errors_raise_at_once(
    server: LocalServer,
    limiter: FakeLimiter,
    reply: tuple[int, dict[str, str], bytes],
    error: type[Exception],
) -> None:
    """Auth errors, other 4xx and unparseable bodies raise after one request, permit released."""
    server.replies.append(reply)
    async with make_client(server.base_url, limiter) as client:
        with raises_clean(error) as info:
            await client.cancel(SID)
    assert len(server.arrivals) == 1
    assert limiter.kinds() == ["acquire", "release"]
    assert_clean(info.value)


async def test_server_echo_of_the_key_is_scrubbed(
    server: LocalServer, limiter: FakeLimiter
) -> None:
    """An error message in which the server echoes the apiKey reaches the caller scrubbed."""
    body = f'{{"success": false, "errorCode": 1002, "errorMessage": "bad key {KEY}"}}'.encode()
    server.replies.append((400, {}, body))
    async with make_client(server.base_url, limiter) as client:
        with raises_clean(ApiError) as info:
            await client.cancel(SID)
    assert_clean(info.value, info.value.error_message)
    assert "bad key APIK***" in str(info.value)


# --- retries ------------------------------------------------------------------------------------


async def test_503_then_200_succeeds(
    server: LocalServer, limiter: FakeLimiter, fake_time: FakeTime
) -> None:
    """A 503 is retried after a jittered backoff, through the limiter, and the retry succeeds."""
    server.replies.append((503, {}, sample("maintenance.json")))
    async with make_client(server.base_url, limiter, fake_time) as client:
        result = await client.cancel(SID)
    assert result.success
    assert len(server.arrivals) == 2
    assert fake_time.sleeps == [0.5]
    assert limiter.kinds() == ["acquire", "release", "acquire", "release"]
    assert all(event[-1] is False for event in limiter.events if event[0] == "acquire")


async def test_5xx_attempts_exhausted(
    server: LocalServer, limiter: FakeLimiter, fake_time: FakeTime
) -> None:
    """After the policy's attempts the last ServerError is raised, with a note on the give-up."""
    server.replies.extend([(500, {}, sample("server_error.json"))] * 3)
    retry = RetryPolicy(attempts=3, backoff_initial=0.5)
    async with make_client(server.base_url, limiter, fake_time, retry=retry) as client:
        with raises_clean(ServerError) as info:
            await client.cancel(SID)
    assert info.value.error_code == 1008
    assert len(server.arrivals) == 3
    assert fake_time.sleeps == [0.5, 1.0]
    assert any("gave up after 3 attempt(s)" in note for note in info.value.__notes__)
    assert limiter.kinds() == ["acquire", "release"] * 3


async def test_backoff_is_capped_and_jittered(server: LocalServer, limiter: FakeLimiter) -> None:
    """Backoff bounds double up to backoff_max, and the jitter scales them."""
    fake_time = FakeTime()
    server.replies.extend([(502, {}, b"")] * 6)
    retry = RetryPolicy(attempts=6, backoff_initial=1.0, backoff_max=3.0)
    async with make_client(
        server.base_url, limiter, fake_time, retry=retry, jitter=lambda: 0.5
    ) as client:
        with raises_clean(ServerError):
            await client.cancel(SID)
    assert fake_time.sleeps == [0.5, 1.0, 1.5, 1.5, 1.5]


@pytest.mark.parametrize("name", ["truncated.json", "html_error.html"])
async def test_body_that_is_not_json_is_retried(
    server: LocalServer, limiter: FakeLimiter, fake_time: FakeTime, name: str
) -> None:
    """A 200 whose body is not JSON at all (cut short, a proxy page) is retried like a 5xx."""
    server.replies.append((200, {}, sample(name)))
    async with make_client(server.base_url, limiter, fake_time) as client:
        result = await client.cancel(SID)
    assert result.success
    assert len(server.arrivals) == 2
    assert fake_time.sleeps == [0.5]


async def test_body_that_is_not_json_gives_up_as_parse_error(
    server: LocalServer, limiter: FakeLimiter, fake_time: FakeTime
) -> None:
    """After the policy's attempts a non-JSON 200 raises a retryable ResponseParseError."""
    server.replies.extend([(200, {}, sample("truncated.json"))] * 2)
    async with make_client(
        server.base_url, limiter, fake_time, retry=RetryPolicy(attempts=2)
    ) as client:
        with raises_clean(ResponseParseError) as info:
            await client.cancel(SID)
    assert info.value.retryable
    assert len(server.arrivals) == 2
    assert any("gave up after 2 attempt(s)" in note for note in info.value.__notes__)


async def test_time_queued_in_the_limiter_does_not_count_toward_the_deadline(
    server: LocalServer, fake_time: FakeTime
) -> None:
    """A long wait for a permit between attempts does not use up the retry deadline."""

    class SlowLimiter(FakeLimiter):
        async def acquire(
            self,
            schedule_id: str | None,
            *,
            priority: int = 0,
            queue_timeout: float | None = None,
            requeue: bool = False,
        ) -> Permit:
            fake_time.now += 500.0  # queued behind a bulk job for 500 s
            return await super().acquire(
                schedule_id, priority=priority, queue_timeout=queue_timeout, requeue=requeue
            )

    server.replies.extend([(503, {}, b""), (503, {}, b"")])
    retry = RetryPolicy(attempts=3, backoff_initial=0.5, deadline=5.0)
    async with make_client(server.base_url, SlowLimiter(), fake_time, retry=retry) as client:
        result = await client.cancel(SID)
    assert result.success
    assert len(server.arrivals) == 3
    assert fake_time.sleeps == [0.5, 1.0]


async def test_deadline_stops_retries(
    server: LocalServer, limiter: FakeLimiter, fake_time: FakeTime
) -> None:
    """No retry starts when it would begin after the deadline, however many attempts remain."""
    server.replies.extend([(503, {}, b"")] * 10)
    retry = RetryPolicy(attempts=10, backoff_initial=0.8, deadline=1.0)
    async with make_client(server.base_url, limiter, fake_time, retry=retry) as client:
        with raises_clean(ServerError) as info:
            await client.cancel(SID)
    # First retry starts at 0.8 s (inside 1.0 s); the second would start at 0.8 + 1.6.
    assert fake_time.sleeps == [0.8]
    assert len(server.arrivals) == 2
    assert any("gave up after 2 attempt(s)" in note for note in info.value.__notes__)


async def test_transport_error_retried_then_raised(
    limiter: FakeLimiter, fake_time: FakeTime
) -> None:
    """Connection errors are retried per policy, then raised as a scrubbed TransportError."""
    url = cancel_url(REMOTE)
    with aioresponses() as mocked:
        for _ in range(3):
            mocked.post(url, exception=aiohttp.ClientConnectionError(f"Connection refused: {url}"))
        retry = RetryPolicy(attempts=3)
        async with make_client(REMOTE, limiter, fake_time, retry=retry) as client:
            with raises_clean(TransportError, match="ClientConnectionError") as info:
                await client.cancel(SID)
        assert sum(len(calls) for calls in mocked.requests.values()) == 3
    assert fake_time.sleeps == [0.5, 1.0]
    assert limiter.kinds() == ["acquire", "release"] * 3
    assert "APIK***" in str(info.value)
    assert_clean(info.value)
    # No chain at all: aiohttp's error would carry the full URL and the Basic token.
    assert (info.value.__cause__, info.value.__context__) == (None, None)


async def test_timeout_becomes_transport_error(limiter: FakeLimiter) -> None:
    """A request timeout is a TransportError that says how long was waited."""
    with aioresponses() as mocked:
        mocked.post(cancel_url(REMOTE), exception=TimeoutError())
        async with make_client(
            REMOTE, limiter, retry=RetryPolicy(attempts=1), timeout=2.5
        ) as client:
            with raises_clean(TransportError, match=r"no response within 2\.5 s"):
                await client.cancel(SID)


async def test_transport_then_success(server: LocalServer, limiter: FakeLimiter) -> None:
    """A dropped connection followed by a good answer succeeds on the retry."""

    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    server.replies.append(drop)
    async with make_client(server.base_url, limiter) as client:
        result = await client.cancel(SID)
    assert result.success
    assert len(server.arrivals) == 2


async def test_connection_refused(limiter: FakeLimiter) -> None:
    """A closed port gives a TransportError after the attempts, with no secret in it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}/api/v3"
    async with make_client(base, limiter, retry=RetryPolicy(attempts=2)) as client:
        with raises_clean(TransportError) as info:
            await client.cancel(SID)
    assert limiter.kinds() == ["acquire", "release"] * 2
    assert_clean(info.value)


# --- 429 ----------------------------------------------------------------------------------------


async def test_429_requeues_through_the_limiter(
    server: LocalServer, limiter: FakeLimiter, fake_time: FakeTime
) -> None:
    """A 429 releases with rate_limited and Retry-After, then re-acquires with requeue=True."""
    server.replies.append((429, {"Retry-After": "7"}, sample("rate_limited.json")))
    async with make_client(server.base_url, limiter, fake_time) as client:
        result = await client.cancel(SID, priority=2)
    assert result.success
    assert limiter.events == [
        ("acquire", SID, 2, None, False),
        ("release", SID, True, 7.0),
        ("acquire", SID, 2, None, True),
        ("release", SID, False, None),
    ]
    assert fake_time.sleeps == []  # the limiter does the waiting, not a backoff


async def test_429_http_date_is_relative_to_response_date(
    server: LocalServer, limiter: FakeLimiter
) -> None:
    """An HTTP-date Retry-After reaches the limiter as seconds after the response's Date."""

    async def limited(request: web.Request) -> web.StreamResponse:
        response = web.Response(status=429, body=sample("rate_limited.json"))
        response.headers["Date"] = "Wed, 21 Oct 2015 07:28:00 GMT"
        response.headers["Retry-After"] = "Wed, 21 Oct 2015 07:28:09 GMT"
        return response

    server.replies.append(limited)
    async with make_client(server.base_url, limiter) as client:
        await client.cancel(SID)
    assert limiter.events[1] == ("release", SID, True, 9.0)


async def test_429_http_date_without_a_response_date_counts_from_the_clients_now(
    server: LocalServer,
) -> None:
    """Without a readable Date, an HTTP-date Retry-After counts from the client's injected now."""

    async def limited(request: web.Request) -> web.StreamResponse:
        response = web.Response(status=429, body=sample("rate_limited.json"))
        response.headers["Date"] = "garbage"
        response.headers["Retry-After"] = "Tue, 21 Jul 2020 13:15:15 GMT"  # NOW + 12 s
        return response

    server.replies.append(limited)
    limiter = FakeLimiter(limits=RateLimits(max_rate_limited=0))
    async with make_client(server.base_url, limiter) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.cancel(SID)
    assert limiter.events[1] == ("release", SID, True, 12.0)
    assert info.value.retry_after == 12.0


async def test_429_without_retry_after(server: LocalServer, limiter: FakeLimiter) -> None:
    """A 429 without Retry-After is released with retry_after None."""
    server.replies.append((429, {}, sample("rate_limited.json")))
    async with make_client(server.base_url, limiter) as client:
        await client.cancel(SID)
    assert limiter.events[1] == ("release", SID, True, None)


@pytest.mark.parametrize("value", ["-5", "-0", "+3", "soon"])
async def test_429_with_an_unreadable_retry_after_is_as_without_one(
    server: LocalServer, limiter: FakeLimiter, value: str
) -> None:
    """A negative Retry-After is unreadable: the limiter hears None, not "0 s, send again now"."""
    server.replies.append((429, {"Retry-After": value}, sample("rate_limited.json")))
    async with make_client(server.base_url, limiter) as client:
        await client.cancel(SID)
    assert limiter.events[1] == ("release", SID, True, None)


@pytest.mark.parametrize("allowed", [0, 2])
async def test_429_limit_raises(server: LocalServer, allowed: int) -> None:
    """After max_rate_limited requeues the next 429 raises RateLimitedError."""
    limiter = FakeLimiter(limits=RateLimits(max_rate_limited=allowed))
    server.replies.extend([(429, {"Retry-After": "1"}, sample("rate_limited.json"))] * 5)
    async with make_client(server.base_url, limiter) as client:
        with raises_clean(RateLimitedError) as info:
            await client.cancel(SID)
    assert len(server.arrivals) == allowed + 1
    assert info.value.retry_after == 1.0
    assert info.value.error_code == 1009
    requeues = [event[-1] for event in limiter.events if event[0] == "acquire"]
    assert requeues == [False] + [True] * allowed


async def test_429_does_not_use_retry_attempts(server: LocalServer, limiter: FakeLimiter) -> None:
    """429s are counted apart from the retry policy's attempts."""
    server.replies.extend([(429, {}, b"")] * 3)
    async with make_client(server.base_url, limiter, retry=RetryPolicy(attempts=1)) as client:
        assert (await client.cancel(SID)).success
    assert len(server.arrivals) == 4


# --- cancellation ---------------------------------------------------------------------------------


async def test_cancellation_during_send_releases(server: LocalServer, limiter: FakeLimiter) -> None:
    """A caller cancelled while its request is out releases the permit and re-raises."""
    arrived = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await server.gate.wait()
        return web.Response()

    server.replies.append(hang)
    async with make_client(server.base_url, limiter) as client:
        task = asyncio.create_task(client.cancel(SID))
        await arrived.wait()
        task.cancel()
        with raises_clean(asyncio.CancelledError):
            await task
    assert limiter.events == [("acquire", SID, 0, None, False), ("release", SID, False, None)]


async def test_cancellation_during_backoff_holds_nothing(
    server: LocalServer, limiter: FakeLimiter
) -> None:
    """A caller cancelled while backing off has already released its permit."""
    sleeping = asyncio.Event()

    async def slow_sleep(delay: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()

    server.replies.append((503, {}, b""))
    async with make_client(server.base_url, limiter, sleep=slow_sleep) as client:
        task = asyncio.create_task(client.cancel(SID))
        await sleeping.wait()
        task.cancel()
        with raises_clean(asyncio.CancelledError):
            await task
    assert limiter.kinds() == ["acquire", "release"]


async def test_close_during_backoff_stops_the_call(
    server: LocalServer, limiter: FakeLimiter
) -> None:
    """A client closed while a call backs off ends that call instead of sending again."""
    clients: list[ScheduleClient] = []

    async def close_instead_of_sleeping(delay: float) -> None:
        await clients[0].aclose()

    server.replies.append((503, {}, b""))
    client = make_client(server.base_url, limiter, sleep=close_instead_of_sleeping)
    clients.append(client)
    with raises_clean(ClientClosedError, match="the client is closed"):
        await client.cancel(SID)
    assert len(server.arrivals) == 1
    assert limiter.kinds() == ["acquire", "release"]


# --- the transport ------------------------------------------------------------------------------


async def test_keep_alive_uses_one_connection(server: LocalServer, limiter: FakeLimiter) -> None:
    """Many sequential cancels reuse exactly one TCP connection."""
    async with make_client(server.base_url, limiter) as client:
        for n in range(25):
            assert (await client.cancel(f"SC-{n}")).success
    assert len(server.arrivals) == 25
    assert len(server.peers()) == 1


async def test_redirect_is_not_followed(server: LocalServer, limiter: FakeLimiter) -> None:
    """A 302 to another host is an ApiError; the credentials never travel there."""
    elsewhere: list[str] = []

    async def other(request: web.Request) -> web.StreamResponse:
        elsewhere.append(request.path)
        return web.Response()

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", other)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        server.replies.append((302, {"Location": f"http://{host}:{port}/steal"}, b""))
        async with make_client(server.base_url, limiter) as client:
            with raises_clean(ApiError) as info:
                await client.cancel(SID)
    finally:
        await runner.cleanup()
    assert type(info.value) is ApiError
    assert info.value.http_status == 302
    assert elsewhere == []
    assert len(server.arrivals) == 1


async def test_body_over_cap_is_transport_error(server: LocalServer, limiter: FakeLimiter) -> None:
    """A response body larger than 1 MiB is refused as a TransportError, read in chunks."""
    server.replies.append((200, {}, b"x" * (1024 * 1024 + 1)))
    async with make_client(server.base_url, limiter, retry=RetryPolicy(attempts=1)) as client:
        with raises_clean(TransportError, match="exceeds 1048576 bytes"):
            await client.cancel(SID)
    assert limiter.kinds() == ["acquire", "release"]


async def test_truncated_body_is_transport_error(server: LocalServer, limiter: FakeLimiter) -> None:
    """A body cut short of its Content-Length is a TransportError, not a parse error."""

    async def truncated(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": "100"})
        await response.prepare(request)
        await response.write(b'{"success": ')
        assert request.transport is not None
        request.transport.close()
        return response

    server.replies.append(truncated)
    async with make_client(server.base_url, limiter, retry=RetryPolicy(attempts=1)) as client:
        with raises_clean(TransportError):
            await client.cancel(SID)


async def test_transport_borrows_and_owns_sessions(server: LocalServer) -> None:
    """An own session is created lazily and closed; a borrowed one is left open."""
    request = Request(
        method="POST",
        url=f"{server.base_url}/schedule/k/SC-1/cancel",
        request_uri="/api/v3/schedule/k/SC-1/cancel",
        headers={"Content-Type": CONTENT_TYPE},
        body=b"{}",
    )
    async with aiohttp.ClientSession() as session:
        borrowed = AiohttpTransport(session)
        status, _, body = await borrowed.send(request, 5.0)
        assert (status, json.loads(body)["scheduleId"]) == (200, "SC-1")
        await borrowed.aclose()
        assert not session.closed
    owned = AiohttpTransport(max_body=10)
    with raises_clean(TransportError, match="exceeds 10 bytes"):
        await owned.send(request, 5.0)
    await owned.aclose()
    await owned.aclose()
    with raises_clean(RuntimeError, match="closed"):
        await owned.send(request, 5.0)
    never_used = AiohttpTransport()
    await never_used.aclose()
    with raises_clean(RuntimeError, match="closed"):
        await never_used.send(request, 5.0)


async def test_client_with_borrowed_session(server: LocalServer, limiter: FakeLimiter) -> None:
    """A client given a session uses it and leaves it open when closed."""
    async with aiohttp.ClientSession() as session:
        async with make_client(server.base_url, limiter, session=session) as client:
            assert (await client.cancel(SID)).success
        assert not session.closed
        assert not limiter.closed


# --- lifecycle, repr, logs ------------------------------------------------------------------------


async def test_aclose_is_idempotent_and_final(limiter: FakeLimiter) -> None:
    """aclose may be called twice; a closed client refuses new calls."""
    client = make_client(REMOTE, limiter)
    await client.aclose()
    await client.aclose()
    with raises_clean(ClientClosedError, match="the client is closed"):
        await client.cancel(SID)
    assert limiter.events == []  # refused before the limiter
    assert "closed=True" in repr(client)


async def test_owned_limiter_is_created_and_closed() -> None:
    """Without a limiter the client builds a RateLimiter from limits, and closes it."""
    from schedcancel import RateLimiter  # noqa: PLC0415 - the module under test's peer

    limits = RateLimits(total=7, per_schedule=3)
    client = ScheduleClient(KEY, username=USER, password=PASSWORD, limits=limits)
    assert isinstance(client.limiter, RateLimiter)
    assert client.limiter.limits == limits
    await client.aclose()
    with raises_clean(RuntimeError, match="closed"):
        await client.limiter.acquire(SID)


async def test_real_limiter_end_to_end(server: LocalServer) -> None:
    """With the real RateLimiter, sequential cancels and a 429 requeue work over one connection."""
    server.replies.append((429, {"Retry-After": "0"}, sample("rate_limited.json")))
    limits = RateLimits(total=1000, per_schedule=1000, window=1.0, guard=0.0)
    async with ScheduleClient(
        KEY, username=USER, password=PASSWORD, base_url=server.base_url, limits=limits
    ) as client:
        results = [await client.cancel(f"SC-{n}") for n in range(10)]
        stats = client.limiter.stats()
    assert all(result.success for result in results)
    assert len(server.arrivals) == 11
    assert len(server.peers()) == 1
    assert stats.in_flight == 0
    assert stats.rate_limited == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ((503, {}, b""), ServerError),
        ((200, {}, sample("html_error.html")), ResponseParseError),
        ((401, {}, b""), AuthenticationError),
        ((200, {}, b"x" * (1024 * 1024 + 1)), TransportError),
    ],
)
async def test_real_limiter_gets_every_permit_back(
    server: LocalServer, reply: tuple[int, dict[str, str], bytes], error: type[Exception]
) -> None:
    """With the real RateLimiter, a failed call leaves nothing in flight."""
    from schedcancel import RateLimiter  # noqa: PLC0415 - the module under test's peer

    limiter = RateLimiter(RateLimits(total=100, per_schedule=100))
    server.replies.append(reply)
    retry = RetryPolicy(attempts=1)
    async with make_client(server.base_url, limiter, retry=retry) as client:
        with raises_clean(error):
            await client.cancel(SID)
        stats = limiter.stats()
    assert stats.in_flight == 0
    assert stats.total_used == 1
    await limiter.aclose()


async def test_real_limiter_cancelled_send_is_released(server: LocalServer) -> None:
    """With the real RateLimiter, a call cancelled mid-send leaves nothing in flight."""
    from schedcancel import RateLimiter  # noqa: PLC0415 - the module under test's peer

    arrived = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        arrived.set()
        await server.gate.wait()
        return web.Response()

    server.replies.append(hang)
    limiter = RateLimiter()
    async with make_client(server.base_url, limiter) as client:
        task = asyncio.create_task(client.cancel(SID))
        await arrived.wait()
        assert limiter.stats().in_flight == 1
        task.cancel()
        with raises_clean(asyncio.CancelledError):
            await task
    assert limiter.stats().in_flight == 0
    await limiter.aclose()


async def test_given_limiter_is_not_closed(limiter: FakeLimiter) -> None:
    """A limiter passed in belongs to the caller and stays open."""
    async with make_client(REMOTE, limiter) as client:
        assert client.limiter is limiter
    assert not limiter.closed


async def test_repr_and_logs_hide_secrets(
    server: LocalServer, limiter: FakeLimiter, caplog: pytest.LogCaptureFixture
) -> None:
    """repr(client) and the DEBUG log of each attempt show a redacted key, never a secret."""
    server.replies.append((503, {}, b""))
    async with make_client(server.base_url, limiter) as client:
        text = repr(client)
        await client.cancel(SID)
    assert "APIK***" in text
    assert "signed=True" in text
    assert server.base_url in text
    assert_clean(text)
    messages = [record.getMessage() for record in caplog.records]
    assert f"cancel {SID} key=APIK*** attempt 1: HTTP 503" in messages
    assert f"cancel {SID} key=APIK*** attempt 2: HTTP 200" in messages
    assert any("retry 1 in" in message for message in messages)
    for record in caplog.records:
        assert record.name.startswith("schedcancel.")


class RecordingTransport:
    """A transport of the test's own: answers every request with one success, records it."""

    def __init__(self) -> None:
        self.sent: list[tuple[Request, float]] = []
        self.closed = False

    async def send(
        self,
        request: Request,
        timeout: float,  # noqa: ASYNC109 - the Transport protocol's signature
    ) -> tuple[int, Mapping[str, str], bytes]:
        self.sent.append((request, timeout))
        schedule_id = request.url.split("/")[-2]
        body = {"success": True, "scheduleId": schedule_id, "newStatus": "CANCELLED"}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    async def aclose(self) -> None:
        self.closed = True


async def test_a_transport_of_ones_own_sends_every_request_and_is_closed() -> None:
    """transport= replaces aiohttp: the client builds and signs, the transport sends."""
    transport = RecordingTransport()
    assert isinstance(transport, Transport)
    async with make_client(REMOTE, FakeLimiter(), transport=transport, timeout=7.5) as client:
        result = await client.cancel(SID)
    assert result.is_cancelled
    ((request, timeout),) = transport.sent
    assert timeout == 7.5
    assert request.method == "POST"
    assert request.url == cancel_url(REMOTE)
    assert request.headers["X-Signature"]
    assert transport.closed


async def test_the_clock_dates_and_paces_the_calls(server: LocalServer) -> None:
    """The Clock's wall time is the signed Date; its sleep is the retry backoff."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    server.replies.extend([(503, {}, b"")])
    clock = Clock(wall=lambda: NOW, sleep=sleep)
    retry = RetryPolicy(attempts=2, backoff_initial=2.0, jitter=lambda: 0.25)
    async with ScheduleClient(
        KEY,
        username=USER,
        password=PASSWORD,
        shared_secret=SECRET,
        base_url=server.base_url,
        limiter=FakeLimiter(),
        retry=retry,
        clock=clock,
    ) as client:
        await client.cancel(SID)
    assert slept == [0.5]
    assert [arrival.headers["Date"] for arrival in server.arrivals] == [http_date(NOW)] * 2
