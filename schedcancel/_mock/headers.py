"""The rate-limit headers the mock server can send, in each style a server might.

IXOPAY documents none; its PHP SDK reads ``X-RateLimit-Limit`` and
``Retry-After`` from 429s, gateways send ``X-RateLimit-*`` on every answer, and
draft-ietf-httpapi-ratelimit-headers-11 defines ``RateLimit-Policy`` and
``RateLimit``. The styles (``MockScheduleServer(rate_limit_headers=...)``,
``--rate-limit-headers``):

``none``
    No rate-limit header (``Retry-After`` on a 429 still follows ``ServerLimits.retry_after``).
``x-429``
    ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` (seconds) on 429s
    only, for the level that refused.
``x-all``
    The same on every answer: on a 429 the refusing level's, else the API user's.
``draft-11``
    ``RateLimit-Policy: "user";q=N;w=W, "schedule";q=K;w=W`` and
    ``RateLimit: "user";r=..;t=.., "schedule";r=..;t=..`` on every answer
    (the scheduleId's policy on answers about one; ``w`` only for a whole
    number of seconds).

Remaining and reset are read after the answer's own arrival was counted; the
reset is the seconds until the level's remaining grows (rounded up to whole
seconds, as the headers are integers).
"""

from __future__ import annotations

import math
from typing import Literal, get_args

from .limits import Level

__all__ = ["HEADER_STYLES", "HeaderStyle", "rate_limit_headers"]

HeaderStyle = Literal["none", "x-429", "x-all", "draft-11"]
#: The styles, in the order the CLI lists them.
HEADER_STYLES: tuple[HeaderStyle, ...] = get_args(HeaderStyle)

_NAMES: dict[Level, str] = {"total": "user", "per_schedule": "schedule"}


def rate_limit_headers(
    style: HeaderStyle,
    quotas: dict[Level, tuple[int, int, float]],
    *,
    window: float,
    refused: Level | None,
) -> dict[str, str]:
    """The headers of one answer.

    Args:
        style: one of `HEADER_STYLES`.
        quotas: each level's ``(limit, remaining, reset)`` (``LimitBook.quotas``).
        window: the window in seconds.
        refused: the level that refused the request (None: not a 429).

    Returns:
        Header names and values (empty for ``none``, and for ``x-429`` on a non-429).
    """
    if style == "none" or (style == "x-429" and refused is None):
        return {}
    if style in ("x-429", "x-all"):
        limit, remaining, reset = quotas[refused or "total"]
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }
    seconds = f";w={round(window)}" if window == round(window) and window >= 1 else ""
    policies = ", ".join(f'"{_NAMES[lv]}";q={q[0]}{seconds}' for lv, q in quotas.items())
    states = ", ".join(f'"{_NAMES[lv]}";r={q[1]};t={math.ceil(q[2])}' for lv, q in quotas.items())
    return {"RateLimit-Policy": policies, "RateLimit": states}
