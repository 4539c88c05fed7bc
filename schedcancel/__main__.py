"""``python -m schedcancel``: the same as the ``schedcancel`` command."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
