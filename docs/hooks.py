"""MkDocs hooks: pull repository files and the CLI's help into the pages at build time.

Two directives, each alone on a line of a page's Markdown:

- ``<!-- include PATH -->`` (``PATH`` relative to the repository root) is replaced by the
  file's text (``<!-- include PATH body -->``: without its ``# Title`` line, for a page that
  has its own). Relative links and images in an included Markdown file are rewritten to be
  relative to the page, so ``benchmarks/README.md``'s ``../docs/img/arrivals.png`` still
  resolves and ``mkdocs build --strict`` still checks every link. Inside a code fence it
  includes source code as it is (``examples/*.py``).
- ``<!-- cli-help COMMAND -->`` is replaced by a ``text`` block with ``schedcancel COMMAND
  --help`` as argparse prints it (``COMMAND`` may be ``-`` for the top level), so the CLI
  reference cannot drift from the parser; the block is folded in a ``??? note`` (click to
  open it).

The snippet marker ``<!-- snippet: mock -->`` (an example with placeholder credentials, which
the snippet test runs against the mock server) is invisible in HTML: a note is put before it
that says so, and how to run the example offline.

The snippet test (``tests/test_docs_snippets.py``) expands pages with the same function.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

_INCLUDE = re.compile(r"^<!-- include (?P<path>\S+)(?P<body> body)? -->$", re.MULTILINE)
_CLI_HELP = re.compile(r"^<!-- cli-help (?P<command>\S+) -->$", re.MULTILINE)
# [text](target) and ![alt](target); the target up to whitespace or ")".
_LINK = re.compile(r"(?P<head>\]\()(?P<target>[^)\s]+)")
_MOCK_MARKER = re.compile(r"^<!-- snippet: mock -->$", re.MULTILINE)
# Shown above every example marked `<!-- snippet: mock -->`; the marker stays where it is, on
# the line before the block, for the snippet test.
MOCK_NOTE = """\
!!! note "Needs an API user's credentials, or the mock server"
    This example uses placeholder credentials (`my-api-user`, `my-connector-api-key`, `"…"`)
    and the production gateway. To try it offline, start the built-in mock server in another
    terminal (every scheduleId exists there):

    ```console
    python -m schedcancel.testing --port 8080 --accept-any-id \\
        --user my-api-user:my-password --api-key my-connector-api-key
    ```

    and give `ScheduleClient` `base_url="http://127.0.0.1:8080/api/v3"` and
    `password="my-password"` (a `shared_secret` may stay: this server does not check it).
    An example that reads `ids.txt` needs that file: one scheduleId a line.
"""
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#|/)", re.IGNORECASE)


def _rebase_links(text: str, source: Path, page: Path) -> str:
    """Rewrite the relative links of ``source``'s text to be relative to ``page``."""

    def rebase(match: re.Match[str]) -> str:
        target = match["target"]
        if _EXTERNAL.match(target):
            return match[0]
        path, _, fragment = target.partition("#")
        resolved = os.path.normpath(source.parent / path)
        rebased = posixpath.join(*Path(os.path.relpath(resolved, page.parent)).parts)
        return match["head"] + rebased + (f"#{fragment}" if fragment else "")

    return _LINK.sub(rebase, text)


def _cli_help(command: str) -> str:
    """``schedcancel COMMAND --help`` (``-``: the top level): a ``text`` block, folded."""
    from schedcancel.cli._parser import build_parser  # noqa: PLC0415 - only when asked for

    parser = build_parser()
    if command != "-":
        (subcommands,) = (
            action
            for action in parser._actions  # argparse keeps the subcommands only here
            if isinstance(action, argparse._SubParsersAction)
        )
        parser = subcommands.choices[command]
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "88"  # argparse wraps to this width
    try:
        text = parser.format_help()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    command_line = "schedcancel" if command == "-" else f"schedcancel {command}"
    block = f"```text\n{text.rstrip()}\n```"
    # Folded (pymdownx.details): pages of raw help would bury the prose around them.
    indented = "\n".join(f"    {line}" if line else "" for line in block.splitlines())
    return f'??? note "`{command_line} --help`"\n\n{indented}\n'


def expand(markdown: str, page: Path) -> str:
    """Expand the ``include`` and ``cli-help`` directives of one page; explain mock markers.

    Args:
        markdown: the page's Markdown source.
        page: the page's path, for rebasing the links of included Markdown.

    Returns:
        The Markdown with every directive replaced.
    """

    def include(match: re.Match[str]) -> str:
        source = ROOT / match["path"]
        text = source.read_text(encoding="utf-8").rstrip("\n")
        if match["body"] and text.startswith("# "):
            text = text.partition("\n")[2].lstrip("\n")  # the page has its own title
        return _rebase_links(text, source, page) if source.suffix == ".md" else text

    markdown = _INCLUDE.sub(include, markdown)
    markdown = _MOCK_MARKER.sub(lambda match: f"{MOCK_NOTE}\n{match[0]}", markdown)
    return _CLI_HELP.sub(lambda match: _cli_help(match["command"]), markdown)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """MkDocs hook: expand the page's directives before MkDocs renders and checks it.

    Args:
        markdown: the page's Markdown source.
        page: the MkDocs page (its ``file.abs_src_path`` locates it).
        **_: the rest of MkDocs' hook arguments.

    Returns:
        The expanded Markdown.
    """
    return expand(markdown, Path(page.file.abs_src_path))
