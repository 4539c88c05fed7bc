"""What the mock server saw: one [`Arrival`][schedcancel.testing.Arrival] per request, and helpers
to assert on them."""

from __future__ import annotations

import bisect
import enum
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Literal

import attrs

from ..errors import InvalidParameterError
from .operations import Operation, operation_named

__all__ = ["SUCCESS_OUTCOMES", "Arrival", "Outcome", "Recorder"]


class Outcome(enum.StrEnum):
    """How the server answered one arrival."""

    #: 200, ``success: true``: the schedule went to CANCELLED.
    CANCELLED = "cancelled"
    #: 200, ``success: true``: get answered the schedule.
    FETCHED = "fetched"
    #: 200, ``success: true``: the schedule went from ACTIVE to PAUSED.
    PAUSED = "paused"
    #: 200, ``success: true``: the schedule went from PAUSED or ERROR to ACTIVE.
    CONTINUED = "continued"
    #: 200, ``success: true``: the schedule's fields changed.
    UPDATED = "updated"
    #: 200, ``success: true``: a new schedule exists, ACTIVE.
    STARTED = "started"
    #: 200, errorCode 7070: the schedule's status does not allow the operation.
    INVALID_STATUS = "invalid_status"
    #: 200, a business refusal of a body field: 7010, 7020, 7050, 7060, 7080 or 7090.
    INVALID_DATA = "invalid_data"
    #: 200, errorCode 7040: the scheduleId is not known to the server.
    UNKNOWN_ID = "unknown_id"
    #: 429, errorCode 1009.
    RATE_LIMITED = "rate_limited"
    #: 401: bad Basic auth or an apiKey the server does not know.
    UNAUTHORIZED = "unauthorized"
    #: errorCode 1004: signature missing, malformed or wrong.
    BAD_SIGNATURE = "bad_signature"
    #: 400, errorCode 1002 (path parameters, body schema) or 1005 (body, Content-Type).
    INVALID_REQUEST = "invalid_request"
    #: injected 500, errorCode 1008.
    SERVER_ERROR = "server_error"
    #: injected 503, errorCode 1010.
    MAINTENANCE = "maintenance"
    #: injected: 200 with a JSON body cut short (the cancel took effect).
    TRUNCATED = "truncated"
    #: injected: 502 with an HTML page, as from a proxy.
    HTML = "html"
    #: injected: the connection closed without a response (the cancel took effect).
    DROPPED = "dropped"


#: The outcome of each operation's success.
SUCCESS_OUTCOMES: Mapping[Operation, Outcome] = MappingProxyType(
    {
        Operation.GET: Outcome.FETCHED,
        Operation.PAUSE: Outcome.PAUSED,
        Operation.CONTINUE: Outcome.CONTINUED,
        Operation.UPDATE: Outcome.UPDATED,
        Operation.CANCEL: Outcome.CANCELLED,
        Operation.START: Outcome.STARTED,
    }
)


@attrs.frozen(kw_only=True)
class Arrival:
    """One request as the server saw it.

    Attributes:
        time: the server's clock when the request arrived (after any injected
            request latency), the instant the limits counted it at.
        user: the authenticated API user; None when authentication failed.
        api_key: the connector apiKey from the path, redacted.
        schedule_id: the scheduleId from the path (None for start).
        status: the HTTP status sent; None when the connection was dropped.
        outcome: how the server answered.
        foreign: sent by the server's own foreign-load generator, not a client.
        accepted: admitted by both rate limits (so it counts against them).
        limited_by: the level that refused it (``"total"`` or ``"per_schedule"``).
        operation: the operation the path named.
    """

    time: float
    user: str | None
    api_key: str | None
    schedule_id: str | None
    status: int | None
    outcome: Outcome
    foreign: bool = False
    accepted: bool = False
    limited_by: Literal["total", "per_schedule"] | None = None
    operation: Operation = Operation.CANCEL


def max_in_window(times: Iterable[float], window: float) -> int:
    """The most of ``times`` that fall in any half-open interval ``[t, t + window)``.

    Args:
        times: arrival times, in any order.
        window: the interval's length in seconds.

    Returns:
        The maximum count (0 for no times).

    Raises:
        InvalidParameterError: ``window`` is not positive.
    """
    if not window > 0:
        raise InvalidParameterError(f"window must be > 0, got {window!r}")
    ordered = sorted(times)
    best = 0
    # The busiest interval can always be slid right until it starts at an arrival.
    for i, start in enumerate(ordered):
        end = bisect.bisect_left(ordered, start + window, lo=i)
        best = max(best, end - i)
    return best


@attrs.define(eq=False)
class Recorder:
    """The arrivals one server saw, oldest first."""

    _arrivals: list[Arrival] = attrs.field(init=False, factory=list)

    def __repr__(self) -> str:
        return f"Recorder(arrivals={len(self._arrivals)})"

    def __len__(self) -> int:
        return len(self._arrivals)

    def __iter__(self) -> Iterator[Arrival]:
        return iter(tuple(self._arrivals))

    def record(self, arrival: Arrival) -> None:
        """Append one arrival (the server calls this)."""
        self._arrivals.append(arrival)

    def clear(self) -> None:
        """Forget every arrival recorded so far."""
        self._arrivals.clear()

    @property
    def arrivals(self) -> tuple[Arrival, ...]:
        """Every arrival, oldest first."""
        return tuple(self._arrivals)

    def select(
        self,
        *,
        user: str | None = None,
        schedule_id: str | None = None,
        outcome: Outcome | None = None,
        foreign: bool | None = None,
        accepted_only: bool = False,
        operation: Operation | str | None = None,
    ) -> list[Arrival]:
        """The arrivals that match every filter given.

        Args:
            user: only this API user's.
            schedule_id: only this scheduleId's.
            outcome: only those answered this way.
            foreign: True for the foreign-load generator's only, False for
                clients' only, None for both.
            accepted_only: only those both rate limits admitted.
            operation: only this operation's (an [`Operation`][schedcancel.Operation] or its name).

        Returns:
            The matching arrivals, oldest first.
        """
        wanted = None if operation is None else operation_named(operation)
        return [
            a
            for a in self._arrivals
            if (user is None or a.user == user)
            and (schedule_id is None or a.schedule_id == schedule_id)
            and (outcome is None or a.outcome is outcome)
            and (foreign is None or a.foreign is foreign)
            and (not accepted_only or a.accepted)
            and (wanted is None or a.operation is wanted)
        ]

    def max_arrivals_in_window(
        self,
        window: float,
        *,
        user: str | None = None,
        schedule_id: str | None = None,
        foreign: bool | None = None,
        accepted_only: bool = False,
        operation: Operation | str | None = None,
    ) -> int:
        """The most matching arrivals in any ``window`` seconds (half-open, sliding).

        Against a server allowing N per window, a well-behaved client keeps
        this at most N with ``accepted_only=False``: every send counts.

        Args:
            window: the window in seconds.
            user: only this API user's.
            schedule_id: only this scheduleId's.
            foreign: as in [`select()`][schedcancel.testing.Recorder.select].
            accepted_only: count only arrivals both limits admitted.
            operation: only this operation's (None: every operation, as the
                server's budget counts them).

        Returns:
            The maximum count.
        """
        chosen = self.select(
            user=user,
            schedule_id=schedule_id,
            foreign=foreign,
            accepted_only=accepted_only,
            operation=operation,
        )
        return max_in_window((a.time for a in chosen), window)

    def count(
        self,
        outcome: Outcome | None = None,
        *,
        user: str | None = None,
        foreign: bool | None = None,
        operation: Operation | str | None = None,
    ) -> int:
        """How many arrivals match.

        Args:
            outcome: only those answered this way (None: all).
            user: only this API user's.
            foreign: as in [`select()`][schedcancel.testing.Recorder.select].
            operation: only this operation's.

        Returns:
            The count.
        """
        return len(self.select(outcome=outcome, user=user, foreign=foreign, operation=operation))

    def count_rate_limited(self, *, user: str | None = None, foreign: bool | None = False) -> int:
        """How many arrivals were answered 429 (clients' only, by default).

        Args:
            user: only this API user's.
            foreign: as in [`select()`][schedcancel.testing.Recorder.select]; False by default, so
                the foreign load's own 429s do not count against the client under test.

        Returns:
            The count.
        """
        return self.count(Outcome.RATE_LIMITED, user=user, foreign=foreign)

    def outcomes(self, *, foreign: bool | None = False) -> Counter[Outcome]:
        """Arrivals per outcome (clients' only, by default).

        Args:
            foreign: as in [`select()`][schedcancel.testing.Recorder.select].

        Returns:
            A counter keyed by [`Outcome`][schedcancel.testing.Outcome].
        """
        return Counter(a.outcome for a in self.select(foreign=foreign))

    def operations(self, *, foreign: bool | None = False) -> Counter[Operation]:
        """Arrivals per operation (clients' only, by default).

        Args:
            foreign: as in [`select()`][schedcancel.testing.Recorder.select].

        Returns:
            A counter keyed by [`Operation`][schedcancel.Operation].
        """
        return Counter(a.operation for a in self.select(foreign=foreign))

    def sends_per_id(self, *, foreign: bool | None = False) -> Counter[str]:
        """Arrivals per scheduleId (clients' only, by default).

        Args:
            foreign: as in [`select()`][schedcancel.testing.Recorder.select].

        Returns:
            A counter keyed by scheduleId.
        """
        return Counter(
            a.schedule_id for a in self.select(foreign=foreign) if a.schedule_id is not None
        )

    def first_arrival(
        self, *, user: str | None = None, foreign: bool | None = False
    ) -> float | None:
        """The earliest matching arrival's time, or None when there is none.

        Args:
            user: only this API user's.
            foreign: as in [`select()`][schedcancel.testing.Recorder.select].
        """
        chosen = self.select(user=user, foreign=foreign)
        return min((a.time for a in chosen), default=None)

    def last_arrival(
        self, *, user: str | None = None, foreign: bool | None = False
    ) -> float | None:
        """The latest matching arrival's time, or None when there is none.

        Args:
            user: only this API user's.
            foreign: as in [`select()`][schedcancel.testing.Recorder.select].
        """
        chosen = self.select(user=user, foreign=foreign)
        return max((a.time for a in chosen), default=None)
