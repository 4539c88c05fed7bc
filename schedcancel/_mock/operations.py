"""The six Schedule API operations the mock server answers, as the emulator's own table.

Written from the API documentation, not taken from the client: a mistake in
the client's [`schedcancel.Operation`][schedcancel.Operation] must not be copied into the server
that is there to catch it. ``tests/test_mock_conformance.py`` compares the two
tables, so a disagreement fails loudly. Each row says how the server answers
one operation: method, path, the schema its body is checked against, and which
edge of the documented state machine it follows:

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
from typing import Literal

import attrs

__all__ = ["OPERATIONS", "Body", "Operation", "OperationSpec", "Status", "operation_named"]


class Status(enum.StrEnum):
    """A schedule's status on the wire (the API's ``ScheduleStatus``).

    Members are strings: each equals its wire value, and so the client's
    [`schedcancel.ScheduleStatus`][schedcancel.ScheduleStatus] member of the same name.
    """

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    CANCELLED = "CANCELLED"
    ERROR = "ERROR"
    CREATE_PENDING = "CREATE-PENDING"
    NON_EXISTING = "NON-EXISTING"


class Operation(enum.StrEnum):
    """One of the six Schedule API operations; its value is the last path segment.

    Members are strings (``Operation.CANCEL == "cancel"``); the row that says
    how the server answers it is ``OPERATIONS[operation]``.
    """

    GET = "get"
    START = "start"
    UPDATE = "update"
    PAUSE = "pause"
    CONTINUE = "continue"
    CANCEL = "cancel"


def operation_named(operation: Operation | str) -> Operation:
    """The operation given, or the one whose path segment is given.

    Args:
        operation: an operation, or its last path segment (``"continue"``);
            anything whose ``str()`` is that segment (the client's
            [`schedcancel.Operation`][schedcancel.Operation]) will do.

    Returns:
        The operation.

    Raises:
        ValueError: no operation has that name.
    """
    try:
        return Operation(str(operation))
    except ValueError:
        raise ValueError(f"{operation!r} is not a Schedule API operation") from None


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
    def kind(self) -> Literal["none", "empty", "json"]:
        """The kind of body: none, exactly an empty object, or a JSON object with fields."""
        if self is Body.NONE:
            return "none"
        return "empty" if self is Body.EMPTY else "json"


_ALIVE = frozenset({Status.ACTIVE, Status.PAUSED, Status.ERROR})


@attrs.frozen(kw_only=True)
class OperationSpec:
    """How the server answers one operation.

    Attributes:
        operation: which one.
        method: the HTTP method.
        has_schedule_id: the path names a scheduleId (all but ``start``).
        body: the schema its body is checked against.
        sources: the statuses it succeeds from (None: any existing schedule).
        target: the status it leads to (None: unchanged).
    """

    operation: Operation
    method: Literal["GET", "POST"]
    has_schedule_id: bool
    body: Body
    sources: frozenset[Status] | None
    target: Status | None

    @property
    def path(self) -> str:
        """The route below the API prefix, with ``{apiKey}`` (and ``{scheduleId}``)."""
        if self.has_schedule_id:
            return f"/schedule/{{apiKey}}/{{scheduleId}}/{self.operation}"
        return f"/schedule/{{apiKey}}/{self.operation}"


def _spec(
    operation: Operation,
    method: Literal["GET", "POST"],
    body: Body,
    sources: frozenset[Status] | None,
    target: Status | None,
) -> tuple[Operation, OperationSpec]:
    row = OperationSpec(
        operation=operation,
        method=method,
        has_schedule_id=operation is not Operation.START,
        body=body,
        sources=sources,
        target=target,
    )
    return operation, row


#: Every operation's row, in the order of the API documentation's table.
OPERATIONS: Mapping[Operation, OperationSpec] = MappingProxyType(
    dict(
        (
            _spec(Operation.GET, "GET", Body.NONE, None, None),
            _spec(Operation.PAUSE, "POST", Body.EMPTY, frozenset({Status.ACTIVE}), Status.PAUSED),
            _spec(
                Operation.CONTINUE,
                "POST",
                Body.CONTINUE,
                frozenset({Status.PAUSED, Status.ERROR}),
                Status.ACTIVE,
            ),
            _spec(Operation.UPDATE, "POST", Body.UPDATE, _ALIVE, None),
            _spec(Operation.CANCEL, "POST", Body.EMPTY, _ALIVE, Status.CANCELLED),
            _spec(Operation.START, "POST", Body.START, None, Status.ACTIVE),
        )
    )
)
