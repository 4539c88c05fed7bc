"""A chat-bot command that tells the user how long a cancel will take, then does it.

``/cancel SC-1234 [SC-5678 ...]`` asks the limiter how long a new request
would wait (``client.limiter.estimate()``) and adds a window for every full
batch beyond what the window still admits, so the user reads "queued, about
40 s" before anything happens, and then gets one line per schedule.

The handler takes a ``reply`` coroutine, so it fits any chat framework
(discord.py, python-telegram-bot, Slack Bolt...)::

    async def on_message(message):
        await handle_command(message.text, message.channel.send, client)
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

from schedcancel import CancelOutcome, OutcomeKind, ScheduleClient

Reply = Callable[[str], Awaitable[object]]
USAGE = "usage: /cancel SCHEDULE_ID [SCHEDULE_ID ...]"


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


def _line(outcome: CancelOutcome) -> str:
    if outcome.kind is OutcomeKind.CANCELLED:
        return f"{outcome.schedule_id}: cancelled"
    if outcome.kind is OutcomeKind.ALREADY_CANCELLED:
        return f"{outcome.schedule_id}: was already cancelled"
    if outcome.kind is OutcomeKind.FAILED:
        return f"{outcome.schedule_id}: refused (error {outcome.error_code})"
    if outcome.kind is OutcomeKind.INVALID:
        return f"{outcome.schedule_id}: not a schedule id"
    return f"{outcome.schedule_id}: failed ({outcome.error_type}), try again later"


async def handle_command(text: str, reply: Reply, client: ScheduleClient) -> None:
    """Handle one chat message: ``/cancel`` with schedule ids.

    Args:
        text: the message.
        reply: sends a message back to the user.
        client: the bot's (long-lived) client.
    """
    command, *ids = text.split()
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
