"""Instrumentation: typed events about each call, handed to pluggable hooks.

A *hook* is any callable taking one [`CallEvent`][schedcancel.hooks.CallEvent]. The client tells its
hooks, synchronously and in order, what happens to every call:

    Queued -> Granted -> Sent -> Answered -> Finished
                           |        '-> RateLimited -> Queued (requeue) ...
                           '-> Retried -> Queued ...   GaveUp -> Finished

Every call ends with exactly one [`Finished`][schedcancel.hooks.Finished]. The events are frozen
attrs values; none holds a credential (the apiKey only redacted, like ``conn***``).

Cost: with no hooks (``hooks=()``) a call pays one attribute check. The
default hook, [`LoggingHook`][schedcancel.hooks.LoggingHook], is polled once per call through its
``enabled()`` and costs nothing more while its logger is not enabled for its
level. A hook that raises is logged once (with its traceback) and then
ignored: instrumentation never breaks a call.

Optional hook methods, looked up once when the client is made:

* ``enabled() -> bool``: asked when a call starts; False skips the hook for
  that call (and when no hook is enabled, the call makes no events at all).
* ``watch(limiter)``: given the client's limiter, for gauges read from
  [`stats()`][schedcancel.Limiter.stats] (queued, in flight).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol
from urllib.parse import urlsplit

import attrs

from .. import errors
from .._protocol.models import RateLimitLevel
from .._protocol.redact import redact_key

if TYPE_CHECKING:
    from .._protocol.models import Limiter

__all__ = [
    "Answered",
    "CallEvent",
    "CallTrace",
    "Failed",
    "Finished",
    "GaveUp",
    "Granted",
    "Hook",
    "Hooks",
    "LoggingHook",
    "Queued",
    "RateLimited",
    "Retried",
    "Sent",
    "WatchesLimiters",
]

log = logging.getLogger("schedcancel.hooks")

#: Why a call was sent again or given up: the kind of failure.
Reason = Literal["transport", "server_error", "bad_response", "rate_limited"]


class Hook(Protocol):
    """Anything called with each [`CallEvent`][schedcancel.hooks.CallEvent]; its return value is
    ignored.

    See the module docstring for the optional ``enabled()`` and ``watch()``.
    """

    def __call__(self, event: CallEvent, /) -> None:
        """Handle one event; must not block (it runs inside the call)."""


@attrs.frozen(kw_only=True)
class CallEvent:
    """What every event tells: which call, of what, about which schedule.

    Attributes:
        call_id: this call's number, unique in the process: the events of one
            call share it (several calls interleave).
        operation: the API operation, e.g. ``"cancel"``.
        schedule_id: the scheduleId the call is about (None for ``start``).
        api_key: the connector's apiKey, redacted (``conn***``).
        attempt: the attempt the event belongs to (1 for the first request;
            429 requeues and retries count).
    """

    #: The event's name in logs, span events and metric labels.
    kind: ClassVar[str] = "event"

    call_id: int
    operation: str
    schedule_id: str | None
    api_key: str
    attempt: int


@attrs.frozen(kw_only=True)
class Queued(CallEvent):
    """The call waits for a permit from the limiter.

    Attributes:
        priority: the call's priority.
        requeue: the call comes back after a 429 (it goes to the front).
    """

    kind: ClassVar[str] = "queued"

    priority: int
    requeue: bool


@attrs.frozen(kw_only=True)
class Granted(CallEvent):
    """The limiter admitted the call.

    Attributes:
        wait: seconds it waited in the limiter's queue for this attempt.
    """

    kind: ClassVar[str] = "granted"

    wait: float


@attrs.frozen(kw_only=True)
class Sent(CallEvent):
    """The request goes on the wire.

    Attributes:
        method: the HTTP method.
        server_address: the API host.
        server_port: the API port.
        url_template: the request path with placeholders, never the apiKey.
    """

    kind: ClassVar[str] = "sent"

    method: str
    server_address: str
    server_port: int
    url_template: str


@attrs.frozen(kw_only=True)
class Answered(CallEvent):
    """A response arrived.

    Attributes:
        status: the HTTP status.
        error_code: the API's ``errorCode``, when the body had one.
        duration: seconds from sending to the response.
    """

    kind: ClassVar[str] = "answered"

    status: int
    error_code: int | None
    duration: float


@attrs.frozen(kw_only=True)
class RateLimited(CallEvent):
    """The server answered 429.

    Attributes:
        level: the level the limiter blamed and paused (``"user"`` or
            ``"schedule"``); None when the limiter does not say.
        retry_after: the server's ``Retry-After`` in seconds, when it sent one.
        count: 429s of this call so far.
        requeued: the call goes back to the limiter; False: it gives up.
    """

    kind: ClassVar[str] = "rate_limited"

    level: RateLimitLevel | None
    retry_after: float | None
    count: int
    requeued: bool


@attrs.frozen(kw_only=True)
class Failed(CallEvent):
    """What [`Retried`][schedcancel.hooks.Retried] and [`GaveUp`][schedcancel.hooks.GaveUp] tell
    about the failure.

    Attributes:
        reason: the kind of failure.
        error_type: the exception's class name.
        error: the exception's message (scrubbed of secrets, as every message).
    """

    reason: Reason
    error_type: str
    error: str


@attrs.frozen(kw_only=True)
class Retried(Failed):
    """The attempt failed; the call backs off and tries again.

    Attributes:
        delay: seconds of backoff before the next attempt.
    """

    kind: ClassVar[str] = "retried"

    delay: float


@attrs.frozen(kw_only=True)
class GaveUp(Failed):
    """The retry policy (or the 429 requeue limit) is spent: the call fails."""

    kind: ClassVar[str] = "gave_up"


@attrs.frozen(kw_only=True)
class Finished(CallEvent):
    """The call is over; exactly one per call, its last event.

    Attributes:
        outcome: ``"success"`` (the API said ``success: true``), ``"refused"``
            (an answer with ``success: false``, e.g. errorCode 7040 or 7070), or
            ``"error"`` (an exception: see ``error_type``).
        status: the last HTTP status, if any response came.
        error_code: the API's ``errorCode`` of the last answer, if any.
        error_type: the exception's class name (``"CancelledError"`` too), or None.
        error: the exception's message, or None.
        queue_wait: seconds spent waiting for permits, all attempts together.
        duration: seconds from the call's start to its end.
    """

    kind: ClassVar[str] = "finished"

    outcome: Literal["success", "refused", "error"]
    status: int | None
    error_code: int | None
    error_type: str | None
    error: str | None
    queue_wait: float
    duration: float


def _reason(failure: BaseException) -> Reason:
    if isinstance(failure, errors.TransportError):
        return "transport"
    if isinstance(failure, errors.ServerError):
        return "server_error"
    return "bad_response"  # the client retries nothing else


def _error_code(value: object) -> int | None:
    code = getattr(value, "error_code", None)
    return code if isinstance(code, int) else None


class Hooks:
    """A client's hooks: starts a `CallTrace` per call when any is enabled.

    Args:
        hooks: the hooks, called in this order.
        clock: the client's monotonic clock.
        limiter: the client's limiter, given to hooks that have ``watch``.
        base_url: the API base URL (its host, port and path go into
            [`Sent`][schedcancel.hooks.Sent]).
    """

    __slots__ = ("_always", "_clock", "_failed", "_gates", "_hooks", "_path", "_server")

    _ids: ClassVar[Callable[[], int]] = itertools.count(1).__next__

    def __init__(
        self,
        hooks: Sequence[Hook],
        *,
        clock: Callable[[], float],
        limiter: Limiter,
        base_url: str,
    ) -> None:
        try:
            self._hooks = tuple(hooks)
        except TypeError:
            raise errors.InvalidParameterError("hooks must be a sequence of callables") from None
        self._clock = clock
        parts = urlsplit(base_url)
        self._server = (
            parts.hostname or "",
            parts.port or (443 if parts.scheme == "https" else 80),
        )
        self._path = parts.path.rstrip("/")
        self._failed: set[int] = set()
        gates = []
        for hook in self._hooks:
            if not callable(hook):
                raise errors.InvalidParameterError(
                    f"a hook must be callable, got {type(hook).__name__}"
                )
            watch = getattr(hook, "watch", None)
            if callable(watch):
                watch(limiter)
            enabled = getattr(hook, "enabled", None)
            gates.append(enabled if callable(enabled) else None)
        self._gates: tuple[Callable[[], bool] | None, ...] = tuple(gates)
        self._always = all(gate is None for gate in gates)

    def start(self, operation: str, schedule_id: str | None, api_key: str) -> CallTrace | None:
        """A trace for one call, or None when no hook is enabled now."""
        hooks = self._hooks
        if not self._always:
            chosen: list[Hook] = []
            for hook, gate in zip(hooks, self._gates, strict=True):
                if gate is not None:
                    try:
                        if not gate():
                            continue
                    except Exception as exc:  # noqa: BLE001 - a hook's bug must not break the call
                        self._failing(hook, "in its enabled()", exc)
                        continue  # skipped for this call: it cannot say it wants events
                chosen.append(hook)
            if not chosen:
                return None
            hooks = tuple(chosen)
        return CallTrace(self, hooks, operation, schedule_id, api_key)

    def emit(self, hooks: tuple[Hook, ...], event: CallEvent) -> None:
        """Hand ``event`` to ``hooks``; a hook's first exception is logged, every one swallowed."""
        for hook in hooks:
            try:
                hook(event)
            except Exception as exc:  # noqa: BLE001 - a hook's bug must not break the call
                self._failing(hook, f"on a {event.kind} event", exc)

    def _failing(self, hook: Hook, where: str, exc: Exception) -> None:
        """Log a hook's first exception, with its traceback; later ones are swallowed silently."""
        if id(hook) not in self._failed:
            self._failed.add(id(hook))
            log.warning(
                "instrumentation hook %r failed %s; its errors are ignored from now on",
                hook,
                where,
                exc_info=exc,
            )


class CallTrace:
    """One call's events: the client tells it what happens, it builds and emits the events.

    Made by `Hooks.start()`; the client calls its methods at each step.
    """

    __slots__ = (
        "_answered",
        "_base",
        "_duration",
        "_hooks",
        "_owner",
        "_queued_at",
        "_sent_at",
        "_started",
        "attempt",
        "queue_wait",
        "status",
    )

    def __init__(
        self,
        owner: Hooks,
        hooks: tuple[Hook, ...],
        operation: str,
        schedule_id: str | None,
        api_key: str,
    ) -> None:
        self._owner = owner
        self._hooks = hooks
        self._base: dict[str, Any] = {
            "call_id": Hooks._ids(),
            "operation": operation,
            "schedule_id": schedule_id,
            "api_key": redact_key(api_key),
        }
        self._started = self._queued_at = self._sent_at = owner._clock()
        self._answered: int | None = None  # a status not yet emitted as Answered
        self._duration = 0.0
        self.attempt = 1
        self.queue_wait = 0.0
        self.status: int | None = None

    def _emit(self, cls: type[CallEvent], **fields: Any) -> None:
        self._owner.emit(self._hooks, cls(**self._base, attempt=self.attempt, **fields))

    def _now(self) -> float:
        return self._owner._clock()

    def queued(self, *, priority: int, requeue: bool, attempt: int) -> None:
        """The call asks the limiter for a permit (``attempt`` is the one it will be)."""
        self.attempt = attempt
        self._queued_at = self._now()
        self._emit(Queued, priority=priority, requeue=requeue)

    def sent(self, method: str, path_template: str) -> None:
        """The permit came and the request goes out now: emits Granted and Sent.

        Args:
            method: the HTTP method.
            path_template: the path below the base URL, with placeholders.
        """
        now = self._sent_at = self._now()
        wait = now - self._queued_at
        self.queue_wait += wait
        self._emit(Granted, wait=wait)
        owner = self._owner
        address, port = owner._server
        self._emit(
            Sent,
            method=method,
            server_address=address,
            server_port=port,
            url_template=owner._path + path_template,
        )

    def answered(self, status: int) -> None:
        """A response came; its Answered is emitted once its errorCode is known."""
        self.status = self._answered = status
        self._duration = self._now() - self._sent_at

    def _flush(self, source: object) -> None:
        if self._answered is not None:
            status, self._answered = self._answered, None
            self._emit(
                Answered, status=status, error_code=_error_code(source), duration=self._duration
            )

    def rate_limited(
        self,
        error: errors.RateLimitedError,
        *,
        level: RateLimitLevel | None,
        retry_after: float | None,
        count: int,
        limit: int,
    ) -> None:
        """A 429: requeued while ``count <= limit``, else given up."""
        self._flush(error)
        requeued = count <= limit
        self._emit(
            RateLimited, level=level, retry_after=retry_after, count=count, requeued=requeued
        )
        if not requeued:
            self._emit(
                GaveUp, reason="rate_limited", error_type=type(error).__name__, error=str(error)
            )

    def retried(self, failure: BaseException, delay: float) -> None:
        """The attempt failed; the next one comes after ``delay`` seconds."""
        self._flush(failure)
        self._emit(
            Retried,
            reason=_reason(failure),
            error_type=type(failure).__name__,
            error=str(failure),
            delay=delay,
        )

    def gave_up(self, failure: BaseException) -> None:
        """The retry policy is spent."""
        self._flush(failure)
        self._emit(
            GaveUp, reason=_reason(failure), error_type=type(failure).__name__, error=str(failure)
        )

    def finished(self, result: object = None, error: BaseException | None = None) -> None:
        """The call returned ``result`` or raised ``error``."""
        source = result if error is None else error
        self._flush(source)
        status = self.status
        if isinstance(error, errors.ApiError):
            status = error.http_status
        outcome: Literal["success", "refused", "error"] = "error"
        if error is None:
            outcome = "success" if getattr(result, "success", True) else "refused"
        self._emit(
            Finished,
            outcome=outcome,
            status=status,
            error_code=_error_code(source),
            error_type=None if error is None else type(error).__name__,
            error=None if error is None else str(error),
            queue_wait=self.queue_wait,
            duration=self._now() - self._started,
        )


#: Seconds a gauge read from another thread waits for the event loop to answer.
_READ_TIMEOUT = 1.0


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class WatchesLimiters:
    """For hooks with gauges of the limiters they watch (kept by weak reference).

    A limiter's ``stats()`` changes nothing, but it reads several structures
    that its event loop changes meanwhile, so a read from another thread could
    see them half-way through a change; and gauges are often read from another
    thread: prometheus-client's ``start_http_server`` and OpenTelemetry's
    periodic metric reader run their own. A read from outside the event loop
    the hook's calls run on is therefore handed to that loop and waited for
    (at most a second; then the last totals read are given).
    """

    def __init__(self) -> None:
        self._limiters: weakref.WeakSet[Limiter] = weakref.WeakSet()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last = (0, 0)

    def watch(self, limiter: Limiter) -> None:
        """Count ``limiter``'s queued and in-flight requests in the gauges."""
        self._limiters.add(limiter)
        self._seen_loop()

    def _seen_loop(self) -> None:
        """Note the event loop the calls run on (a hook calls it from its events)."""
        loop = _running_loop()
        if loop is not None:
            self._loop = loop

    def _read_totals(self) -> tuple[int, int]:
        stats = [limiter.stats() for limiter in list(self._limiters)]
        self._last = sum(s.queued for s in stats), sum(s.in_flight for s in stats)
        return self._last

    def limiter_totals(self) -> tuple[int, int]:
        """Requests queued and in flight now, over the watched limiters.

        Safe from any thread: read in the calls' event loop when it runs elsewhere.
        """
        loop = self._loop
        if loop is None or loop is _running_loop() or not loop.is_running():
            return self._read_totals()
        answer: concurrent.futures.Future[tuple[int, int]] = concurrent.futures.Future()

        def read() -> None:
            if answer.set_running_or_notify_cancel():
                try:
                    answer.set_result(self._read_totals())
                except Exception as exc:  # noqa: BLE001 - handed to the reading thread
                    answer.set_exception(exc)

        try:
            loop.call_soon_threadsafe(read)
        except RuntimeError:  # the loop closed meanwhile: nothing runs there any more
            return self._read_totals()
        try:
            return answer.result(timeout=_READ_TIMEOUT)
        except TimeoutError:  # the loop is busy: the last totals
            answer.cancel()
            return self._last


def _message(event: CallEvent) -> tuple[str, tuple[object, ...]]:
    head = "%s %s key=%s attempt %d"
    args: tuple[object, ...] = (event.operation, event.schedule_id, event.api_key, event.attempt)
    match event:
        case Queued(requeue=requeue):
            return head + ": queued" + (" again after a 429" if requeue else ""), args
        case Granted(wait=wait):
            return head + ": granted after %.3f s", (*args, wait)
        case Sent(method=method, server_address=address):
            return head + ": %s to %s", (*args, method, address)
        case Answered(status=status):
            return head + ": HTTP %d", (*args, status)
        case RateLimited(count=count, requeued=requeued, retry_after=retry_after, level=level):
            then = "requeued" if requeued else "giving up"
            return (
                head + ": 429 number %d (%s level, Retry-After %s), " + then,
                (*args, count, level or "unknown", retry_after),
            )
        case Retried(delay=delay, error=error):
            return head + ": %s; retry %d in %.3f s", (*args, error, event.attempt, delay)
        case GaveUp(error=error):
            return head + ": gave up: %s", (*args, error)
        case Finished(outcome=outcome, duration=duration):
            return head + ": %s after %.3f s", (*args, outcome, duration)
    return head + ": " + event.kind, args  # pragma: no cover - every kind is matched above


@attrs.define
class LoggingHook:
    """The default hook: one standard ``logging`` record per event.

    The record's ``extra`` carries the event's fields (``event`` is its kind,
    then ``call_id``, ``operation``, ``schedule_id``, ``api_key`` (redacted),
    ``attempt``, and the kind's own fields), so a JSON formatter gets them as
    structured fields. While the logger is not enabled for ``level`` the hook
    is skipped and a call pays nothing for it.

    Attributes:
        logger: where to log; default the ``schedcancel.calls`` logger.
        level: the records' level; default DEBUG.
    """

    logger: logging.Logger = attrs.field(factory=lambda: logging.getLogger("schedcancel.calls"))
    level: int = logging.DEBUG

    def enabled(self) -> bool:
        """True when the logger would emit records at ``level``."""
        return self.logger.isEnabledFor(self.level)

    def __call__(self, event: CallEvent, /) -> None:
        """Log ``event`` with its fields as ``extra``."""
        message, args = _message(event)
        extra = attrs.asdict(event)
        extra["event"] = event.kind
        self.logger.log(self.level, message, *args, extra=extra)
