"""Tests for the instrumentation hooks: the events of each call, the logging hook, safety."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import attrs
import pytest
from schedcancel import (
    InvalidParameterError,
    LimiterStats,
    RateLimitedError,
    RateLimiter,
    RateLimits,
    RetryPolicy,
)
from schedcancel._client import hooks as _hooks
from schedcancel._client.hooks import Hooks, WatchesLimiters
from schedcancel.hooks import (
    Answered,
    CallEvent,
    Finished,
    GaveUp,
    Granted,
    LoggingHook,
    Queued,
    RateLimited,
    Retried,
    Sent,
)
from schedcancel.testing import Fault, MockScheduleServer

from support.hooks import (
    API_KEY,
    CALLS,
    DONE,
    FAILING,
    LIMITED,
    OK,
    RETRIED,
    UNKNOWN,
    assert_ends,
    assert_no_secret,
    run_scenario,
)


@attrs.define
class Recorder:
    """A hook that keeps every event."""

    events: list[CallEvent] = attrs.field(factory=list)

    def __call__(self, event: CallEvent, /) -> None:
        self.events.append(event)

    def of(self, schedule_id: str) -> list[CallEvent]:
        """The events of the call for ``schedule_id``."""
        return [e for e in self.events if e.schedule_id == schedule_id]


def _kinds(events: list[CallEvent]) -> list[str]:
    return [e.kind for e in events]


ONE_ATTEMPT = ["queued", "granted", "sent", "answered"]


@pytest.mark.looptime
async def test_each_call_tells_its_steps_in_order() -> None:
    """Successes, a 429, a retry, refusals and a give-up each emit the documented sequence."""
    recorder = Recorder()
    run = await run_scenario([recorder])
    assert_ends(run)
    assert _kinds(recorder.of(OK)) == [*ONE_ATTEMPT, "finished"]
    assert _kinds(recorder.of(LIMITED)) == [*ONE_ATTEMPT, "rate_limited", *ONE_ATTEMPT, "finished"]
    assert _kinds(recorder.of(RETRIED)) == [*ONE_ATTEMPT, "retried", *ONE_ATTEMPT, "finished"]
    assert _kinds(recorder.of(DONE)) == [*ONE_ATTEMPT, "finished"]
    assert _kinds(recorder.of(FAILING)) == [
        *ONE_ATTEMPT,
        "retried",
        *ONE_ATTEMPT,
        "gave_up",
        "finished",
    ]
    # One id per call, shared by its events, and the common fields on every event.
    ids = {sid: {e.call_id for e in recorder.of(sid)} for sid in CALLS}
    assert all(len(call_ids) == 1 for call_ids in ids.values())
    assert len({next(iter(call_ids)) for call_ids in ids.values()}) == len(CALLS)
    assert {e.operation for e in recorder.events} == {"cancel"}
    assert {e.api_key for e in recorder.events} == {"AK-S***"}


@pytest.mark.looptime
async def test_event_details_carry_status_codes_levels_waits_and_outcomes() -> None:
    """Answered has status and errorCode; RateLimited the level; Finished the outcome."""
    recorder = Recorder()
    await run_scenario([recorder])
    limited = recorder.of(LIMITED)
    assert limited[0] == Queued(
        call_id=limited[0].call_id,
        operation="cancel",
        schedule_id=LIMITED,
        api_key="AK-S***",
        attempt=1,
        priority=0,
        requeue=False,
    )
    sent = limited[2]
    assert isinstance(sent, Sent)
    assert (sent.method, sent.server_address, sent.url_template) == (
        "POST",
        "127.0.0.1",
        "/api/v3/schedule/{apiKey}/{scheduleId}/cancel",
    )
    answered = limited[3]
    assert isinstance(answered, Answered)
    assert (answered.status, answered.error_code, answered.attempt) == (429, 1009, 1)
    rate_limited = limited[4]
    assert isinstance(rate_limited, RateLimited)
    assert (rate_limited.level, rate_limited.retry_after) == ("user", None)
    assert (rate_limited.count, rate_limited.requeued) == (1, True)
    requeued = limited[5]
    assert isinstance(requeued, Queued)
    assert (requeued.requeue, requeued.attempt) == (True, 2)
    granted = limited[6]
    assert isinstance(granted, Granted)
    # No Retry-After: the API user's level pauses for window + guard (virtual seconds).
    assert granted.wait == pytest.approx(60.5, abs=0.1)
    finished = limited[-1]
    assert isinstance(finished, Finished)
    assert (finished.outcome, finished.status, finished.attempt) == ("success", 200, 2)
    assert finished.queue_wait == pytest.approx(60.5, abs=0.1)

    retried = recorder.of(RETRIED)[4]
    assert isinstance(retried, Retried)
    assert (retried.reason, retried.error_type, retried.delay) == (
        "server_error",
        "ServerError",
        0.25,
    )
    refused = {sid: recorder.of(sid)[-1] for sid in (DONE, UNKNOWN)}
    assert {sid: (e.outcome, e.error_code) for sid, e in refused.items()} == {  # type: ignore[attr-defined]
        DONE: ("refused", 7070),
        UNKNOWN: ("refused", 7040),
    }
    failing = recorder.of(FAILING)
    gave_up, end = failing[-2], failing[-1]
    assert isinstance(gave_up, GaveUp)
    assert (gave_up.reason, gave_up.attempt) == ("server_error", 2)
    assert isinstance(end, Finished)
    assert (end.outcome, end.error_type, end.status, end.error_code) == (
        "error",
        "ServerError",
        500,
        1008,
    )
    assert_no_secret((attrs.asdict(e) for e in recorder.events), "events")


@pytest.mark.looptime
async def test_the_logging_hook_logs_each_event_with_structured_extra(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One DEBUG record per event, its fields in ``extra``; the old attempt lines are kept."""
    caplog.set_level(logging.DEBUG, logger="schedcancel.calls")
    recorder = Recorder()
    await run_scenario([LoggingHook(), recorder])
    records = [r for r in caplog.records if r.name == "schedcancel.calls"]
    assert len(records) == len(recorder.events)
    for record, event in zip(records, recorder.events, strict=True):
        assert record.levelno == logging.DEBUG
        extra: dict[str, Any] = record.__dict__
        assert extra["event"] == event.kind
        for name, value in attrs.asdict(event).items():
            assert extra[name] == value
    messages = [r.getMessage() for r in records]
    assert f"cancel {OK} key=AK-S*** attempt 1: HTTP 200" in messages
    assert f"cancel {RETRIED} key=AK-S*** attempt 1: HTTP 500" in messages
    assert any(
        m.startswith(f"cancel {LIMITED} key=AK-S*** attempt 1: 429 number 1 (user level")
        for m in messages
    )
    assert any("retry 1 in 0.250 s" in m for m in messages)
    assert any(m.startswith(f"cancel {FAILING} key=AK-S*** attempt 2: gave up") for m in messages)
    assert_no_secret(messages, "log messages")
    assert_no_secret((r.__dict__ for r in records), "log records' extra")


@pytest.mark.looptime
async def test_the_default_hook_logs_only_when_its_logger_is_enabled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Default hooks with DEBUG off: a call makes no event at all; with DEBUG on, it logs."""
    caplog.set_level(logging.INFO, logger="schedcancel.calls")
    async with MockScheduleServer() as server:
        server.seed(["SC-1", "SC-2"])
        async with server.client() as client:
            hooks = client._hooks
            assert hooks is not None
            assert hooks.start("cancel", "SC-1", API_KEY) is None
            await client.cancel("SC-1")
            assert not [r for r in caplog.records if r.name == "schedcancel.calls"]
            caplog.set_level(logging.DEBUG, logger="schedcancel.calls")
            await client.cancel("SC-2")
    assert [r.event for r in caplog.records if r.name == "schedcancel.calls"] == [  # type: ignore[attr-defined]
        *ONE_ATTEMPT,
        "finished",
    ]


async def test_no_hooks_means_no_dispatcher() -> None:
    """``hooks=()`` leaves nothing to call: the client keeps None."""
    async with MockScheduleServer() as server, server.client(hooks=()) as client:
        assert client._hooks is None


@attrs.define
class _BrokenHook:
    """Raises on every event, and in ``enabled()`` too when ``where`` says so; counts both."""

    where: str = "call"
    calls: int = 0
    asked: int = 0

    def __call__(self, event: CallEvent, /) -> None:
        self.calls += 1
        raise RuntimeError(f"hook bug on {event.kind}")

    def enabled(self) -> bool:
        self.asked += 1
        if self.where == "enabled":
            raise RuntimeError("enabled bug")
        return True


@pytest.mark.parametrize(
    ("where", "calls", "message"),
    [("call", 10, "failed on a queued event"), ("enabled", 0, "failed in its enabled()")],
)
async def test_a_failing_hook_is_logged_once_and_never_breaks_a_call(
    caplog: pytest.LogCaptureFixture, where: str, calls: int, message: str
) -> None:
    """A hook that raises (on an event, or asked if it is enabled) is reported once with
    its traceback; calls and later hooks go on."""
    broken, recorder = _BrokenHook(where=where), Recorder()
    caplog.set_level(logging.WARNING, logger="schedcancel.hooks")
    async with MockScheduleServer() as server:
        server.seed(["SC-1", "SC-2"])
        async with server.client(hooks=[broken, recorder]) as client:
            assert (await client.cancel("SC-1")).success
            assert (await client.cancel("SC-2")).success
    assert broken.asked == 2
    assert broken.calls == calls
    assert len(recorder.events) == 10
    assert {e.schedule_id for e in recorder.events} == {"SC-1", "SC-2"}
    warnings = [r for r in caplog.records if r.name == "schedcancel.hooks"]
    assert len(warnings) == 1
    assert message in warnings[0].getMessage()
    assert warnings[0].exc_info is not None


async def test_a_hook_that_is_not_enabled_is_skipped() -> None:
    """A hook whose ``enabled()`` says False gets no event of that call."""

    @attrs.define
    class Switch(Recorder):
        on: bool = False

        def enabled(self) -> bool:
            return self.on

    switch = Switch()
    async with MockScheduleServer() as server:
        server.seed(["SC-1", "SC-2"])
        async with server.client(hooks=[switch]) as client:
            await client.cancel("SC-1")
            switch.on = True
            await client.cancel("SC-2")
    assert {e.schedule_id for e in switch.events} == {"SC-2"}


async def test_a_transport_failure_is_retried_with_its_reason() -> None:
    """A dropped connection: no Answered for that attempt, a Retried with reason transport."""
    recorder = Recorder()
    async with MockScheduleServer() as server:
        server.seed(["SC-1"])
        server.script(Fault.DROP)
        async with server.client(
            hooks=[recorder],
            retry=RetryPolicy(jitter=lambda: 0.0),
            limits=RateLimits(window=1.0),
        ) as client:
            await client.cancel("SC-1")
    assert _kinds(recorder.events) == [
        "queued",
        "granted",
        "sent",
        "retried",
        *ONE_ATTEMPT,
        "finished",
    ]
    retried = recorder.events[3]
    assert isinstance(retried, Retried)
    assert (retried.reason, retried.error_type) == ("transport", "TransportError")
    finished = recorder.events[-1]
    assert isinstance(finished, Finished)
    # The drop's cancel took effect: the retry finds it cancelled (7070).
    assert (finished.outcome, finished.error_code) == ("refused", 7070)


@pytest.mark.parametrize("hooks", [[object()], 42])
async def test_hooks_must_be_callables(hooks: Any) -> None:
    """Something that is not a sequence of callables fails at construction."""
    async with MockScheduleServer() as server:
        with pytest.raises(InvalidParameterError, match="hook"):
            server.client(hooks=hooks)


def test_hooks_get_the_limiter_to_watch() -> None:
    """A hook with ``watch`` is given the client's limiter once."""
    watched: list[object] = []

    @attrs.define
    class Watcher(Recorder):
        def watch(self, limiter: object) -> None:
            watched.append(limiter)

    limiter = object()
    Hooks([Watcher()], clock=lambda: 0.0, limiter=limiter, base_url="http://h:8080/api")  # type: ignore[arg-type]
    assert watched == [limiter]


@pytest.mark.looptime
async def test_a_429_beyond_the_requeue_limit_gives_up_and_a_cut_body_is_retried() -> None:
    """No requeue allowed: RateLimited(requeued=False), GaveUp; a truncated 200: bad_response."""
    recorder = Recorder()
    async with MockScheduleServer() as server:
        server.seed(["SC-1", "SC-2"])
        server.script(Fault.RATE_LIMITED, Fault.TRUNCATED)
        async with server.client(
            hooks=[recorder],
            limits=RateLimits(max_rate_limited=0),
            retry=RetryPolicy(jitter=lambda: 0.0),
        ) as client:
            with pytest.raises(RateLimitedError):
                await client.cancel("SC-1")
            await client.cancel("SC-2")
    first = recorder.of("SC-1")
    assert _kinds(first)[-3:] == ["rate_limited", "gave_up", "finished"]
    assert isinstance(first[-3], RateLimited)
    assert not first[-3].requeued
    assert isinstance(first[-2], GaveUp)
    assert first[-2].reason == "rate_limited"
    retried = [e for e in recorder.of("SC-2") if isinstance(e, Retried)]
    assert [e.reason for e in retried] == ["bad_response"]


class _ThreadNotingLimiter(RateLimiter):
    """A limiter whose ``stats()`` notes the thread it runs in (or fails, when told)."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []
        self.fail = False

    def stats(self) -> LimiterStats:
        self.threads.append(threading.get_ident())
        if self.fail:
            raise RuntimeError("stats failed")
        return super().stats()


async def test_gauges_read_from_another_thread_read_the_limiter_in_its_loop() -> None:
    """A limiter is not thread-safe: a scrape thread's read runs in the calls' event loop."""
    limiter = _ThreadNotingLimiter()
    hook = WatchesLimiters()
    hook.watch(limiter)  # in the loop: the hook learns it
    assert await asyncio.to_thread(hook.limiter_totals) == (0, 0)
    assert hook.limiter_totals() == (0, 0)  # in the loop itself: read at once
    assert limiter.threads == [threading.get_ident()] * 2
    limiter.fail = True
    with pytest.raises(RuntimeError, match="stats failed"):
        await asyncio.to_thread(hook.limiter_totals)
    await limiter.aclose()


async def test_a_gauge_read_gives_the_last_totals_while_the_loop_is_busy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loop does not answer in time (here: blocked joining the reader): the last totals."""
    monkeypatch.setattr(_hooks, "_READ_TIMEOUT", 0.01)
    limiter = _ThreadNotingLimiter()
    hook = WatchesLimiters()
    hook.watch(limiter)
    hook._last = (3, 4)
    totals: list[tuple[int, int]] = []
    reader = threading.Thread(target=lambda: totals.append(hook.limiter_totals()))
    reader.start()
    reader.join()  # blocks the loop: the read handed to it cannot run
    await asyncio.sleep(0)  # now it runs, finds the read given up, and reads nothing
    assert totals == [(3, 4)]
    assert limiter.threads == []
    await limiter.aclose()


def test_a_gauge_read_with_no_loop_running_reads_directly() -> None:
    """Before any call, or after the loop ended, nothing else touches the limiter."""
    limiter = _ThreadNotingLimiter()
    hook = WatchesLimiters()
    hook.watch(limiter)  # outside a loop: nothing learnt
    assert hook.limiter_totals() == (0, 0)
    loop = asyncio.new_event_loop()
    hook._loop = loop  # a loop that is not running
    assert hook.limiter_totals() == (0, 0)
    loop.close()

    class Closing:
        """A loop that closes between the check and the hand-over."""

        def is_running(self) -> bool:
            return True

        def call_soon_threadsafe(self, _callback: object) -> None:
            raise RuntimeError("Event loop is closed")

    hook._loop = Closing()  # type: ignore[assignment]
    assert hook.limiter_totals() == (0, 0)
    assert limiter.threads == [threading.get_ident()] * 3
