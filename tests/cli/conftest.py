"""The CLI tests' fixture: ``serve`` starts mock servers in threads and stops them after."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from schedcancel.testing import Faults, MockScheduleServer, ServerLimits

from support.cli import API_KEY, PASSWORD, USERNAME, ServerThread


@pytest.fixture(name="serve")
def _serve() -> Iterator[Callable[..., ServerThread]]:
    started: list[ServerThread] = []

    def serve(
        *,
        active: list[str] = (),  # type: ignore[assignment]
        cancelled: list[str] = (),  # type: ignore[assignment]
        paused: list[str] = (),  # type: ignore[assignment]
        limits: ServerLimits | None = None,
        faults: Faults | None = None,
        secret: str | None = None,
        username: str = USERNAME,
    ) -> ServerThread:
        server = MockScheduleServer(
            users={username: PASSWORD},
            connectors={API_KEY: secret},
            limits=limits or ServerLimits(total=1000, per_schedule=10, window=1.0),
            faults=faults or Faults(),
        )
        server.seed(active)
        server.seed(cancelled, "CANCELLED")
        server.seed(paused, "PAUSED")
        thread = ServerThread(server).start()
        started.append(thread)
        return thread

    yield serve
    for thread in started:
        thread.stop()
