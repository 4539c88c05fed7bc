"""What the CLI's modules share: exit codes, the program name, install hints, the usage error."""

from __future__ import annotations

from typing import IO

import attrs

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130

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


class _UsageError(Exception):
    """A problem with the command line or its inputs: exit 2 with this message."""


@attrs.frozen
class _Streams:
    stdin: IO[str]
    stdout: IO[str]
    stderr: IO[str]
