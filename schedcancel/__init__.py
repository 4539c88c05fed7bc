"""schedcancel: cancel IXOPAY recurring-payment schedules from asyncio, within the rate limits.

Cancel first, and the rest of the Schedule API (get, pause, continue, update,
start) on the same client and the same rate-limit budget.
"""

from __future__ import annotations

import typing as _typing
from importlib import metadata as _metadata

from ._bulk import BulkOptions, BulkProgress
from ._client import DEFAULT_BASE_URL, CallOptions, ScheduleClient
from ._deprecated import resolve as _resolve
from ._gate import Gate
from ._journal import BulkOutcome, Journal, OutcomeKind
from ._limiter import RateLimiter
from ._models import (
    Clock,
    Limiter,
    LimiterStats,
    Permit,
    RateLimits,
    RetryPolicy,
    ScheduleResult,
    ScheduleStatus,
)
from ._protocol import Operation, Request, Transport
from ._requests import PeriodUnit, StartSchedule, UpdateSchedule
from ._transport import AiohttpTransport
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

try:
    __version__ = _metadata.version("schedcancel")
except _metadata.PackageNotFoundError:  # pragma: no cover - a source tree, not installed
    __version__ = "0.0.0"

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
    "ScheduleClient",
    "ScheduleError",
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
