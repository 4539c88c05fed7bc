"""Keeping credentials out of every message, repr, log line and journal: the one place for it.

Two kinds of secret, two visible forms:

- an apiKey is shortened by :func:`redact_key` to a short prefix and ``***``
  (``"conn***"``), so two connectors in one log can still be told apart;
- a password, a shared secret, a Basic-auth token or a URL's password is a
  :class:`Hidden` string, of which no character may show: it becomes ``***``.

:func:`scrub` takes both kinds out of a text (a server message, a body
excerpt, an exception's message); :func:`redact_headers` shows request
headers with the credential-bearing ones left out; :func:`url_secrets`
finds the password of a URL (a Redis URL) in both the forms a message may
echo. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import unquote

__all__ = [
    "HEADER_REDACTED",
    "HIDDEN",
    "SECRET_HEADERS",
    "Hidden",
    "redact_headers",
    "redact_key",
    "scrub",
    "url_secrets",
]

#: What stands in for a secret of which no character may show.
HIDDEN = "***"
#: What a request's repr shows for a header that carries credentials.
HEADER_REDACTED = "<redacted>"
#: Headers whose value is a credential as a whole (lower case): Basic auth, the signature.
SECRET_HEADERS = frozenset({"authorization", "x-signature"})


def redact_key(api_key: str) -> str:
    """Shorten an apiKey to a form that is safe in messages, reprs and logs.

    At most a quarter of the key, and never more than four characters, stays
    readable, so two keys in one log can still be told apart.

    Args:
        api_key: the key.

    Returns:
        For example ``"conn***"`` for ``"connector-api-key"``.
    """
    shown = min(4, len(api_key) // 4)
    return f"{api_key[:shown]}{HIDDEN}"


class Hidden(str):
    """A secret of which no character may show: a password, a shared secret, a Basic token.

    :func:`scrub` replaces it by ``***``; a plain ``str`` (an apiKey) keeps the
    short prefix of :func:`redact_key`, so two keys in one log can be told apart.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Hidden({HIDDEN!r})"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in ``text`` by its redacted form.

    Args:
        text: text that might echo a secret (a server message, a body excerpt).
        secrets: the strings that must not appear; empty ones are skipped.
            A :class:`Hidden` one becomes ``***``, any other ``redact_key(secret)``.

    Returns:
        The text without any of the secrets.
    """
    # Longest first, so a secret that contains another is replaced whole.
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, HIDDEN if isinstance(secret, Hidden) else redact_key(secret))
    return text


def redact_headers(headers: Mapping[str, str], secrets: Iterable[str]) -> dict[str, str]:
    """Headers as they may be shown: credential headers left out, the others scrubbed.

    Args:
        headers: the headers of a request.
        secrets: as for :func:`scrub` (an apiKey may appear in any header).

    Returns:
        A new dict, ``Authorization`` and ``X-Signature`` (any case) as ``<redacted>``.
    """
    secrets = tuple(secrets)
    return {
        name: HEADER_REDACTED if name.lower() in SECRET_HEADERS else scrub(value, secrets)
        for name, value in headers.items()
    }


def url_secrets(url: str) -> tuple[Hidden, ...]:
    """The password in a URL, as written and %-decoded, to keep out of messages.

    The URL is split by hand, not with ``urlsplit``: this is for the malformed
    URLs that ``urlsplit`` raises on too, and a password holding an unencoded
    ``?`` or ``#`` is still found (the last ``@`` before the first ``/`` ends it).

    Args:
        url: a URL such as ``redis://user:p%40ss@host:6379/0``.

    Returns:
        The password in both forms (``"p%40ss"`` and ``"p@ss"``), each once,
        as :class:`Hidden` strings; empty when there is none.
    """
    userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    return tuple(Hidden(form) for form in dict.fromkeys((password, unquote(password))) if form)
