"""Cancel a batch of schedules with ``asyncio.gather``: the limiter does the pacing.

Every ``client.cancel`` waits for its turn in the client's rate limiter, so
gathering a thousand of them is safe: they go out as fast as the limits
allow (60 per minute per API user by default) and never meet an avoidable
429. Business errors (unknown id, already cancelled) come back as results,
so one bad id does not blow up the gather.

Run it against your account, with the credentials and base URL the
``schedcancel`` command reads (``SCHEDCANCEL_BASE_URL``, ``SCHEDCANCEL_SHARED_SECRET``
too); it exits 1 when an id was not cancelled::

    SCHEDCANCEL_API_KEY=... SCHEDCANCEL_USERNAME=... SCHEDCANCEL_PASSWORD=... \\
        python examples/bulk_gather.py SC-1234 SC-5678
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Sequence

from schedcancel import (
    DEFAULT_BASE_URL,
    RateLimits,
    ScheduleClient,
    ScheduleError,
    ScheduleResult,
)
from schedcancel.cli import client_options

#: The buckets of :func:`describe` in which a schedule ends cancelled.
DONE = frozenset({"cancelled", "already cancelled"})


def describe(result: ScheduleResult | BaseException) -> str:
    """Sort one gathered answer into a bucket for the report.

    Args:
        result: what ``client.cancel`` returned or raised.

    Returns:
        ``cancelled``, ``already cancelled``, ``refused <code>`` or the error's class name.
    """
    if isinstance(result, BaseException):
        return type(result).__name__
    if result.success:
        return "cancelled"
    if result.already_cancelled:
        return "already cancelled"
    return f"refused {result.error_code}"


async def cancel_all(client: ScheduleClient, schedule_ids: Sequence[str]) -> Counter[str]:
    """Cancel every id at once and count how each ended.

    Args:
        client: an open client.
        schedule_ids: the schedules to cancel.

    Returns:
        How many ids ended in each bucket of :func:`describe`.
    """
    results = await asyncio.gather(
        *(client.cancel(schedule_id) for schedule_id in schedule_ids),
        return_exceptions=True,
    )
    for result in results:
        # Programming errors are not a schedule's fate: let them surface.
        if isinstance(result, BaseException) and not isinstance(result, ScheduleError):
            raise result
    return Counter(describe(result) for result in results)


async def main(
    schedule_ids: Sequence[str],
    *,
    api_key: str,
    username: str,
    password: str,
    shared_secret: str | None = None,
    base_url: str = DEFAULT_BASE_URL,
    limits: RateLimits | None = None,
) -> Counter[str]:
    """Open a client, cancel the ids, print and return the counts.

    Args:
        schedule_ids: the schedules to cancel.
        api_key: the connector's apiKey.
        username: the API user.
        password: its password.
        shared_secret: the connector's shared secret, when it signs requests.
        base_url: the API base URL.
        limits: the server's rate limits, if not the documented ones.

    Returns:
        The counts per bucket.
    """
    async with ScheduleClient(
        api_key,
        username=username,
        password=password,
        shared_secret=shared_secret,
        base_url=base_url,
        limits=limits,
    ) as client:
        counts = await cancel_all(client, schedule_ids)
    for bucket, count in sorted(counts.items()):
        print(f"{bucket:>20}: {count}")
    return counts


def exit_code(counts: Counter[str]) -> int:
    """Return the process's exit code: 0 when every id ended cancelled, else 1.

    Args:
        counts: what :func:`main` returned.

    Returns:
        0 or 1.
    """
    return 0 if counts and set(counts) <= DONE else 1


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} SCHEDULE_ID [SCHEDULE_ID ...]")
    sys.exit(exit_code(asyncio.run(main(sys.argv[1:], **client_options()))))
