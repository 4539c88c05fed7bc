"""Tests for the one redaction module: apiKey prefixes, hidden secrets, scrubbing, URL passwords."""

from __future__ import annotations

import base64
import html
import json
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from schedcancel._protocol.redact import (
    HEADER_REDACTED,
    HIDDEN,
    Hidden,
    _compiled,
    redact_headers,
    redact_key,
    scrub,
    shorten,
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


# --- every form a body can carry a secret in ---------------------------------------------------

#: A password whose Basic token (base64 of ``api-user:`` and it) holds both "+" and "/".
SLASHY = "PW-SENTINEL-He>9Z?"
TOKEN = base64.b64encode(f"api-user:{SLASHY}".encode()).decode()
SECRETS = (Hidden(SLASHY), Hidden(TOKEN), Hidden("SS/SENTINEL+91bc"), KEY)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _u_escapes(text: str, spec: str) -> str:
    """Every character as JSON's \\uXXXX escape (a surrogate pair beyond the BMP)."""
    units = text.encode("utf-16-be")
    return "".join(f"\\u{int.from_bytes(units[i : i + 2]):{spec}}" for i in range(0, len(units), 2))


def _forms(secret: str) -> dict[str, str]:
    """The ways a body may write ``secret``: JSON, PHP's JSON, percent, HTML, base64."""
    return {
        "raw": secret,
        "json": json.dumps(secret)[1:-1],
        "php json": json.dumps(secret)[1:-1].replace("/", "\\/"),
        "json ascii escapes": _u_escapes(secret, "04x"),
        "JSON ASCII ESCAPES": _u_escapes(secret, "04X"),
        "json in json": json.dumps(json.dumps(secret).replace("/", "\\/"))[3:-3],
        "percent": quote(secret, safe=""),
        "percent lower": "".join(f"%{b:02x}" for b in secret.encode()),
        "percent twice": quote(quote(secret, safe=""), safe=""),
        "form": quote(secret, safe="").replace("%20", "+"),
        "html": html.escape(secret),
        "html numeric": "".join(f"&#x{ord(c):x};" if not c.isalnum() else c for c in secret),
        "base64": _b64(secret),
        "base64 unpadded": _b64(secret).rstrip("="),
        "base64 url-safe": base64.urlsafe_b64encode(secret.encode()).decode(),
    }


def test_the_slashy_password_gives_a_token_with_a_slash_and_a_plus() -> None:
    """The case the issue found: about 7.5 % of passwords give a token holding "/"."""
    assert "/" in TOKEN
    assert "+" in TOKEN


@pytest.mark.parametrize("secret", [SLASHY, TOKEN, "SS/SENTINEL+91bc", "pä ss/wörd 😀"])
@pytest.mark.parametrize("form", list(_forms("x")))
def test_scrub_finds_a_hidden_secret_in_every_form(secret: str, form: str) -> None:
    """Each form of each credential (the Basic token as PHP escapes it, too) becomes ***."""
    written = _forms(secret)[form]
    text = f'{{"echo": "Authorization: Basic {written}", "n": 1}}'
    out = scrub(text, [*SECRETS, Hidden("pä ss/wörd 😀")])
    # base64 padding after the secret is left: the text before it gives everything away
    out = out.replace("***==", "***").replace("***=", "***")
    assert out == '{"echo": "Authorization: Basic ***", "n": 1}'


def test_scrub_finds_the_token_in_the_url_safe_alphabet() -> None:
    """The Basic token written in base64url ("-" and "_" for "+" and "/")."""
    url_safe = TOKEN.translate(str.maketrans("+/", "-_"))
    assert scrub(f"auth={url_safe}", SECRETS) == "auth=***"


def test_scrub_finds_an_apikey_escaped_and_shows_its_prefix() -> None:
    """A plain (apiKey) secret is found in its escaped forms too, and shortened as ever."""
    for written in _forms(KEY).values():
        if not written.startswith("Y2"):  # base64 is for Hidden credentials only
            assert scrub(f"k={written}.", [KEY]) == "k=conn***."


def test_scrub_leaves_what_only_looks_like_an_escape() -> None:
    """Escapes of other characters, and lone escape starts, are left as they are."""
    text = "a\\/b %2F \\u0041 &#x2F; PW-SENTINEL-He>9Z"
    assert scrub(text, SECRETS) == text


def test_scrub_is_linear_on_long_runs_of_escape_characters() -> None:
    """A long run of backslashes or percent signs does not make the patterns backtrack
    (quadratic, 100,000 backslashes would take minutes)."""
    for char in ("\\", "%", "&#x", "P"):
        assert scrub(char * 100_000, SECRETS) == char * 100_000


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("0123456789abc", 10, "012345678…"),
        # cut inside the password, the token, an escape of it, the apiKey: the start goes too
        ("err PW-SENTINEL-He", 12, "err …"),
        ("err YXBpLXVzZXI6UFct", 14, "err …"),
        ("err PW\\u002dSENT", 14, "err …"),
        ("err PW%2", 9, "err PW%2"),
        ("err PW\\u002", 10, "err …"),  # cut inside the escape of the third character
        ("err PW%2D", 8, "err …"),
        ("err connector-ap", 12, "err …"),
        ("err connector-api-key", 12, "err conn***"),
        # a whole secret before the cut is replaced, not cut
        ("err PW-SENTINEL-He>9Z? and more", 20, "err *** and more"),
        ("err PW-SENTINEL-He>9Z? and more and more", 14, "err *** and m…"),
        # a secret that straddles the cut is replaced whole, before cutting
        (f"{'x' * 8}{TOKEN}", 12, "xxxxxxxx***"),
    ],
)
def test_shorten_scrubs_then_cuts_and_leaves_no_start_of_a_secret(
    text: str, limit: int, expected: str
) -> None:
    """A cut text never ends with the first characters of a secret, in any of its forms."""
    assert shorten(text, limit, SECRETS) == expected
    assert len(shorten(text, limit, SECRETS)) <= limit


def test_shorten_cuts_a_text_already_cut_before_a_secret_ends() -> None:
    """A body the server cut inside the token (a proxy's excerpt): no prefix of it stays."""
    body = "header " + "y" * 40 + TOKEN[:20]
    out = shorten(body, 50, SECRETS)
    assert out == "header " + "y" * 40 + "…"
    assert shorten("abc", 10, []) == "abc"
    assert shorten("abcdefghijkl", 10, []) == "abcdefghi…"


@given(st.text(max_size=60), st.integers(min_value=1, max_value=80))
def test_shorten_never_shows_eight_characters_of_a_secret(text: str, limit: int) -> None:
    """Whatever surrounds a secret and wherever the cut falls, no 8-character piece shows."""
    for secret in (SLASHY, TOKEN):
        out = shorten(text + secret + text, limit, SECRETS)
        assert len(out) <= limit
        assert not any(secret[i : i + 8] in out for i in range(len(secret) - 7))


def test_a_whole_secret_inside_the_end_is_no_start_of_one() -> None:
    """Dropping a start of a secret at a cut looks at starts only: a whole one followed by more
    text (never there once scrubbed) ends no text, and the text stays as it is."""
    scrubber = _compiled([Hidden("ab")])
    assert scrubber is not None
    assert scrubber.drop_partial("x ab c") == "x ab c"
    assert scrubber.drop_partial("x ab c a") == "x ab c "


def test_the_compiled_secrets_never_show_in_a_repr() -> None:
    """A traceback that renders locals shows the compiled form of the secrets as ***."""
    scrubber = _compiled([Hidden(SLASHY), KEY])
    assert repr(scrubber) == "_Scrubber(***)"
    assert _compiled([]) is None
