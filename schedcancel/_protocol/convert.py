"""The one cattrs converter: wire JSON (camelCase, lenient) to
[`ScheduleResult`][schedcancel.ScheduleResult].

Never the global converter: hooks registered here must not leak into, or be
changed by, other code in the same process. Responses are read leniently
(unknown keys ignored, ``success`` as ``true`` or ``"true"``, statuses the
enum does not know kept as strings, ``registrationId`` taken for
``registrationUuid``) but not loosely: a number where a string belongs is not
something to ``str()``.

What decides the outcome (``success``, ``errorCode``, ``oldStatus``,
``newStatus``) must be well formed, or parsing raises ``ResponseParseError``.
An *auxiliary* field that is malformed (an impossible ``scheduledAt``, a
non-string ``merchantMetaData``, ...) never costs the caller a result whose
outcome is clear: its attribute is left None and the raw value is kept in
``ScheduleResult.malformed`` under its wire name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override
from cattrs.preconf.json import make_converter

from ..errors import ResponseParseError
from .models import ScheduleResult
from .operations import Operation, ScheduleStatus

__all__ = ["coerce_error_code", "converter", "structure_result"]

_INTEGER = re.compile(r"-?[0-9]{1,10}")
#: Attribute name to wire name, so errors speak the server's language ("$.scheduleId").
_WIRE_NAMES: dict[str, str] = {}
_PATH = re.compile(r"\$\.([a-z_]+)")
# Wire string to member: a dict lookup, where calling the enum searches its values.
_STATUSES: dict[str, ScheduleStatus] = {member.value: member for member in ScheduleStatus}
#: The fields that decide the outcome: malformed, the response is unusable.
_CORE = frozenset({"success", "old_status", "new_status", "error_code"})
#: The published schema's name for ``registrationUuid`` (its examples use the latter).
_REGISTRATION_ID = "registrationId"


def _strict_str(value: object, _: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError("expected a string")


def _success(value: object, _: object) -> bool:
    # The current docs show a boolean, the older cancel page a "false"/"true" string
    # (https://documentation.ixopay.com/api/transaction/schedule-cancel).
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise TypeError("expected true, false, 'true' or 'false'")


def _status(value: object, _: object) -> ScheduleStatus | str | None:
    # A status the API adds later must not crash a bulk job: keep the raw string.
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("expected a status string")
    return _STATUSES.get(value, value)


def coerce_error_code(value: object) -> int | None:
    """Read an ``errorCode`` given as a JSON integer or a numeric string.

    Args:
        value: the decoded JSON value.

    Returns:
        The code, or None for null.

    Raises:
        TypeError: anything else (booleans, floats, non-numeric strings).
    """
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return int(value)
    raise TypeError("expected an integer error code")


def _error_code(value: object, _: object) -> int | None:
    return coerce_error_code(value)


def _adapter_code(value: object, _: object) -> str | None:
    # Passed verbatim from the upstream adapter, which may well use numbers.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _strict_str(value, _)


def _scheduled_at(value: object, _: object) -> datetime | None:
    # The spec's regex allows only "+HH:MM"; be lenient and accept what
    # fromisoformat does ("Z", fractional seconds, any offset). Naive means UTC.
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError("expected an RFC 3339 date-time string")
    parsed = datetime.fromisoformat(value.strip())
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _make_converter() -> cattrs.Converter:
    conv = make_converter()
    # The wire names, from the schedule response table
    # (https://documentation.ixopay.com/api/transaction/schedule-cancel).
    fields: dict[str, tuple[str, Callable[[Any, Any], Any]]] = {
        "success": ("success", _success),
        "schedule_id": ("scheduleId", _strict_str),
        "registration_uuid": ("registrationUuid", _strict_str),
        "merchant_meta_data": ("merchantMetaData", _strict_str),
        "old_status": ("oldStatus", _status),
        "new_status": ("newStatus", _status),
        "scheduled_at": ("scheduledAt", _scheduled_at),
        "error_message": ("errorMessage", _strict_str),
        "error_code": ("errorCode", _error_code),
        "adapter_message": ("adapterMessage", _strict_str),
        "adapter_code": ("adapterCode", _adapter_code),
    }
    _WIRE_NAMES.update((name, wire) for name, (wire, _) in fields.items())
    overrides: dict[str, Any] = {
        name: override(rename=wire, struct_hook=hook) for name, (wire, hook) in fields.items()
    }
    # Not on the wire: set by the parser, never read from a body.
    overrides["operation"] = overrides["malformed"] = override(omit=True)
    attrs.resolve_types(ScheduleResult)
    conv.register_structure_hook(
        ScheduleResult,
        # Lenient on purpose: the server may add fields ([TILL] says closed, its examples disagree).
        make_dict_structure_fn(ScheduleResult, conv, _cattrs_forbid_extra_keys=False, **overrides),
    )
    return conv


#: The package's private converter; use `structure_result()` rather than this directly.
converter = _make_converter()
# Its function for ScheduleResult, looked up once instead of dispatched per response.
_structure: Callable[[Any, type[ScheduleResult]], ScheduleResult] = converter.get_structure_hook(
    ScheduleResult
)


def _failed_fields(exc: cattrs.BaseValidationError) -> set[str] | None:
    """The attribute names whose values failed, or None when some failure names none."""
    if not isinstance(exc, cattrs.ClassValidationError):  # pragma: no cover - always a class here
        return None
    with_notes, without = exc.group_exceptions()
    if without:  # pragma: no cover - cattrs notes every attribute's failure; safe side if not
        return None
    return {note.name for _, note in with_notes}


def _parse_error(
    exc: cattrs.BaseValidationError, http_status: int, excerpt: Callable[[], str]
) -> ResponseParseError:
    message = "; ".join(
        _PATH.sub(lambda m: "$." + _WIRE_NAMES.get(m[1], m[1]), line)
        for line in cattrs.transform_error(exc)
    )
    error = ResponseParseError(
        f"unexpected response shape: {message}", http_status=http_status, excerpt=excerpt()
    )
    error.__cause__ = exc
    return error


def structure_result(
    payload: Mapping[str, Any],
    *,
    http_status: int,
    excerpt: Callable[[], str],
    operation: Operation | None = None,
) -> ScheduleResult:
    """Build a [`ScheduleResult`][schedcancel.ScheduleResult] from a decoded JSON object.

    Args:
        payload: the decoded response body.
        http_status: the response's status, for the error.
        excerpt: makes a short, redacted excerpt of the body, for the error (called
            only on failure: a successful parse does not pay for it).
        operation: the call the response answers, kept in the result.

    Returns:
        The result; malformed auxiliary fields are None in it and kept raw in
        its ``malformed`` mapping.

    Raises:
        ResponseParseError: the object is not a schedule response (``success``,
            ``errorCode`` or a status is malformed).
    """
    aliased = _REGISTRATION_ID in payload and "registrationUuid" not in payload
    if aliased:
        payload = {**payload, "registrationUuid": payload[_REGISTRATION_ID]}
    try:
        result = _structure(payload, ScheduleResult)
    except cattrs.BaseValidationError as exc:
        failed = _failed_fields(exc)
        if failed is None or failed & _CORE:
            raise _parse_error(exc, http_status, excerpt) from exc
        # Only auxiliary fields: leave them out, keep their raw values, and say so.
        wires = {_WIRE_NAMES[name] for name in failed}
        malformed = {wire: payload[wire] for wire in sorted(wires)}
        if aliased and "registrationUuid" in malformed:
            malformed[_REGISTRATION_ID] = malformed.pop("registrationUuid")
        clean = {key: value for key, value in payload.items() if key not in wires}
        result = attrs.evolve(_structure(clean, ScheduleResult), malformed=malformed)
    return result if operation is None else attrs.evolve(result, operation=operation)
