"""The six Schedule API operations the mock server answers, as one table.

Each row says how an operation is reached (method and path), what body it
takes, and which edge of the state machine (spec §1) it follows::

    ACTIVE --pause--> PAUSED --continue--> ACTIVE
    ERROR --continue--> ACTIVE
    ACTIVE | PAUSED | ERROR --cancel--> CANCELLED (terminal)
    (none) --start--> ACTIVE

``get`` and ``update`` keep the status; an operation whose source statuses do
not hold the schedule's status answers 7070. Pure data: nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

import attrs

from .._models import ScheduleStatus

__all__ = ["OPERATIONS", "Body", "Operation", "OperationSpec"]


class Operation(enum.StrEnum):
    """A Schedule API operation; the value is the last path segment."""

    GET = "get"
    PAUSE = "pause"
    CONTINUE = "continue"
    UPDATE = "update"
    CANCEL = "cancel"
    START = "start"


class Body(enum.Enum):
    """The request body an operation takes."""

    #: none at all (GET).
    NONE = enum.auto()
    #: exactly an empty JSON object (``[]``, which the PHP SDK sends, too).
    EMPTY = enum.auto()
    #: ``{"continueDateTime": <DateTimeZone>}``.
    CONTINUE = enum.auto()
    #: StartSchedule fields; ``registrationUuid`` required.
    START = enum.auto()
    #: StartSchedule fields, all optional.
    UPDATE = enum.auto()


_ALIVE = frozenset({ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED, ScheduleStatus.ERROR})


@attrs.frozen(kw_only=True)
class OperationSpec:
    """How the server answers one operation.

    Attributes:
        operation: which one.
        method: the HTTP method.
        body: the body it takes.
        sources: the statuses it succeeds from (None: any existing schedule).
        target: the status it leads to (None: unchanged).
    """

    operation: Operation
    method: str
    body: Body
    sources: frozenset[ScheduleStatus] | None
    target: ScheduleStatus | None

    @property
    def has_schedule_id(self) -> bool:
        """True for every operation on one schedule (all but ``start``)."""
        return self.operation is not Operation.START

    @property
    def path(self) -> str:
        """The route below the API prefix, with ``{apiKey}`` (and ``{scheduleId}``)."""
        if self.has_schedule_id:
            return f"/schedule/{{apiKey}}/{{scheduleId}}/{self.operation.value}"
        return f"/schedule/{{apiKey}}/{self.operation.value}"


def _spec(
    operation: Operation,
    method: str,
    body: Body,
    sources: frozenset[ScheduleStatus] | None,
    target: ScheduleStatus | None,
) -> tuple[Operation, OperationSpec]:
    return operation, OperationSpec(
        operation=operation, method=method, body=body, sources=sources, target=target
    )


#: Every operation's row, in the order of the spec's table.
OPERATIONS: Mapping[Operation, OperationSpec] = MappingProxyType(
    dict(
        (
            _spec(Operation.GET, "GET", Body.NONE, None, None),
            _spec(
                Operation.PAUSE,
                "POST",
                Body.EMPTY,
                frozenset({ScheduleStatus.ACTIVE}),
                ScheduleStatus.PAUSED,
            ),
            _spec(
                Operation.CONTINUE,
                "POST",
                Body.CONTINUE,
                frozenset({ScheduleStatus.PAUSED, ScheduleStatus.ERROR}),
                ScheduleStatus.ACTIVE,
            ),
            _spec(Operation.UPDATE, "POST", Body.UPDATE, _ALIVE, None),
            _spec(Operation.CANCEL, "POST", Body.EMPTY, _ALIVE, ScheduleStatus.CANCELLED),
            _spec(Operation.START, "POST", Body.START, None, ScheduleStatus.ACTIVE),
        )
    )
)
