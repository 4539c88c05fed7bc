"""Print pip constraints that pin every runtime dependency to its declared lower bound.

The runtime dependencies are `[project].dependencies` and the extras a user installs
(`cli`, `redis`, `otel`, `prometheus`). Test and docs tools are not pinned: the point is
to prove the bounds users see in `pyproject.toml`, with today's test tools.

    python .ci/lowest.py > lowest.txt && pip install -c lowest.txt -e '.[dev]'
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

RUNTIME_EXTRAS = ("cli", "redis", "otel", "prometheus")
LOWER_BOUND = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)")


def lower_bounds(pyproject: Path) -> list[str]:
    """`name==version` for each runtime requirement; every one must declare `>=`."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in RUNTIME_EXTRAS:
        requirements += project["optional-dependencies"][extra]
    pins = []
    for requirement in requirements:
        match = LOWER_BOUND.match(requirement)
        if match is None:
            sys.exit(f"lowest.py: {requirement!r} declares no lower bound (name>=version)")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


if __name__ == "__main__":
    pins = lower_bounds(Path(__file__).resolve().parent.parent / "pyproject.toml")
    sys.stdout.write("".join(f"{pin}\n" for pin in pins))
