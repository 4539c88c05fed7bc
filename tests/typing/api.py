"""The public API used as a user would, for mypy only (pytest does not collect this file).

Each ``assert_type`` pins what a caller sees; a change to a public signature
that breaks user code breaks this file first.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal, assert_type

import aiohttp
import schedcancel
from schedcancel import (
    DEFAULT_BASE_URL,
    ApiError,
    AuthenticationError,
    BulkOutcome,
    Gate,
    InvalidParameterError,
    Limiter,
    LimiterStats,
    Operation,
    OutcomeUnknownError,
    PeriodUnit,
    Permit,
    QueueTimeoutError,
    RateLimitedError,
    RateLimits,
    RequestWithdrawnError,
    ResponseParseError,
    RetryPolicy,
    ScheduleClient,
    ScheduleError,
    ScheduleOperationError,
    ScheduleResult,
    ScheduleStatus,
    ServerError,
    StartSchedule,
    TransportError,
    UpdateSchedule,
)


async def every_operation(client: ScheduleClient) -> list[ScheduleResult]:
    """get, pause, continue_, update and start beside cancel, all giving a ScheduleResult."""
    sid = "SC-1234-1234-1234-1234-1234-1234"
    when = datetime(2030, 1, 1, tzinfo=UTC)
    results = [
        await client.get(sid, priority=5, queue_timeout=1.0),
        await client.pause(sid, api_key="other-connector"),
        await client.continue_(sid, at=when, gate=Gate()),
        await client.update(sid, UpdateSchedule(amount=Decimal("12.50"), period_unit="WEEK")),
    ]
    schedule = StartSchedule(
        registration_uuid="reg-1",
        amount="9.99",
        currency="EUR",
        period_length=1,
        period_unit=PeriodUnit.MONTH,
        start_date_time=when,
        merchant_meta_data="order-42",
    )
    assert_type(schedule.amount, str)
    assert_type(schedule.period_unit, PeriodUnit)
    assert_type(schedule.to_json(), bytes)
    try:
        results.append(await client.start(schedule))
    except OutcomeUnknownError as exc:
        assert_type(exc.failure, ScheduleError)
    for result in results:
        assert_type(result.done, bool)
        assert_type(result.already_done, bool)
        assert_type(result.operation, Operation | None)
        assert_type(result.malformed, Mapping[str, object])
    assert_type(Operation.PAUSE.target_status, ScheduleStatus | None)
    return results


async def cancel_one() -> ScheduleResult:
    """The quickstart: one client, one cancel, the result inspected."""
    async with ScheduleClient("connector-api-key", username="api-user", password="pw") as client:
        assert_type(client, ScheduleClient)
        result = await client.cancel("SC-1234-1234-1234-1234-1234-1234")
    assert_type(result, ScheduleResult)
    assert_type(result.success, bool)
    assert_type(result.already_cancelled, bool)
    assert_type(result.is_cancelled, bool)
    assert_type(result.schedule_id, str | None)
    assert_type(result.old_status, ScheduleStatus | str | None)
    assert_type(result.scheduled_at, datetime | None)
    assert_type(result.error_code, int | None)
    assert_type(result.raise_for_error(), ScheduleResult)
    return result


async def fully_configured(session: aiohttp.ClientSession) -> list[ScheduleResult]:
    """Every constructor option and every cancel option."""
    client = ScheduleClient(
        "connector-api-key",
        username="api-user",
        password="pw",
        shared_secret="secret",
        base_url=DEFAULT_BASE_URL,
        limits=RateLimits(total=60, per_schedule=10, window=60.0, guard=1.0, mode="smooth"),
        retry=RetryPolicy(attempts=3, backoff_initial=0.2, backoff_max=5.0, deadline=30.0),
        timeout=10.0,
        session=session,
        allow_insecure_http=False,
        ssl=ssl.create_default_context(),
    )
    try:
        one = await client.cancel("SC-1", api_key="other-connector", priority=1, queue_timeout=5)
        many = await asyncio.gather(*(client.cancel(f"SC-{n}") for n in range(3)))
        assert_type(client.redactions, tuple[str, ...])
        assert_type(client.redacted_api_key, str)
        return [one, *many]
    finally:
        await client.aclose()


async def shared_limiter() -> None:
    """Two clients of one API user share one limiter; the limiter answers questions."""
    async with ScheduleClient("key-a", username="u", password="p") as first:
        limiter: Limiter = first.limiter
        async with ScheduleClient("key-b", username="u", password="p", limiter=limiter) as second:
            await second.cancel("SC-1")
        stats = limiter.stats()
        assert_type(stats, LimiterStats)
        assert_type(stats.queued, int)
        assert_type(await limiter.estimate("SC-1"), float)
        permit = await limiter.acquire("SC-2", priority=0, queue_timeout=None)
        assert_type(permit, Permit)
        await limiter.release(permit, rate_limited=True, retry_after=3.0)


async def withdraw_with_a_gate(client: ScheduleClient) -> bool:
    """A group of calls behind one gate, withdrawn while they wait for a permit."""
    gate = Gate()
    call = asyncio.ensure_future(client.cancel("SC-1", gate=gate))
    gate.close()
    assert_type(gate.closed, bool)
    assert_type(gate.waiting, int)
    try:
        await call
    except RequestWithdrawnError as exc:
        assert_type(exc.expected_wait, float | None)
        return True
    return False


async def handle_errors(client: ScheduleClient) -> str:
    """The error tree as a caller catches it."""
    try:
        (await client.cancel("SC-1")).raise_for_error()
    except InvalidParameterError as exc:
        assert_type(exc, InvalidParameterError)
        return str(exc)
    except QueueTimeoutError as exc:
        assert_type(exc.expected_wait, float | None)
    except RateLimitedError as exc:
        assert_type(exc.retry_after, float | None)
    except AuthenticationError as exc:
        assert_type(exc.http_status, int)
    except ServerError as exc:
        assert_type(exc.error_code, int | None)
    except ScheduleOperationError as exc:
        assert_type(exc.schedule_id, str | None)
    except ApiError as exc:
        assert_type(exc.error_message, str | None)
    except ResponseParseError as exc:
        assert_type(exc.excerpt, str)
    except TransportError:
        return "transport"
    except ScheduleError:
        return "other"
    return "done"


def metadata() -> str:
    """The version string and a status's wire value."""
    assert_type(schedcancel.__version__, str)
    return f"{schedcancel.__version__} {ScheduleStatus.CANCELLED.value}"


def instrumented() -> ScheduleClient:
    """A client with hooks: a function, the logging hook, OpenTelemetry and Prometheus."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415 - the extra, typed here
    from schedcancel.hooks import CallEvent, Finished, Hook, LoggingHook  # noqa: PLC0415
    from schedcancel.otel import OpenTelemetryHook  # noqa: PLC0415
    from schedcancel.prometheus import PrometheusHook  # noqa: PLC0415

    def on_event(event: CallEvent) -> None:
        if isinstance(event, Finished):
            assert_type(event.outcome, Literal["success", "refused", "error"])

    hooks: list[Hook] = [
        on_event,
        LoggingHook(),
        OpenTelemetryHook(),
        PrometheusHook(registry=CollectorRegistry()),
    ]
    return ScheduleClient("key", username="user", password="pw", hooks=hooks)


async def old_names(client: ScheduleClient) -> None:
    """0.1's names, deprecated until 0.3: the same types for a type checker (and a warning)."""
    from schedcancel import CancelOutcome, CancelResult, ScheduleCancelError  # noqa: PLC0415
    from schedcancel.cli import CancelSettings, RunSettings, run_bulk, run_cancel  # noqa: PLC0415

    try:
        assert_type(await client.cancel("SC-1"), CancelResult)
    except ScheduleCancelError as exc:
        assert_type(exc, ScheduleError)
    assert_type(CancelOutcome.invalid("x", "bad"), BulkOutcome)
    assert CancelSettings is RunSettings
    assert run_cancel is run_bulk
