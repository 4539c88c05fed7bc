"""The Schedule API's table of operations and statuses: plain values, no project imports.

[`Operation`][schedcancel.Operation] is the one table every request is built from (method,
path, body, scheduleId, retry safety, target status); [`ScheduleStatus`][schedcancel.ScheduleStatus]
is a schedule's status as the API reports it. Every layer reads them, so they
import nothing of the package: the models, the protocol, the converter and the
journal all import them from here.
"""

from __future__ import annotations

import enum

__all__ = ["BodyKind", "Operation", "ScheduleStatus"]


class ScheduleStatus(enum.StrEnum):
    """A schedule's status as the API reports it.

    A status the API adds later does not crash parsing: fields typed
    ``ScheduleStatus | str`` keep the raw string for values not listed here.
    Members compare equal to their wire strings.
    """

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    CANCELLED = "CANCELLED"
    ERROR = "ERROR"
    CREATE_PENDING = "CREATE-PENDING"
    NON_EXISTING = "NON-EXISTING"

    def __str__(self) -> str:
        return self.value


class BodyKind(enum.Enum):
    """What an operation sends as its body."""

    #: No body (GET); the signature covers the empty body.
    NONE = "none"
    #: Exactly ``{}`` (the schema's ``maxProperties: 0``).
    EMPTY = "empty"
    #: A JSON object of the operation's request value (``StartSchedule`` ...).
    JSON = "json"


class Operation(enum.Enum):
    """The Schedule API's calls: the one table every request is built from.

    Each member carries its HTTP method, the last path segment, what body it
    sends, whether it names a scheduleId (and so counts against the
    per-scheduleId limit too), whether a retry after an unknown outcome is
    safe, and its *target status*, the status an "already there" 7070
    answer shows (see ``ScheduleResult.already_done``).
    Paths: ``{base}/schedule/{apiKey}/start`` and
    ``{base}/schedule/{apiKey}/{scheduleId}/{get|update|pause|continue|cancel}``
    (https://documentation.ixopay.com/api/transaction/schedule).

    Attributes:
        method: ``"GET"`` or ``"POST"``.
        path: the last path segment, e.g. ``"continue"``.
        body: what the request carries.
        has_schedule_id: the path names a scheduleId (all but start).
        retry_safe: sending it twice does no harm (all but start, which would
            create a second schedule).
        target_status: the status the operation leads to, for pause,
            continue and cancel; None for the others.
    """

    method: str
    path: str
    body: BodyKind
    has_schedule_id: bool
    retry_safe: bool
    target_status: ScheduleStatus | None

    GET = ("GET", "get", BodyKind.NONE, True, True, None)
    START = ("POST", "start", BodyKind.JSON, False, False, None)
    UPDATE = ("POST", "update", BodyKind.JSON, True, True, None)
    PAUSE = ("POST", "pause", BodyKind.EMPTY, True, True, ScheduleStatus.PAUSED)
    CONTINUE = ("POST", "continue", BodyKind.JSON, True, True, ScheduleStatus.ACTIVE)
    CANCEL = ("POST", "cancel", BodyKind.EMPTY, True, True, ScheduleStatus.CANCELLED)

    def __init__(  # noqa: PLR0917 - an enum member's value tuple arrives positionally
        self,
        method: str,
        path: str,
        body: BodyKind,
        has_schedule_id: bool,
        retry_safe: bool,
        target_status: ScheduleStatus | None,
    ) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.has_schedule_id = has_schedule_id
        self.retry_safe = retry_safe
        self.target_status = target_status

    def __repr__(self) -> str:
        return f"Operation.{self.name}"

    def __str__(self) -> str:
        return self.path
