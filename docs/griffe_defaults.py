"""A Griffe extension for this site: constructor defaults written as code, not as reprs.

The reference inspects the package (``force_inspection`` in ``mkdocs.yml``), because attrs
builds each class's ``__init__`` at import time and only the running code has it. Inspection
writes a default as its ``repr``: an attrs factory becomes ``NOTHING`` and an enum member
``<ScheduleStatus.ACTIVE: 'ACTIVE'>``, which is not Python, so the signature formatter gives
up on the whole line. This extension writes them as code instead (``ServerLimits()``,
``ScheduleStatus.ACTIVE``), and leaves out the parameters whose names start with an
underscore (test seams such as ``_clock``), as the reference leaves out such members.
"""

from __future__ import annotations

import enum
import inspect
from typing import Any

import attrs
import griffe


def _code(value: object) -> str:
    """``value`` as the Python expression that makes it, as far as a signature needs."""
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, frozenset | set) and value:
        items = ", ".join(sorted(_code(item) for item in value))
        return f"{type(value).__name__}({{{items}}})"
    factory: Any = value
    if isinstance(factory, attrs.Factory):  # type: ignore[arg-type]
        name = getattr(factory.factory, "__name__", "_")
        # A private or anonymous factory says nothing to a reader: the docstring does.
        return "..." if name.startswith(("_", "<")) or factory.takes_self else f"{name}()"
    return repr(value)


class ConstructorDefaults(griffe.Extension):
    """Rewrite the defaults of inspected functions; fill in attrs factories."""

    def on_function_instance(
        self,
        *,
        node: Any,
        func: griffe.Function,
        **kwargs: Any,  # noqa: ARG002 - the agent and whatever Griffe adds later
    ) -> None:
        """Run when inspection has made a function (a method, a class's ``__init__``)."""
        obj = getattr(node, "obj", None)
        if obj is None or not callable(obj):
            return
        try:
            signature = inspect.signature(obj)
        except (TypeError, ValueError):
            return
        owner = getattr(getattr(node, "parent", None), "obj", None)
        fields = (
            {field.alias: field for field in attrs.fields(owner)}
            if func.name == "__init__" and isinstance(owner, type) and attrs.has(owner)
            else {}
        )
        kept = []
        for parameter in func.parameters:
            if parameter.name.startswith("_") and parameter.name not in {"self", "cls"}:
                continue
            known = signature.parameters.get(parameter.name)
            if known is not None and known.default is not inspect.Parameter.empty:
                default = known.default
                field = fields.get(parameter.name)
                if field is not None and default is attrs.NOTHING:
                    default = field.default
                parameter.default = _code(default)
            kept.append(parameter)
        func.parameters = griffe.Parameters(*kept)
