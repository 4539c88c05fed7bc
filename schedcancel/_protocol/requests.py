"""The request bodies of start, update and continue: attrs values validated on construction. Pure.

A value that exists is one the API's schema accepts, so a bad amount or a
naive datetime fails where it is written, before any I/O and before any
limiter budget is used, with an [`InvalidParameterError`][schedcancel.errors.InvalidParameterError]
that names the field. Messages say what is wrong and never echo a value
(a merchant's metadata or callback URL may carry anything).

Wire formats (https://documentation.ixopay.com/api/transaction/schedule-start):

* date-times are ``YYYY-MM-DDTHH:MM:SS+HH:MM``: the documented regex takes no
  ``Z``, no fraction and only ``+`` offsets, so every aware datetime is sent
  in UTC as ``...+00:00``, seconds truncated; a naive one is refused;
* ``amount`` is a string matching ``^([0-9]{1,10})(\\.[0-9]{1,3})?$``;
* ``currency`` matches ``^[A-Z]{3}$``; ``periodUnit`` is DAY, WEEK, MONTH or YEAR;
* ``registrationUuid`` holds at most 50 characters, ``merchantMetaData`` 255,
  ``callbackUrl`` 4096.

`to_json()` gives the exact body bytes: compact JSON, camelCase names in
the schema's order, only the fields that are set.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import attrs

from ..errors import InvalidParameterError
from .validate import validate_schedule_id

__all__ = [
    "ContinueSchedule",
    "PeriodUnit",
    "StartRow",
    "StartSchedule",
    "UpdateRow",
    "UpdateSchedule",
    "format_date_time",
]

_AMOUNT = re.compile(r"[0-9]{1,10}(?:\.[0-9]{1,3})?")
_CURRENCY = re.compile(r"[A-Z]{3}")
#: Longest registrationUuid, merchantMetaData and callbackUrl the schema allows.
MAX_REGISTRATION_UUID = 50
MAX_MERCHANT_META_DATA = 255
MAX_CALLBACK_URL = 4096


class PeriodUnit(enum.StrEnum):
    """The unit of a schedule's period (``periodUnit``); members equal their wire strings."""

    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    YEAR = "YEAR"


_UNITS: dict[str, PeriodUnit] = {unit.value: unit for unit in PeriodUnit}


def format_date_time(name: str, moment: object) -> str:
    """Format an aware datetime the way the API's DateTimeZone regex accepts it.

    Args:
        name: the field's wire name, for the message.
        moment: an aware `datetime`.

    Returns:
        For example ``"2026-12-03T09:00:00+00:00"``: converted to UTC, seconds
        truncated (the regex allows no fraction, no ``Z`` and no ``-`` offset).

    Raises:
        InvalidParameterError: not a datetime, naive, or out of range in UTC.
    """
    if not isinstance(moment, datetime):
        raise InvalidParameterError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidParameterError(
            f"{name} must be timezone-aware (e.g. datetime(..., tzinfo=UTC)); "
            "a naive datetime is ambiguous"
        )
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        raise InvalidParameterError(f"{name} is out of range once converted to UTC") from None
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}+00:00"
    )


def _start_date_time(value: datetime) -> datetime:
    format_date_time("start_date_time", value)  # the checks; to_json formats again
    return value


def _continue_date_time(value: datetime) -> datetime:
    format_date_time("at (continueDateTime)", value)  # client.continue_(id, at=...)
    return value


def _amount(value: Decimal | str | int) -> str:
    # A float is refused: 0.1 + 0.2 is not an amount anyone meant to charge.
    if isinstance(value, bool) or not isinstance(value, Decimal | str | int):
        raise InvalidParameterError(
            f"amount must be a Decimal, a str or an int, got {type(value).__name__}"
            + (
                " (floats are inexact: use Decimal('9.99') or '9.99')"
                if isinstance(value, float)
                else ""
            )
        )
    text = format(value, "f") if isinstance(value, Decimal) else str(value)
    if isinstance(value, Decimal) and "." in text and not _AMOUNT.fullmatch(text):
        # Decimal("9.99") * Decimal("1.00") is Decimal("9.9900"): the same amount, with
        # zeros the API's pattern does not take; dropping them changes no value.
        text = text.rstrip("0").rstrip(".")
    if not _AMOUNT.fullmatch(text):
        raise InvalidParameterError(
            "amount must be a non-negative decimal with at most 10 digits before the point "
            "and 3 after it (e.g. '9.99')"
        )
    return text


def _currency(value: str) -> str:
    given: object = value  # checked as what a caller may really pass
    if not isinstance(given, str) or not _CURRENCY.fullmatch(given):
        raise InvalidParameterError(
            "currency must be three upper-case letters A-Z (ISO 4217, e.g. 'EUR')"
        )
    return value


def _period_length(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameterError(f"period_length must be an int, got {type(value).__name__}")
    if value < 0:
        raise InvalidParameterError("period_length must be >= 0")
    return value


def _period_unit(value: PeriodUnit | str) -> PeriodUnit:
    given: object = value  # checked as what a caller may really pass
    unit = _UNITS.get(given) if isinstance(given, str) else None
    if unit is None:
        raise InvalidParameterError("period_unit must be one of DAY, WEEK, MONTH, YEAR")
    return unit


def _check_text(name: str, value: object, limit: int, *, minimum: int = 0) -> str:
    if not isinstance(value, str):
        raise InvalidParameterError(f"{name} must be a str, got {type(value).__name__}")
    if not minimum <= len(value) <= limit:
        raise InvalidParameterError(
            f"{name} is {len(value)} characters long; {minimum} to {limit} are allowed"
        )
    return value


def _registration_uuid(value: str) -> str:
    return _check_text("registration_uuid", value, MAX_REGISTRATION_UUID, minimum=1)


def _merchant_meta_data(value: str | None) -> str | None:
    if value is None:
        return None
    return _check_text("merchant_meta_data", value, MAX_MERCHANT_META_DATA)


def _callback_url(value: str | None) -> str | None:
    if value is None:
        return None
    _check_text("callback_url", value, MAX_CALLBACK_URL, minimum=1)
    try:
        parts = urlsplit(value)
    except ValueError:
        raise InvalidParameterError("callback_url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or not value.isprintable():
        raise InvalidParameterError("callback_url must be an absolute http:// or https:// URL")
    return value


# Update's fields are all optional: None passes, anything else is checked as for start.


def _opt_registration_uuid(value: str | None) -> str | None:
    return None if value is None else _registration_uuid(value)


def _opt_amount(value: Decimal | str | int | None) -> str | None:
    return None if value is None else _amount(value)


def _opt_currency(value: str | None) -> str | None:
    return None if value is None else _currency(value)


def _opt_period_length(value: int | None) -> int | None:
    return None if value is None else _period_length(value)


def _opt_period_unit(value: PeriodUnit | str | None) -> PeriodUnit | None:
    return None if value is None else _period_unit(value)


def _opt_start_date_time(value: datetime | None) -> datetime | None:
    return None if value is None else _start_date_time(value)


def _show_url(value: str | None) -> str:
    # A callback URL may carry a token in its query or userinfo: show where it points only.
    if value is None:
        return "None"
    parts = urlsplit(value)
    return repr(f"{parts.scheme}://{parts.hostname or ''}/...")


#: Attribute name to wire name, in the schema's order (the order bodies are written in).
_WIRE = {
    "registration_uuid": "registrationUuid",
    "amount": "amount",
    "currency": "currency",
    "period_length": "periodLength",
    "period_unit": "periodUnit",
    "start_date_time": "startDateTime",
    "merchant_meta_data": "merchantMetaData",
    "callback_url": "callbackUrl",
}


def _body(value: object) -> bytes:
    """The compact JSON body of the fields of ``value`` that are set, in the schema's order."""
    fields: dict[str, Any] = {}
    for name, wire in _WIRE.items():
        field = getattr(value, name)
        if field is None:
            continue
        fields[wire] = format_date_time(wire, field) if isinstance(field, datetime) else field
    return json.dumps(fields, separators=(",", ":")).encode()


@attrs.frozen(kw_only=True)
class StartSchedule:
    """The body of ``POST /schedule/{apiKey}/start``: a new schedule on a registered payment.

    Every field is checked on construction
    ([`InvalidParameterError`][schedcancel.InvalidParameterError] naming the field); see the module
    docstring for the wire formats.

    Attributes:
        registration_uuid: the uuid of a Register, or of a Debit or Preauthorize
            with ``withRegister`` (1 to 50 characters).
        amount: the amount of each charge, e.g. ``Decimal("9.99")`` or ``"9.99"``
            (an int is taken too, a float never); kept as the string sent.
        currency: three upper-case letters, e.g. ``"EUR"``.
        period_length: periods between charges (``>= 0``).
        period_unit: [`PeriodUnit`][schedcancel.PeriodUnit] or its string (``"MONTH"``).
        start_date_time: the first charge, an aware datetime (sent in UTC).
        merchant_meta_data: up to 255 characters of the merchant's own, or None.
        callback_url: an absolute http(s) URL (up to 4096 characters) for the
            schedule's transactions, or None; its repr shows only the host.
    """

    registration_uuid: str = attrs.field(converter=_registration_uuid)
    amount: str = attrs.field(converter=_amount)
    currency: str = attrs.field(converter=_currency)
    period_length: int = attrs.field(converter=_period_length)
    period_unit: PeriodUnit = attrs.field(converter=_period_unit)
    start_date_time: datetime = attrs.field(converter=_start_date_time)
    merchant_meta_data: str | None = attrs.field(default=None, converter=_merchant_meta_data)
    callback_url: str | None = attrs.field(default=None, converter=_callback_url, repr=_show_url)

    def to_json(self) -> bytes:
        """The body bytes: compact JSON, camelCase, only the fields that are set."""
        return _body(self)


@attrs.frozen(kw_only=True)
class UpdateSchedule:
    """The body of ``POST /schedule/{apiKey}/{scheduleId}/update``: the fields to change.

    The same fields and checks as [`StartSchedule`][schedcancel.StartSchedule], all optional; at
    least one must be set, and only the ones set are sent (None means
    "leave as it is", so a field cannot be cleared this way).

    Raises:
        InvalidParameterError: a field is invalid, or none is set.
    """

    registration_uuid: str | None = attrs.field(default=None, converter=_opt_registration_uuid)
    amount: str | None = attrs.field(default=None, converter=_opt_amount)
    currency: str | None = attrs.field(default=None, converter=_opt_currency)
    period_length: int | None = attrs.field(default=None, converter=_opt_period_length)
    period_unit: PeriodUnit | None = attrs.field(default=None, converter=_opt_period_unit)
    start_date_time: datetime | None = attrs.field(default=None, converter=_opt_start_date_time)
    merchant_meta_data: str | None = attrs.field(default=None, converter=_merchant_meta_data)
    callback_url: str | None = attrs.field(default=None, converter=_callback_url, repr=_show_url)

    def __attrs_post_init__(self) -> None:
        if all(getattr(self, name) is None for name in _WIRE):
            raise InvalidParameterError("UpdateSchedule needs at least one field to change")

    def to_json(self) -> bytes:
        """The body bytes: compact JSON, camelCase, only the fields that are set."""
        return _body(self)


# Fields a row's journal line and report show; merchantMetaData and callbackUrl may carry
# anything (a token in a URL), so only the digest covers them.
_SHOWN = ("registrationUuid", "amount", "currency", "periodLength", "periodUnit", "startDateTime")
#: Longest key a start row may have (the journal keeps it whole).
MAX_ROW_KEY = 100


def _digest(body: bytes) -> str:
    """A body's fingerprint: 16 hex digits of its SHA-256."""
    return hashlib.sha256(body).hexdigest()[:16]


def _shown(body: bytes) -> dict[str, str | int]:
    """The body's fields a report may show, by wire name."""
    fields: dict[str, str | int] = json.loads(body)
    return {key: value for key, value in fields.items() if key in _SHOWN}


def _row_id(value: str) -> str:
    return validate_schedule_id(value)


def _row_changes(value: UpdateSchedule) -> UpdateSchedule:
    given: object = value  # checked as what a caller may really pass
    if not isinstance(given, UpdateSchedule):
        raise InvalidParameterError(
            f"changes must be an UpdateSchedule, got {type(given).__name__}"
        )
    return value


@attrs.frozen
class UpdateRow:
    """One row of a bulk update: a schedule and the change it gets.

    Attributes:
        schedule_id: the schedule (checked as every scheduleId is).
        changes: the fields to change.
    """

    schedule_id: str = attrs.field(converter=_row_id)
    changes: UpdateSchedule = attrs.field(converter=_row_changes)

    @property
    def key(self) -> str:
        """The row's name in a bulk job's journal: its scheduleId."""
        return self.schedule_id

    @property
    def digest(self) -> str:
        """The change's fingerprint: 16 hex digits of the SHA-256 of its body bytes.

        The journal keeps it per row, so that a re-run can tell a row it has
        applied already (the same digest: skipped) from one whose change is new
        (another digest: a ``conflict``, not sent).
        """
        return _digest(self.changes.to_json())

    def values(self) -> dict[str, str | int]:
        """The new values a report shows: the body's fields but ``merchantMetaData`` and
        ``callbackUrl`` (which may carry anything), by wire name."""
        return _shown(self.changes.to_json())


def _row_schedule(value: StartSchedule) -> StartSchedule:
    given: object = value  # checked as what a caller may really pass
    if not isinstance(given, StartSchedule):
        raise InvalidParameterError(f"schedule must be a StartSchedule, got {type(given).__name__}")
    return value


def _row_key(value: str) -> str:
    _check_text("key", value, MAX_ROW_KEY, minimum=1)
    if not value.isprintable() or value != value.strip():
        raise InvalidParameterError(
            "key must be printable, without spaces around it (a control character or a"
            " stray space would make the same row look like another)"
        )
    return value


def _registration_of(row: StartRow) -> str:
    return row.schedule.registration_uuid


@attrs.frozen
class StartRow:
    """One row of a bulk start (a migration): a new schedule, and the key that names the row.

    ``start`` is not idempotent, so a bulk start journals each row by its key:
    a re-run never sends a row whose key is final in the journal (started, or
    its outcome unknown), and a row with a known key but other fields (the
    file was edited since) is a ``conflict``, not sent.

    Attributes:
        schedule: the schedule to start (validated when it was made).
        key: the row's name in the journal: the merchant's own id for the row (a
            customer or subscription number), 1 to 100 printable characters;
            by default the schedule's ``registration_uuid`` (one schedule per
            registration). Give one where a registration gets two schedules.
    """

    schedule: StartSchedule = attrs.field(converter=_row_schedule)
    key: str = attrs.field(
        default=attrs.Factory(_registration_of, takes_self=True), converter=_row_key
    )

    @property
    def digest(self) -> str:
        """The request's fingerprint: 16 hex digits of the SHA-256 of its body bytes.

        The journal keeps it with the row's key: a re-run tells a row it has
        sent (the same digest) from an edited one (another digest: a
        ``conflict``), and refuses a body started already under another key.
        """
        return _digest(self.schedule.to_json())

    def values(self) -> dict[str, str | int]:
        """The fields a report shows: the body's but ``merchantMetaData`` and ``callbackUrl``
        (which may carry anything), by wire name."""
        return _shown(self.schedule.to_json())


@attrs.frozen
class ContinueSchedule:
    """The body of ``POST /schedule/{apiKey}/{scheduleId}/continue``.

    Attributes:
        continue_date_time: when the paused (or failed) schedule charges
            next, an aware datetime (sent in UTC as ``continueDateTime``).
    """

    continue_date_time: datetime = attrs.field(converter=_continue_date_time)

    def to_json(self) -> bytes:
        """The body bytes: ``{"continueDateTime":"YYYY-MM-DDTHH:MM:SS+00:00"}``."""
        stamp = format_date_time("continue_date_time", self.continue_date_time)
        return json.dumps({"continueDateTime": stamp}, separators=(",", ":")).encode()
