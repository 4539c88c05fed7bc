"""What became of each id in a bulk job, and the crash-safe JSON Lines journal that keeps it.

A [`BulkOutcome`][schedcancel.BulkOutcome] is one finished id. A [`Journal`][schedcancel.Journal]
appends one line per outcome, each written with ``os.write`` and made durable with
``os.fsync`` before the outcome is reported, so a run killed at any instant
leaves a file in which every line but possibly the last is whole. A run
started on the same file skips the ids that are *final* there and retries
the others; the torn last line of a killed run is cut off on opening.

Line format (one JSON object per line, ``None`` fields left out):

    {"id":"SC-1","outcome":"cancelled","old_status":"ACTIVE","new_status":"CANCELLED","at":"…"}
    {"id":"SC-2","outcome":"failed","error_code":7040,"error":"The scheduleId is …","at":"…"}
    {"id":"SC-3","outcome":"error","error_type":"TransportError","error":"…","at":"…"}
    {"id":"SC-4","outcome":"read","new_status":"ACTIVE","scheduled_at":"…","at":"…"}
    {"run":"start","operation":"cancel","version":"0.2.0","api_key":"conn***","pid":4242,"at":"…"}
    {"run":"send","schedule_id":"SC-1","at":"…"}
    {"run":"intent","row":"sub-1001","change":"4b98a19b906a0a05","values":{…},"at":"…"}
    {"id":"sub-1001","outcome":"started","new_schedule_id":"SC-…","change":"…","at":"…"}

A ``send`` line is written as each request goes out: a run again counts the
requests of the last window in its in-process limiter (`RecentRequests`).
A bulk start writes an ``intent`` line, durably, before each request
instead (see ``intents``): start is not idempotent. The run's ``start``
line names its operation (``cancel``, ``pause``, ``continue``, ``get``,
``update`` or ``start``; a journal without it, as written before bulk jobs
ran other operations, is a cancel journal), and the outcome kinds are the
operation's own (``paused``/``already_paused``, ...): a job refuses to
resume a journal of another operation.

No line ever holds a password, a shared secret or a whole apiKey: outcomes
carry ids, statuses, codes and scrubbed messages only, and run lines the
redacted key.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from .._protocol.models import ScheduleResult
from .._protocol.operations import Operation, ScheduleStatus
from .._protocol.redact import scrub, shorten
from .._protocol.wire import is_schedule_error_code
from ..errors import ApiError, InvalidParameterError, OutcomeUnknownError

try:  # POSIX only; without it two runs on one journal are not prevented
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "BULK_OPERATIONS",
    "INTENT",
    "BulkOutcome",
    "Journal",
    "OutcomeKind",
    "RecentRequests",
    "is_final_error_code",
    "kind_operations",
    "outcome_kinds",
    "read_journal",
    "run_operation",
    "send_record",
    "timestamp",
]

logger = logging.getLogger("schedcancel.journal")

#: Longest id text kept for an invalid input item (a line of garbage must not bloat the journal).
MAX_RECORDED_ID = 100
#: How an ``unknown`` outcome's message starts: what the user does about it.
UNKNOWN_NOTE = "outcome unknown - check before re-running"
#: Longest error text kept in an outcome.
MAX_ERROR_TEXT = 300
#: "schedule request failed": a processing failure, worth another try.
_TRANSIENT_SCHEDULE_ERROR = 7002
# Reading the tail backwards in chunks this big to find the last newline.
_TAIL_CHUNK = 64 * 1024
# Longer than any line a journal writes (messages are cut short): a file whose
# first line is longer is no journal.
_MAX_LINE = 64 * 1024


class OutcomeKind(enum.StrEnum):
    """How a bulk job's id ended.

    Members compare equal to their journal strings.
    """

    #: The schedule was cancelled by this call.
    CANCELLED = "cancelled"
    #: The schedule was cancelled before (errorCode 7070, status CANCELLED).
    ALREADY_CANCELLED = "already_cancelled"
    #: The schedule was paused by this call.
    PAUSED = "paused"
    #: The schedule was paused before (errorCode 7070, status PAUSED).
    ALREADY_PAUSED = "already_paused"
    #: The schedule was continued (made ACTIVE again) by this call.
    CONTINUED = "continued"
    #: The schedule was active before (errorCode 7070, status ACTIVE).
    ALREADY_ACTIVE = "already_active"
    #: The schedule was read (``get``); its status is the outcome's ``new_status``.
    READ = "read"
    #: The schedule was changed (``update``) as its row asked.
    UPDATED = "updated"
    #: A new schedule was created (``start``); its id is the outcome's ``new_schedule_id``.
    STARTED = "started"
    #: A start request may have reached the server and its answer is unknown (a timeout, a
    #: 5xx, a run killed while it was out): check before starting the row again. Final:
    #: a re-run never sends it again unless told to (``retry_unknown``).
    UNKNOWN = "unknown"
    #: An update (or start) row not sent: its change differs from the one the journal (or an
    #: earlier row of the input) has for the same scheduleId (row key). Not final.
    CONFLICT = "conflict"
    #: The API refused (HTTP 200, ``success: false``), e.g. 7040 unknown id.
    FAILED = "failed"
    #: The id is not a valid scheduleId; it was never sent.
    INVALID = "invalid"
    #: No answer worth keeping: transport, 5xx, 429s, authentication, parse errors.
    ERROR = "error"


#: The per-id operations a bulk job runs, each with the kind of its success and of
#: "already in the target state" (get has none).
_DONE_KINDS: Mapping[Operation, tuple[OutcomeKind, OutcomeKind | None]] = {
    Operation.CANCEL: (OutcomeKind.CANCELLED, OutcomeKind.ALREADY_CANCELLED),
    Operation.PAUSE: (OutcomeKind.PAUSED, OutcomeKind.ALREADY_PAUSED),
    Operation.CONTINUE: (OutcomeKind.CONTINUED, OutcomeKind.ALREADY_ACTIVE),
    Operation.GET: (OutcomeKind.READ, None),
    Operation.UPDATE: (OutcomeKind.UPDATED, None),
    Operation.START: (OutcomeKind.STARTED, None),
}
#: The operations a bulk job can run: cancel, pause, continue, get (per id), update
#: (per row: an [`UpdateRow`][schedcancel.UpdateRow]) and start (a
#: [`StartRow`][schedcancel.StartRow]).
BULK_OPERATIONS: tuple[Operation, ...] = tuple(_DONE_KINDS)
_NEUTRAL_KINDS = (OutcomeKind.FAILED, OutcomeKind.INVALID, OutcomeKind.ERROR)
# The operations whose rows are compared by digest, and so may be in conflict.
_ROW_OPERATIONS = (Operation.UPDATE, Operation.START)
# The operations whose journal a kind belongs in (none listed: any operation's).
_KIND_OPERATIONS: Mapping[OutcomeKind, tuple[Operation, ...]] = {
    **{
        kind: (operation,)
        for operation, kinds in _DONE_KINDS.items()
        for kind in kinds
        if kind is not None
    },
    OutcomeKind.UNKNOWN: (Operation.START,),
    OutcomeKind.CONFLICT: _ROW_OPERATIONS,
}


def outcome_kinds(operation: Operation) -> tuple[OutcomeKind, ...]:
    """Return the outcome kinds a bulk job of ``operation`` can have, in display order.

    Args:
        operation: one of `BULK_OPERATIONS`.

    Returns:
        Its success kind, its "already" kind (not for get, update and start), for start
        ``unknown``, then ``failed``, ``invalid`` and ``error``, and for update and start
        ``conflict``.

    Raises:
        InvalidParameterError: a bulk job cannot run ``operation``.
    """
    try:
        done, already = _DONE_KINDS[operation]
    except KeyError:
        raise InvalidParameterError(
            f"a bulk job runs {', '.join(map(str, BULK_OPERATIONS))}, not {operation}"
        ) from None
    unknown = (OutcomeKind.UNKNOWN,) if operation is Operation.START else ()
    conflict = (OutcomeKind.CONFLICT,) if operation in _ROW_OPERATIONS else ()
    return (
        done,
        *((already,) if already is not None else ()),
        *unknown,
        *_NEUTRAL_KINDS,
        *conflict,
    )


def kind_operations(kind: OutcomeKind) -> tuple[Operation, ...]:
    """Return the operations whose jobs have outcomes of ``kind``; () for any operation's."""
    return _KIND_OPERATIONS.get(kind, ())


def is_final_error_code(code: int | None) -> bool:
    """Tell whether a business error is the schedule's final answer.

    The 7xxx codes are the API's verdict on the schedule itself (7040 unknown
    id, 7070 wrong status, ...): sending again gives the same answer, so a
    resumed job skips those ids. 7002 "schedule request failed" and any other
    code (1xxx system errors, none at all) may pass on a later try.

    Args:
        code: the response's ``errorCode``.

    Returns:
        True when the id need not be sent again.
    """
    return is_schedule_error_code(code) and code != _TRANSIENT_SCHEDULE_ERROR


def _now() -> datetime:
    return datetime.now(UTC)


def timestamp() -> str:
    """Return the wall-clock time now as journal lines hold it (UTC, milliseconds)."""
    return _now().isoformat(timespec="milliseconds")


#: The run line a bulk start writes (and makes durable) before each request: ``intent``.
INTENT = "intent"


def send_record(schedule_id: str) -> dict[str, Any]:
    """Return the journal's line for a request about to be sent for ``schedule_id``.

    A run line (``"run": "send"``), so readers that know only outcome and run
    lines skip it; `RecentRequests` reads it on resume.
    """
    return {"run": "send", "schedule_id": schedule_id, "at": timestamp()}


@attrs.define
class RecentRequests:
    """The requests of earlier runs that may still count in the server's window. Pure.

    Fed a journal's lines in file order (`on_run()` for run lines,
    `on_outcome()` for outcomes), it pairs each ``send`` line with the
    moment its request was answered: the outcome line of its id, or the next
    send of that id (a retry goes out after the answer). A send that nothing
    answers was in flight when its run was killed: it is taken as answered at
    ``now``, or ``hold`` after it was sent if that is earlier (a request arrives
    within that time or never). The wall clock serves only to tell how long
    ago: a time in the future (a clock that went back) counts as now.

    Attributes:
        hold: ``window + guard``: how long an answered request counts.
        own: the resuming limiter's [`origin`][schedcancel.RateLimiter.origin]; the
            runs made through it are in it already and are not counted again.
        now: the wall-clock time of the resume (now by default).
    """

    hold: float
    own: str | None = None
    now: datetime = attrs.field(factory=_now)
    _skipping: bool = attrs.field(default=False, init=False)
    # Per id (a start row's key), how long ago its request still unanswered was sent.
    _pending: dict[str, float] = attrs.field(factory=dict, init=False)
    _answered: list[tuple[str | None, float]] = attrs.field(factory=list, init=False)
    # The keys of start rows: their requests have no scheduleId.
    _rows: set[str] = attrs.field(factory=set, init=False)

    def _age(self, then: datetime) -> float:
        if then.tzinfo is None:  # not written by a journal: when, nobody knows; say now
            return 0.0
        return max(0.0, (self.now - then).total_seconds())

    def _parse_age(self, at: object) -> float | None:
        try:
            return self._age(datetime.fromisoformat(at)) if isinstance(at, str) else None
        except ValueError:
            return None

    def _answer(self, schedule_id: str, age: float) -> None:
        self._pending.pop(schedule_id, None)
        if age < self.hold:
            self._answered.append((self._limited_id(schedule_id), age))

    def _limited_id(self, key: str) -> str | None:
        """The scheduleId the limiter counts a request for: None for a start row's."""
        return None if key in self._rows else key

    def on_run(self, record: Mapping[str, Any]) -> None:
        """Take a run line: a ``start`` tells whose run follows, a ``send`` (or a start row's
        ``intent``) one request."""
        event = record.get("run")
        if event == "start":
            self._skipping = self.own is not None and record.get("limiter") == self.own
            return
        schedule_id = record.get("row") if event == INTENT else record.get("schedule_id")
        age = self._parse_age(record.get("at"))
        if (
            event not in ("send", INTENT)
            or self._skipping
            or not isinstance(schedule_id, str)
            or age is None
        ):
            return
        if event == INTENT:
            self._rows.add(schedule_id)
        if schedule_id in self._pending:
            self._answer(schedule_id, age)  # its earlier request was answered before this one
        if age < 2 * self.hold:  # older ones count no more, however late they were answered
            self._pending[schedule_id] = age

    def on_outcome(self, outcome: BulkOutcome) -> None:
        """Take an outcome line: its id's request was answered then."""
        if outcome.schedule_id in self._pending:
            self._answer(outcome.schedule_id, self._age(outcome.at))

    def answered(self) -> list[tuple[str | None, float]]:
        """The requests that still count: ``(schedule_id, seconds since its answer)`` each,
        the id None for a start request."""
        unanswered = [
            (self._limited_id(key), max(0.0, age - self.hold)) for key, age in self._pending.items()
        ]
        return [*self._answered, *((key, age) for key, age in unanswered if age < self.hold)]


def recorded_id(raw: str) -> str:
    """Return the form of an input item that outcomes and the journal keep.

    Valid scheduleIds (at most 32 characters) are kept whole; only absurd
    invalid items are cut.
    """
    return shorten(raw, MAX_RECORDED_ID, ())


def _optional_text(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{key} must be a string")
    return value


def _values(value: object) -> Mapping[str, str | int] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(item, str | int) and not isinstance(item, bool) for item in value.values()
    ):
        raise TypeError("values must be an object of strings and integers")
    return MappingProxyType(value)


def _status(value: object) -> ScheduleStatus | str | None:
    if value is None:
        return None
    text = str(value)
    try:
        return ScheduleStatus(text)
    except ValueError:
        return text


@attrs.frozen(kw_only=True)
class BulkOutcome:
    """One id's end in a bulk job: what the journal records and ``cancel_many`` yields.

    Attributes:
        schedule_id: the id as given (cut to 100 characters for absurd invalid input).
        kind: how it ended.
        at: when it ended (UTC).
        result: the server's answer, for ``cancelled``/``already_cancelled``/``failed``
            outcomes of this run (None when read back from a journal).
        old_status: the status before the call, as the server reported it.
        new_status: the status after the call.
        error_code: the API's ``errorCode`` (business errors and API errors).
        error_type: the exception's class name, for ``error`` outcomes.
        error: a short message; scrubbed of the apiKey.
        exception: the exception itself, for ``error`` outcomes of this run.
        scheduled_at: the schedule's next charge, as a ``get`` read it.
        registration_uuid: the registration it charges, as a ``get`` read it.
        merchant_meta_data: the merchant's text on it, as a ``get`` read it.
        change: for an update row, the digest of the change it asked for
            ([`UpdateRow.digest`][schedcancel.UpdateRow.digest]): a re-run compares it with
            its own row's, and a different one is a ``conflict``.
        values: for an update row, the new values it asked for (wire names; all but
            ``merchantMetaData`` and ``callbackUrl``, which may carry anything); for a
            start row, its fields (the same ones).
        new_schedule_id: for a ``started`` row, the new schedule's scheduleId. A start
            row's ``schedule_id`` is its key ([`StartRow`][schedcancel.StartRow]).
    """

    schedule_id: str
    kind: OutcomeKind
    at: datetime = attrs.field(factory=_now)
    result: ScheduleResult | None = attrs.field(default=None, repr=False)
    old_status: ScheduleStatus | str | None = None
    new_status: ScheduleStatus | str | None = None
    error_code: int | None = None
    error_type: str | None = None
    error: str | None = None
    exception: BaseException | None = attrs.field(default=None, eq=False, repr=False)
    scheduled_at: datetime | None = None
    registration_uuid: str | None = None
    merchant_meta_data: str | None = attrs.field(default=None, repr=False)
    change: str | None = None
    values: Mapping[str, str | int] | None = attrs.field(default=None, hash=False)
    new_schedule_id: str | None = None

    @property
    def ok(self) -> bool:
        """True when the operation's aim is reached: the schedule is cancelled, paused or
        active now (by this call or before), updated, started, or it was read."""
        return self.kind not in (*_NEUTRAL_KINDS, OutcomeKind.CONFLICT, OutcomeKind.UNKNOWN)

    @property
    def final(self) -> bool:
        """True when a resumed job must not send this id again."""
        if self.kind in (OutcomeKind.ERROR, OutcomeKind.CONFLICT):
            return False
        if self.kind is OutcomeKind.FAILED:
            return is_final_error_code(self.error_code)
        return True

    @classmethod
    def from_result(
        cls,
        schedule_id: str,
        result: ScheduleResult,
        *,
        secrets: Iterable[str] = (),
        operation: Operation = Operation.CANCEL,
    ) -> BulkOutcome:
        """Build the outcome of a call the server answered with HTTP 200.

        A 7070 whose ``newStatus`` is the operation's target status (CANCELLED
        for cancel, PAUSED for pause, ACTIVE for continue) is the "already"
        kind; any other refusal is ``failed``. Outcomes of ``get`` keep the
        schedule's ``scheduled_at``, ``registration_uuid`` and ``merchant_meta_data``;
        those of ``start`` the new schedule's id, ``scheduled_at`` and ``registration_uuid``.

        Args:
            schedule_id: the id that was sent.
            result: the parsed answer.
            secrets: strings (apiKeys) to scrub from the server's texts.
            operation: the call that was sent (cancel by default).

        Returns:
            The operation's success kind (``cancelled``, ``paused``, ``continued``,
            ``read``), its "already" kind, or ``failed``.
        """
        done, already = _DONE_KINDS[operation]
        if result.success:
            kind = done
        elif already is not None and result.already_done_as(operation):
            kind = already
        else:
            kind = OutcomeKind.FAILED
        message = result.error_message if kind is OutcomeKind.FAILED else None
        details = operation in (Operation.GET, Operation.START)
        meta = result.merchant_meta_data if operation is Operation.GET else None
        started = operation is Operation.START and kind is OutcomeKind.STARTED
        return cls(
            schedule_id=schedule_id,
            kind=kind,
            result=result,
            old_status=result.old_status,
            new_status=result.new_status,
            error_code=result.error_code if kind is OutcomeKind.FAILED else None,
            error=shorten(message, MAX_ERROR_TEXT, secrets) if message else None,
            scheduled_at=result.scheduled_at if details else None,
            registration_uuid=result.registration_uuid if details else None,
            merchant_meta_data=scrub(meta, secrets) if meta else meta,
            new_schedule_id=result.schedule_id if started else None,
        )

    @classmethod
    def from_exception(
        cls, schedule_id: str, exc: BaseException, *, secrets: Iterable[str] = ()
    ) -> BulkOutcome:
        """Build the outcome of a call that raised.

        Args:
            schedule_id: the id that was sent.
            exc: what the client raised.
            secrets: strings (apiKeys) to scrub from the message.

        Returns:
            An ``unknown`` outcome for an
            [`OutcomeUnknownError`][schedcancel.errors.OutcomeUnknownError] (a start that may
            have reached the server), else an ``error`` outcome.
        """
        message = str(exc) or type(exc).__name__
        unknown = isinstance(exc, OutcomeUnknownError)
        if isinstance(exc, OutcomeUnknownError):
            message = f"{UNKNOWN_NOTE} (the request may have created the schedule): {exc.failure}"
        return cls(
            schedule_id=schedule_id,
            kind=OutcomeKind.UNKNOWN if unknown else OutcomeKind.ERROR,
            error_code=exc.error_code if isinstance(exc, ApiError) else None,
            error_type=type(exc).__name__,
            error=shorten(message, MAX_ERROR_TEXT, secrets),
            exception=exc,
        )

    @classmethod
    def invalid(cls, raw: object, message: str) -> BulkOutcome:
        """Build the outcome of an input item that is no scheduleId.

        Args:
            raw: the item.
            message: why it is invalid.

        Returns:
            An ``invalid`` outcome.
        """
        shown = recorded_id(raw) if isinstance(raw, str) else recorded_id(repr(raw))
        return cls(
            schedule_id=shown,
            kind=OutcomeKind.INVALID,
            error_type="InvalidParameterError",
            error=shorten(message, MAX_ERROR_TEXT, ()),
        )

    def to_record(self) -> dict[str, Any]:
        """Return the journal's JSON object for this outcome (``None`` fields left out)."""
        record: dict[str, Any] = {"id": self.schedule_id, "outcome": self.kind.value}
        if self.old_status is not None:
            record["old_status"] = str(self.old_status)
        if self.new_status is not None:
            record["new_status"] = str(self.new_status)
        if self.error_code is not None:
            record["error_code"] = self.error_code
        if self.error_type is not None:
            record["error_type"] = self.error_type
        if self.error is not None:
            record["error"] = self.error
        if self.scheduled_at is not None:
            record["scheduled_at"] = self.scheduled_at.isoformat()
        if self.registration_uuid is not None:
            record["registration_uuid"] = self.registration_uuid
        if self.merchant_meta_data is not None:
            record["merchant_meta_data"] = self.merchant_meta_data
        if self.change is not None:
            record["change"] = self.change
        if self.values is not None:
            record["values"] = dict(self.values)
        if self.new_schedule_id is not None:
            record["new_schedule_id"] = self.new_schedule_id
        record["at"] = self.at.isoformat(timespec="milliseconds")
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> BulkOutcome:
        """Rebuild an outcome from a journal object (``result`` and ``exception`` stay None).

        Args:
            record: one parsed journal line with ``id`` and ``outcome``.

        Returns:
            The outcome.

        Raises:
            ValueError: the object is not an outcome line.
            KeyError: a required key is missing.
            TypeError: a field has the wrong type.
        """
        schedule_id = record["id"]
        if not isinstance(schedule_id, str):
            raise TypeError("id must be a string")
        code = record.get("error_code")
        if code is not None and (not isinstance(code, int) or isinstance(code, bool)):
            raise TypeError("error_code must be an integer")
        at = record.get("at")
        scheduled_at = record.get("scheduled_at")
        return cls(
            schedule_id=schedule_id,
            kind=OutcomeKind(record["outcome"]),
            at=datetime.fromisoformat(at) if isinstance(at, str) else _now(),
            old_status=_status(record.get("old_status")),
            new_status=_status(record.get("new_status")),
            error_code=code,
            error_type=record.get("error_type"),
            error=record.get("error"),
            scheduled_at=(
                datetime.fromisoformat(scheduled_at) if isinstance(scheduled_at, str) else None
            ),
            registration_uuid=_optional_text(record, "registration_uuid"),
            merchant_meta_data=_optional_text(record, "merchant_meta_data"),
            change=_optional_text(record, "change"),
            values=_values(record.get("values")),
            new_schedule_id=_optional_text(record, "new_schedule_id"),
        )


def _encode(record: Mapping[str, Any]) -> bytes:
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _parse_lines(
    lines: Iterable[bytes],
    *,
    source: str,
    tolerate_torn_tail: bool,
    on_run: Callable[[Mapping[str, Any]], object] | None = None,
) -> Iterator[BulkOutcome]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            outcome = _decode_line(line)
        except (ValueError, KeyError, TypeError):
            # Only the last line can lack its newline: the one a killed run was writing.
            if tolerate_torn_tail and not line.endswith(b"\n"):
                return
            _raise_corrupt(source, number, line)
        if isinstance(outcome, BulkOutcome):
            yield outcome
        elif on_run is not None:
            on_run(outcome)


def _decode_line(line: bytes) -> BulkOutcome | dict[str, Any]:
    """The outcome on one journal line, or the record of a run line.

    Raises:
        ValueError, KeyError, TypeError: the line is no journal line.
    """
    record = json.loads(line)
    if not isinstance(record, dict):
        raise TypeError("not an object")
    if "run" in record and "id" not in record:
        return record
    return BulkOutcome.from_record(record)


def run_operation(record: Mapping[str, Any]) -> Operation | None:
    """Return the operation a run line names; a ``start`` line without one is cancel's.

    Args:
        record: a run line's object.

    Returns:
        The operation of a ``start`` line, None for other run lines.

    Raises:
        InvalidParameterError: the line names no operation a bulk job runs.
    """
    if record.get("run") != "start":
        return None
    name = record.get("operation", Operation.CANCEL.path)
    for operation in BULK_OPERATIONS:
        if operation.path == name:
            return operation
    raise InvalidParameterError(f"journal run line names an unknown operation: {name!r:.40}")


def _raise_corrupt(source: str, number: int, line: bytes) -> None:
    raise InvalidParameterError(
        f"{source}:{number}: not a schedcancel journal line: {_excerpt(line)!r}"
    )


def read_journal(path: str | os.PathLike[str]) -> Iterator[BulkOutcome]:
    """Read the outcomes a journal holds, oldest first.

    Run lines are skipped; a torn last line (a run killed while writing it) is
    ignored, so a journal can be read while a job is appending to it.

    Args:
        path: the journal file.

    Yields:
        One outcome per outcome line.

    Raises:
        InvalidParameterError: a line other than the last is not a journal line.
        OSError: the file cannot be read.
    """
    with Path(path).open("rb") as file:
        yield from _parse_lines(file, source=os.fspath(path), tolerate_torn_tail=True)


def _is_record(line: bytes) -> bool:
    """True when ``line`` is one whole journal line: a run record or an outcome."""
    try:
        _decode_line(line)
    except (ValueError, KeyError, TypeError):
        return False
    return True


def _check_is_journal(fd: int, path: str) -> None:
    """Refuse a file that is not a journal, before anything in it could be cut.

    Raises:
        InvalidParameterError: its first line is no journal line.
    """
    head = os.pread(fd, _MAX_LINE, 0)
    newline = head.find(b"\n")
    if newline >= 0:
        if not _is_record(head[: newline + 1]):
            reason = f"{path}:1: not a schedcancel journal line: {_excerpt(head[:newline])!r}"
        else:
            return
    elif len(head) == _MAX_LINE:
        reason = f"{path}: its first line is longer than any journal line"
    elif not head or head.startswith(b'{"'):
        return  # empty, or one torn line: what a run killed while writing its first leaves
    else:
        reason = f"{path}: not a schedcancel journal (its first line is no JSON record)"
    raise InvalidParameterError(f"{reason}; nothing was changed")


def _mend_tail(fd: int, path: str) -> int:
    """Make the file end with a whole line; return how many bytes of a torn line were cut.

    A killed writer can leave part of its line after the last newline: that part
    is cut. A whole record that lost only its newline is kept and completed, so
    a final outcome is never forgotten (its id would be sent again).

    Raises:
        InvalidParameterError: what follows the last newline cannot be a journal
            line; the file is left as it is.
    """
    size = os.fstat(fd).st_size
    end = size
    keep = 0
    while end > 0:  # walk back to the last newline
        start = max(0, end - _TAIL_CHUNK)
        chunk = os.pread(fd, end - start, start)
        if end == size and chunk.endswith(b"\n"):
            return 0
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    if size == 0:
        return 0
    tail = os.pread(fd, min(size - keep, _MAX_LINE), keep)
    if not tail.startswith(b"{"):
        raise InvalidParameterError(
            f"{path}: its last line is no journal line: {_excerpt(tail)!r}; nothing was changed"
        )
    if size - keep < _MAX_LINE and _is_record(tail):
        os.write(fd, b"\n")
        os.fsync(fd)
        return 0
    os.ftruncate(fd, keep)
    return size - keep


def _sync_directory(directory: Path) -> None:
    """Make a new journal's directory entry durable: lines fsync-ed into a file that a
    power loss unlinks would be lost with it."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - the file was just opened in it
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover - some file systems cannot sync a directory
        pass
    finally:
        os.close(dir_fd)


def _excerpt(data: bytes) -> str:
    return data[:60].decode("utf-8", "replace")


@attrs.define(eq=False)
class Journal:
    """An append-only JSON Lines record of finished ids, durable line by line.

    Open it with [`open()`][schedcancel.Journal.open] (which takes an exclusive lock, so two runs
    cannot share one file, and cuts a torn last line), read what earlier runs
    did with [`replay()`][schedcancel.Journal.replay], then [`append()`][schedcancel.Journal.append]
    outcomes. Every append is one ``os.write`` of a whole line followed by ``os.fsync``;
    [`aappend()`][schedcancel.Journal.aappend] runs it in a worker thread so the event loop never
    waits for the disk.

    Attributes:
        path: the file.
        appended: lines written since opening.
        cut_bytes: bytes of a torn last line removed on opening.
    """

    path: Path
    _fd: int = attrs.field(alias="fd", repr=False)
    appended: int = 0
    cut_bytes: int = 0
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False)
    _closed: bool = attrs.field(default=False, repr=False)
    _broken: bool = attrs.field(default=False, repr=False)

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Journal:
        """Open (or create) a journal for appending.

        Args:
            path: the file; its directory must exist.

        Returns:
            The open journal; close it with `close()` or ``with``.

        Raises:
            InvalidParameterError: another process holds the journal open.
            OSError: the file cannot be opened.
        """
        target = Path(path)
        fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            _sync_directory(target.parent)
            if fcntl is not None:  # pragma: no branch - always there on POSIX
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise InvalidParameterError(
                        f"journal {os.fspath(target)} is in use by another run"
                    ) from None
            _check_is_journal(fd, os.fspath(target))
            cut = _mend_tail(fd, os.fspath(target))
        except BaseException:
            os.close(fd)
            raise
        if cut:
            logger.warning("journal %s: cut a torn last line of %d bytes", target, cut)
        return cls(path=target, fd=fd, cut_bytes=cut)

    @staticmethod
    def read(path: str | os.PathLike[str]) -> Iterator[BulkOutcome]:
        """Read a journal's outcomes without opening it for a run (see `read_journal()`).

        Args:
            path: the journal file.

        Returns:
            An iterator of the outcomes, oldest first; a torn last line is ignored.
        """
        return read_journal(path)

    def replay(
        self, on_run: Callable[[Mapping[str, Any]], object] | None = None
    ) -> Iterator[BulkOutcome]:
        """Read the outcomes already in the file, oldest first.

        Args:
            on_run: called with each run line's object, in file order.

        Yields:
            One outcome per outcome line.

        Raises:
            InvalidParameterError: a line is not a journal line.
        """
        with self.path.open("rb") as file:
            yield from _parse_lines(
                file, source=os.fspath(self.path), tolerate_torn_tail=False, on_run=on_run
            )

    def append(self, outcome: BulkOutcome) -> None:
        """Write one outcome's line and make it durable (blocking).

        Args:
            outcome: the finished id.
        """
        self.write_record(outcome.to_record())

    async def aappend(self, outcome: BulkOutcome) -> None:
        """Write one outcome's line and make it durable, off the event loop.

        The write completes even if the awaiting task is cancelled meanwhile.

        Args:
            outcome: the finished id.
        """
        await asyncio.to_thread(self.write_record, outcome.to_record())

    def write_record(self, record: Mapping[str, Any]) -> None:
        """Append one JSON object as a line, then ``fsync``.

        Args:
            record: an outcome's or a run's record; it must hold no secret.

        Raises:
            OSError: the write failed (a partial line is taken back), or an earlier
                failed write left part of a line that could not be taken back.
        """
        data = _encode(record)
        with self._lock:
            if self._closed:
                # A write that lost the race with close(): the id is simply not final
                # in the journal and a later run sends it again.
                logger.debug("journal %s closed; dropped a line", self.path)
                return
            if self._broken:
                raise OSError(
                    f"journal {self.path}: not written after a failed write left part of a line"
                )
            before = os.fstat(self._fd).st_size
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
                os.fsync(self._fd)
            except OSError:
                # A full disk or an I/O error part-way: take the half line back, so
                # that later lines do not follow it and the file stays resumable.
                try:
                    os.ftruncate(self._fd, before)
                except OSError:
                    self._broken = True  # the half line stays last: the next open cuts it
                raise
            self.appended += 1

    def close(self) -> None:
        """Release the lock and close the file (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(OSError):
                os.close(self._fd)

    @property
    def closed(self) -> bool:
        """True once `close()` was called."""
        return self._closed

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
