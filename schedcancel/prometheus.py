"""Prometheus metrics for schedcancel (the ``prometheus`` extra: prometheus-client).

    from prometheus_client import start_http_server
    from schedcancel import ScheduleClient
    from schedcancel.hooks import LoggingHook
    from schedcancel.prometheus import PrometheusHook

    metrics = PrometheusHook()  # one per registry: its metrics are registered once
    client = ScheduleClient("api-key", username="user", password="pw",
                            hooks=[LoggingHook(), metrics])
    start_http_server(9464)  # or your application's own /metrics

Metrics (``schedcancel_`` prefix; the meaning in each metric's help text):

* ``calls_total`` (counter; operation, outcome, error_code): calls finished,
  as ``success``, ``refused`` (``success: false``, e.g. 7040) or ``error``.
* ``queue_wait_seconds`` (histogram; operation): wait for the limiter, per attempt.
* ``request_duration_seconds`` (histogram; operation, status): request to response.
* ``rate_limited_total`` (counter; level): 429s by the level blamed (``user``,
  ``schedule``, ``unknown``).
* ``retries_total`` (counter; reason): attempts retried after a failure.
* ``limiter_queued``, ``limiter_in_flight`` (gauges): the watched limiters now.

No label holds a credential or a scheduleId (bounded label sets only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from ._client import hooks as _hooks

if TYPE_CHECKING:
    pass

__all__ = ["QUEUE_WAIT_BUCKETS", "PrometheusHook"]

#: Queue waits run from nothing to hours (a bulk job's last ids): seconds.
QUEUE_WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class PrometheusHook(_hooks.WatchesLimiters):
    """Counters, histograms and gauges for every call, in a prometheus-client registry.

    Args:
        registry: where the metrics are registered; default the global
            ``prometheus_client.REGISTRY``. Make one hook per registry and share it.
        namespace: the metric names' prefix.
    """

    def __init__(
        self, *, registry: CollectorRegistry | None = REGISTRY, namespace: str = "schedcancel"
    ) -> None:
        options: dict[str, Any] = {"namespace": namespace, "registry": registry}
        self.calls = Counter(
            "calls",
            "Calls finished, by outcome.",
            ["operation", "outcome", "error_code"],
            **options,
        )
        self.queue_wait = Histogram(
            "queue_wait_seconds",
            "Seconds a request waited for the rate limiter, per attempt.",
            ["operation"],
            buckets=QUEUE_WAIT_BUCKETS,
            **options,
        )
        self.request_duration = Histogram(
            "request_duration_seconds",
            "Seconds from sending a request to its response, per attempt.",
            ["operation", "status"],
            **options,
        )
        self.rate_limited = Counter(
            "rate_limited",
            "HTTP 429 answers, by the level the limiter blamed.",
            ["level"],
            **options,
        )
        self.retries = Counter(
            "retries", "Attempts retried after a failure, by reason.", ["reason"], **options
        )
        super().__init__()
        self.queued = Gauge("limiter_queued", "Requests waiting for the rate limiter.", **options)
        self.queued.set_function(lambda: self.limiter_totals()[0])
        self.in_flight = Gauge(
            "limiter_in_flight", "Requests admitted and not answered yet.", **options
        )
        self.in_flight.set_function(lambda: self.limiter_totals()[1])

    def __repr__(self) -> str:
        return f"PrometheusHook(limiters={len(self._limiters)})"

    def __call__(self, event: _hooks.CallEvent, /) -> None:
        """Count ``event``."""
        match event:
            case _hooks.Queued():
                self._seen_loop()
            case _hooks.Granted(wait=wait):
                self.queue_wait.labels(event.operation).observe(wait)
            case _hooks.Answered(status=status, duration=duration):
                self.request_duration.labels(event.operation, str(status)).observe(duration)
            case _hooks.RateLimited(level=level):
                self.rate_limited.labels(level or "unknown").inc()
            case _hooks.Retried(reason=reason):
                self.retries.labels(reason).inc()
            case _hooks.Finished(outcome=outcome, error_code=code):
                self.calls.labels(event.operation, outcome, "" if code is None else str(code)).inc()
            case _:
                pass
