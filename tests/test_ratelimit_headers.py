"""The rate-limit header parser: strict, pure, and never raising (examples and fuzzing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from schedcancel import RateLimitHeaders, StatedQuota
from schedcancel._protocol.ratelimit_headers import NO_HEADERS, parse_rate_limit_headers

NOW = datetime(2026, 12, 6, 7, 0, 0, tzinfo=UTC)


def parse(headers: dict[str, str] | CIMultiDict[str]) -> RateLimitHeaders:
    return parse_rate_limit_headers(headers, now=NOW)


@pytest.mark.parametrize(
    ("headers", "quotas"),
    [
        (
            {"RateLimit-Policy": '"default";q=100;w=60', "RateLimit": '"default";r=50;t=30'},
            [StatedQuota(name="default", limit=100, remaining=50, reset=30.0, window=60.0)],
        ),
        (
            {
                "ratelimit-policy": '"user";q=60;w=60, "schedule";q=10;w=60',
                "ratelimit": '"schedule";r=9;t=4, "user";r=0;t=12',
            },
            [
                StatedQuota(name="user", limit=60, remaining=0, reset=12.0, window=60.0),
                StatedQuota(name="schedule", limit=10, remaining=9, reset=4.0, window=60.0),
            ],
        ),
        (  # a policy without its state, and a state without its policy
            {"RateLimit-Policy": '"day";q=1000;w=86400', "RateLimit": '"burst";r=3'},
            [
                StatedQuota(name="day", limit=1000, window=86400.0),
                StatedQuota(name="burst", remaining=3),
            ],
        ),
        (  # a quota of another unit is not requests: left out; a partition key is ignored
            {"RateLimit-Policy": '"b";q=9000;qu="content-bytes", "r";q=5;pk=:YWJj:'},
            [StatedQuota(name="r", limit=5)],
        ),
        (
            {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "7"},
            [StatedQuota(limit=60, remaining=0, reset=7.0)],
        ),
        (  # a Unix-time reset, measured from now (no Date)
            {"X-RateLimit-Limit": "10", "X-RateLimit-Reset": str(int(NOW.timestamp()) + 42)},
            [StatedQuota(limit=10, reset=42.0)],
        ),
        (  # ... or from the answer's own Date
            {
                "X-RateLimit-Remaining": "5",
                "X-RateLimit-Reset": str(int(NOW.timestamp()) + 42),
                "Date": format_datetime(NOW + timedelta(seconds=40), usegmt=True),
            },
            [StatedQuota(remaining=5, reset=2.0)],
        ),
        (  # the older drafts' names, with a quota policy in the limit
            {"RateLimit-Limit": "10, 10;w=1, 50;w=60", "RateLimit-Remaining": "3"},
            [StatedQuota(limit=10, remaining=3, window=1.0)],
        ),
        (
            {"RateLimit-Limit": "100", "RateLimit-Reset": "2.5"},
            [StatedQuota(limit=100, reset=2.5)],
        ),
    ],
)
def test_each_style_is_read(headers: dict[str, str], quotas: list[StatedQuota]) -> None:
    """Every style yields its quotas, names and windows where the style has them."""
    assert parse(headers).quotas == tuple(quotas)


def test_one_style_per_answer_draft_11_first() -> None:
    """An answer in several styles is read in the most precise one only."""
    headers = {
        "RateLimit-Policy": '"u";q=60',
        "RateLimit": '"u";r=7',
        "RateLimit-Limit": "50",
        "X-RateLimit-Limit": "40",
    }
    assert parse(headers).quotas == (StatedQuota(name="u", limit=60, remaining=7),)
    del headers["RateLimit-Policy"], headers["RateLimit"]
    assert parse(headers).quotas == (StatedQuota(limit=50),)
    del headers["RateLimit-Limit"]
    assert parse(headers).quotas == (StatedQuota(limit=40),)


def test_retry_after_in_both_forms_and_repeated_lines_join() -> None:
    """Retry-After in seconds or as an HTTP-date; a field on two lines is one list."""
    assert parse({"Retry-After": "12"}) == RateLimitHeaders(retry_after=12.0)
    date = format_datetime(NOW + timedelta(seconds=30), usegmt=True)
    assert parse({"retry-after": date}).retry_after == 30.0
    lines: CIMultiDict[str] = CIMultiDict()
    lines.add("RateLimit-Policy", '"a";q=5')
    lines.add("RateLimit-Policy", '"b";q=9')
    assert [q.name for q in parse(lines).quotas] == ["a", "b"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "application/json"},
        {"X-RateLimit-Limit": "-1"},
        {"X-RateLimit-Limit": "sixty"},
        {"X-RateLimit-Limit": "1e3"},
        {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "11"},  # contradicts itself
        {"X-RateLimit-Remaining": "9999999999999999"},
        {"RateLimit-Policy": '"a";q=5,'},  # trailing comma: the field fails
        {"RateLimit-Policy": '"a;q=5'},  # unterminated string
        {"RateLimit-Policy": "a;q=5"},  # a token names no policy
        {"RateLimit-Policy": '"a";q=-5'},
        {"RateLimit-Policy": '"a";q=5.5'},  # q is an Integer
        {"RateLimit-Policy": '"a";Q=5'},  # keys are lower case
        {"RateLimit-Policy": '("a");q=5'},  # inner lists are not policies
        {"RateLimit-Policy": '"a"; q=5'.replace(" ", "\t")},
        {"RateLimit": '"a"'},  # r is required
        {"RateLimit-Policy": '"a";q=5', "RateLimit": '"a";r=6'},  # more left than allowed
    ],
)
def test_malformed_or_absent_says_nothing(headers: dict[str, str]) -> None:
    """Malformed fields are ignored, whole: no quota, no exception."""
    said = parse(headers)
    assert said.retry_after is None
    assert said.quotas == ()


def test_a_malformed_parameter_is_dropped_not_the_quota() -> None:
    """A negative reset or a zero window is not stated; the rest of the quota stands."""
    headers = {"RateLimit": '"a";r=1;t=-3', "RateLimit-Policy": '"a";q=5;w=0'}
    assert parse(headers).quotas == (StatedQuota(name="a", limit=5, remaining=1),)


@pytest.mark.parametrize(
    ("policy", "names"),
    [
        ('"a";q=5;ok;x=?0;k=:YWJj:;d=1.5;s="v";t=tok, "b";q=6', ["a", "b"]),
        ('tok;q=1, 7;q=2, "c";q=3', ["c"]),  # only Strings name policies
        ('"a";q=5;d=1.2345', []),  # a decimal with four fraction digits
        ('"a";q=5;d=1234567890123.5', []),  # or thirteen whole ones
        ('"a";q=1234567890123456', []),  # an integer of sixteen digits
        ('"a";q=5;b=?2', []),
        ('"a";q=5;k=:YW', []),
        ('"a";q=5;x=-', []),
        ('"a";q=5;x=@', []),
        ('"a\u00e9";q=5', []),  # nor may a string hold anything but printable ASCII
        ('"a";q=5 "b";q=6', []),  # members need a comma
        ('"a";q=5;;q=6', []),
    ],
)
def test_structured_fields_are_read_strictly(policy: str, names: list[str]) -> None:
    """Every RFC 8941 bare item type parses; anything off the grammar fails the whole field."""
    assert [q.name for q in parse({"RateLimit-Policy": policy}).quotas] == names


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("100, 100;w=60", (100, 60.0)),
        ("100, 50;w=60", (100, None)),
        ("100;w=60", (100, None)),
        ("100, x", (100, None)),
        ("100, 100;w=60 junk", (None, None)),
        ("-1, 1;w=60", (None, None)),
        ('"a", 1;w=60', (None, None)),
        ("100,", (None, None)),
    ],
)
def test_the_older_drafts_limit_with_its_policies(
    limit: str, expected: tuple[int | None, float | None]
) -> None:
    """``RateLimit-Limit: 100, 100;w=60``: the first number, the matching policy's window."""
    quotas = parse({"RateLimit-Limit": limit}).quotas
    got = (quotas[0].limit, quotas[0].window) if quotas else (None, None)
    assert got == expected


def test_nothing_said_is_the_shared_empty_value() -> None:
    """An answer without any rate-limit field costs no allocation."""
    assert parse({"Content-Length": "2"}) is NO_HEADERS


_FIELDS = st.sampled_from(
    [
        "Retry-After",
        "RateLimit",
        "RateLimit-Policy",
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "Date",
    ]
)
_SF = st.text(alphabet='"abq=;rtw,0123456789 -.:?*()\\\t', max_size=40)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_FIELDS, st.one_of(st.text(max_size=40), _SF), max_size=6))
def test_any_headers_parse_to_hints_without_raising(headers: dict[str, str]) -> None:
    """Whatever the fields hold, the parser returns consistent hints and never raises."""
    said = parse(headers)
    assert said.retry_after is None or said.retry_after >= 0
    for quota in said.quotas:
        assert quota.limit is not None or quota.remaining is not None
        assert quota.remaining is None or quota.remaining >= 0
        assert quota.limit is None or quota.remaining is None or quota.remaining <= quota.limit
        assert quota.reset is None or quota.reset >= 0
        assert quota.window is None or quota.window > 0


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 10**6),
    st.integers(0, 10**6),
    st.integers(0, 10**5),
    st.integers(1, 10**5),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_ ", min_size=1, max_size=12),
)
def test_well_formed_draft_11_round_trips(
    limit: int, remaining: int, reset: int, window: int, name: str
) -> None:
    """A well-formed pair of fields reads back exactly (or is refused when it contradicts)."""
    headers = {
        "RateLimit-Policy": f'"{name}";q={limit};w={window}',
        "RateLimit": f'"{name}";r={remaining};t={reset}',
    }
    expected = StatedQuota(
        name=name, limit=limit, remaining=remaining, reset=float(reset), window=float(window)
    )
    assert parse(headers).quotas == ((expected,) if remaining <= limit else ())
