"""The Redis store's scripts, and the KEYS and ARGV each one reads, defined once.

One Lua file per operation in ``lua/`` (``acquire.lua``, which also peeks,
``release.lua``, ``undo.lua``, ``forget.lua``); ``lua/helpers.lua`` (the
clock, the logs, the adaptive policy) is prepended to each when its text is
assembled, since a Redis script cannot ``require``. Each file's header names
its KEYS and ARGV in order; the classes below are the one Python definition of
that order, and `call()` builds from them the lists redis-py sends
(tests/test_redis_scripts.py checks that the headers and the classes agree).
No I/O but reading the files.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "SCRIPTS",
    "Acquire",
    "Call",
    "Forget",
    "IdKeys",
    "Release",
    "ReleasedPermit",
    "Undo",
    "UserKeys",
    "assemble",
    "call",
]

_LUA: Final = files("schedcancel._limiting").joinpath("lua")


def assemble(body: str) -> str:
    """A script's text: the shared helpers, then one operation's own code."""
    return _LUA.joinpath("helpers.lua").read_text(encoding="utf-8") + body


class UserKeys(NamedTuple):
    """The API user's keys, KEYS 1-6 of every script (the names each script's header lists)."""

    log: str
    pause: str
    last: str
    adapt: str
    accepted: str
    last_background: str

    @classmethod
    def under(cls, tag: str) -> UserKeys:
        """The keys under one hash tag."""
        names = ("log", "pause", "last", "adapt", "acc", "lastbg")
        return cls(*(f"{tag}:{name}:u" for name in names))


class IdKeys(NamedTuple):
    """A scheduleId's keys, three per candidate or permit after the API user's."""

    log: str
    pause: str
    last: str

    @classmethod
    def under(cls, tag: str, schedule_id: str) -> IdKeys:
        """The keys of ``schedule_id`` under one hash tag."""
        return cls(*(f"{tag}:{name}:s:{schedule_id}" for name in ("log", "pause", "last")))


class Call(NamedTuple):
    """One script call: which script, its KEYS and its ARGV."""

    script: str
    keys: list[str]
    args: list[str | int]


def call(argv: NamedTuple, user: UserKeys, ids: Sequence[IdKeys], *more: NamedTuple) -> Call:
    """The call of the script ``argv`` is for (by its class's name).

    Args:
        argv: the script's ARGV (`Acquire`, `Release`, `Undo` or `Forget`).
        user: the API user's keys.
        ids: the keys of each candidate or permit with a scheduleId, in order.
        more: ARGV repeated per item after ``argv`` (`ReleasedPermit` per permit).
    """
    keys = [*user, *(key for id_keys in ids for key in id_keys)]
    args: list[str | int] = [*argv, *(value for item in more for value in item)]
    return Call(type(argv).__name__.lower(), keys, args)


class Acquire(NamedTuple):
    """``acquire.lua``'s ARGV: times in µs, flags one digit per candidate."""

    now: str  # '' for Redis TIME, else the injected clock
    peek: int
    base: str
    total: int
    per_schedule: int
    window: int
    guard: int
    in_flight: int
    smooth: int
    slack: str
    poll: int
    adaptive: int
    reserve: int
    flags: str
    deadline: int | str  # '' for none
    probe: int
    higher: int  # RateLimits.accept_higher_limits


class ReleasedPermit(NamedTuple):
    """``release.lua``'s ARGV for each permit, after `Release`'s."""

    token: str
    acquired: int
    limited: int
    retry_after: int  # -1: the server sent none
    has_id: int
    # The answer's rate-limit headers digested (server_state.Heard); -1: not stated.
    user_limit: int
    remaining: int
    reset: int
    id_limit: int
    blamed: int  # 0 unknown, 1 the API user, 2 the scheduleId


class Release(NamedTuple):
    """``release.lua``'s ARGV before the permits'."""

    now: str
    total: int
    per_schedule: int
    window: int
    guard: int
    cap: int
    adaptive: int
    higher: int
    probe: int


class Undo(NamedTuple):
    """``undo.lua``'s ARGV."""

    now: str
    token: str
    acquired: int


class Forget(NamedTuple):
    """``forget.lua``'s ARGV."""

    now: str
    base: str


#: Each operation's script text, by the name a `Call` carries.
SCRIPTS: Final = {
    op.__name__.lower(): assemble(
        _LUA.joinpath(f"{op.__name__.lower()}.lua").read_text(encoding="utf-8")
    )
    for op in (Acquire, Release, Undo, Forget)
}
