"""Bulk + interactive: a bulk job and calls arriving at random on one API user's budget.

A bulk job of M distinct ids starts at once; beside it, interactive calls
(other distinct ids, ``IA-0000``...) arrive at random: exponential gaps with a
mean of ``Scenario.interactive_gap`` (seeded by the repetition, so every
contestant meets the same arrival times), each call started when its time
comes (open loop: a call does not wait for the one before it), until the bulk
job has finished. Interactive calls run at priority 10 (any priority >= 0 is alike).
Every contestant sends both kinds through one aiohttp session or one
``ScheduleClient``:

``sc-exact``
    ``client.cancel_many(ids)`` at its default priority (background, -1)
    and ``client.cancel(id, priority=10)``;
    ``RateLimits`` exact, adaptive, with the default ``interactive_reserve``.
``sc-exact-reserve-0``
    the same with ``interactive_reserve=0``: no reserve and no pacing of
    background calls: the bulk job may hold every place, so an interactive
    call, though first in the queue, waits for the next one to free up.
``shared-retry``
    one ``AsyncLimiter(N, W)`` and one ``AsyncLimiter(K, W)`` per id for both
    kinds of call, retrying 429s with backoff (the ``naive-retry`` peer).
``shared-pacing``
    one ``AsyncLimiter(1, W/N)`` and one ``AsyncLimiter(1, W/K)`` per id for
    both (the ``pacing`` peer).
``split-retry``
    a reserve by hand: ``AsyncLimiter(N - 4, W)`` for the bulk job,
    ``AsyncLimiter(4, W)`` for interactive calls, ``AsyncLimiter(K, W)`` per
    id for both, retrying 429s with backoff. Four places is twice the mean
    load of a call every W/2: a split of one place, as schedcancel's reserve,
    cannot keep up with it (its queue of interactive calls grows without end).

The peers' bulk job runs through ``2N`` workers, ``cancel_many``'s default
concurrency, so they queue no more bulk calls in their limiter than
schedcancel does; ``AsyncLimiter`` serves its waiters first come, first
served.

Figures (server arrival times and client stamps share the event loop's clock):

- **wait** of an interactive call: from its start to the server's arrival of
  its first request the limits admitted (a call refused with 429 waits on);
  a call never admitted counts as failed, not as a wait.
- **bulk makespan**: from the first bulk arrival to the last admitted one.
- **bulk bound**: ``(ceil((M + I) / N) - 1) * (W + guard + rtt)`` for the I
  interactive calls of the run and its median round trip: every request takes
  a place, and a response-anchored client frees one ``W + guard`` after it saw
  the response.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

from aiolimiter import AsyncLimiter
from schedcancel import ScheduleClient
from schedcancel.testing import Arrival

from .peers import (
    CallResult,
    Http,
    Outcome,
    Sender,
    Setup,
    Target,
    aiolimiters,
    call_results,
    limited_sender,
    per_id_limiters,
    status_result,
    timed_client,
)

__all__ = [
    "INTERACTIVE_PREFIX",
    "INTERACTIVE_PRIORITY",
    "MIXED_CONTESTANTS",
    "MixedContestant",
    "arrival_gaps",
    "measure_interactive",
]

#: The limiter priority of interactive calls (anything >= 0 is alike).
INTERACTIVE_PRIORITY = 10
#: How interactive calls' scheduleIds start; bulk ids must not.
INTERACTIVE_PREFIX = "IA-"
#: The places per W the hand-made split gives interactive calls: twice a call every W/2.
SPLIT_RESERVE = 4

#: Run a bulk job of ``bulk_ids`` and interactive calls at the gaps drawn, until the job ends.
MixedContestant = Callable[[Target, Sequence[str], Iterator[float], Setup], Awaitable[Outcome]]

T = TypeVar("T")


def arrival_gaps(mean: float, seed: int) -> Iterator[float]:
    """Seconds between interactive arrivals: exponential with this mean (a Poisson process)."""
    rng = random.Random(seed)  # arrival times, not secrets
    while True:
        yield rng.expovariate(1 / mean)


async def _interactive(
    gaps: Iterator[float], call: Callable[[str], Awaitable[T]], job: asyncio.Future[Any]
) -> tuple[list[tuple[str, float]], list[T | BaseException]]:
    """Start ``call`` at each arrival until ``job`` is done; return (id, start) and the results."""
    loop = asyncio.get_running_loop()
    started: list[tuple[str, float]] = []
    calls: list[asyncio.Future[T]] = []
    at = loop.time()
    for gap in gaps:
        at += gap
        await asyncio.wait({job}, timeout=max(0.0, at - loop.time()))
        if job.done():
            break
        schedule_id = f"{INTERACTIVE_PREFIX}{len(started):04d}"
        started.append((schedule_id, loop.time()))
        calls.append(asyncio.ensure_future(call(schedule_id)))
    return started, await asyncio.gather(*calls, return_exceptions=True)


async def _workers(
    schedule_ids: Sequence[str], one: Callable[[str], Awaitable[int | None]], count: int
) -> list[int | None]:
    """Send every id through ``count`` workers; return the statuses in submission order."""
    statuses: dict[str, int | None] = {}
    todo = iter(schedule_ids)

    async def work() -> None:
        for schedule_id in todo:
            statuses[schedule_id] = await one(schedule_id)

    await asyncio.gather(*(work() for _ in range(min(count, len(schedule_ids)))))
    return [statuses[sid] for sid in schedule_ids]


async def _run_peer(
    target: Target,
    bulk_ids: Sequence[str],
    gaps: Iterator[float],
    setup: Setup,
    *,
    bulk: Sender,
    interactive: Sender,
) -> Outcome:
    http = Http(target)
    started = asyncio.get_running_loop().time()
    try:
        job = asyncio.ensure_future(
            _workers(bulk_ids, lambda sid: bulk(http, sid), 2 * setup.total)
        )
        calls, results = await _interactive(gaps, lambda sid: interactive(http, sid), job)
        statuses = await job
    finally:
        await http.aclose()
    done = [status_result(sid, status) for sid, status in zip(bulk_ids, statuses, strict=True)]
    for (sid, _), result in zip(calls, results, strict=True):
        status = None if isinstance(result, BaseException) else result
        done.append(status_result(sid, status))
    return Outcome(
        started=started, attempts=tuple(http.attempts), calls=tuple(done), interactive=tuple(calls)
    )


def _shared(*, pacing: bool, retry: bool) -> MixedContestant:
    async def run(
        target: Target, bulk_ids: Sequence[str], gaps: Iterator[float], setup: Setup
    ) -> Outcome:
        total, per_id = aiolimiters(setup, pacing=pacing)
        one = limited_sender(total, per_id, setup, retry=retry)
        return await _run_peer(target, bulk_ids, gaps, setup, bulk=one, interactive=one)

    return run


async def _split(
    target: Target, bulk_ids: Sequence[str], gaps: Iterator[float], setup: Setup
) -> Outcome:
    per_id = per_id_limiters(setup.per_schedule, setup.window)
    bulk = AsyncLimiter(setup.total - SPLIT_RESERVE, setup.window)
    interactive = AsyncLimiter(SPLIT_RESERVE, setup.window)
    return await _run_peer(
        target,
        bulk_ids,
        gaps,
        setup,
        bulk=limited_sender(bulk, per_id, setup, retry=True),
        interactive=limited_sender(interactive, per_id, setup, retry=True),
    )


def _cancel_many(client: ScheduleClient, schedule_ids: Sequence[str]) -> AsyncIterator[Any]:
    """``client.cancel_many(ids)``, or ``_bulk.cancel_many`` on an older tree (benchmarks.ab)."""
    if hasattr(client, "cancel_many"):
        return client.cancel_many(schedule_ids)
    bulk = importlib.import_module("schedcancel._bulk")  # the old tree only

    return cast("AsyncIterator[Any]", bulk.cancel_many(client, schedule_ids))


def _schedcancel(**settings: Any) -> MixedContestant:
    async def run(
        target: Target, bulk_ids: Sequence[str], gaps: Iterator[float], setup: Setup
    ) -> Outcome:
        client, limiter = timed_client(target, setup, mode="exact", adaptive=True, **settings)
        started = asyncio.get_running_loop().time()

        async def job() -> list[Any]:
            return [outcome async for outcome in _cancel_many(client, bulk_ids)]

        try:
            async with client:
                bulk = asyncio.ensure_future(job())
                calls, results = await _interactive(
                    gaps, lambda sid: client.cancel(sid, priority=INTERACTIVE_PRIORITY), bulk
                )
                outcomes = await bulk
        finally:
            await limiter.aclose()
        done = [
            CallResult(schedule_id=o.schedule_id, ok=o.ok, error=None if o.ok else str(o.kind))
            for o in outcomes
        ]
        done += call_results([sid for sid, _ in calls], results)
        return Outcome(
            started=started,
            attempts=tuple(limiter.attempts),
            calls=tuple(done),
            interactive=tuple(calls),
        )

    return run


#: The contestants of the bulk + interactive scenarios, by key, with the label the tables print.
MIXED_CONTESTANTS: dict[str, tuple[str, MixedContestant]] = {
    "sc-exact": ("schedcancel (bulk at its default priority)", _schedcancel()),
    "sc-exact-reserve-0": (
        "schedcancel, interactive_reserve=0",
        _schedcancel(interactive_reserve=0),
    ),
    "shared-retry": (
        "one aiolimiter N/W + K/W per id for both, retry",
        _shared(pacing=False, retry=True),
    ),
    "shared-pacing": ("one aiolimiter 1/(W/N) for both", _shared(pacing=True, retry=False)),
    "split-retry": (
        f"aiolimiter (N-{SPLIT_RESERVE})/W bulk + {SPLIT_RESERVE}/W interactive, retry",
        _split,
    ),
}


def measure_interactive(
    sent: Outcome,
    arrivals: Sequence[Arrival],
    *,
    bulk: int,
    rtt: float,
    total: int,
    window: float,
    guard: float,
) -> dict[str, Any]:
    """The interactive waits and the bulk job's makespan against its bound (module docstring).

    Args:
        sent: what the contestant did, with its interactive calls' starts.
        arrivals: every arrival the server recorded.
        bulk: M, the bulk job's calls.
        rtt: the run's median round trip.
        total: N.
        window: W.
        guard: schedcancel's guard.

    Returns:
        ``interactive_calls``, ``interactive_failed``, ``interactive_waits`` (sorted),
        ``bulk_makespan``, ``bulk_bound``, ``bulk_ratio``: :class:`RunResult` fields.
    """
    admitted: dict[str, float] = {}
    bulk_times: list[float] = []
    bulk_admitted: list[float] = []
    for arrival in arrivals:
        if arrival.foreign or arrival.schedule_id is None:
            continue
        sid = arrival.schedule_id
        if arrival.accepted:
            admitted[sid] = min(arrival.time, admitted.get(sid, math.inf))
        if not sid.startswith(INTERACTIVE_PREFIX):
            bulk_times.append(arrival.time)
            if arrival.accepted:
                bulk_admitted.append(arrival.time)
    waits = sorted(admitted[sid] - start for sid, start in sent.interactive if sid in admitted)
    makespan = max(bulk_admitted) - min(bulk_times) if bulk_admitted else math.nan
    cycles = math.ceil((bulk + len(sent.interactive)) / total) - 1
    bound = cycles * (window + guard + rtt)
    return {
        "interactive_calls": len(sent.interactive),
        "interactive_failed": len(sent.interactive) - len(waits),
        "interactive_waits": tuple(waits),
        "bulk_makespan": makespan,
        "bulk_bound": bound,
        "bulk_ratio": makespan / bound if bound else None,
    }
