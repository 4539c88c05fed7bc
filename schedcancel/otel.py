"""OpenTelemetry traces and metrics for schedcancel (the ``otel`` extra: opentelemetry-api).

One call turns it on, once the application has configured its providers:

    from schedcancel import ScheduleClient
    from schedcancel.hooks import LoggingHook
    from schedcancel.otel import OpenTelemetryHook

    client = ScheduleClient(
        "api-key", username="user", password="pw", hooks=[LoggingHook(), OpenTelemetryHook()]
    )

Every call (``cancel``, retries and 429 requeues included) is one span of kind
CLIENT named ``schedcancel <operation>``, a child of the span current when
the call started. The queue wait and each attempt are span events
(``schedcancel.queued``, ``schedcancel.granted``, ``schedcancel.sent``,
``schedcancel.answered``, ``schedcancel.rate_limited``,
``schedcancel.retried``, ``schedcancel.gave_up``); the span carries the HTTP
client attributes of the semantic conventions that apply
(``http.request.method``, ``server.address``, ``server.port``,
``url.template``, ``http.response.status_code``,
``http.request.resend_count``, ``error.type``) and ``schedcancel.*`` ones.
A call that raises ends with status ERROR and an ``exception`` event; a
refusal (``success: false``, e.g. 7040) is an answer, not an error.

Metrics (meter ``schedcancel``):

=====================================  =================  =================================
name                                   instrument         attributes
=====================================  =================  =================================
``schedcancel.calls``                  counter            operation, outcome, error.type
``schedcancel.queue.wait``             histogram (s)      operation
``http.client.request.duration``       histogram (s)      method, status, server
``schedcancel.rate_limited``           counter            schedcancel.rate_limit.level
``schedcancel.retries``                counter            schedcancel.retry.reason
``schedcancel.limiter.queued``         observable gauge   (none)
``schedcancel.limiter.in_flight``      observable gauge   (none)
=====================================  =================  =================================

No attribute holds a credential: the apiKey only redacted, the URL only as a
template.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._client.hooks import (
    Answered,
    CallEvent,
    Finished,
    Granted,
    RateLimited,
    Retried,
    Sent,
    WatchesLimiters,
)
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import Span, TracerProvider


__all__ = ["OpenTelemetryHook"]

_COMMON = frozenset({"call_id", "operation", "schedule_id", "api_key"})
# Event fields that have a name in the semantic conventions.
_SEMCONV = {"status": "http.response.status_code", "error_type": "error.type"}


def _event_attributes(event: CallEvent) -> dict[str, Any]:
    return {
        _SEMCONV.get(name, f"schedcancel.{name}"): value
        for name, value in attrs.asdict(event, recurse=False).items()
        if name not in _COMMON and value is not None
    }


class _Call:
    __slots__ = ("server", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.server: dict[str, Any] = {}


class OpenTelemetryHook(WatchesLimiters):
    """Spans and metrics for every call, through the OpenTelemetry API.

    Args:
        tracer_provider: where spans go; default the global provider.
        meter_provider: where metrics go; default the global provider.
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer("schedcancel", __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter("schedcancel", __version__, meter_provider=meter_provider)
        self._calls_counter = meter.create_counter(
            "schedcancel.calls", unit="{call}", description="Calls finished, by outcome."
        )
        self._queue_wait = meter.create_histogram(
            "schedcancel.queue.wait",
            unit="s",
            description="Seconds a request waited for the rate limiter, per attempt.",
        )
        self._duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
        )
        self._rate_limited = meter.create_counter(
            "schedcancel.rate_limited",
            unit="{response}",
            description="HTTP 429 answers, by the level the limiter blamed.",
        )
        self._retries = meter.create_counter(
            "schedcancel.retries", unit="{retry}", description="Attempts retried after a failure."
        )
        super().__init__()
        meter.create_observable_gauge(
            "schedcancel.limiter.queued",
            callbacks=[self._observe_queued],
            unit="{request}",
            description="Requests waiting for the rate limiter.",
        )
        meter.create_observable_gauge(
            "schedcancel.limiter.in_flight",
            callbacks=[self._observe_in_flight],
            unit="{request}",
            description="Requests admitted and not answered yet.",
        )
        self._calls: dict[int, _Call] = {}

    def __repr__(self) -> str:
        return f"OpenTelemetryHook(open_spans={len(self._calls)}, limiters={len(self._limiters)})"

    def _observe_queued(self, _options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation  # noqa: PLC0415 - the API is loaded

        return [Observation(self.limiter_totals()[0])]

    def _observe_in_flight(self, _options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation  # noqa: PLC0415 - the API is loaded

        return [Observation(self.limiter_totals()[1])]

    def __call__(self, event: CallEvent, /) -> None:
        """Record ``event`` on its call's span and in the metrics."""
        call = self._calls.get(event.call_id)
        if call is None:
            self._seen_loop()
            span = self._tracer.start_span(
                f"schedcancel {event.operation}",
                kind=SpanKind.CLIENT,
                attributes={
                    "schedcancel.operation": event.operation,
                    "schedcancel.api_key": event.api_key,
                },
            )
            if event.schedule_id is not None:  # start has none
                span.set_attribute("schedcancel.schedule_id", event.schedule_id)
            call = self._calls[event.call_id] = _Call(span)
        span = call.span
        if not isinstance(event, Finished):
            span.add_event(f"schedcancel.{event.kind}", _event_attributes(event))
        operation = {"schedcancel.operation": event.operation}
        match event:
            case Granted(wait=wait):
                self._queue_wait.record(wait, operation)
            case Sent():
                call.server = {
                    "http.request.method": event.method,
                    "server.address": event.server_address,
                    "server.port": event.server_port,
                }
                span.set_attributes({**call.server, "url.template": event.url_template})
            case Answered(status=status, duration=duration):
                self._duration.record(
                    duration, {**call.server, "http.response.status_code": status}
                )
            case RateLimited(level=level):
                self._rate_limited.add(1, {"schedcancel.rate_limit.level": level or "unknown"})
            case Retried(reason=reason):
                self._retries.add(1, {"schedcancel.retry.reason": reason})
            case Finished():
                del self._calls[event.call_id]  # first: nothing stays behind, whatever happens
                self._finish(call, event)
            case _:  # Queued, GaveUp: their span event says it all
                pass

    def _finish(self, call: _Call, event: Finished) -> None:
        span = call.span
        attributes: dict[str, Any] = {
            "schedcancel.outcome": event.outcome,
            "schedcancel.attempts": event.attempt,
            "schedcancel.queue_wait": event.queue_wait,
        }
        if event.attempt > 1:
            attributes["http.request.resend_count"] = event.attempt - 1
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        if event.error_code is not None:
            attributes["schedcancel.error_code"] = event.error_code
        labels = {"schedcancel.operation": event.operation, "schedcancel.outcome": event.outcome}
        if event.error_type is not None:
            attributes["error.type"] = labels["error.type"] = event.error_type
            span.add_event(
                "exception",
                {"exception.type": event.error_type, "exception.message": event.error or ""},
            )
            span.set_status(Status(StatusCode.ERROR, event.error_type))
        span.set_attributes(attributes)
        span.end()
        self._calls_counter.add(1, labels)
