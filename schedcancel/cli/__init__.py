"""The ``schedcancel`` command: bulk ``cancel``, ``pause``, ``continue``, ``get``, ``update`` and
``start``, the ``demo``, and the ``mock-server``.

A thin shell over `run_many()`: it parses
arguments, streams ids from arguments, a file or stdin (``update``: rows of
changes, ``start``: rows of registrations, from a CSV or JSON Lines file, each
checked before the first request;
``--dry-run`` on every bulk command checks and shows without sending), shows progress on
stderr, writes one result line per id to stdout (and ``get --report`` a
status report), and maps how the job ended to an exit code, the same for
every bulk command: 0 every id is done, 1 some failed for good, 2 usage or
input error, 3 incomplete (run again), 4 (start) some outcomes unknown (check
them), 130 interrupted. ``EXIT_MEANINGS``
says what each means (in ``--help`` and the summary); the command-line
reference (``docs/cli.md``) details every case and its message.

``rich`` (the ``cli`` extra) draws the progress bar and the summary table on a
terminal; without it, or when stderr is not a terminal, progress is a plain
line every few seconds. Importing this package imports neither.

The package: ``_parser`` (the argument parser and `main()`), ``_settings``
(flags and environment), ``_input`` (ids from arguments, a file or stdin),
``_run`` (the bulk run and the bulk commands), ``_rows`` and ``_update``
(``update``'s and ``start``'s rows, their checks, and ``--dry-run``), ``_report`` (progress,
per-id lines, the summary and the exit code), ``_status_report`` (``get
--report``'s and ``update --report``'s file), ``_demo`` (the ``demo`` command) and ``_common`` (what
they share).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .._deprecated import resolve
from ._common import (
    EXIT_FAILED,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_MEANINGS,
    EXIT_OK,
    EXIT_UNKNOWN,
    EXIT_USAGE,
    INSTALL_CLI_HINT,
    INSTALL_REDIS_HINT,
    PROG,
)
from ._demo import DEMO_API_KEY, DEMO_USERNAME
from ._input import InputError, iter_ids
from ._parser import build_parser, main
from ._report import (
    RunReport,
    format_duration,
    outcome_text,
    print_summary,
    progress_line,
    summary_json,
)
from ._run import run_bulk
from ._settings import (
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_PASSWORD,
    ENV_REDIS_URL,
    ENV_SHARED_SECRET,
    ENV_USERNAME,
    RunSettings,
)

__all__ = [
    "DEMO_API_KEY",
    "DEMO_USERNAME",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "ENV_PASSWORD",
    "ENV_REDIS_URL",
    "ENV_SHARED_SECRET",
    "ENV_USERNAME",
    "EXIT_FAILED",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_MEANINGS",
    "EXIT_OK",
    "EXIT_UNKNOWN",
    "EXIT_USAGE",
    "INSTALL_CLI_HINT",
    "INSTALL_REDIS_HINT",
    "PROG",
    "InputError",
    "RunReport",
    "RunSettings",
    "build_parser",
    "format_duration",
    "iter_ids",
    "main",
    "outcome_text",
    "print_summary",
    "progress_line",
    "run_bulk",
    "summary_json",
]

logger = logging.getLogger("schedcancel.cli")

#: Names of 0.1, each still importable for one release, with a DeprecationWarning.
_RENAMED: dict[str, tuple[str, Any]] = {
    "CancelSettings": ("RunSettings", RunSettings),
    "run_cancel": ("run_bulk", run_bulk),
}

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ warns first
    CancelSettings = RunSettings
    run_cancel = run_bulk


def __getattr__(name: str) -> Any:
    return resolve(__name__, name, _RENAMED)
