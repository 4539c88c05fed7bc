"""Tests for the sans-I/O protocol: validation, request building, signatures, response parsing."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from schedcancel import (
    ApiError,
    AuthenticationError,
    ConfigurationError,
    EndpointNotFoundError,
    InvalidParameterError,
    Operation,
    RateLimitedError,
    Request,
    ResponseMismatchError,
    ResponseParseError,
    ScheduleResult,
    ScheduleStatus,
    ServerError,
)
from schedcancel._protocol import wire as protocol
from schedcancel._protocol.wire import (
    _NOT_JSON,
    CONTENT_TYPE,
    DEFAULT_BASE_URL,
    MAX_BODY_BYTES,
    USER_AGENT,
    Hidden,
    RequestBuilder,
    _decode,
    basic_auth,
    http_date,
    parse_response,
    parse_retry_after,
    redact_key,
    response_retry_after,
    scrub,
    signature,
    validate_api_key,
    validate_schedule_id,
)

SAMPLES = Path(__file__).parent / "samples"
SID = "SC-1234-1234-1234-1234-1234-1234"
JAVA_DATE = "Tue, 21 Jul 2020 13:15:03 GMT"
KEY_SENTINEL = "APIKEY-SENTINEL-0123456789abcdef"
#: The time parsing is told it is (it reads no clock of its own).
NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)


def sample(name: str) -> bytes:
    """Return the bytes of a canned response body from tests/samples."""
    return (SAMPLES / name).read_bytes()


def _build(*, schedule_id: str = SID, **overrides: Any) -> Request:
    """Build a cancel request with the Java library's test data, overridable, as the client does.

    The scheduleId is checked first (``RequestBuilder.build`` takes it checked); ``date`` is
    the request's, the other overrides are the builder's.
    """
    date = overrides.pop("date", parsedate_to_datetime(JAVA_DATE))
    settings: dict[str, Any] = {
        "base_url": DEFAULT_BASE_URL,
        "api_key": "my-api-key",
        "username": "anyApiUser",
        "password": "myPassword",
        "shared_secret": "my-shared-secret",
        **overrides,
    }
    return RequestBuilder(**settings).build(
        Operation.CANCEL, validate_schedule_id(schedule_id), date=date
    )


def parse_cancel(status: int, headers: Mapping[str, str], body: bytes, **kw: Any) -> ScheduleResult:
    """Parse an answer to a cancel: ``parse_response`` for ``Operation.CANCEL``."""
    return parse_response(status, headers, body, operation=Operation.CANCEL, **kw)


# --- validation -----------------------------------------------------------------------------

BAD_IDS: list[object] = [
    None,
    b"SC-1",
    123,
    "",
    "SC/1",
    "..",
    ".",
    "SC?1",
    "SC#1",
    "SC%2F1",
    "SC 1",
    " SC1",
    "SC1\n",
    "SC\t1",
    "SC+1",
    "SC@1",
    "SC:1",
    "SCé1",
    "SC\x001",
    "SC;1",
    "SC&1",
    "SC=1",
    "SC\\1",
    "ＳＣ１",  # noqa: RUF001 - fullwidth look-alikes must be refused
]


@pytest.mark.parametrize("value", BAD_IDS)
def test_validate_schedule_id_rejects(value: object) -> None:
    """Every malformed scheduleId raises InvalidParameterError (also a ValueError)."""
    with pytest.raises(InvalidParameterError):
        validate_schedule_id(value)
    with pytest.raises(ValueError, match="scheduleId"):
        validate_schedule_id(value)


@pytest.mark.parametrize("value", BAD_IDS)
def test_validate_api_key_rejects(value: object) -> None:
    """Every malformed apiKey raises InvalidParameterError naming the apiKey."""
    with pytest.raises(InvalidParameterError, match="apiKey"):
        validate_api_key(value)


def test_length_limits_are_exact() -> None:
    """apiKey allows 50 characters and scheduleId 32; one more is refused."""
    assert validate_api_key("k" * 50) == "k" * 50
    assert validate_schedule_id("s" * 32) == "s" * 32
    with pytest.raises(InvalidParameterError, match="51 characters"):
        validate_api_key("k" * 51)
    with pytest.raises(InvalidParameterError, match="33 characters"):
        validate_schedule_id("s" * 33)


@pytest.mark.parametrize("value", ["a", "SC-1234", "A.b_c~d-9", "...x", "x..", "~"])
def test_validate_accepts_unreserved(value: str) -> None:
    """Values made of unreserved characters pass unchanged, dots included when not alone."""
    assert validate_schedule_id(value) == value
    assert validate_api_key(value) == value


@pytest.mark.parametrize(
    "value", [KEY_SENTINEL + "/", KEY_SENTINEL + "\n", KEY_SENTINEL * 2, KEY_SENTINEL + "é"]
)
def test_api_key_message_never_echoes_the_key(value: str) -> None:
    """An invalid apiKey's message shows a redacted form, not the key."""
    with pytest.raises(InvalidParameterError) as info:
        validate_api_key(value)
    assert KEY_SENTINEL not in str(info.value)
    assert KEY_SENTINEL not in repr(info.value)
    assert redact_key(value) in str(info.value)


def test_bad_character_is_named_with_position() -> None:
    """The message says which character is wrong and where."""
    with pytest.raises(InvalidParameterError, match=r"'/' at position 2"):
        validate_schedule_id("SC/1")


@pytest.mark.parametrize(
    ("key", "expected"),
    [("", "***"), ("abc", "***"), ("abcdefgh", "ab***"), ("connector-api-key", "conn***")],
)
def test_redact_key(key: str, expected: str) -> None:
    """redact_key keeps at most a quarter of the key and at most four characters."""
    assert redact_key(key) == expected


def test_scrub_replaces_longest_secret_first() -> None:
    """scrub removes every secret, a secret containing another one included."""
    text = "key=abcdefgh-longer pass=abcdefgh"
    out = scrub(text, ["abcdefgh", "abcdefgh-longer", ""])
    assert "abcdefgh" not in out
    assert out == "key=abc*** pass=ab***"


def test_scrub_shows_no_character_of_a_hidden_secret() -> None:
    """A password or secret is replaced whole; only an apiKey keeps a short prefix."""
    out = scrub("u:Tr0ub4dor&3 key=connector-key", ["connector-key", Hidden("Tr0ub4dor&3")])
    assert out == "u:*** key=con***"
    assert "Tr0u" not in out
    assert "Tr0ub4dor" not in repr(Hidden("Tr0ub4dor&3"))


def test_a_page_echoing_the_credentials_is_excerpted_without_them() -> None:
    """A proxy page that echoes the request's headers and password shows neither, in any form."""
    builder = RequestBuilder(
        base_url="https://h.example/api/v3",
        api_key="test-api-key",
        username="api-user",
        password="S3cret-Passw0rd",
        shared_secret="whsec-9f8e7d6c",
    )
    request = builder.build(Operation.CANCEL, "SC-1", date=datetime.now(UTC))
    echoed = f"<pre>Authorization: {request.headers['Authorization']}\n"
    echoed += "u:S3cret-Passw0rd s:whsec-9f8e7d6c</pre>"
    with pytest.raises(ResponseParseError) as caught:
        parse_cancel(200, {}, echoed.encode(), now=NOW, redact=request.redactions)
    text = str(caught.value)
    token = request.headers["Authorization"].removeprefix("Basic ")
    assert "Basic ***" in text
    for leaked in (token, token[:4], "S3cr", "whse"):
        assert leaked not in text


# --- signatures and headers -------------------------------------------------------------------


def test_signature_vector_docs_tool() -> None:
    """The docs' signature tool vector (empty secret, empty body) is reproduced."""
    got = signature(
        "",
        method="POST",
        body=b"",
        content_type=CONTENT_TYPE,
        date="Tue, 28 Apr 2026 15:23:40 GMT",
        request_uri="/api/v3/transaction/YOUR-API-KEY-HERE/debit",
    )
    assert got == (
        "4ICq+hfHFA81dAJHcXoP2/Pb+nkp9GljLe2S+REN0vMBhbQYNQUHIw/YxUTEIWS5Uu5WgdDEc7keMtqS0mpnAA=="
    )


def test_signature_vector_java_library() -> None:
    """The vector from IXOPAY's Java signing library is reproduced."""
    got = signature(
        "my-shared-secret",
        method="POST",
        body=b'{"merchantTransactionId":"2019-09-02-0004","amount":"9.99","currency":"EUR"}',
        content_type=CONTENT_TYPE,
        date=JAVA_DATE,
        request_uri="/api/v3/transaction/my-api-key/debit",
    )
    assert got == (
        "pJUnPq6NQFmpPEG0VmnwspAVeTA7uC+pFP0nYYwua3Diw7GuW+brdk4UR6ma70EstDs8mrxWfqh1KU0xfNC69g=="
    )


def test_signature_vector_cancel_request() -> None:
    """A built cancel request carries the derived cancel vector's Date and X-Signature."""
    request = _build()
    assert request.headers["Date"] == JAVA_DATE
    assert request.headers["X-Signature"] == (
        "w2xO8dAXM16+VPmYfTaQhyeoKoG9L9HsZVsBUaEEe/6BS/apDZIGy/qcF1KwlBE08jBMuV1QmpJR7/NjUY95Mg=="
    )


def test_signature_hashes_the_empty_body() -> None:
    """The empty body's SHA-512 is the well-known cf83e135... digest (GET-style requests)."""
    assert hashlib.sha512(b"").hexdigest().startswith("cf83e135")
    assert hashlib.sha512(b"").hexdigest().endswith("927da3e")


def test_basic_auth_vector() -> None:
    """Basic auth is base64 of user:pass with no trailing newline (docs step 4)."""
    assert basic_auth("anyApiUser", "myPassword") == "Basic YW55QXBpVXNlcjpteVBhc3N3b3Jk"


def test_basic_auth_encodes_utf8() -> None:
    """Non-ASCII credentials are encoded as UTF-8 before base64."""
    token = basic_auth("usér", "pässword").removeprefix("Basic ")
    assert base64.b64decode(token).decode() == "usér:pässword"


def test_http_date_is_gmt_rfc1123() -> None:
    """Dates are RFC 1123 with GMT, converted from any offset."""
    moment = datetime(2020, 7, 21, 15, 15, 3, tzinfo=timezone(timedelta(hours=2)))
    assert http_date(moment) == JAVA_DATE


def test_http_date_rejects_naive() -> None:
    """A naive datetime cannot be put in a Date header."""
    with pytest.raises(InvalidParameterError, match="timezone-aware"):
        http_date(datetime(2020, 7, 21, 13, 15, 3))


def test_build_request_shape() -> None:
    """The cancel request is a POST of {} to the encoded path with every documented header."""
    request = _build()
    assert request.method == "POST"
    assert request.url == (f"https://gateway.ixopay.com/api/v3/schedule/my-api-key/{SID}/cancel")
    assert request.request_uri == f"/api/v3/schedule/my-api-key/{SID}/cancel"
    assert request.body == b"{}"
    assert dict(request.headers) == {
        "Content-Type": "application/json; charset=utf-8",
        "Accept": "application/json",
        "Accept-Encoding": "gzip, deflate",
        "Authorization": "Basic YW55QXBpVXNlcjpteVBhc3N3b3Jk",
        "User-Agent": USER_AGENT,
        "Date": JAVA_DATE,
        "X-Signature": (
            "w2xO8dAXM16+VPmYfTaQhyeoKoG9L9HsZVsBUaEEe/6BS/apDZIGy/qcF1KwlBE08jBMuV1QmpJR7/NjUY95Mg=="
        ),
    }
    assert USER_AGENT.startswith("schedcancel/")


def test_build_request_unsigned_has_no_date_or_signature() -> None:
    """Without a shared secret, neither Date nor X-Signature is sent."""
    request = _build(shared_secret=None)
    assert "Date" not in request.headers
    assert "X-Signature" not in request.headers


def test_build_request_trailing_slash_and_loopback_base() -> None:
    """A trailing slash on the base URL does not double up, and ports stay out of the URI."""
    request = _build(base_url="http://127.0.0.1:8080/api/v3/")
    assert request.url == f"http://127.0.0.1:8080/api/v3/schedule/my-api-key/{SID}/cancel"
    assert request.request_uri == f"/api/v3/schedule/my-api-key/{SID}/cancel"


def test_build_request_headers_are_read_only() -> None:
    """The request is frozen: its headers cannot be changed after signing."""
    request = _build()
    with pytest.raises(TypeError):
        request.headers["X-Signature"] = "forged"  # type: ignore[index]


@pytest.mark.parametrize("field", ["api_key", "schedule_id"])
def test_build_request_validates(field: str) -> None:
    """A request is never built from an invalid apiKey or scheduleId."""
    with pytest.raises(InvalidParameterError):
        _build(**{field: "../x"})


_UNRESERVED_TEXT = st.text("abcXYZ019._~-", min_size=1, max_size=32).filter(lambda v: v.strip("."))
_BASES = st.sampled_from(
    [
        DEFAULT_BASE_URL,
        "https://gateway.ixopay.com/api/v3/",
        "http://127.0.0.1:8080/api/v3",
        "http://[::1]:8080/base/api/v3//",
        "https://host.example/a%2Fb/api/v3",
        "https://host.example/api/v3?tenant=1",
        "https://host.example/api/v3#frag",
        "https://host.example",
        "relative/api/v3",
    ]
)


@given(
    base_url=_BASES,
    api_key=_UNRESERVED_TEXT,
    schedule_id=_UNRESERVED_TEXT,
    shared_secret=st.none() | st.text(min_size=1, max_size=20),
)
def test_builder_matches_the_request_formula(
    base_url: str, api_key: str, schedule_id: str, shared_secret: str | None
) -> None:
    """A builder's request has the URL, signed URI and headers of the one-off formula."""
    date = parsedate_to_datetime(JAVA_DATE)
    builder = RequestBuilder(
        base_url=base_url,
        api_key=api_key,
        username="anyApiUser",
        password="myPassword",
        shared_secret=shared_secret,
    )
    request = builder.build(Operation.CANCEL, schedule_id, date=date)
    url = base_url.rstrip("/") + f"/schedule/{api_key}/{schedule_id}/cancel"
    assert request.url == url
    assert request.request_uri == urlsplit(url).path
    expected = {
        "Content-Type": CONTENT_TYPE,
        "Accept": "application/json",
        "Accept-Encoding": "gzip, deflate",
        "Authorization": basic_auth("anyApiUser", "myPassword"),
        "User-Agent": USER_AGENT,
    }
    if shared_secret is not None:
        expected["Date"] = JAVA_DATE
        expected["X-Signature"] = signature(
            shared_secret,
            method="POST",
            body=b"{}",
            content_type=CONTENT_TYPE,
            date=JAVA_DATE,
            request_uri=urlsplit(url).path,
        )
    assert dict(request.headers) == expected
    token = expected["Authorization"].removeprefix("Basic ")
    assert request.redactions == (api_key, "myPassword", token, *filter(None, [shared_secret]))
    assert [isinstance(r, Hidden) for r in request.redactions] == [False] + [True] * (
        len(request.redactions) - 1
    )


def test_builder_validates_the_key_and_hides_secrets() -> None:
    """A builder refuses a bad apiKey and its repr shows no credentials and no whole key."""
    with pytest.raises(InvalidParameterError, match="apiKey"):
        RequestBuilder(
            base_url=DEFAULT_BASE_URL, api_key="a/b", username="u", password="p", shared_secret=None
        )
    builder = RequestBuilder(
        base_url=DEFAULT_BASE_URL,
        api_key=KEY_SENTINEL,
        username="USER-SENTINEL",
        password="PASSWORD-SENTINEL-1",
        shared_secret="SECRET-SENTINEL-1",
    )
    text = repr(builder)
    assert "signed=True" in text
    assert redact_key(KEY_SENTINEL) in text
    for secret in (KEY_SENTINEL, "PASSWORD-SENTINEL-1", "SECRET-SENTINEL-1", "USER-SENTINEL"):
        assert secret not in text


def test_builder_requests_share_nothing_mutable() -> None:
    """Two requests from one builder have their own read-only headers and fresh signatures."""
    builder = RequestBuilder(
        base_url=DEFAULT_BASE_URL, api_key="k", username="u", password="p", shared_secret="s"
    )
    first = builder.build(Operation.CANCEL, "SC-1", date=parsedate_to_datetime(JAVA_DATE))
    later = builder.build(
        Operation.CANCEL, "SC-1", date=parsedate_to_datetime(JAVA_DATE) + timedelta(seconds=1)
    )
    assert first.headers["Date"] != later.headers["Date"]
    assert first.headers["X-Signature"] != later.headers["X-Signature"]
    with pytest.raises(TypeError):
        first.headers["Date"] = "forged"  # type: ignore[index]


def test_request_repr_hides_secrets() -> None:
    """The request's repr shows neither credentials, signature nor the whole apiKey."""
    request = _build(
        api_key=KEY_SENTINEL, password="PASSWORD-SENTINEL-1", shared_secret="SECRET-SENTINEL-1"
    )
    text = repr(request)
    assert "Authorization" in text
    assert "<redacted>" in text
    for secret in (
        KEY_SENTINEL,
        "PASSWORD-SENTINEL-1",
        "SECRET-SENTINEL-1",
        request.headers["Authorization"],
        request.headers["X-Signature"],
    ):
        assert secret not in text
    assert KEY_SENTINEL not in request.log_url
    assert request.scrub(f"echo {KEY_SENTINEL}") == f"echo {redact_key(KEY_SENTINEL)}"


# --- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("30", 30.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", None),
        ("-0", None),
        ("+5", None),
        ("-1.5", None),
        ("5 s", None),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 -0000", 30.0),
        ("Wed, 21 Oct 2015 09:28:10 +0200", 10.0),
        ("soon", None),
        ("30s", None),
        ("1e3", None),
        ("9" * 400, None),
        ("Wed, 99 Oct 2015 07:28:30 GMT", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After is read as seconds or an HTTP-date; a past date is 0; a negative or signed
    number is unreadable like garbage (None, as if absent), never obeyed as 0."""
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_keeps_absurd_values_for_the_limiter_to_cap() -> None:
    """A huge but finite Retry-After is returned as is; the limiter applies its cap."""
    assert parse_retry_after("999999999", now=NOW) == 999999999.0


# --- responses -------------------------------------------------------------------------------


def test_parse_success_with_statuses() -> None:
    """The documented cancel success becomes a successful ScheduleResult."""
    result = parse_cancel(200, {}, sample("cancel_success.json"), now=NOW)
    assert result == ScheduleResult(
        success=True,
        schedule_id=SID,
        old_status=ScheduleStatus.ACTIVE,
        new_status=ScheduleStatus.CANCELLED,
    )
    assert result.is_cancelled
    assert not result.already_cancelled
    assert result.raise_for_error() is result


def test_parse_success_minimal() -> None:
    """{"success": true} alone is a complete success."""
    result = parse_cancel(200, {}, sample("cancel_success_minimal.json"), now=NOW)
    assert result == ScheduleResult(success=True)


def test_parse_already_cancelled() -> None:
    """7070 with newStatus CANCELLED is a result that reports already_cancelled."""
    result = parse_cancel(200, {}, sample("cancel_already_cancelled.json"), now=NOW)
    assert not result.success
    assert result.error_code == 7070
    assert result.already_cancelled
    assert result.is_cancelled


def test_parse_unknown_schedule_is_a_result() -> None:
    """7040 (unknown or foreign id) is a business result, not an exception."""
    result = parse_cancel(200, {}, sample("cancel_unknown_id.json"), now=NOW)
    assert not result.success
    assert result.error_code == 7040
    assert not result.already_cancelled
    assert not result.is_cancelled


def test_parse_success_as_string() -> None:
    """success "true" and "false" as strings are read like the booleans."""
    ok = parse_cancel(200, {}, sample("success_string.json"), now=NOW)
    assert ok.success is True
    failed = parse_cancel(200, {}, sample("failure_string.json"), now=NOW)
    assert failed.success is False
    assert failed.error_code == 7040


def test_parse_unknown_status_survives_as_string() -> None:
    """A status the enum does not know is kept as its raw string."""
    result = parse_cancel(200, {}, sample("unknown_status.json"), now=NOW)
    assert result.old_status == "SUSPENDED-BY-RISK"
    assert not isinstance(result.old_status, ScheduleStatus)
    assert result.new_status is ScheduleStatus.CANCELLED


def test_parse_ignores_extra_keys() -> None:
    """Keys the model does not know are ignored."""
    result = parse_cancel(200, {}, sample("extra_keys.json"), now=NOW)
    assert result.success
    assert result.old_status is ScheduleStatus.PAUSED


def test_parse_full_schedule_response() -> None:
    """Every documented field is mapped from its camelCase wire name."""
    result = parse_cancel(200, {}, sample("schedule_full.json"), now=NOW)
    assert result.registration_uuid == "abcde12345abcde12345"
    assert result.merchant_meta_data == "order-42"
    assert result.scheduled_at == datetime(2019, 10, 5, 14, 26, 11, tzinfo=UTC)
    assert result.adapter_code is None


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("html_error.html", "not JSON"),
        ("truncated.json", "not JSON"),
        ("array.json", "JSON object, got list"),
        ("missing_success.json", "required field missing @ $.success"),
    ],
)
def test_parse_off_spec_200(name: str, fragment: str) -> None:
    """Off-spec 200 bodies raise ResponseParseError with the status and a short excerpt."""
    body = sample(name)
    with pytest.raises(ResponseParseError) as info:
        parse_cancel(200, {}, body, now=NOW)
    error = info.value
    assert fragment in str(error)
    assert error.http_status == 200
    assert "HTTP 200" in str(error)
    assert error.excerpt
    assert body.decode()[:40] in error.excerpt or error.excerpt.startswith(body.decode()[:40])


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        b'"true"',
        b"NaN",
        b'{"success": NaN}',
        b'{"success": 1}',
        b'{"success": null}',
        b'{"success": "yes"}',
        b'{"success": true, "errorCode": 7070.5}',
        b'{"success": true, "errorCode": true}',
        b'{"success": true, "oldStatus": 3}',
        b'{"success": true, "newStatus": ["ACTIVE"]}',
        b'{"success": true, "newStatus": 1, "scheduledAt": "yesterday"}',
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,
    ],
)
def test_parse_wrong_shapes(body: bytes) -> None:
    """Bodies that are no JSON object, or whose success, errorCode or statuses are malformed,
    raise ResponseParseError."""
    with pytest.raises(ResponseParseError):
        parse_cancel(200, {}, body, now=NOW)


def test_parse_huge_body_is_refused_cheaply() -> None:
    """A body over the cap is refused without decoding, with a capped excerpt."""
    body = b'{"success": true, "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    with pytest.raises(ResponseParseError) as info:
        parse_cancel(200, {}, body, now=NOW)
    assert len(info.value.excerpt) <= 203


def test_excerpt_is_short_and_scrubbed() -> None:
    """The excerpt is at most ~200 characters and never contains a secret echoed by the server."""
    body = (b"<html>" + KEY_SENTINEL.encode() + b" " * 180 + KEY_SENTINEL.encode()) * 20
    with pytest.raises(ResponseParseError) as info:
        parse_cancel(200, {}, body, now=NOW, redact=[KEY_SENTINEL])
    assert len(info.value.excerpt) <= 203
    assert KEY_SENTINEL not in str(info.value)
    assert KEY_SENTINEL[:10] not in str(info.value)


@pytest.mark.parametrize(
    ("scheduled_at", "expected"),
    [
        ("2019-10-05T14:26:11+00:00", datetime(2019, 10, 5, 14, 26, 11, tzinfo=UTC)),
        ("2019-10-05T14:26:11Z", datetime(2019, 10, 5, 14, 26, 11, tzinfo=UTC)),
        ("2019-10-05T14:26:11.250Z", datetime(2019, 10, 5, 14, 26, 11, 250000, tzinfo=UTC)),
        ("2019-10-05T16:26:11+02:00", datetime(2019, 10, 5, 14, 26, 11, tzinfo=UTC)),
        ("2019-10-05T09:26:11-05:00", datetime(2019, 10, 5, 14, 26, 11, tzinfo=UTC)),
        ("2019-10-05T14:26:11", datetime(2019, 10, 5, 14, 26, 11, tzinfo=UTC)),
    ],
)
def test_scheduled_at_is_lenient_and_aware(scheduled_at: str, expected: datetime) -> None:
    """scheduledAt parses Z, fractions and any offset into an aware datetime (naive means UTC)."""
    body = f'{{"success": true, "scheduledAt": "{scheduled_at}"}}'.encode()
    result = parse_cancel(200, {}, body, now=NOW)
    assert result.scheduled_at == expected
    assert result.scheduled_at is not None
    assert result.scheduled_at.tzinfo is not None


def test_numeric_string_error_code_and_numeric_adapter_code() -> None:
    """errorCode may be a numeric string; a numeric adapterCode is kept as a string."""
    body = b'{"success": false, "errorCode": " 7070 ", "adapterCode": 51, "newStatus": "CANCELLED"}'
    result = parse_cancel(200, {}, body, now=NOW)
    assert result.error_code == 7070
    assert result.adapter_code == "51"
    assert result.already_cancelled


def test_200_result_messages_are_scrubbed() -> None:
    """Server free text echoing the apiKey is scrubbed before it reaches the result."""
    body = (
        b'{"success": false, "errorCode": 7040, "errorMessage": "unknown for '
        + KEY_SENTINEL.encode()
        + b'", "adapterMessage": "'
        + KEY_SENTINEL.encode()
        + b'"}'
    )
    result = parse_cancel(200, {}, body, now=NOW, redact=[KEY_SENTINEL])
    assert KEY_SENTINEL not in repr(result)
    assert result.error_message == f"unknown for {redact_key(KEY_SENTINEL)}"
    with pytest.raises(Exception) as info:  # noqa: PT011 - checking the message, any type
        result.raise_for_error()
    assert KEY_SENTINEL not in str(info.value)


# --- error statuses ----------------------------------------------------------------------------


def test_429_without_retry_after() -> None:
    """A documented 429 raises RateLimitedError with its code and no retry_after."""
    with pytest.raises(RateLimitedError) as info:
        parse_cancel(429, {}, sample("rate_limited.json"), now=NOW)
    error = info.value
    assert error.http_status == 429
    assert error.error_code == 1009
    assert error.error_message == "Too many requests"
    assert error.retry_after is None
    assert "Too many requests" in str(error)


def test_429_with_retry_after_seconds() -> None:
    """Retry-After in seconds is read, case-insensitively."""
    with pytest.raises(RateLimitedError) as info:
        parse_cancel(429, {"retry-after": "12"}, sample("rate_limited.json"), now=NOW)
    assert info.value.retry_after == 12.0


def test_429_with_retry_after_date_relative_to_response_date() -> None:
    """An HTTP-date Retry-After is measured from the response's own Date header."""
    headers = {
        "Date": "Wed, 21 Oct 2015 07:28:00 GMT",
        "Retry-After": "Wed, 21 Oct 2015 07:28:45 GMT",
    }
    far_future = datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(RateLimitedError) as info:
        parse_cancel(429, headers, sample("rate_limited.json"), now=far_future)
    assert info.value.retry_after == 45.0


def test_429_with_retry_after_date_relative_to_now() -> None:
    """Without a (readable) Date header, an HTTP-date is measured from now."""
    headers = {"Date": "garbage", "Retry-After": "Wed, 21 Oct 2015 07:28:20 GMT"}
    with pytest.raises(RateLimitedError) as info:
        parse_cancel(429, headers, b"", now=NOW)
    assert info.value.retry_after == 20.0
    assert info.value.error_code is None


def test_429_retry_after_date_is_measured_from_the_given_now() -> None:
    """With no Date header, an HTTP-date Retry-After counts from the caller's now, not a clock."""
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:20 GMT"}
    waits = []
    for now in (NOW, NOW + timedelta(seconds=15), NOW + timedelta(days=1)):
        with pytest.raises(RateLimitedError) as info:
            parse_cancel(429, headers, b"", now=now)
        waits.append(info.value.retry_after)
    assert waits == [20.0, 5.0, 0.0]


def test_parsing_reads_no_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing is a pure function of status, headers, body and now: no clock is read."""

    class NoClock(datetime):
        @classmethod
        def now(cls, tz: object = None) -> NoClock:
            raise AssertionError(f"parsing read the clock (tz={tz})")

    monkeypatch.setattr(protocol, "datetime", NoClock)
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:20 GMT"}
    for _ in range(2):
        with pytest.raises(RateLimitedError) as info:
            parse_cancel(429, headers, sample("rate_limited.json"), now=NOW)
        assert info.value.retry_after == 20.0
        assert parse_cancel(200, headers, sample("cancel_success.json"), now=NOW) == (
            parse_cancel(200, {}, sample("cancel_success.json"), now=NOW)
        )
    assert response_retry_after(headers, now=NOW) == 20.0


def test_429_response_date_without_zone_is_utc() -> None:
    """A response Date with -0000 (no zone) is taken as UTC."""
    headers = {
        "Date": "Wed, 21 Oct 2015 07:28:00 -0000",
        "Retry-After": "Wed, 21 Oct 2015 07:28:05 GMT",
    }
    with pytest.raises(RateLimitedError) as info:
        parse_cancel(429, headers, b"", now=NOW)
    assert info.value.retry_after == 5.0


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (500, sample("server_error.json"), 1008),
        (503, sample("maintenance.json"), 1010),
        (502, sample("html_error.html"), None),
        (504, b"", None),
        (500, b'{"success": false, "errorCode": "oops", "errorMessage": 5}', None),
    ],
)
def test_5xx_is_server_error(status: int, body: bytes, code: int | None) -> None:
    """5xx raises ServerError, with the API's code when the body has one."""
    with pytest.raises(ServerError) as info:
        parse_cancel(status, {}, body, now=NOW)
    assert info.value.http_status == status
    assert info.value.error_code == code
    assert f"HTTP {status}" in str(info.value)


def test_maintenance_message_is_kept() -> None:
    """The 1010 maintenance message is available on the error."""
    with pytest.raises(ServerError) as info:
        parse_cancel(503, {}, sample("maintenance.json"), now=NOW)
    assert info.value.error_message is not None
    assert "maintenance" in info.value.error_message
    assert "errorCode 1010" in str(info.value)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, b""),
        (403, b"<html>Forbidden</html>"),
        (400, sample("invalid_signature.json")),
        (200, sample("invalid_signature.json")),
    ],
)
def test_authentication_errors(status: int, body: bytes) -> None:
    """401, 403 and errorCode 1004 (under any status) raise AuthenticationError."""
    with pytest.raises(AuthenticationError) as info:
        parse_cancel(status, {}, body, now=NOW)
    assert info.value.http_status == status


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"404: Not Found",  # aiohttp's, and the mock server's, answer to an unknown route
        b"<html><body><h1>404 Not Found</h1></body></html>",
        b'{"success": false, "errorCode": 1000, "errorMessage": "No route found"}',
        b'{"error": "not found"}',
        b"[]",
    ],
)
def test_a_404_that_is_no_api_answer_is_a_configuration_error(body: bytes) -> None:
    """A 404 is no answer about the schedule (an unknown id is a 200 with 7040): the route
    does not exist, so every call would get it; a configuration error like a 401."""
    with pytest.raises(EndpointNotFoundError) as info:
        parse_cancel(404, {}, body, now=NOW, schedule_id=SID)
    assert isinstance(info.value, ConfigurationError)
    assert isinstance(info.value, ApiError)
    assert not isinstance(info.value, AuthenticationError)
    assert info.value.http_status == 404
    assert str(info.value).startswith("no such route: check the base URL's path")


def test_a_404_with_a_schedule_error_code_stays_an_api_error_about_the_schedule() -> None:
    """A 404 whose JSON body is a Schedule API error (7xxx) is an answer about the schedule."""
    body = b'{"success": false, "errorCode": 7040, "errorMessage": "unknown"}'
    with pytest.raises(ApiError) as info:
        parse_cancel(404, {}, body, now=NOW)
    assert type(info.value) is ApiError
    assert info.value.error_code == 7040


def test_authentication_error_is_a_configuration_error() -> None:
    """401/403/1004 and a wrong route share one base: the settings are wrong."""
    assert issubclass(AuthenticationError, ConfigurationError)
    assert issubclass(EndpointNotFoundError, ConfigurationError)


@pytest.mark.parametrize("status", [301, 302, 400, 405, 418, 201, 204])
def test_other_statuses_are_api_errors(status: int) -> None:
    """Redirects, other 4xx and undocumented 2xx raise a plain ApiError."""
    with pytest.raises(ApiError) as info:
        parse_cancel(status, {"Location": "https://elsewhere.example/"}, b"", now=NOW)
    assert type(info.value) is ApiError
    assert info.value.http_status == status


# --- the answer is about the schedule asked about -----------------------------------------------

OTHER = "SC-OTHER"


@pytest.mark.parametrize(
    "body",
    [
        {"success": True, "scheduleId": OTHER, "oldStatus": "ACTIVE", "newStatus": "CANCELLED"},
        # "already cancelled" about another schedule: final in a journal, were it believed
        {
            "success": False,
            "scheduleId": OTHER,
            "oldStatus": "CANCELLED",
            "newStatus": "CANCELLED",
            "errorCode": 7070,
        },
        {"success": False, "scheduleId": OTHER, "errorCode": 7040},
    ],
)
def test_an_answer_about_another_schedule_is_a_mismatch_error(body: dict[str, object]) -> None:
    """A 200 naming another scheduleId is neither a success nor a refusal of the one asked."""
    with pytest.raises(ResponseMismatchError) as info:
        parse_cancel(200, {}, json.dumps(body).encode(), now=NOW, schedule_id=SID)
    error = info.value
    assert isinstance(error, ResponseParseError)
    assert (error.requested, error.answered) == (SID, OTHER)
    assert error.http_status == 200
    assert not error.retryable
    assert OTHER in str(error)
    assert SID in str(error)


@pytest.mark.parametrize(
    "operation", [Operation.GET, Operation.PAUSE, Operation.CONTINUE, Operation.UPDATE]
)
def test_every_operation_on_a_schedule_checks_the_answers_id(operation: Operation) -> None:
    """get, pause, continue and update check the scheduleId, as cancel does."""
    body = json.dumps({"success": True, "scheduleId": OTHER, "newStatus": "ACTIVE"}).encode()
    with pytest.raises(ResponseMismatchError):
        parse_response(200, {}, body, now=NOW, operation=operation, schedule_id=SID)


def test_start_answers_with_the_new_schedules_id() -> None:
    """start names no scheduleId: the answer's is the new schedule's, never a mismatch."""
    body = json.dumps({"success": True, "scheduleId": OTHER, "newStatus": "ACTIVE"}).encode()
    result = parse_response(200, {}, body, now=NOW, operation=Operation.START, schedule_id=SID)
    assert result.schedule_id == OTHER


@pytest.mark.parametrize(
    "body",
    [
        {"success": True, "scheduleId": SID, "newStatus": "CANCELLED"},
        {"success": True, "newStatus": "CANCELLED"},
        {"success": True, "scheduleId": None, "newStatus": "CANCELLED"},
        {"success": False, "errorCode": 7040, "errorMessage": "not valid"},  # the docs' example
    ],
)
def test_an_answer_with_the_same_or_no_schedule_id_is_about_the_one_asked(
    body: dict[str, object],
) -> None:
    """The response table does not require scheduleId and 7040 answers carry none: no mismatch."""
    result = parse_cancel(200, {}, json.dumps(body).encode(), now=NOW, schedule_id=SID)
    assert result.schedule_id in (SID, None)


@pytest.mark.parametrize(
    ("answered", "shown"), [(12345, "12345"), (["SC-1"], '["SC-1"]'), ("", ""), ("sc-1234", None)]
)
def test_a_malformed_or_differently_written_schedule_id_is_a_mismatch(
    answered: object, shown: str | None
) -> None:
    """A scheduleId that is not the string asked about (a number, a list, empty, another case)
    is about something else; the error shows it as JSON text."""
    body = json.dumps({"success": True, "scheduleId": answered, "newStatus": "CANCELLED"})
    with pytest.raises(ResponseMismatchError) as info:
        parse_cancel(200, {}, body.encode(), now=NOW, schedule_id=SID)
    assert info.value.answered == (shown if shown is not None else answered)


def test_a_mismatched_id_is_shown_scrubbed_and_shortened() -> None:
    """The answered id is server text: a secret echoed in it is scrubbed, a huge one cut."""
    answered = f"{KEY_SENTINEL}-{'x' * 5000}"
    body = json.dumps({"success": True, "scheduleId": answered}).encode()
    with pytest.raises(ResponseMismatchError) as info:
        parse_cancel(200, {}, body, now=NOW, schedule_id=SID, redact=[KEY_SENTINEL])
    assert KEY_SENTINEL not in str(info.value)
    assert len(info.value.answered) == 40
    assert info.value.answered.startswith(redact_key(KEY_SENTINEL))


def test_error_message_is_truncated_and_scrubbed() -> None:
    """A server message echoing the apiKey is scrubbed and cut to 200 characters."""
    message = f"bad key {KEY_SENTINEL} " + "x" * 500
    body = f'{{"success": false, "errorCode": 1002, "errorMessage": "{message}"}}'.encode()
    with pytest.raises(ApiError) as info:
        parse_cancel(400, {}, body, now=NOW, redact=[KEY_SENTINEL])
    error = info.value
    assert error.error_code == 1002
    assert error.error_message is not None
    assert len(error.error_message) == 200
    assert KEY_SENTINEL not in str(error)
    assert KEY_SENTINEL not in repr(error)
    assert KEY_SENTINEL not in error.error_message


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _reference_decode(body: bytes) -> object:
    """json.loads with NaN and Infinity refused: what _decode must agree with."""

    def refuse(name: str) -> object:
        raise ValueError(name)

    if not body or len(body) > MAX_BODY_BYTES:
        return _NOT_JSON
    try:
        return json.loads(body, parse_constant=refuse)
    except (ValueError, RecursionError):
        return _NOT_JSON


@given(
    value=_JSON,
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32-be"]),
    cut=st.integers(0, 3),
)
def test_decode_agrees_with_json_loads(value: object, encoding: str, cut: int) -> None:
    """The shared decoder reads every encoding json.loads reads, and refuses what it refuses."""
    body = json.dumps(value, allow_nan=True).encode(encoding)
    body = body[: len(body) - cut]  # a body cut short is not JSON
    expected = _reference_decode(body)
    if expected is _NOT_JSON:
        assert _decode(body) is _NOT_JSON
    else:
        assert json.dumps(_decode(body)) == json.dumps(expected)
