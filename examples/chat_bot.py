"""A chat bot that reads and cancels schedules, telling the user how long a cancel will take.

``/status SC-1234`` reads the schedule (``client.get``) and answers with its
status and next charge. ``/cancel SC-1234 [SC-5678 ...]`` asks the limiter how long a new request
would wait (``client.limiter.estimate()``) and adds a window for every full
batch beyond what the window still admits, so the user reads "queued, about
40 s" before anything happens, and then gets one line per schedule. Both
commands go through the same client, so a status read takes its place in the
same rate limits as the cancels.

The handler takes a ``reply`` coroutine, so it fits any chat framework
(discord.py, python-telegram-bot, Slack Bolt...):

    async def on_message(message):
        await handle_command(message.text, message.channel.send, client)
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from schedcancel import (
    BulkOutcome,
    InvalidParameterError,
    OutcomeKind,
    ScheduleClient,
    ScheduleError,
)

Reply = Callable[[str], Awaitable[object]]
USAGE = "usage: /status SCHEDULE_ID or /cancel SCHEDULE_ID [SCHEDULE_ID ...]"


async def expected_wait(client: ScheduleClient, count: int) -> float:
    """Estimate the seconds until the last of ``count`` new cancels is sent.

    Args:
        client: the bot's client.
        count: how many ids the user asked for.

    Returns:
        The limiter's wait for one more request, plus one window (and guard)
        for every further batch of the API user's limit.
    """
    limiter = client.limiter
    first = await limiter.estimate()
    stats = limiter.stats()
    room = max(0, stats.total_limit - stats.total_used)
    extra_batches = math.ceil(max(0, count - room) / max(1, stats.total_limit))
    if first > 0 and extra_batches:
        extra_batches -= 1  # the first wait already reaches the next window
    return first + extra_batches * (limiter.limits.window + limiter.limits.guard)


def _line(outcome: BulkOutcome) -> str:
    if outcome.kind is OutcomeKind.CANCELLED:
        return f"{outcome.schedule_id}: cancelled"
    if outcome.kind is OutcomeKind.ALREADY_CANCELLED:
        return f"{outcome.schedule_id}: was already cancelled"
    if outcome.kind is OutcomeKind.FAILED:
        return f"{outcome.schedule_id}: refused (error {outcome.error_code})"
    if outcome.kind is OutcomeKind.INVALID:
        return f"{outcome.schedule_id}: not a schedule id"
    return f"{outcome.schedule_id}: failed ({outcome.error_type}), try again later"


async def status_line(client: ScheduleClient, schedule_id: str) -> str:
    """Read one schedule and describe it: its status and next charge, or why not.

    Args:
        client: the bot's client.
        schedule_id: the schedule the user asked about.

    Returns:
        One line for the user.
    """
    try:
        result = await client.get(schedule_id)
    except InvalidParameterError:
        return f"{schedule_id}: not a schedule id"
    except ScheduleError as exc:
        return f"{schedule_id}: failed ({type(exc).__name__}), try again later"
    if not result.success:
        return f"{schedule_id}: not found (error {result.error_code})"
    line = f"{schedule_id}: {result.new_status}"
    if result.scheduled_at is not None:
        line += f", next charge {result.scheduled_at:%Y-%m-%d %H:%M %Z}"
    return line


async def handle_command(text: str, reply: Reply, client: ScheduleClient) -> None:
    """Handle one chat message: ``/status`` with one schedule id, or ``/cancel`` with ids.

    Args:
        text: the message.
        reply: sends a message back to the user.
        client: the bot's (long-lived) client.
    """
    command, *ids = text.split()
    if command == "/status" and len(ids) == 1:
        await reply(await status_line(client, ids[0]))
        return
    if command != "/cancel" or not ids:
        await reply(USAGE)
        return
    wait = await expected_wait(client, len(ids))
    plural = "s" if len(ids) > 1 else ""
    if wait < 1:
        await reply(f"Cancelling {len(ids)} schedule{plural} now.")
    else:
        await reply(f"Queued {len(ids)} schedule{plural}: about {math.ceil(wait)} s.")
    async for outcome in client.cancel_many(ids):
        await reply(_line(outcome))
