"""The mock server's rate-limit headers: each model's remaining and reset, each style, the CLI."""

from __future__ import annotations

import argparse
import base64

import aiohttp
import pytest
from schedcancel._mock.headers import rate_limit_headers
from schedcancel._mock.limits import (
    FixedWindow,
    Level,
    LimitBook,
    SlidingCounter,
    SlidingLog,
    TokenBucket,
)
from schedcancel.testing import (
    HEADER_STYLES,
    HeaderStyle,
    MockScheduleServer,
    ServerLimits,
    add_mock_server_arguments,
    server_from_args,
)


def test_sliding_log_remaining_and_reset() -> None:
    """Remaining is the limit minus the window's entries; reset, until the oldest leaves."""
    log = SlidingLog(3, 10.0)
    assert (log.remaining(0.0), log.reset(0.0)) == (3, 0.0)
    log.add(1.0)
    log.add(4.0)
    assert (log.remaining(5.0), log.reset(5.0)) == (1, 6.0)
    assert (log.remaining(11.0), log.reset(11.0)) == (2, 3.0)


def test_fixed_window_remaining_and_reset() -> None:
    """Until the window ends, and nothing to wait for when it is empty."""
    window = FixedWindow(3, 10.0, origin=0.0)
    assert (window.remaining(2.0), window.reset(2.0)) == (3, 0.0)
    window.add(2.0)
    assert (window.remaining(4.0), window.reset(4.0)) == (2, 6.0)


def test_token_bucket_remaining_and_reset() -> None:
    """Whole tokens; until the next whole one (0 when full)."""
    bucket = TokenBucket(4, 4.0)
    assert (bucket.remaining(0.0), bucket.reset(0.0)) == (4, 0.0)
    for _ in range(3):
        bucket.add(0.0)
    assert bucket.remaining(0.5) == 1
    assert bucket.reset(0.5) == pytest.approx(0.5)


def test_sliding_counter_remaining_and_reset() -> None:
    """How many more the estimate admits; until it has decayed by one more, or the window ends."""
    counter = SlidingCounter(10, 10.0, origin=0.0)
    assert (counter.remaining(1.0), counter.reset(1.0)) == (10, 0.0)
    for _ in range(4):
        counter.add(1.0)
    assert (counter.remaining(2.0), counter.reset(2.0)) == (6, 8.0)  # no previous: window end
    for _ in range(6):
        counter.add(2.0)
    # Next window, 1.5 s in: estimate 10 * 0.85 = 8.5, so 2 more; a third once it is below 8.
    assert counter.remaining(11.5) == 2
    assert counter.reset(11.5) == pytest.approx(0.5)


def test_each_style_says_what_it_should() -> None:
    """none: nothing; x-429: on 429s; x-all: the user's or the refusing level; draft-11: both."""
    quotas: dict[Level, tuple[int, int, float]] = {
        "total": (60, 12, 0.2),
        "per_schedule": (10, 0, 3.5),
    }
    assert rate_limit_headers("none", quotas, window=2.0, refused="total") == {}
    assert rate_limit_headers("x-429", quotas, window=2.0, refused=None) == {}
    assert rate_limit_headers("x-429", quotas, window=2.0, refused="per_schedule") == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "4",
    }
    assert (
        rate_limit_headers("x-all", quotas, window=2.0, refused=None)["X-RateLimit-Limit"] == "60"
    )
    assert rate_limit_headers("draft-11", quotas, window=2.0, refused=None) == {
        "RateLimit-Policy": '"user";q=60;w=2, "schedule";q=10;w=2',
        "RateLimit": '"user";r=12;t=1, "schedule";r=0;t=4',
    }
    # A window of no whole number of seconds is not stated (w is an Integer).
    assert (
        "w="
        not in rate_limit_headers("draft-11", quotas, window=0.5, refused=None)["RateLimit-Policy"]
    )


def test_the_book_states_both_levels_or_the_users_alone() -> None:
    """A start has no scheduleId: only the API user's level."""
    book = LimitBook(ServerLimits(total=5, per_schedule=2, window=1.0))
    book.count(0.0, user="u", schedule_id="SC-1")
    assert book.quotas(0.5, user="u", schedule_id="SC-1") == {
        "total": (5, 4, 0.5),
        "per_schedule": (2, 1, 0.5),
    }
    assert list(book.quotas(0.5, user="u", schedule_id=None)) == ["total"]


@pytest.mark.parametrize("style", HEADER_STYLES)
async def test_the_server_sends_its_style_on_answers_and_429s(style: HeaderStyle) -> None:
    """A real request: the 200 and the 429 carry the style's headers."""
    limits = ServerLimits(total=1, per_schedule=1, window=60.0)
    async with MockScheduleServer(
        limits=limits, unknown_ids="active", rate_limit_headers=style
    ) as server:
        auth = {"Authorization": "Basic " + base64.b64encode(b"api-user:api-password").decode()}
        async with aiohttp.ClientSession() as session:
            answers = []
            for _ in range(2):
                async with session.post(server.url_for("SC-1"), json={}, headers=auth) as response:
                    answers.append((response.status, dict(response.headers)))
    (ok, ok_headers), (refused, refused_headers) = answers
    assert (ok, refused) == (200, 429)
    names = {"none": set(), "x-429": set(), "x-all": {"X-RateLimit-Remaining"}}
    assert names.get(style, {"RateLimit"}) <= set(ok_headers)
    assert ("X-RateLimit-Limit" in ok_headers) == (style == "x-all")
    if style in ("x-429", "x-all"):
        assert refused_headers["X-RateLimit-Remaining"] == "0"
        assert 1 <= int(refused_headers["X-RateLimit-Reset"]) <= 60
    if style == "draft-11":
        assert refused_headers["RateLimit"].startswith('"user";r=0')
    if style == "none":
        assert not any("ratelimit" in name.lower() for name in refused_headers)


def test_the_cli_switches_the_style() -> None:
    """--rate-limit-headers reaches the server; the default sends none."""
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_mock_server_arguments(parser)
    assert server_from_args(parser.parse_args([])).rate_limit_headers == "none"
    args = parser.parse_args(["--rate-limit-headers", "draft-11"])
    assert server_from_args(args).rate_limit_headers == "draft-11"
    with pytest.raises(argparse.ArgumentError):
        parser.parse_args(["--rate-limit-headers", "loud"])
