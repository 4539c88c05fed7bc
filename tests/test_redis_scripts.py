"""The Redis scripts' layout: each Lua file's header names its KEYS and ARGV in the order
``schedcancel._limiting.redis_scripts`` defines them, and only the package's operations ship.

A script reads its arguments by position; the Python side builds them from the
NamedTuples' fields. A field added, removed or moved on one side only fails here,
by name, instead of as a wrong limit at run time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest
from schedcancel._limiting import redis_scripts as _redis_scripts
from schedcancel._limiting.redis_scripts import (
    SCRIPTS,
    Acquire,
    Forget,
    IdKeys,
    Release,
    ReleasedPermit,
    Undo,
    UserKeys,
    call,
)

from support.redis import BACKGROUND_LUA, POLICY_LUA, Background, Policy

LUA = Path(_redis_scripts.__file__).parent / "lua"
HEADER = re.compile(r"^(KEYS|ARGV)( per [^:]+)?: (.+)$", re.MULTILINE)


def _header(path: Path) -> list[tuple[str, bool, list[str]]]:
    """(KEYS or ARGV, repeated per item, the names) for each layout line of a file's header."""
    text = path.read_text(encoding="utf-8")
    return [(kind, bool(per), names.split()) for kind, per, names in HEADER.findall(text)]


def _fields(*parts: type[NamedTuple]) -> list[str]:
    return [name for part in parts for name in part._fields]


@pytest.mark.parametrize(
    ("name", "argv", "per_item"),
    [
        ("acquire", Acquire, None),
        ("release", Release, ReleasedPermit),
        ("undo", Undo, None),
        ("forget", Forget, None),
    ],
)
def test_each_script_reads_the_keys_and_args_python_builds(
    name: str, argv: type[NamedTuple], per_item: type[NamedTuple] | None
) -> None:
    """The header's KEYS are UserKeys then IdKeys per item; its ARGV the class's fields."""
    expected = [
        ("KEYS", False, _fields(UserKeys)),
        ("KEYS", True, _fields(IdKeys)),
        ("ARGV", False, _fields(argv)),
    ]
    if per_item is not None:
        expected.append(("ARGV", True, _fields(per_item)))
    assert _header(LUA / f"{name}.lua") == expected
    assert _fields(argv)[0] == "now"  # helpers.lua reads the clock from ARGV[1]


def test_the_calls_put_the_fields_in_order() -> None:
    """A call's ARGV are the fields in order, the permits' after; its KEYS the user's, then ids'."""
    user, ids = UserKeys.under("{t}"), [IdKeys.under("{t}", "SC-1")]
    assert user.log == "{t}:log:u"
    assert ids[0].last == "{t}:last:s:SC-1"
    permit = ReleasedPermit("tok", 5, 1, -1, 1, 40, 0, 7, -1, 1)
    release = call(Release("", 60, 10, 1, 2, 3, 1, 0, 1), user, ids, permit)
    assert release == (
        "release",
        [*user, *ids[0]],
        ["", 60, 10, 1, 2, 3, 1, 0, 1, "tok", 5, 1, -1, 1, 40, 0, 7, -1, 1],
    )
    assert call(Forget("7", "b"), user, []) == ("forget", list(user), ["7", "b"])


def test_the_test_only_policy_script_reads_what_the_test_sends() -> None:
    """tests/lua/policy.lua's header matches the test's Policy fields."""
    assert _header(POLICY_LUA) == [("KEYS", False, ["adapt"]), ("ARGV", False, _fields(Policy))]
    assert _header(BACKGROUND_LUA) == [
        ("KEYS", False, ["state"]),
        ("ARGV", False, _fields(Background)),
    ]


def test_only_the_operations_ship_each_after_the_helpers() -> None:
    """The package holds one script per operation and the helpers; the policy stays in tests."""
    assert sorted(path.name for path in LUA.glob("*.lua")) == [
        "acquire.lua",
        "forget.lua",
        "helpers.lua",
        "release.lua",
        "undo.lua",
    ]
    helpers = (LUA / "helpers.lua").read_text(encoding="utf-8")
    assert sorted(SCRIPTS) == ["acquire", "forget", "release", "undo"]
    for text in SCRIPTS.values():
        assert text.startswith(helpers)
        assert "'judge'" not in text  # the policy operation is the tests' own
