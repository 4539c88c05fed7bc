"""What the CLI's modules share: exit codes, the program name, install hints, the usage error."""

from __future__ import annotations

from typing import IO

import attrs

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_UNKNOWN = 4
EXIT_INTERRUPTED = 130

#: What each exit code but 0 means: the one text of ``--help`` and of the summary's last line
#: (0 says what every id is, per command). ``docs/cli.md`` details each case.
EXIT_MEANINGS = {
    EXIT_FAILED: "some ids failed for good: refused by the API (e.g. 7040 unknown id),"
    " not valid scheduleIds, or (update) rows in conflict with an earlier change",
    EXIT_USAGE: "usage or input error: a bad option, a missing credential, no ids, input that"
    " cannot be read (not UTF-8, a line too long for an id), bad rows or ids found before"
    " sending (also --dry-run's), an unusable journal (busy,"
    " corrupt, another operation's, not found)",
    EXIT_INCOMPLETE: "incomplete: authentication, transport, server or journal failures, a"
    " base URL whose path does not exist (HTTP 404), or refusals that are not final (7002);"
    " run again with the same --journal",
    EXIT_UNKNOWN: "(start) the outcome of some rows is unknown: their request may have created"
    " the schedule (a timeout, a 5xx, a run killed while it was out); check each one, then"
    " --retry-unknown KEY those that do not exist (docs/migration.md)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C, SIGTERM); run again with the same --journal",
}

PROG = "schedcancel"
INSTALL_CLI_HINT = "pip install 'schedcancel[cli]'"
INSTALL_REDIS_HINT = "pip install 'schedcancel[redis]'"
INSTALL_PROMETHEUS_HINT = "pip install 'schedcancel[prometheus]'"


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


def printable(text: str, limit: int = 500) -> str:
    r"""Return untrusted text (an input id, a message quoting a file) safe to print.

    Every character that is not printable (NUL, terminal escapes, line breaks,
    tabs, bidi controls) is shown escaped as Python writes it (``\x1b``,
    ``\n``, ``\u202e``), and a text longer than ``limit`` characters is cut,
    with its length.

    Args:
        text: the text.
        limit: the most characters shown.

    Returns:
        One line of printable characters.
    """
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return shown if len(text) <= limit else f"{shown}… ({len(text)} characters)"


class _UsageError(Exception):
    """A problem with the command line or its inputs: exit 2 with this message."""


@attrs.frozen
class _Streams:
    stdin: IO[str]
    stdout: IO[str]
    stderr: IO[str]
