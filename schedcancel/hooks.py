"""Instrumentation hooks: the events of every call, and the default logging hook.

Pass hooks to the client; each is called, synchronously, with every event of
every call, in the order the call goes, and every call ends with one Finished:

    Queued -> Granted -> Sent -> Answered -> Finished
                           |        '-> RateLimited -> Queued (requeue) ...
                           '-> Retried -> Queued ...   GaveUp -> Finished

For example:

    from schedcancel import ScheduleClient
    from schedcancel.hooks import CallEvent, Finished, LoggingHook

    def count_failures(event: CallEvent) -> None:
        if isinstance(event, Finished) and event.outcome == "error":
            print("failed:", event.schedule_id, event.error_type)

    client = ScheduleClient(
        "api-key", username="user", password="pw", hooks=[LoggingHook(), count_failures]
    )

Ready integrations, imported only when used: [`LoggingHook`][schedcancel.hooks.LoggingHook] (here,
the default), [`schedcancel.otel.OpenTelemetryHook`][schedcancel.otel.OpenTelemetryHook] (extra
``otel``) and [`schedcancel.prometheus.PrometheusHook`][schedcancel.prometheus.PrometheusHook]
(extra ``prometheus``).
"""

from __future__ import annotations

from ._client.hooks import (
    Answered,
    CallEvent,
    Failed,
    Finished,
    GaveUp,
    Granted,
    Hook,
    LoggingHook,
    Queued,
    RateLimited,
    Retried,
    Sent,
)
from ._protocol.models import RateLimitLevel

__all__ = [
    "Answered",
    "CallEvent",
    "Failed",
    "Finished",
    "GaveUp",
    "Granted",
    "Hook",
    "LoggingHook",
    "Queued",
    "RateLimitLevel",
    "RateLimited",
    "Retried",
    "Sent",
]
