"""Scenarios, the mock server set-up, and the figures every contestant is judged by.

Time is scaled: window W = 2 s, N = 60 per API user, K = 10 per scheduleId
(the goals table of ``benchmarks/README.md``). The mock server runs in the
same event loop on 127.0.0.1 with one-way latency drawn uniformly from
2.5-10 ms on the way in and again on the way out (a round trip of 5-20 ms),
so server arrival times and client stamps share one clock.

Figures of one run (one contestant, one scenario):

- **makespan**: last response observed minus first send, on the client.
- **lower bound** ``L``: the earliest possible *last send* when all M calls are
  ready at t = 0, ``(max(ceil(M/N), max_k ceil(m_k/K)) - 1) * W``; with
  distinct ids this is ``floor((M-1)/N) * W``. Under foreign load N is the
  remaining budget, ``N - foreign * N``.
- **ratio**: ``makespan / L``, the goals' definition. It includes the last
  round trip and every wait a real client has, so even a perfect client is
  above 1 by about ``rtt / L``.
- **guard bound** ``L_g = w * (W + guard + rtt) + rtt`` for ``w`` windows, with
  ``rtt`` the run's median round trip: the best a client can do that frees a
  request's budget ``W + guard`` after it *observed* the response (what keeps
  it safe under any jitter, ``docs/rate-limits.md``); the
  goals allow "+ one RTT per window". **ratio_g** = ``makespan / L_g``; the
  makespan goals are judged on it. Peers that do not anchor on responses can
  beat ``L_g``: their ratio_g may be below 1, at the price of 429s.
- **429s** and **sends**: the server's recorder, clients' arrivals only.
- **failed ids**: ids with a call that did not end in an HTTP 200 answer.
- **peak**: the most client arrivals the server saw in any W seconds.
- **queue delay**: from handing all calls over at once to the latest first
  send of any id: what the limiter itself held back. For a small batch
  this isolates the limiter from the CPU cost of 50 cold connections that
  every contestant pays alike.

The bulk + interactive scenarios (``kind="interactive"``) add the interactive
calls' waits and the bulk job's makespan against a bound that counts every
request (:mod:`benchmarks.interactive`).

A scenario's repetitions are interleaved: round r runs every contestant once,
so that drift of the machine's load hits all of them alike.
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import random
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp
import attrs
from schedcancel.testing import (
    DEFAULT_API_KEY,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    Arrival,
    Faults,
    HeaderStyle,
    MockScheduleServer,
    ModelName,
    Outcome,
    ServerLimits,
    max_in_window,
)

from .interactive import MIXED_CONTESTANTS, arrival_gaps, measure_interactive
from .mixed import OPERATION_CONTESTANTS, mixed_calls
from .peers import CONTESTANTS, BackoffPolicy, Setup, Target
from .peers import Outcome as Sent
from .report import goals, quantile

__all__ = [
    "BenchConfig",
    "RunResult",
    "Scenario",
    "bound_windows",
    "combine",
    "interactive_scenario",
    "interactive_summary",
    "label",
    "machine_info",
    "make_report",
    "run_one",
    "run_scenario",
    "run_suite",
    "scenarios",
]


@attrs.frozen(kw_only=True)
class BenchConfig:
    """The scaled limits and network every scenario runs with.

    Attributes:
        window: W, the server's window in seconds.
        total: N, requests per window per API user.
        per_schedule: K, requests per window per scheduleId.
        guard: schedcancel's guard in seconds (0.05 s suits W = 2 s: 2.5 % of
            the window, as 1.5 s would be at W = 60 s).
        latency: one-way latency bounds in seconds, drawn on the way in and again
            on the way out.
        retries: the retrying peers' retries after the first try.
        seed: seeds the server's latency draws, the peers' jitter and id shuffles.
    """

    window: float = 2.0
    total: int = 60
    per_schedule: int = 10
    guard: float = 0.05
    latency: tuple[float, float] = (0.0025, 0.010)
    retries: int = 5
    seed: int = 0

    def setup(self) -> Setup:
        """What the contestants are told: limits, guard, and a W-scaled backoff."""
        return Setup(
            total=self.total,
            per_schedule=self.per_schedule,
            window=self.window,
            guard=self.guard,
            backoff=BackoffPolicy(
                retries=self.retries, initial=self.window / 8, cap=2 * self.window
            ),
            seed=self.seed,
        )


@attrs.frozen(kw_only=True)
class Scenario:
    """One workload against one kind of server.

    Attributes:
        name: a short key (``distinct``, ``fixed-0.5``...).
        title: what the table prints.
        calls: the scheduleIds, one per call, in the order they are submitted.
        model: how the server counts.
        phase: for fixed windows and the sliding counter: the first window
            boundary after the server's start, as a fraction of W.
        foreign_load: the share of N another client spends.
        warmup: seconds the server runs before the client starts (lets the
            foreign load reach its steady state).
        kind: ``makespan`` (judge the makespan), ``latency`` (a small batch),
            ``interactive`` (a bulk job with calls arriving beside it) or
            ``operations`` (every operation, :mod:`benchmarks.mixed`).
        repeat: runs per contestant, interleaved; the figures are of the median run
            (interactive waits: of all runs).
        trace: keep arrival times in the results, for the chart.
        interactive_gap: for ``interactive``: the mean gap in seconds between
            interactive calls (exponential, seeded); ``calls`` is the bulk job.
        contestants: keys of :data:`benchmarks.peers.CONTESTANTS`, or for
            ``interactive`` of :data:`benchmarks.interactive.MIXED_CONTESTANTS`,
            for ``operations`` of :data:`benchmarks.mixed.OPERATION_CONTESTANTS`.
    """

    name: str
    title: str
    calls: tuple[str, ...]
    contestants: tuple[str, ...]
    model: ModelName = "sliding-log"
    phase: float = 0.0
    foreign_load: float = 0.0
    warmup: float = 0.0
    kind: Literal["makespan", "latency", "interactive", "operations"] = "makespan"
    repeat: int = 1
    trace: bool = False
    interactive_gap: float = 0.0
    rate_limit_headers: HeaderStyle = "none"


@attrs.frozen(kw_only=True)
class RunResult:
    """The figures of one contestant in one scenario (see the module docstring).

    The ``interactive_*`` and ``bulk_*`` figures are for ``interactive`` scenarios
    only (:func:`benchmarks.interactive.measure_interactive`); ``interactive_waits``
    is sorted, and pooled over the repetitions.
    """

    scenario: str
    contestant: str
    label: str
    calls: int
    distinct_ids: int
    windows: int
    lower_bound: float
    guard_bound: float
    makespan: float
    ratio: float | None
    ratio_guard: float | None
    sends: int
    rate_limited: int
    rate_limited_share: float
    episodes_429: int
    last_429: float | None
    failed_calls: int
    failed_ids: int
    errors: dict[str, int]
    peak: int
    peak_per_id: int
    rtt_p50: float
    rtt_p99: float
    queue_delay: float
    foreign_sends: int = 0
    foreign_rate_limited: int = 0
    makespans: tuple[float, ...] = ()
    trace: dict[str, list[list[float]]] | None = None
    interactive_calls: int = 0
    interactive_failed: int = 0
    interactive_waits: tuple[float, ...] = ()
    bulk_makespan: float | None = None
    bulk_bound: float | None = None
    bulk_ratio: float | None = None
    bulk_ratios: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return attrs.asdict(self)


def bound_windows(calls: Iterable[str], *, total: int, per_schedule: int) -> int:
    """How many windows the lower bound spans: ``max(ceil(M/N), max_k ceil(m_k/K)) - 1``.

    Args:
        calls: one scheduleId per call.
        total: N (the remaining budget under foreign load).
        per_schedule: K.

    Returns:
        The number of full windows before the last send can happen (0 for one burst).
    """
    counts = Counter(calls)
    if not counts:
        return 0
    needed = max(
        math.ceil(sum(counts.values()) / total),
        *(math.ceil(m / per_schedule) for m in counts.values()),
    )
    return needed - 1


def _episodes(times: Sequence[float], gap: float) -> int:
    """Runs of 429s: a new episode starts after ``gap`` seconds without one."""
    episodes = 0
    previous = -math.inf
    for t in sorted(times):
        if t - previous > gap:
            episodes += 1
        previous = t
    return episodes


def _peak_per_id(arrivals: Sequence[Arrival], window: float) -> int:
    by_id: defaultdict[str | None, list[float]] = defaultdict(list)
    for arrival in arrivals:
        if arrival.schedule_id is not None:  # a start has none: the user level only
            by_id[arrival.schedule_id].append(arrival.time)
    return max((max_in_window(times, window) for times in by_id.values()), default=0)


def label(scenario: Scenario, contestant: str) -> str:
    """What the tables call ``contestant`` in ``scenario``."""
    if scenario.kind == "interactive":
        return MIXED_CONTESTANTS[contestant][0]
    if scenario.kind == "operations":
        return OPERATION_CONTESTANTS[contestant][0]
    return CONTESTANTS[contestant][0]


def measure(
    scenario: Scenario,
    contestant: str,
    sent: Sent,
    arrivals: Sequence[Arrival],
    config: BenchConfig,
) -> RunResult:
    """Turn what a contestant did and what the server saw into figures.

    Args:
        scenario: the scenario run.
        contestant: the contestant's key.
        sent: the contestant's attempts and call results.
        arrivals: every arrival the server recorded.
        config: the limits and network.

    Returns:
        The run's figures.
    """
    first = min(a.sent for a in sent.attempts)
    last = max(a.answered for a in sent.attempts)
    makespan = last - first
    mine = [a for a in arrivals if not a.foreign]
    limited = [a.time for a in mine if a.outcome is Outcome.RATE_LIMITED]
    foreign = [a for a in arrivals if a.foreign and first <= a.time <= last]
    remaining = config.total - round(scenario.foreign_load * config.total)
    windows = bound_windows(scenario.calls, total=remaining, per_schedule=config.per_schedule)
    rtts = [a.answered - a.sent for a in sent.attempts if a.status is not None]
    rtt = statistics.median(rtts) if rtts else 0.0
    lower_bound = windows * config.window
    guard_bound = windows * (config.window + config.guard + rtt) + rtt
    failed = [c for c in sent.calls if not c.ok]
    first_sends: dict[str, float] = {}
    for a in sent.attempts:
        first_sends[a.schedule_id] = min(a.sent, first_sends.get(a.schedule_id, math.inf))
    trace = None
    if scenario.trace:
        trace = {
            "arrivals": [
                [a.time - first, 1.0 if a.outcome is Outcome.RATE_LIMITED else 0.0] for a in mine
            ],
            "completions": sorted(
                [a.answered - first, 1.0] for a in sent.attempts if a.status == 200
            ),
        }
    return RunResult(
        scenario=scenario.name,
        contestant=contestant,
        label=label(scenario, contestant),
        calls=len(scenario.calls),
        distinct_ids=len(set(scenario.calls)),
        windows=windows,
        lower_bound=lower_bound,
        guard_bound=guard_bound,
        makespan=makespan,
        ratio=makespan / lower_bound if lower_bound else None,
        ratio_guard=makespan / guard_bound if windows else None,
        sends=len(mine),
        rate_limited=len(limited),
        rate_limited_share=len(limited) / len(mine) if mine else 0.0,
        episodes_429=_episodes(limited, config.window),
        last_429=max(limited) - first if limited else None,
        failed_calls=len(failed),
        failed_ids=len({c.schedule_id for c in failed}),
        errors=dict(Counter(c.error or "?" for c in failed)),
        peak=max_in_window((a.time for a in mine), config.window),
        peak_per_id=_peak_per_id(mine, config.window),
        rtt_p50=rtt,
        rtt_p99=quantile(rtts, 0.99),
        queue_delay=max(first_sends.values()) - sent.started,
        foreign_sends=len(foreign),
        foreign_rate_limited=sum(1 for a in foreign if a.outcome is Outcome.RATE_LIMITED),
        trace=trace,
    )


async def run_one(
    scenario: Scenario, contestant: str, config: BenchConfig, *, repetition: int = 0
) -> RunResult:
    """Run one contestant once against a fresh mock server.

    Args:
        scenario: the workload and server.
        contestant: a key of :data:`benchmarks.peers.CONTESTANTS`.
        config: the limits and network.
        repetition: which repetition this is (varies the latency draws).

    Returns:
        The run's figures.
    """
    server = MockScheduleServer(
        limits=ServerLimits(
            total=config.total,
            per_schedule=config.per_schedule,
            window=config.window,
            model=scenario.model,
            phase=scenario.phase * config.window,
        ),
        faults=Faults(
            request_latency=config.latency,
            response_latency=config.latency,
            seed=config.seed + repetition,
        ),
        unknown_ids="active",
        foreign_load=scenario.foreign_load,
        rate_limit_headers=scenario.rate_limit_headers,
    )
    async with server:
        if scenario.warmup:
            await asyncio.sleep(scenario.warmup)
        target = Target(
            base_url=server.base_url,
            api_key=DEFAULT_API_KEY,
            username=DEFAULT_USERNAME,
            password=DEFAULT_PASSWORD,
        )
        if scenario.kind == "interactive":
            # The same arrival times for every contestant of a repetition.
            gaps = arrival_gaps(scenario.interactive_gap, seed=config.seed + 1000 + repetition)
            run = MIXED_CONTESTANTS[contestant][1]
            sent = await run(target, scenario.calls, gaps, config.setup())
        elif scenario.kind == "operations":
            sent = await OPERATION_CONTESTANTS[contestant][1](
                target, scenario.calls, config.setup()
            )
        else:
            sent = await CONTESTANTS[contestant][1](target, scenario.calls, config.setup())
        arrivals = server.recorder.arrivals
    result = measure(scenario, contestant, sent, arrivals, config)
    if scenario.kind != "interactive":
        return result
    figures = measure_interactive(
        sent,
        arrivals,
        bulk=len(scenario.calls),
        rtt=result.rtt_p50,
        total=config.total,
        window=config.window,
        guard=config.guard,
    )
    return attrs.evolve(result, **figures)


def combine(runs: Sequence[RunResult]) -> RunResult:
    """One contestant's repetitions as one result: the median run by makespan.

    Counts (429s, failures) and the queue delay are the worst repetition's;
    ``makespans`` and ``bulk_ratios`` list all; the interactive waits are pooled.

    Args:
        runs: the repetitions of one contestant in one scenario, at least one.

    Returns:
        The median run's figures.
    """
    ordered = sorted(runs, key=lambda r: r.makespan)
    median = ordered[(len(ordered) - 1) // 2]
    return attrs.evolve(
        median,
        makespans=tuple(r.makespan for r in runs),
        rate_limited=max(r.rate_limited for r in runs),
        failed_calls=max(r.failed_calls for r in runs),
        failed_ids=max(r.failed_ids for r in runs),
        peak=max(r.peak for r in runs),
        queue_delay=max(r.queue_delay for r in runs),
        interactive_calls=sum(r.interactive_calls for r in runs),
        interactive_failed=sum(r.interactive_failed for r in runs),
        interactive_waits=tuple(sorted(w for r in runs for w in r.interactive_waits)),
        bulk_ratios=tuple(r.bulk_ratio for r in runs if r.bulk_ratio is not None),
    )


async def run_scenario(
    scenario: Scenario,
    contestant: str,
    config: BenchConfig,
) -> RunResult:
    """Run one contestant ``scenario.repeat`` times; report the median run (:func:`combine`).

    Args:
        scenario: the workload and server.
        contestant: a key of :data:`benchmarks.peers.CONTESTANTS`.
        config: the limits and network.

    Returns:
        The median run's figures.
    """
    return combine(
        [await run_one(scenario, contestant, config, repetition=i) for i in range(scenario.repeat)]
    )


def _ids(prefix: str, count: int) -> tuple[str, ...]:
    return tuple(f"{prefix}-{i:05d}" for i in range(count))


#: Every peer and schedcancel's two modes; adaptive off only where it matters.
_EVERYONE = ("naive", "naive-retry", "pacing", "retry", "sc-exact", "sc-smooth")
_ADAPTIVE = (*_EVERYONE, "sc-exact-fixed")
#: The quick set's contestants on server-model scenarios.
_QUICK = ("naive", "pacing", "sc-exact", "sc-smooth")
_QUICK_ADAPTIVE = (*_QUICK, "sc-exact-fixed")
#: Bulk + interactive: schedcancel with and without the reserve, and the aiolimiter designs.
_MIXED = ("sc-exact", "sc-exact-reserve-0", "shared-retry", "shared-pacing", "split-retry")
_QUICK_MIXED = ("sc-exact", "sc-exact-reserve-0", "shared-retry")


def interactive_scenario(
    config: BenchConfig, bulk: int, *, contestants: Sequence[str] = _MIXED, repeat: int = 3
) -> Scenario:
    """A bulk job of ``bulk`` distinct ids with interactive calls every W/2 on average.

    Args:
        config: the limits (the mean gap is half the window).
        bulk: M, the bulk job's distinct ids.
        contestants: keys of :data:`benchmarks.interactive.MIXED_CONTESTANTS`.
        repeat: runs per contestant, interleaved.

    Returns:
        The scenario ``bulk-interactive`` (480 ids at N = 60) or ``bulk-interactive-M``.
    """
    name = "bulk-interactive" if bulk == 8 * config.total else f"bulk-interactive-{bulk}"
    return Scenario(
        name=name,
        title=f"{bulk} bulk ids + a call every W/2 at random",
        calls=_ids("BK", bulk),
        contestants=tuple(contestants),
        kind="interactive",
        repeat=repeat,
        interactive_gap=config.window / 2,
    )


def operations_scenario(
    config: BenchConfig,
    *,
    ids: int | None = None,
    starts: int | None = None,
    contestants: Sequence[str] = tuple(OPERATION_CONTESTANTS),
    repeat: int = 3,
) -> Scenario:
    """Mixed operations: per id get, pause, continue, update, cancel, plus starts.

    Args:
        config: the limits (default N ids and N/3 starts: 5N + N/3 calls).
        ids: the ids taken through the five calls.
        starts: the starts beside them.
        contestants: keys of :data:`benchmarks.mixed.OPERATION_CONTESTANTS`.
        repeat: runs per contestant, interleaved.

    Returns:
        The scenario ``operations``.
    """
    ids = config.total if ids is None else ids
    starts = config.total // 3 if starts is None else starts
    return Scenario(
        name="operations",
        title=f"{ids} ids x 5 operations + {starts} starts",
        calls=mixed_calls(ids, starts),
        contestants=tuple(contestants),
        kind="operations",
        repeat=repeat,
    )


#: The server cases of the header scenarios (issue 23): model, phase, foreign load.
_HEADER_CASES: dict[str, tuple[ModelName, float, float]] = {
    "counter": ("sliding-counter", 0.5, 0.0),
    "foreign": ("sliding-log", 0.0, 0.2),
    "both": ("sliding-counter", 0.5, 0.2),
}
_HEADER_STYLES: tuple[HeaderStyle, ...] = ("none", "x-429", "x-all", "draft-11")


def header_scenarios(config: BenchConfig) -> list[Scenario]:
    """Each header style of the mock server x (counter, 20 % foreign load, both), 10 N ids.

    Named ``headers-STYLE-CASE`` (``headers-x-all-both``...); ``sc-exact`` (the
    defaults) and ``sc-exact-probe`` (``RateLimits(probe=True)``) run each.
    """
    return [
        Scenario(
            name=f"headers-{style}-{case}",
            title=f"{10 * config.total} ids, {case}, headers {style}",
            calls=_ids("HD", 10 * config.total),
            contestants=("sc-exact", "sc-exact-probe"),
            model=model,
            phase=phase,
            foreign_load=foreign,
            warmup=config.window if foreign else 0.0,
            rate_limit_headers=style,
        )
        for style in _HEADER_STYLES
        for case, (model, phase, foreign) in _HEADER_CASES.items()
    ]


def scenarios(config: BenchConfig, *, quick: bool = False) -> list[Scenario]:
    """The benchmark set: the full one, or a reduced one that runs in under 3 minutes.

    Args:
        config: the limits (ids per scenario scale with N).
        quick: the reduced set (fewer calls, fewer phases, fewer peers per model).

    Returns:
        The scenarios, in the order they run.
    """
    n = config.total
    big = 2 * n if quick else 10 * n
    models = _QUICK if quick else _EVERYONE
    adaptive = _QUICK_ADAPTIVE if quick else _ADAPTIVE
    mixed_total = 100 if quick else 200
    hot = ("HOT",) * 30
    mixed = list(hot + _ids("MX", mixed_total - len(hot)))
    random.Random(config.seed).shuffle(mixed)
    phases = (0.5,) if quick else (0.1, 0.5, 0.9)
    found: list[Scenario] = [
        Scenario(
            name="distinct",
            title=f"{big} distinct ids, sliding log",
            calls=_ids("SC", big),
            contestants=_EVERYONE,
            trace=True,
        ),
        Scenario(
            name="small-batch",
            title="50 ids, one batch (latency)",
            calls=_ids("SB", 50),
            contestants=_EVERYONE,
            kind="latency",
            repeat=3 if quick else 5,
        ),
        Scenario(
            name="mixed",
            title=f"{mixed_total} calls, 30 on one id, sliding log",
            calls=tuple(mixed),
            contestants=models,
        ),
    ]
    found += [
        Scenario(
            name=f"fixed-{phase:g}",
            title=f"{big} ids, fixed windows, boundary at {phase:g} W",
            calls=_ids("FX", big),
            contestants=models,
            model="fixed-window",
            phase=phase,
        )
        for phase in phases
    ]
    found += [
        Scenario(
            name="token-bucket",
            title=f"{big} ids, token bucket",
            calls=_ids("TB", big),
            contestants=models,
            model="token-bucket",
        ),
        Scenario(
            name="sliding-counter",
            title=f"{big} ids, sliding-window counter",
            calls=_ids("CT", big),
            contestants=adaptive,
            model="sliding-counter",
            phase=0.5,
        ),
        Scenario(
            name="foreign-20",
            title=f"{big} ids, 20 % foreign load, sliding log",
            calls=_ids("FL", big),
            contestants=adaptive,
            foreign_load=0.2,
            warmup=config.window,
        ),
    ]
    if not quick:
        found += header_scenarios(config)
    if quick:  # 160 calls, three windows
        found.append(operations_scenario(config, ids=n // 2, starts=n // 6, repeat=1))
    else:
        found.append(operations_scenario(config))
    if quick:
        found.append(interactive_scenario(config, 4 * n, contestants=_QUICK_MIXED, repeat=1))
    else:
        found += [interactive_scenario(config, 8 * n), interactive_scenario(config, 20 * n)]
    return found


async def run_suite(
    chosen: Sequence[Scenario],
    config: BenchConfig,
    *,
    progress: Callable[[str], None] | None = None,
) -> list[RunResult]:
    """Run every contestant of every scenario; a scenario's repetitions interleaved.

    Round r of a scenario runs each of its contestants once, in order, before
    round r + 1 starts.

    Args:
        chosen: the scenarios.
        config: the limits and network.
        progress: called with one line per finished run.

    Returns:
        The results (one per scenario and contestant, :func:`combine`), in run order.
    """
    results: list[RunResult] = []
    todo = sum(len(s.contestants) * s.repeat for s in chosen)
    done = 0
    for scenario in chosen:
        runs: dict[str, list[RunResult]] = {c: [] for c in scenario.contestants}
        for repetition in range(scenario.repeat):
            for contestant in scenario.contestants:
                run = await run_one(scenario, contestant, config, repetition=repetition)
                runs[contestant].append(run)
                done += 1
                if progress is not None:
                    progress(f"[{done}/{todo}] {scenario.name:<16} #{repetition} {_summary(run)}")
        results += [combine(runs[c]) for c in scenario.contestants]
    return results


def _summary(result: RunResult) -> str:
    ratio = "" if result.ratio is None else f" ratio {result.ratio:.3f}"
    ratio_g = "" if result.ratio_guard is None else f" ratio_g {result.ratio_guard:.3f}"
    text = (
        f"{result.contestant:<15} makespan {result.makespan:7.3f} s{ratio}{ratio_g} "
        f"429s {result.rate_limited:4d} failed ids {result.failed_ids:4d} peak {result.peak}"
    )
    if result.interactive_calls:
        text += " " + interactive_summary(result)
    return text


def interactive_summary(result: RunResult) -> str:
    """The waits and the bulk ratio of a bulk + interactive run, on one line."""
    waits = result.interactive_waits
    shown = ", ".join(
        f"{name} {quantile(waits, q) * 1e3:.0f}"
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
    )
    bulk = "-" if result.bulk_ratio is None else f"{result.bulk_ratio:.3f}"
    return (
        f"interactive {result.interactive_calls} (failed {result.interactive_failed}) "
        f"wait ms {shown}; bulk {result.bulk_makespan:.2f} s, ratio {bulk}"
    )


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """Where and when the figures were taken: date, CPUs, Python, load."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "aiohttp": aiohttp.__version__,
        "load_average": [round(x, 2) for x in load],
    }


def make_report(
    chosen: Sequence[Scenario],
    results: Sequence[RunResult],
    config: BenchConfig,
    *,
    meta: Mapping[str, Any],
    overhead: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything one run measured, as JSON-ready data, goals judged.

    Args:
        chosen: the scenarios run.
        results: their results.
        config: the limits and network.
        meta: :func:`machine_info` and the command, taken at the start.
        overhead: :func:`benchmarks.overhead.measure_overhead`'s figures, if measured.

    Returns:
        ``meta``, ``config``, ``scenarios``, ``runs``, ``overhead`` and ``goals``.
    """
    report: dict[str, Any] = {
        "meta": dict(meta),
        "config": attrs.asdict(config),
        "scenarios": [
            {
                "name": s.name,
                "title": s.title,
                "kind": s.kind,
                "model": s.model,
                "phase": s.phase,
                "foreign_load": s.foreign_load,
                "calls": len(s.calls),
                "distinct_ids": len(set(s.calls)),
                "repeat": s.repeat,
                "contestants": list(s.contestants),
            }
            for s in chosen
        ],
        "runs": [r.to_dict() for r in results],
        "overhead": dict(overhead) if overhead is not None else None,
    }
    report["goals"] = goals(report)
    return report
