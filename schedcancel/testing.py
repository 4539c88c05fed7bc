"""A mock IXOPAY Schedule API server for your tests (as moto is for AWS).

[`MockScheduleServer`][schedcancel.testing.MockScheduleServer] is a real aiohttp server on 127.0.0.1
(a free port by default) that emulates the six Schedule operations under
``/api/v3/schedule/{apiKey}``: get, pause, continue, update, cancel and start.
It checks Basic auth, optional request signatures (errorCode 1004; the
SHA-512 body hash or the deprecated MD5 one, and the plain or the PHP SDK's
hashed password, as the gateway accepts them, unless told to be strict) and request
bodies (400 with 1002/1005, or the documented 70xx codes), runs the schedule
state machine (7040 unknown id, 7070 status not valid for the operation),
counts every operation on one budget of both rate limits the way you choose,
injects faults, and records every arrival (with its [`Operation`][schedcancel.Operation]) in a
[`Recorder`][schedcancel.testing.Recorder] to assert on. The emulator is written on its own (its own
[`Operation`][schedcancel.Operation] and [`Status`][schedcancel.testing.Status], its own signature
check); this module adds the one part that knows the client, ``MockScheduleServer.client()``:

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
[`schedcancel.pytest_plugin`][schedcancel.pytest_plugin].
"""

from __future__ import annotations

import argparse
from typing import Any

import attrs

from ._client.client import ScheduleClient
from ._mock import cli as _cli
from ._mock import server as _server
from ._mock.cli import add_mock_server_arguments, main_mock_server, run_mock_server
from ._mock.faults import Fault, Faults
from ._mock.headers import HEADER_STYLES, HeaderStyle
from ._mock.limits import MODEL_NAMES, ModelName, ServerLimits
from ._mock.operations import Operation, Status
from ._mock.recorder import Arrival, Outcome, Recorder, max_in_window
from ._mock.schedules import MockSchedule
from ._mock.server import API_PREFIX, DEFAULT_API_KEY, DEFAULT_PASSWORD, DEFAULT_USERNAME
from ._protocol.environment import ENVIRONMENT_VARIABLES

__all__ = [
    "API_PREFIX",
    "DEFAULT_API_KEY",
    "DEFAULT_PASSWORD",
    "DEFAULT_USERNAME",
    "HEADER_STYLES",
    "MODEL_NAMES",
    "Arrival",
    "Fault",
    "Faults",
    "HeaderStyle",
    "MockSchedule",
    "MockScheduleServer",
    "ModelName",
    "Operation",
    "Outcome",
    "Recorder",
    "ServerLimits",
    "Status",
    "add_mock_server_arguments",
    "main_mock_server",
    "max_in_window",
    "run_mock_server",
    "server_from_args",
]


# The emulator (``_mock``) is written on its own: it imports nothing of the client, so a
# mistake in the client's table or signer cannot be copied into the server that should
# catch it. Only this façade, which sits above both, knows both: it adds the one
# convenience that builds a client.
@attrs.define(kw_only=True, repr=False, eq=False)
class MockScheduleServer(_server.MockScheduleServer):
    """The IXOPAY Schedule API (get, pause, continue, update, cancel, start), on a local port.

    Use it as an async context manager ([`client()`][schedcancel.testing.MockScheduleServer.client]
    builds a [`ScheduleClient`][schedcancel.ScheduleClient] for it), or call
    [`start()`][schedcancel.ScheduleClient.start] and `aclose()`. Every setting may be changed while
    it runs and applies to the next request; assigning ``limits`` starts counting afresh, and
    assigning ``faults`` restarts the script and the random generator.
    ``foreign_load``, ``host`` and ``port`` are read at
    [`start()`][schedcancel.ScheduleClient.start].

    Attributes:
        users: API users (username to password) that Basic auth accepts.
        connectors: connector apiKeys the server knows, each with its shared
            secret; a secret turns on signature checking for that connector.
        limits: the rate limits and how the server counts them.
        faults: fault injection and latency.
        schedules: schedules that exist from the start, id to status.
        unknown_ids: ``"error"``: an id never seeded answers 7040, as the real
            server does; ``"active"``: any id exists as ACTIVE.
        unknown_registrations: ``"accept"``: any registrationUuid in start
            and update is valid; ``"error"``: only those of known schedules
            and those given to
            [`seed_registrations()`][schedcancel.testing.MockScheduleServer.seed_registrations] are,
            others answer 7020.
        cancellable: the statuses a cancel succeeds from (default ACTIVE,
            PAUSED and ERROR; the API's state diagram draws cancel edges from
            the first two only and leaves ERROR open, so pass
            ``{"ACTIVE", "PAUSED"}`` to test against the stricter reading);
            any strings equal to statuses (the client's ``ScheduleStatus`` too).
        accept_md5_signatures: accept an ``X-Signature`` built with the
            deprecated MD5 body hash, as the gateway does and as the official
            PHP SDK signs; False: only SHA-512, anything else answers 1004.
        accept_sdk_hashed_password: accept the password SHA-1-hashed ten times
            (hex each round), as the official PHP SDK sends it; False: only
            the plain password, anything else answers 401 with 1000.
        foreign_load: the fraction of ``limits.total`` per window that another
            client spends on ``foreign_user``'s budget: the server adds those
            arrivals itself, evenly spaced, recorded with ``foreign=True``.
        foreign_user: whose budget the foreign load spends (default: the first user).
        rate_limit_headers: the rate-limit headers it sends (`HEADER_STYLES`):
            ``"none"`` (the default, as IXOPAY documents none), ``"x-429"``
            (``X-RateLimit-Limit``, ``-Remaining``, ``-Reset`` on 429s, for the
            level that refused), ``"x-all"`` (the same on every answer, the API
            user's unless a 429 names the scheduleId's), ``"draft-11"``
            (``RateLimit-Policy`` and ``RateLimit`` for both levels on every
            answer). The reset is the seconds until the level's remaining grows.
        host: the address to listen on.
        port: the port; 0 picks a free one.
        clock: the server's clock in seconds; default the running loop's ``time``.
        wall_clock_at_start: the date-time the server's clock reads at
            [`start()`][schedcancel.ScheduleClient.start] (aware; default the real UTC now, whole
            seconds); the server's date-time moves on with ``clock``, so "older than 24 hours"
            and default ``scheduledAt`` follow virtual time.
    """

    def client_kwargs(
        self, *, user: str | None = None, api_key: str | None = None
    ) -> dict[str, Any]:
        """Keyword arguments for [`schedcancel.ScheduleClient`][schedcancel.ScheduleClient] talking
        to this server.

        Args:
            user: the API user (default: the first one configured).
            api_key: the connector (default: the first one configured); its
                shared secret comes along.

        Returns:
            ``api_key``, ``username``, ``password``, ``shared_secret``, ``base_url``.
        """
        username = user if user is not None else next(iter(self.users))
        key = api_key if api_key is not None else next(iter(self.connectors))
        return {
            "api_key": key,
            "username": username,
            "password": self.users[username],
            "shared_secret": self.connectors.get(key),
            "base_url": self.base_url,
        }

    def client_environ(
        self, *, user: str | None = None, api_key: str | None = None
    ) -> dict[str, str]:
        """The ``SCHEDCANCEL_*`` variables that point a client at this server.

        What [`ScheduleClient.from_env()`][schedcancel.ScheduleClient.from_env] and the
        ``schedcancel`` command read: set them (``monkeypatch.setenv``, or a child process's
        ``env``) to test code that takes its credentials from the environment.

        Args:
            user: as in [`client_kwargs()`][schedcancel.testing.MockScheduleServer.client_kwargs].
            api_key: as in
                [`client_kwargs()`][schedcancel.testing.MockScheduleServer.client_kwargs].

        Returns:
            ``SCHEDCANCEL_API_KEY``, ``_USERNAME``, ``_PASSWORD`` and ``_BASE_URL``, and
            ``_SHARED_SECRET`` when the connector has one.
        """
        kwargs = self.client_kwargs(user=user, api_key=api_key)
        return {
            variable: kwargs[name]
            for name, variable in ENVIRONMENT_VARIABLES.items()
            if kwargs[name] is not None
        }

    def client(
        self, *, user: str | None = None, api_key: str | None = None, **overrides: Any
    ) -> ScheduleClient:
        """A [`schedcancel.ScheduleClient`][schedcancel.ScheduleClient] for this server; close it
        (``async with``).

        Args:
            user: as in [`client_kwargs()`][schedcancel.testing.MockScheduleServer.client_kwargs].
            api_key: as in
                [`client_kwargs()`][schedcancel.testing.MockScheduleServer.client_kwargs].
            overrides: any other ``ScheduleClient`` keyword (``limits``, ``retry``...),
                or one of
                [`client_kwargs()`][schedcancel.testing.MockScheduleServer.client_kwargs]'s to
                replace it.

        Returns:
            The client.
        """
        kwargs = self.client_kwargs(user=user, api_key=api_key) | overrides
        return ScheduleClient(kwargs.pop("api_key"), **kwargs)


def server_from_args(args: argparse.Namespace) -> MockScheduleServer:
    """Build (not start) the server that ``args`` describe, schedules seeded.

    Args:
        args: parsed by a parser that `add_mock_server_arguments()` extended.

    Returns:
        The server.

    Raises:
        InvalidParameterError: a setting is out of range, or a status in
            ``--schedules-file`` is not a schedule status.
        OSError: ``--schedules-file`` cannot be read.
    """
    return _cli.server_from_args(args, MockScheduleServer)


if __name__ == "__main__":
    import sys

    _parser = argparse.ArgumentParser(
        prog="python -m schedcancel.testing", description="Serve the mock IXOPAY server."
    )
    add_mock_server_arguments(_parser)
    sys.exit(main_mock_server(_parser.parse_args()))
