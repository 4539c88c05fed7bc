"""The exceptions schedcancel raises, all rooted in one class.

    ScheduleError
    ├── InvalidParameterError (also ValueError)  bad apiKey/scheduleId/config; before any I/O
    ├── QueueTimeoutError                        the limiter cannot admit within queue_timeout
    │   └── RequestWithdrawnError                a Gate withdrew the call before it was sent
    │       └── ClientClosedError                the client was closed before the call was sent
    ├── TransportError                           no usable response after the retries
    ├── OutcomeUnknownError                      start may have reached the server; not re-sent
    ├── ResponseParseError                       a body that is not what the API documents
    │   └── ResponseMismatchError                an answer about another scheduleId
    ├── BackendError                             the shared limiter store (Redis) failed
    └── ApiError                                 the server answered with an error
        ├── ConfigurationError                   every call would fail alike: fix the settings
        │   ├── AuthenticationError              401/403, bad signature (1004)
        │   └── EndpointNotFoundError            404 that is no API answer: a wrong base_url path
        ├── RateLimitedError                     429 after the allowed retries
        ├── ServerError                          5xx (1008 system error, 1010 maintenance)
        └── ScheduleOperationError               raise_for_error() on success: false

Business errors (HTTP 200 with ``success: false``, e.g. 7040 unknown id, 7070
wrong status) are *results*, not exceptions: ``ScheduleResult.raise_for_error()``
turns them into [`ScheduleOperationError`][schedcancel.ScheduleOperationError] for callers who
prefer that.

``ScheduleCancelError``, the root's name in 0.1, is the same class; it still
imports, with a ``DeprecationWarning``, until 0.3.

No message built here ever contains a password, a shared secret or a whole
apiKey: the values it quotes are redacted first (an apiKey as ``conn***``, a
secret as ``***``, in any form a body may carry it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._deprecated import resolve

__all__ = [
    "ApiError",
    "AuthenticationError",
    "BackendError",
    "ClientClosedError",
    "ConfigurationError",
    "EndpointNotFoundError",
    "InvalidParameterError",
    "OutcomeUnknownError",
    "QueueTimeoutError",
    "RateLimitedError",
    "RequestWithdrawnError",
    "ResponseMismatchError",
    "ResponseParseError",
    "ScheduleError",
    "ScheduleOperationError",
    "ServerError",
    "TransportError",
]


class ScheduleError(Exception):
    """Root of every exception schedcancel raises on purpose, whichever the operation."""


class InvalidParameterError(ScheduleError, ValueError):
    """An apiKey, scheduleId or setting is invalid; raised before any I/O or budget use."""


class QueueTimeoutError(ScheduleError):
    """The limiter could not admit the request within ``queue_timeout``.

    Attributes:
        expected_wait: seconds the request would have waited, when known.
    """

    def __init__(self, message: str, *, expected_wait: float | None = None) -> None:
        super().__init__(message)
        self.expected_wait = expected_wait


class RequestWithdrawnError(QueueTimeoutError):
    """A [`Gate`][schedcancel.Gate] withdrew the call while it waited for the limiter.

    Nothing was sent and no budget was used: a bulk job stopping, or a caller
    who no longer wants the answer, closed the gate.
    """


class ClientClosedError(RequestWithdrawnError):
    """The client was closed before this call's request was sent (or sent again).

    ``ScheduleClient.aclose()`` withdraws every call of the client that waits
    for the limiter or backs off before a retry, and refuses the calls made
    after it: nothing more is sent, and a place taken in the limiter for a
    request not sent is given back. A call whose request was already on the
    wire got its answer first; it ends with this error only when it would
    have had to send again (a 429 or a failure to retry).
    """


class TransportError(ScheduleError):
    """No usable response: connection refused or reset, timeout, body too large.

    Attributes:
        request_sent: False only when the request surely never left (the
            connection could not be made: refused, DNS, TLS handshake); True
            when it may have reached the server (a timeout, a reset after
            sending, an oversized answer).
    """

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class OutcomeUnknownError(ScheduleError):
    """A request that is not safe to repeat may have reached the server; it was not sent again.

    Only ``start`` is such a request: sent twice, it would create two
    schedules. After a timeout, a connection reset after sending, a 5xx or an
    unreadable HTTP 200, the schedule may or may not exist, and the client
    does not guess. Before starting again, look for the new schedule by its
    ``registrationUuid`` (and ``merchantMetaData``) in the IXOPAY back
    office, or wait for the schedule's callback. The failure that made the
    outcome unknown is the ``__cause__`` and `failure`.

    Attributes:
        operation: the call's name (``"start"``).
        failure: the transport, server or parse error that hid the outcome.
    """

    def __init__(self, message: str, *, operation: str, failure: ScheduleError) -> None:
        super().__init__(message)
        self.operation = operation
        self.failure = failure


class ResponseParseError(ScheduleError):
    """The server's answer is not what the API documents.

    Attributes:
        http_status: the HTTP status of the response.
        excerpt: a short, redacted excerpt of the body.
        retryable: the body was not JSON at all (cut short, or a proxy's HTML
            page), so asking again may well work; ``ScheduleClient`` retries
            these within its ``RetryPolicy``. JSON of the wrong shape is not.
    """

    def __init__(
        self, message: str, *, http_status: int, excerpt: str = "", retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.excerpt = excerpt
        self.retryable = retryable

    def __str__(self) -> str:
        base = f"{self.args[0]} (HTTP {self.http_status})"
        return f"{base}: {self.excerpt!r}" if self.excerpt else base


class ResponseMismatchError(ResponseParseError):
    """An HTTP 200 that answers for another schedule than the one asked about.

    The answer's ``scheduleId`` differs from the request's (a proxy or server
    that mixed up answers): it says nothing about the schedule asked about,
    so it is neither a success nor a refusal of it. Not retried by the
    client; in a bulk job it is an ``error`` outcome, which a re-run sends
    again. An answer without a ``scheduleId`` (null or absent: the API's
    error answers, such as 7040, carry none) is not a mismatch.

    Attributes:
        requested: the scheduleId the request named.
        answered: the scheduleId the answer named, as received (a string,
            or whatever JSON value it was), scrubbed of secrets and shortened.
    """

    def __init__(
        self, message: str, *, requested: str, answered: str, http_status: int = 200
    ) -> None:
        super().__init__(message, http_status=http_status)
        self.requested = requested
        self.answered = answered


class BackendError(ScheduleError):
    """The shared limiter's store (Redis) failed; the request was not sent."""


class ApiError(ScheduleError):
    """The server answered with an error.

    Attributes:
        http_status: the HTTP status of the response.
        error_code: the API's ``errorCode``, when the body had one.
        error_message: the API's ``errorMessage``, when the body had one.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int,
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.error_code = error_code
        self.error_message = error_message

    def __str__(self) -> str:
        parts = [str(self.args[0]), f"HTTP {self.http_status}"]
        if self.error_code is not None:
            parts.append(f"errorCode {self.error_code}")
        return " | ".join(parts)


class ConfigurationError(ApiError):
    """The server says the client is set up wrong: every call would fail the same way.

    Not about one schedule: a bulk job stops at the first one instead of
    sending every id. Fix the settings (credentials, base URL) and run again.
    """


class AuthenticationError(ConfigurationError):
    """The API user or the request signature was refused (401, 403, errorCode 1004)."""


class EndpointNotFoundError(ConfigurationError):
    """HTTP 404 that is not an API answer: the route does not exist.

    The API answers an unknown or foreign scheduleId with HTTP 200 and
    errorCode 7040, never 404; a 404 whose body is not a JSON API error
    about the schedule (an errorCode 7000-7999) means the request went to a
    path the server does not serve, most often a ``base_url`` whose path is
    mistyped (``/api/v33`` for ``/api/v3``).
    """


class RateLimitedError(ApiError):
    """The server kept answering 429 after the allowed number of requeues.

    Attributes:
        retry_after: seconds the server asked to wait (``Retry-After``), if it said.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int = 429,
        error_code: int | None = None,
        error_message: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            http_status=http_status,
            error_code=error_code,
            error_message=error_message,
        )
        self.retry_after = retry_after


class ServerError(ApiError):
    """The server failed (5xx: 1008 system error, 1010 maintenance)."""


class ScheduleOperationError(ApiError):
    """The API refused the operation (HTTP 200, ``success: false``).

    Raised only by ``ScheduleResult.raise_for_error()``.

    Attributes:
        schedule_id: the scheduleId the operation was for.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int = 200,
        error_code: int | None = None,
        error_message: str | None = None,
        schedule_id: str | None = None,
    ) -> None:
        super().__init__(
            message,
            http_status=http_status,
            error_code=error_code,
            error_message=error_message,
        )
        self.schedule_id = schedule_id


#: Names of 0.1, each still importable for one release, with a DeprecationWarning.
_RENAMED: dict[str, tuple[str, Any]] = {"ScheduleCancelError": ("ScheduleError", ScheduleError)}

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ warns first
    ScheduleCancelError = ScheduleError


def __getattr__(name: str) -> Any:
    return resolve(__name__, name, _RENAMED)
