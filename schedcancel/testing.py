"""A mock IXOPAY Schedule API server for your tests (as moto is for AWS).

:class:`MockScheduleServer` is a real aiohttp server on 127.0.0.1 (a free port
by default) that emulates the six Schedule operations under
``/api/v3/schedule/{apiKey}``: get, pause, continue, update, cancel and start.
It checks Basic auth, optional request signatures (errorCode 1004) and request
bodies (400 with 1002/1005, or the documented 70xx codes), runs the schedule
state machine (7040 unknown id, 7070 status not valid for the operation),
counts every operation on one budget of both rate limits the way you choose,
injects faults, and records every arrival (with its :class:`Operation`) in a
:class:`Recorder` to assert on::

    from schedcancel import ScheduleClient
    from schedcancel.testing import MockScheduleServer, ServerLimits

    async def test_cancel() -> None:
        limits = ServerLimits(total=60, per_schedule=10, window=1.0)
        async with MockScheduleServer(limits=limits) as server:
            server.seed(["SC-1"])
            async with server.client() as client:
                result = await client.cancel("SC-1")
        assert result.success
        assert server.recorder.max_arrivals_in_window(1.0) <= 60

With ``pytest_plugins = ["schedcancel.pytest_plugin"]`` in your top-level
``conftest.py`` the server comes as the fixture ``mock_schedule_server`` or,
configured, from ``mock_schedule_server_factory``; see
:mod:`schedcancel.pytest_plugin`.
"""

from __future__ import annotations

from ._mock.cli import (
    add_mock_server_arguments,
    main_mock_server,
    run_mock_server,
    server_from_args,
)
from ._mock.faults import Fault, Faults
from ._mock.limits import MODEL_NAMES, ModelName, ServerLimits
from ._mock.operations import Operation
from ._mock.recorder import Arrival, Outcome, Recorder, max_in_window
from ._mock.schedules import MockSchedule
from ._mock.server import (
    API_PREFIX,
    DEFAULT_API_KEY,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    MockScheduleServer,
)

__all__ = [
    "API_PREFIX",
    "DEFAULT_API_KEY",
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "MODEL_NAMES",
    "Arrival",
    "Fault",
    "Faults",
    "MockSchedule",
    "MockScheduleServer",
    "ModelName",
    "Operation",
    "Outcome",
    "Recorder",
    "ServerLimits",
    "add_mock_server_arguments",
    "main_mock_server",
    "max_in_window",
    "run_mock_server",
    "server_from_args",
]

if __name__ == "__main__":
    import argparse
    import sys

    _parser = argparse.ArgumentParser(
        prog="python -m schedcancel.testing", description="Serve the mock IXOPAY server."
    )
    add_mock_server_arguments(_parser)
    sys.exit(main_mock_server(_parser.parse_args()))
