"""Background jobs end to end (issue 24): a small job is one burst, a long one meets no 429 on
any server model, on looptime's virtual clock against the mock server.

The policy itself (``_background``) is table-tested in ``test_background.py``; the
interactive lane beside a job at the real limits in ``test_interactive.py``.
"""

from __future__ import annotations

import pytest
from schedcancel import RateLimits
from schedcancel.testing import Faults, MockScheduleServer, ModelName, ServerLimits

W, N, K, GUARD = 2.0, 60, 10, 0.05
LATENCY = (0.0025, 0.01)  # each way: the benchmarks' set-up


def _server(model: ModelName = "sliding-log", phase: float = 0.0) -> MockScheduleServer:
    faults = Faults(request_latency=LATENCY, response_latency=LATENCY, seed=3)
    limits = ServerLimits(total=N, per_schedule=K, window=W, model=model, phase=phase * W)
    return MockScheduleServer(limits=limits, faults=faults, unknown_ids="active")


async def _job(server: MockScheduleServer, count: int) -> list[float]:
    """``cancel_many`` at its default (background) priority; the arrival times."""
    limits = RateLimits(total=N, per_schedule=K, window=W, guard=GUARD)
    async with server.client(limits=limits) as client:
        outcomes = [o async for o in client.cancel_many(f"B-{i:04d}" for i in range(count))]
    assert all(o.ok for o in outcomes)
    return sorted(a.time for a in server.recorder.select(foreign=False))


@pytest.mark.looptime
async def test_a_small_job_alone_is_one_burst() -> None:
    """20 ids with nothing else on the budget go at once: done within a round trip or two
    (at most 0.2 s at W = 2 s; before issue 24, 19 intervals: 0.66 s)."""
    async with _server() as server:
        arrivals = await _job(server, 20)
        assert arrivals[-1] - arrivals[0] <= 2 * LATENCY[1]
        assert arrivals[-1] + LATENCY[1] - arrivals[0] <= 0.2
        assert server.recorder.count_rate_limited() == 0


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("model", "phase"),
    [
        ("sliding-log", 0.0),
        ("fixed-window", 0.1),
        ("fixed-window", 0.5),
        ("fixed-window", 0.9),
        ("token-bucket", 0.0),
        ("sliding-counter", 0.1),
        ("sliding-counter", 0.5),
        ("sliding-counter", 0.9),
    ],
)
async def test_a_long_job_meets_no_429_on_any_server_model(model: ModelName, phase: float) -> None:
    """300 ids: a burst into the first window, then one per interval: no 429 on any model,
    the weighted sliding-window counter at any phase included, and never slower than
    pacing from the first call (299 intervals)."""
    async with _server(model, phase) as server:
        arrivals = await _job(server, 300)
        assert server.recorder.count_rate_limited() == 0
        assert server.recorder.max_arrivals_in_window(W) <= N - 1
        # A place is free a hold and a round trip after it was taken: one per
        # (W + guard + RTT) / (N - 1) at most, as pacing from the first call went.
        paced = 299 * (W + GUARD + 2 * LATENCY[1]) / (N - 1)
        assert arrivals[-1] - arrivals[0] <= paced
