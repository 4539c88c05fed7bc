"""``--metrics-port``: a bulk job's progress as Prometheus text at ``/metrics`` on 127.0.0.1.

The endpoint serves its own registry: the job's gauges below, and the
client's metrics from
[`schedcancel.prometheus.PrometheusHook`][schedcancel.prometheus.PrometheusHook] (calls by outcome,
queue waits, 429s by level, retries, the limiter's queued and in-flight requests). It listens only
while the job runs, on the loopback interface only.

=================================  =====  =======  ==========================================
name                               type   labels   meaning
=================================  =====  =======  ==========================================
``schedcancel_job_total``          gauge           ids in the input (NaN while unknown)
``schedcancel_job_done``           gauge           ids finished by this run
``schedcancel_job_outcomes``       gauge  outcome  ids finished by this run, per outcome
``schedcancel_job_skipped``        gauge           ids already final in the journal
``schedcancel_job_eta_seconds``    gauge           expected seconds left (NaN while unknown)
``schedcancel_job_elapsed_s...``   gauge           seconds since the job started
``schedcancel_job_finished``       gauge           1 once the job is over
=================================  =====  =======  ==========================================
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._bulk.journal import OutcomeKind
from .._bulk.runner import BulkProgress
from ._common import INSTALL_PROMETHEUS_HINT, _UsageError

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["JobMetrics"]

HOST = "127.0.0.1"


class JobMetrics:
    """The job's registry, its gauges, the client's hook and the HTTP endpoint.

    Raises:
        _UsageError: prometheus-client is not installed.
    """

    def __init__(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Gauge  # noqa: PLC0415 - optional
        except ImportError:
            raise _UsageError(
                f"--metrics-port needs prometheus-client: {INSTALL_PROMETHEUS_HINT}"
            ) from None
        from ..prometheus import PrometheusHook  # noqa: PLC0415 - needs prometheus-client

        registry = self.registry = CollectorRegistry()
        self.hook = PrometheusHook(registry=registry)
        ns: dict[str, Any] = {"namespace": "schedcancel", "registry": registry}
        self._total = Gauge("job_total", "Ids in the input (NaN while unknown).", **ns)
        self._done = Gauge("job_done", "Ids finished by this run.", **ns)
        self._outcomes = Gauge(
            "job_outcomes", "Ids finished by this run, per outcome.", ["outcome"], **ns
        )
        self._skipped = Gauge("job_skipped", "Ids already final in the journal.", **ns)
        self._eta = Gauge("job_eta_seconds", "Expected seconds left (NaN while unknown).", **ns)
        self._elapsed = Gauge("job_elapsed_seconds", "Seconds since the job started.", **ns)
        self._finished = Gauge("job_finished", "1 once the job is over.", **ns)
        self._total.set(math.nan)
        self._eta.set(math.nan)
        for kind in OutcomeKind:
            self._outcomes.labels(kind.value)
        self._runner: web.AppRunner | None = None

    def update(self, progress: BulkProgress) -> None:
        """Take the job's latest progress snapshot."""
        self._total.set(math.nan if progress.total is None else progress.total)
        self._done.set(progress.done)
        for kind in OutcomeKind:
            self._outcomes.labels(kind.value).set(progress.counts.get(kind, 0))
        self._skipped.set(progress.skipped)
        self._eta.set(math.nan if progress.eta is None else progress.eta)
        self._elapsed.set(progress.elapsed)
        self._finished.set(1 if progress.finished else 0)

    def tee(self, other: Callable[[BulkProgress], object]) -> Callable[[BulkProgress], None]:
        """A progress callback that updates the gauges, then calls ``other``."""

        def both(progress: BulkProgress) -> None:
            self.update(progress)
            other(progress)

        return both

    async def serve(self, port: int) -> None:
        """Listen on 127.0.0.1:``port``.

        Raises:
            _UsageError: the port cannot be bound (in use, or not allowed).
        """
        from aiohttp import web  # noqa: PLC0415 - loaded with the client anyway
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415

        async def metrics(_request: web.Request) -> web.Response:
            return web.Response(
                body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, HOST, port).start()
        except OSError as exc:
            await runner.cleanup()
            # asyncio's own message repeats the address: the errno's text says it once.
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise _UsageError(
                f"--metrics-port {port}: cannot listen on {HOST}:{port}: {reason}"
            ) from None
        self._runner = runner

    async def aclose(self) -> None:
        """Stop listening (the port is free again). Idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
