"""The package's layers, checked: no import cycle, no import up the layers, the library apart.

The import graph is read from the source (``ast``), not by importing: every
``import`` and ``from ... import`` of the package's own modules, at module
level and inside functions (a lazy import is still a dependency). Imports under
``if TYPE_CHECKING:`` are left out (they are types for the checker, never run),
except in one test: no cycle even through them.
The table below is the one in docs/development.md ("Layers"); keep them the same.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "schedcancel"

#: Lowest first. A module may import modules of its own layer or of a lower one.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("leaves", ("errors", "_version", "_deprecated", "_operations", "_redact", "_validate")),
    (
        "values and pure cores",
        (
            "_models",
            "_convert",
            "_requests",
            "_protocol",
            "_ratelimit_headers",
            "_window",
            "_queue",
            "_adaptive",
            "_server_state",
        ),
    ),
    ("limiting", ("_stores", "_limiter", "_gate", "_redis_scripts", "redis")),
    ("services", ("_transport", "_hooks", "_journal", "_bulk")),
    ("client", ("_client", "hooks", "otel", "prometheus")),
    ("package", ("schedcancel",)),
    ("applications", ("cli", "_mock", "testing", "pytest_plugin", "__main__")),
)
#: What the library (every layer but the applications) must never import.
APPLICATIONS = frozenset(LAYERS[-1][1])
#: The emulator is written on its own: of the package it imports only these.
EMULATOR_MAY_IMPORT = frozenset({"_mock", "errors"})

_LAYER_OF = {group: index for index, (_, groups) in enumerate(LAYERS) for group in groups}


def _table() -> str:
    lines = [f"{index}. {name}: {', '.join(groups)}" for index, (name, groups) in enumerate(LAYERS)]
    return "layers, lowest first (a module imports its own layer or lower ones):\n" + "\n".join(
        lines
    )


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _group(module: str) -> str:
    """``schedcancel.cli._run`` -> ``cli``; the package itself -> ``schedcancel``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST, *, type_checking: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in ast.iter_child_nodes(tree):
        if not type_checking and isinstance(node, ast.If) and _type_checking_only(node):
            for child in node.orelse:
                yield from _import_nodes(child, type_checking=type_checking)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _import_nodes(node, type_checking=type_checking)


def _imports(module: str, path: Path, known: set[str], *, type_checking: bool) -> set[str]:
    """The package's modules ``module`` imports."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in _import_nodes(tree, type_checking=type_checking):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from . import _models`` names a module; ``from ._models import X`` does not.
            targets = [
                f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known
            ]
            targets = targets or [base]
        found.update(target for target in targets if target in known and target != module)
    return found


def _graph(*, type_checking: bool = False) -> dict[str, set[str]]:
    """The import graph; with ``type_checking``, imports for the type checker count too."""
    modules = _modules()
    known = set(modules)
    return {
        module: _imports(module, path, known, type_checking=type_checking)
        for module, path in modules.items()
    }


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def test_every_module_has_a_layer() -> None:
    unplaced = sorted({_group(module) for module in _modules()} - set(_LAYER_OF))
    assert not unplaced, f"modules in no layer: {unplaced}; add them to LAYERS\n{_table()}"


def test_no_import_cycle() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}\n{_table()}"


def test_no_cycle_even_through_imports_for_the_type_checker() -> None:
    """Types follow the layers too: no ``if TYPE_CHECKING:`` import closes a loop."""
    cycle = _find_cycle(_graph(type_checking=True))
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}\n{_table()}"


def test_no_import_up_the_layers() -> None:
    upward = [
        f"{module} ({LAYERS[_LAYER_OF[_group(module)]][0]}) imports {target} "
        f"({LAYERS[_LAYER_OF[_group(target)]][0]})"
        for module, targets in sorted(_graph().items())
        for target in sorted(targets)
        if _LAYER_OF[_group(target)] > _LAYER_OF[_group(module)]
    ]
    assert not upward, "imports up the layers:\n" + "\n".join(upward) + "\n" + _table()


def test_the_library_never_imports_the_cli_or_the_emulator() -> None:
    reaching = [
        f"{module} imports {target}"
        for module, targets in sorted(_graph().items())
        if _group(module) not in APPLICATIONS
        for target in sorted(targets)
        if _group(target) in APPLICATIONS
    ]
    assert not reaching, "the library imports an application:\n" + "\n".join(reaching)


def test_the_emulator_imports_nothing_of_the_client() -> None:
    reaching = [
        f"{module} imports {target}"
        for module, targets in sorted(_graph().items())
        if _group(module) == "_mock"
        for target in sorted(targets)
        if _group(target) not in EMULATOR_MAY_IMPORT
    ]
    assert not reaching, "the emulator imports the client's code:\n" + "\n".join(reaching)


def test_the_version_is_computed_in_one_place() -> None:
    """Only ``_version`` reads the installed distribution; everything else imports it."""
    readers = sorted(
        module
        for module, path in _modules().items()
        if "importlib.metadata" in path.read_text(encoding="utf-8")
        or "importlib import metadata" in path.read_text(encoding="utf-8")
    )
    assert readers == ["schedcancel._version"]


def test_the_graph_sees_function_level_imports_and_skips_type_checking_ones() -> None:
    graph = _graph()
    # cli._parser imports the emulator's façade inside a function (mock-server only).
    assert "schedcancel.testing" in graph["schedcancel.cli._parser"]
    # ``from . import _bulk`` names a module, resolved as one.
    assert "schedcancel._bulk" in graph["schedcancel._client"]
    # cli._run names the Limiter protocol (in _models) for the type checker only.
    assert "schedcancel._models" not in graph["schedcancel.cli._run"]


def test_a_cycle_is_found_and_shown() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
