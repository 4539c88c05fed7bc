"""A bulk start's intents: the journal line written before each start request, and what a
re-run makes of the journal. Pure: no I/O, no clock read (times are passed in or parsed).

``start`` is not idempotent: sent twice, it creates two schedules. So a bulk
start writes an ``intent`` run line, and makes it durable, after the limiter
admitted the request and before the request is sent:

    {"run":"intent","row":"cust-0042","change":"5ec595ed07bff063","values":{…},"at":"…"}

The row's outcome line follows when the answer comes. A re-run reads each
row key's last line ([`StartLedger`][schedcancel._bulk.intents.StartLedger]): an
intent with no outcome after it is a request that was out when its run was
killed; it may have created the schedule, so the row is never sent again on a
guess: it is reported as ``unknown`` (`unknown_outcome()`), like a start that
timed out, until the user, having checked, retries it explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

from .._protocol.requests import StartRow
from ..errors import InvalidParameterError
from .journal import INTENT, UNKNOWN_NOTE, BulkOutcome, OutcomeKind, timestamp

__all__ = ["Intent", "StartLedger", "intent_record", "unknown_outcome"]

#: What an ``unknown`` outcome says the user does next.
CHECK_FIRST = (
    f"{UNKNOWN_NOTE}: the start request may have created the schedule; look for it (see"
    " docs/migration.md), and retry the row (retry_unknown, --retry-unknown KEY) only if it"
    " does not exist"
)


def intent_record(row: StartRow) -> dict[str, Any]:
    """Return the journal's ``intent`` line for a start row about to be sent.

    It names the row by its key, with the digest and the shown fields of the
    request (never ``merchantMetaData`` or ``callbackUrl``).
    """
    return {
        "run": INTENT,
        "row": row.key,
        "change": row.digest,
        "values": row.values(),
        "at": timestamp(),
    }


@attrs.frozen
class Intent:
    """A start request journaled as about to be sent, with no outcome after it.

    Attributes:
        key: the row's key.
        change: the request's digest.
        values: the request's shown fields.
        at: when the intent was written (None when the line has no readable time).
    """

    key: str
    change: str | None
    values: Mapping[str, str | int] | None
    at: datetime | None


def _intent(record: Mapping[str, Any]) -> Intent | None:
    key = record.get("row")
    if record.get("run") != INTENT or not isinstance(key, str):
        return None
    change = record.get("change")
    values = record.get("values")
    at = record.get("at")
    try:
        moment = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        moment = None
    return Intent(
        key=key,
        change=change if isinstance(change, str) else None,
        values=MappingProxyType(values) if isinstance(values, dict) else None,
        at=moment,
    )


def unknown_outcome(intent: Intent, row: StartRow | None = None) -> BulkOutcome:
    """The ``unknown`` outcome of a row whose intent has no outcome after it.

    Args:
        intent: the journaled intent (its digest and fields are what may have been created).
        row: the row as this run read it, when it did; an edited row is named as such.

    Returns:
        An ``unknown`` outcome with the intent's digest and fields.
    """
    when = "" if intent.at is None else f" at {intent.at.isoformat(timespec='seconds')}"
    edited = (
        " (the row's fields have changed since: the journal's are shown)"
        if row is not None and row.digest != intent.change
        else ""
    )
    return BulkOutcome(
        schedule_id=intent.key,
        kind=OutcomeKind.UNKNOWN,
        error_type="OutcomeUnknownError",
        error=f"the run that sent this row{when} ended before its answer{edited}; {CHECK_FIRST}",
        change=intent.change,
        values=intent.values,
    )


@attrs.define
class StartLedger:
    """Each start row's last journal line, fed a start journal's lines in file order. Pure.

    A row's state is its last line: an outcome (final or not), or an intent
    with no outcome after it ([`dangling()`][schedcancel._bulk.intents.StartLedger.dangling]).
    """

    _latest: dict[str, BulkOutcome | Intent] = attrs.field(factory=dict, init=False)

    def on_run(self, record: Mapping[str, Any]) -> None:
        """Take a run line; an ``intent`` is its row's last line until an outcome follows."""
        intent = _intent(record)
        if intent is not None:
            self._latest[intent.key] = intent

    def on_outcome(self, outcome: BulkOutcome) -> None:
        """Take an outcome line: its row's last line."""
        self._latest[outcome.schedule_id] = outcome

    def dangling(self) -> Iterator[Intent]:
        """The intents with no outcome after them: requests out when their run ended."""
        return (state for state in self._latest.values() if isinstance(state, Intent))

    def finals(self) -> Iterator[BulkOutcome]:
        """The rows whose last line is a final outcome (started, unknown, failed for good)."""
        return (s for s in self._latest.values() if isinstance(s, BulkOutcome) and s.final)

    def unknown_keys(self) -> set[str]:
        """The keys whose outcome is unknown: an ``unknown`` line, or a dangling intent, last."""
        return {
            key
            for key, state in self._latest.items()
            if isinstance(state, Intent) or state.kind is OutcomeKind.UNKNOWN
        }

    def check_retries(self, keys: Iterable[str]) -> frozenset[str]:
        """Check that every key to retry has an unknown outcome; return them.

        Raises:
            InvalidParameterError: a key whose outcome is not unknown (a typo, or a
                row started already): nothing is sent.
        """
        wanted = frozenset(keys)
        others = sorted(wanted - self.unknown_keys())
        if others:
            shown = ", ".join(repr(key[:40]) for key in others[:5])
            raise InvalidParameterError(
                f"retry_unknown names {len(others)} row(s) whose outcome in the journal is"
                f" not unknown: {shown}; nothing was sent"
            )
        return wanted

    def outcomes(self) -> Iterator[BulkOutcome]:
        """Each row's last outcome, a dangling intent as ``unknown``, in first-seen order."""
        for state in self._latest.values():
            yield unknown_outcome(state) if isinstance(state, Intent) else state
