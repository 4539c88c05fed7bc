"""An aiohttp web service that reads, pauses and cancels schedules for other services.

One ``ScheduleClient`` lives as long as the app (``cleanup_ctx``), so every
request shares one rate limiter: reads, pauses and cancels spend one budget,
and however many callers hit the service at once, the IXOPAY limits are kept
(60 requests per 60 s per API user, 10 per scheduleId, whatever the operation).

- ``GET /schedules/{schedule_id}`` reads one schedule: its status and next charge.
- ``POST /schedules/{schedule_id}/pause`` pauses one; pausing a paused one is fine.
- ``POST /schedules/{schedule_id}/cancel`` cancels one.

  Each waits at most ``queue_timeout`` seconds for the limiter; when the
  queue is longer than that it answers 503 with ``Retry-After`` at once
  instead of holding the connection.
- ``POST /schedules/cancel`` with ``{"ids": [...]}`` cancels many and streams
  one JSON line per id as each finishes (``client.cancel_many``).

Run it with the credentials and base URL in the ``SCHEDCANCEL_*`` variables that the
``schedcancel`` command reads too (``ScheduleClient.from_env()``), then ``curl
localhost:8080/schedules/SC-1234`` or ``curl -X POST localhost:8080/schedules/SC-1234/cancel``:

    python examples/aiohttp_service.py
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from schedcancel import (
    ApiError,
    InvalidParameterError,
    QueueTimeoutError,
    ScheduleClient,
    ScheduleError,
    ScheduleResult,
    TransportError,
)

CLIENT = web.AppKey("client", ScheduleClient)
QUEUE_TIMEOUT = web.AppKey("queue_timeout", float)

#: A client method on one scheduleId: ``ScheduleClient.get``, ``.pause`` or ``.cancel``.
Call = Callable[..., Awaitable[ScheduleResult]]
Handler = Callable[[web.Request], Awaitable[web.Response]]


def _status(result: ScheduleResult) -> str | None:
    return None if result.new_status is None else str(result.new_status)


def one_schedule(call: Call, render: Callable[[ScheduleResult], dict[str, Any]]) -> Handler:
    """A route that runs ``call`` for the path's scheduleId and answers with ``render``'s fields.

    Args:
        call: the client method, called as ``call(client, schedule_id, queue_timeout=...)``.
        render: what the JSON answer says about the result (beside the id and error code).

    Returns:
        The aiohttp handler; the library's errors become 400, 503 (with
        ``Retry-After``) and 502.
    """

    async def handle(request: web.Request) -> web.Response:
        schedule_id = request.match_info["schedule_id"]
        client = request.app[CLIENT]
        try:
            result = await call(client, schedule_id, queue_timeout=request.app[QUEUE_TIMEOUT])
        except InvalidParameterError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except QueueTimeoutError as exc:
            wait = math.ceil(exc.expected_wait or 1.0)
            return web.json_response(
                {"error": "rate limit queue is full", "retry_after": wait},
                status=503,
                headers={"Retry-After": str(wait)},
            )
        except (ApiError, TransportError) as exc:
            return web.json_response({"error": type(exc).__name__}, status=502)
        return web.json_response(
            {"schedule_id": schedule_id, **render(result), "error_code": result.error_code}
        )

    return handle


def read(result: ScheduleResult) -> dict[str, Any]:
    """``GET /schedules/{id}``: found or not, the status, the next charge."""
    at = result.scheduled_at
    return {
        "found": result.success,
        "status": _status(result),
        "next_charge": None if at is None else at.isoformat(),
    }


def paused(result: ScheduleResult) -> dict[str, Any]:
    """``POST /schedules/{id}/pause``: paused now (or already), and the status."""
    return {"paused": result.done, "already_paused": result.already_done, "status": _status(result)}


def cancelled(result: ScheduleResult) -> dict[str, Any]:
    """``POST /schedules/{id}/cancel``: cancelled now (or already), and the status."""
    return {
        "cancelled": result.is_cancelled,
        "already_cancelled": result.already_cancelled,
        "status": _status(result),
    }


async def cancel_many(request: web.Request) -> web.StreamResponse:
    """Cancel the ids in the JSON body, streaming one JSON line per id as it finishes."""
    try:
        body = await request.json()
        ids = body["ids"]
    except (ValueError, KeyError, TypeError):
        return web.json_response({"error": 'expected {"ids": [...]}'}, status=400)
    if not isinstance(ids, list):
        return web.json_response({"error": "ids must be a list"}, status=400)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    try:
        async for outcome in request.app[CLIENT].cancel_many(ids):
            line = json.dumps(outcome.to_record(), separators=(",", ":")) + "\n"
            await response.write(line.encode())
    except ScheduleError as exc:  # the job stopped (e.g. refused credentials)
        await response.write((json.dumps({"error": type(exc).__name__}) + "\n").encode())
    await response.write_eof()
    return response


def make_app(
    client_factory: Callable[[], ScheduleClient], *, queue_timeout: float = 10.0
) -> web.Application:
    """Build the service.

    Args:
        client_factory: makes the one client the app uses (and closes at shutdown).
        queue_timeout: the longest a single read, pause or cancel waits for the
            rate limiter.

    Returns:
        The aiohttp application.
    """
    app = web.Application()
    app[QUEUE_TIMEOUT] = queue_timeout

    async def client_context(app: web.Application) -> AsyncIterator[None]:
        async with client_factory() as client:
            app[CLIENT] = client
            yield

    app.cleanup_ctx.append(client_context)
    app.router.add_post("/schedules/cancel", cancel_many)
    app.router.add_get("/schedules/{schedule_id}", one_schedule(ScheduleClient.get, read))
    app.router.add_post(
        "/schedules/{schedule_id}/pause", one_schedule(ScheduleClient.pause, paused)
    )
    app.router.add_post(
        "/schedules/{schedule_id}/cancel", one_schedule(ScheduleClient.cancel, cancelled)
    )
    return app


def main() -> None:
    """Serve on port 8080, with the credentials and base URL of the ``SCHEDCANCEL_*`` variables."""
    # The client is made at startup, before the port is open: a missing variable fails there.
    web.run_app(make_app(ScheduleClient.from_env), port=8080)


if __name__ == "__main__":
    main()
