"""Transport safety: no redirect is followed, TLS is verified, and every response is bounded.

Each test runs real servers on 127.0.0.1 (plain aiohttp apps, TLS with a
certificate made here by ``openssl``) and drives a real ``ScheduleClient``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import re
import shutil
import ssl
import subprocess
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import attrs
import pytest
from aiohttp import web
from schedcancel import (
    ApiError,
    InvalidParameterError,
    RetryPolicy,
    ScheduleClient,
    TransportError,
)
from schedcancel._client.transport import decode_body
from schedcancel._protocol.wire import MAX_BODY_BYTES

PASSWORD = "PW-SENTINEL-7f3a"
SECRET = "SS-SENTINEL-91bc"
API_KEY = "AK-SENTINEL-0d2e-long-connector-key"
SID = "SC-1"
SUCCESS = (
    b'{"success": true, "scheduleId": "SC-1", "oldStatus": "ACTIVE", "newStatus": "CANCELLED"}'
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@attrs.define
class AppServer:
    """A one-route aiohttp app on 127.0.0.1 that records every request's path and headers."""

    handler: Handler
    ssl_context: ssl.SSLContext | None = None
    seen: list[tuple[str, dict[str, str]]] = attrs.field(factory=list)
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> AppServer:
        async def record(request: web.Request) -> web.StreamResponse:
            self.seen.append((request.path, dict(request.headers)))
            return await self.handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context).start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    @property
    def origin(self) -> str:
        """``scheme://127.0.0.1:port``."""
        assert self._runner is not None
        port = self._runner.addresses[0][1]
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{port}"

    @property
    def base_url(self) -> str:
        """The API base for ScheduleClient."""
        return self.origin + "/api/v3"


async def ok(_request: web.Request) -> web.StreamResponse:
    """Answer a successful cancel."""
    return web.Response(body=SUCCESS, content_type="application/json")


def make_client(base_url: str, **overrides: Any) -> ScheduleClient:
    """A client with the sentinel credentials, signing on, no retries unless overridden."""
    kwargs: dict[str, Any] = {
        "username": "api-user",
        "password": PASSWORD,
        "shared_secret": SECRET,
        "base_url": base_url,
        "retry": RetryPolicy(attempts=1),
        "timeout": 5.0,
    }
    return ScheduleClient(API_KEY, **(kwargs | overrides))


def assert_clean(exc: BaseException) -> None:
    """Assert that an exception shows no credential, in its text, repr, notes or chain."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for error in seen:
        text = f"{error} {error!r} {' '.join(getattr(error, '__notes__', []))}"
        for secret in (PASSWORD, SECRET, API_KEY):
            assert secret not in text


# -- redirects ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_to_another_server_is_not_followed(status: int) -> None:
    """A 3xx pointing at another local server is an ApiError; that server sees no request."""
    async with AppServer(ok) as thief:

        async def redirect(_request: web.Request) -> web.StreamResponse:
            target = f"{thief.base_url}/schedule/{API_KEY}/{SID}/cancel"
            return web.Response(status=status, headers={"Location": target})

        async with AppServer(redirect) as gateway, make_client(gateway.base_url) as client:
            with pytest.raises(ApiError) as info:
                await client.cancel(SID)
    assert type(info.value) is ApiError
    assert info.value.http_status == status
    assert_clean(info.value)
    assert thief.seen == []
    # Not retried either: one request, and it was the only one carrying the credentials.
    assert len(gateway.seen) == 1
    assert gateway.seen[0][1]["Authorization"].startswith("Basic ")


async def test_redirect_is_not_followed_with_a_borrowed_session() -> None:
    """A borrowed session does not bring redirects back: the request still says no."""
    async with AppServer(ok) as thief:

        async def redirect(_request: web.Request) -> web.StreamResponse:
            raise web.HTTPTemporaryRedirect(thief.base_url)

        async with (
            AppServer(redirect) as gateway,
            aiohttp.ClientSession() as session,
            make_client(gateway.base_url, session=session) as client,
        ):
            with pytest.raises(ApiError, match="unexpected HTTP status"):
                await client.cancel(SID)
    assert thief.seen == []


# -- TLS ---------------------------------------------------------------------------------


@attrs.frozen
class Certificate:
    """A self-signed certificate for 127.0.0.1 and its key, as files."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def trusting_context(self) -> ssl.SSLContext:
        """A client-side context that trusts exactly this certificate (and verifies it)."""
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(name="certificate", scope="module")
def _certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """Make a self-signed certificate for IP 127.0.0.1 with openssl; skip when openssl is absent."""
    openssl = shutil.which("openssl")
    if openssl is None:  # pragma: no cover - openssl is on every CI image this project uses
        pytest.skip("neither cryptography nor openssl is available to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(  # noqa: S603 - a fixed argument list, no shell
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return Certificate(cert=cert, key=key)


@pytest.mark.parametrize(
    "value",
    [False, True, "none", 0, object(), aiohttp.Fingerprint(b"\x00" * 32)],
    ids=["False", "True", "str", "zero", "object", "fingerprint"],
)
def test_ssl_must_be_an_ssl_context(value: object) -> None:
    """Anything but an SSLContext for ``ssl`` is refused before any I/O, so nobody turns TLS off."""
    with pytest.raises(InvalidParameterError, match="SSLContext"):
        make_client("https://gateway.example.test/api/v3", ssl=value)


def test_an_unverifying_context_is_refused() -> None:
    """An SSLContext with verify_mode CERT_NONE is verification switched off: refused too."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(InvalidParameterError, match="verify"):
        make_client("https://gateway.example.test/api/v3", ssl=context)


async def test_self_signed_server_is_refused_by_default(certificate: Certificate) -> None:
    """An https server with an untrusted certificate is a TransportError; it sees no request."""
    async with (
        AppServer(ok, certificate.server_context()) as server,
        make_client(server.base_url) as client,
    ):
        with pytest.raises(TransportError, match=r"(?i)certificate") as info:
            await client.cancel(SID)
    assert_clean(info.value)
    assert server.seen == []


async def test_self_signed_server_is_accepted_with_a_context_trusting_it(
    certificate: Certificate,
) -> None:
    """Passing an SSLContext that trusts the certificate is the one way to talk to that server."""
    async with (
        AppServer(ok, certificate.server_context()) as server,
        make_client(server.base_url, ssl=certificate.trusting_context()) as client,
    ):
        result = await client.cancel(SID)
    assert result.success
    assert len(server.seen) == 1


async def test_a_trusting_context_still_checks_the_host_name(certificate: Certificate) -> None:
    """The certificate names 127.0.0.1; reaching the same server as localhost fails verification."""
    async with AppServer(ok, certificate.server_context()) as server:
        base_url = server.base_url.replace("127.0.0.1", "localhost")
        async with make_client(base_url, ssl=certificate.trusting_context()) as client:
            with pytest.raises(TransportError):
                await client.cancel(SID)
    assert server.seen == []


async def test_borrowed_session_cannot_turn_verification_off(certificate: Certificate) -> None:
    """A borrowed session whose connector says ``ssl=False`` does not switch verification off."""
    async with (
        AppServer(ok, certificate.server_context()) as server,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session,
        make_client(server.base_url, session=session) as client,
    ):
        with pytest.raises(TransportError, match=r"(?i)certificate"):
            await client.cancel(SID)
    assert server.seen == []


async def test_plain_http_to_a_remote_host_is_refused() -> None:
    """Basic auth over http:// to a non-loopback host is refused before any I/O."""
    with pytest.raises(InvalidParameterError, match="http://"):
        make_client("http://gateway.example.test/api/v3")


async def test_credentials_in_the_base_url_are_refused_without_echo() -> None:
    """A base URL carrying user:password is refused, and the message does not repeat it."""
    with pytest.raises(InvalidParameterError) as info:
        make_client(f"https://api-user:{PASSWORD}@gateway.example.test/api/v3")
    assert_clean(info.value)


# -- bounded responses -------------------------------------------------------------------


async def endless(request: web.Request) -> web.StreamResponse:
    """Stream zeros as fast as the client reads, forever (chunked, no length)."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    chunk = b"0" * 65536
    with contextlib.suppress(ConnectionError):
        while True:
            await response.write(chunk)
    return response


async def huge_length(request: web.Request) -> web.StreamResponse:
    """Announce 10 GB and stream zeros."""
    response = web.StreamResponse(headers={"Content-Length": str(10**10)})
    await response.prepare(request)
    chunk = b"0" * 65536
    with contextlib.suppress(ConnectionError):
        while True:
            await response.write(chunk)
    return response


@pytest.mark.parametrize("handler", [endless, huge_length], ids=["chunked", "content-length"])
async def test_endless_body_stops_at_the_cap_with_bounded_memory(handler: Handler) -> None:
    """An endless body is a TransportError once past 1 MiB; memory stays a few MiB."""
    async with AppServer(handler) as server, make_client(server.base_url) as client:
        tracemalloc.start()
        try:
            with pytest.raises(TransportError, match=f"exceeds {MAX_BODY_BYTES} bytes") as info:
                await client.cancel(SID)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert_clean(info.value)
    # The cap is 1 MiB and the transport reads 64 KiB chunks; a few copies at most.
    assert peak < 6 * MAX_BODY_BYTES


async def trickle_body(request: web.Request) -> web.StreamResponse:
    """Send headers, then one byte of body every 0.1 s, forever."""
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    with contextlib.suppress(ConnectionError):
        while True:
            await response.write(b" ")
            await asyncio.sleep(0.1)
    return response


async def trickle_headers(request: web.Request) -> web.StreamResponse:
    """Send a status line and then one header byte every 0.1 s, never finishing the headers."""
    transport = request.transport
    assert transport is not None
    transport.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    while not transport.is_closing():
        transport.write(b"a")
        await asyncio.sleep(0.1)
    return web.Response()


async def silent(_request: web.Request) -> web.StreamResponse:
    """Never answer."""
    await asyncio.sleep(3600)
    return web.Response()  # pragma: no cover - the client gives up first


@pytest.mark.looptime
@pytest.mark.parametrize(
    "handler", [trickle_body, trickle_headers, silent], ids=["body", "headers", "silent"]
)
async def test_slow_response_is_cut_at_the_timeout(handler: Handler) -> None:
    """A server trickling bytes (or saying nothing) is a TransportError at the timeout."""
    loop = asyncio.get_running_loop()
    async with AppServer(handler) as server, make_client(server.base_url, timeout=2.0) as client:
        start = loop.time()
        with pytest.raises(TransportError, match=r"2\.0 s") as info:
            await client.cancel(SID)
        elapsed = loop.time() - start
    assert_clean(info.value)
    assert 2.0 <= elapsed < 2.2


@pytest.mark.looptime
async def test_retries_of_a_slow_server_end_within_the_deadline() -> None:
    """With retries, a silent server costs attempts x timeout plus backoff, then an error."""
    loop = asyncio.get_running_loop()
    retry = RetryPolicy(attempts=3, backoff_initial=0.5, backoff_max=1.0, deadline=60.0)
    async with (
        AppServer(silent) as server,
        make_client(server.base_url, timeout=2.0, retry=retry) as client,
    ):
        start = loop.time()
        with pytest.raises(TransportError) as info:
            await client.cancel(SID)
        elapsed = loop.time() - start
    assert len(server.seen) == 3
    assert "3 attempt(s)" in " ".join(info.value.__notes__)
    assert 6.0 <= elapsed <= 6.0 + 0.5 + 1.0 + 0.2


# -- Content-Encoding, decoded by the transport within the body cap ---------------------------

JSON_BODY = b'{"success": true, "scheduleId": "SC-1"}'


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("", JSON_BODY),
        ("identity", JSON_BODY),
        ("gzip", gzip.compress(JSON_BODY)),
        (" X-GZIP ", gzip.compress(JSON_BODY)),
        ("deflate", zlib.compress(JSON_BODY)),
        ("deflate", _raw_deflate(JSON_BODY)),
    ],
    ids=["none", "identity", "gzip", "x-gzip", "deflate", "raw-deflate"],
)
def test_each_accepted_encoding_is_decoded(encoding: str, body: bytes) -> None:
    """gzip, deflate with zlib's header or without it, and no encoding at all."""
    assert decode_body(body, encoding, limit=1024) == JSON_BODY


@pytest.mark.parametrize(
    ("encoding", "body", "message"),
    [
        ("br", JSON_BODY, "unsupported Content-Encoding: 'br'"),
        ("gzip", b"not gzip at all", "not valid gzip"),
        ("gzip", gzip.compress(b"x" * 1025), "exceeds 1024 bytes once decompressed"),
        ("deflate", zlib.compress(b"x" * 10**7), "exceeds 1024 bytes once decompressed"),
    ],
    ids=["br", "corrupt-gzip", "gzip-over-cap", "deflate-over-cap"],
)
def test_an_unreadable_or_oversized_encoding_is_a_transport_error(
    encoding: str, body: bytes, message: str
) -> None:
    """An encoding not asked for, a corrupt stream, or a body over the cap once inflated."""
    with pytest.raises(TransportError, match=re.escape(message)):
        decode_body(body, encoding, limit=1024)
