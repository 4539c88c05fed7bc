"""Cancel a batch of schedules with ``asyncio.gather``: the limiter does the pacing.

Every ``client.cancel`` waits for its turn in the client's rate limiter, so
gathering a thousand of them is safe: they go out as fast as the limits
allow (60 per minute per API user by default) and never meet an avoidable
429. Business errors (unknown id, already cancelled) come back as results,
so one bad id does not blow up the gather.

Run it with the credentials and base URL in the ``SCHEDCANCEL_*`` variables that the
``schedcancel`` command reads too (``ScheduleClient.from_env()``: ``SCHEDCANCEL_BASE_URL``
and ``SCHEDCANCEL_SHARED_SECRET`` as well); it exits 1 when an id was not cancelled:

    SCHEDCANCEL_API_KEY=... SCHEDCANCEL_USERNAME=... SCHEDCANCEL_PASSWORD=... \\
        python examples/bulk_gather.py SC-1234 SC-5678
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Mapping, Sequence

from schedcancel import RateLimits, ScheduleClient, ScheduleError, ScheduleResult

#: The buckets of `describe()` in which a schedule ends cancelled.
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
        How many ids ended in each bucket of `describe()`.
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
    environ: Mapping[str, str] | None = None,
    limits: RateLimits | None = None,
) -> Counter[str]:
    """Open a client, cancel the ids, print and return the counts.

    Args:
        schedule_ids: the schedules to cancel.
        environ: where the ``SCHEDCANCEL_*`` variables are read; default ``os.environ``.
        limits: the server's rate limits, if not the documented ones.

    Returns:
        The counts per bucket.
    """
    async with ScheduleClient.from_env(environ=environ, limits=limits) as client:
        counts = await cancel_all(client, schedule_ids)
    for bucket, count in sorted(counts.items()):
        print(f"{bucket:>20}: {count}")
    return counts


def exit_code(counts: Counter[str]) -> int:
    """Return the process's exit code: 0 when every id ended cancelled, else 1.

    Args:
        counts: what `main()` returned.

    Returns:
        0 or 1.
    """
    return 0 if counts and set(counts) <= DONE else 1


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} SCHEDULE_ID [SCHEDULE_ID ...]")
    sys.exit(exit_code(asyncio.run(main(sys.argv[1:]))))
