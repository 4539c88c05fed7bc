"""Tests for the request values of start, update and continue: checks and exact wire bytes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from schedcancel import InvalidParameterError, PeriodUnit, StartSchedule, UpdateSchedule
from schedcancel._protocol.requests import ContinueSchedule, format_date_time

# The spec's DateTimeZone regex (https://documentation.ixopay.com/api/transaction/schedule-start).
DATE_TIME_ZONE = re.compile(
    r"^[0-9]{4}-((0[1-9])|(1[0-2]))-((0[1-9])|([1-2][0-9])|(3[0-1]))T(([0-1][0-9])|([2][0-3]))"
    r":([0-5][0-9]):([0-5][0-9])\+[0-9]{2}\:[0-9]{2}$"
)
WHEN = datetime(2026, 12, 3, 9, 30, 15, tzinfo=UTC)
SECRETISH = "tok-SENTINEL-5c0ffee"


def start(**changes: Any) -> StartSchedule:
    """A valid StartSchedule with ``changes`` applied."""
    fields: dict[str, Any] = {
        "registration_uuid": "reg-1",
        "amount": "9.99",
        "currency": "EUR",
        "period_length": 1,
        "period_unit": "MONTH",
        "start_date_time": WHEN,
    }
    return StartSchedule(**{**fields, **changes})


def test_start_body_is_compact_camel_case_in_schema_order() -> None:
    """All fields set: compact JSON, camelCase, the schema's order, UTC date-time."""
    value = start(
        amount=Decimal("12.500"),
        period_unit=PeriodUnit.WEEK,
        start_date_time=datetime(
            2026, 12, 3, 11, 30, 15, 999_999, tzinfo=timezone(timedelta(hours=2))
        ),
        merchant_meta_data="order 42 \u00e9",
        callback_url="https://shop.example/cb",
    )
    assert value.to_json() == (
        b'{"registrationUuid":"reg-1","amount":"12.500","currency":"EUR","periodLength":1,'
        b'"periodUnit":"WEEK","startDateTime":"2026-12-03T09:30:15+00:00",'
        b'"merchantMetaData":"order 42 \\u00e9","callbackUrl":"https://shop.example/cb"}'
    )


def test_start_leaves_unset_optional_fields_out() -> None:
    """merchantMetaData and callbackUrl are not sent when None."""
    body = json.loads(start().to_json())
    assert list(body) == [
        "registrationUuid",
        "amount",
        "currency",
        "periodLength",
        "periodUnit",
        "startDateTime",
    ]
    assert body["startDateTime"] == "2026-12-03T09:30:15+00:00"
    assert DATE_TIME_ZONE.match(body["startDateTime"])


@pytest.mark.parametrize(
    ("amount", "sent"),
    [
        ("9.99", "9.99"),
        ("0", "0"),
        (Decimal("10"), "10"),
        (Decimal("1E+2"), "100"),
        (Decimal("0.125"), "0.125"),
        (Decimal("9.99") * Decimal("1.00"), "9.99"),  # 9.9900: the same amount
        (Decimal("5.0000"), "5"),
        (7, "7"),
        ("9999999999.999", "9999999999.999"),
    ],
)
def test_amount_is_sent_as_the_exact_decimal_string(amount: object, sent: str) -> None:
    """Decimal, str and int amounts are sent as the string the regex accepts, unrounded."""
    assert start(amount=amount).amount == sent
    assert json.loads(start(amount=amount).to_json())["amount"] == sent


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("registration_uuid", "", "registration_uuid is 0 characters long; 1 to 50"),
        ("registration_uuid", "r" * 51, "registration_uuid is 51 characters long"),
        ("registration_uuid", 5, "registration_uuid must be a str, got int"),
        ("amount", 9.99, "floats are inexact"),
        ("amount", True, "amount must be a Decimal, a str or an int, got bool"),
        ("amount", "-1", "amount must be a non-negative decimal"),
        ("amount", "1.2345", "amount must be a non-negative decimal"),
        ("amount", "12345678901", "amount must be a non-negative decimal"),
        ("amount", "1,5", "amount must be a non-negative decimal"),
        ("amount", " 1", "amount must be a non-negative decimal"),
        ("amount", "\u0661", "amount must be a non-negative decimal"),  # an Arabic-Indic one
        ("amount", Decimal("NaN"), "amount must be a non-negative decimal"),
        ("amount", Decimal("0.0001"), "amount must be a non-negative decimal"),
        ("amount", Decimal("0.12340"), "amount must be a non-negative decimal"),
        ("amount", "9.9900", "amount must be a non-negative decimal"),  # a str is sent as given
        ("amount", -3, "amount must be a non-negative decimal"),
        ("currency", "eur", "currency must be three upper-case letters"),
        ("currency", "EURO", "currency must be three upper-case letters"),
        ("currency", "\u00c9UR", "currency must be three upper-case letters"),
        ("period_length", -1, "period_length must be >= 0"),
        ("period_length", True, "period_length must be an int, got bool"),
        ("period_length", 1.0, "period_length must be an int, got float"),
        ("period_unit", "month", "period_unit must be one of DAY, WEEK, MONTH, YEAR"),
        ("period_unit", "FORTNIGHT", "period_unit must be one of"),
        ("period_unit", 3, "period_unit must be one of"),
        ("start_date_time", datetime(2026, 12, 3), "start_date_time must be timezone-aware"),
        ("start_date_time", "2026-12-03T00:00:00+00:00", "must be a datetime, got str"),
        (
            "start_date_time",
            datetime.min.replace(tzinfo=timezone(timedelta(hours=1))),
            "start_date_time is out of range once converted to UTC",
        ),
        ("merchant_meta_data", "m" * 256, "merchant_meta_data is 256 characters long; 0 to 255"),
        ("merchant_meta_data", 42, "merchant_meta_data must be a str, got int"),
        ("callback_url", "", "callback_url is 0 characters long"),
        ("callback_url", "https://x.example/" + "a" * 4096, "callback_url is 4114 characters"),
        ("callback_url", f"/relative?token={SECRETISH}", "absolute http:// or https:// URL"),
        ("callback_url", f"ftp://x.example/?token={SECRETISH}", "absolute http:// or https://"),
        ("callback_url", f"https://x.example/\n?token={SECRETISH}", "absolute http:// or https://"),
        ("callback_url", "http://[::1", "callback_url is not a valid URL"),
        ("callback_url", b"https://x.example/", "callback_url must be a str, got bytes"),
    ],
)
@pytest.mark.parametrize("kind", ["start", "update"])
def test_bad_fields_are_refused_by_name(
    kind: str, field: str, value: object, fragment: str
) -> None:
    """Each field's rule, for start and update alike, fails at construction, naming the field."""
    make: Callable[..., object] = start if kind == "start" else UpdateSchedule
    with pytest.raises(InvalidParameterError, match=re.escape(fragment)) as info:
        make(**{field: value})
    assert SECRETISH not in str(info.value)


@pytest.mark.parametrize("field", ["registration_uuid", "amount", "currency", "start_date_time"])
def test_start_requires_its_fields(field: str) -> None:
    """None is no value for a field start requires."""
    with pytest.raises(InvalidParameterError, match=field):
        start(**{field: None})


def test_update_sends_only_the_fields_set() -> None:
    """An update's body holds exactly the fields given, in the schema's order."""
    changes = UpdateSchedule(
        period_unit="YEAR", amount=Decimal("5"), start_date_time=WHEN, merchant_meta_data=""
    )
    assert changes.to_json() == (
        b'{"amount":"5","periodUnit":"YEAR","startDateTime":"2026-12-03T09:30:15+00:00",'
        b'"merchantMetaData":""}'
    )
    assert UpdateSchedule(period_length=0).to_json() == b'{"periodLength":0}'


def test_update_needs_a_field() -> None:
    """An update that changes nothing is refused."""
    with pytest.raises(InvalidParameterError, match="at least one field"):
        UpdateSchedule()


def test_continue_body_and_date_time_rules() -> None:
    """continueDateTime is UTC, seconds only, +00:00; a naive datetime is refused."""
    moment = datetime(2026, 1, 2, 0, 30, 0, 500, tzinfo=timezone(timedelta(hours=-5)))
    body = ContinueSchedule(moment).to_json()
    assert body == b'{"continueDateTime":"2026-01-02T05:30:00+00:00"}'
    assert DATE_TIME_ZONE.match(json.loads(body)["continueDateTime"])
    with pytest.raises(
        InvalidParameterError, match=r"at \(continueDateTime\) must be timezone-aware"
    ):
        ContinueSchedule(datetime(2026, 1, 2))


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 2, 28, 23, 59, 59, tzinfo=timezone(timedelta(hours=-12))),
        datetime(2026, 3, 1, 0, 0, tzinfo=timezone(timedelta(hours=14))),
    ],
)
def test_every_formatted_date_time_matches_the_spec_regex(moment: datetime) -> None:
    """Edge years and offsets still give the spec's exact form (four-digit year, +00:00)."""
    text = format_date_time("at", moment)
    assert DATE_TIME_ZONE.match(text), text
    assert datetime.fromisoformat(text) == moment.replace(microsecond=0)


def test_period_unit_is_a_str_enum() -> None:
    """PeriodUnit members equal their wire strings and print as them."""
    assert PeriodUnit.MONTH == "MONTH"
    assert str(PeriodUnit.DAY) == "DAY"
    assert start(period_unit="DAY").period_unit is PeriodUnit.DAY


def test_repr_hides_the_callback_urls_query_and_credentials() -> None:
    """A callback URL's token (query or userinfo) never shows in a repr; its host does."""
    url = f"https://user:{SECRETISH}@hooks.example/cb?token={SECRETISH}"
    for value in (start(callback_url=url), UpdateSchedule(callback_url=url)):
        assert SECRETISH not in repr(value)
        assert "'https://hooks.example/...'" in repr(value)
        assert url in value.to_json().decode()
    assert "callback_url=None" in repr(start())


def test_values_are_frozen_and_keyword_only() -> None:
    """Request values cannot change after their checks, and take keywords only."""
    value = start()
    with pytest.raises(AttributeError):
        value.amount = "1"  # type: ignore[misc]
    with pytest.raises(TypeError):
        StartSchedule("reg-1", "9.99", "EUR", 1, "MONTH", WHEN)  # type: ignore[call-arg]
