"""The server's own word on its rate limits: a strict parser of the rate-limit headers. Pure.

Read from every answer, 429 or not (docs/rate-limits.md, "The server's own word"):

* ``Retry-After`` (seconds or an HTTP-date; ``_protocol.response_retry_after``);
* the draft-11 structured fields (draft-ietf-httpapi-ratelimit-headers-11):
  ``RateLimit-Policy: "name";q=100;w=60`` and ``RateLimit: "name";r=50;t=30``,
  RFC 8941 Lists of Items whose bare item is the policy's name (a String);
* the older drafts' ``RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (seconds);
* the de-facto ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (seconds, or a
  Unix time when it is over 10⁹), as IXOPAY's PHP SDK reads them.

One answer is read in one style: draft-11 when it yields a quota, else the
older draft's names, else the ``X-`` ones. The values are hints (the draft's
word): a malformed field, or one that contradicts itself (more remaining than
the limit), is ignored, never raised; a field that is absent says nothing. No
clock is read: the caller passes ``now``, for a ``Retry-After`` date and a
``X-RateLimit-Reset`` Unix time (both measured from the answer's ``Date`` when
it has a readable one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

import attrs

from .wire import _response_time, response_retry_after

__all__ = [
    "NO_HEADERS",
    "RateLimitHeaders",
    "StatedQuota",
    "parse_rate_limit_headers",
]

#: Largest count believed (a bigger number is malformed): 10**9, as RFC 8941 allows 15 digits.
_MAX_COUNT = 10**9
#: An ``X-RateLimit-Reset`` at or over this is a Unix time, not seconds (GitHub's style).
_EPOCH = 10**9
#: Longest reset believed, in seconds (a year); the limiter caps what it obeys anyway.
_MAX_RESET = 366 * 86400.0

_DIGITS = re.compile(r"[0-9]{1,15}")
_SECONDS = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?")


@attrs.frozen(kw_only=True)
class StatedQuota:
    """One quota policy as an answer stated it; each field None when not stated.

    Attributes:
        name: the policy's name (draft-11 only).
        limit: requests the policy allows per window (``q``, ``X-RateLimit-Limit``).
        remaining: requests left before ``reset`` (``r``, ``X-RateLimit-Remaining``),
            never more than ``limit``.
        reset: seconds from the answer until the quota grows again (``t``,
            ``X-RateLimit-Reset``).
        window: the policy's window in seconds (``w``).
    """

    name: str | None = None
    limit: int | None = None
    remaining: int | None = None
    reset: float | None = None
    window: float | None = None


@attrs.frozen(kw_only=True)
class RateLimitHeaders:
    """What an answer's rate-limit headers said, parsed; the limiter's hints.

    [`ScheduleClient`][schedcancel.ScheduleClient] reads them from every answer and hands them
    to a limiter that has `release_heard()` (see [`Limiter`][schedcancel.Limiter]).

    Attributes:
        retry_after: ``Retry-After`` in seconds (it takes precedence over any reset).
        quotas: the quota policies stated, in the order the answer named them.
    """

    retry_after: float | None = None
    quotas: tuple[StatedQuota, ...] = ()


#: An answer that said nothing about its limits.
NO_HEADERS = RateLimitHeaders()


def parse_rate_limit_headers(headers: Mapping[str, str], *, now: datetime) -> RateLimitHeaders:
    """Read every rate-limit header of an answer; ignore what is malformed.

    Args:
        headers: the answer's headers (names looked up case-insensitively; a
            multi-valued mapping's repeated lines are joined with commas).
        now: the current time (aware), for HTTP-dates and Unix times when the
            answer has no readable ``Date``.

    Returns:
        The hints (`NO_HEADERS` when there are none); never raises.
    """
    fields = _fields(headers)
    if not any(name in fields for name in _NAMES):
        return NO_HEADERS
    retry_after = response_retry_after(headers, now=now) if "retry-after" in fields else None
    quotas = _draft11(fields) or _older(fields, "ratelimit-", now, epoch=False)
    if not quotas:
        # A Unix-time reset is measured from the answer's own Date, like a Retry-After date.
        quotas = _older(fields, "x-ratelimit-", _response_time(headers, now), epoch=True)
    return RateLimitHeaders(retry_after=retry_after, quotas=quotas)


_NAMES = (
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
)


def _fields(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit fields by lower-case name; repeated lines joined with ``", "``."""
    found: dict[str, list[str]] = {}
    for key, value in headers.items():  # a multi-dict yields every line
        name = str(key).lower()
        if name in _NAMES and isinstance(value, str):
            found.setdefault(name, []).append(value)
    return {name: ", ".join(values) for name, values in found.items()}


# -- the draft-11 structured fields ---------------------------------------------------


def _draft11(fields: Mapping[str, str]) -> tuple[StatedQuota, ...]:
    policies = _sf_list(fields.get("ratelimit-policy"))
    states = _sf_list(fields.get("ratelimit"))
    by_name: dict[str, StatedQuota] = {}
    order: list[str] = []
    for name, params in policies:
        limit = _count(params.get("q"))
        window = params.get("w")
        unit = params.get("qu", "requests")
        if limit is None or unit != "requests" or name in by_name:
            continue  # required q; a quota of bytes or another unit is not ours to keep
        seconds = float(window) if isinstance(window, int) and window > 0 else None
        by_name[name] = StatedQuota(name=name, limit=limit, window=seconds)
        order.append(name)
    seen: set[str] = set()
    for name, params in states:
        remaining = _count(params.get("r"))
        reset = params.get("t")
        if remaining is None or name in seen:
            continue  # r is required; a policy's state is given once
        seen.add(name)
        quota = by_name.get(name, StatedQuota(name=name))
        if quota.limit is not None and remaining > quota.limit:
            by_name.pop(name, None)  # contradicts its own policy: ignore both
            continue
        delay = float(reset) if isinstance(reset, int) and 0 <= reset <= _MAX_RESET else None
        if name not in by_name:
            order.append(name)
        by_name[name] = attrs.evolve(quota, remaining=remaining, reset=delay)
    return tuple(by_name[name] for name in order if name in by_name)


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        return None
    return value


Bare = int | float | str | bool | bytes


class _Malformed(Exception):  # noqa: N818 - internal signal, never leaves this module
    pass


def _sf_list(text: str | None) -> list[tuple[str, dict[str, Bare]]]:
    """An RFC 8941 List whose members are Strings with parameters; [] when malformed or absent.

    Members that are not Strings (inner lists, tokens, numbers) are left out;
    a syntax error anywhere fails the whole field, as RFC 8941 says.
    """
    if text is None:
        return []
    try:
        return _Parser(text).list()
    except _Malformed:
        return []


class _Parser:
    """A strict reader of the RFC 8941 subset the draft uses (no inner lists needed)."""

    def __init__(self, text: str) -> None:
        self.text = text.strip(" \t")
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def list(self) -> list[tuple[str, dict[str, Bare]]]:
        members: list[tuple[str, dict[str, Bare]]] = []
        while self.pos < len(self.text):
            if self.peek() == "(":
                raise _Malformed  # inner lists name no policy the draft defines
            item = self.bare()
            params = self.params()
            if isinstance(item, str) and not isinstance(item, _Token):
                members.append((item, params))
            self.ows()
            if self.pos == len(self.text):
                break
            if self.peek() != ",":
                raise _Malformed
            self.pos += 1
            self.ows()
            if self.pos == len(self.text):
                raise _Malformed  # a trailing comma
        return members

    def ows(self) -> None:
        while self.peek() in (" ", "\t") and self.peek():
            self.pos += 1

    def params(self) -> dict[str, Bare]:
        params: dict[str, Bare] = {}
        while self.peek() == ";":
            self.pos += 1
            while self.peek() == " ":
                self.pos += 1
            key = self.key()
            value: Bare = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare()
            params[key] = value
        return params

    def key(self) -> str:
        match = _KEY.match(self.text, self.pos)
        if match is None:
            raise _Malformed
        self.pos = match.end()
        return match.group()

    def bare(self) -> Bare:
        char = self.peek()
        if char == '"':
            return self.string()
        if char == "-" or char.isdigit():
            return self.number()
        if char == "?":
            match = _BOOLEAN.match(self.text, self.pos)
            if match is None:
                raise _Malformed
            self.pos = match.end()
            return match.group() == "?1"
        if char == ":":
            match = _BYTES.match(self.text, self.pos)
            if match is None:
                raise _Malformed
            self.pos = match.end()
            return match.group().encode()
        match = _TOKEN.match(self.text, self.pos)
        if match is None:
            raise _Malformed
        self.pos = match.end()
        return _Token(match.group())

    def string(self) -> str:
        out: list[str] = []
        self.pos += 1
        while self.pos < len(self.text):
            char = self.text[self.pos]
            self.pos += 1
            if char == "\\":
                escaped = self.peek()
                if escaped not in ('"', "\\") or not escaped:
                    raise _Malformed
                out.append(escaped)
                self.pos += 1
            elif char == '"':
                return "".join(out)
            elif not " " <= char <= "~":
                raise _Malformed
            else:
                out.append(char)
        raise _Malformed  # unterminated

    def number(self) -> int | float:
        match = _NUMBER.match(self.text, self.pos)
        if match is None:
            raise _Malformed
        self.pos = match.end()
        text = match.group()
        if "." in text:
            whole, _, fraction = text.lstrip("-").partition(".")
            if len(whole) > 12 or not 1 <= len(fraction) <= 3:
                raise _Malformed
            return float(text)
        if len(text.lstrip("-")) > 15:
            raise _Malformed
        return int(text)


class _Token(str):
    """A Token bare item: kept apart from Strings, which name policies."""

    __slots__ = ()


_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]*)?")
_BOOLEAN = re.compile(r"\?[01]")
_BYTES = re.compile(r":[A-Za-z0-9+/=]*:")


# -- the older drafts' names and the X- ones ---------------------------------------------


def _older(
    fields: Mapping[str, str], prefix: str, now: datetime, *, epoch: bool
) -> tuple[StatedQuota, ...]:
    limit, window = _limit(fields.get(prefix + "limit"))
    remaining = _plain_count(fields.get(prefix + "remaining"))
    reset = _reset(fields.get(prefix + "reset"), now, epoch=epoch)
    if limit is None and remaining is None:
        return ()
    if limit is not None and remaining is not None and remaining > limit:
        return ()  # contradicts itself: a hint not to take
    return (StatedQuota(limit=limit, remaining=remaining, reset=reset, window=window),)


def _plain_count(text: str | None) -> int | None:
    if text is None:
        return None
    value = text.strip(" \t")
    if not _DIGITS.fullmatch(value):
        return None
    return _count(int(value))


def _limit(text: str | None) -> tuple[int | None, float | None]:
    """A limit: a plain count, or the older drafts' ``10, 10;w=1, 50;w=60`` (the first counts).

    A window is taken from a policy item whose quota is the limit.
    """
    if text is None:
        return None, None
    plain = _plain_count(text)
    if plain is not None:
        return plain, None
    try:
        parser = _Parser(text)
        first = parser.bare()
        parser.params()
        items: list[tuple[Bare, dict[str, Bare]]] = []
        parser.ows()
        while parser.peek() == ",":
            parser.pos += 1
            parser.ows()
            items.append((parser.bare(), parser.params()))
            parser.ows()
        if parser.pos != len(parser.text):
            return None, None
    except _Malformed:
        return None, None
    limit = _count(first)
    if limit is None:
        return None, None
    window = next(
        (
            float(w)
            for value, params in items
            if value == limit and isinstance(w := params.get("w"), int) and w > 0
        ),
        None,
    )
    return limit, window


def _reset(text: str | None, now: datetime, *, epoch: bool) -> float | None:
    if text is None:
        return None
    value = text.strip(" \t")
    if not _SECONDS.fullmatch(value):
        return None
    seconds = float(value)
    if epoch and seconds >= _EPOCH:
        seconds = max(0.0, seconds - now.astimezone(UTC).timestamp())  # a Unix time
    return seconds if seconds <= _MAX_RESET else None
