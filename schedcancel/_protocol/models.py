"""Value types: results, settings, limiter permits and stats, and the limiter protocol."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import attrs

from ..errors import InvalidParameterError, ScheduleOperationError
from .operations import Operation, ScheduleStatus
from .validate import check_int, check_number, check_optional_number

if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "Clock",
    "Limiter",
    "LimiterStats",
    "Permit",
    "RateLimitLevel",
    "RateLimits",
    "RetryPolicy",
    "ScheduleResult",
    "ScheduleStatus",
]

#: errorCode for "The status of the schedule is not valid for the requested operation".
ERROR_INVALID_STATUS = 7070


_NO_MALFORMED: Mapping[str, object] = MappingProxyType({})


def _read_only(value: Mapping[str, object]) -> Mapping[str, object]:
    return value if isinstance(value, MappingProxyType) else MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class ScheduleResult:
    """What the server answered to a schedule operation (HTTP 200), whichever one.

    Every operation (get, start, update, pause, continue, cancel) answers
    with the same schedule response, so one type serves them all. Business errors
    (``success: false``) are results too, so that one bad id does not blow up
    a ``gather`` over a bulk job; call
    [`raise_for_error()`][schedcancel.ScheduleResult.raise_for_error] to turn them into exceptions.

    Attributes:
        success: whether the operation was carried out.
        schedule_id: the schedule's id (for start: the new schedule's).
        registration_uuid: the registration the schedule charges (the wire's
            ``registrationUuid``, or ``registrationId`` as the published schema
            names it).
        merchant_meta_data: the merchant's own text.
        old_status: the status before the operation; a string for a status
            [`ScheduleStatus`][schedcancel.ScheduleStatus] does not list.
        new_status: the status after it.
        scheduled_at: the next scheduled charge (aware).
        error_message: the server's text; branch on ``error_code``, not on it.
        error_code: the API's ``errorCode`` (e.g. 7040 unknown id, 7070 wrong status).
        adapter_message: passed through from the upstream adapter.
        adapter_code: passed through from the upstream adapter.
        operation: the call that produced this result (None when built by
            hand); not compared by ``==``, which compares what the server said.
        malformed: auxiliary fields the server sent in a form the API does
            not document (an impossible ``scheduledAt``, a non-string
            ``merchantMetaData``, ...), by wire name, with the raw JSON value.
            Their attributes are None; the result is still trustworthy, since
            ``success``, ``errorCode`` and the statuses were well formed
            (when those are not, parsing raises ``ResponseParseError``).
            Empty when everything was well formed.
    """

    success: bool
    schedule_id: str | None = None
    registration_uuid: str | None = None
    merchant_meta_data: str | None = None
    old_status: ScheduleStatus | str | None = None
    new_status: ScheduleStatus | str | None = None
    scheduled_at: datetime | None = None
    error_message: str | None = None
    error_code: int | None = None
    adapter_message: str | None = None
    adapter_code: str | None = None
    operation: Operation | None = attrs.field(default=None, eq=False)
    # Compared, not hashed (a mapping is not hashable): results stay usable in sets.
    malformed: Mapping[str, object] = attrs.field(
        default=_NO_MALFORMED, converter=_read_only, hash=False
    )

    @property
    def already_done(self) -> bool:
        """True when the schedule was in the operation's target state before this call.

        That is ``success: false``, errorCode 7070 ("status not valid for the
        requested operation") and ``newStatus`` equal to the target of
        `operation`: PAUSED for pause, ACTIVE for continue, CANCELLED
        for cancel. Always False for get, start and update, which have no
        target state, and for a result with no ``operation``.
        """
        return self.operation is not None and self.already_done_as(self.operation)

    def already_done_as(self, operation: Operation) -> bool:
        """[`already_done`][schedcancel.ScheduleResult.already_done] as if this were the answer to
        ``operation``.

        For results whose ``operation`` is unset (built by hand, or by an
        older caller) when the caller knows which call was sent.
        """
        return (
            not self.success
            and self.error_code == ERROR_INVALID_STATUS
            and operation.target_status is not None
            and self.new_status == operation.target_status
        )

    @property
    def done(self) -> bool:
        """True when the schedule is where the operation meant to put it: ``success`` or
        [`already_done`][schedcancel.ScheduleResult.already_done]."""
        return self.success or self.already_done

    @property
    def already_cancelled(self) -> bool:
        """True when the schedule was cancelled before this call (7070, now CANCELLED).

        Whichever the operation: a pause of a cancelled schedule says so too.
        """
        return (
            not self.success
            and self.error_code == ERROR_INVALID_STATUS
            and self.new_status == ScheduleStatus.CANCELLED
        )

    @property
    def is_cancelled(self) -> bool:
        """True when the schedule is cancelled now, by this call or an earlier one.

        A successful cancel (or a success of an unnamed operation, as results
        built by hand are), a success whose ``newStatus`` is CANCELLED, or
        [`already_cancelled`][schedcancel.ScheduleResult.already_cancelled].
        """
        if self.success:
            return (
                self.new_status == ScheduleStatus.CANCELLED
                or self.operation is None
                or self.operation.target_status == ScheduleStatus.CANCELLED
            )
        return self.already_cancelled

    def raise_for_error(self) -> Self:
        """Return self when ``success`` is true, else raise
        [`ScheduleOperationError`][schedcancel.ScheduleOperationError].

        Note that an [`already_done`][schedcancel.ScheduleResult.already_done] result raises too
        (its ``success`` is false); check [`done`][schedcancel.ScheduleResult.done] first if that is
        fine with you.

        Raises:
            ScheduleOperationError: the API refused the operation.
        """
        if self.success:
            return self
        raise ScheduleOperationError(
            self.error_message or "schedule operation failed",
            http_status=200,
            error_code=self.error_code,
            error_message=self.error_message,
            schedule_id=self.schedule_id,
        )


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_number(attribute.name, value)


def _positive_int(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_int(attribute.name, value)
    check_number(attribute.name, value)


def _non_negative(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_number(attribute.name, value, zero=True)


def _non_negative_int(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_int(attribute.name, value)
    check_number(attribute.name, value, zero=True)


def _optional_positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_optional_number(attribute.name, value)


@attrs.frozen(kw_only=True)
class RateLimits:
    """The server's limits as the client keeps them.

    Attributes:
        total: requests per window per API user (the Basic-auth username).
        per_schedule: requests per window per scheduleId.
        window: the server's window in seconds.
        guard: extra seconds an entry counts after its response was observed,
            for clock and latency differences.
        mode: ``"exact"`` sends bursts as the sliding log allows; ``"smooth"``
            spaces sends ``window / limit * (1 + slack)`` apart per level.
        adaptive: learn from 429s the log says could not happen (foreign load,
            counter-type servers): lower the effective limit, go smooth, recover.
            In exact mode it also caps the requests in flight at a sixth of the
            limit while the limiter starts cold or refills a window's places, so
            the server's first answers are heard before the rest go.
        slack: the extra spacing of smooth mode.
        max_rate_limited: how many 429s one call absorbs before it raises
            ``RateLimitedError``.
        retry_after_cap: the longest ``Retry-After`` obeyed; None means ``2 * window``.
        interactive_reserve: places of the API user's window that *background*
            calls (``priority < 0``: bulk jobs) leave to the others: a call of
            priority ``>= 0`` finds one at once, and ``4 * reserve`` more one
            request interval (``(window + guard) / (total - reserve)``) apart.
            A background job on a quiet budget bursts into its first window as
            far as that allows, then goes one per interval. 0 turns the reserve
            and the pacing off. At most ``total - 1`` is used (the guide, Rate
            limits explained, has the trade-off).
        probe: start as if the server's last word were stale: a fresh limiter
            sends one request and waits for its answer before the rest (the
            adaptive in-flight cap sends a sixth of the limit), so a server that
            states its limits in headers (a lower limit, foreign load) is heard
            after one blind request. Costs one round trip at the start; nothing
            more against a server that states nothing.
        accept_higher_limits: a limit the server states above ``total`` (or
            ``per_schedule``) raises it. Off by default: a lower stated limit
            always lowers the level at once, a higher one is believed only when
            you say so (docs/rate-limits.md, "The server's own word").

    Presets for IXOPAY's documented variants:
    [`RateLimits.preset()`][schedcancel.RateLimits.preset].
    """

    total: int = attrs.field(default=60, validator=_positive_int)
    per_schedule: int = attrs.field(default=10, validator=_positive_int)
    window: float = attrs.field(default=60.0, validator=_positive)
    guard: float = attrs.field(default=1.0, validator=_non_negative)
    mode: Literal["exact", "smooth"] = attrs.field(
        default="exact", validator=attrs.validators.in_(("exact", "smooth"))
    )
    adaptive: bool = True
    slack: float = attrs.field(default=0.01, validator=_non_negative)
    max_rate_limited: int = attrs.field(default=5, validator=_non_negative_int)
    retry_after_cap: float | None = attrs.field(default=None, validator=_optional_positive)
    interactive_reserve: int = attrs.field(default=1, validator=_non_negative_int)
    probe: bool = False
    accept_higher_limits: bool = False

    @classmethod
    def preset(cls, name: RateLimitPreset = "api-reference", **changes: Any) -> RateLimits:
        """The limits one of IXOPAY's documents gives, with ``changes`` on top.

        * ``"api-reference"`` (the default, as ``RateLimits()``): the API
          reference's 60 requests per 60 s per API user and 10 per 60 s per
          scheduleId.
        * ``"user-manual"``: the user manual's 100 per 60 s per API user, *shared
          with the Status API*, and 10 per 60 s per Schedule ID. Lower ``total``
          by what your Status API calls on the same API user use.

        The documents disagree; docs/rate-limits.md ("Which limits: IXOPAY's two
        documents") says how to choose.

        Args:
            name: ``"api-reference"`` or ``"user-manual"``.
            changes: any other `RateLimits` field, e.g. ``total=80``.

        Raises:
            InvalidParameterError: an unknown preset or a bad field value.
        """
        values = _PRESETS.get(name)
        if values is None:
            raise InvalidParameterError(
                f"unknown RateLimits preset {name!r}; choose from {', '.join(_PRESETS)}"
            )
        return cls(**(values | changes))

    @property
    def effective_retry_after_cap(self) -> float:
        """The cap on ``Retry-After`` in seconds."""
        return self.retry_after_cap if self.retry_after_cap is not None else 2 * self.window


#: The names `RateLimits.preset()` knows.
RateLimitPreset = Literal["api-reference", "user-manual"]

_PRESETS: dict[str, dict[str, Any]] = {
    # https://documentation.ixopay.com/api/transaction/schedule-cancel (the API reference)
    "api-reference": {"total": 60, "per_schedule": 10, "window": 60.0},
    # the user manual: 100 per API user for the Schedule and Status APIs together
    "user-manual": {"total": 100, "per_schedule": 10, "window": 60.0},
}


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """Retries for transport errors and 5xx answers (429s are the limiter's business).

    Backoff is capped exponential with full jitter: before retry ``n`` (1-based)
    the client sleeps ``uniform(0, min(backoff_max, backoff_initial * 2 ** (n - 1)))``.

    Attributes:
        attempts: tries in all, the first included; 1 disables retries.
        backoff_initial: the first backoff's upper bound in seconds.
        backoff_max: the cap on any backoff's upper bound.
        deadline: seconds of sending and backing off after which no retry
            starts; time spent queued in the rate limiter does not count.
        jitter: where the backoff's jitter comes from, a number in [0, 1)
            (``random.random``); a constant makes retries reproducible in tests.
    """

    attempts: int = attrs.field(default=4, validator=_positive_int)
    backoff_initial: float = attrs.field(default=0.5, validator=_non_negative)
    backoff_max: float = attrs.field(default=10.0, validator=_non_negative)
    deadline: float = attrs.field(default=120.0, validator=_positive)
    jitter: Callable[[], float] = attrs.field(default=random.random, eq=False, repr=False)


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


@attrs.frozen(kw_only=True)
class Clock:
    """Where a client reads the time and waits; the real clocks by default.

    Replace a part to test time-dependent code without waiting, or give the
    client the clock the rest of your application runs on. The monotonic
    default is the running event loop's ``time()``, so an event loop with
    virtual time (looptime, for instance) reaches the client as it is.

    Attributes:
        monotonic: seconds on a monotonic clock: queue waits, the retry deadline,
            the hooks' durations.
        wall: the timezone-aware date-time now: a signed request's ``Date``
            header, and the ``Date`` of answers as the hooks see it.
        sleep: how the client waits between retries.
    """

    monotonic: Callable[[], float] = attrs.field(default=_loop_time, eq=False)
    wall: Callable[[], datetime] = attrs.field(default=_utc_now, eq=False)
    sleep: Callable[[float], Awaitable[object]] = attrs.field(default=_sleep, eq=False)


#: The rate limit a 429 is blamed on: the API user's (``"user"``) or the scheduleId's.
RateLimitLevel = Literal["user", "schedule"]


@attrs.frozen(kw_only=True)
class Permit:
    """A limiter's admission of one request; hand it back to ``release``.

    Attributes:
        schedule_id: the scheduleId the permit was taken for; None for a request
            that only the API user's level counts (``start``).
        acquired_at: the limiter's clock when it was granted.
        handle: the limiter's own bookkeeping; opaque to everyone else.
    """

    schedule_id: str | None
    acquired_at: float
    handle: object = attrs.field(eq=False, repr=False)


@attrs.frozen(kw_only=True)
class LimiterStats:
    """A snapshot of a limiter, for dashboards and for telling a user how long.

    Attributes:
        queued: requests waiting for a permit.
        in_flight: permits granted and not yet released.
        total_used: entries in the API user's log that still count.
        total_limit: the API user's effective limit now (adaptive may lower it).
        schedule_ids: scheduleIds with live state.
        next_free: seconds until the API user's log admits one more request (0 if now).
        rate_limited: 429s seen since the limiter was created.
        mode: the API user's level's mode now (``"exact"`` or ``"smooth"``).
        background_next_free: seconds until a background call (priority < 0) may go,
            as the background policy allows (0 if now).
    """

    queued: int
    in_flight: int
    total_used: int
    total_limit: int
    schedule_ids: int
    next_free: float
    rate_limited: int = 0
    mode: Literal["exact", "smooth"] = "exact"
    background_next_free: float = 0.0


@runtime_checkable
class Limiter(Protocol):
    """What ``ScheduleClient`` needs from a limiter (in process or Redis).

    One limiter keeps one API user's budget. Several clients share a budget by
    sharing the limiter object (or, across processes, the Redis keys).

    **Optional: hearing the server.** A limiter may also have
    ``async def release_heard(permit, headers, *, rate_limited=False)``, which
    does what `release()` does and also takes in what the answer's rate-limit
    headers said ([`RateLimitHeaders`][schedcancel.RateLimitHeaders], its
    ``retry_after`` included). The client calls it, found with ``getattr``, for
    every answer, 429 or not, when the limiter has it, and `release()` otherwise:
    a limiter written without it keeps working, and hears only ``Retry-After``.
    [`RateLimiter`][schedcancel.RateLimiter] and
    [`RedisLimiter`][schedcancel.redis.RedisLimiter] have it.
    """

    @property
    def limits(self) -> RateLimits:
        """The limits this limiter keeps."""

    async def acquire(
        self,
        schedule_id: str | None,
        *,
        priority: int = 0,
        queue_timeout: float | None = None,
        requeue: bool = False,
    ) -> Permit:
        """Wait until a request for ``schedule_id`` may start, and take its entries.

        Args:
            schedule_id: the id whose per-schedule log is charged too; None for
                a request with no scheduleId (``start``), which only the API
                user's level counts and no per-scheduleId limit ever holds back.
            priority: higher goes first among eligible waiters.
            queue_timeout: give up after this many seconds, at once when the
                earliest start is already known to be later.
            requeue: a request coming back after a 429: it goes to the front.

        Raises:
            QueueTimeoutError: not admitted within ``queue_timeout``.
            BackendError: the shared store failed.
        """

    async def release(
        self,
        permit: Permit,
        *,
        rate_limited: bool = False,
        retry_after: float | None = None,
    ) -> RateLimitLevel | None:
        """Report that the request's response (or failure) was observed now.

        The permit's entries keep counting for ``window + guard`` from now.
        With ``rate_limited`` the server answered 429: the level that was hit
        pauses (for ``retry_after`` when given, capped).

        Returns:
            After a 429, the level the limiter blamed (``"user"`` or
            ``"schedule"``) when it can tell, else None. Instrumentation
            reports it; a limiter may always return None.
        """

    async def estimate(self, schedule_id: str | None = None) -> float:
        """Seconds a new request would wait if it asked now, without asking.

        ``schedule_id`` None asks for a request with no per-scheduleId
        constraint (a fresh id, or a start).
        """

    def stats(self) -> LimiterStats:
        """A snapshot of the limiter's state."""

    async def aclose(self) -> None:
        """Release resources; waiters still queued get ``asyncio.CancelledError``."""
