"""Tests for the mock server's rate-limit models, driven with hand-computed arrival sequences."""

from __future__ import annotations

import pytest
from schedcancel import InvalidParameterError
from schedcancel._mock.limits import (
    FixedWindow,
    LimitBook,
    SlidingCounter,
    SlidingLog,
    TokenBucket,
    Verdict,
    WindowModel,
    make_model,
)
from schedcancel.testing import MODEL_NAMES, ModelName, ServerLimits


def drive(model: WindowModel, times: list[float], *, count_rejected: bool = False) -> list[float]:
    """Offer one request at each time; count it when admitted; return each wait seen."""
    waits = []
    for now in times:
        wait = model.wait(now)
        if wait == 0.0 or count_rejected:
            model.add(now)
        waits.append(wait)
    return waits


def test_sliding_log_admits_limit_per_window_and_frees_at_oldest_plus_window() -> None:
    """A sliding log of 3 per 10 s refuses the 4th until the oldest entry is 10 s old."""
    model = SlidingLog(3, 10.0)
    waits = drive(model, [0.0, 1.0, 2.0, 5.0, 9.999, 10.0, 10.5, 11.0, 12.0, 19.9])
    # 5.0 and 9.999 wait for the entry at 0; at 10.0 it has expired (half-open window);
    # 10.5 waits for the entry at 1; 11.0 and 12.0 fit; 19.9 waits for the entry at 10.
    assert waits == pytest.approx([0, 0, 0, 5.0, 0.001, 0, 0.5, 0, 0, 0.1])
    assert model.used(19.9) == 3
    assert not model.idle(21.9)
    assert model.idle(22.0)


def test_sliding_log_counting_rejected_requests_extends_the_refusal() -> None:
    """With rejected requests counted, each refusal keeps the log full for another window."""
    model = SlidingLog(2, 10.0)
    waits = drive(model, [0.0, 1.0, 5.0, 10.0, 11.0, 15.0], count_rejected=True)
    # Log after 5.0: [0, 1, 5]. At 10.0: [1, 5] remain, full -> wait 1; counted: [1, 5, 10].
    # At 11.0: [5, 10], full -> wait 4; counted. At 15.0: [10, 11] -> wait 5.
    assert waits == pytest.approx([0, 0, 5.0, 1.0, 4.0, 5.0])


def test_fixed_window_resets_at_phase_boundaries_and_allows_a_boundary_burst() -> None:
    """Fixed windows [4 + 10k, 14 + 10k) let 3 through before 4 and 3 more right after."""
    model = FixedWindow(3, 10.0, origin=4.0)
    waits = drive(model, [1.0, 2.0, 3.0, 3.5, 4.0, 5.0, 6.0, 13.0, 14.0])
    # 6 requests between 1.0 and 6.0: a sliding log of 3 per 10 s would refuse three of them.
    assert waits == pytest.approx([0, 0, 0, 0.5, 0, 0, 0, 1.0, 0])
    assert model.used(14.0) == 1
    assert not model.idle(23.9)
    assert model.idle(24.0)


def test_fixed_window_handles_times_before_its_origin() -> None:
    """Windows extend backwards from the origin: [-16, -6) is a window like any other."""
    model = FixedWindow(1, 10.0, origin=4.0)
    assert drive(model, [-15.0, -7.0, -6.0]) == pytest.approx([0, 1.0, 0])


def test_token_bucket_starts_full_and_refills_at_limit_per_window() -> None:
    """A bucket of 3 refilled at 0.5/s admits a burst of 3, then one every 2 s."""
    model = TokenBucket(3, 6.0)
    assert model.rate == 0.5
    waits = drive(model, [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 2.5, 10.0, 10.0, 10.0, 10.0])
    # 0.0 x3 empty it; 0.0 needs 2 s; at 1.0 half a token (1 s more); at 2.0 one token;
    # at 2.5 a quarter (1.5 s); by 10.0 it is full again (capped at 3).
    assert waits == pytest.approx([0, 0, 0, 2.0, 1.0, 0, 1.5, 0, 0, 0, 2.0])
    assert model.used(10.0) == pytest.approx(3.0)
    assert not model.idle(15.9)
    assert model.idle(16.0)


def test_token_bucket_admits_requests_spaced_exactly_window_over_limit() -> None:
    """Float rounding does not cost a token to a client spaced exactly window / limit apart."""
    model = TokenBucket(60, 1.0)
    times = [0.0] * 60 + [k / 60 for k in range(1, 600)]
    assert all(wait == 0.0 for wait in drive(model, times))


def test_token_bucket_counting_rejected_requests_goes_into_debt() -> None:
    """A refused request that counts takes a token the bucket does not have."""
    model = TokenBucket(1, 2.0)
    waits = drive(model, [0.0, 0.0, 1.0], count_rejected=True)
    # After two takes the bucket holds -1; at 1.0 it holds -0.5: 1.5 tokens missing at 0.5/s.
    assert waits == pytest.approx([0, 2.0, 3.0])


def test_token_bucket_ignores_a_clock_that_goes_backwards() -> None:
    """An earlier time than the last one seen neither refills nor corrupts the bucket."""
    model = TokenBucket(2, 2.0)
    drive(model, [5.0, 5.0])
    assert model.wait(4.0) == pytest.approx(1.0)
    assert model.wait(5.5) == pytest.approx(0.5)


def test_sliding_counter_weighs_the_previous_window() -> None:
    """The estimate previous * (1 - elapsed / window) + current must stay below the limit."""
    model = SlidingCounter(10, 10.0)
    waits = drive(model, [1, 2, 3, 4, 5, 6, 7, 8, 9, 9.5, 9.6])
    # Ten fit in [0, 10); at 9.6 current = 10: wait for the next window, where the estimate
    # is 10 * (1 - e / 10) < 10 for any e > 0, i.e. 0.4 s (and a hair).
    assert waits[:10] == [0.0] * 10
    assert waits[10] == pytest.approx(0.4)
    # At 10.0 the estimate is exactly 10: refused, told to wait a hair.
    assert 0 < model.wait(10.0) < 1e-6
    # At 11.0 the estimate is 9: one fits (9 + 1 = 10 is not < 10 for the next).
    assert drive(model, [11.0, 11.0]) == pytest.approx([0, 0.0], abs=1e-6)
    assert model.used(11.0) == pytest.approx(10.0)
    # At 13.5 the estimate is 10 * 0.65 + 1 = 7.5: three fit (7.5, 8.5, 9.5); the fourth sees
    # 10.5 and waits until 10 * (1 - e / 10) + 4 < 10, i.e. e > 4: 14.0, half a second.
    assert drive(model, [13.5, 13.5, 13.5, 13.5]) == pytest.approx([0, 0, 0, 0.5])
    assert 0 < model.wait(14.0) < 1e-6
    assert model.wait(14.01) == 0.0


def test_sliding_counter_refuses_a_burst_a_sliding_log_would_admit() -> None:
    """After a full window, a burst early in the next window gets only what the weight allows."""
    counter, log = SlidingCounter(10, 10.0), SlidingLog(10, 10.0)
    burst = [0.0] * 10
    drive(counter, burst)
    drive(log, burst)
    # 11 s later the log is empty and admits 10; the counter's estimate is 10 * 0.9 = 9.
    second = [11.0] * 10
    assert sum(w == 0 for w in drive(log, second)) == 10
    assert sum(w == 0 for w in drive(counter, second)) == 1


def test_sliding_counter_admits_a_client_spaced_one_percent_wider_than_window_over_limit() -> None:
    """Smooth pacing at window / limit * 1.01 never meets a counter server's refusal."""
    model = SlidingCounter(60, 1.0, origin=0.25)
    times = [k * (1.0 / 60) * 1.01 + 0.001 for k in range(600)]
    assert all(wait == 0.0 for wait in drive(model, times))


def test_sliding_counter_forgets_both_windows_after_a_gap() -> None:
    """Two windows later nothing counts, and the state is idle."""
    model = SlidingCounter(2, 10.0)
    drive(model, [1.0, 2.0])
    assert not model.idle(19.0)
    assert model.idle(20.0)
    assert model.wait(25.0) == 0.0
    assert model.used(25.0) == 0.0


def test_make_model_builds_each_named_model_and_rejects_others() -> None:
    """Each model name maps to its class; bad names and numbers raise InvalidParameterError."""
    kinds = [type(make_model(name, limit=2, window=1.0)) for name in MODEL_NAMES]
    assert kinds == [SlidingLog, FixedWindow, TokenBucket, SlidingCounter]
    with pytest.raises(InvalidParameterError, match="unknown rate-limit model"):
        make_model("leaky", limit=2, window=1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="limit"):
        SlidingLog(0, 1.0)
    with pytest.raises(InvalidParameterError, match="window"):
        TokenBucket(1, 0.0)


@pytest.mark.parametrize(
    ("field", "value"),
    [("total", 0), ("per_schedule", 0), ("window", 0.0), ("window", -1.0), ("model", "leaky")],
)
def test_server_limits_reject_impossible_settings(field: str, value: object) -> None:
    """ServerLimits refuses non-positive limits and windows and unknown models at construction."""
    with pytest.raises(InvalidParameterError, match=field if field != "model" else "model"):
        ServerLimits(**{field: value})  # type: ignore[arg-type]


def test_limit_book_keys_levels_by_user_and_by_schedule_id() -> None:
    """Users have separate budgets; a scheduleId's budget is shared by every user."""
    book = LimitBook(ServerLimits(total=2, per_schedule=1, window=10.0))
    assert book.arrive(0.0, user="a", schedule_id="S1") == Verdict(True)
    assert book.arrive(1.0, user="a", schedule_id="S2") == Verdict(True)
    # a's budget is spent (2 in the window): refused on the total level until 10.0.
    assert book.arrive(2.0, user="a", schedule_id="S3") == Verdict(False, "total", 8.0)
    # b has a budget of its own, but S1 is spent for everyone until 10.0.
    assert book.arrive(3.0, user="b", schedule_id="S1") == Verdict(False, "per_schedule", 7.0)
    assert book.arrive(3.0, user="b", schedule_id="S3") == Verdict(True)
    # Refusals did not count: a's log still expires at 10.0.
    assert book.arrive(10.0, user="a", schedule_id="S4") == Verdict(True)
    assert book.used(10.0, user="a") == 2
    assert book.used(10.0, schedule_id="S1") == 0
    assert book.used(10.0, user="nobody") == 0


def test_limit_book_reports_the_schedule_level_and_the_longer_wait_when_both_refuse() -> None:
    """When both levels are full the verdict names per_schedule and waits for both."""
    book = LimitBook(ServerLimits(total=1, per_schedule=1, window=10.0))
    book.arrive(0.0, user="a", schedule_id="S1")
    book.arrive(4.0, user="b", schedule_id="S2")
    # a is full until 10.0, S2 until 14.0.
    assert book.arrive(5.0, user="a", schedule_id="S2") == Verdict(False, "per_schedule", 9.0)


def test_limit_book_counts_rejected_arrivals_when_configured() -> None:
    """With count_rejected a refused arrival counts at both levels."""
    book = LimitBook(ServerLimits(total=1, per_schedule=5, window=10.0, count_rejected=True))
    book.arrive(0.0, user="a", schedule_id="S1")
    assert not book.arrive(5.0, user="a", schedule_id="S2").allowed
    # The refusal at 5.0 keeps a full until 15.0 and counted on S2; the one at 12.0
    # counts too, so the wait it is told covers itself: until 22.0.
    assert book.arrive(12.0, user="a", schedule_id="S3") == Verdict(False, "total", 10.0)
    assert book.used(12.0, schedule_id="S2") == 1
    assert not book.arrive(21.9, user="a", schedule_id="S4").allowed
    assert book.arrive(32.0, user="a", schedule_id="S5").allowed  # waited as told: admitted


def test_limit_book_peek_decides_without_counting() -> None:
    """peek gives the verdict an arrival would get and leaves the state alone."""
    book = LimitBook(ServerLimits(total=1, per_schedule=1, window=10.0))
    assert book.peek(0.0, user="a", schedule_id="S1").allowed
    assert book.peek(0.0, user="a", schedule_id="S1").allowed
    book.count(0.0, user="a", schedule_id="S1")
    assert not book.peek(0.0, user="a", schedule_id="S9").allowed


def test_limit_book_places_fixed_windows_at_origin_plus_phase() -> None:
    """The fixed model's boundaries sit at origin + phase + k * window."""
    book = LimitBook(ServerLimits(total=1, window=10.0, model="fixed-window", phase=3.0), 100.0)
    book.arrive(102.0, user="a", schedule_id="S1")
    assert book.arrive(102.5, user="a", schedule_id="S2") == Verdict(False, "total", 0.5)
    assert book.arrive(103.0, user="a", schedule_id="S3").allowed


def test_limit_book_used_needs_exactly_one_key() -> None:
    """used() with both keys or neither is an error."""
    book = LimitBook(ServerLimits())
    with pytest.raises(InvalidParameterError, match="exactly one"):
        book.used(0.0)
    with pytest.raises(InvalidParameterError, match="exactly one"):
        book.used(0.0, user="a", schedule_id="S1")


def test_limit_book_sweeps_idle_keys_so_memory_follows_what_is_live() -> None:
    """Keys whose windows have passed are dropped, by hand or every few thousand arrivals."""
    book = LimitBook(ServerLimits(total=10_000, per_schedule=1, window=1.0))
    for i in range(100):
        book.arrive(0.0, user="a", schedule_id=f"S{i}")
    assert book.live_keys == 101
    book.sweep(0.5)
    assert book.live_keys == 101
    book.sweep(1.0)
    assert book.live_keys == 0
    # 4096 arrivals trigger a sweep on their own: the first 4000 (at 0.0) are gone by 2.0.
    for i in range(4000):
        book.arrive(0.0, user="a", schedule_id=f"T{i}")
    for i in range(96):
        book.arrive(2.0, user="a", schedule_id=f"U{i}")
    assert book.live_keys == 97


def test_a_full_sliding_log_never_reads_as_free_at_its_edge() -> None:
    """At a window edge where float rounding gives 0 s to wait, a full log still refuses."""
    t, now = 40.08955954045934, 100.08955954045933  # now - t rounds to just under 60
    book = LimitBook(ServerLimits(total=1, per_schedule=10, window=60.0))
    assert book.arrive(t, user="u", schedule_id="A").allowed
    verdict = book.arrive(now, user="u", schedule_id="B")
    assert not verdict.allowed
    assert verdict.wait > 0
    assert book.used(now, user="u") == 1


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_waiting_as_told_is_enough_even_when_refusals_count(model: ModelName) -> None:
    """With count_rejected, the wait a refusal reports already covers that refusal."""
    book = LimitBook(
        ServerLimits(total=60, per_schedule=1, window=2.0, model=model, count_rejected=True)
    )
    assert book.arrive(0.0, user="u", schedule_id="S").allowed
    refused = book.arrive(1.0, user="u", schedule_id="S")
    assert not refused.allowed
    later = 1.0 + refused.wait + 1e-6
    assert book.arrive(later, user="u", schedule_id="S").allowed
