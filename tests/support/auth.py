"""The ``Authorization`` header a plain HTTP client sends, built without aiohttp's helpers.

aiohttp 3.14 deprecates ``BasicAuth`` and 3.9 has no ``encode_basic_auth``: the
tests build the header as the API documents it, on every aiohttp version.
"""

from __future__ import annotations

import base64


def basic_auth(username: str, password: str) -> str:
    """``Basic`` and base64 of ``username:password`` in UTF-8."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
