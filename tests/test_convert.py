"""Tests for the private cattrs converter that reads schedule responses."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import cattrs
import pytest
from schedcancel import ResponseParseError, ScheduleResult, ScheduleStatus
from schedcancel._protocol.convert import coerce_error_code, converter, structure_result


def _structure(payload: dict[str, Any]) -> ScheduleResult:
    """Structure a payload with a dummy status and excerpt."""
    return structure_result(payload, http_status=200, excerpt=lambda: "...")


def test_converter_is_private() -> None:
    """The package's converter is not cattrs' global converter and leaves it untouched."""
    assert converter is not cattrs.global_converter
    payload = {"success": True, "scheduleId": "SC-1"}
    assert converter.structure(payload, ScheduleResult).schedule_id == "SC-1"
    # Our hooks were registered on the private converter only: the global one has none, so
    # it cannot map scheduleId (newer cattrs find no hook at all for the class).
    with contextlib.suppress(cattrs.errors.StructureHandlerNotFoundError):
        assert cattrs.structure(payload, ScheduleResult).schedule_id is None


def test_every_wire_name_is_mapped() -> None:
    """Each camelCase field lands in its snake_case attribute."""
    result = _structure(
        {
            "success": False,
            "scheduleId": "SC-1",
            "registrationUuid": "reg-1",
            "merchantMetaData": "meta",
            "oldStatus": "CREATE-PENDING",
            "newStatus": "NON-EXISTING",
            "scheduledAt": "2001-02-03T04:05:06+02:00",
            "errorMessage": "msg",
            "errorCode": 7001,
            "adapterMessage": "adapter says",
            "adapterCode": "A1",
        }
    )
    assert result == ScheduleResult(
        success=False,
        schedule_id="SC-1",
        registration_uuid="reg-1",
        merchant_meta_data="meta",
        old_status=ScheduleStatus.CREATE_PENDING,
        new_status=ScheduleStatus.NON_EXISTING,
        scheduled_at=datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2))),
        error_message="msg",
        error_code=7001,
        adapter_message="adapter says",
        adapter_code="A1",
    )


def test_snake_case_keys_are_ignored_not_mapped() -> None:
    """Python attribute names on the wire are unknown keys, so they are ignored."""
    result = _structure({"success": True, "schedule_id": "SC-1"})
    assert result.schedule_id is None


def test_nulls_become_none() -> None:
    """JSON null in optional fields reads as None."""
    result = _structure(
        {
            "success": True,
            "scheduleId": None,
            "oldStatus": None,
            "scheduledAt": None,
            "errorCode": None,
            "adapterCode": None,
        }
    )
    assert result == ScheduleResult(success=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), (False, False), ("true", True), ("false", False)],
)
def test_success_forms(value: object, expected: bool) -> None:
    """success is read from booleans and from the strings "true"/"false"."""
    assert _structure({"success": value}).success is expected


@pytest.mark.parametrize("value", ["True", "1", 1, 0, None, [], "yes"])
def test_success_rejects_other_forms(value: object) -> None:
    """Anything but the four accepted forms of success is a parse error naming the field."""
    with pytest.raises(ResponseParseError, match=r"\$\.success"):
        _structure({"success": value})


@pytest.mark.parametrize(
    ("value", "expected"),
    [(7070, 7070), ("7070", 7070), (" 1009 ", 1009), ("-1", -1), (None, None)],
)
def test_coerce_error_code(value: object, expected: int | None) -> None:
    """errorCode is an int or a numeric string."""
    assert coerce_error_code(value) == expected


@pytest.mark.parametrize("value", [True, 7070.0, "70x", "", "12345678901", [7070]])
def test_coerce_error_code_rejects(value: object) -> None:
    """Booleans, floats and non-numeric or overlong strings are not error codes."""
    with pytest.raises(TypeError):
        coerce_error_code(value)


def test_error_message_uses_wire_names_and_lists_every_problem() -> None:
    """Validation errors are reported as transform_error lines with the wire paths."""
    with pytest.raises(ResponseParseError) as info:
        _structure({"success": "maybe", "errorCode": "x", "scheduleId": 5})
    message = str(info.value)
    for path in ("$.success", "$.errorCode", "$.scheduleId"):
        assert path in message
    assert "$.schedule_id" not in message
    assert info.value.http_status == 200
    assert info.value.excerpt == "..."


def test_naive_scheduled_at_is_utc() -> None:
    """A scheduledAt without an offset is taken as UTC."""
    result = _structure({"success": True, "scheduledAt": "2019-10-05T14:26:11.5"})
    assert result.scheduled_at == datetime(2019, 10, 5, 14, 26, 11, 500000, tzinfo=UTC)


def test_unknown_status_is_kept() -> None:
    """An unknown status stays a plain string and compares equal to its wire value."""
    result = _structure({"success": True, "newStatus": "ARCHIVED"})
    assert result.new_status == "ARCHIVED"
    assert type(result.new_status) is str
