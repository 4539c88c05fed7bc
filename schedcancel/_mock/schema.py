"""Request-body checks of the mock server: pure, with the server's date-time passed in.

The IXOPAY docs answer business errors as HTTP 200 with ``success: false`` and
leave the bodies of 400s undocumented, so the mock splits refusals
this way:

- a body that is not JSON (or not UTF-8), or a ``Content-Type`` other than
  ``application/json``: **400, errorCode 1005** "Invalid request body"; so is
  anything but ``{}`` (or ``[]``) for cancel and pause, and any body on get;
- JSON of the wrong shape: not an object, an unknown key, a value of the wrong
  type, a string that breaks its regex or length limit, an unknown
  ``periodUnit``, a negative ``periodLength``: **400, errorCode 1002**
  "Invalid request data";
- a well-typed value the business rules refuse: **200, success false** with
  the documented code: 7010 ``registrationUuid`` missing (start), 7050
  ``startDateTime`` not a DateTimeZone or older than 24 h, 7060 the same for
  ``continueDateTime`` (or missing), 7080 ``amount`` not above 0, 7090
  ``periodLength`` not within 1-364.

Regexes are the API documentation's, matched against the whole string.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs

from .operations import Body

__all__ = ["AMOUNT", "CURRENCY", "DATE_TIME_ZONE", "PERIOD_UNITS", "Refusal", "check_body"]

#: The spec's amount pattern.
AMOUNT = re.compile(r"^(([0-9]{1,10})|([0-9]{1,10}\.[0-9]{1,3}))$")
#: The spec's currency pattern.
CURRENCY = re.compile(r"^[A-Z]{3}$")
#: The spec's DateTimeZone pattern (a literal ``+HH:MM`` offset only).
DATE_TIME_ZONE = re.compile(
    r"^[0-9]{4}-((0[1-9])|(1[0-2]))-((0[1-9])|([1-2][0-9])|(3[0-1]))"
    r"T(([0-1][0-9])|([2][0-3])):([0-5][0-9]):([0-5][0-9])\+[0-9]{2}\:[0-9]{2}$"
)
#: The periodUnit enum.
PERIOD_UNITS = frozenset({"DAY", "WEEK", "MONTH", "YEAR"})

_MAX_AGE = timedelta(hours=24)
_MAX_PERIOD = 364


@attrs.frozen
class Refusal:
    """A body the server refuses.

    Attributes:
        status: the HTTP status (400, or 200 for a business error).
        code: the errorCode.
        message: the errorMessage.
    """

    status: int
    code: int
    message: str


_BAD_BODY = Refusal(400, 1005, "Invalid request body")
_BAD_DATA = Refusal(400, 1002, "Invalid request data")
_NO_REGISTRATION = Refusal(200, 7010, "registrationId is required")
_BAD_START = Refusal(200, 7050, "The startDateTime is invalid or older than 24 hours")
_BAD_CONTINUE = Refusal(200, 7060, "The continueDateTime is invalid or older than 24 hours")
_BAD_AMOUNT = Refusal(200, 7080, "The schedule amount must be greater than 0")
_BAD_PERIOD = Refusal(200, 7090, "The period length must be greater than 0 or smaller than 365")


class _Refused(Exception):  # noqa: N818 - control flow inside this module only
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def _string(max_length: int, pattern: re.Pattern[str] | None = None) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, str) or len(value) > max_length:
            raise _Refused(_BAD_DATA)
        if pattern is not None and pattern.fullmatch(value) is None:
            raise _Refused(_BAD_DATA)
        return value

    return check


def _nullable(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def _amount(value: Any) -> Any:
    text = _string(14, AMOUNT)(value)
    if Decimal(text) <= 0:
        raise _Refused(_BAD_AMOUNT)
    return text


def _period_length(value: Any) -> Any:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Refused(_BAD_DATA)
    if not 0 < value <= _MAX_PERIOD:
        raise _Refused(_BAD_PERIOD)
    return value


def _period_unit(value: Any) -> Any:
    if value not in PERIOD_UNITS:
        raise _Refused(_BAD_DATA)
    return value


def _date_time(refusal: Refusal, now: datetime) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, str):
            raise _Refused(_BAD_DATA)
        if DATE_TIME_ZONE.fullmatch(value) is None:
            raise _Refused(refusal)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:  # a date the regex lets through: 2001-02-30
            raise _Refused(refusal) from None
        if parsed < now - _MAX_AGE:
            raise _Refused(refusal)
        return parsed

    return check


def _schedule_fields(now: datetime) -> Mapping[str, Callable[[Any], Any]]:
    """StartSchedule's fields, each with its check (which returns the stored value)."""
    return {
        "registrationUuid": _string(50),
        "amount": _amount,
        "currency": _string(3, CURRENCY),
        "periodLength": _period_length,
        "periodUnit": _period_unit,
        "startDateTime": _date_time(_BAD_START, now),
        "merchantMetaData": _nullable(_string(255)),
        "callbackUrl": _nullable(_string(4096)),
    }


def _object(value: Any, fields: Mapping[str, Callable[[Any], Any]]) -> dict[str, Any]:
    if not isinstance(value, dict) or not set(value) <= set(fields):
        raise _Refused(_BAD_DATA)
    return {key: fields[key](item) for key, item in value.items()}


def _parse(kind: Body, value: Any, now: datetime) -> dict[str, Any]:
    if kind is Body.CONTINUE:
        if isinstance(value, dict) and "continueDateTime" not in value:
            raise _Refused(_BAD_CONTINUE)
        return _object(value, {"continueDateTime": _date_time(_BAD_CONTINUE, now)})
    if kind is Body.START and isinstance(value, dict) and not value.get("registrationUuid"):
        raise _Refused(_NO_REGISTRATION)
    return _object(value, _schedule_fields(now))


def check_body(
    kind: Body, body: bytes, content_type: str | None, *, now: datetime
) -> dict[str, Any] | Refusal:
    """Check one request body against its operation's schema.

    Args:
        kind: what the operation takes.
        body: the raw body.
        content_type: the request's media type (no parameters), None when absent.
        now: the server's date-time, for "older than 24 hours".

    Returns:
        The fields it sets, by wire name (date-times parsed, others as sent;
        empty for get, cancel and pause), or the refusal.
    """
    if kind is Body.NONE:
        return {} if not body else _BAD_BODY
    if content_type != "application/json":
        return _BAD_BODY
    try:
        value = json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        return _BAD_BODY
    if kind is Body.EMPTY:
        return {} if value in ({}, []) else _BAD_BODY
    try:
        return _parse(kind, value, now)
    except _Refused as refused:
        return refused.refusal
