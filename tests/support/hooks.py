"""The instrumentation tests' scenario: one client, six calls, every kind of event.

Against the real mock server, on looptime's virtual clock (a 429 pauses the
limiter for a whole window): two successes, one after a 429 and one after a
500; two refusals (7070 already cancelled, 7040 unknown id); and one call that
gives up after its retry policy's two attempts (two 500s).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence

import attrs
import pytest
from schedcancel import RateLimits, RetryPolicy, ServerError
from schedcancel.hooks import Hook
from schedcancel.testing import Fault, MockScheduleServer, ServerLimits

API_KEY = "AK-SENTINEL-hooks-0123456789abcdef"
PASSWORD = "PW-SENTINEL-hooks-4f1d"
SECRET = "SS-SENTINEL-hooks-9a8b"
USER = "api-user"
NEEDLES = (
    API_KEY,
    PASSWORD,
    SECRET,
    base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
)

#: The scenario's calls in order, with what each ends as.
OK, LIMITED, RETRIED, DONE, UNKNOWN, FAILING = (
    "SC-OK",
    "SC-LIMITED",
    "SC-RETRIED",
    "SC-DONE",
    "SC-UNKNOWN",
    "SC-FAILING",
)
CALLS = (OK, LIMITED, RETRIED, DONE, UNKNOWN, FAILING)


@attrs.define
class Run:
    """What the scenario saw: per call its result's success or the exception's type."""

    ends: dict[str, object] = attrs.field(factory=dict)
    server: MockScheduleServer | None = None


async def run_scenario(hooks: Sequence[Hook]) -> Run:
    """Run the six calls one after another with ``hooks``; return how each ended."""
    run = Run()
    server = MockScheduleServer(
        users={USER: PASSWORD},
        connectors={API_KEY: SECRET},
        limits=ServerLimits(total=60, per_schedule=10, window=60.0),
    )
    async with server:
        run.server = server
        server.seed([OK, LIMITED, RETRIED, FAILING])
        server.seed([DONE], "CANCELLED")
        async with server.client(
            hooks=hooks,
            limits=RateLimits(total=60, per_schedule=10, window=60.0, guard=0.5, adaptive=False),
            retry=RetryPolicy(
                attempts=2, backoff_initial=0.25, backoff_max=0.25, jitter=lambda: 1.0
            ),
        ) as client:
            for schedule_id in CALLS:
                if schedule_id == LIMITED:
                    server.script(Fault.RATE_LIMITED)
                elif schedule_id == RETRIED:
                    server.script(Fault.SERVER_ERROR)
                elif schedule_id == FAILING:
                    server.script(Fault.SERVER_ERROR, Fault.SERVER_ERROR)
                try:
                    result = await client.cancel(schedule_id)
                except ServerError as exc:
                    run.ends[schedule_id] = type(exc)
                else:
                    run.ends[schedule_id] = result.success
    return run


def assert_ends(run: Run) -> None:
    """The scenario ended as designed."""
    assert run.ends == {
        OK: True,
        LIMITED: True,
        RETRIED: True,
        DONE: False,
        UNKNOWN: False,
        FAILING: ServerError,
    }


def assert_no_secret(texts: Iterable[object], what: str) -> None:
    """No credential (password, shared secret, whole apiKey, Basic token) in any of ``texts``."""
    count = 0
    for text in texts:
        count += 1
        for needle in NEEDLES:
            assert needle not in str(text), f"{what} leaks a credential: {text!r}"
    if count == 0:
        pytest.fail(f"nothing to scan in {what}")
