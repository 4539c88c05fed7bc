"""``schedcancel demo``: the real cancel path against an in-process mock server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs

from .._bulk.journal import OutcomeKind
from .._protocol.models import RateLimits
from ._common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, PROG, _Streams
from ._report import print_summary, summary_json
from ._run import run_bulk
from ._settings import RunSettings

DEMO_API_KEY = "demo-connector"
DEMO_USERNAME = "demo-user"


def _lower_bound(requests: int, limits: RateLimits) -> float:
    """The earliest the last of ``requests`` distinct-id requests can be sent, by the limits."""
    return ((requests - 1) // limits.total) * limits.window if requests else 0.0


def _demo_verdict(*, interrupted: bool, ok: bool) -> int:
    """Return the demo's exit code.

    The verdict is whether the job went as seeded (its unknown ids fail on
    purpose), not the cancel command's own verdict on those ids.
    """
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if ok else EXIT_FAILED


async def _demo(args: argparse.Namespace, streams: _Streams) -> int:
    from ..testing import MockScheduleServer, ServerLimits  # noqa: PLC0415 - only the demo serves

    count = args.schedules
    already = count // 10
    unknown = count // 10
    active = count - already - unknown
    rng = random.Random(args.seed)  # noqa: S311 - shuffling demo data, not cryptography
    active_ids = [f"DEMO-{i:05d}" for i in range(active)]
    cancelled_ids = [f"DEMO-{i:05d}" for i in range(active, active + already)]
    unknown_ids = [f"GONE-{i:05d}" for i in range(unknown)]
    ids = active_ids + cancelled_ids + unknown_ids
    rng.shuffle(ids)
    password = secrets.token_urlsafe(16)
    server = MockScheduleServer(
        users={DEMO_USERNAME: password},
        connectors={DEMO_API_KEY: None},
        limits=ServerLimits(total=args.total, per_schedule=10, window=args.window),
    )
    limits = RateLimits(total=args.total, per_schedule=10, window=args.window, guard=args.guard)
    stderr = streams.stderr
    async with server:
        server.seed(active_ids)
        server.seed(cancelled_ids, "CANCELLED")
        stderr.write(
            f"{PROG} demo: a mock server at {server.base_url} allows {limits.total} requests per "
            f"{limits.window:g} s window; cancelling {count} schedules ({active} active, "
            f"{already} already cancelled, {unknown} unknown)\n"
        )
        with contextlib.ExitStack() as stack:
            journal = args.journal
            if journal is None:
                journal = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "demo.jsonl"
            settings = RunSettings(
                api_key=DEMO_API_KEY,
                username=DEMO_USERNAME,
                password=password,
                base_url=server.base_url,
                limits=limits,
                journal=journal,
                # The default priority: a background job, as users' jobs run.
                show_progress=not args.no_progress,
                progress_interval=2.0,
                json_output=args.json,
                quiet=not args.json,
                metrics_port=args.metrics_port,
            )
            report = await run_bulk(
                settings, ids, total=len(ids), stdout=streams.stdout, stderr=stderr
            )
            if args.journal is None:
                settings = attrs.evolve(settings, journal=None)
        arrivals = [a for a in server.recorder.arrivals if not a.foreign]
    print_summary(report, settings, stderr, show_exit=False)
    rejected = sum(1 for a in arrivals if a.status == 429)
    sent = len(arrivals)
    makespan = arrivals[-1].time - arrivals[0].time if arrivals else 0.0
    bound = _lower_bound(sent, limits)
    ratio = f", ratio {makespan / bound:.3f}" if bound else ""
    stderr.write(
        f"\n{PROG} demo: {sent} requests, {rejected} x 429; makespan (first to last request) "
        f"{makespan:.2f} s; lower bound floor((M-1)/N)*W = floor({sent - 1}/{limits.total})*"
        f"{limits.window:g} = {bound:.2f} s{ratio}\n"
    )
    interval = (limits.window + limits.guard) / (limits.total - 1)
    stderr.write(
        f"{PROG} demo: a background job (priority -1, as bulk jobs run): it bursts into its "
        f"first window, then sends one per (W + guard) / (N - 1) = {interval:.3f} s, so that "
        "interactive calls on the same budget never wait more than about that\n"
    )
    progress = report.progress
    expected = {
        OutcomeKind.CANCELLED: active,
        OutcomeKind.ALREADY_CANCELLED: already,
        OutcomeKind.FAILED: unknown,
    }
    as_expected = progress is not None and all(
        progress.counts.get(kind, 0) == number for kind, number in expected.items()
    )
    code = _demo_verdict(interrupted=report.interrupted, ok=as_expected and not rejected)
    if args.json:
        summary = summary_json(report, settings)
        summary["exit_code"] = code
        summary["demo"] = {
            "requests": sent,
            "rate_limited": rejected,
            "makespan": round(makespan, 3),
            "lower_bound": bound,
            "as_expected": as_expected,
        }
        streams.stdout.write(json.dumps({"summary": summary}) + "\n")
    if code == EXIT_FAILED:
        stderr.write(f"{PROG} demo: unexpected outcome (see above)\n")
    elif code == EXIT_OK:
        stderr.write(f"{PROG} demo: all as expected: 0 x 429\n")
    return code


def _cmd_demo(args: argparse.Namespace, streams: _Streams, environ: Mapping[str, str]) -> int:
    del environ  # the demo uses its own credentials
    return asyncio.run(_demo(args, streams))
