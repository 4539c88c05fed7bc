"""Tests for the exception tree: shape, attributes and messages."""

from __future__ import annotations

import re

import pytest
from schedcancel import errors
from schedcancel.errors import (
    ApiError,
    AuthenticationError,
    BackendError,
    InvalidParameterError,
    QueueTimeoutError,
    RateLimitedError,
    ResponseParseError,
    ScheduleError,
    ScheduleOperationError,
    ServerError,
    TransportError,
)


def _drawn_tree() -> dict[str, str]:
    """Parse the tree drawn in the errors module docstring into child -> parent."""
    assert errors.__doc__ is not None
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        match = re.match(r"^(\s*)(?:[│ ]*[├└]── )?([A-Z]\w+)(?:\s|$)", line)
        if not match or "Error" not in match[2]:
            continue
        depth = len(line) - len(line.lstrip(" │├└─"))
        name = match[2]
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_docstring_tree_matches_the_classes() -> None:
    """The tree drawn in the module docstring is the real class hierarchy."""
    parents = _drawn_tree()
    assert set(parents) == set(errors.__all__) - {"ScheduleError"}
    for child, parent in parents.items():
        assert getattr(errors, child).__bases__[0] is getattr(errors, parent)


def test_every_error_is_a_schedule_cancel_error() -> None:
    """One except clause catches everything schedcancel raises on purpose."""
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), ScheduleError)


def test_invalid_parameter_is_also_value_error() -> None:
    """InvalidParameterError is a ValueError, as callers would expect for bad arguments."""
    assert issubclass(InvalidParameterError, ValueError)


def test_response_problems_are_not_transport_problems() -> None:
    """Transport, parse, backend and API errors are separate branches."""
    for one, other in [
        (TransportError, ApiError),
        (ResponseParseError, ApiError),
        (BackendError, TransportError),
        (QueueTimeoutError, ApiError),
    ]:
        assert not issubclass(one, other)
        assert not issubclass(other, one)


@pytest.mark.parametrize("cls", [AuthenticationError, ServerError, ApiError])
def test_api_error_str(cls: type[ApiError]) -> None:
    """API errors show message, HTTP status and errorCode when there is one."""
    with_code = cls("server error", http_status=503, error_code=1010, error_message="maint")
    assert str(with_code) == "server error | HTTP 503 | errorCode 1010"
    assert with_code.error_message == "maint"
    assert str(cls("nope", http_status=401)) == "nope | HTTP 401"


def test_rate_limited_error_defaults() -> None:
    """RateLimitedError is HTTP 429 by default and carries retry_after."""
    error = RateLimitedError("rate limited", error_code=1009, retry_after=3.5)
    assert (error.http_status, error.error_code, error.retry_after) == (429, 1009, 3.5)
    assert RateLimitedError("x").retry_after is None


def test_schedule_operation_error_fields() -> None:
    """ScheduleOperationError is HTTP 200 by default and names the schedule."""
    error = ScheduleOperationError("refused", error_code=7070, schedule_id="SC-1")
    assert (error.http_status, error.schedule_id) == (200, "SC-1")


def test_response_parse_error_str() -> None:
    """ResponseParseError shows its HTTP status and, when there is one, the excerpt."""
    error = ResponseParseError("not JSON", http_status=200, excerpt="<html>")
    assert str(error) == "not JSON (HTTP 200): '<html>'"
    assert str(ResponseParseError("empty", http_status=502)) == "empty (HTTP 502)"


def test_queue_timeout_error_expected_wait() -> None:
    """QueueTimeoutError tells how long the wait would have been, when known."""
    assert QueueTimeoutError("too long", expected_wait=42.0).expected_wait == 42.0
    assert QueueTimeoutError("too long").expected_wait is None
