"""Tests for the OpenTelemetry hook, with the real SDK's in-memory exporter and reader."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from schedcancel import RetryPolicy, StartSchedule, TransportError
from schedcancel.hooks import CallEvent, Sent
from schedcancel.otel import OpenTelemetryHook
from schedcancel.testing import Fault, MockScheduleServer

from support import hooks as scenario


@attrs.define
class Telemetry:
    """Providers made for one test (never the global ones) and what they collected."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def hook(self) -> OpenTelemetryHook:
        """An OpenTelemetryHook writing to these providers."""
        return OpenTelemetryHook(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def spans(self) -> dict[str, ReadableSpan]:
        """The finished spans by scheduleId."""
        return {
            str(span.attributes["schedcancel.schedule_id"]): span  # type: ignore[index]
            for span in self.exporter.get_finished_spans()
        }

    def points(self, name: str, data: MetricsData | None = None) -> list[Any]:
        """The data points of the metric ``name``."""
        data = data if data is not None else self.reader.get_metrics_data()
        assert data is not None
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points
        ]


@pytest.fixture(name="telemetry")
def _telemetry() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Telemetry(exporter, reader, tracer_provider, meter_provider)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.mark.looptime
async def test_one_span_per_call_with_http_attributes_and_attempt_events(
    telemetry: Telemetry,
) -> None:
    """Each call is a CLIENT span: semconv HTTP attributes, one event per step, ERROR on failure."""
    run = await scenario.run_scenario([telemetry.hook()])
    scenario.assert_ends(run)
    spans = telemetry.spans()
    assert set(spans) == set(scenario.CALLS)
    assert run.server is not None
    for span in spans.values():
        assert span.name == "schedcancel cancel"
        assert span.kind is SpanKind.CLIENT
        attributes = span.attributes or {}
        assert attributes["http.request.method"] == "POST"
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["url.template"] == "/api/v3/schedule/{apiKey}/{scheduleId}/cancel"
        assert attributes["schedcancel.api_key"] == "AK-S***"
        assert attributes["schedcancel.operation"] == "cancel"

    ok = spans[scenario.OK]
    assert [e.name for e in ok.events] == [
        "schedcancel.queued",
        "schedcancel.granted",
        "schedcancel.sent",
        "schedcancel.answered",
    ]
    assert ok.status.status_code is StatusCode.UNSET
    assert (
        dict(ok.attributes or {}).items()
        >= {
            "http.response.status_code": 200,
            "schedcancel.outcome": "success",
            "schedcancel.attempts": 1,
        }.items()
    )
    assert "http.request.resend_count" not in (ok.attributes or {})

    limited = spans[scenario.LIMITED]
    events = {e.name: e for e in limited.events}
    assert dict(events["schedcancel.rate_limited"].attributes or {}) == {
        "schedcancel.attempt": 1,
        "schedcancel.level": "user",
        "schedcancel.count": 1,
        "schedcancel.requeued": True,
    }
    answers = [dict(e.attributes or {}) for e in limited.events if e.name == "schedcancel.answered"]
    assert [(a["http.response.status_code"], a.get("schedcancel.error_code")) for a in answers] == [
        (429, 1009),
        (200, None),
    ]
    assert (limited.attributes or {})["http.request.resend_count"] == 1
    assert (limited.attributes or {})["schedcancel.queue_wait"] == pytest.approx(60.5, abs=0.1)

    retried = [e for e in spans[scenario.RETRIED].events if e.name == "schedcancel.retried"]
    assert [dict(e.attributes or {}) for e in retried] == [
        {
            "schedcancel.attempt": 1,
            "schedcancel.reason": "server_error",
            "error.type": "ServerError",
            "schedcancel.error": retried[0].attributes["schedcancel.error"],  # type: ignore[index]
            "schedcancel.delay": 0.25,
        }
    ]
    for refused, code in ((scenario.DONE, 7070), (scenario.UNKNOWN, 7040)):
        attributes = spans[refused].attributes or {}
        assert (attributes["schedcancel.outcome"], attributes["schedcancel.error_code"]) == (
            "refused",
            code,
        )
        assert spans[refused].status.status_code is StatusCode.UNSET

    failing = spans[scenario.FAILING]
    assert failing.status.status_code is StatusCode.ERROR
    assert failing.status.description == "ServerError"
    assert (failing.attributes or {})["error.type"] == "ServerError"
    assert (failing.attributes or {})["http.response.status_code"] == 500
    assert [e.name for e in failing.events][-2:] == ["schedcancel.gave_up", "exception"]
    assert failing.events[-1].attributes["exception.type"] == "ServerError"  # type: ignore[index]

    scenario.assert_no_secret(
        [
            *(span.attributes for span in spans.values()),
            *(event.attributes for span in spans.values() for event in span.events),
            *(span.name for span in spans.values()),
        ],
        "span and event attributes",
    )


@pytest.mark.looptime
async def test_metrics_count_calls_waits_429s_and_gauge_the_limiter(
    telemetry: Telemetry,
) -> None:
    """Calls by outcome, queue waits, 429s by level, retries, and the limiter's gauges."""
    mid_run: list[MetricsData | None] = []

    def while_sending(event: CallEvent, /) -> None:
        if isinstance(event, Sent) and event.schedule_id == scenario.OK:
            mid_run.append(telemetry.reader.get_metrics_data())

    await scenario.run_scenario([telemetry.hook(), while_sending])
    calls = {
        (p.attributes["schedcancel.outcome"], p.attributes.get("error.type")): p.value
        for p in telemetry.points("schedcancel.calls")
    }
    assert calls == {("success", None): 3, ("refused", None): 2, ("error", "ServerError"): 1}
    (wait,) = telemetry.points("schedcancel.queue.wait")
    assert wait.count == 9  # one grant per attempt
    assert wait.max == pytest.approx(60.5, abs=0.1)
    durations = {
        p.attributes["http.response.status_code"]: p.count
        for p in telemetry.points("http.client.request.duration")
    }
    assert durations == {200: 5, 429: 1, 500: 3}
    assert [
        (p.attributes["schedcancel.rate_limit.level"], p.value)
        for p in telemetry.points("schedcancel.rate_limited")
    ] == [("user", 1)]
    assert [
        (p.attributes["schedcancel.retry.reason"], p.value)
        for p in telemetry.points("schedcancel.retries")
    ] == [("server_error", 2)]
    (data,) = mid_run
    assert [p.value for p in telemetry.points("schedcancel.limiter.in_flight", data)] == [1]
    assert [p.value for p in telemetry.points("schedcancel.limiter.queued", data)] == [0]
    data = telemetry.reader.get_metrics_data()
    assert data is not None
    scenario.assert_no_secret(
        [
            p.attributes
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            for p in metric.data.data_points
        ],
        "metric attributes",
    )


def test_importing_schedcancel_imports_neither_opentelemetry_nor_prometheus() -> None:
    """The integrations load only when their module is imported."""
    code = (
        "import sys, schedcancel, schedcancel.hooks, schedcancel.cli\n"
        "from schedcancel.testing import MockScheduleServer\n"
        "top = {m.split('.')[0] for m in sys.modules}\n"
        "bad = top & {'opentelemetry', 'prometheus_client'}\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603 - our own code


async def test_a_call_with_no_answer_ends_in_error_without_a_status(telemetry: Telemetry) -> None:
    """Two dropped connections: no status code on the span, ERROR with the transport error."""
    hook = telemetry.hook()
    async with MockScheduleServer() as server:
        server.seed(["SC-1"])
        server.script(Fault.DROP, Fault.DROP)
        async with server.client(
            hooks=[hook], retry=RetryPolicy(attempts=2, backoff_initial=0.0)
        ) as client:
            with pytest.raises(TransportError):
                await client.cancel("SC-1")
    (span,) = telemetry.exporter.get_finished_spans()
    attributes = span.attributes or {}
    assert "http.response.status_code" not in attributes
    assert attributes["error.type"] == "TransportError"
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events].count("schedcancel.answered") == 0
    assert repr(hook) == "OpenTelemetryHook(open_spans=0, limiters=1)"


async def test_every_operation_is_a_span_of_its_own_name(telemetry: Telemetry) -> None:
    """get and start are spans too: their names, URL templates; start has no scheduleId."""
    schedule = StartSchedule(
        registration_uuid="reg-1",
        amount=Decimal("9.99"),
        currency="EUR",
        period_length=1,
        period_unit="MONTH",
        start_date_time=datetime.now(UTC) + timedelta(days=30),
    )
    async with MockScheduleServer() as server:
        server.seed(["SC-1"])
        async with server.client(hooks=[telemetry.hook()]) as client:
            assert (await client.get("SC-1")).success
            assert (await client.start(schedule)).success
    get, start = telemetry.exporter.get_finished_spans()
    assert (get.name, start.name) == ("schedcancel get", "schedcancel start")
    assert (get.attributes or {})["url.template"] == ("/api/v3/schedule/{apiKey}/{scheduleId}/get")
    assert (get.attributes or {})["http.request.method"] == "GET"
    assert (start.attributes or {})["url.template"] == "/api/v3/schedule/{apiKey}/start"
    assert "schedcancel.schedule_id" not in (start.attributes or {})
