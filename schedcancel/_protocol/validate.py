"""Argument checks shared by the client, the bulk job, the limiters and the settings.

Every check raises [`InvalidParameterError`][schedcancel.errors.InvalidParameterError] (also a
``ValueError``) before any I/O or budget use, and names the argument in its
message. A ``bool`` is never taken for a number (``True`` is an ``int`` to
Python, not to a caller), and NaN fails every bound. No message shows a whole
apiKey or any credential: apiKeys appear as `redact_key()`
shows them, credentials not at all.
"""

from __future__ import annotations

import math
import re
from typing import Literal, overload

from ..errors import InvalidParameterError
from .redact import redact_key

__all__ = [
    "MAX_API_KEY",
    "MAX_SCHEDULE_ID",
    "check_credential",
    "check_int",
    "check_key",
    "check_number",
    "check_optional_number",
    "check_priority",
    "check_queue_timeout",
    "validate_api_key",
    "validate_schedule_id",
]

#: Longest apiKey the API takes in the path.
MAX_API_KEY = 50
#: Longest scheduleId the API takes in the path.
MAX_SCHEDULE_ID = 32

# RFC 3986 unreserved characters: nothing in an id can change the URL's meaning.
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]+")


def _validate_id(value: object, *, name: str, limit: int, secret: bool) -> str:
    if (
        isinstance(value, str)
        and len(value) <= limit
        and _UNRESERVED.fullmatch(value)
        and value.strip(".")
    ):
        return value  # valid: the checks below only find the words for what is wrong
    if not isinstance(value, str):
        raise InvalidParameterError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidParameterError(f"{name} must not be empty")
    shown = redact_key(value) if secret else repr(value[:40])
    if len(value) > limit:
        raise InvalidParameterError(
            f"{name} {shown} is {len(value)} characters long; at most {limit} are allowed"
        )
    if not _UNRESERVED.fullmatch(value):
        position, char = next((i, c) for i, c in enumerate(value) if not _UNRESERVED.match(c))
        raise InvalidParameterError(
            f"{name} {shown} contains {char!r} at position {position}; "
            "only A-Z a-z 0-9 . _ ~ - are allowed"
        )
    # "." and ".." are dot-segments: a URL normaliser would walk up the path.
    raise InvalidParameterError(f"{name} {shown} must not consist of dots only")


def validate_api_key(value: object) -> str:
    """Check a connector apiKey for the URL path.

    Args:
        value: the candidate.

    Returns:
        The key, unchanged.

    Raises:
        InvalidParameterError: not a str of 1 to 50 characters from ``[A-Za-z0-9._~-]``
            (the message shows only a redacted form of the key).
    """
    return _validate_id(value, name="apiKey", limit=MAX_API_KEY, secret=True)


def validate_schedule_id(value: object) -> str:
    """Check a scheduleId for the URL path.

    Args:
        value: the candidate.

    Returns:
        The id, unchanged.

    Raises:
        InvalidParameterError: not a str of 1 to 32 characters from ``[A-Za-z0-9._~-]``.
    """
    return _validate_id(value, name="scheduleId", limit=MAX_SCHEDULE_ID, secret=False)


def check_key(name: str, value: object) -> str:
    """Check a key a limiter counts by (a scheduleId, a username): any non-empty str.

    A limiter does not judge whether the server would take the id (the client
    did that); it only needs a key it can hash and compare.

    Args:
        name: the argument's name, for the message.
        value: the candidate.

    Returns:
        The key, unchanged.

    Raises:
        InvalidParameterError: not a str, or empty.
    """
    if not isinstance(value, str) or not value:
        raise InvalidParameterError(f"{name} must be a non-empty string")
    return value


def check_credential(name: str, value: object, *, allow_colon: bool = True) -> str:
    """Check a username, password or shared secret; the message never shows the value.

    Args:
        name: the setting's name, for the message.
        value: the candidate.
        allow_colon: False for a Basic-auth user name, which ends at the first ``:``
            (RFC 7617).

    Returns:
        The value, unchanged.

    Raises:
        InvalidParameterError: not a str, empty, with a control character, or a
            ``:`` where none is allowed.
    """
    if not isinstance(value, str):
        raise InvalidParameterError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidParameterError(f"{name} must not be empty")
    if not value.isprintable():
        raise InvalidParameterError(
            f"{name} contains a control character (a newline read from a file?)"
        )
    if not allow_colon and ":" in value:
        raise InvalidParameterError(f"{name} must not contain ':' (HTTP Basic auth, RFC 7617)")
    return value


@overload
def check_int(
    name: str, value: object, *, minimum: int | None = None, optional: Literal[False] = False
) -> int: ...
@overload
def check_int(
    name: str, value: object, *, minimum: int | None = None, optional: bool
) -> int | None: ...
def check_int(
    name: str, value: object, *, minimum: int | None = None, optional: bool = False
) -> int | None:
    """Check an int argument (a bool is none), at least ``minimum``.

    Args:
        name: the argument's name, for the message.
        value: the candidate.
        minimum: the smallest value allowed; None for no bound.
        optional: None is allowed too.

    Returns:
        The value, unchanged.

    Raises:
        InvalidParameterError: not an int (or None where allowed), or below ``minimum``.
    """
    if value is None and optional:
        return None
    kind = "an int or None" if optional else "an int"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(f"{name} must be {kind}, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidParameterError(f"{name} must be >= {minimum}, got {value!r}")
    return value


def check_number(
    name: str, value: object, *, zero: bool = False, finite: bool = False, unit: str = ""
) -> float:
    """Check a real-number argument (an int or a float, never a bool): > 0, or >= 0.

    Args:
        name: the argument's name, for the message.
        value: the candidate.
        zero: 0 is allowed too (``>= 0`` instead of ``> 0``).
        finite: infinity is refused too (NaN always is).
        unit: put after the bound in the message, e.g. ``" seconds"``.

    Returns:
        The value as a float.

    Raises:
        InvalidParameterError: e.g. ``"timeout must be a finite number > 0, got 0"``.
    """
    return _number(name, value, zero=zero, finite=finite, tail=unit)


def check_optional_number(name: str, value: object, *, zero: bool = False) -> float | None:
    """Check a real-number argument as `check_number()` does, None allowed too.

    Args:
        name: the argument's name, for the message.
        value: the candidate.
        zero: 0 is allowed too (``>= 0`` instead of ``> 0``).

    Returns:
        The value as a float, or None.

    Raises:
        InvalidParameterError: e.g. ``"retry_after_cap must be > 0 or None, got 0"``.
    """
    return None if value is None else _number(name, value, zero=zero, finite=False, tail=" or None")


def _number(name: str, value: object, *, zero: bool, finite: bool, tail: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (value >= 0 if zero else value > 0)  # False for NaN
        or (finite and math.isinf(value))
    ):
        kind = "a finite number " if finite else ""
        bound = ">= 0" if zero else "> 0"
        raise InvalidParameterError(f"{name} must be {kind}{bound}{tail}, got {value!r}")
    return float(value)


def check_queue_timeout(value: object) -> float | None:
    """Check a ``queue_timeout``: None, or a number of seconds >= 0 (a bool is none).

    Infinity is allowed and means what None means: no deadline. It comes back
    as None, so a limiter never computes with an infinite deadline.

    Args:
        value: the candidate.

    Returns:
        The seconds as a float, or None for no deadline.

    Raises:
        InvalidParameterError: negative, NaN, a bool, or not a number.
    """
    seconds = check_optional_number("queue_timeout", value, zero=True)
    return None if seconds is None or math.isinf(seconds) else seconds


def check_priority(value: object) -> int:
    """Check a limiter ``priority``: any int (higher goes first), never a bool.

    Args:
        value: the candidate.

    Returns:
        The priority, unchanged.

    Raises:
        InvalidParameterError: not an int, or a bool.
    """
    return check_int("priority", value)
