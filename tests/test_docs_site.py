"""The documentation site, built strictly and opened in a real headless Chromium.

The site is built into a temporary directory with ``mkdocs build --strict``, served on
127.0.0.1 by ``http.server`` in a thread, and opened with Playwright driving Debian's
``/usr/bin/chromium`` (never a browser Playwright downloads). Every request the browser makes
is checked: one that would leave 127.0.0.1 is blocked and fails the test. Without
``/usr/bin/chromium`` (``.ci/install-browser`` installs it where apt-get can) the browser tests
are skipped and say so; the build itself is checked all the same.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import attrs
import pytest
from playwright.sync_api import Browser, Page, Request, Route, sync_playwright

from support.snippets import ALL, HOOKS, PAGES

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Material's header with the palette of mkdocs.yml (primary: indigo), as Chromium computes it.
INDIGO = "rgb(64, 81, 181)"
# The API reference, one page per area.
REFERENCE = (
    "api/client/",
    "api/errors/",
    "api/rate-limiting/",
    "api/bulk/",
    "api/hooks/",
    "api/testing/",
    "api/redis/",
)

pytestmark = pytest.mark.docs


@pytest.fixture(name="site", scope="module")
def _site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built by the documented command with every warning an error."""
    site = tmp_path_factory.mktemp("site")
    build = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stderr
    return site


def test_the_site_builds_strictly_with_every_page_and_the_search_index(site: Path) -> None:
    """Without a browser too: the strict build made every page, the chart, and a search index."""
    for page in ("", "getting-started/", "rate-limits/", "bulk-jobs/", "cli/", "api/"):
        assert (site / page / "index.html").is_file(), page
    for page in REFERENCE:
        assert (site / page / "index.html").is_file(), page
    assert (site / "troubleshooting" / "index.html").is_file()
    assert (site / "img" / "arrivals.png").is_file()
    assert "RateLimits" in (site / "search" / "search_index.json").read_text(encoding="utf-8")
    assert "usage: schedcancel cancel" in (site / "cli" / "index.html").read_text(encoding="utf-8")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Serve silently."""


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that moves on resets connections: not worth a traceback."""


@pytest.fixture(name="base_url", scope="module")
def _base_url(site: Path) -> Iterator[str]:
    """The built site served on 127.0.0.1 (a free port), from a thread."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = _QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(name="browser", scope="module")
def _browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"no browser: {CHROMIUM} is missing; `.ci/install-browser` installs Debian's "
            "chromium package where apt-get and root are available"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@attrs.define
class Traffic:
    """What the browser asked for: everything, what was blocked, what failed."""

    requested: list[str] = attrs.Factory(list)
    blocked: list[str] = attrs.Factory(list)
    failed: list[str] = attrs.Factory(list)


@pytest.fixture(name="traffic")
def _traffic() -> Traffic:
    return Traffic()


@pytest.fixture(name="page")
def _page(browser: Browser, traffic: Traffic) -> Iterator[Page]:
    """A fresh page whose every request is recorded; any leaving 127.0.0.1 is blocked."""
    context = browser.new_context()

    def route(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            traffic.blocked.append(route.request.url)
            route.abort()

    def finished(request: Request) -> None:
        response = request.response()
        if response is not None and response.status >= 400:
            traffic.failed.append(f"{request.url}: HTTP {response.status}")

    context.route("**/*", route)
    page = context.new_page()
    page.on("request", lambda request: traffic.requested.append(request.url))
    page.on(
        "requestfailed",
        lambda request: traffic.failed.append(f"{request.url}: {request.failure}"),
    )
    page.on("requestfinished", finished)
    try:
        yield page
    finally:
        context.close()
    assert traffic.blocked == []


def _header_style(page: Page) -> list[str]:
    return list(
        page.evaluate(
            "() => { const s = getComputedStyle(document.querySelector('.md-header'));"
            " return [s.backgroundColor, s.position]; }"
        )
    )


@pytest.mark.parametrize(
    "expected",
    [
        ("", "schedcancel", ["What you get", "This site", "Install"]),
        ("bulk-jobs/", "A bulk job with a journal", ["From the shell", "From Python"]),
        ("api/", "API reference", []),
        ("api/client/", "The client and its results", ["Results"]),
        ("cli/", "Command line", ["Exit codes", "Environment variables"]),
        (
            "troubleshooting/",
            "Troubleshooting",
            ["QueueTimeoutError: the call would wait too long"],
        ),
    ],
    ids=["home", "how-to", "api", "api-client", "cli", "troubleshooting"],
)
def test_page_renders_with_the_theme_and_its_headings(
    page: Page, traffic: Traffic, base_url: str, expected: tuple[str, str, list[str]]
) -> None:
    """Home, a how-to and the API reference: Material's styles applied, the headings there."""
    path, title, headings = expected
    page.goto(base_url + path)
    assert _header_style(page) == [INDIGO, "sticky"]
    assert page.locator("article h1").inner_text().rstrip("¶").strip() == title
    h2 = [text.rstrip("¶").strip() for text in page.locator("article h2").all_inner_texts()]
    assert set(headings) <= set(h2)
    assert any(url.endswith(".css") for url in traffic.requested)
    assert traffic.failed == []


def test_api_reference_documents_the_public_classes(page: Page, base_url: str) -> None:
    """mkdocstrings rendered the docstrings: each class has its anchored heading and text."""
    for path, names in (
        ("api/client/", ("ScheduleClient", "RetryPolicy", "ScheduleResult")),
        ("api/rate-limiting/", ("RateLimits", "Gate")),
        ("api/redis/", ("redis.RedisLimiter",)),
        ("api/testing/", ("testing.MockScheduleServer",)),
    ):
        page.goto(base_url + path)
        for name in names:
            assert page.locator(f"[id='schedcancel.{name}']").count() == 1, name
    page.goto(base_url + "api/rate-limiting/")
    assert "requests per window per API user" in page.locator("article").inner_text()


def _signature(page: Page, anchor: str) -> str:
    """The text of the signature right after the heading ``anchor``."""
    heading = page.locator(f"[id='{anchor}']")
    assert heading.count() == 1, anchor
    return str(
        heading.evaluate(
            "h => { const s = h.nextElementSibling;"
            " return s && s.matches('.doc-signature') ? s.innerText : ''; }"
        )
    )


def test_reference_shows_signatures_with_their_defaults(page: Page, base_url: str) -> None:
    """Attrs classes show their constructor and defaults; cancel_many has its entry."""
    page.goto(base_url + "api/rate-limiting/")
    signature = _signature(page, "schedcancel.RateLimits")
    assert "total: int = 60" in signature
    assert "per_schedule: int = 10" in signature
    assert signature.count("\n") > 3  # formatted: one parameter a line, not one long line
    rows = page.evaluate(
        "() => [...document.getElementById('schedcancel.RateLimits').closest('.doc-class')"
        ".querySelector('table').querySelectorAll('tbody tr')]"
        ".map(r => [...r.cells].slice(0, 2).map(c => c.innerText.trim()))"
    )
    assert ["total", "int"] in rows  # the attributes table keeps the types
    page.goto(base_url + "api/testing/")
    signature = _signature(page, "schedcancel.testing.MockScheduleServer")
    assert "limits: ServerLimits = ServerLimits()" in signature
    assert "NOTHING" not in signature
    page.goto(base_url + "api/client/")
    entry = page.locator("[id='schedcancel.ScheduleClient.cancel_many']")
    assert "cancel_many" in entry.inner_text()
    assert "ids: Iterable[object]" in _signature(page, "schedcancel.ScheduleClient.cancel_many")
    signature = _signature(page, "schedcancel.ScheduleClient")
    assert "limits: RateLimits | None = None" in signature
    assert "_clock" not in signature  # test seams are no part of the reference
    page.goto(base_url + "api/hooks/")
    signature = _signature(page, "schedcancel.prometheus.PrometheusHook")
    assert "= REGISTRY" in signature  # a name, not "<... object at 0x7f...>" (differs per build)
    page.goto(base_url + "api/client/")
    link = page.locator(".doc-signature a[href$='#schedcancel.RateLimits']").first
    assert link.get_attribute("href") == "../rate-limiting/#schedcancel.RateLimits"


def test_every_reference_class_shows_its_signature(page: Page, base_url: str) -> None:
    """Attrs classes, enums, TypedDicts and exceptions alike show how they are constructed.

    Protocols are implemented, never constructed: they show none.
    """
    missing = []
    for path in REFERENCE:
        page.goto(base_url + path)
        missing += [
            f"{path}{anchor}"
            for anchor in page.evaluate(
                "() => [...document.querySelectorAll('.doc-class > .doc-heading')]"
                ".filter(h => !(h.nextElementSibling && h.nextElementSibling.matches("
                "'.doc-signature'))).map(h => h.id)"
            )
        ]
    assert sorted(missing) == [
        "api/client/schedcancel.Transport",
        "api/hooks/schedcancel.hooks.Hook",
        "api/rate-limiting/schedcancel.Limiter",
    ]


def test_the_pytest_plugin_page_shows_no_fallback_stub_or_argparse_plumbing(
    page: Page, base_url: str
) -> None:
    """The plugin is documented by its fixtures; the testing page by its public classes."""
    page.goto(base_url + "api/testing/")
    text = page.locator("article").inner_text()
    assert "mock_schedule_server_factory" in text
    assert "mock_schedule_server() -> None" not in text  # the stub without pytest-asyncio
    assert "the async fixtures need pytest-asyncio" not in text
    assert "run_mock_server" not in text
    assert "add_mock_server_arguments" not in text


def test_reference_shows_no_sphinx_roles_or_literal_markers(page: Page, base_url: str) -> None:
    """Docstrings are Markdown for mkdocstrings: no raw :meth:-style role, no ``::`` marker,
    on the overview or any area's page."""
    found = []
    for path in ("api/", *REFERENCE):
        page.goto(base_url + path)
        text = page.locator("article").inner_text()
        found += [
            f"{path}: {marker}"
            for marker in (":meth:", ":class:", ":func:", ":mod:", ":attr:", "::")
            if marker in text
        ]
    assert found == []


def _pages(site: Path) -> list[str]:
    """Every page of the built site, as a path below the base URL."""
    return sorted(
        "" if path.parent == site else path.parent.relative_to(site).as_posix() + "/"
        for path in site.rglob("index.html")
    )


def test_no_code_block_scrolls_sideways_at_1280px(
    browser: Browser, base_url: str, site: Path
) -> None:
    """At a 1,280 px window, every code block of every page fits the content column, and no
    line of Python wraps."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        blocks = 0
        too_wide: list[str] = []
        unseen: list[str] = []
        wrapped: list[str] = []
        for path in _pages(site):
            page.goto(base_url + path)
            # Folded blocks (the CLI's help, later notes) are measured open: hidden, they would
            # measure 0 and pass unseen.
            widths = page.evaluate(
                "() => { document.querySelectorAll('details').forEach(d => { d.open = true; });"
                " return [...document.querySelectorAll('pre > code')]"
                ".map(c => [c.scrollWidth, c.clientWidth, c.innerText.slice(0, 40)]); }"
            )
            blocks += len(widths)
            too_wide += [f"{path}: {text!r}" for scroll, client, text in widths if scroll > client]
            unseen += [f"{path}: {text!r}" for _, client, text in widths if client == 0]
            # Python, formatted at 100 columns, fits unwrapped: a wrapped line loses its indent.
            wrapped += page.evaluate(
                "path => [...document.querySelectorAll('.language-python pre > code')]"
                ".filter(c => { const s = getComputedStyle(c);"
                " const height = c.clientHeight - parseFloat(s.paddingTop)"
                " - parseFloat(s.paddingBottom);"
                " return Math.round(height / parseFloat(s.lineHeight))"
                " > c.textContent.replace(/\\n$/, '').split('\\n').length; })"
                ".map(c => path + ': ' + c.textContent.slice(0, 40))",
                path,
            )
            # The page itself never scrolls sideways either (a wide table scrolls in its box).
            assert page.evaluate(
                "() => document.documentElement.scrollWidth <= window.innerWidth"
            ), path
        assert too_wide == []
        assert unseen == []
        assert wrapped == []
        assert blocks > 100
    finally:
        context.close()


def test_the_pages_fit_a_400px_screen(page: Page, base_url: str) -> None:
    """On a phone, the page never scrolls sideways: a long code line scrolls in its own block
    (wrapped, it would lose its indentation), a wide table in its own box."""
    page.set_viewport_size({"width": 400, "height": 900})
    for path in ("", "getting-started/", "client/", "bulk-jobs/", "api/", "api/client/"):
        page.goto(base_url + path)
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), (
            path
        )
    page.goto(base_url)
    white_space = page.evaluate(
        "() => getComputedStyle(document.querySelector('.language-python pre > code')).whiteSpace"
    )
    assert white_space == "pre"


def test_table_cells_do_not_break_names_mid_word(page: Page, base_url: str) -> None:
    """A name in a table cell stays on one line ("QueueTimeoutError", not "…Erro / r")."""
    page.set_viewport_size({"width": 400, "height": 900})
    page.goto(base_url + "client/")
    cell = page.locator("td code", has_text="QueueTimeoutError").first
    box = cell.bounding_box()
    assert box is not None
    line_height = float(cell.evaluate("c => parseFloat(getComputedStyle(c).lineHeight) || 0"))
    assert box["height"] < 1.5 * line_height


def _site_path(source: Path) -> str:
    """The site path of ``docs/NAME.md``: ``NAME/``, or ``""`` for the home page."""
    return "" if source.name == "index.md" else f"{source.stem}/"


def test_every_example_shown_is_the_code_the_snippet_test_runs(page: Page, base_url: str) -> None:
    """Each guide page's python blocks, as the browser shows them, are exactly the blocks
    ``tests/test_docs_snippets.py`` found there, in order and to the character: no example
    escapes the snippet test, and none is run in another form than it is printed. A block the
    snippet test skips is a signature, a fragment or an ``examples/`` file run by
    ``tests/test_examples.py``, and says so in its marker."""
    shown_total = run_total = 0
    for source in PAGES:
        if source.parent.name != "docs":
            continue  # the README is no page of the site
        page.goto(base_url + _site_path(source))
        shown = page.evaluate(
            "() => [...document.querySelectorAll('article .language-python pre > code')]"
            ".map(c => c.textContent)"
        )
        expected = [snippet for snippet in ALL if snippet.page == source]
        assert [code.rstrip("\n") for code in shown] == [
            snippet.code.rstrip("\n") for snippet in expected
        ], source.name
        shown_total += len(shown)
        run_total += sum(snippet.mode != "skip" for snippet in expected)
        for snippet in expected:
            if snippet.mode == "skip":
                assert snippet.reason, snippet.name
    assert shown_total >= 30
    assert run_total >= shown_total - 5  # the skips: a signature, a fragment, three examples/


def test_every_example_with_credentials_says_how_to_run_it(page: Page, base_url: str) -> None:
    """Right above each example that reads the ``SCHEDCANCEL_*`` variables, a note (open for
    the first on a page, folded after) shows the commands the snippet test runs it with:
    the mock server, the variables, ``python example.py``."""
    console = HOOKS.MOCK_CONSOLE.rstrip("\n")
    checked = 0
    for source in sorted({snippet.page for snippet in ALL if snippet.mode == "mock"}):
        if source.parent.name != "docs":
            continue
        page.goto(base_url + _site_path(source))
        notes = page.evaluate(
            "() => [...document.querySelectorAll('article .language-python')].map(b => {"
            " const n = b.previousElementSibling;"
            " return n && n.matches('.admonition, details') ? [n.tagName,"
            " n.querySelector('.admonition-title, summary').innerText,"
            " n.querySelector('pre > code').textContent] : null; })"
        )
        codes = [snippet for snippet in ALL if snippet.page == source]
        mock_notes = [
            note for note, snippet in zip(notes, codes, strict=True) if snippet.mode == "mock"
        ]
        assert all(note is not None for note in mock_notes), source.name
        assert [tag for tag, _, _ in mock_notes] == ["DIV"] + ["DETAILS"] * (len(mock_notes) - 1)
        for _, title, code in mock_notes:
            assert title.strip() == "Credentials from the environment: yours, or the mock server's"
            assert code.rstrip("\n") == console
        checked += len(mock_notes)
    assert checked >= 6


def test_search_finds_ratelimits(page: Page, traffic: Traffic, base_url: str) -> None:
    """The search, run in the page from the site's own index, returns RateLimits."""
    page.goto(base_url)
    page.locator(".md-search__input").click()
    # Material says "Initializing search" until its worker has loaded the site's index.
    page.wait_for_function(
        "() => document.querySelector('.md-search-result__meta').innerText"
        " !== 'Initializing search'",
        timeout=15_000,
    )
    page.keyboard.type("RateLimits")
    # Results come as the query is typed ("R", "Ra", ...): wait for the whole query's.
    page.wait_for_function(
        "() => [...document.querySelectorAll('.md-search-result__item')]"
        ".slice(0, 3).some(item => item.innerText.includes('RateLimits'))",
        timeout=15_000,
    )
    assert any(url.endswith("search_index.json") for url in traffic.requested)
    assert traffic.failed == []


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - 127.0.0.1 only
        return int(response.status)


def test_no_page_has_a_broken_link_or_asset(
    page: Page, traffic: Traffic, base_url: str, site: Path
) -> None:
    """Crawl from the home page: every internal link and asset resolves, anchors too."""
    pages = [base_url]
    seen = {base_url}
    anchors: list[tuple[str, str, str]] = []  # (target page, fragment, linking page)
    ids: dict[str, set[str]] = {}
    broken: list[str] = []
    while pages:
        url = pages.pop()
        response = page.goto(url)
        assert response is not None
        assert response.status == 200, url
        page.wait_for_load_state("networkidle")  # nothing cut short by the next goto
        ids[url] = set(page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id)"))
        targets = page.evaluate(
            "() => [...document.querySelectorAll('a[href], link[href], script[src], img[src]')]"
            ".map(e => e.href || e.src)"
        )
        for target in targets:
            absolute, fragment = urldefrag(urljoin(url, target))
            if not absolute.startswith(base_url):
                continue  # a link to the web (e.g. IXOPAY's docs): never requested here
            if fragment:
                anchors.append((absolute, fragment, url))
            if absolute in seen:
                continue
            seen.add(absolute)
            if absolute.endswith(("/", ".html")):
                pages.append(absolute)
            elif _status(absolute) != 200:
                broken.append(f"{absolute} (from {url})")
    broken += [
        f"{target}#{fragment} (from {source})"
        for target, fragment, source in anchors
        if target in ids and fragment not in ids[target]
    ]
    assert broken == []
    assert traffic.failed == []
    built = {
        base_url + path.parent.relative_to(site).as_posix() + "/"
        for path in site.rglob("index.html")
    }
    assert {url.replace(base_url + "./", base_url) for url in built} <= seen
    assert len(ids) >= 15
