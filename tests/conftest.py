"""Shared test setup: schedcancel's own pytest plugin, also in a source checkout."""

from __future__ import annotations

import asyncio
import importlib

import pytest
from schedcancel import pytest_plugin

# An installed package's pytest11 plugin is imported before pytest-cov starts measuring,
# so the plugin module's top-level lines would show as missed. Running them again in the
# same module object (the one the plugin manager holds; fixtures are collected from it
# only when the session starts) lets coverage see them.
importlib.reload(pytest_plugin)

# pytester runs the plugin in a project of its own (strict mode, no conftest).
pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin unless its entry point did (an installed package) or it is blocked."""
    manager = config.pluginmanager
    # The installed package's pytest11 entry point registers the same module object under
    # "schedcancel"; registering it twice is an error, so look before registering.
    if not manager.is_registered(pytest_plugin) and not manager.is_blocked("schedcancel"):
        manager.register(pytest_plugin, "schedcancel")


@pytest.fixture(autouse=True, scope="session")
def _no_implicit_event_loop() -> None:
    """Stop ``get_event_loop()`` from creating a loop that nobody closes.

    looptime's ``pytest_pyfunc_call`` asks the policy for the event loop around
    every test, sync ones included. Before any loop was set, Python 3.11's policy
    answers by creating one, which then leaks as "unclosed event loop" when a sync
    test runs first. Marking the loop as explicitly unset makes the policy raise
    instead, which looptime handles.
    """
    asyncio.set_event_loop(None)
