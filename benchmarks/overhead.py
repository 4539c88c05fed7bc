"""Overhead: ``ScheduleClient.cancel`` with limits out of reach against a raw aiohttp POST loop.

Both send to one mock server running in a separate process (so the server's
CPU is not charged to either loop), with the same number of concurrent
workers, in interleaved segments (raw, client, client, raw, ...) so machine
noise hits both alike. Each segment reports requests per second (wall clock)
and this process's CPU microseconds per request: req/s is what a user sees,
CPU per request is the client's own cost, which decides req/s once the client
(not the server) is the bottleneck.

The raw loop is the least a user can write: ``session.post(url, json={},
headers=auth)`` and ``await response.read()``, no parsing. The client does
everything it always does: validate, build, acquire a permit, send, release,
parse into a ``ScheduleResult``.

``--breakdown`` adds loops that stop part of the way (build only, build and
parse, the client with a no-op limiter), so each stage's cost is the
difference of two neighbours; ``--profile`` runs every segment under cProfile.

``--instrumentation`` adds the client with its instrumentation off
(``hooks=()``), with the logging hook logging every event (DEBUG, formatted,
then dropped), and with the OpenTelemetry hook on the SDK (a span per call to
an in-memory exporter, metrics to an in-memory reader); ``client`` is the
default (the logging hook installed, its logger not enabled for DEBUG).

    .venv/bin/python -m benchmarks.overhead [--rounds 7] [--requests 1500] [--breakdown]
        [--instrumentation] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import os
import pstats
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from schedcancel import LimiterStats, Permit, RateLimits, ScheduleClient
from schedcancel._client.transport import AiohttpTransport
from schedcancel._protocol.validate import validate_schedule_id
from schedcancel._protocol.wire import Operation, RequestBuilder, parse_response
from schedcancel.hooks import CallEvent, Finished, Hook, LoggingHook
from schedcancel.testing import DEFAULT_API_KEY, DEFAULT_PASSWORD, DEFAULT_USERNAME

from .peers import basic_auth

__all__ = ["measure_loops", "measure_overhead", "serve_in_process"]

_REPO = Path(__file__).resolve().parent.parent
# Out of reach: the limiter runs its whole path but never makes anyone wait.
_HUGE = 1_000_000_000
_LIMITS = RateLimits(total=_HUGE, per_schedule=_HUGE, window=2.0, guard=0.05)

Send = Callable[[str], Awaitable[None]]


@asynccontextmanager
async def serve_in_process() -> AsyncIterator[str]:
    """Run the mock server (no limits in reach, any id exists) as a child process.

    Yields:
        Its base URL.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO), env.get("PYTHONPATH")]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schedcancel.testing",
        "--accept-any-id",
        "--total",
        str(_HUGE),
        "--per-schedule",
        str(_HUGE),
        "--window",
        "2",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=_REPO,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        if not line:
            raise RuntimeError("the mock server process exited before printing its URL")
        yield line.decode().strip()
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def _segment(concurrency: int, ids: list[str], send: Send) -> tuple[float, float]:
    """Send every id with ``concurrency`` workers; return (req/s, CPU µs per request)."""
    shared: Iterator[str] = iter(ids)

    async def worker() -> None:
        for schedule_id in shared:  # one shared iterator: each id is sent once
            await send(schedule_id)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return len(ids) / wall, cpu / len(ids) * 1e6


async def measure_loops(
    loops: dict[str, Send],
    *,
    rounds: int,
    requests: int,
    concurrency: int,
    profile: dict[str, list[cProfile.Profile]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run each loop ``rounds`` times, interleaved, forwards and backwards in turn.

    Args:
        loops: name to a function that sends one request for an id.
        rounds: segments per loop.
        requests: requests per segment (ids are fresh in every segment).
        concurrency: workers per segment.
        profile: when given, every segment runs under cProfile, and its
            profiler is appended to ``profile[name]``.
        progress: called with one line per round.

    Returns:
        Per loop: ``rps`` and ``cpu_us`` per segment, their medians and spreads.
    """
    names = list(loops)
    for name in names:  # warm: connections open, first-call caches filled
        await _segment(
            concurrency, [f"warm-{names.index(name)}-{i}" for i in range(200)], loops[name]
        )
    figures: dict[str, dict[str, list[float]]] = {n: {"rps": [], "cpu_us": []} for n in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            ids = [f"seg-{names.index(name)}-{r}-{i}" for i in range(requests)]
            profiler = cProfile.Profile() if profile is not None else None
            if profiler is not None:
                profiler.enable()
            rps, cpu = await _segment(concurrency, ids, loops[name])
            if profiler is not None:
                profiler.disable()
                assert profile is not None
                profile.setdefault(name, []).append(profiler)
            figures[name]["rps"].append(rps)
            figures[name]["cpu_us"].append(cpu)
        if progress is not None:
            shown = ", ".join(f"{n} {figures[n]['rps'][-1]:.0f} req/s" for n in names)
            progress(f"overhead round {r + 1}/{rounds}: {shown}")
    return {
        name: {
            "rps": f["rps"],
            "cpu_us": f["cpu_us"],
            "rps_median": statistics.median(f["rps"]),
            "rps_spread": [min(f["rps"]), max(f["rps"])],
            "cpu_us_median": statistics.median(f["cpu_us"]),
            "cpu_us_spread": [min(f["cpu_us"]), max(f["cpu_us"])],
        }
        for name, f in figures.items()
    }


class _FreeLimiter:
    """A limiter that admits everything at once: the client's cost without the limiter's."""

    limits = _LIMITS

    # Keyword arguments are accepted and ignored: this limiter never waits or learns.
    async def acquire(self, schedule_id: str | None, **_: object) -> Permit:
        return Permit(schedule_id=schedule_id, acquired_at=0.0, handle=None)

    async def release(self, permit: Permit, **_: object) -> None:
        del permit

    async def estimate(self, schedule_id: str | None = None) -> float:
        del schedule_id
        return 0.0

    def stats(self) -> LimiterStats:
        return LimiterStats(
            queued=0, in_flight=0, total_used=0, total_limit=_HUGE, schedule_ids=0, next_free=0.0
        )

    async def aclose(self) -> None:
        return None


async def measure_overhead(
    *,
    rounds: int = 7,
    requests: int = 1500,
    concurrency: int = 16,
    breakdown: bool = False,
    instrumentation: bool = False,
    profile: dict[str, list[cProfile.Profile]] | None = None,
    base_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure the raw loop and the client (and, with ``breakdown``, the stages between).

    Args:
        rounds: segments per loop, interleaved.
        requests: requests per segment.
        concurrency: workers per segment, for every loop.
        breakdown: add the intermediate loops.
        instrumentation: add the client with hooks off, logging, and OpenTelemetry.
        profile: see :func:`measure_loops`.
        base_url: an already running server to use instead of starting one.
        progress: called with one line per round.

    Returns:
        ``loops`` (per-loop figures), the medians of raw and client, and
        ``ratio`` (client req/s over raw req/s, medians) and ``cpu_ratio``.
    """
    async with AsyncExitStack() as stack:
        url = base_url or await stack.enter_async_context(serve_in_process())
        auth = {"Authorization": basic_auth(DEFAULT_USERNAME, DEFAULT_PASSWORD)}
        session = aiohttp.ClientSession()
        stack.push_async_callback(session.close)
        credentials: dict[str, Any] = {
            "username": DEFAULT_USERNAME,
            "password": DEFAULT_PASSWORD,
            "base_url": url,
        }
        client = ScheduleClient(DEFAULT_API_KEY, limits=_LIMITS, **credentials)
        stack.push_async_callback(client.aclose)
        prefix = f"{url}/schedule/{DEFAULT_API_KEY}/"

        async def raw(schedule_id: str) -> None:
            async with session.post(f"{prefix}{schedule_id}/cancel", json={}, headers=auth) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"raw POST answered {r.status}")

        async def cancel(schedule_id: str) -> None:
            result = await client.cancel(schedule_id)
            if not result.success:
                raise RuntimeError(f"cancel answered {result.error_code}")

        loops: dict[str, Send] = {"raw": raw}
        if breakdown:
            transport = AiohttpTransport()
            stack.push_async_callback(transport.aclose)
            free = ScheduleClient(DEFAULT_API_KEY, limiter=_FreeLimiter(), **credentials)
            stack.push_async_callback(free.aclose)

            builder = RequestBuilder(api_key=DEFAULT_API_KEY, shared_secret=None, **credentials)

            def build(schedule_id: str) -> Any:
                # As the client does: check the id, then build with the apiKey's builder.
                sid = validate_schedule_id(schedule_id)
                return builder.build(Operation.CANCEL, sid, date=datetime.now(UTC))

            async def build_send(schedule_id: str) -> None:
                await transport.send(build(schedule_id), 30.0)

            async def build_send_parse(schedule_id: str) -> None:
                response = await transport.send(build(schedule_id), 30.0)
                parse_response(*response, now=datetime.now(UTC), operation=Operation.CANCEL)

            async def free_cancel(schedule_id: str) -> None:
                await free.cancel(schedule_id)

            loops |= {
                "build+send": build_send,
                "build+send+parse": build_send_parse,
                "client, no-op limiter": free_cancel,
            }
        loops["client"] = cancel
        if instrumentation:
            for name, hooks in _instrumented(stack).items():
                loops[name] = _cancel_loop(
                    ScheduleClient(DEFAULT_API_KEY, limits=_LIMITS, hooks=hooks, **credentials),
                    stack,
                )
        figures = await measure_loops(
            loops,
            rounds=rounds,
            requests=requests,
            concurrency=concurrency,
            profile=profile,
            progress=progress,
        )
    raw_f, client_f = figures["raw"], figures["client"]
    return {
        "server": "mock server in a child process, no latency, limits out of reach",
        "concurrency": concurrency,
        "requests_per_segment": requests,
        "rounds": rounds,
        "loops": figures,
        "raw_rps_median": raw_f["rps_median"],
        "client_rps_median": client_f["rps_median"],
        "raw_rps_spread": raw_f["rps_spread"],
        "client_rps_spread": client_f["rps_spread"],
        "raw_cpu_us_median": raw_f["cpu_us_median"],
        "client_cpu_us_median": client_f["cpu_us_median"],
        "ratio": client_f["rps_median"] / raw_f["rps_median"],
        "paired_ratios": [c / r for c, r in zip(client_f["rps"], raw_f["rps"], strict=True)],
        "cpu_ratio": client_f["cpu_us_median"] / raw_f["cpu_us_median"],
    }


def _cancel_loop(client: ScheduleClient, stack: AsyncExitStack) -> Send:
    """A loop that cancels through ``client`` (closed with ``stack``)."""
    stack.push_async_callback(client.aclose)

    async def cancel(schedule_id: str) -> None:
        result = await client.cancel(schedule_id)
        if not result.success:
            raise RuntimeError(f"cancel answered {result.error_code}")

    return cancel


class _Discard(logging.Handler):
    """Formats every record (the work a real handler does first), then drops it."""

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


def _instrumented(stack: AsyncExitStack) -> dict[str, Sequence[Hook]]:
    """The instrumented clients' hooks: off, logging every event, OpenTelemetry's SDK."""
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415 - dev extra
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: PLC0415
    from opentelemetry.sdk.trace import TracerProvider  # noqa: PLC0415
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: PLC0415
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: PLC0415
        InMemorySpanExporter,
    )
    from schedcancel.otel import OpenTelemetryHook  # noqa: PLC0415 - needs the otel extra

    logger = logging.getLogger("benchmarks.overhead.calls")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = _Discard()
    logger.addHandler(handler)
    stack.callback(logger.removeHandler, handler)
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    stack.callback(meter_provider.shutdown)
    stack.callback(tracer_provider.shutdown)
    otel = OpenTelemetryHook(tracer_provider=tracer_provider, meter_provider=meter_provider)

    def forget_spans(event: CallEvent, /) -> None:
        # The exporter keeps every span; a segment's worth is plenty.
        if isinstance(event, Finished) and event.call_id % 1000 == 0:
            exporter.clear()

    return {
        "client, hooks off": (),
        "client, logging hook": (LoggingHook(logger),),
        "client, OTel hook": (otel, forget_spans),
    }


def _print_profile(stats: pstats.Stats, limit: int) -> None:
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats(key).print_stats(limit)
        print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.overhead``: print the figures (and a profile)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.overhead",
        description="ScheduleClient.cancel against a raw aiohttp POST loop.",
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--breakdown", action="store_true", help="add the stages in between")
    parser.add_argument(
        "--instrumentation",
        action="store_true",
        help="add the client with hooks off, logging every event, and OpenTelemetry (#14)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile every segment")
    parser.add_argument("--top", type=int, default=30, help="profile rows to print")
    args = parser.parse_args(argv)
    profile: dict[str, list[cProfile.Profile]] | None = {} if args.profile else None
    figures = asyncio.run(
        measure_overhead(
            rounds=args.rounds,
            requests=args.requests,
            concurrency=args.concurrency,
            breakdown=args.breakdown,
            instrumentation=args.instrumentation,
            profile=profile,
            progress=lambda line: print(line, file=sys.stderr),
        )
    )
    print("| loop | req/s median | req/s min-max | CPU µs/request median | min-max |")
    print("|---|--:|--:|--:|--:|")
    for name, f in figures["loops"].items():
        low, high = f["rps_spread"]
        cpu_low, cpu_high = f["cpu_us_spread"]
        print(
            f"| {name} | {f['rps_median']:.0f} | {low:.0f}-{high:.0f} "
            f"| {f['cpu_us_median']:.0f} | {cpu_low:.0f}-{cpu_high:.0f} |"
        )
    print(f"\nclient / raw: {figures['ratio']:.2f} x req/s, {figures['cpu_ratio']:.2f} x CPU")
    off = figures["loops"].get("client, hooks off")
    if off is not None:
        print("\n| against hooks off | req/s | CPU µs/request |\n|---|--:|--:|")
        for name, f in figures["loops"].items():
            if name.startswith("client"):
                rps = f["rps_median"] / off["rps_median"]
                cpu = f["cpu_us_median"] / off["cpu_us_median"]
                print(f"| {name} | {rps:.3f} x | {cpu:.3f} x |")
    for name, profilers in (profile or {}).items():
        print(f"==== profile of the {name} segments ====")
        _print_profile(pstats.Stats(*profilers), args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
