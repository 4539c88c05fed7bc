"""Shared test setup: schedcancel's own pytest plugin, also in a source checkout."""

from __future__ import annotations

import pytest
from schedcancel import pytest_plugin

# pytester runs the plugin in a project of its own (strict mode, no conftest).
pytest_plugins = ["pytester"]


def pytest_configure(config: pytest.Config) -> None:
    """Register the plugin unless its entry point did (an installed package) or it is blocked."""
    manager = config.pluginmanager
    # The installed package's pytest11 entry point registers the same module object under
    # "schedcancel"; registering it twice is an error, so look before registering.
    if not manager.is_registered(pytest_plugin) and not manager.is_blocked("schedcancel"):
        manager.register(pytest_plugin, "schedcancel")
