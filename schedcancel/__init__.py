"""schedcancel: cancel IXOPAY recurring-payment schedules from asyncio, within the rate limits.

Cancel first, and the rest of the Schedule API (get, pause, continue, update,
start) on the same client and the same rate-limit budget.
"""

from __future__ import annotations

import typing as _typing

from ._bulk.journal import BulkOutcome, Journal, OutcomeKind
from ._bulk.runner import BulkOptions, BulkProgress
from ._client.client import DEFAULT_BASE_URL, CallOptions, ScheduleClient
from ._client.transport import AiohttpTransport
from ._deprecated import resolve as _resolve
from ._limiting.failover import FailoverLimiter
from ._limiting.gate import Gate
from ._limiting.limiter import RateLimiter
from ._protocol.models import (
    Clock,
    Limiter,
    LimiterStats,
    Permit,
    RateLimitLevel,
    RateLimitPreset,
    RateLimits,
    RetryPolicy,
    ScheduleResult,
)
from ._protocol.operations import Operation, ScheduleStatus
from ._protocol.ratelimit_headers import RateLimitHeaders, StatedQuota
from ._protocol.requests import PeriodUnit, StartRow, StartSchedule, UpdateRow, UpdateSchedule
from ._protocol.wire import Request, Transport
from ._version import __version__
from .errors import (
    ApiError,
    AuthenticationError,
    BackendError,
    ClientClosedError,
    ConfigurationError,
    EndpointNotFoundError,
    InvalidParameterError,
    OutcomeUnknownError,
    QueueTimeoutError,
    RateLimitedError,
    RequestWithdrawnError,
    ResponseMismatchError,
    ResponseParseError,
    ScheduleError,
    ScheduleOperationError,
    ServerError,
    TransportError,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "AiohttpTransport",
    "ApiError",
    "AuthenticationError",
    "BackendError",
    "BulkOptions",
    "BulkOutcome",
    "BulkProgress",
    "CallOptions",
    "ClientClosedError",
    "Clock",
    "ConfigurationError",
    "EndpointNotFoundError",
    "FailoverLimiter",
    "Gate",
    "InvalidParameterError",
    "Journal",
    "Limiter",
    "LimiterStats",
    "Operation",
    "OutcomeKind",
    "OutcomeUnknownError",
    "PeriodUnit",
    "Permit",
    "QueueTimeoutError",
    "RateLimitHeaders",
    "RateLimitLevel",
    "RateLimitPreset",
    "RateLimitedError",
    "RateLimiter",
    "RateLimits",
    "Request",
    "RequestWithdrawnError",
    "ResponseMismatchError",
    "ResponseParseError",
    "RetryPolicy",
    "ScheduleClient",
    "ScheduleError",
    "ScheduleOperationError",
    "ScheduleResult",
    "ScheduleStatus",
    "ServerError",
    "StartRow",
    "StartSchedule",
    "StatedQuota",
    "Transport",
    "TransportError",
    "UpdateRow",
    "UpdateSchedule",
    "__version__",
]

#: Names of 0.1, each still importable for one release, with a DeprecationWarning.
_RENAMED: dict[str, tuple[str, _typing.Any]] = {
    "CancelOutcome": ("BulkOutcome", BulkOutcome),
    "CancelResult": ("ScheduleResult", ScheduleResult),
    "ScheduleCancelError": ("ScheduleError", ScheduleError),
}

if _typing.TYPE_CHECKING:  # pragma: no cover - for type checkers; at run time __getattr__ warns
    CancelOutcome = BulkOutcome
    CancelResult = ScheduleResult
    ScheduleCancelError = ScheduleError


def __getattr__(name: str) -> _typing.Any:
    return _resolve(__name__, name, _RENAMED)
