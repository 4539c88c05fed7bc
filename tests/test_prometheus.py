"""Tests for the Prometheus hook, with a real prometheus_client registry."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from schedcancel.hooks import CallEvent, Sent
from schedcancel.prometheus import PrometheusHook

from support.hooks import OK, assert_ends, assert_no_secret, run_scenario


@pytest.mark.looptime
async def test_counters_histograms_and_gauges_after_a_mixed_run() -> None:
    """Calls by outcome and errorCode, waits, durations, 429s by level, retries, gauges."""
    registry = CollectorRegistry()
    hook = PrometheusHook(registry=registry)
    mid_run: list[tuple[float | None, float | None]] = []

    def while_sending(event: CallEvent, /) -> None:
        if isinstance(event, Sent) and event.schedule_id == OK:
            mid_run.append(
                (
                    registry.get_sample_value("schedcancel_limiter_in_flight"),
                    registry.get_sample_value("schedcancel_limiter_queued"),
                )
            )

    assert_ends(await run_scenario([hook, while_sending]))
    value = registry.get_sample_value
    calls = {
        (outcome, code): value(
            "schedcancel_calls_total",
            {"operation": "cancel", "outcome": outcome, "error_code": code},
        )
        for outcome, code in (
            ("success", ""),
            ("refused", "7070"),
            ("refused", "7040"),
            ("error", "1008"),
        )
    }
    assert calls == {
        ("success", ""): 3,
        ("refused", "7070"): 1,
        ("refused", "7040"): 1,
        ("error", "1008"): 1,
    }
    assert value("schedcancel_queue_wait_seconds_count", {"operation": "cancel"}) == 9
    assert (
        value("schedcancel_queue_wait_seconds_bucket", {"operation": "cancel", "le": "60.0"}) == 8
    )
    for status, count in (("200", 5), ("429", 1), ("500", 3)):
        labels = {"operation": "cancel", "status": status}
        assert value("schedcancel_request_duration_seconds_count", labels) == count
    assert value("schedcancel_rate_limited_total", {"level": "user"}) == 1
    assert value("schedcancel_rate_limited_total", {"level": "schedule"}) is None
    assert value("schedcancel_retries_total", {"reason": "server_error"}) == 2
    assert mid_run == [(1.0, 0.0)]
    assert_no_secret(generate_latest(registry).decode().splitlines(), "the /metrics text")
    assert "PrometheusHook(limiters=" in repr(hook)


def test_two_hooks_need_two_registries() -> None:
    """Metrics register once per registry: a second hook on the same one is refused."""
    registry = CollectorRegistry()
    PrometheusHook(registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PrometheusHook(registry=registry)
    PrometheusHook(registry=CollectorRegistry(), namespace="other")
