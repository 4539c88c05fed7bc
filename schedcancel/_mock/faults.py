"""Fault injection for the mock server: seeded probabilities, scripted sequences, latency."""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Iterable

import attrs

from ..errors import InvalidParameterError

__all__ = ["Fault", "FaultInjector", "Faults"]


class Fault(enum.StrEnum):
    """A failure the server can inject into one response."""

    #: HTTP 500, ``{"success": false, "errorCode": 1008, ...}``; nothing changes.
    SERVER_ERROR = "server_error"
    #: HTTP 503, ``{"success": false, "errorCode": 1010, ...}``; nothing changes.
    MAINTENANCE = "maintenance"
    #: HTTP 200 whose JSON body is cut in half; the cancel took effect.
    TRUNCATED = "truncated"
    #: HTTP 502 with an HTML page, as a proxy in front of the API would send; nothing changes.
    HTML = "html"
    #: The connection is closed without any response; the cancel took effect.
    DROP = "drop"
    #: HTTP 429 whatever the limits say (counted only with ``count_rejected``).
    RATE_LIMITED = "rate_limited"


def _probability(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise InvalidParameterError(f"{attribute.name} must be within [0, 1], got {value!r}")


def _latency(
    _instance: object, attribute: attrs.Attribute[tuple[float, float]], value: tuple[float, float]
) -> None:
    low, high = value
    if not 0.0 <= low <= high:
        raise InvalidParameterError(f"{attribute.name} must be (low, high), 0 <= low <= high")


def _to_script(value: Iterable[Fault | str | None]) -> tuple[Fault | None, ...]:
    return tuple(None if item is None else Fault(item) for item in value)


@attrs.frozen(kw_only=True)
class Faults:
    """What goes wrong, and how often.

    For each authenticated, well-formed request the server first takes the
    next entry of ``script`` (None means "no fault"); once the script is used
    up, it draws one fault with the probabilities below from a
    ``random.Random(seed)``. Probabilities must sum to at most 1.

    Attributes:
        server_error: probability of [`Fault.SERVER_ERROR`][schedcancel.testing.Fault.SERVER_ERROR].
        maintenance: probability of [`Fault.MAINTENANCE`][schedcancel.testing.Fault.MAINTENANCE].
        truncated: probability of [`Fault.TRUNCATED`][schedcancel.testing.Fault.TRUNCATED].
        html: probability of [`Fault.HTML`][schedcancel.testing.Fault.HTML].
        drop: probability of [`Fault.DROP`][schedcancel.testing.Fault.DROP].
        rate_limited: probability of [`Fault.RATE_LIMITED`][schedcancel.testing.Fault.RATE_LIMITED].
        script: faults for the next requests, in order, before any drawing.
        request_latency: ``(low, high)`` seconds, drawn uniformly, that every
            request waits *before* the server counts its arrival (network delay
            on the way in).
        response_latency: ``(low, high)`` seconds every response waits after
            the server decided it (network delay on the way out).
        seed: the random generator's seed; None seeds from the OS.
    """

    server_error: float = attrs.field(default=0.0, validator=_probability)
    maintenance: float = attrs.field(default=0.0, validator=_probability)
    truncated: float = attrs.field(default=0.0, validator=_probability)
    html: float = attrs.field(default=0.0, validator=_probability)
    drop: float = attrs.field(default=0.0, validator=_probability)
    rate_limited: float = attrs.field(default=0.0, validator=_probability)
    script: tuple[Fault | None, ...] = attrs.field(default=(), converter=_to_script)
    request_latency: tuple[float, float] = attrs.field(default=(0.0, 0.0), validator=_latency)
    response_latency: tuple[float, float] = attrs.field(default=(0.0, 0.0), validator=_latency)
    seed: int | None = 0

    def __attrs_post_init__(self) -> None:
        if sum(p for _, p in self.probabilities()) > 1.0 + 1e-12:
            raise InvalidParameterError("fault probabilities must sum to at most 1")

    def probabilities(self) -> tuple[tuple[Fault, float], ...]:
        """Each fault with its probability, in a fixed order."""
        return (
            (Fault.SERVER_ERROR, self.server_error),
            (Fault.MAINTENANCE, self.maintenance),
            (Fault.TRUNCATED, self.truncated),
            (Fault.HTML, self.html),
            (Fault.DROP, self.drop),
            (Fault.RATE_LIMITED, self.rate_limited),
        )


@attrs.define
class FaultInjector:
    """Draws faults and latencies for one server from [`Faults`][schedcancel.testing.Faults].

    Args:
        faults: the configuration.
    """

    faults: Faults
    _rng: random.Random = attrs.field(init=False, repr=False)
    _script: deque[Fault | None] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # Not for security: a seeded generator makes a failing test reproducible.
        self._rng = random.Random(self.faults.seed)  # noqa: S311
        self._script = deque(self.faults.script)

    def extend_script(self, faults: Iterable[Fault | str | None]) -> None:
        """Queue faults for the next requests, after any still queued."""
        self._script.extend(_to_script(faults))

    def put_back(self, fault: Fault | None) -> None:
        """Give a fault taken for a request that did not get that far to the next one."""
        if fault is not None:
            self._script.appendleft(fault)

    def next_fault(self) -> Fault | None:
        """The fault for the next request, or None for a normal answer."""
        if self._script:
            return self._script.popleft()
        draw = self._rng.random()
        for fault, probability in self.faults.probabilities():
            if draw < probability:
                return fault
            draw -= probability
        return None

    def request_latency(self) -> float:
        """Seconds the next request waits before it is counted."""
        return self._uniform(self.faults.request_latency)

    def response_latency(self) -> float:
        """Seconds the next response waits before it is sent."""
        return self._uniform(self.faults.response_latency)

    def _uniform(self, bounds: tuple[float, float]) -> float:
        low, high = bounds
        return low if low == high else self._rng.uniform(low, high)
