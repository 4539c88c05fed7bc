"""Tests for the one validation module: ids, keys, credentials, ints, numbers, queue options."""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest
from schedcancel import InvalidParameterError
from schedcancel._protocol.validate import (
    MAX_API_KEY,
    MAX_SCHEDULE_ID,
    check_credential,
    check_int,
    check_key,
    check_number,
    check_optional_number,
    check_priority,
    check_queue_timeout,
    validate_api_key,
    validate_schedule_id,
)

SECRET = "SENTINEL-9f8e7d6c"
NOT_NUMBERS = [True, False, "1", b"1", [1], None, 1j]


@pytest.mark.parametrize(
    "value",
    ["SC-1", "a", "A.b_c~d-9", "S" * MAX_SCHEDULE_ID, "..x", "SC-1234-1234-1234-1234-1234-1234"],
)
def test_validate_schedule_id_returns_a_good_id(value: str) -> None:
    """A scheduleId of 1 to 32 unreserved characters comes back unchanged."""
    assert validate_schedule_id(value) is value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "scheduleId must be a str, got NoneType"),
        (5, "scheduleId must be a str, got int"),
        (b"SC-1", "scheduleId must be a str, got bytes"),
        ("", "scheduleId must not be empty"),
        ("S" * 33, "scheduleId 'SSSSSSSS"),
        ("S" * 33, "is 33 characters long; at most 32 are allowed"),
        ("SC/1", "contains '/' at position 2"),
        ("SC 1", "contains ' ' at position 2"),
        ("SC-1\n", "contains '\\n' at position 4"),
        ("ü", "contains 'ü' at position 0"),
        (".", "must not consist of dots only"),
        ("..", "must not consist of dots only"),
    ],
)
def test_validate_schedule_id_says_what_is_wrong(value: object, message: str) -> None:
    """A bad scheduleId raises InvalidParameterError naming the problem."""
    with pytest.raises(InvalidParameterError, match=re.escape(message)):
        validate_schedule_id(value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        5,
        "",
        SECRET + "K" * (MAX_API_KEY + 1 - len(SECRET)),
        SECRET + "/",
        SECRET + "\n",
        "...",
    ],
)
def test_validate_api_key_never_shows_the_key(value: object) -> None:
    """A bad apiKey raises naming the apiKey, and shows at most its redacted prefix."""
    with pytest.raises(InvalidParameterError, match="apiKey") as info:
        validate_api_key(value)
    assert SECRET[:5] not in str(info.value)


def test_validate_api_key_returns_a_good_key() -> None:
    """An apiKey of 1 to 50 unreserved characters comes back unchanged."""
    key = "K" * MAX_API_KEY
    assert validate_api_key(key) is key


@pytest.mark.parametrize("value", ["", None, 5, b"SC-1", ["SC-1"]])
def test_check_key_refuses_what_is_no_non_empty_str(value: object) -> None:
    """A limiter key must be a non-empty str; the message names the argument."""
    with pytest.raises(InvalidParameterError, match=r"^schedule_id must be a non-empty string$"):
        check_key("schedule_id", value)


@pytest.mark.parametrize("value", ["x", "SC/1 with spaces", "ü" * 100])
def test_check_key_takes_any_non_empty_str(value: str) -> None:
    """A limiter does not judge the id's characters or length, only that it is a key."""
    assert check_key("schedule_id", value) is value


@pytest.mark.parametrize(
    ("value", "allow_colon", "message"),
    [
        (None, True, "password must be a str, got NoneType"),
        (5, True, "password must be a str, got int"),
        ("", True, "password must not be empty"),
        (SECRET + "\n", True, "password contains a control character"),
        (SECRET + "\x00", True, "password contains a control character"),
        (SECRET + ":x", False, "password must not contain ':'"),
    ],
)
def test_check_credential_refuses_without_echoing(
    value: object, allow_colon: bool, message: str
) -> None:
    """A bad credential raises naming the setting and never showing the value."""
    with pytest.raises(InvalidParameterError, match=re.escape(message)) as info:
        check_credential("password", value, allow_colon=allow_colon)
    assert SECRET[:4] not in str(info.value)


def test_check_credential_takes_a_colon_where_allowed() -> None:
    """A password may hold a colon; only a Basic-auth user name may not."""
    assert check_credential("password", "a:b") == "a:b"


@pytest.mark.parametrize(
    ("check", "value", "kwargs", "message"),
    [
        (check_int, True, {}, "n must be an int, got bool"),
        (check_int, False, {"optional": True}, "n must be an int or None, got bool"),
        (check_int, 1.0, {}, "n must be an int, got float"),
        (check_int, "1", {}, "n must be an int, got str"),
        (check_int, None, {}, "n must be an int, got NoneType"),
        (check_int, 0, {"minimum": 1}, "n must be >= 1, got 0"),
        (check_int, -1, {"minimum": 0, "optional": True}, "n must be >= 0, got -1"),
        (check_number, -1, {"zero": True}, "n must be >= 0, got -1"),
        (check_number, math.nan, {"zero": True}, "n must be >= 0, got nan"),
        (check_number, math.inf, {"finite": True}, "n must be a finite number > 0, got inf"),
        (check_number, 0, {"finite": True}, "n must be a finite number > 0, got 0"),
        (check_number, "1", {"unit": " seconds"}, "n must be > 0 seconds, got '1'"),
        (check_optional_number, True, {}, "n must be > 0 or None, got True"),
        (check_optional_number, 0, {}, "n must be > 0 or None, got 0"),
        (check_optional_number, -1.5, {"zero": True}, "n must be >= 0 or None, got -1.5"),
    ],
)
def test_int_and_number_messages_name_type_and_bound(
    check: Callable[..., object], value: object, kwargs: dict[str, object], message: str
) -> None:
    """The message names the argument and the type or bound, unit and None the check applies."""
    with pytest.raises(InvalidParameterError, match=f"^{re.escape(message)}$"):
        check("n", value, **kwargs)


def test_check_int_returns_the_value_or_none() -> None:
    """A good int comes back as it is; None only where it is optional."""
    assert check_int("n", 10**30, minimum=1) == 10**30
    assert check_int("n", -5) == -5
    assert check_int("n", None, optional=True) is None


@pytest.mark.parametrize("value", [*NOT_NUMBERS, math.nan, -math.inf, -1, -0.001, 0, 0.0])
def test_check_number_refuses_all_but_positive_numbers(value: object) -> None:
    """A positive number is an int or float > 0: no bool, str, None, NaN, zero or negative."""
    with pytest.raises(InvalidParameterError, match=r"^window must be > 0, got "):
        check_number("window", value)


def test_check_number_returns_a_float() -> None:
    """A good number comes back as a float; 0, infinity and None only where allowed."""
    assert check_number("n", 3) == 3.0
    assert type(check_number("n", 3)) is float
    assert check_number("n", 0, zero=True) == 0.0
    assert check_number("n", math.inf) == math.inf
    assert check_optional_number("n", None) is None
    assert check_optional_number("n", 2) == 2.0


@pytest.mark.parametrize(
    "value", [*(v for v in NOT_NUMBERS if v is not None), -1, -1e-9, math.nan, -math.inf]
)
def test_check_queue_timeout_refuses_what_the_limiters_refuse(value: object) -> None:
    """queue_timeout is None or a number >= 0: no bool, str, NaN or negative value."""
    with pytest.raises(InvalidParameterError, match=r"^queue_timeout must be >= 0 or None, got "):
        check_queue_timeout(value)


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), (0, 0.0), (0.25, 0.25), (5, 5.0), (math.inf, None)]
)
def test_check_queue_timeout_returns_seconds_or_no_deadline(
    value: object, expected: float | None
) -> None:
    """A good queue_timeout comes back as float seconds; None and infinity both mean no deadline."""
    assert check_queue_timeout(value) == expected


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None, math.inf])
def test_check_priority_refuses_what_is_no_int(value: object) -> None:
    """A priority is an int; a bool, float, str or None is refused, naming its type."""
    message = f"priority must be an int, got {type(value).__name__}"
    with pytest.raises(InvalidParameterError, match=f"^{re.escape(message)}$"):
        check_priority(value)


@pytest.mark.parametrize("value", [-(10**20), -1, 0, 7, 10**20])
def test_check_priority_takes_any_int(value: int) -> None:
    """Any int is a priority, negative and huge ones included."""
    assert check_priority(value) == value
