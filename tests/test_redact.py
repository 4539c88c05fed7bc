"""Tests for the one redaction module: apiKey prefixes, hidden secrets, scrubbing, URL passwords."""

from __future__ import annotations

import pytest
from schedcancel._redact import (
    HEADER_REDACTED,
    HIDDEN,
    Hidden,
    redact_headers,
    redact_key,
    scrub,
    url_secrets,
)

KEY = "connector-api-key"
PASSWORD = "Tr0ub4dor&3"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("", "***"),
        ("a", "***"),
        ("abc", "***"),
        ("abcd", "a***"),
        ("abcdefgh", "ab***"),
        ("abcdefghijkl", "abc***"),
        ("connector-api-key", "conn***"),
        ("K" * 50, "KKKK***"),
    ],
)
def test_redact_key_keeps_a_short_prefix(key: str, expected: str) -> None:
    """At most a quarter of an apiKey, and at most four characters, stays readable."""
    assert redact_key(key) == expected


def test_hidden_is_the_secret_but_never_shows_it() -> None:
    """A Hidden compares and replaces as its text, while its repr shows no character of it."""
    hidden = Hidden(PASSWORD)
    assert hidden == PASSWORD
    assert repr(hidden) == "Hidden('***')"
    assert PASSWORD[:2] not in f"{hidden!r} {[hidden]} {(hidden,)}"


@pytest.mark.parametrize(
    ("text", "secrets", "expected"),
    [
        (f"u:{PASSWORD} key={KEY}", [KEY, Hidden(PASSWORD)], "u:*** key=conn***"),
        (f"{PASSWORD}{PASSWORD}", [Hidden(PASSWORD)], "******"),
        (
            "key=abcdefgh-longer pass=abcdefgh",
            ["abcdefgh", "abcdefgh-longer"],
            "key=abc*** pass=ab***",
        ),
        ("pw=secret-and-more", [Hidden("secret"), Hidden("secret-and-more")], "pw=***"),
        ("nothing to hide", [KEY, Hidden(PASSWORD)], "nothing to hide"),
        ("empty secrets are skipped", ["", Hidden("")], "empty secrets are skipped"),
        (f"no secrets given {KEY}", [], f"no secrets given {KEY}"),
    ],
)
def test_scrub_replaces_every_secret(text: str, secrets: list[str], expected: str) -> None:
    """scrub replaces each secret, longest first: a Hidden one by ***, an apiKey by its prefix."""
    assert scrub(text, secrets) == expected


def test_scrub_takes_any_iterable_once() -> None:
    """The secrets may come from a generator, which scrub reads only once."""
    secrets = (s for s in [KEY, Hidden(PASSWORD)])
    assert scrub(f"{KEY}/{PASSWORD}", secrets) == "conn***/***"


def test_redact_headers_hides_credential_headers_in_any_case() -> None:
    """Authorization and X-Signature show as <redacted>; other headers are scrubbed of secrets."""
    headers = {
        "authorization": "Basic dXNlcjpwYXNz",
        "X-SIGNATURE": "c2lnbmF0dXJl",
        "Referer": f"https://h.example/schedule/{KEY}/SC-1/cancel",
        "Accept": "application/json",
    }
    shown = redact_headers(headers, [KEY])
    assert shown == {
        "authorization": HEADER_REDACTED,
        "X-SIGNATURE": HEADER_REDACTED,
        "Referer": "https://h.example/schedule/conn***/SC-1/cancel",
        "Accept": "application/json",
    }
    assert headers["authorization"] == "Basic dXNlcjpwYXNz"  # the input is left alone


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:pw@127.0.0.1:6379/0", ("pw",)),
        ("redis://user:pw@host", ("pw",)),
        ("rediss://user:p%40ss%3Aw@host:6380/1", ("p%40ss%3Aw", "p@ss:w")),
        ("redis://user:p?x#y@host/0", ("p?x#y",)),
        ("redis://u:pw@[::1/0", ("pw",)),
        ("redis://u:pw@host:99999999/0", ("pw",)),
        ("redis://u:a@b@host/0", ("a@b",)),
        ("redis://user@host:6379/0", ()),
        ("redis://host:6379/0", ()),
        ("redis://u:p%40ss@[::1/0", ("p%40ss", "p@ss")),  # urlsplit raises on this one
        ("redis://host/0?user=a@b", ()),
        ("unix:///run/redis.sock", ()),
        ("not a url", ()),
        ("", ()),
    ],
)
def test_url_secrets_finds_the_password_as_written_and_decoded(
    url: str, expected: tuple[str, ...]
) -> None:
    """The password of a URL comes back in both forms a message may echo, each a Hidden."""
    found = url_secrets(url)
    assert found == expected
    assert all(isinstance(secret, Hidden) for secret in found)


def test_url_secrets_and_scrub_hide_an_encoded_password_in_any_form() -> None:
    """A message echoing a URL's password, raw or decoded, shows neither after scrubbing."""
    url = "redis://app:s3cr%2Ft%40x@redis.internal:6379/0"
    message = f"cannot connect to {url}; AUTH s3cr/t@x refused"
    out = scrub(message, url_secrets(url))
    assert "s3cr" not in out
    assert out == f"cannot connect to redis://app:{HIDDEN}@redis.internal:6379/0; AUTH *** refused"
