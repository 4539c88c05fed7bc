"""schedcancel: cancel IXOPAY recurring-payment schedules from asyncio, within the rate limits."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._models import (
    CancelResult,
    Limiter,
    LimiterStats,
    Permit,
    RateLimits,
    RetryPolicy,
    ScheduleStatus,
)
from .errors import (
    ApiError,
    AuthenticationError,
    BackendError,
    InvalidParameterError,
    QueueTimeoutError,
    RateLimitedError,
    ResponseParseError,
    ScheduleCancelError,
    ScheduleOperationError,
    ServerError,
    TransportError,
)

try:
    __version__ = version("schedcancel")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BackendError",
    "CancelResult",
    "InvalidParameterError",
    "Limiter",
    "LimiterStats",
    "Permit",
    "QueueTimeoutError",
    "RateLimitedError",
    "RateLimits",
    "ResponseParseError",
    "RetryPolicy",
    "ScheduleCancelError",
    "ScheduleOperationError",
    "ScheduleStatus",
    "ServerError",
    "TransportError",
    "__version__",
]
