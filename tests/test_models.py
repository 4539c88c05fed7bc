"""Tests for the value types: results, statuses, settings, permits, stats, Limiter protocol."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from schedcancel import (
    InvalidParameterError,
    Limiter,
    LimiterStats,
    Permit,
    RateLimits,
    RetryPolicy,
    ScheduleOperationError,
    ScheduleResult,
    ScheduleStatus,
)


def test_status_members_are_their_wire_strings() -> None:
    """Statuses compare equal to, format as, and are built from their wire strings."""
    wire: str = "CREATE-PENDING"
    assert wire == ScheduleStatus.CREATE_PENDING
    assert str(ScheduleStatus.NON_EXISTING) == "NON-EXISTING"
    assert f"{ScheduleStatus.CANCELLED}" == "CANCELLED"
    assert ScheduleStatus("PAUSED") is ScheduleStatus.PAUSED
    assert {s.value for s in ScheduleStatus} == {
        "ACTIVE",
        "PAUSED",
        "CANCELLED",
        "ERROR",
        "CREATE-PENDING",
        "NON-EXISTING",
    }


@pytest.mark.parametrize(
    ("kwargs", "already", "cancelled"),
    [
        ({"success": True}, False, True),
        (
            {"success": False, "error_code": 7070, "new_status": ScheduleStatus.CANCELLED},
            True,
            True,
        ),
        ({"success": False, "error_code": 7070, "new_status": "CANCELLED"}, True, True),
        ({"success": False, "error_code": 7070, "new_status": ScheduleStatus.ACTIVE}, False, False),
        ({"success": False, "error_code": 7070}, False, False),
        ({"success": False, "error_code": 7040}, False, False),
        ({"success": False, "new_status": ScheduleStatus.CANCELLED}, False, False),
    ],
)
def test_already_cancelled_and_is_cancelled(
    kwargs: dict[str, Any], already: bool, cancelled: bool
) -> None:
    """already_cancelled needs success false, 7070 and CANCELLED; is_cancelled adds success."""
    result = ScheduleResult(**kwargs)
    assert result.already_cancelled is already
    assert result.is_cancelled is cancelled


def test_raise_for_error_returns_self_on_success() -> None:
    """raise_for_error passes a successful result through."""
    result = ScheduleResult(success=True, schedule_id="SC-1")
    assert result.raise_for_error() is result


def test_raise_for_error_raises_with_the_details() -> None:
    """raise_for_error turns success false into ScheduleOperationError with code and id."""
    result = ScheduleResult(
        success=False, schedule_id="SC-1", error_code=7040, error_message="unknown id"
    )
    with pytest.raises(ScheduleOperationError) as info:
        result.raise_for_error()
    error = info.value
    assert (error.http_status, error.error_code, error.schedule_id) == (200, 7040, "SC-1")
    assert str(error) == "unknown id | HTTP 200 | errorCode 7040"


def test_raise_for_error_without_message() -> None:
    """A failure without errorMessage still raises with a generic message."""
    with pytest.raises(ScheduleOperationError, match="schedule operation failed"):
        ScheduleResult(success=False).raise_for_error()


def test_results_are_frozen_and_keyword_only() -> None:
    """ScheduleResult is an immutable value built from keywords."""
    result = ScheduleResult(success=True)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        result.success = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        ScheduleResult(True)  # type: ignore[call-arg]


def test_rate_limits_defaults_and_cap() -> None:
    """The defaults are the documented 60 and 10 per 60 s, and the Retry-After cap is 2 windows."""
    limits = RateLimits()
    assert (limits.total, limits.per_schedule, limits.window, limits.guard) == (60, 10, 60.0, 1.0)
    assert limits.max_rate_limited == 5
    assert limits.effective_retry_after_cap == 120.0
    assert RateLimits(retry_after_cap=5.0).effective_retry_after_cap == 5.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"total": 0},
        {"per_schedule": -1},
        {"window": 0.0},
        {"guard": -0.5},
        {"mode": "bursty"},
        {"slack": -0.01},
        {"max_rate_limited": -1},
        {"retry_after_cap": 0.0},
        {"window": float("nan")},
        {"total": True},
        {"total": 1.5},
        {"per_schedule": "10"},
        {"window": True},
        {"guard": "1"},
        {"max_rate_limited": 2.5},
        {"retry_after_cap": False},
    ],
)
def test_rate_limits_refuses_impossible_values(kwargs: dict[str, Any]) -> None:
    """Impossible limits fail at construction, as InvalidParameterError where they are numbers."""
    with pytest.raises(ValueError):  # noqa: PT011 - InvalidParameterError, or attrs' in_ for mode
        RateLimits(**kwargs)


def test_rate_limits_number_errors_name_the_field() -> None:
    """A bad number's error names the field and the value."""
    with pytest.raises(InvalidParameterError, match=r"guard must be >= 0, got -1"):
        RateLimits(guard=-1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"total": True}, "total must be an int, got bool"),
        ({"per_schedule": 10.0}, "per_schedule must be an int, got float"),
        ({"window": False}, "window must be > 0, got False"),
    ],
)
def test_rate_limits_counts_are_ints_and_no_bool_is_a_number(
    kwargs: dict[str, Any], message: str
) -> None:
    """A count takes only an int, and a bool is neither a count nor a number of seconds."""
    with pytest.raises(InvalidParameterError, match=message):
        RateLimits(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"backoff_initial": -1.0},
        {"backoff_max": -1.0},
        {"deadline": 0.0},
        {"attempts": True},
        {"attempts": 2.0},
        {"deadline": "60"},
    ],
)
def test_retry_policy_refuses_impossible_values(kwargs: dict[str, Any]) -> None:
    """A retry policy with no attempts, negative backoff or no deadline is refused."""
    with pytest.raises(InvalidParameterError):
        RetryPolicy(**kwargs)


def test_retry_policy_defaults() -> None:
    """The default policy tries four times within two minutes."""
    policy = RetryPolicy()
    assert (policy.attempts, policy.backoff_initial, policy.backoff_max) == (4, 0.5, 10.0)
    assert policy.deadline == 120.0


def test_permit_equality_ignores_the_handle() -> None:
    """Permits compare by id and time; the limiter's handle is opaque and not shown."""
    one = Permit(schedule_id="SC-1", acquired_at=1.0, handle=object())
    two = Permit(schedule_id="SC-1", acquired_at=1.0, handle=object())
    assert one == two
    assert "handle" not in repr(one)


def test_limiter_stats_defaults() -> None:
    """LimiterStats defaults to no 429s seen and exact mode."""
    stats = LimiterStats(
        queued=1, in_flight=2, total_used=3, total_limit=60, schedule_ids=4, next_free=0.5
    )
    assert stats.rate_limited == 0
    assert stats.mode == "exact"


class _Complete:
    """Has every member of the Limiter protocol."""

    limits = RateLimits()

    async def acquire(self, schedule_id: str, **kwargs: Any) -> Permit:  # noqa: ARG002
        """Grant at once."""
        return Permit(schedule_id=schedule_id, acquired_at=0.0, handle=None)

    async def release(self, permit: Permit, **kwargs: Any) -> None:
        """Do nothing."""

    async def estimate(self, schedule_id: str | None = None) -> float:  # noqa: ARG002
        """No wait."""
        return 0.0

    def stats(self) -> LimiterStats:
        """Nothing to report."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Nothing to close."""


class _Incomplete:
    """Lacks release, estimate, stats and aclose."""

    limits = RateLimits()

    async def acquire(self, schedule_id: str) -> Permit:
        """Grant at once."""
        return Permit(schedule_id=schedule_id, acquired_at=0.0, handle=None)


def test_limiter_protocol_is_runtime_checkable() -> None:
    """isinstance(x, Limiter) tells complete limiters from incomplete ones."""
    assert isinstance(_Complete(), Limiter)
    assert not isinstance(_Incomplete(), Limiter)
    assert not isinstance(object(), Limiter)
