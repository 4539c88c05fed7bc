"""Reliability under faults, cancellation and clock jumps, against the real mock server.

Time: every test here runs on looptime's virtual clock with the documented
limits (N = 60 per API user, K = 10 per scheduleId, W = 60 s, guard 1 s), so a
run that spans twenty windows of virtual time takes a few real seconds. The
mock server counts arrivals on the same clock, so its recorder sees exactly
what a real server would.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import gc
import hashlib
import hmac
import json
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import format_datetime
from pathlib import Path

import attrs
import pytest
import schedcancel._client.client
import schedcancel._protocol.wire
from aiohttp import web
from schedcancel import (
    ClientClosedError,
    RateLimits,
    ResponseParseError,
    RetryPolicy,
    ScheduleClient,
    ScheduleError,
    ScheduleResult,
    ServerError,
    TransportError,
)
from schedcancel.testing import Faults, MockScheduleServer, Outcome, Recorder, ServerLimits

N, K, W, GUARD = 60, 10, 60.0, 1.0
LIMITS = RateLimits(total=N, per_schedule=K, window=W, guard=GUARD)
SERVER_LIMITS = ServerLimits(total=N, per_schedule=K, window=W)
#: 5 % 500s, 2 % 503s, 2 % dropped connections, 1 % truncated bodies, up to 50 ms latency.
SOAK_FAULTS = Faults(
    server_error=0.05,
    maintenance=0.02,
    drop=0.02,
    truncated=0.01,
    request_latency=(0.0, 0.025),
    response_latency=(0.0, 0.025),
    seed=20260428,
)
MAX_RTT = 0.05
PASSWORD = "PW-SENTINEL-7f3a"
SECRET = "SS-SENTINEL-91bc"
API_KEY = "AK-SENTINEL-0d2e-long-connector-key"


def ids(count: int, prefix: str = "SC") -> list[str]:
    """``count`` distinct scheduleIds."""
    return [f"{prefix}-{i:05d}" for i in range(count)]


@attrs.frozen
class Verdict:
    """How one id ended, as the client reported it, checked against the server's records."""

    schedule_id: str
    outcome: ScheduleResult | ScheduleError

    @property
    def kind(self) -> str:
        """``cancelled``, ``already_cancelled``, ``failed`` or the exception's class name."""
        if isinstance(self.outcome, ScheduleResult):
            if self.outcome.success:
                return "cancelled"
            return "already_cancelled" if self.outcome.already_cancelled else "failed"
        return type(self.outcome).__name__


def check_outcomes(
    schedule_ids: list[str],
    outcomes: Iterable[object],
    server: MockScheduleServer,
    *,
    attempts: int,
) -> collections.Counter[str]:
    """Check each id's single outcome against what the server saw; count outcomes by kind.

    Every id has exactly one outcome, a ScheduleResult or a ScheduleError
    (nothing else escapes); a reported success is a CANCELLED arrival on the
    server, an already_cancelled one follows a dropped or truncated arrival
    that had cancelled it; no id was sent more often than the retry policy
    allows, and no arrival was refused with a 429.
    """
    results = list(outcomes)
    assert len(results) == len(schedule_ids)
    recorder = server.recorder
    arrivals: dict[str, list[Outcome]] = collections.defaultdict(list)
    for arrival in recorder.select(foreign=False):
        assert arrival.schedule_id is not None
        arrivals[arrival.schedule_id].append(arrival.outcome)
    kinds: collections.Counter[str] = collections.Counter()
    for schedule_id, outcome in zip(schedule_ids, results, strict=True):
        assert isinstance(outcome, ScheduleResult | ScheduleError), repr(outcome)
        verdict = Verdict(schedule_id, outcome)
        kinds[verdict.kind] += 1
        seen = arrivals[schedule_id]
        assert 1 <= len(seen) <= attempts, (schedule_id, seen)
        if verdict.kind == "cancelled":
            assert seen[-1] is Outcome.CANCELLED
        elif verdict.kind == "already_cancelled":
            assert seen[-1] is Outcome.INVALID_STATUS
            assert {Outcome.DROPPED, Outcome.TRUNCATED} & set(seen[:-1])
        elif isinstance(outcome, ServerError):
            assert seen[-1] in (Outcome.SERVER_ERROR, Outcome.MAINTENANCE)
        elif isinstance(outcome, TransportError):
            assert seen[-1] is Outcome.DROPPED
        elif isinstance(outcome, ResponseParseError):
            assert seen[-1] is Outcome.TRUNCATED
        else:  # pragma: no cover - shows what went wrong
            pytest.fail(f"{schedule_id}: unexpected outcome {outcome!r} after {seen}")
        if verdict.kind in ("cancelled", "already_cancelled"):
            assert server.status_of(schedule_id) == "CANCELLED"
    assert recorder.count_rate_limited() == 0
    return kinds


def assert_limits_kept(recorder: Recorder, *, per_id: Mapping[str, int] | None = None) -> None:
    """No W-second span holds more than N arrivals, or more than K of one id."""
    assert recorder.max_arrivals_in_window(W, foreign=False) <= N
    sends = recorder.sends_per_id() if per_id is None else per_id
    for schedule_id, count in sends.items():
        if count > 1:
            assert recorder.max_arrivals_in_window(W, schedule_id=schedule_id) <= K


def makespan_bound(sends: int) -> float:
    """The longest a run of ``sends`` requests may take: one window + guard + RTT per N."""
    return math.ceil(sends / N) * (W + GUARD + MAX_RTT)


@pytest.mark.looptime
async def test_fault_soak_1000_ids_each_end_once_within_limits() -> None:
    """1,000 ids through 10 % faults and 50 ms jitter: one outcome each, no 429, limits kept."""
    loop = asyncio.get_running_loop()
    schedule_ids = ids(1000)
    # Gathered all at once, a retry queues behind every id not yet sent (17 windows); the
    # default policy still holds, because time queued in the limiter is not retry time.
    retry = RetryPolicy()
    async with MockScheduleServer(limits=SERVER_LIMITS, faults=SOAK_FAULTS) as server:
        server.seed(schedule_ids)
        async with server.client(limits=LIMITS, retry=retry, timeout=5.0) as client:
            start = loop.time()
            async with asyncio.timeout(40 * (W + GUARD)):
                outcomes = await asyncio.gather(
                    *(client.cancel(s) for s in schedule_ids), return_exceptions=True
                )
            elapsed = loop.time() - start
            stats = client.limiter.stats()
    kinds = check_outcomes(schedule_ids, outcomes, server, attempts=retry.attempts)
    sends = len(server.recorder)
    # Every fault is retried (a truncated 200 too), so only an id unlucky four times fails.
    assert kinds["cancelled"] + kinds["already_cancelled"] >= 990
    assert stats.in_flight == 0
    assert stats.queued == 0
    assert_limits_kept(server.recorder)
    assert elapsed <= makespan_bound(sends) + retry.backoff_max


@pytest.mark.looptime
async def test_fault_soak_with_repeated_ids_keeps_the_per_schedule_limit() -> None:
    """50 ids asked 12 times each under faults: K = 10 binds, each id is cancelled once."""
    loop = asyncio.get_running_loop()
    distinct = ids(50, prefix="REP")
    calls = [s for _ in range(12) for s in distinct]
    retry = RetryPolicy(attempts=4, deadline=3600.0)
    async with MockScheduleServer(limits=SERVER_LIMITS, faults=SOAK_FAULTS) as server:
        server.seed(distinct)
        async with server.client(limits=LIMITS, retry=retry, timeout=5.0) as client:
            start = loop.time()
            async with asyncio.timeout(40 * (W + GUARD)):
                outcomes = await asyncio.gather(
                    *(client.cancel(s) for s in calls), return_exceptions=True
                )
            elapsed = loop.time() - start
    recorder = server.recorder
    assert recorder.count_rate_limited() == 0
    assert_limits_kept(recorder)
    # Twelve calls of one id need at least two windows of that id's budget.
    assert max(recorder.sends_per_id().values()) > K
    successes = collections.Counter(
        s
        for s, o in zip(calls, outcomes, strict=True)
        if isinstance(o, ScheduleResult) and o.success
    )
    # One call per id cancelled it (or a dropped/truncated one did, and none reports success).
    assert set(successes.values()) <= {1}
    for schedule_id in distinct:
        assert server.status_of(schedule_id) == "CANCELLED"
    for outcome in outcomes:
        assert isinstance(outcome, ScheduleResult | ScheduleError), repr(outcome)
        assert not isinstance(outcome, ScheduleResult) or outcome.is_cancelled
    assert elapsed <= makespan_bound(len(recorder)) + retry.backoff_max


# -- cancellation ----------------------------------------------------------------------------


@attrs.define
class LoopProblems:
    """Collects what would otherwise only be printed: loop exception-handler calls, warnings."""

    contexts: list[dict[str, object]] = attrs.field(factory=list)

    def handler(self, _loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        """A loop exception handler that keeps every context (unclosed sessions, lost errors)."""
        self.contexts.append(context)


async def settle() -> None:
    """Let callbacks scheduled by closing transports and tasks run."""
    for _ in range(10):
        await asyncio.sleep(0)


def assert_no_leftovers(problems: LoopProblems, caught: list[warnings.WarningMessage]) -> None:
    """No task but the test's own, no loop error, no ResourceWarning (after a collection)."""
    current = asyncio.current_task()
    assert [t for t in asyncio.all_tasks() if t is not current] == []
    gc.collect()
    assert problems.contexts == []
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


@pytest.mark.looptime
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_cancelling_a_gather_of_1000_leaves_nothing_behind(seed: int) -> None:
    """A gather of 1,000 cancelled at a random moment leaves no task, session or permit behind."""
    loop = asyncio.get_running_loop()
    problems = LoopProblems()
    loop.set_exception_handler(problems.handler)
    rng = random.Random(seed)  # noqa: S311 - a reproducible moment, not cryptography
    # Mid-flight of the first burst, in the queue, or some windows in.
    delay = rng.choice([rng.uniform(0.0, MAX_RTT), rng.uniform(0.0, 5 * (W + GUARD))])
    first, second = ids(1000, prefix="A"), ids(100, prefix="B")
    # Jitter and retried 500s, so that calls are cancelled in every phase: queued,
    # on the wire, backing off.
    faults = Faults(server_error=0.05, request_latency=(0, 0.025), response_latency=(0, 0.025))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with MockScheduleServer(limits=SERVER_LIMITS, faults=faults) as server:
            server.seed([*first, *second])
            async with server.client(limits=LIMITS, timeout=5.0) as client:
                tasks = [asyncio.ensure_future(client.cancel(s)) for s in first]
                # A call may legitimately exhaust its retries on the 500s before the
                # cancel; that is an outcome, not a leak, so gather keeps it as a result.
                gathered = asyncio.gather(*tasks, return_exceptions=True)
                await asyncio.sleep(delay)
                gathered.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gathered
                # gather() reports the first child's cancellation at once; the others
                # finish their (shielded) permit release within a few loop turns.
                await settle()
                assert all(task.done() for task in tasks)
                stats = client.limiter.stats()
                assert (stats.in_flight, stats.queued) == (0, 0)
                # A following batch still keeps the limits, counting what the cancelled sent.
                # It runs without faults: four 500s in a row for one id would be a correct
                # ServerError, but this batch is about the limiter's state, not retries.
                server.faults = Faults()
                after = await asyncio.gather(*(client.cancel(s) for s in second))
                stats = client.limiter.stats()
        await settle()
        assert_no_leftovers(problems, caught)
    assert all(r.is_cancelled for r in after)
    assert (stats.in_flight, stats.queued) == (0, 0)
    assert server.recorder.count_rate_limited() == 0
    assert_limits_kept(server.recorder)


async def _fill_budget(client: ScheduleClient, prefix: str) -> None:
    """Spend the API user's whole window, so the next call has to queue for about W."""
    results = await asyncio.gather(*(client.cancel(s) for s in ids(N, prefix=prefix)))
    assert all(r.success for r in results)


@pytest.mark.looptime
async def test_timeout_while_queued_raises_and_leaves_nothing_queued() -> None:
    """asyncio.timeout around a queued cancel raises TimeoutError; the queue is empty after."""
    async with (
        MockScheduleServer(limits=SERVER_LIMITS, unknown_ids="active") as server,
        server.client(limits=LIMITS) as client,
    ):
        await _fill_budget(client, "FILL")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5.0):
                await client.cancel("SC-LATE")
        stats = client.limiter.stats()
        assert (stats.queued, stats.in_flight) == (0, 0)
        # The budget comes back one window (plus guard) after the burst, not later.
        assert 0 < await client.limiter.estimate() <= W + GUARD
        assert (await client.cancel("SC-LATE")).success
    assert [a.schedule_id for a in server.recorder].count("SC-LATE") == 1
    assert_limits_kept(server.recorder)


@pytest.mark.looptime
async def test_timeout_while_in_flight_releases_the_permit() -> None:
    """A timeout that hits while the request is on the wire releases its permit at once."""
    slow = Faults(response_latency=(10.0, 10.0))
    async with (
        MockScheduleServer(limits=SERVER_LIMITS, faults=slow, unknown_ids="active") as server,
        server.client(limits=LIMITS, timeout=30.0) as client,
    ):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await client.cancel("SC-1")
        stats = client.limiter.stats()
        # Released, but the entry still counts: the request may have arrived.
        assert (stats.in_flight, stats.queued, stats.total_used) == (0, 0, 1)
    assert len(server.recorder) == 1


@pytest.mark.looptime
async def test_timeout_during_retry_backoff_holds_nothing() -> None:
    """A timeout during the backoff between retries ends the call with nothing held."""
    faults = Faults(script=["server_error"])
    retry = RetryPolicy(attempts=3, backoff_initial=50.0, backoff_max=50.0, jitter=lambda: 1.0)
    async with (
        MockScheduleServer(limits=SERVER_LIMITS, faults=faults, unknown_ids="active") as server,
        server.client(limits=LIMITS, retry=retry) as client,
    ):
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(10.0):
                await client.cancel("SC-1")
        stats = client.limiter.stats()
        assert (stats.in_flight, stats.queued) == (0, 0)
    assert [a.outcome for a in server.recorder] == [Outcome.SERVER_ERROR]


@pytest.mark.looptime
async def test_closing_the_client_ends_every_queued_call() -> None:
    """aclose() with hundreds of calls queued ends each of them; nothing hangs or lingers."""
    loop = asyncio.get_running_loop()
    problems = LoopProblems()
    loop.set_exception_handler(problems.handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with MockScheduleServer(limits=SERVER_LIMITS, unknown_ids="active") as server:
            client = server.client(limits=LIMITS)
            tasks = [asyncio.ensure_future(client.cancel(s)) for s in ids(300)]
            await asyncio.sleep(W / 2)  # the first 60 are answered, 240 queue
            await client.aclose()
            async with asyncio.timeout(1.0):
                done = await asyncio.gather(*tasks, return_exceptions=True)
        await settle()
        assert_no_leftovers(problems, caught)
    answered = [r for r in done if isinstance(r, ScheduleResult)]
    assert len(answered) == N
    # The rest were never sent: ended by the close with its typed error, not by a request.
    assert all(type(r) is ClientClosedError for r in done[N:])
    assert len(server.recorder) == N


# -- time ------------------------------------------------------------------------------------

#: Wall-clock offsets the patched clocks cycle through: years back, days ahead, back again.
JUMPS = (0.0, -3 * 365 * 86400.0, 86400.0, -3600.0, 40 * 365 * 86400.0, -1.0)


@attrs.define
class JumpingWallClock:
    """``time.time`` and ``datetime.now`` that jump around by years on every read."""

    real: Callable[[], float]
    reads: int = 0

    def time(self) -> float:
        """The real wall clock plus the next offset."""
        self.reads += 1
        return self.real() + JUMPS[self.reads % len(JUMPS)]

    def datetime_class(self) -> type[datetime]:
        """A datetime subclass whose ``now`` reads this clock."""
        clock = self

        class JumpingDatetime(datetime):
            @classmethod
            def now(cls, tz: tzinfo | None = None) -> JumpingDatetime:
                moment = datetime.fromtimestamp(clock.time(), tz)
                return cls.fromtimestamp(moment.timestamp(), tz)

        return JumpingDatetime


@pytest.mark.looptime
async def test_a_jumping_wall_clock_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """time.time and datetime.now jumping by years: signed calls succeed, limits hold, on time."""
    clock = JumpingWallClock(time.time)
    monkeypatch.setattr(time, "time", clock.time)
    monkeypatch.setattr(schedcancel._client.client, "datetime", clock.datetime_class())
    monkeypatch.setattr(schedcancel._protocol.wire, "datetime", clock.datetime_class())
    loop = asyncio.get_running_loop()
    schedule_ids = ids(300)
    async with (
        MockScheduleServer(
            limits=SERVER_LIMITS, connectors={API_KEY: SECRET}, unknown_ids="active"
        ) as server,
        server.client(limits=LIMITS) as client,
    ):
        start = loop.time()
        async with asyncio.timeout(20 * (W + GUARD)):
            results = await asyncio.gather(*(client.cancel(s) for s in schedule_ids))
        elapsed = loop.time() - start
    assert clock.reads >= len(schedule_ids)  # every signed Date came from the jumping clock
    assert all(r.success for r in results)
    assert server.recorder.outcomes() == {Outcome.CANCELLED: 300}
    assert_limits_kept(server.recorder)
    # 300 requests: five bursts, one window + guard apart, exactly as with a sane clock.
    assert elapsed <= makespan_bound(300)


def _signed_ok(request: web.Request, body: bytes) -> bool:
    """Check X-Signature as IXOPAY documents it (not with schedcancel), at the request's Date."""
    message = "\n".join(
        (
            request.method,
            hashlib.sha512(body).hexdigest(),
            request.headers["Content-Type"],
            request.headers["Date"],
            request.raw_path,
        )
    )
    digest = hmac.new(SECRET.encode(), message.encode(), hashlib.sha512).digest()
    return hmac.compare_digest(base64.b64encode(digest).decode(), request.headers["X-Signature"])


@attrs.define
class SkewedServer:
    """A signature-checking server whose clock (its Date header) is far from ours.

    The first request is answered 429 with ``Retry-After`` as an HTTP-date
    five seconds after the server's own Date; later ones succeed.
    """

    server_date: datetime
    arrivals: list[tuple[float, int]] = attrs.field(factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Verify the signature, then answer 429 once and 200 after."""
        body = await request.read()
        if not _signed_ok(request, body):
            status, payload = 401, b'{"success": false, "errorCode": 1004}'
            headers: dict[str, str] = {}
        elif not self.arrivals:
            status, payload = 429, b'{"success": false, "errorCode": 1009}'
            later = self.server_date + timedelta(seconds=5)
            headers = {"Retry-After": format_datetime(later, usegmt=True)}
        else:
            status, payload = 200, b'{"success": true, "newStatus": "CANCELLED"}'
            headers = {}
        self.arrivals.append((asyncio.get_running_loop().time(), status))
        headers["Date"] = format_datetime(self.server_date, usegmt=True)
        return web.Response(
            status=status, body=payload, headers=headers, content_type="application/json"
        )


@pytest.mark.looptime
@pytest.mark.parametrize(
    "server_date",
    [datetime(1999, 1, 1, tzinfo=UTC), datetime(2099, 1, 1, tzinfo=UTC)],
    ids=["1999", "2099"],
)
async def test_server_date_far_off_neither_breaks_signing_nor_retry_after(
    server_date: datetime,
) -> None:
    """A server clock decades off: requests still verify, and Retry-After counts from its Date."""
    skewed = SkewedServer(server_date)
    app = web.Application()
    app.router.add_post("/api/v3/schedule/{key}/{sid}/cancel", skewed.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        async with ScheduleClient(
            API_KEY,
            username="api-user",
            password=PASSWORD,
            shared_secret=SECRET,
            base_url=f"http://127.0.0.1:{port}/api/v3",
            limits=LIMITS,
        ) as client:
            first = await client.cancel("SC-1")
            second = await client.cancel("SC-2")
    finally:
        await runner.cleanup()
    assert first.success
    assert second.success
    assert [status for _, status in skewed.arrivals] == [429, 200, 200]
    # Measured from the server's Date the wait is 5 s; from our clock it would be 0 (1999)
    # or capped at 2 W (2099).
    gap = skewed.arrivals[1][0] - skewed.arrivals[0][0]
    assert 5.0 <= gap < 5.5


# -- the same soak through the CLI, with its journal ---------------------------------------

REPO = Path(__file__).resolve().parent.parent
FINAL = {"cancelled", "already_cancelled", "failed", "invalid"}


async def run_cancel_cli(args: list[str], *, cwd: Path, base_url: str) -> int:
    """Run ``python -m schedcancel cancel ARGS`` against ``base_url``; return its exit code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDCANCEL_")}
    env |= {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        "SCHEDCANCEL_API_KEY": API_KEY,
        "SCHEDCANCEL_USERNAME": "api-user",
        "SCHEDCANCEL_PASSWORD": PASSWORD,
        "SCHEDCANCEL_SHARED_SECRET": SECRET,
        "SCHEDCANCEL_BASE_URL": base_url,
    }
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schedcancel",
        "cancel",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        _, stderr = await child.communicate()
    assert child.returncode in (0, 3), stderr.decode()[-2000:]
    return child.returncode


async def test_fault_soak_through_the_cli_journal_has_one_final_line_per_id(
    tmp_path: Path,
) -> None:
    """1,000 ids through ``schedcancel cancel --journal`` under faults: one final line each.

    Real time, so the window is scaled: N = 250 per W = 0.5 s (guard 0.05 s),
    K = 10. A run that ends with errors (exit 3) is run again on the same
    journal, as the CLI tells its user to; the runs converge, and the journal
    then holds exactly one final line per id, and error lines only before it.
    """
    total, window = 250, 0.5
    schedule_ids = ids(1000, prefix="CLI")
    (tmp_path / "ids.txt").write_text("\n".join(schedule_ids) + "\n")
    journal = tmp_path / "journal.jsonl"
    args = ["--from", "ids.txt", "--journal", str(journal), "-q", "--no-progress"]
    args += ["--total", str(total), "--window", str(window), "--guard", "0.05"]
    server_limits = ServerLimits(total=total, per_schedule=K, window=window)
    codes = []
    async with MockScheduleServer(
        users={"api-user": PASSWORD},
        connectors={API_KEY: SECRET},
        limits=server_limits,
        faults=SOAK_FAULTS,
    ) as server:
        server.seed(schedule_ids)
        for _ in range(4):
            codes.append(await run_cancel_cli(args, cwd=tmp_path, base_url=server.base_url))
            if codes[-1] == 0:
                break
    assert codes[-1] == 0, codes
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    per_id: dict[str, list[str]] = collections.defaultdict(list)
    for line in lines:
        if "id" in line:
            per_id[line["id"]].append(line["outcome"])
    assert sorted(per_id) == schedule_ids
    for schedule_id, outcomes in per_id.items():
        assert [o for o in outcomes if o in FINAL] == [outcomes[-1]], (schedule_id, outcomes)
        assert outcomes[-1] in ("cancelled", "already_cancelled")
        assert set(outcomes[:-1]) <= {"error"}
        assert server.status_of(schedule_id) == "CANCELLED"
    # Retries within the policy (4 attempts) in each run the id took part in.
    sends = server.recorder.sends_per_id()
    for schedule_id, outcomes in per_id.items():
        assert sends[schedule_id] <= 4 * len(outcomes)
    recorder = server.recorder
    assert recorder.count_rate_limited() == 0
    assert recorder.max_arrivals_in_window(window) <= total
    assert max(sends.values()) <= K
