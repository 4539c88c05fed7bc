"""The six Schedule API operations the mock server answers, as one table.

The operations themselves, with what the client and the server share (method,
path, scheduleId or not, kind of body), are the protocol's
:class:`schedcancel.Operation`; each row here adds what only the server knows:
the schema its body is checked against and which edge of the state machine
(spec §1) it follows::

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
from .._protocol import BodyKind, Operation

__all__ = ["OPERATIONS", "Body", "Operation", "OperationSpec", "operation_named"]


def operation_named(operation: Operation | str) -> Operation:
    """The :class:`~schedcancel.Operation` given, or the one whose path segment is given.

    Args:
        operation: an operation, or its last path segment (``"continue"``).

    Returns:
        The operation.

    Raises:
        ValueError: no operation has that name.
    """
    if isinstance(operation, Operation):
        return operation
    for candidate in Operation:
        if candidate.path == operation:
            return candidate
    raise ValueError(f"{operation!r} is not a Schedule API operation")


class Body(enum.Enum):
    """The request body an operation takes: the schema the server checks it against."""

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

    @property
    def kind(self) -> BodyKind:
        """The client's kind of this body: none, exactly ``{}``, or a JSON object."""
        if self is Body.NONE:
            return BodyKind.NONE
        return BodyKind.EMPTY if self is Body.EMPTY else BodyKind.JSON


_ALIVE = frozenset({ScheduleStatus.ACTIVE, ScheduleStatus.PAUSED, ScheduleStatus.ERROR})


@attrs.frozen(kw_only=True)
class OperationSpec:
    """How the server answers one operation.

    What the client and the server share (the method, the path, whether there
    is a scheduleId, the kind of body) comes from the protocol's table,
    :class:`schedcancel.Operation`; the server adds only its own facts.

    Attributes:
        operation: which one.
        body: the schema its body is checked against (of ``operation.body``'s kind).
        sources: the statuses it succeeds from (None: any existing schedule).
        target: the status it leads to (None: unchanged).
    """

    operation: Operation
    body: Body
    sources: frozenset[ScheduleStatus] | None
    target: ScheduleStatus | None

    @property
    def method(self) -> str:
        """The HTTP method (the protocol's)."""
        return self.operation.method

    @property
    def has_schedule_id(self) -> bool:
        """True for every operation on one schedule (all but ``start``)."""
        return self.operation.has_schedule_id

    @property
    def path(self) -> str:
        """The route below the API prefix, with ``{apiKey}`` (and ``{scheduleId}``)."""
        if self.has_schedule_id:
            return f"/schedule/{{apiKey}}/{{scheduleId}}/{self.operation.path}"
        return f"/schedule/{{apiKey}}/{self.operation.path}"


def _spec(
    operation: Operation,
    body: Body,
    sources: frozenset[ScheduleStatus] | None,
    target: ScheduleStatus | None,
) -> tuple[Operation, OperationSpec]:
    return operation, OperationSpec(operation=operation, body=body, sources=sources, target=target)


#: Every operation's row, in the order of the spec's table.
OPERATIONS: Mapping[Operation, OperationSpec] = MappingProxyType(
    dict(
        (
            _spec(Operation.GET, Body.NONE, None, None),
            _spec(
                Operation.PAUSE,
                Body.EMPTY,
                frozenset({ScheduleStatus.ACTIVE}),
                ScheduleStatus.PAUSED,
            ),
            _spec(
                Operation.CONTINUE,
                Body.CONTINUE,
                frozenset({ScheduleStatus.PAUSED, ScheduleStatus.ERROR}),
                ScheduleStatus.ACTIVE,
            ),
            _spec(Operation.UPDATE, Body.UPDATE, _ALIVE, None),
            _spec(Operation.CANCEL, Body.EMPTY, _ALIVE, ScheduleStatus.CANCELLED),
            _spec(Operation.START, Body.START, None, ScheduleStatus.ACTIVE),
        )
    )
)
