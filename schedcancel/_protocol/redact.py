"""Keeping credentials out of every message, repr, log line and journal: the one place for it.

Two kinds of secret, two visible forms:

- an apiKey is shortened by `redact_key()` to a short prefix and ``***``
  (``"conn***"``), so two connectors in one log can still be told apart;
- a password, a shared secret, a Basic-auth token or a URL's password is a
  `Hidden` string, of which no character may show: it becomes ``***``.

`scrub()` takes both kinds out of a text (a server message, a body
excerpt, an exception's message) in every form a body can carry them (see
its docstring); `shorten()` cuts a text without leaving the start of a
secret at the cut; `redact_headers()` shows request headers with the
credential-bearing ones left out; `url_secrets()` finds the password of a
URL (a Redis URL) in both the forms a message may echo. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import functools
import re
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
    "shorten",
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

    `scrub()` replaces it by ``***``; a plain ``str`` (an apiKey) keeps the
    short prefix of `redact_key()`, so two keys in one log can be told apart.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Hidden({HIDDEN!r})"


# The backslashes of an escape, or of an escape of an escape (JSON inside JSON, 4 deep);
# bounded, so a long run of backslashes costs linear time.
_BACKSLASHES = r"\\{1,16}"
# JSON's two-character escapes (RFC 8259 7); "/" as "\/" is how PHP's json_encode writes it.
_SHORT_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "\b": "b",
    "\f": "f",
    "\n": "n",
    "\r": "r",
    "\t": "t",
}
# HTML's named entities for the characters it must escape.
_ENTITIES = {"&": "amp", "<": "lt", ">": "gt", '"': "quot", "'": "apos"}
_URL_SAFE = str.maketrans("+/", "-_")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+=*")
# What a text cut inside an escape may end with: the escape's start, without its character.
_OPEN_ESCAPE = re.compile(
    r"\\{1,16}(?:u[0-9A-Fa-f]{0,3})?|%(?:25){0,4}[0-9A-Fa-f]?|&#?[xX]?[0-9A-Za-z]{0,8}"
)


def _hex(value: int, digits: int) -> str:
    """``value`` in hex, each letter in either case: ``2f`` -> ``2[fF]``."""
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in f"{value:0{digits}x}")


def _char_forms(char: str) -> str:
    """A pattern of one character in each form a body may write it.

    As it is; JSON-escaped (``\\/``, ``\\u002f`` in either case, a surrogate
    pair beyond the BMP, escaped again any number of times); percent-encoded
    (its UTF-8 bytes, ``%2F`` in either case, ``%252F`` when encoded twice,
    ``+`` for a space); an HTML character reference (``&#47;``, ``&#x2f;``,
    ``&amp;``).
    """
    code = ord(char)
    forms = [re.escape(char)]
    if char in _SHORT_ESCAPES:
        forms.append(_BACKSLASHES + re.escape(_SHORT_ESCAPES[char]))
    if code > 0xFFFF:
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        forms.append(f"{_BACKSLASHES}u{_hex(high, 4)}{_BACKSLASHES}u{_hex(low, 4)}")
    else:
        forms.append(f"{_BACKSLASHES}u{_hex(code, 4)}")
    forms.append(
        "".join(f"%(?:25){{0,4}}{_hex(byte, 2)}" for byte in char.encode("utf-8", "replace"))
    )
    if char == " ":
        forms.append(r"\+")
    forms.append(f"&#0{{0,8}}{code};")
    forms.append(f"&#[xX]0{{0,8}}{_hex(code, 1)};")
    if char in _ENTITIES:
        forms.append(f"&{_ENTITIES[char]};")
    return "(?:" + "|".join(forms) + ")"


def _spellings(secret: str, hidden: bool) -> list[str]:
    """The strings that stand for ``secret``: itself and, if `Hidden`, its base64.

    A Hidden secret is a credential a body may echo base64-encoded (the Basic
    token is base64 of ``user:password``; a page may encode the password or
    the secret alone), in the standard or the URL-safe alphabet; a secret
    that is base64 itself (the token) is found in the URL-safe alphabet too.
    Padding is left out: the text before it gives the secret away already.
    """
    if not hidden:
        return [secret]
    encoded = base64.b64encode(secret.encode("utf-8", "surrogatepass")).decode("ascii")
    spellings = [secret, encoded.rstrip("="), encoded.translate(_URL_SAFE).rstrip("=")]
    if _BASE64.fullmatch(secret):
        spellings += [secret.rstrip("=") or secret, secret.translate(_URL_SAFE).rstrip("=")]
    return list(dict.fromkeys(spellings))


class _Scrubber:
    """The compiled form of one set of secrets; never shows them (its repr, or a traceback)."""

    __slots__ = ("_pattern", "_replacements", "_spelled", "tail")

    def __init__(self, secrets: tuple[tuple[str, bool], ...]) -> None:
        spelled = [
            (spelling, HIDDEN if hidden else redact_key(secret))
            for secret, hidden in secrets
            for spelling in _spellings(secret, hidden)
        ]
        # Longest first, so a secret that contains another is replaced whole.
        spelled.sort(key=lambda item: len(item[0]), reverse=True)
        forms = [[_char_forms(c) for c in spelling] for spelling, _ in spelled]
        self._replacements = [replacement for _, replacement in spelled]
        # What a match can start with, tried first: most positions of a text are no start.
        starts = "".join(sorted({re.escape(spelling[0]) for spelling, _ in spelled})) + r"\\%&"
        self._pattern = re.compile(
            f"(?=[{starts}])(?:" + "|".join(f"({''.join(chars)})" for chars in forms) + ")"
        )
        # Each spelling as its characters' patterns, to find a start of one at a cut.
        self._spelled = [[_char_pattern(c) for c in spelling] for spelling, _ in spelled]
        # Longest encoded spelling: 12 characters for each one of the secret's (4 bytes as %XX).
        self.tail = 16 * max(len(spelling) for spelling, _ in spelled) + 16

    def __repr__(self) -> str:
        return f"_Scrubber({HIDDEN})"

    def scrub(self, text: str) -> str:
        return self._pattern.sub(self._replacement, text)

    def _replacement(self, match: re.Match[str]) -> str:
        # The one group that matched is the spelling's: every group inside it is non-capturing.
        return self._replacements[(match.lastindex or 1) - 1]

    def drop_partial(self, text: str) -> str:
        """``text`` without a start of a secret (in any of its forms) at its end."""
        for start in range(max(0, len(text) - self.tail), len(text)):
            if any(_runs_to_the_end(text, start, chars) for chars in self._spelled):
                return text[:start]
        return text


def _runs_to_the_end(text: str, start: int, chars: list[re.Pattern[str]]) -> bool:
    """Whether ``text[start:]`` is a start of the spelling ``chars``: its first character
    at least, whole characters then, maybe the beginning of an escape of the next one."""
    position = start
    for index, char in enumerate(chars):
        match = char.match(text, position)
        if match is None:
            return index > 0 and _OPEN_ESCAPE.fullmatch(text, position) is not None
        position = match.end()
        if position == len(text):
            return True
    return False  # the whole spelling and more: scrubbing replaced those, so not here


@functools.lru_cache(maxsize=512)
def _char_pattern(char: str) -> re.Pattern[str]:
    return re.compile(_char_forms(char))


@functools.lru_cache(maxsize=64)
def _scrubber(secrets: tuple[tuple[str, bool], ...]) -> _Scrubber | None:
    return _Scrubber(secrets) if secrets else None


def _compiled(secrets: Iterable[str]) -> _Scrubber | None:
    key = tuple(dict.fromkeys((s, isinstance(s, Hidden)) for s in secrets if s))
    return _scrubber(key)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in ``text``, in any form, by its redacted form.

    The forms a body (a proxy's page, an echoing server, a JSON error) can
    carry a secret in, each character on its own, so mixtures count too: as
    it is; JSON-escaped (``\\/`` as PHP writes ``/``, ``\\u002f``, escaped
    twice); percent-encoded (``%2F``, ``%2f``, ``%252F``); as an HTML character
    reference (``&#x2F;``). A `Hidden` secret is found base64-encoded
    too (standard or URL-safe, with or without padding), and one that is
    base64 itself (the Basic token) in the URL-safe alphabet.

    Args:
        text: text that might echo a secret (a server message, a body excerpt).
        secrets: the strings that must not appear; empty ones are skipped.
            A `Hidden` one becomes ``***``, any other ``redact_key(secret)``.

    Returns:
        The text without any of the secrets.
    """
    scrubber = _compiled(secrets)
    return text if scrubber is None else scrubber.scrub(text)


def shorten(text: str, limit: int, secrets: Iterable[str], *, marker: str = "…") -> str:
    """Scrub ``text``, then cut it to at most ``limit`` characters, ``marker`` included.

    Scrubbed before it is cut, so a secret that straddles the cut is caught
    whole; and a cut text loses any start of a secret at its end (a prefix
    of the password, half of an escape of it), so the text cut already by
    someone else (a body read in part) gives nothing away either.

    Args:
        text: the text.
        limit: the longest result, in characters.
        secrets: as for `scrub()`.
        marker: what ends a cut text.

    Returns:
        The scrubbed text, whole when it fits.
    """
    scrubber = _compiled(secrets)
    if scrubber is None:
        return text if len(text) <= limit else text[: max(0, limit - len(marker))] + marker
    # What lies beyond the cut by more than a secret's longest form is never shown: left
    # out before scrubbing, which then takes time in proportion to the limit, not the text.
    reach = limit + scrubber.tail
    scrubbed = scrubber.scrub(text[:reach])
    if len(scrubbed) <= limit and len(text) <= reach:
        return scrubbed
    return scrubber.drop_partial(scrubbed[: max(0, limit - len(marker))]) + marker


def redact_headers(headers: Mapping[str, str], secrets: Iterable[str]) -> dict[str, str]:
    """Headers as they may be shown: credential headers left out, the others scrubbed.

    Args:
        headers: the headers of a request.
        secrets: as for `scrub()` (an apiKey may appear in any header).

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
        as `Hidden` strings; empty when there is none.
    """
    userinfo = url.partition("://")[2].partition("/")[0].rpartition("@")[0]
    password = userinfo.partition(":")[2]
    return tuple(Hidden(form) for form in dict.fromkeys((password, unquote(password))) if form)
