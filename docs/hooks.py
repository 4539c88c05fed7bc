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

The snippet marker ``<!-- snippet: mock -->`` (an example that reads its credentials from the
``SCHEDCANCEL_*`` variables, which the snippet test sets for the mock server) is invisible in
HTML: a note is put before it that says so, with the commands that start the mock server, set
the variables for it and run the example (``MOCK_CONSOLE``; the snippet test runs exactly
these). The first such note on a page is open, later ones are folded.

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
# The mock server, the variables that point a client at it, the example: what the note above
# every example marked `<!-- snippet: mock -->` shows, and what tests/test_docs_snippets.py
# runs (with a free port for 8765). The credentials are the mock server's defaults.
MOCK_CONSOLE = """\
python -m schedcancel.testing --port 8765 --accept-any-id &  # stop it with: kill %1
export SCHEDCANCEL_BASE_URL=http://127.0.0.1:8765/api/v3
export SCHEDCANCEL_API_KEY=test-api-key SCHEDCANCEL_USERNAME=api-user
export SCHEDCANCEL_PASSWORD=api-password
python example.py  # the example below, saved as example.py
"""
MOCK_NOTE = """\
{fold} note "Credentials from the environment: yours, or the mock server's"
    The example reads the API user's credentials from the environment
    ([`ScheduleClient.from_env()`][schedcancel.ScheduleClient.from_env]): export
    `SCHEDCANCEL_API_KEY`, `SCHEDCANCEL_USERNAME` and `SCHEDCANCEL_PASSWORD` (and
    `SCHEDCANCEL_SHARED_SECRET` when the connector signs requests) for your account, and it
    runs against the production gateway. To try it offline, start the built-in mock server
    (every scheduleId exists there) and point the variables at it:

    ```console
{console}    ```
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


class _MockNotes:
    """The note for each ``<!-- snippet: mock -->`` marker of one page: open, then folded."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, match: re.Match[str]) -> str:
        self.count += 1
        console = "".join(f"    {line}\n" for line in MOCK_CONSOLE.splitlines())
        note = MOCK_NOTE.format(fold="!!!" if self.count == 1 else "???", console=console)
        return f"{note}\n{match[0]}"


def expand(markdown: str, page: Path) -> str:
    """Expand the ``include`` and ``cli-help`` directives of one page; explain mock markers.

    A page of ``docs/`` gets the note before each mock marker; the README writes its own.

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
    if page.resolve().is_relative_to(DOCS):  # the README, read on a code host, shows its own
        markdown = _MOCK_MARKER.sub(_MockNotes(), markdown)
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
