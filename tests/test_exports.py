"""Tests for the public surface: what ``import schedcancel`` offers, and nothing by accident."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
import types
from collections.abc import Iterator

import pytest
import schedcancel


def _isort_key(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: SCREAMING_SNAKE_CASE, then CamelCase, then the rest."""
    if name.isupper():
        return 0, name
    return (1, name) if name[0].isupper() else (2, name)


def test_all_is_sorted() -> None:
    """__all__ is sorted the way ruff (RUF022) keeps it, so additions land where they belong."""
    assert schedcancel.__all__ == sorted(schedcancel.__all__, key=_isort_key)
    assert schedcancel.__all__[0] == "DEFAULT_BASE_URL"
    assert schedcancel.__all__[-1] == "__version__"


def test_all_equals_the_public_names() -> None:
    """Every public module attribute is in __all__ and every name in __all__ exists."""
    public = {
        name
        for name, value in vars(schedcancel).items()
        # Submodules (errors) are public by path; "annotations" is the __future__ directive.
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public | {"__version__"} == set(schedcancel.__all__)


def test_public_classes_are_defined_in_private_modules_or_errors() -> None:
    """Classes are re-exported from private modules (or errors), so import paths stay stable."""
    for name in schedcancel.__all__:
        value = getattr(schedcancel, name)
        if inspect.isclass(value):
            module = value.__module__
            assert module == "schedcancel.errors" or module.startswith("schedcancel._"), name


def test_version_is_a_string() -> None:
    """__version__ is a version string."""
    assert isinstance(schedcancel.__version__, str)
    assert schedcancel.__version__[0].isdigit()


def test_star_import_gives_exactly_all() -> None:
    """``from schedcancel import *`` binds exactly the names in __all__."""
    namespace: dict[str, object] = {}
    exec("from schedcancel import *", namespace)  # noqa: S102 - a fixed string, the point of the test
    assert set(namespace) - {"__builtins__"} == set(schedcancel.__all__)


PUBLIC_MODULES = (
    "schedcancel",
    "schedcancel.errors",
    "schedcancel.hooks",
    "schedcancel.testing",
    "schedcancel.redis",
    "schedcancel.otel",
    "schedcancel.prometheus",
    "schedcancel.pytest_plugin",
    "schedcancel.cli",
)


def _signatures(module: types.ModuleType) -> Iterator[tuple[str, inspect.Signature]]:
    """Every public function's and class's signature, and their public methods'."""
    for name in getattr(module, "__all__", ()):
        value = getattr(module, name)
        members = [(name, value)]
        if inspect.isclass(value):
            members += [
                (f"{name}.{attr}", member)
                for attr, member in vars(value).items()
                if not attr.startswith("_") and callable(member)
            ]
        for label, member in members:
            try:
                yield f"{module.__name__}.{label}", inspect.signature(member)
            except (TypeError, ValueError):  # not introspectable (a builtin), or no callable
                continue


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_no_public_signature_takes_an_underscore_parameter(module_name: str) -> None:
    """Test seams are public (clock=, transport=), never ``_sleep``-style parameters."""
    module = importlib.import_module(module_name)
    offenders = [
        f"{label}({parameter})"
        for label, signature in _signatures(module)
        for parameter in signature.parameters
        if parameter.startswith("_")
    ]
    assert offenders == []


#: The names of 0.1 renamed in 0.2: (module, old name, new name), each kept until 0.3.
RENAMED = [
    ("schedcancel", "ScheduleCancelError", "ScheduleError"),
    ("schedcancel", "CancelResult", "ScheduleResult"),
    ("schedcancel", "CancelOutcome", "BulkOutcome"),
    ("schedcancel.errors", "ScheduleCancelError", "ScheduleError"),
    ("schedcancel.cli", "CancelSettings", "RunSettings"),
    ("schedcancel.cli", "run_cancel", "run_bulk"),
]


@pytest.mark.parametrize(("module_name", "old", "new"), RENAMED)
def test_a_renamed_name_still_works_and_warns(module_name: str, old: str, new: str) -> None:
    """An old name is the new object, and every way of reaching it warns, naming the new name."""
    module = importlib.import_module(module_name)
    with pytest.warns(
        DeprecationWarning, match=rf"{module_name}\.{old} .* use {module_name}\.{new}$"
    ):
        value = getattr(module, old)
    assert value is getattr(module, new)
    namespace: dict[str, object] = {}
    with pytest.warns(DeprecationWarning, match=new):
        exec(f"from {module_name} import {old}", namespace)  # noqa: S102 - a fixed string
    assert namespace[old] is value
    assert old not in module.__all__
    assert new in module.__all__
    assert old not in vars(module)


def test_the_old_error_root_catches_every_error() -> None:
    """``except ScheduleCancelError`` catches what ``except ScheduleError`` does: one class."""
    with pytest.warns(DeprecationWarning, match="ScheduleError"):
        old_root = schedcancel.ScheduleCancelError
    with pytest.raises(old_root):
        raise schedcancel.ClientClosedError("closed")


@pytest.mark.parametrize("module_name", sorted({module for module, _, _ in RENAMED}))
def test_an_unknown_name_is_still_an_attribute_error(module_name: str) -> None:
    """The module's ``__getattr__`` answers only the renamed names."""
    module = importlib.import_module(module_name)
    with pytest.raises(AttributeError, match=f"module '{module_name}' has no attribute 'Nope'"):
        _ = module.Nope
    assert not hasattr(module, "CancelNothing")


def test_importing_the_package_warns_nothing() -> None:
    """Importing the public modules (and star-importing them) uses no deprecated name."""
    code = "; ".join(f"from {name} import *" for name in PUBLIC_MODULES)
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stderr) == (0, "")
