"""End to end: ScheduleClient and its limiter against the mock server on 127.0.0.1.

Scale: N = 60 per API user, K = 10 per scheduleId, a 1 s window (guard 0.05 s),
M = 600 distinct ids, so a bulk job spans ten windows, as 600 ids do against the
real 60 per 60 s. The matrix runs on looptime's virtual clock: real sockets and
real aiohttp on both sides, but the limiter's waits, the server's windows and the
injected network latency (1-20 ms each way, seeded) all run on the loop's clock,
so each 10 s job takes about a second of CPU and the outcome does not depend on
how busy the machine is. One test repeats the sliding-log case in real time.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import pytest
from schedcancel import (
    AuthenticationError,
    RateLimits,
    RetryPolicy,
    ScheduleResult,
    ScheduleStatus,
)
from schedcancel.testing import (
    DEFAULT_PASSWORD,
    Faults,
    MockScheduleServer,
    ModelName,
    Outcome,
    ServerLimits,
)

N, K, W = 60, 10, 1.0
M = 600
GUARD = 0.05
LATENCY = (0.001, 0.02)  # seconds, each way
IDS = [f"SC-{i:04d}" for i in range(M)]
# Sending M ids needs ceil(M / N) windows; each costs W plus the guard plus a round trip.
MAKESPAN_BOUND = (M // N - 1) * (W + GUARD + 2 * LATENCY[1]) + 0.01


def jitter(seed: int = 1, **faults: Any) -> Faults:
    """Network latency on both ways, seeded, plus any faults given."""
    return Faults(request_latency=LATENCY, response_latency=LATENCY, seed=seed, **faults)


def server_limits(model: ModelName = "sliding-log", **kwargs: Any) -> ServerLimits:
    """The server's limits at test scale."""
    return ServerLimits(total=N, per_schedule=K, window=W, model=model, **kwargs)


def client_limits(**kwargs: Any) -> RateLimits:
    """The client's limits at test scale."""
    return RateLimits(total=N, per_schedule=K, window=W, guard=GUARD, **kwargs)


async def cancel_all(
    server: MockScheduleServer, ids: Sequence[str] = IDS, **client_kwargs: Any
) -> list[ScheduleResult]:
    """Cancel every id concurrently through one client; return the results in order."""
    client_kwargs.setdefault("limits", client_limits())
    async with server.client(**client_kwargs) as client:
        return await asyncio.gather(*(client.cancel(i) for i in ids))


def episodes(times: Sequence[float], gap: float) -> int:
    """How many bursts the times form, a burst ending where the next time is over ``gap`` later."""
    ordered = sorted(times)
    return sum(1 for i, t in enumerate(ordered) if i == 0 or t - ordered[i - 1] > gap)


def test_episodes_splits_where_the_gap_is_wider_than_given() -> None:
    """The episode counter used below counts clusters of 429s separated by a quiet window."""
    assert episodes([], 1.0) == 0
    assert episodes([5.0, 5.1, 5.9], 1.0) == 1
    assert episodes([5.0, 5.1, 7.0, 7.5, 9.0], 1.0) == 3


def assert_clean_run(server: MockScheduleServer, results: Sequence[ScheduleResult]) -> None:
    """Every id cancelled by exactly one request, no 429, never more than N in any window."""
    assert [r.success for r in results] == [True] * M
    assert server.statuses == dict.fromkeys(IDS, ScheduleStatus.CANCELLED)
    recorder = server.recorder
    assert recorder.count_rate_limited() == 0
    assert recorder.max_arrivals_in_window(W) <= N
    assert max(recorder.sends_per_id().values()) == 1


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("model", "phase"),
    [
        ("sliding-log", 0.0),
        ("fixed-window", 0.0),
        ("fixed-window", 0.37),
        ("fixed-window", 0.81),
        ("token-bucket", 0.0),
    ],
)
async def test_600_ids_meet_no_429_on_log_fixed_and_bucket_servers(
    model: ModelName, phase: float
) -> None:
    """600 ids: 0 x 429, all CANCELLED, at most N arrivals per window, finished near the bound."""
    async with MockScheduleServer(
        limits=server_limits(model, phase=phase), faults=jitter()
    ) as server:
        server.seed(IDS)
        results = await cancel_all(server)
    assert_clean_run(server, results)
    first, last = server.recorder.first_arrival(), server.recorder.last_arrival()
    assert first is not None
    assert last is not None
    assert last - first <= MAKESPAN_BOUND


@pytest.mark.looptime
async def test_cancelling_the_same_ids_again_reports_already_cancelled() -> None:
    """A second pass over the same 600 ids gets 7070 for each: already_cancelled, no 429."""
    async with MockScheduleServer(limits=server_limits(), faults=jitter()) as server:
        server.seed(IDS)
        async with server.client(limits=client_limits()) as client:
            first = await asyncio.gather(*(client.cancel(i) for i in IDS))
            second = await asyncio.gather(*(client.cancel(i) for i in IDS))
    assert all(r.success for r in first)
    assert [r.already_cancelled for r in second] == [True] * M
    assert all(r.is_cancelled and not r.success for r in second)
    assert server.recorder.outcomes() == {Outcome.CANCELLED: M, Outcome.INVALID_STATUS: M}
    assert server.recorder.count_rate_limited() == 0
    assert server.recorder.max_arrivals_in_window(W) <= N


async def test_wrong_password_raises_authentication_error() -> None:
    """A password the server does not accept is an AuthenticationError that does not echo it."""
    async with (
        MockScheduleServer(unknown_ids="active") as server,
        server.client(password="not-the-password") as client,
    ):
        with pytest.raises(AuthenticationError) as caught:
            await client.cancel("SC-1")
    assert caught.value.http_status == 401
    assert "not-the-password" not in str(caught.value)
    assert server.statuses == {}


@pytest.mark.parametrize("client_secret", ["wrong-secret", None])
async def test_wrong_or_missing_signature_raises_authentication_error(
    client_secret: str | None,
) -> None:
    """A connector with signing on refuses a wrongly signed or unsigned cancel: 1004."""
    connectors: dict[str, str | None] = {"signed-connector": "right-secret"}
    async with (
        MockScheduleServer(connectors=connectors, unknown_ids="active") as server,
        server.client(shared_secret=client_secret) as client,
    ):
        with pytest.raises(AuthenticationError) as caught:
            await client.cancel("SC-1")
    assert (caught.value.http_status, caught.value.error_code) == (401, 1004)
    for secret in ("right-secret", "wrong-secret", DEFAULT_PASSWORD):
        assert secret not in str(caught.value)
    assert server.recorder.outcomes() == {Outcome.BAD_SIGNATURE: 1}


async def test_signed_requests_with_the_right_secret_succeed() -> None:
    """With the connector's shared secret the client's signature verifies on the server."""
    connectors: dict[str, str | None] = {"signed-connector": "right-secret"}
    async with MockScheduleServer(connectors=connectors) as server:
        server.seed(["SC-1", "SC-2"])
        results = await cancel_all(server, ["SC-1", "SC-2"])
    assert [r.success for r in results] == [True, True]


@pytest.mark.looptime
async def test_foreign_load_of_20_percent_costs_few_429s() -> None:
    """Another client spending 20 % of the budget: every id cancelled, 429s on <= 5 % of sends."""
    async with MockScheduleServer(
        limits=server_limits(), faults=jitter(), foreign_load=0.2
    ) as server:
        server.seed(IDS)
        results = await cancel_all(server)
    assert [r.is_cancelled for r in results] == [True] * M
    recorder = server.recorder
    sends = len(recorder.select(foreign=False))
    assert recorder.count_rate_limited() <= 0.05 * sends
    # Foreign and client arrivals together never exceeded what the server admits.
    assert recorder.max_arrivals_in_window(W, accepted_only=True) <= N


@pytest.mark.looptime
async def test_sliding_counter_server_smooth_mode_meets_no_429() -> None:
    """Against a weighted sliding-window counter, smooth mode sends all 600 without a 429."""
    limits = server_limits("sliding-counter", phase=0.5)
    async with MockScheduleServer(limits=limits, faults=jitter()) as server:
        server.seed(IDS)
        results = await cancel_all(server, limits=client_limits(mode="smooth"))
    assert_clean_run(server, results)


@pytest.mark.looptime
async def test_sliding_counter_server_adaptive_mode_has_at_most_one_episode_of_429s() -> None:
    """The default (exact, adaptive) client meets at most one burst of 429s, then none."""
    limits = server_limits("sliding-counter", phase=0.5)
    async with MockScheduleServer(limits=limits, faults=jitter()) as server:
        server.seed(IDS)
        results = await cancel_all(server, limits=client_limits(adaptive=True))
    assert [r.success for r in results] == [True] * M
    limited = server.recorder.select(outcome=Outcome.RATE_LIMITED, foreign=False)
    assert episodes([a.time for a in limited], W) <= 1


@pytest.mark.looptime
async def test_faults_are_retried_until_every_id_is_cancelled() -> None:
    """With 500s, 503s, HTML pages and dropped connections, retries still cancel every id."""
    faults = jitter(seed=3, server_error=0.03, maintenance=0.03, html=0.03, drop=0.03)
    retry = RetryPolicy(attempts=8, backoff_initial=0.05, backoff_max=0.5, deadline=60.0)
    async with MockScheduleServer(limits=server_limits(), faults=faults) as server:
        server.seed(IDS)
        results = await cancel_all(server, retry=retry)
    assert [r.is_cancelled for r in results] == [True] * M
    assert server.statuses == dict.fromkeys(IDS, ScheduleStatus.CANCELLED)
    recorder = server.recorder
    failed = sum(
        recorder.count(outcome)
        for outcome in (Outcome.SERVER_ERROR, Outcome.MAINTENANCE, Outcome.HTML, Outcome.DROPPED)
    )
    assert failed > 0
    assert recorder.count_rate_limited() == 0
    assert recorder.max_arrivals_in_window(W) <= N


@pytest.mark.slow
async def test_sliding_log_server_in_real_time() -> None:
    """The same job on the real clock (300 ids, five windows): 0 x 429, at most N per window."""
    ids = IDS[:300]
    async with MockScheduleServer(limits=server_limits()) as server:
        server.seed(ids)
        results = await cancel_all(server, ids)
    assert [r.success for r in results] == [True] * len(ids)
    assert server.recorder.count_rate_limited() == 0
    assert server.recorder.max_arrivals_in_window(W) <= N


# -- the two stores decide alike ------------------------------------------------------


async def _job_through(
    model: ModelName, foreign_load: float, redis: tuple[Any, str] | None = None
) -> tuple[int, float, int, str]:
    """One 600-id job, through Redis when given: its 429s, makespan, final limit and mode."""
    from schedcancel import RateLimiter  # noqa: PLC0415
    from schedcancel.redis import RedisLimiter  # noqa: PLC0415 - the redis extra

    loop = asyncio.get_running_loop()
    # Start on the same phase of the server's windows as any other job in this loop:
    # a whole number of virtual seconds, and long after anything earlier went quiet.
    await asyncio.sleep(math.floor(loop.time()) + 100 - loop.time())
    limiter: RateLimiter | RedisLimiter = RateLimiter(client_limits(), clock=loop.time)
    if redis is not None:
        client, prefix = redis
        limiter = RedisLimiter(
            client,
            username="e2e",
            key_prefix=prefix,
            limits=client_limits(),
            clock=loop.time,
            jitter=0,
            timeout=3600,
        )
    try:
        async with MockScheduleServer(
            limits=server_limits(model, phase=0.5), faults=jitter(), foreign_load=foreign_load
        ) as server:
            server.seed(IDS)
            results = await cancel_all(server, limiter=limiter, limits=None)
        assert [r.is_cancelled for r in results] == [True] * M
        ours = server.recorder.select(foreign=False)
        limited = sum(1 for a in ours if a.outcome is Outcome.RATE_LIMITED)
        makespan = max(a.time for a in ours) - min(a.time for a in ours)
        stats = (
            await limiter.shared_stats() if isinstance(limiter, RedisLimiter) else limiter.stats()
        )
        return limited, makespan, stats.total_limit, stats.mode
    finally:
        await limiter.aclose()


@pytest.mark.redis
@pytest.mark.looptime
@pytest.mark.parametrize(
    ("model", "foreign_load"), [("sliding-counter", 0.0), ("sliding-log", 0.2)]
)
async def test_in_process_and_redis_decide_alike(
    model: ModelName, foreign_load: float, virtual_redis: tuple[Any, str]
) -> None:
    """The same job teaches both stores the same: the same limit and mode at the end,
    as many 429s and the same makespan.

    Measured: 23 x 429 in 11.19 s on the counter server, and 4 x 429 in 14.61 s
    under 20 % foreign load, both stores ending at 60 smooth and 48 smooth; the
    makespans through Redis are 0.03 % and 0.2 % longer, as each reply may cost up
    to half a millisecond of virtual time (see the ``virtual_redis`` fixture),
    which could also move an arrival past a foreign one: hence a margin of two
    429s and 2 %.
    """
    memory = await _job_through(model, foreign_load)
    redis = await _job_through(model, foreign_load, virtual_redis)
    assert redis[2:] == memory[2:]
    assert abs(redis[0] - memory[0]) <= 2
    assert redis[1] == pytest.approx(memory[1], rel=0.02)
