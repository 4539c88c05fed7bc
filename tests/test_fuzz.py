"""Fuzzing the response side: parsing, Retry-After and the transport never fail off the error tree.

Whatever a server (or anything between it and us) sends back, the client
answers with a :class:`ScheduleResult`, a number of seconds, None, or an
exception from :mod:`schedcancel.errors`: never a KeyError, TypeError,
JSONDecodeError, RecursionError or OverflowError, never a hang, never an
unbounded read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gzip
import json
import math
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schedcancel import (
    AiohttpTransport,
    ApiError,
    RateLimitedError,
    RateLimits,
    ResponseParseError,
    RetryPolicy,
    ScheduleClient,
    ScheduleError,
    ScheduleResult,
    TransportError,
)
from schedcancel._protocol.wire import (
    MAX_BODY_BYTES,
    Operation,
    RequestBuilder,
    parse_response,
    parse_retry_after,
    response_retry_after,
)

T = TypeVar("T")

PASSWORD = "PW-SENTINEL-7f3a"
SECRET = "SS-SENTINEL-91bc"
API_KEY = "AK-SENTINEL-0d2e-long-connector-key"
REDACT = (API_KEY, PASSWORD, SECRET)
NOW = datetime(2026, 4, 28, 15, 23, 40, tzinfo=UTC)
#: The transport cap used against the raw server (small, so a fuzzed body can exceed it).
CAP = 4096
#: Generous bound on a single pure call: the hang detector, not a timing assertion.
HANG = 10.0

FUZZ = settings(
    max_examples=150,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def bounded(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``function`` in a worker thread and fail (instead of hanging) if it never returns."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(function, *args, **kwargs)
        try:
            return future.result(timeout=HANG)
        except concurrent.futures.TimeoutError:  # pragma: no cover - only when the code hangs
            pytest.fail(f"{function.__name__} did not return within {HANG} s")


# -- strategies ----------------------------------------------------------------------------

WIRE_KEYS = (
    "success",
    "scheduleId",
    "registrationUuid",
    "merchantMetaData",
    "oldStatus",
    "newStatus",
    "scheduledAt",
    "errorMessage",
    "errorCode",
    "adapterMessage",
    "adapterCode",
    "details",
)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(
        [
            "true",
            "false",
            "ACTIVE",
            "CANCELLED",
            "CREATE-PENDING",
            "NOT-A-STATUS",
            "7070",
            " 7040 ",
            "99999999999",
            "2019-10-05T14:26:11+00:00",
            "2019-10-05T14:26:11Z",
            "2019-13-45T99:99:99+00:00",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+23:59",
            PASSWORD,
            f"echo {API_KEY} and {SECRET}",
        ]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
schedule_like = st.fixed_dictionaries(
    {},
    optional=dict.fromkeys(WIRE_KEYS, json_values),
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Response bodies: schedule-like JSON with wrong types, any JSON, cut JSON, or raw bytes."""
    kind = draw(st.sampled_from(["schedule", "json", "cut", "bytes", "constant", "encoded"]))
    if kind == "schedule":
        return json.dumps(draw(schedule_like)).encode()
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "cut":
        data = json.dumps(draw(schedule_like)).encode()
        return data[: draw(st.integers(0, len(data)))]
    if kind == "constant":
        # Python's json writes these, and they are not JSON.
        value = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]))
        return f'{{"success": true, "errorCode": {value}}}'.encode()
    if kind == "encoded":
        text = json.dumps(draw(schedule_like))
        return text.encode(
            draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "utf-8-sig"])), "replace"
        )
    return draw(st.binary(max_size=300))


retry_after_values = st.one_of(
    st.none(),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "",
            "   ",
            "inf",
            "-inf",
            "nan",
            "1e309",
            "9" * 400,
            "0x10",
            "1_000",
            "١٢",  # Arabic-Indic digits: int() reads them, HTTP does not allow them
            "30 ",
            "+5",
            "-5",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wed, 21 Oct 99999 07:28:00 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Mon, 01 Jan 0001 00:00:00 GMT",
            "Mon, 01 Jan 0001 00:00:00 -2359",
            "Fri, 31 Dec 9999 23:59:59 +2359",
            "Wed, 21 Oct 2015 07:28:00 +9999",
            "Wed, 32 Oct 2015 07:28:00 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ]
    ),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: format_datetime(d, usegmt=True)),
    st.text(max_size=40),
)
date_values = st.one_of(
    st.none(),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: format_datetime(d, usegmt=True)),
    st.datetimes().map(format_datetime),
    retry_after_values,
)


@st.composite
def header_maps(draw: st.DrawFn) -> dict[str, str]:
    """Response headers with odd Retry-After and Date values, in odd letter cases."""
    headers: dict[str, str] = draw(
        st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=20), max_size=3)
    )
    for name, strategy in (("Retry-After", retry_after_values), ("Date", date_values)):
        value = draw(strategy)
        if value is not None:
            headers[draw(st.sampled_from([name, name.lower(), name.upper()]))] = value
    return headers


statuses = st.one_of(
    st.sampled_from([200, 200, 200, 201, 204, 301, 400, 401, 403, 404, 429, 500, 502, 503, 504]),
    st.integers(min_value=-1, max_value=1000),
)


# -- pure parsing --------------------------------------------------------------------------


def outcome(function: Callable[..., T], *args: Any, **kwargs: Any) -> T | ScheduleError:
    """Call ``function``; return what it returned, or the ScheduleError it raised."""
    try:
        return function(*args, **kwargs)
    except ScheduleError as exc:
        return exc


def assert_no_secret(exc: BaseException) -> None:
    """Assert that an exception's message, repr, notes and extra fields show no credential."""
    notes = " ".join(getattr(exc, "__notes__", []))
    text = (
        f"{exc} {exc!r} {notes} {getattr(exc, 'excerpt', '')} {getattr(exc, 'error_message', '')}"
    )
    for secret in REDACT:
        assert secret not in text


def check_parse(status: int, headers: dict[str, str], body: bytes) -> ScheduleResult | None:
    """Parse and check the outcome's type; None when it raised a ScheduleError."""
    got = outcome(
        parse_response, status, headers, body, now=NOW, redact=REDACT, operation=Operation.CANCEL
    )
    if isinstance(got, ScheduleError):
        # Non-200 is always an ApiError; a 200 that raises is a parse or auth error.
        assert status == 200 or isinstance(got, ApiError), got
        if isinstance(got, RateLimitedError):
            assert got.retry_after is None or (
                math.isfinite(got.retry_after) and got.retry_after >= 0
            )
        assert_no_secret(got)
        return None
    assert status == 200
    assert isinstance(got, ScheduleResult)
    assert isinstance(got.success, bool)
    assert got.error_code is None or type(got.error_code) is int
    assert got.scheduled_at is None or got.scheduled_at.tzinfo is not None
    for field in (got.error_message, got.adapter_message):
        for secret in REDACT:
            assert field is None or secret not in field
    return got


@FUZZ
@given(status=statuses, headers=header_maps(), body=bodies())
@example(status=200, headers={}, body=b"")
@example(status=200, headers={}, body=b"\xff\xfe\x00")
@example(status=429, headers={"Retry-After": "1e309"}, body=b"[]")
@example(status=429, headers={"retry-after": "9" * 400, "DATE": "garbage"}, body=b"{")
@example(
    status=200, headers={}, body=b'{"success": true, "scheduledAt": "9999-12-31T23:59:59-23:59"}'
)
@example(status=200, headers={}, body=b'{"success": "TRUE"}')
@example(status=200, headers={}, body=b'{"success": false, "errorCode": 1004}')
def test_parse_returns_a_result_or_raises_from_the_tree(
    status: int, headers: dict[str, str], body: bytes
) -> None:
    """Any status, headers and body give a ScheduleResult (200 only) or a ScheduleError."""
    check_parse(status, headers, body)


@FUZZ
@given(headers=header_maps(), now=st.datetimes(timezones=st.just(UTC)))
def test_response_retry_after_is_none_or_a_finite_non_negative_number(
    headers: dict[str, str], now: datetime
) -> None:
    """Retry-After in any form, with any Date, reads as None or finite seconds >= 0."""
    value = response_retry_after(headers, now=now)
    assert value is None or (type(value) is float and math.isfinite(value) and value >= 0)


@FUZZ
@given(
    value=retry_after_values,
    now=st.datetimes(
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))]
        )
    ),
)
def test_parse_retry_after_never_overflows(value: str | None, now: datetime) -> None:
    """parse_retry_after survives absurd numbers and dates at the ends of the calendar."""
    seconds = parse_retry_after(value, now=now)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


def test_retry_after_http_date_is_measured_from_the_response_date() -> None:
    """An HTTP-date Retry-After counts from the response's Date, not from our clock."""
    headers = {
        "Date": "Tue, 28 Apr 2026 15:23:40 GMT",
        "Retry-After": "Tue, 28 Apr 2026 15:24:10 GMT",
    }
    # Our clock is a day off either way; the answer does not move.
    for skew in (timedelta(days=-1), timedelta(0), timedelta(days=1)):
        assert response_retry_after(headers, now=NOW + skew) == 30.0


def _deep(depth: int) -> bytes:
    return b'{"success": true, "x": ' + b"[" * depth + b"]" * depth + b"}"


PATHOLOGICAL: list[tuple[str, int, bytes]] = [
    ("deep-array", 200, b"[" * 200_000),
    ("deep-object", 200, b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
    ("deep-balanced", 200, _deep(50_000)),
    ("deep-in-error", 500, b'{"errorCode": ' + b"[" * 100_000),
    ("huge-int", 200, b'{"success": true, "errorCode": ' + b"9" * 5000 + b"}"),
    ("huge-int-code", 500, b'{"errorCode": ' + b"9" * 5000 + b"}"),
    ("huge-float", 200, b'{"success": true, "errorCode": 1' + b"0" * 400 + b".5}"),
    ("over-cap", 200, b'{"success": true, "x": "' + b"a" * MAX_BODY_BYTES + b'"}'),
    (
        "at-cap-message",
        200,
        b'{"success": false, "errorMessage": "' + b"m" * (MAX_BODY_BYTES - 50) + b'"}',
    ),
    (
        "many-keys",
        200,
        json.dumps({f"k{i}": i for i in range(60_000)} | {"success": True}).encode(),
    ),
    ("nul-bytes", 200, b"\x00" * 10_000),
    ("bom", 200, b'\xef\xbb\xbf{"success": true}'),
    ("utf16", 200, '{"success": true}'.encode("utf-16")),
    ("lone-surrogate", 200, b'{"success": true, "scheduleId": "\\ud800"}'),
    ("long-status-string", 200, b'{"success": true, "newStatus": "' + b"X" * 500_000 + b'"}'),
    ("date-far", 200, b'{"success": true, "scheduledAt": "99999-01-01T00:00:00+00:00"}'),
    ("date-huge-offset", 200, b'{"success": true, "scheduledAt": "2019-10-05T14:26:11+99:00"}'),
]


@pytest.mark.parametrize(
    ("status", "body"), [(s, b) for _, s, b in PATHOLOGICAL], ids=[n for n, _, _ in PATHOLOGICAL]
)
def test_pathological_bodies_stay_on_the_error_tree(status: int, body: bytes) -> None:
    """Deep, huge, NUL-filled and oddly encoded bodies parse or raise from the tree, quickly."""
    bounded(
        check_parse,
        status,
        {"Retry-After": "1e309", "Date": "Fri, 31 Dec 9999 23:59:59 +2359"},
        body,
    )


def test_over_cap_body_is_not_decoded() -> None:
    """A 200 body over the cap is refused as not JSON, with a short excerpt."""
    body = b'{"success": true, "pad": "' + b"a" * MAX_BODY_BYTES + b'"}'
    with pytest.raises(ResponseParseError) as info:
        parse_response(200, {}, body, now=NOW, operation=Operation.CANCEL)
    assert len(info.value.excerpt) <= 210


# -- the transport and the client against a raw socket that sends fuzzed bytes -------------


@st.composite
def raw_responses(draw: st.DrawFn) -> bytes:
    """Whole HTTP/1.1 responses, well-formed or not: status lines, framing, encodings, bodies."""
    status_line = draw(
        st.one_of(
            st.sampled_from([200, 301, 429, 500, 503]).map(lambda s: f"HTTP/1.1 {s} X".encode()),
            st.sampled_from(
                [
                    b"HTTP/1.1 200 OK",
                    b"HTTP/1.0 200 OK",
                    b"HTTP/1.1 999 Weird",
                    b"HTTP/1.1 20 OK",
                    b"HTTP/2 200",
                    b"ICY 200 OK",
                    b"",
                    b"HTTP/1.1 200 OK\x00",
                    b"HTTP/1.1 200 " + b"x" * 9000,
                ]
            ),
            st.binary(max_size=30),
        )
    )
    body = draw(bodies() | st.binary(max_size=2 * CAP) | st.just(b"z" * (CAP + 1)))
    encoding = draw(
        st.sampled_from(["identity", "gzip", "gzip-bomb", "gzip-garbage", "deflate-garbage"])
    )
    headers: list[bytes] = [b"Content-Type: application/json"]
    if encoding == "gzip":
        body = gzip.compress(body)
        headers.append(b"Content-Encoding: gzip")
    elif encoding == "gzip-bomb":
        body = gzip.compress(b"\x00" * (4 * 1024 * 1024))
        headers.append(b"Content-Encoding: gzip")
    elif encoding == "gzip-garbage":
        headers.append(b"Content-Encoding: gzip")
    elif encoding == "deflate-garbage":
        headers.append(b"Content-Encoding: deflate")
    framing = draw(
        st.sampled_from(["length", "short", "long", "none", "chunked", "bad-chunked", "bad-length"])
    )
    if framing == "length":
        headers.append(b"Content-Length: %d" % len(body))
    elif framing == "short":
        headers.append(b"Content-Length: %d" % (len(body) + 10))
    elif framing == "long":
        headers.append(b"Content-Length: %d" % max(0, len(body) - 1))
    elif framing == "bad-length":
        headers.append(
            draw(
                st.sampled_from(
                    [
                        b"Content-Length: -1",
                        b"Content-Length: 1e3",
                        b"Content-Length: 99999999999999999999999",
                    ]
                )
            )
        )
    elif framing in ("chunked", "bad-chunked"):
        headers.append(b"Transfer-Encoding: chunked")
        size = (
            draw(st.sampled_from([b"%x" % len(body), b"zz", b"ffffffffffffffffff"]))
            if framing == "bad-chunked"
            else b"%x" % len(body)
        )
        body = size + b"\r\n" + body + b"\r\n0\r\n\r\n"
    extra = draw(
        st.lists(
            st.one_of(
                st.sampled_from(
                    [
                        b"Retry-After: 1e309",
                        b"Retry-After: " + b"9" * 400,
                        b"Date: Fri, 31 Dec 9999 23:59:59 +2359",
                        b"Location: http://127.0.0.1:1/elsewhere",
                        b"X-Long: " + b"h" * 20_000,
                        b"No colon here",
                        b"Bad\x00Name: x",
                        b" folded: continuation",
                        b"Set-Cookie: a=b",
                    ]
                ),
                st.binary(max_size=40),
            ),
            max_size=3,
        )
    )
    head = b"\r\n".join([status_line, *headers, *extra])
    return head + b"\r\n\r\n" + body


class RawServer:
    """A TCP server on 127.0.0.1 that reads one request and answers with the given bytes."""

    def __init__(self, response: bytes) -> None:
        self.response = response
        self.requests = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def base_url(self) -> str:
        """The API base for ScheduleClient."""
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/api/v3"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(2)  # the body, "{}"
            self.requests += 1
            writer.write(self.response)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            # The client may have reset the connection (it stops reading at the cap).
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _send_raw(response: bytes) -> tuple[int, int]:
    """Send one cancel through the transport to a raw server; (status, body length) or raises."""
    async with RawServer(response) as server:
        transport = AiohttpTransport(max_body=CAP)
        builder = RequestBuilder(
            base_url=server.base_url,
            api_key=API_KEY,
            username="api-user",
            password=PASSWORD,
            shared_secret=SECRET,
        )
        request = builder.build(Operation.CANCEL, "SC-1", date=NOW)
        try:
            status, headers, body = await transport.send(request, 5.0)
        finally:
            await transport.aclose()
        # What came back is usable by the parser, and within the cap.
        assert len(body) <= CAP
        check_parse(status, dict(headers), body)
        return status, len(body)


@settings(FUZZ, max_examples=120)
@given(response=raw_responses())
@example(
    response=b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\n"
    + b"\x1f\x8b"
    + b"x" * 8
)
@example(response=b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n{}")
def test_transport_returns_a_capped_response_or_a_transport_error(response: bytes) -> None:
    """Any bytes from the server give (status, headers, body <= cap) or TransportError."""
    got = outcome(asyncio.run, _send_raw(response))
    assert isinstance(got, tuple) or type(got) is TransportError, got
    if isinstance(got, TransportError):
        assert_no_secret(got)


def test_gzip_bomb_is_capped_after_decompression() -> None:
    """A 64 KiB gzip body that inflates to 64 MiB is refused at the cap, never inflated whole."""
    bomb = gzip.compress(b"\x00" * (64 * 1024 * 1024))
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
    tracemalloc.start()
    try:
        with pytest.raises(TransportError, match="exceeds"):
            asyncio.run(_send_raw(head % len(bomb) + bomb))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The bomb itself is 64 KiB; the inflated 64 MiB never exist at once.
    assert peak < 16 * 1024 * 1024


async def _cancel_raw(response: bytes) -> ScheduleResult:
    async with (
        RawServer(response) as server,
        ScheduleClient(
            API_KEY,
            username="api-user",
            password=PASSWORD,
            shared_secret=SECRET,
            base_url=server.base_url,
            retry=RetryPolicy(attempts=1),
            limits=RateLimits(max_rate_limited=0),
            timeout=5.0,
        ) as client,
    ):
        return await client.cancel("SC-1")


@settings(FUZZ, max_examples=60)
@given(response=raw_responses())
def test_client_cancel_gives_a_result_or_an_error_from_the_tree(response: bytes) -> None:
    """End to end, any server bytes end in a ScheduleResult or a ScheduleError."""
    got = outcome(asyncio.run, _cancel_raw(response))
    assert isinstance(got, ScheduleResult | ScheduleError)
    if isinstance(got, ScheduleError):
        assert_no_secret(got)
