"""Every ```python block of docs/*.md and README.md runs as printed, or is marked with a reason it
does not.

The marker is an HTML comment on the line before the block (blank lines aside), described in
docs/development.md: none (run as it is), ``<!-- snippet: mock -->`` (run as the note above it
says: the mock server started and the ``SCHEDCANCEL_*`` variables set by the commands shown,
then ``python example.py``), ``<!-- snippet: pytest -->`` (a test module, run by pytest) and
``<!-- snippet: skip REASON -->`` (not run). Pages are expanded by the site's own build hook
first, so included files are checked as the site shows them. No block is edited before it runs.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from support.redis import require_redis
from support.snippets import ALL, ANY_FENCE, HOOKS, MARKER, MODES, PAGES, Snippet, expanded

# What an example reading ids.txt finds there when run against the mock server (as the bulk
# page says: one scheduleId a line).
MOCK_IDS = ("SC-1", "SC-2", "SC-3")
# The port the docs give the mock server; the test asks for a free one instead.
DOCS_PORT = "8765"


def test_the_pages_have_python_blocks_of_every_kind() -> None:
    """The scan finds the blocks: the quickstart is run against the mock server, and so on."""
    assert len(ALL) >= 15
    assert {snippet.mode for snippet in ALL} == set(MODES)
    readme = [snippet for snippet in ALL if snippet.page.name == "README.md"]
    assert readme[0].mode == "mock"  # the quickstart
    assert "ScheduleClient.from_env(" in readme[0].code


def test_every_marker_is_known_and_stands_before_a_python_block() -> None:
    """A mistyped marker, a skip without a reason, or a marker before no python block fails."""
    problems = []
    for page in PAGES:
        lines = expanded(page).splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.startswith("<!-- snippet:"):
                continue
            marker = MARKER.match(line)
            following = next((text for text in lines[number:] if text.strip()), "")
            if marker is None or marker["mode"] not in MODES[1:]:
                problems.append(f"{page.name}:{number}: unknown marker {line!r}")
            elif marker["mode"] == "skip" and not (marker["reason"] or "").strip():
                problems.append(f"{page.name}:{number}: a skip needs a reason")
            elif following != "```python":
                problems.append(f"{page.name}:{number}: the marker stands before no python block")
    assert problems == []


def test_python_blocks_are_fenced_as_python() -> None:
    """A ```py or indented python block would escape the scan: every python fence is ```python."""
    for page in PAGES:
        for match in ANY_FENCE.finditer(expanded(page)):
            assert match["lang"] not in {"py", "python3", "pycon"}, page.name
            if match["lang"] == "python":
                assert not match[0].startswith((" ", "\t")), page.name


@attrs.frozen
class MockConsole:
    """The note's commands (``docs/hooks.py``'s ``MOCK_CONSOLE``), read as a shell would."""

    server: list[str]  # python -m schedcancel.testing ...
    variables: dict[str, str]  # from the export lines
    example: list[str]  # python example.py

    @classmethod
    def parse(cls, text: str) -> MockConsole:
        """Split each line as the shell does; ``#`` comments and a trailing ``&`` go."""
        lines = [shlex.split(line, comments=True) for line in text.splitlines()]
        server, *exports, example = lines
        assert server[-1] == "&"  # the server runs in the background of the same shell
        assert all(line[0] == "export" for line in exports)
        variables = dict(word.split("=", 1) for line in exports for word in line[1:])
        return cls(server=server[:-1], variables=variables, example=example)


MOCK_CONSOLE = MockConsole.parse(HOOKS.MOCK_CONSOLE)


def test_the_mock_note_starts_the_server_sets_every_variable_and_runs_the_example() -> None:
    """The note's commands as the snippet test runs them: nothing it needs is left unsaid."""
    assert MOCK_CONSOLE.server[:3] == ["python", "-m", "schedcancel.testing"]
    assert MOCK_CONSOLE.server[MOCK_CONSOLE.server.index("--port") + 1] == DOCS_PORT
    assert set(MOCK_CONSOLE.variables) == {
        "SCHEDCANCEL_BASE_URL",
        "SCHEDCANCEL_API_KEY",
        "SCHEDCANCEL_USERNAME",
        "SCHEDCANCEL_PASSWORD",
    }
    assert MOCK_CONSOLE.example == ["python", "example.py"]


@pytest.fixture(name="mock_environ", scope="module")
def _mock_environ() -> Iterator[dict[str, str]]:
    """The note's mock server, started as printed but on a free port; the environment that the
    note's ``export`` lines give (its base URL on that port), for a fresh process."""
    command = [sys.executable, *MOCK_CONSOLE.server[1:]]
    command[command.index("--port") + 1] = "0"  # parallel runs: never a fixed port
    process = subprocess.Popen(  # noqa: S603 - our own interpreter, the docs' arguments
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        port = base_url.split(":")[2].split("/")[0]
        printed = MOCK_CONSOLE.variables["SCHEDCANCEL_BASE_URL"]
        assert printed == base_url.replace(f":{port}/", f":{DOCS_PORT}/"), base_url
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDCANCEL_")}
        yield inherited | MOCK_CONSOLE.variables | {"SCHEDCANCEL_BASE_URL": base_url}
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def _exec(snippet: Snippet, code: str) -> None:
    """Run a block as the script it is, in a namespace of its own."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(code, snippet.name, "exec"), namespace)  # noqa: S102 - the docs' own code


@pytest.mark.parametrize("snippet", ALL, ids=lambda snippet: snippet.name)
def test_snippet_runs(
    snippet: Snippet,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each block runs as printed, as its marker says, without raising; a skipped one says why.

    A block run against the mock server holds no credential, and writes neither the password
    nor the whole apiKey, to its output or to any file it leaves (a journal), as
    ``tests/test_secrets.py`` asks of every program.
    """
    if snippet.mode == "skip":
        pytest.skip(f"marked not runnable: {snippet.reason}")
    if "schedcancel.redis" in snippet.code and "127.0.0.1:6379" in snippet.code:
        require_redis()
    monkeypatch.chdir(tmp_path)
    if snippet.mode == "run":
        _exec(snippet, snippet.code)
    elif snippet.mode == "mock":
        # The page shows the note's commands above the block; they are what runs it.
        missing = [line for line in HOOKS.MOCK_CONSOLE.splitlines() if line not in snippet.before]
        assert missing == [], f"{snippet.name}: the page does not show {missing}"
        environ = request.getfixturevalue("mock_environ")
        (tmp_path / "ids.txt").write_text("\n".join(MOCK_IDS) + "\n", encoding="utf-8")
        (tmp_path / "example.py").write_text(snippet.code, encoding="utf-8")
        run = subprocess.run(  # noqa: S603 - our own interpreter, the docs' command
            [sys.executable, *MOCK_CONSOLE.example[1:]],
            cwd=tmp_path,
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        # Neither the output nor any file left (a journal), nor the code itself, holds the
        # password or the whole apiKey: the examples read them from the environment.
        texts = [run.stdout, run.stderr]
        texts += [path.read_text(encoding="utf-8") for path in tmp_path.iterdir()]
        for variable in ("SCHEDCANCEL_PASSWORD", "SCHEDCANCEL_API_KEY"):
            assert all(environ[variable] not in text for text in texts), variable
    else:
        assert snippet.mode == "pytest"
        pytester: pytest.Pytester = request.getfixturevalue("pytester")
        pytester.makeconftest('pytest_plugins = ["schedcancel.pytest_plugin"]\n')
        pytester.makeini(
            "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
        )
        pytester.makepyfile(test_snippet=snippet.code)
        result = pytester.runpytest_subprocess("-p", "asyncio", "-W", "error")
        outcomes = result.parseoutcomes()
        assert outcomes.get("passed", 0) >= 1
        assert set(outcomes) <= {"passed"}, result.stdout.str()
