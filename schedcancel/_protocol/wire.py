"""The Schedule API's wire protocol, sans I/O: build, sign, parse.

Pure functions over plain values; nothing here imports aiohttp, reads a socket
or sleeps. [`Operation`][schedcancel.Operation] (in ``operations``, re-exported here) is the one
table of the six schedule calls; `RequestBuilder.build()` builds any of
them, the transport sends it and hands back ``(status, headers, body)`` for
`parse_response()`.

API reference: https://documentation.ixopay.com/api/transaction/schedule
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote, urlsplit

import attrs

from .._version import __version__
from ..errors import (
    ApiError,
    AuthenticationError,
    EndpointNotFoundError,
    InvalidParameterError,
    RateLimitedError,
    ResponseMismatchError,
    ResponseParseError,
    ServerError,
)
from .convert import coerce_error_code, structure_result
from .models import ScheduleResult
from .operations import BodyKind, Operation
from .redact import Hidden, redact_headers, redact_key, scrub, shorten
from .validate import validate_api_key, validate_schedule_id

# Hidden, redact_key, scrub (from _redact) and validate_api_key, validate_schedule_id (from
# _validate) are re-exported for the callers that still import them from here; new code
# imports them from those modules.
__all__ = [
    "ACCEPT",
    "CONTENT_TYPE",
    "DEFAULT_BASE_URL",
    "MAX_BODY_BYTES",
    "BodyKind",
    "Hidden",
    "Operation",
    "Request",
    "RequestBuilder",
    "Transport",
    "basic_auth",
    "http_date",
    "is_schedule_error_code",
    "parse_response",
    "parse_retry_after",
    "redact_key",
    "response_retry_after",
    "scrub",
    "signature",
    "validate_api_key",
    "validate_schedule_id",
]

#: EU production (https://documentation.ixopay.com/docs/reference/appendix/regions).
DEFAULT_BASE_URL = "https://gateway.ixopay.com/api/v3"
#: Sent, and signed, exactly as written here (the docs' example value).
CONTENT_TYPE = "application/json; charset=utf-8"
ACCEPT = "application/json"
#: Compressed answers are welcome; the transport inflates them, never past the body cap.
ACCEPT_ENCODING = "gzip, deflate"
#: The cancel and pause bodies are required and are an empty object (``maxProperties: 0``).
EMPTY_OBJECT = b"{}"
#: Longest response body anyone reads; a schedule response is a few hundred bytes.
MAX_BODY_BYTES = 1024 * 1024
#: Longest excerpt of a body, or server message, put into an exception.
EXCERPT_CHARS = 200
#: errorCode "Invalid signature" (https://documentation.ixopay.com/docs/reference/appendix/error-codes).
ERROR_INVALID_SIGNATURE = 1004
#: Longest answered scheduleId a mismatch error shows (a valid one has at most 32 characters).
SHOWN_ID_CHARS = 40

#: ``delay-seconds`` (RFC 9110: digits), leniently with a fraction; a sign makes it unreadable.
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


USER_AGENT = f"schedcancel/{__version__}"


def signature(
    shared_secret: str, *, method: str, body: bytes, content_type: str, date: str, request_uri: str
) -> str:
    """Compute a request's ``X-Signature``.

    HMAC-SHA512, keyed with the connector's shared secret, over
    ``METHOD \\n sha512hex(body) \\n Content-Type \\n Date \\n request URI``,
    base64 of the binary digest
    (https://documentation.ixopay.com/docs/guides/production/additional-security).

    Args:
        shared_secret: the connector's shared secret.
        method: the HTTP method, e.g. ``"POST"``.
        body: the exact body bytes sent.
        content_type: the ``Content-Type`` header exactly as sent.
        date: the ``Date`` header exactly as sent.
        request_uri: the path from the host (``/api/v3/...``), with the query if any.

    Returns:
        The base64 signature.
    """
    message = "\n".join((method, hashlib.sha512(body).hexdigest(), content_type, date, request_uri))
    digest = hmac.new(shared_secret.encode(), message.encode(), hashlib.sha512).digest()
    return base64.b64encode(digest).decode("ascii")


def basic_auth(username: str, password: str) -> str:
    """Build the ``Authorization`` value for the API user.

    The plain password, ``user:pass`` in UTF-8, base64 without a trailing
    newline (the docs' step 3 example has one by mistake; step 4 is right:
    https://documentation.ixopay.com/api/transaction/transaction-api).

    Args:
        username: the API user's name.
        password: the API user's password.

    Returns:
        ``"Basic <base64>"``.
    """
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def http_date(moment: datetime) -> str:
    """Format an aware datetime as an RFC 1123 ``Date`` value in GMT.

    Args:
        moment: an aware datetime.

    Returns:
        For example ``"Tue, 21 Jul 2020 13:15:03 GMT"`` (never ``UTC``, which
        IXOPAY's Java signing library rejects).

    Raises:
        InvalidParameterError: the datetime is naive.
    """
    if moment.tzinfo is None:
        raise InvalidParameterError("the request date must be timezone-aware")
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def _freeze(headers: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(headers))


@attrs.frozen(kw_only=True, repr=False)
class Request:
    """One HTTP request, ready to send and never shown with its secrets.

    Attributes:
        method: the HTTP method.
        url: the absolute URL, already percent-encoded; send it as is.
        request_uri: the path (and query) the signature covers.
        headers: the headers to send, read-only.
        body: the body bytes.
        redactions: strings that must never leave in a message: the apiKey,
            the password, the shared secret.
    """

    method: str
    url: str
    request_uri: str
    headers: Mapping[str, str] = attrs.field(converter=_freeze, hash=False)
    body: bytes
    redactions: tuple[str, ...] = ()

    def scrub(self, text: str) -> str:
        """Return ``text`` with this request's secrets redacted."""
        return scrub(text, self.redactions)

    @property
    def log_url(self) -> str:
        """The URL with the apiKey redacted, for messages and logs."""
        return self.scrub(self.url)

    def __repr__(self) -> str:
        shown = redact_headers(self.headers, self.redactions)
        return (
            f"Request(method={self.method!r}, url={self.log_url!r}, "
            f"headers={shown!r}, body={self.body!r})"
        )


@runtime_checkable
class Transport(Protocol):
    """What sends a built [`Request`][schedcancel.Request]: the seam between the client and HTTP.

    ``ScheduleClient(transport=...)`` takes any object with these two methods;
    the default is ``AiohttpTransport``. A transport of your own can record,
    replay or fake the server in tests, or send through another HTTP library.
    """

    async def send(
        self,
        request: Request,
        timeout: float,  # noqa: ASYNC109 - one bound for connect, send and read
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send ``request`` and return the answer's status, headers and body.

        Args:
            request: the method, URL, headers and body to send as they are.
            timeout: seconds the whole exchange may take.

        Raises:
            TransportError: no usable answer came; its ``request_sent`` says
                whether the request may have reached the server.
        """
        ...

    async def aclose(self) -> None:
        """Release what the transport holds (connections); the client calls it once."""
        ...


class RequestBuilder:
    """Builds the schedule requests of one base URL, apiKey and set of credentials.

    What stays the same from request to request (the URL prefix, the path the
    signature covers, the Basic-auth header, the static headers, what to
    redact) is computed once here; `build()` adds the operation's path,
    the scheduleId, the body and, when signing, a fresh ``Date`` and
    ``X-Signature``. A client keeps one per apiKey.

    Every request, get included, carries the same ``Content-Type`` (as the
    docs' samples do), so the signature always covers the value sent.

    Args:
        base_url: the API base, e.g. ``https://gateway.ixopay.com/api/v3``.
        api_key: the connector's apiKey.
        username: the API user (Basic auth).
        password: the API user's password.
        shared_secret: the connector's shared secret; None sends no signature.

    Raises:
        InvalidParameterError: the apiKey is invalid.
    """

    __slots__ = (
        "_headers",
        "_query_or_fragment",
        "_shared_secret",
        "_uri_prefix",
        "_url_prefix",
        "api_key",
        "redactions",
    )

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        username: str,
        password: str,
        shared_secret: str | None,
    ) -> None:
        self.api_key = validate_api_key(api_key)
        self._url_prefix = f"{base_url.rstrip('/')}/schedule/{quote(self.api_key, safe='')}/"
        parts = urlsplit(self._url_prefix)
        # A valid scheduleId holds unreserved characters only, so appending it (and
        # "/cancel") extends the prefix's path, or, after a "?" or "#" in the base,
        # its query or fragment and leaves the path as it is.
        self._uri_prefix = parts.path
        self._query_or_fragment = bool(parts.query or parts.fragment)
        self._shared_secret = shared_secret
        # https://documentation.ixopay.com/api/transaction/transaction-api: JSON, Basic auth.
        authorization = basic_auth(username, password)
        self._headers = {
            "Content-Type": CONTENT_TYPE,
            "Accept": ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
            "Authorization": authorization,
            "User-Agent": USER_AGENT,
        }
        #: Strings that must never leave in a message: the apiKey, the password, the
        #: secret, and the Basic token (base64 of user:password; a proxy page may echo it).
        self.redactions = (
            self.api_key,
            Hidden(password),
            Hidden(authorization.removeprefix("Basic ")),
            *(() if shared_secret is None else (Hidden(shared_secret),)),
        )

    def __repr__(self) -> str:
        return (
            f"RequestBuilder(url={scrub(self._url_prefix, self.redactions)!r}, "
            f"signed={self._shared_secret is not None})"
        )

    def build(
        self,
        operation: Operation,
        schedule_id: str | None,
        body: bytes | None = None,
        *,
        date: datetime,
    ) -> Request:
        """Build the request of ``operation``.

        Args:
            operation: which call (its method, path and body kind).
            schedule_id: a scheduleId that `validate_schedule_id()` accepted
                (it is not checked again), or None for start.
            body: the JSON body of start, update and continue (their request
                value's ``to_json()``); None for the others, whose body is
                fixed: none for get, ``{}`` for pause and cancel.
            date: the moment to put in ``Date`` (used only when signing).

        Returns:
            The request; with a shared secret, its ``X-Signature`` covers the
            body exactly as sent (the empty body for get).

        Raises:
            InvalidParameterError: the scheduleId's presence, or the body's,
                does not fit the operation; or signing, and ``date`` is naive.
        """
        if (schedule_id is not None) != operation.has_schedule_id:
            raise InvalidParameterError(
                f"{operation.name.lower()} "
                + ("needs a scheduleId" if operation.has_schedule_id else "takes no scheduleId")
            )
        kind = operation.body
        if (body is not None) != (kind is BodyKind.JSON):
            raise InvalidParameterError(
                f"{operation.name.lower()} "
                + ("needs a JSON body" if kind is BodyKind.JSON else "has a fixed body")
            )
        if body is None:
            body = EMPTY_OBJECT if kind is BodyKind.EMPTY else b""
        tail = operation.path if schedule_id is None else f"{schedule_id}/{operation.path}"
        request_uri = self._uri_prefix if self._query_or_fragment else self._uri_prefix + tail
        headers = self._headers  # Request keeps a read-only copy
        shared_secret = self._shared_secret
        if shared_secret is not None:
            # https://documentation.ixopay.com/docs/guides/production/additional-security
            stamp = http_date(date)
            headers = {
                **headers,
                "Date": stamp,
                "X-Signature": signature(
                    shared_secret,
                    method=operation.method,
                    body=body,
                    content_type=CONTENT_TYPE,
                    date=stamp,
                    request_uri=request_uri,
                ),
            }
        return Request(
            method=operation.method,
            url=self._url_prefix + tail,
            request_uri=request_uri,
            headers=headers,
            body=body,
            redactions=self.redactions,
        )


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Read a ``Retry-After`` header in either of its forms.

    Args:
        value: the header, e.g. ``"30"`` or ``"Wed, 21 Oct 2015 07:28:00 GMT"``.
        now: the moment an HTTP-date is measured from (best: the response's ``Date``).

    Returns:
        Seconds to wait, at least 0 (an HTTP-date in the past is 0); None when
        absent or unreadable, and a negative or signed number (``"-5"``) is
        unreadable, not 0. Very large values are returned as they are: the
        limiter caps what it obeys.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def _response_time(headers: Mapping[str, str], now: datetime) -> datetime:
    # A Retry-After date is relative to the server's clock: measure it from the
    # response's own Date when there is one, so clock skew does not matter.
    date = _header(headers, "Date")
    if date:
        try:
            parsed = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
        else:
            return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return now


def response_retry_after(headers: Mapping[str, str], *, now: datetime) -> float | None:
    """Read a response's ``Retry-After``, measuring an HTTP-date from the response's ``Date``.

    Reads no clock: the caller says what time it is.

    Args:
        headers: the response headers (looked up case-insensitively).
        now: the current time (aware), used when the response has no readable ``Date``.

    Returns:
        Seconds to wait, or None when the header is absent or unreadable.
    """
    return parse_retry_after(_header(headers, "Retry-After"), now=_response_time(headers, now))


def _excerpt(body: bytes, secrets: tuple[str, ...]) -> str:
    # Enough of the body for a secret that starts in the excerpt to end in it, in its longest
    # form (12 characters for each of its own); a secret cut at the window's end is dropped.
    window = max((len(s) for s in secrets), default=0) * 16 + EXCERPT_CHARS * 4
    text = body[:window].decode("utf-8", "replace")
    return shorten(text, EXCERPT_CHARS + 3, secrets, marker="...")


def is_schedule_error_code(code: int | None) -> bool:
    """Tell whether ``code`` is one of the Schedule API's own errorCodes (7000-7999).

    Those are the API's verdict on the schedule asked about (7040 unknown id,
    7070 wrong status, ...), as opposed to the general 1xxx codes
    (https://documentation.ixopay.com/docs/reference/appendix/error-codes).
    """
    return code is not None and 7000 <= code <= 7999


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_NOT_JSON = object()
# One decoder for every response: json.loads with an option builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _decode(body: bytes) -> object:
    if not body or len(body) > MAX_BODY_BYTES:
        return _NOT_JSON
    try:
        # What json.loads does with bytes: UTF-8, -16 or -32, told apart by their first bytes.
        return _DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested deeper than the stack
        return _NOT_JSON


def _error_fields(payload: object, secrets: tuple[str, ...]) -> tuple[int | None, str | None]:
    """Read ``errorCode`` and ``errorMessage`` from an error body, leniently.

    Error bodies are documented loosely (401/400/404 not at all), so anything
    unreadable simply yields None instead of hiding the HTTP error behind a
    parse error.
    """
    if not isinstance(payload, dict):
        return None, None
    try:
        code = coerce_error_code(payload.get("errorCode"))
    except TypeError:
        code = None
    message = payload.get("errorMessage")
    if not isinstance(message, str):
        return code, None
    return code, shorten(message, EXCERPT_CHARS, secrets)


def _scrub_json(value: object, secrets: tuple[str, ...]) -> object:
    """A decoded JSON value with every string in it scrubbed."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if isinstance(value, list):
        return [_scrub_json(item, secrets) for item in value]
    if isinstance(value, dict):
        return {scrub(k, secrets): _scrub_json(v, secrets) for k, v in value.items()}
    return value


def _message(summary: str, error_message: str | None) -> str:
    return f"{summary}: {error_message}" if error_message else summary


def _check_schedule_id(
    payload: Mapping[str, object], requested: str | None, secrets: tuple[str, ...]
) -> None:
    """Raise unless the answer is about ``requested``: its ``scheduleId`` is that, null or absent.

    The response table lists ``scheduleId`` without making it required, and
    the documented error answers (7040) carry none, so an absent one is no
    mismatch; one that names another schedule (or is not a string) is.
    """
    answered = payload.get("scheduleId")
    if requested is None or answered is None or answered == requested:
        return
    text = answered if isinstance(answered, str) else json.dumps(answered)
    shown = shorten(text, SHOWN_ID_CHARS, secrets)
    raise ResponseMismatchError(
        f"the answer is about scheduleId {shown!r}, not the {requested!r} asked about",
        requested=requested,
        answered=shown,
    )


def parse_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
    redact: Iterable[str] = (),
    operation: Operation,
    schedule_id: str | None = None,
) -> ScheduleResult:
    """Turn a response into a [`ScheduleResult`][schedcancel.ScheduleResult], or raise the matching
    error.

    A pure function of its arguments: it reads no clock, so the same response
    and ``now`` always give the same result or error. Every operation answers
    with the same schedule response, so one parser serves them all.

    Args:
        status: the HTTP status.
        headers: the response headers (looked up case-insensitively).
        body: the body bytes.
        now: the current time (aware), for a ``Retry-After`` HTTP-date when the
            response has no readable ``Date``; the caller reads its clock once
            when the response arrives.
        redact: secrets (the request's apiKey, password, shared secret) to scrub
            from anything the server echoed into messages and excerpts.
        operation: the call the response answers (kept in the result, for
            ``already_done``).
        schedule_id: the scheduleId the request named (None for start, or
            not to check): an answer that names another one is no answer
            about it.

    Returns:
        The result of an HTTP 200, ``success`` true or false (business errors
        such as 7040 and 7070 are results). Malformed auxiliary fields are
        kept raw in its ``malformed`` mapping, not raised.

    Raises:
        RateLimitedError: HTTP 429.
        AuthenticationError: HTTP 401 or 403, or errorCode 1004.
        EndpointNotFoundError: HTTP 404 whose body is not an API error about
            the schedule (a JSON errorCode 7000-7999): no such route, a wrong
            base URL path (an unknown scheduleId is a 200 with 7040).
        ServerError: HTTP 5xx.
        ApiError: any other status (3xx, other 4xx).
        ResponseMismatchError: an HTTP 200 whose ``scheduleId`` is not
            ``schedule_id`` (success or refusal alike).
        ResponseParseError: an HTTP 200 whose body is not a schedule response
            (not JSON, not an object, or a malformed ``success``,
            ``errorCode``, ``oldStatus`` or ``newStatus``).
    """
    secrets = tuple(redact)
    payload = _decode(body)
    if status != 200:
        code, message = _error_fields(payload, secrets)
        # Schedule endpoints document 200 and 429 only; a 429 carries errorCode 1009 and
        # maybe Retry-After (https://documentation.ixopay.com/api/transaction/schedule-cancel).
        if status == 429:
            retry_after = response_retry_after(headers, now=now)
            raise RateLimitedError(
                _message("rate limited by the server", message),
                error_code=code,
                error_message=message,
                retry_after=retry_after,
            )
        # A bad signature is errorCode 1004
        # (https://documentation.ixopay.com/docs/reference/appendix/error-codes).
        if status in (401, 403) or code == ERROR_INVALID_SIGNATURE:
            raise AuthenticationError(
                _message("authentication failed", message),
                http_status=status,
                error_code=code,
                error_message=message,
            )
        # The API answers an unknown scheduleId with 200/7040: a 404 that is not an API error
        # about the schedule comes from a route that does not exist (a base URL typo).
        if status == 404 and not is_schedule_error_code(code):
            raise EndpointNotFoundError(
                _message("no such route: check the base URL's path (it ends in /api/v3)", message),
                http_status=status,
                error_code=code,
                error_message=message,
            )
        # 5xx is a server error: 500/1008 system error, 503/1010 maintenance
        # (https://documentation.ixopay.com/docs/guides/production/handling-errors).
        if 500 <= status <= 599:
            raise ServerError(
                _message("server error", message),
                http_status=status,
                error_code=code,
                error_message=message,
            )
        # Other 4xx: a client error, not to be retried unchanged (same page). A 3xx
        # lands here too: redirects are never followed with credentials attached.
        raise ApiError(
            _message("unexpected HTTP status", message),
            http_status=status,
            error_code=code,
            error_message=message,
        )
    if payload is _NOT_JSON:
        raise ResponseParseError(
            "response body is not JSON",
            http_status=200,
            excerpt=_excerpt(body, secrets),
            retryable=True,
        )
    if not isinstance(payload, dict):
        raise ResponseParseError(
            f"expected a JSON object, got {type(payload).__name__}",
            http_status=200,
            excerpt=_excerpt(body, secrets),
        )
    result = structure_result(
        payload, http_status=200, excerpt=lambda: _excerpt(body, secrets), operation=operation
    )
    _check_schedule_id(payload, schedule_id if operation.has_schedule_id else None, secrets)
    if secrets and (result.error_message or result.adapter_message or result.malformed):
        # Free text from the server ends up in logs and in raise_for_error()'s message.
        result = attrs.evolve(
            result,
            error_message=result.error_message and scrub(result.error_message, secrets),
            adapter_message=result.adapter_message and scrub(result.adapter_message, secrets),
            malformed={k: _scrub_json(v, secrets) for k, v in result.malformed.items()},
        )
    if not result.success and result.error_code == ERROR_INVALID_SIGNATURE:
        raise AuthenticationError(
            _message("authentication failed", result.error_message),
            http_status=200,
            error_code=result.error_code,
            error_message=result.error_message,
        )
    return result
