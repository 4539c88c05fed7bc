"""The server's own word, end to end: each header style of the mock server against the client.

Scale as ``tests/test_e2e.py``: N = 60, K = 10, W = 1 s (guard 0.05 s), 600 distinct
ids gathered at the default priority, 1-20 ms of latency each way, on looptime's
virtual clock. The goals (docs/rate-limits.md, "The server's own word"): with
headers on every answer, at most 1 % of requests meet a 429 in every case; with
none or 429-only headers, at most 10 x 429 on the counter model and at most 5 %
with foreign load; a server that allows 40 while the client is configured for 60
and says so costs at most 5 x 429 (on every answer) or one episode (429s only).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from schedcancel import RateLimiter, RateLimits
from schedcancel.testing import MockScheduleServer, ModelName, Outcome

from schedcancel.testing import ServerLimits

from test_e2e import IDS, K, M, N, W, cancel_all, client_limits, episodes, jitter

CASES = [
    ("sliding-counter", 0.0),
    ("sliding-log", 0.2),
    ("sliding-counter", 0.2),
]


async def _run(
    style: str, model: ModelName, foreign: float, *, total: int = N, **limits: Any
) -> tuple[int, int, list[float]]:
    """One 600-id job: (our 429s, our sends, the 429s' times)."""
    server = MockScheduleServer(
        limits=ServerLimits(total=total, per_schedule=K, window=W, model=model, phase=0.5),
        faults=jitter(),
        foreign_load=foreign,
        rate_limit_headers=style,  # type: ignore[arg-type]
    )
    async with server:
        if foreign:
            await asyncio.sleep(W)
        server.seed(IDS)
        results = await cancel_all(server, limits=client_limits(**limits))
    assert [r.is_cancelled for r in results] == [True] * M
    ours = server.recorder.select(foreign=False)
    limited = [a.time for a in ours if a.outcome is Outcome.RATE_LIMITED]
    return len(limited), len(ours), limited


@pytest.mark.looptime
@pytest.mark.parametrize("style", ["none", "x-429", "x-all", "draft-11"])
@pytest.mark.parametrize(("model", "foreign"), CASES)
@pytest.mark.parametrize("probe", [False, True])
async def test_matrix(style: str, model: ModelName, foreign: float, probe: bool) -> None:
    limited, sends, times = await _run(style, model, foreign, probe=probe)
    print(
        f"\nMATRIX {style} {model} {foreign} probe={probe}: {limited} x 429 of {sends} ({limited / sends:.1%}), episodes {episodes(times, W)}"
    )


@pytest.mark.looptime
@pytest.mark.parametrize("style", ["none", "x-429", "x-all", "draft-11"])
@pytest.mark.parametrize("probe", [False, True])
async def test_forty(style: str, probe: bool) -> None:
    limited, sends, times = await _run(style, "sliding-log", 0.0, total=40, probe=probe)
    print(
        f"\nFORTY {style} probe={probe}: {limited} x 429 of {sends}, episodes {episodes(times, W)}"
    )
