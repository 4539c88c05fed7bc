"""Mixed operations: every Schedule API operation on one API user's budget.

The workload: for each of ``I`` ids the lifecycle get -> pause -> continue ->
update -> cancel (each id's five calls in order, one after the other), and
``S`` starts, all handed over at once. Every call takes a place at the API
user's level; the lifecycle calls take one at their id's level too, start
has no scheduleId. The tests (``tests/test_operations.py``,
``tests/test_operations_e2e.py``) run the same workload, defined here once:
:func:`run_workload` on a :class:`schedcancel.ScheduleClient`.

Contestants (scenario ``operations`` of ``python -m benchmarks``):

``sc-exact``
    one ``ScheduleClient`` with its in-process ``RateLimiter`` (exact, adaptive).
``sc-redis``
    the same client on a ``RedisLimiter`` (Redis at ``$SCHEDCANCEL_BENCH_REDIS``,
    default ``redis://127.0.0.1:6379/0``; fresh keys per run).
``naive`` / ``naive-retry``
    one aiohttp session with one ``AsyncLimiter(N, W)`` for the API user and
    an ``AsyncLimiter(K, W)`` per id (start takes the user's only), as the
    other scenarios' naive peers; a 429 is a failed call, or retried with
    backoff (at most ``retries`` times). A failed call ends its id's lifecycle.

The bound: every call takes a place at the user level, so the last of
``M = 5 I + S`` calls cannot be sent before ``ceil(M / N) - 1`` windows have
passed (the per-id level needs ``ceil(5 / K) - 1 = 0`` more for K >= 5);
a client that frees a place ``W + guard`` after it saw the response adds the
guard and a round trip per window (``ratio_g`` in the tables, see README).
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import attrs
from schedcancel import (
    Operation,
    ScheduleClient,
    ScheduleResult,
    StartSchedule,
    UpdateSchedule,
)
from schedcancel._protocol.requests import ContinueSchedule

from .peers import (
    Attempt,
    CallResult,
    Outcome,
    Setup,
    Target,
    TimedLimiter,
    aiolimiters,
    basic_auth,
    timed_client,
)

__all__ = [
    "LIFECYCLE",
    "OPERATION_CONTESTANTS",
    "START_PREFIX",
    "MixedResults",
    "Workload",
    "mixed_calls",
    "run_workload",
    "split_calls",
]

#: Each id's calls, in order.
LIFECYCLE = (
    Operation.GET,
    Operation.PAUSE,
    Operation.CONTINUE,
    Operation.UPDATE,
    Operation.CANCEL,
)
#: How a start is named in a scenario's list of calls (a start has no scheduleId).
START_PREFIX = "START-"


_LATER = datetime(2030, 1, 1, 9, 30, tzinfo=UTC)


#: The start's fields besides its date.
_START: dict[str, Any] = {
    "registration_uuid": "RG-MIXED",
    "amount": Decimal("9.99"),
    "currency": "EUR",
    "period_length": 1,
    "period_unit": "MONTH",
    "merchant_meta_data": "mixed workload",
}


def _start(at: datetime) -> StartSchedule:
    return StartSchedule(**_START, start_date_time=at)


@attrs.frozen(kw_only=True)
class Workload:
    """What the mixed workload sends besides the ids: the continue date, the update, the start.

    Attributes:
        at: ``continueDateTime`` of every continue (aware, in the server's future).
        changes: the body of every update.
        schedule: the body of every start.
    """

    at: datetime = _LATER
    changes: UpdateSchedule = attrs.field(
        factory=lambda: UpdateSchedule(amount=Decimal("12.50"), period_unit="WEEK")
    )
    schedule: StartSchedule = attrs.field(factory=lambda: _start(_LATER))

    @classmethod
    def after(cls, now: datetime) -> Workload:
        """A workload whose dates lie 30 days after ``now`` (for a server whose clock is real)."""
        later = now + timedelta(days=30)
        return cls(at=later, schedule=_start(later))


@attrs.frozen
class MixedResults:
    """What :func:`run_workload` returns.

    Attributes:
        lifecycles: per id, in the order given, its results (get, pause,
            continue, update, cancel); with ``return_exceptions`` the
            exception that ended it takes the place of the first result missing.
        starts: the starts' results (or exceptions), in order.
    """

    lifecycles: list[list[ScheduleResult | BaseException]]
    starts: list[ScheduleResult | BaseException]


def mixed_calls(ids: int, starts: int) -> tuple[str, ...]:
    """A scenario's calls: each of ``ids`` ids five times (``OP-00000``...), then the starts."""
    per_id = [f"OP-{i:05d}" for i in range(ids) for _ in LIFECYCLE]
    return (*per_id, *(f"{START_PREFIX}{i}" for i in range(starts)))


def split_calls(calls: Sequence[str]) -> tuple[list[str], int]:
    """The distinct ids (in order) and the number of starts of :func:`mixed_calls`' list."""
    ids = [c for c in dict.fromkeys(calls) if not c.startswith(START_PREFIX)]
    return ids, sum(1 for c in calls if c.startswith(START_PREFIX))


async def _lifecycle(
    client: ScheduleClient, schedule_id: str, workload: Workload, *, return_exceptions: bool
) -> list[ScheduleResult | BaseException]:
    steps: tuple[Callable[[], Awaitable[ScheduleResult]], ...] = (
        lambda: client.get(schedule_id),
        lambda: client.pause(schedule_id),
        lambda: client.continue_(schedule_id, at=workload.at),
        lambda: client.update(schedule_id, workload.changes),
        lambda: client.cancel(schedule_id),
    )
    results: list[ScheduleResult | BaseException] = []
    for step in steps:
        try:
            results.append(await step())
        except Exception as exc:
            if not return_exceptions:
                raise
            results.append(exc)
            break
    return results


async def run_workload(
    client: ScheduleClient,
    ids: Sequence[str],
    starts: int,
    workload: Workload | None = None,
    *,
    return_exceptions: bool = False,
) -> MixedResults:
    """Run every id's lifecycle and ``starts`` starts on ``client``, all at once (gather).

    Args:
        client: the one client every call goes through.
        ids: the schedules to take through get, pause, continue, update, cancel.
        starts: how many schedules to start beside them.
        workload: the dates and bodies (default :class:`Workload`'s).
        return_exceptions: keep an exception as a result (it ends its id's
            lifecycle) instead of raising it.

    Returns:
        The results, per id and per start.
    """
    chosen = workload or Workload()
    lifecycles, started = await asyncio.gather(
        asyncio.gather(
            *(_lifecycle(client, sid, chosen, return_exceptions=return_exceptions) for sid in ids)
        ),
        asyncio.gather(
            *(client.start(chosen.schedule) for _ in range(starts)),
            return_exceptions=return_exceptions,
        ),
    )
    return MixedResults(list(lifecycles), list(started))


def _call_results(ids: Sequence[str], results: MixedResults) -> tuple[CallResult, ...]:
    calls = []
    for sid, lifecycle in zip(ids, results.lifecycles, strict=True):
        calls += [
            CallResult(schedule_id=sid, ok=False, error=type(r).__name__)
            if isinstance(r, BaseException)
            else CallResult(schedule_id=sid, ok=True)
            for r in lifecycle
        ]
    calls += [
        CallResult(schedule_id=f"{START_PREFIX}{i}", ok=False, error=type(r).__name__)
        if isinstance(r, BaseException)
        else CallResult(schedule_id=f"{START_PREFIX}{i}", ok=True)
        for i, r in enumerate(results.starts)
    ]
    return tuple(calls)


async def _on_client(
    client: ScheduleClient, limiter: TimedLimiter, calls: Sequence[str]
) -> Outcome:
    ids, starts = split_calls(calls)
    started = asyncio.get_running_loop().time()
    try:
        async with client:
            results = await run_workload(client, ids, starts, return_exceptions=True)
    finally:
        await limiter.aclose()
    return Outcome(
        started=started, attempts=tuple(limiter.attempts), calls=_call_results(ids, results)
    )


async def _sc_exact(target: Target, calls: Sequence[str], setup: Setup) -> Outcome:
    client, limiter = timed_client(target, setup, mode="exact", adaptive=True)
    return await _on_client(client, limiter, calls)


async def _sc_redis(target: Target, calls: Sequence[str], setup: Setup) -> Outcome:
    from schedcancel.redis import RedisLimiter  # noqa: PLC0415 - the redis extra

    url = os.environ.get("SCHEDCANCEL_BENCH_REDIS", "redis://127.0.0.1:6379/0")
    prefix = f"bench-mixed-{uuid.uuid4().hex[:12]}"
    inner = RedisLimiter(
        url, username=target.username, key_prefix=prefix, limits=setup.rate_limits()
    )
    client, limiter = timed_client(target, setup, inner=inner)
    return await _on_client(client, limiter, calls)


class _Requests:
    """The naive peers' HTTP: one session, Basic auth, every attempt stamped."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._headers = {
            "Authorization": basic_auth(target.username, target.password),
            "Content-Type": "application/json",
        }
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self._loop = asyncio.get_running_loop()
        self.attempts: list[Attempt] = []

    async def send(self, operation: Operation, schedule_id: str | None, body: bytes) -> int | None:
        """One request; its status, or None when no response came."""
        base = f"{self._target.base_url}/schedule/{self._target.api_key}"
        url = f"{base}/{schedule_id}/{operation.path}" if schedule_id else f"{base}/start"
        sent = self._loop.time()
        status: int | None
        try:
            async with self._session.request(
                operation.method, url, data=body or None, headers=self._headers
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError):
            status = None
        stamp = Attempt(
            schedule_id=schedule_id or "", sent=sent, answered=self._loop.time(), status=status
        )
        self.attempts.append(stamp)
        return status

    async def aclose(self) -> None:
        await self._session.close()


def _bodies(workload: Workload) -> dict[Operation, bytes]:
    return {
        Operation.GET: b"",
        Operation.PAUSE: b"{}",
        Operation.CONTINUE: ContinueSchedule(workload.at).to_json(),
        Operation.UPDATE: workload.changes.to_json(),
        Operation.CANCEL: b"{}",
        Operation.START: workload.schedule.to_json(),
    }


def _naive(*, retry: bool) -> Callable[[Target, Sequence[str], Setup], Awaitable[Outcome]]:
    async def run(target: Target, calls: Sequence[str], setup: Setup) -> Outcome:
        ids, starts = split_calls(calls)
        total, per_id = aiolimiters(setup, pacing=False)
        rng = random.Random(setup.seed)  # jitter, not cryptography
        retries = setup.backoff.retries if retry else 0
        bodies = _bodies(Workload())
        http = _Requests(target)

        async def one(operation: Operation, schedule_id: str | None) -> int | None:
            for attempt in range(retries + 1):
                if schedule_id is None:
                    async with total:
                        status = await http.send(operation, None, bodies[operation])
                else:
                    async with per_id(schedule_id), total:
                        status = await http.send(operation, schedule_id, bodies[operation])
                if status != 429 or attempt == retries:
                    return status
                await asyncio.sleep(setup.backoff.delay(attempt, rng))
            raise AssertionError("unreachable")  # pragma: no cover

        async def lifecycle(schedule_id: str) -> list[CallResult]:
            done = []
            for operation in LIFECYCLE:
                status = await one(operation, schedule_id)
                ok = status == 200
                done.append(
                    CallResult(schedule_id=schedule_id, ok=ok, error=None if ok else str(status))
                )
                if not ok:
                    break
            return done

        async def start(index: int) -> CallResult:
            status = await one(Operation.START, None)
            ok = status == 200
            name = f"{START_PREFIX}{index}"
            return CallResult(schedule_id=name, ok=ok, error=None if ok else str(status))

        started = asyncio.get_running_loop().time()
        try:
            lifecycles, started_calls = await asyncio.gather(
                asyncio.gather(*(lifecycle(sid) for sid in ids)),
                asyncio.gather(*(start(i) for i in range(starts))),
            )
        finally:
            await http.aclose()
        done = [call for calls_of_id in lifecycles for call in calls_of_id] + list(started_calls)
        return Outcome(started=started, attempts=tuple(http.attempts), calls=tuple(done))

    return run


#: The contestants of the ``operations`` scenario, by key, with the label the tables print.
OPERATION_CONTESTANTS: dict[
    str, tuple[str, Callable[[Target, Sequence[str], Setup], Awaitable[Outcome]]]
] = {
    "sc-exact": ("schedcancel, in-process limiter", _sc_exact),
    "sc-redis": ("schedcancel, RedisLimiter", _sc_redis),
    "naive": ("aiolimiter N/W + K/W per id", _naive(retry=False)),
    "naive-retry": ("same + retry on 429", _naive(retry=True)),
}
