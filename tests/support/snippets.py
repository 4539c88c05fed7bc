"""The python blocks of the documentation, found as ``tests/test_docs_snippets.py`` runs them.

Shared with ``tests/test_docs_site.py``, which checks that the code the built site shows is the
code the snippet test ran.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import attrs

ROOT = Path(__file__).resolve().parent.parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
MODES = ("run", "mock", "pytest", "skip")

FENCE = re.compile(r"^```python\n(?P<code>.*?)^```$", re.DOTALL | re.MULTILINE)
ANY_FENCE = re.compile(r"^[ \t]*```(?P<lang>\S*)", re.MULTILINE)  # not across lines
MARKER = re.compile(r"^<!-- snippet: (?P<mode>\S+)(?: (?P<reason>.*?))? -->$")


def _load_hooks() -> ModuleType:
    """Import ``docs/hooks.py``, the build's own directive expander."""
    spec = importlib.util.spec_from_file_location("schedcancel_docs_hooks", ROOT / "docs/hooks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOKS = _load_hooks()


@attrs.frozen
class Snippet:
    """One python block: where it is, its code, and how its marker says to run it."""

    page: Path
    line: int
    code: str
    mode: str
    reason: str
    before: str = attrs.field(repr=False)  # the page's text above the block

    @property
    def name(self) -> str:
        """``page.md:LINE``, the line of the block's fence in the expanded page."""
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def expanded(page: Path) -> str:
    """A page after the build hook's directives are expanded, as the site renders it."""
    return str(HOOKS.expand(page.read_text(encoding="utf-8"), page))


def snippets(page: Path) -> Iterator[Snippet]:
    """The python blocks of one page, after the build hook's directives are expanded.

    Args:
        page: a Markdown file.

    Yields:
        Each block with the mode and reason of the marker before it (``run`` without one).
    """
    text = expanded(page)
    for match in FENCE.finditer(text):
        previous = text[: match.start()].rstrip("\n").rpartition("\n")[2]
        marker = MARKER.match(previous)
        yield Snippet(
            page=page,
            line=text.count("\n", 0, match.start()) + 1,
            code=match["code"],
            mode=marker["mode"] if marker else "run",
            reason=(marker["reason"] or "") if marker else "",
            before=text[: match.start()],
        )


#: Every python block of every page, in page order.
ALL = [snippet for page in PAGES for snippet in snippets(page)]
