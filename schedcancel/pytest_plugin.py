"""pytest fixtures for the mock IXOPAY server; opt in from your top-level ``conftest.py``:

    pytest_plugins = ["schedcancel.pytest_plugin"]

(or run ``pytest -p schedcancel.pytest_plugin``). Installing schedcancel
changes nobody's pytest runs: this plugin loads only where it is named. It
defines fixtures and nothing else (no hooks, options or autouse fixtures),
and it imports the server only when a test requests one of them.

``mock_schedule_server``
    A started [`MockScheduleServer`][schedcancel.testing.MockScheduleServer] with the
    default configuration (user ``api-user``/``api-password``, connector
    ``test-api-key`` without signing, the documented 60 and 10 per 60 s,
    unknown ids answering 7040), closed after the test.
``mock_schedule_server_factory``
    ``await mock_schedule_server_factory(**config)`` starts a server with any
    ``MockScheduleServer`` keyword arguments; every server it made is closed
    after the test.

Both are async fixtures for pytest-asyncio (strict or auto mode); without
pytest-asyncio, requesting them fails with an explanation:

    from schedcancel.testing import MockScheduleServer, ServerLimits

    async def test_bulk(mock_schedule_server_factory) -> None:
        server: MockScheduleServer = await mock_schedule_server_factory(
            limits=ServerLimits(window=1.0), unknown_ids="active"
        )
        async with server.client() as client:
            assert (await client.cancel("SC-1")).success
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from schedcancel.testing import MockScheduleServer

    MockServerFactory = Callable[..., Awaitable[MockScheduleServer]]

__all__ = ["mock_schedule_server", "mock_schedule_server_factory"]

# A project that opts in without pytest-asyncio must still load: the fixtures
# then fail with an explanation when (and only when) a test requests them.
if TYPE_CHECKING or importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def mock_schedule_server() -> AsyncIterator[MockScheduleServer]:
        """A started mock server with the default configuration, closed after the test."""
        from schedcancel.testing import MockScheduleServer  # noqa: PLC0415 - import on use

        async with MockScheduleServer() as server:
            yield server

    @pytest_asyncio.fixture
    async def mock_schedule_server_factory() -> AsyncIterator[MockServerFactory]:
        """``await factory(**config)`` starts a configured server; all are closed after the test."""
        from schedcancel.testing import MockScheduleServer  # noqa: PLC0415 - import on use

        servers: list[MockScheduleServer] = []

        async def factory(**config: Any) -> MockScheduleServer:
            server = MockScheduleServer(**config)
            await server.start()
            servers.append(server)
            return server

        try:
            yield factory
        finally:
            for server in reversed(servers):
                await server.aclose()

else:  # pragma: no cover - pytest-asyncio is a test dependency of schedcancel itself

    @pytest.fixture
    def mock_schedule_server() -> None:
        """Fail: the async fixtures need pytest-asyncio."""
        pytest.fail("mock_schedule_server needs pytest-asyncio (pip install pytest-asyncio)")

    @pytest.fixture
    def mock_schedule_server_factory() -> None:
        """Fail: the async fixtures need pytest-asyncio."""
        pytest.fail(
            "mock_schedule_server_factory needs pytest-asyncio (pip install pytest-asyncio)"
        )
