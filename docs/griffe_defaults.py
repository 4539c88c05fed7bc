"""A Griffe extension for this site: constructor defaults written as code, not as reprs.

The reference inspects the package (``force_inspection`` in ``mkdocs.yml``), because attrs
builds each class's ``__init__`` at import time and only the running code has it. Inspection
writes a default as its ``repr``: an attrs factory becomes ``NOTHING`` and an enum member
``<ScheduleStatus.ACTIVE: 'ACTIVE'>``, which is not Python, so the signature formatter gives
up on the whole line. This extension writes them as code instead (``ServerLimits()``,
``ScheduleStatus.ACTIVE``), and leaves out the parameters whose names start with an
underscore (test seams such as ``_clock``), as the reference leaves out such members.

A class whose constructor inspection cannot see gets the signature it is called with: an enum
``Operation(value: str)``, a TypedDict its keys (``CallOptions(*, priority: int = ...)``, each
key optional), an exception with the inherited one ``(*args: object)``. Protocols keep none.
The attributes of an attrs class get back the annotations inspection does not see.
"""

from __future__ import annotations

import enum
import inspect
import typing
from typing import Any

import attrs
import griffe


def _code(value: object, namespace: dict[str, Any]) -> str:
    """``value`` as the Python expression that makes it, as far as a signature needs.

    ``namespace`` is the function's module's: an object whose repr is no expression (an
    address, ``<... object at 0x...>``) is written as the name the module knows it by.
    """
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, frozenset | set) and value:
        items = ", ".join(sorted(_code(item, namespace) for item in value))
        return f"{type(value).__name__}({{{items}}})"
    factory: Any = value
    if isinstance(factory, attrs.Factory):  # type: ignore[arg-type]
        name = getattr(factory.factory, "__name__", "_")
        # A private or anonymous factory says nothing to a reader: the docstring does.
        return "..." if name.startswith(("_", "<")) or factory.takes_self else f"{name}()"
    text = repr(value)
    if text.startswith("<"):
        names = [name for name, known in namespace.items() if known is value]
        return names[0] if names else "..."
    return text


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
                parameter.default = _code(default, getattr(obj, "__globals__", {}))
            kept.append(parameter)
        func.parameters = griffe.Parameters(*kept)

    def on_class_members(
        self,
        *,
        node: Any,
        cls: griffe.Class,
        **kwargs: Any,  # noqa: ARG002 - the agent and whatever Griffe adds later
    ) -> None:
        """Run when inspection has made a class's members: add what its constructor takes."""
        obj = getattr(node, "obj", None)
        if not isinstance(obj, type):
            return
        # Inspection sees an attrs field's value, not its annotation: give the type back.
        for field in attrs.fields(obj) if attrs.has(obj) else ():
            member = cls.members.get(field.name)
            if isinstance(member, griffe.Attribute) and member.annotation is None:
                member.annotation = _annotation(field.type)
        if "__init__" in cls.members:
            return
        parameters = _constructor(obj)
        if parameters is not None:
            self_ = griffe.Parameter("self", kind=griffe.ParameterKind.positional_or_keyword)
            init = griffe.Function(
                "__init__", parameters=griffe.Parameters(self_, *parameters), returns="None"
            )
            cls.set_member("__init__", init)


def _annotation(hint: object) -> str:
    """A type hint as its source text (TypedDict keys and attrs fields may keep it as text)."""
    if isinstance(hint, typing.ForwardRef):
        return hint.__forward_arg__
    if isinstance(hint, str):
        return hint
    return hint.__name__ if isinstance(hint, type) else repr(hint)


def _constructor(obj: type) -> list[griffe.Parameter] | None:
    """The parameters ``obj`` is called with, for the classes inspection finds none for."""
    keyword = griffe.ParameterKind.keyword_only
    if issubclass(obj, enum.Enum):
        values = {type(member.value) for member in obj}
        scalar = values <= {str} or values <= {int}  # else members are looked up by name only
        return [griffe.Parameter("value", annotation=values.pop().__name__ if scalar else None)]
    if typing.is_typeddict(obj):
        optional: frozenset[str] = getattr(obj, "__optional_keys__", frozenset())
        return [
            griffe.Parameter(
                name,
                annotation=_annotation(hint),
                kind=keyword,
                default="..." if name in optional else None,
            )
            for name, hint in obj.__annotations__.items()
        ]
    if issubclass(obj, BaseException):
        return [
            griffe.Parameter("args", annotation="object", kind=griffe.ParameterKind.var_positional)
        ]
    return None
