"""The fastest any client could be: an oracle's makespan on the mock server's models (issue 24).

    .venv/bin/python -m benchmarks.floor                 # the table for 600 ids at W = 2 s
    .venv/bin/python -m benchmarks.floor --count 6000 --window 60

An *oracle* sends each request the moment the server would admit it: it knows
every arrival time (no round trip, no guard, no jitter) and, where it is given
one, the counter's phase. Each request goes at the earliest time at which the
server still admits it, given the requests before it. That greedy schedule is
the fastest there is: every constraint here is monotone (an earlier arrival
leaves a sliding log earlier and weighs no more in a weighted counter's later
estimates), so no schedule can have its k-th arrival earlier than the
greedy's. Its last arrival, divided by the benchmarks' bound
``floor((M - 1) / N) * W``, is a floor for every real client on that server.

The constraints are the mock server's own rules (``schedcancel._mock.limits``):

* a sliding log: fewer than ``places`` arrivals in the last ``window``
  (``places = N - reserve``: a place kept free for interactive calls is a
  place the job cannot use);
* a weighted sliding-window counter at each of ``phases`` window origins:
  ``previous * (1 - elapsed / window) + current < N``. A client that does not
  know the phase must be safe at all of them, so the oracle is held to all of
  them at once.

Everything is computed exactly, event by event (no time step); pure Python.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence

__all__ = ["floor_makespan", "floor_schedule", "main"]

_EPSILON = 1e-9


def _counter_earliest(
    times: list[float], t: float, origin: float, window: float, limit: int
) -> float:
    """The earliest time at or after ``t`` the counter with this origin admits one more.

    ``times`` are the admitted arrivals so far (sorted, all at or before ``t``).
    """
    while True:
        index = math.floor((t - origin) / window)
        start = origin + index * window
        current = previous = 0
        for at in reversed(times):
            if at >= start:
                current += 1
            elif at >= start - window:
                previous += 1
            else:
                break
        if previous * (1.0 - (t - start) / window) + current < limit:
            return t
        if current < limit and previous:
            # The estimate falls below the limit just after this moment in this window.
            at = start + window * (1.0 - (limit - current) / previous) + _EPSILON
            if at < start + window:
                return max(t, at)
        t = start + window  # not in this window: try the next one


def floor_schedule(
    count: int,
    limit: int,
    window: float,
    *,
    reserve: int = 0,
    phases: Sequence[float] = (),
) -> list[float]:
    """The oracle's arrival times for ``count`` requests from a start at 0 (see the module).

    Args:
        count: requests in the job.
        limit: the server's limit per window (N).
        window: the window in seconds (W).
        reserve: places of the sliding log the job leaves free.
        phases: counter origins as fractions of ``window`` (empty: no counter).

    Returns:
        The arrival times, in order.
    """
    places = limit - reserve
    origins = [phase * window for phase in phases]
    times: list[float] = []
    t = 0.0
    while len(times) < count:
        while True:  # the earliest time every constraint admits, by fixed point
            at = t
            if len(times) >= places:
                oldest = times[-places]
                free = oldest + window
                while free - window < oldest:  # the mock compares ``now - window`` in floats
                    free = math.nextafter(free, math.inf)
                at = max(at, free)
            for origin in origins:
                at = _counter_earliest(times, at, origin, window, limit)
            if at == t:
                break
            t = at
        times.append(t)
    return times


def floor_makespan(
    count: int, limit: int, window: float, *, reserve: int = 0, phases: Sequence[float] = ()
) -> float:
    """The oracle's last arrival (`floor_schedule()`'s last time)."""
    return floor_schedule(count, limit, window, reserve=reserve, phases=phases)[-1]


def main(argv: list[str] | None = None) -> int:
    """Print the floor table (Markdown) for one job size."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--limit", type=int, default=60)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--phases", type=int, default=200, help="counter origins for 'any phase'")
    args = parser.parse_args(argv)
    count, limit, window = args.count, args.limit, args.window
    bound = (count - 1) // limit * window
    every = [i / args.phases for i in range(args.phases)]
    rows = [
        ("sliding log (so every fixed-window phase and the token bucket)", ()),
        ("sliding-window counter, phase 0.1", (0.1,)),
        ("sliding-window counter, phase 0.5", (0.5,)),
        ("sliding-window counter, phase 0.9", (0.9,)),
        (f"sliding-window counter, any phase ({args.phases} origins)", every),
    ]
    print(f"{count} requests, N = {limit}, W = {window:g} s, bound {bound:g} s")
    print()
    print("| server | all places | one place reserved |")
    print("|---|--:|--:|")
    for name, phases in rows:
        cells = [floor_makespan(count, limit, window, reserve=r, phases=phases) for r in (0, 1)]
        print(f"| {name} | " + " | ".join(f"{c:.3f} s ({c / bound:.3f})" for c in cells) + " |")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
