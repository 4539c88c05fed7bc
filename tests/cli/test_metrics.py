"""``--metrics-port``: the bulk job's Prometheus endpoint, scraped while the job runs."""

from __future__ import annotations

import asyncio
import io
import re
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from schedcancel import Operation, RateLimits, StartRow, StartSchedule
from schedcancel.cli import RunSettings, run_bulk
from schedcancel.cli._common import _UsageError
from schedcancel.cli._metrics import JobMetrics
from schedcancel.testing import Fault, MockScheduleServer, ServerLimits

from support.cli import (
    API_KEY,
    PASSWORD,
    SECRET,
    TINY_DEMO,
    USERNAME,
    ServerThread,
    cli_env,
    make_ids,
    make_settings,
    run_cli,
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(name="busy_port")
def _busy_port() -> Iterator[int]:
    """A port something else is listening on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


class _Lines(io.StringIO):
    """Stdout that lets a test wait for the n-th per-id line."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.changed = asyncio.Event()

    def write(self, text: str) -> int:
        self.count += text.count("\n")
        self.changed.set()
        return super().write(text)

    async def wait_for(self, count: int) -> None:
        while self.count < count:
            self.changed.clear()
            await self.changed.wait()


def _sample(text: str, name: str) -> float:
    """One sample's value from Prometheus text (``name`` with its labels, if any)."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match is not None, f"{name} not in the scrape"
    return float(match.group(1))


async def _scrape(session: aiohttp.ClientSession, port: int) -> str:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


@pytest.mark.looptime
async def test_metrics_move_while_the_job_runs_and_the_port_closes_after() -> None:
    """Scraped mid-run the figures are the job's so far, later they have moved; then it closes.

    The ids come through a gate the test opens, and the job runs on looptime's
    virtual clock with the mock server in the same loop, so "mid-run" is exact
    and a progress interval passes without a real wait.
    """
    ids = make_ids(5)
    server = MockScheduleServer(
        users={USERNAME: PASSWORD},
        connectors={API_KEY: SECRET},
        limits=ServerLimits(total=1000, per_schedule=10, window=1.0),
    )
    port = _free_port()
    feed: asyncio.Queue[str | None] = asyncio.Queue()

    async def gated() -> AsyncIterator[str]:
        while (schedule_id := await feed.get()) is not None:
            yield schedule_id

    async with server:
        server.seed(ids)
        server.script(Fault.RATE_LIMITED)  # the first request gets a 429
        settings = make_settings(
            server.base_url,
            shared_secret=SECRET,
            quiet=False,
            json_output=True,
            metrics_port=port,
            priority=0,
            limits=RateLimits(total=1000, window=1.0, guard=0.05, adaptive=False),
        )
        first, second = await _scrape_twice(settings, feed, ids, port, gated())
    _check_scrapes(first, second)


async def _scrape_twice(
    settings: RunSettings,
    feed: asyncio.Queue[str | None],
    ids: list[str],
    port: int,
    gated: AsyncIterator[str],
) -> tuple[str, str]:
    """Run the job; scrape after 2 ids, then after all; check the port closes at the end."""
    stdout = _Lines()
    job = asyncio.create_task(
        run_bulk(settings, gated, total=len(ids), stdout=stdout, stderr=io.StringIO())
    )
    async with aiohttp.ClientSession() as session:
        for schedule_id in ids[:2]:
            feed.put_nowait(schedule_id)
        await stdout.wait_for(2)
        await asyncio.sleep(1.0)  # virtual: the job's next progress report comes meanwhile
        first = await _scrape(session, port)
        for schedule_id in ids[2:]:
            feed.put_nowait(schedule_id)
        await stdout.wait_for(5)
        await asyncio.sleep(1.0)
        second = await _scrape(session, port)
        feed.put_nowait(None)
        report = await job
        assert report.exit_code == 0
        with pytest.raises(aiohttp.ClientConnectorError):
            await _scrape(session, port)
    return first, second


def _check_scrapes(first: str, second: str) -> None:
    """Two ids done at the first scrape (one after a 429), all five at the second."""
    assert _sample(first, "schedcancel_job_total") == 5
    assert _sample(first, "schedcancel_job_done") == 2
    assert _sample(first, 'schedcancel_job_outcomes{outcome="cancelled"}') == 2
    assert _sample(first, "schedcancel_job_finished") == 0
    assert _sample(first, 'schedcancel_rate_limited_total{level="user"}') == 1
    calls = 'schedcancel_calls_total{error_code="",operation="cancel",outcome="success"}'
    assert _sample(first, calls) == 2
    assert _sample(first, "schedcancel_limiter_in_flight") == 0
    assert _sample(first, "schedcancel_limiter_queued") == 0
    assert _sample(first, 'schedcancel_queue_wait_seconds_count{operation="cancel"}') == 3
    assert _sample(second, "schedcancel_job_done") == 5
    assert _sample(second, 'schedcancel_job_outcomes{outcome="cancelled"}') == 5
    assert _sample(second, calls) == 5
    assert _sample(second, "schedcancel_job_elapsed_seconds") > _sample(
        first, "schedcancel_job_elapsed_seconds"
    )
    assert _sample(second, "schedcancel_job_eta_seconds") >= 0
    for text in (first, second):
        for secret in (PASSWORD, SECRET, API_KEY):
            assert secret not in text


def test_a_port_in_use_is_a_usage_error_without_traceback(
    serve: Callable[..., ServerThread], busy_port: int
) -> None:
    """``--metrics-port`` on a busy port: one clear line on stderr, exit 2, nothing sent."""
    server = serve(active=["SC-1"])
    result = run_cli(["cancel", "--metrics-port", str(busy_port), "SC-1"], cli_env(server.base_url))
    assert result.code == 2
    assert result.stderr == (
        f"schedcancel: error: --metrics-port {busy_port}: cannot listen on "
        f"127.0.0.1:{busy_port}: Address already in use\n"
    )
    assert not server.server.recorder.arrivals


def test_the_demo_serves_metrics_too(busy_port: int) -> None:
    """``schedcancel demo --metrics-port`` takes the option; a busy port is refused the same way."""
    result = run_cli(
        ["demo", *TINY_DEMO, "--schedules", "12", "--metrics-port", str(_free_port())], {}
    )
    assert result.code == 0, result.stderr
    busy = run_cli(["demo", *TINY_DEMO, "--schedules", "12", "--metrics-port", str(busy_port)], {})
    assert busy.code == 2
    assert "cannot listen on" in busy.stderr


@pytest.mark.parametrize("port", ["0", "65536", "http"])
def test_a_bad_port_is_refused_by_the_parser(port: str) -> None:
    """Not a TCP port: argparse's usage error, exit 2."""
    result = run_cli(["cancel", "--metrics-port", port, "SC-1"], {})
    assert result.code == 2
    assert "--metrics-port" in result.stderr


def test_without_prometheus_client_the_option_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No prometheus-client: a usage error naming the extra to install."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(_UsageError, match=re.escape("pip install 'schedcancel[prometheus]'")):
        JobMetrics()


async def test_the_job_gauges_are_nan_while_unknown() -> None:
    """Before the first snapshot, the total and the ETA are unknown (NaN), outcomes 0."""
    from prometheus_client import generate_latest  # noqa: PLC0415 - the extra, loaded here

    metrics = JobMetrics()
    await metrics.aclose()  # never served: nothing to close
    text = generate_latest(metrics.registry).decode()
    assert _sample(text, "schedcancel_job_total") != _sample(text, "schedcancel_job_total")
    assert _sample(text, 'schedcancel_job_outcomes{outcome="failed"}') == 0
    assert USERNAME not in text


@pytest.mark.looptime
async def test_a_start_job_serves_its_outcomes_too(tmp_path: Path) -> None:
    """``start --metrics-port``: the job's ``started`` outcomes and its start calls, mid-run."""
    first_charge = datetime(2030, 1, 1, tzinfo=UTC)
    rows: list[Any] = [
        StartRow(
            StartSchedule(
                registration_uuid=f"RG-{n}",
                amount="9.90",
                currency="EUR",
                period_length=1,
                period_unit="MONTH",
                start_date_time=first_charge,
            )
        )
        for n in range(5)
    ]
    server = MockScheduleServer(
        users={USERNAME: PASSWORD},
        connectors={API_KEY: SECRET},
        limits=ServerLimits(total=1000, per_schedule=10, window=1.0),
    )
    port = _free_port()
    feed: asyncio.Queue[Any] = asyncio.Queue()

    async def gated() -> AsyncIterator[Any]:
        while (row := await feed.get()) is not None:
            yield row

    async with server:
        settings = make_settings(
            server.base_url,
            shared_secret=SECRET,
            quiet=False,
            metrics_port=port,
            priority=0,
            limits=RateLimits(total=1000, window=1.0, guard=0.05),
            operation=Operation.START,
            journal=tmp_path / "start.jsonl",
        )
        first, second = await _scrape_twice(settings, feed, rows, port, gated())
    assert _sample(first, 'schedcancel_job_outcomes{outcome="started"}') == 2
    assert _sample(second, 'schedcancel_job_outcomes{outcome="started"}') == 5
    assert _sample(second, 'schedcancel_job_outcomes{outcome="unknown"}') == 0
    calls = 'schedcancel_calls_total{error_code="",operation="start",outcome="success"}'
    assert _sample(second, calls) == 5
