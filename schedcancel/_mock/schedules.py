"""The mock server's schedules and the state machine that operations drive; pure.

`ScheduleBook` holds every schedule the server knows and answers one
operation at a time from the table in `operations`, with the server's
date-time passed in. It never reads a clock and never awaits.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, Literal

import attrs

from .operations import Operation, OperationSpec, Status
from .recorder import SUCCESS_OUTCOMES, Outcome

__all__ = ["MockSchedule", "ScheduleBook", "error_body"]

MSG_UNKNOWN_ID = "The scheduleId is not valid or does not match to the connector"
MSG_INVALID_STATUS = "The status of the schedule is not valid for the requested operation"
MSG_UNKNOWN_REGISTRATION = "registrationId is not valid"

# Wire names of StartSchedule's fields and the MockSchedule attributes that hold them.
_FIELDS = {
    "registrationUuid": "registration_uuid",
    "amount": "amount",
    "currency": "currency",
    "periodLength": "period_length",
    "periodUnit": "period_unit",
    "startDateTime": "scheduled_at",
    "continueDateTime": "scheduled_at",
    "merchantMetaData": "merchant_metadata",
    "callbackUrl": "callback_url",
}


def error_body(code: int, message: str, **extra: Any) -> dict[str, Any]:
    """An error response body: ``success`` false, ``extra``, the message and the code.

    Args:
        code: the errorCode.
        message: the errorMessage.
        extra: fields between ``success`` and the message (scheduleId, statuses).

    Returns:
        The JSON-ready body.
    """
    return {"success": False, **extra, "errorMessage": message, "errorCode": code}


@attrs.frozen(kw_only=True)
class MockSchedule:
    """One schedule as the mock server stores it.

    Attributes:
        schedule_id: its id.
        status: its status.
        registration_uuid: the registration it charges.
        scheduled_at: the next charge (``startDateTime``, then ``continueDateTime``).
        amount: the amount, as sent; None when never given.
        currency: the currency; None when never given.
        period_length: the period length; None when never given.
        period_unit: the period unit; None when never given.
        merchant_metadata: the merchant's metadata, if any.
        callback_url: the callback URL, if any.
    """

    schedule_id: str
    status: Status = attrs.field(converter=Status)
    registration_uuid: str
    scheduled_at: datetime
    amount: str | None = None
    currency: str | None = None
    period_length: int | None = None
    period_unit: str | None = None
    merchant_metadata: str | None = None
    callback_url: str | None = None

    def body(self, old: Status) -> dict[str, Any]:
        """The success body of an operation that moved it from ``old`` to its status."""
        payload: dict[str, Any] = {
            "success": True,
            "scheduleId": self.schedule_id,
            "registrationUuid": self.registration_uuid,
            "oldStatus": old.value,
            "newStatus": self.status.value,
            "scheduledAt": self.scheduled_at.isoformat(timespec="seconds"),
        }
        if self.merchant_metadata is not None:
            payload["merchantMetaData"] = self.merchant_metadata
        return payload


def _new_ids() -> Iterator[str]:
    """``SC-xxxx-xxxx-xxxx-xxxx-xxxx-xxxx`` (32 characters), a different one each time."""
    for number in itertools.count(1):  # pragma: no branch - endless
        digits = f"{number:024X}"
        yield "SC-" + "-".join(digits[i : i + 4] for i in range(0, 24, 4))


@attrs.define
class ScheduleBook:
    """Every schedule the server knows, and the state machine."""

    _schedules: dict[str, MockSchedule] = attrs.field(init=False, factory=dict)
    _registrations: set[str] = attrs.field(init=False, factory=set)
    _ids: Iterator[str] = attrs.field(init=False, factory=_new_ids)

    def __len__(self) -> int:
        return len(self._schedules)

    def get(self, schedule_id: str) -> MockSchedule | None:
        """The schedule, or None when the server does not know it."""
        return self._schedules.get(schedule_id)

    @property
    def statuses(self) -> dict[str, Status]:
        """Every known schedule's status."""
        return {key: schedule.status for key, schedule in self._schedules.items()}

    def seed(
        self,
        schedule_ids: Iterable[str],
        status: Status,
        *,
        scheduled_at: datetime,
        registration_uuid: str | None = None,
    ) -> None:
        """Create schedules, or set their status; ``NON-EXISTING`` forgets them.

        Args:
            schedule_ids: the ids.
            status: their status.
            scheduled_at: their next charge, for new ones.
            registration_uuid: their registration; default ``RG-`` plus the id.
        """
        for schedule_id in schedule_ids:
            if status is Status.NON_EXISTING:
                self._schedules.pop(schedule_id, None)
                continue
            old = self._schedules.get(schedule_id)
            if old is not None:
                self._schedules[schedule_id] = attrs.evolve(old, status=status)
                continue
            registration = registration_uuid or f"RG-{schedule_id}"[:50]
            self._registrations.add(registration)
            self._schedules[schedule_id] = MockSchedule(
                schedule_id=schedule_id,
                status=status,
                registration_uuid=registration,
                scheduled_at=scheduled_at,
            )

    def seed_registrations(self, registration_uuids: Iterable[str]) -> None:
        """Make registrations known (for ``unknown_registrations="error"``)."""
        self._registrations.update(registration_uuids)

    def apply(
        self,
        spec: OperationSpec,
        schedule_id: str | None,
        fields: Mapping[str, Any],
        *,
        now: datetime,
        unknown_ids: Literal["error", "active"] = "error",
        unknown_registrations: Literal["accept", "error"] = "accept",
        cancellable: frozenset[Status] | None = None,
    ) -> tuple[dict[str, Any], Outcome]:
        """Answer one admitted, well-formed operation and change the state.

        Args:
            spec: the operation's row.
            schedule_id: its scheduleId (None for start).
            fields: the checked body fields, by wire name.
            now: the server's date-time (a started schedule's default first charge).
            unknown_ids: ``"error"``: an id never seeded answers 7040;
                ``"active"``: it exists as ACTIVE from its first use.
            unknown_registrations: ``"accept"``: any registrationUuid is valid;
                ``"error"``: only seeded ones and those of known schedules are,
                others answer 7020.
            cancellable: the statuses a cancel succeeds from; None: the table's.

        Returns:
            The HTTP 200 body and the outcome to record.
        """
        registration = fields.get("registrationUuid")
        if (
            registration is not None
            and unknown_registrations == "error"
            and registration not in self._registrations
        ):
            return error_body(7020, MSG_UNKNOWN_REGISTRATION), Outcome.INVALID_DATA
        if schedule_id is None:
            return self._start(fields, now)
        schedule = self._schedules.get(schedule_id)
        if schedule is None and unknown_ids == "active":
            self.seed([schedule_id], Status.ACTIVE, scheduled_at=now)
            schedule = self._schedules[schedule_id]
        if schedule is None:
            return error_body(7040, MSG_UNKNOWN_ID), Outcome.UNKNOWN_ID
        sources = spec.sources
        if spec.operation is Operation.CANCEL and cancellable is not None:
            sources = cancellable
        old = schedule.status
        if sources is not None and old not in sources:
            return error_body(
                7070,
                MSG_INVALID_STATUS,
                scheduleId=schedule_id,
                oldStatus=old.value,
                newStatus=old.value,
            ), Outcome.INVALID_STATUS
        changes = {_FIELDS[key]: value for key, value in fields.items()}
        schedule = attrs.evolve(schedule, status=spec.target or old, **changes)
        self._schedules[schedule_id] = schedule
        if spec.operation is Operation.CANCEL:
            # The documented cancel success body carries no more than this.
            payload: dict[str, Any] = {
                "success": True,
                "scheduleId": schedule_id,
                "oldStatus": old.value,
                "newStatus": schedule.status.value,
            }
        else:
            payload = schedule.body(old)
        return payload, SUCCESS_OUTCOMES[spec.operation]

    def _start(self, fields: Mapping[str, Any], now: datetime) -> tuple[dict[str, Any], Outcome]:
        schedule_id = next(i for i in self._ids if i not in self._schedules)
        values = {_FIELDS[key]: value for key, value in fields.items()}
        values.setdefault("scheduled_at", now)
        schedule = MockSchedule(schedule_id=schedule_id, status=Status.ACTIVE, **values)
        self._schedules[schedule_id] = schedule
        self._registrations.add(schedule.registration_uuid)
        return schedule.body(Status.NON_EXISTING), Outcome.STARTED
