"""Old public names that still resolve, with a `DeprecationWarning`, for one release.

A public module lists its renamed names in a mapping (old name to the new name
and the object) and answers attribute look-ups through `resolve()` from a
module-level ``__getattr__`` (PEP 562). The old names are no module attributes,
so both ``module.OldName`` and ``from module import OldName`` reach it and
warn; each returns the very object of the new name, so ``except OldError``
still catches everything ``except NewError`` does.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

__all__ = ["REMOVED_IN", "resolve"]

#: The release that drops the names deprecated now (kept for one release: 0.2).
REMOVED_IN = "0.3"


def resolve(module: str, name: str, renamed: Mapping[str, tuple[str, Any]]) -> Any:
    """The object behind a renamed attribute of ``module``, after a deprecation warning.

    Args:
        module: the module's name (``__name__``).
        name: the attribute looked up.
        renamed: old name to ``(new name, object)``.

    Returns:
        The object of the new name.

    Raises:
        AttributeError: ``name`` is no renamed attribute either.
    """
    try:
        new_name, value = renamed[name]
    except KeyError:
        raise AttributeError(f"module {module!r} has no attribute {name!r}") from None
    warnings.warn(
        f"{module}.{name} is deprecated and will be removed in schedcancel {REMOVED_IN};"
        f" use {module}.{new_name}",
        DeprecationWarning,
        stacklevel=3,
    )
    return value
