"""schedcancel: cancel IXOPAY recurring-payment schedules from asyncio, within the rate limits.

Cancel first, and the rest of the Schedule API (get, pause, continue, update,
start) on the same client and the same rate-limit budget.
"""

from __future__ import annotations

from ._bulk import BulkOptions, BulkProgress
from ._client import DEFAULT_BASE_URL, CallOptions, ScheduleClient
from ._gate import Gate
from ._journal import CancelOutcome, Journal, OutcomeKind
from ._limiter import RateLimiter
from ._models import (
    CancelResult,
    Clock,
    Limiter,
    LimiterStats,
    Permit,
    RateLimits,
    RetryPolicy,
    ScheduleResult,
)
from ._operations import Operation, ScheduleStatus
from ._protocol import Request, Transport
from ._requests import PeriodUnit, StartSchedule, UpdateSchedule
from ._transport import AiohttpTransport
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
    ScheduleCancelError,
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
    "BulkProgress",
    "CallOptions",
    "CancelOutcome",
    "CancelResult",
    "ClientClosedError",
    "Clock",
    "ConfigurationError",
    "EndpointNotFoundError",
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
    "RateLimitedError",
    "RateLimiter",
    "RateLimits",
    "Request",
    "RequestWithdrawnError",
    "ResponseMismatchError",
    "ResponseParseError",
    "RetryPolicy",
    "ScheduleCancelError",
    "ScheduleClient",
    "ScheduleOperationError",
    "ScheduleResult",
    "ScheduleStatus",
    "ServerError",
    "StartSchedule",
    "Transport",
    "TransportError",
    "UpdateSchedule",
    "__version__",
]
