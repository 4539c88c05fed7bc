"""The aiohttp seam: send a built [`Request`][schedcancel.Request], return ``(status, headers,
body)``."""

from __future__ import annotations

import functools
import ssl
import zlib
from collections.abc import Mapping

import aiohttp
from yarl import URL

from .._protocol.wire import MAX_BODY_BYTES, Request
from ..errors import InvalidParameterError, TransportError

__all__ = ["AiohttpTransport"]


@functools.cache
def _verified_context() -> ssl.SSLContext:
    """The system's trust store with hostname checks; made once, shared by every transport."""
    return ssl.create_default_context()


#: The zlib window for each encoding the protocol accepts (gzip's header; zlib's or raw deflate).
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def decode_body(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo ``Content-Encoding``, producing at most ``limit`` bytes.

    Decompressed here, not by aiohttp, so that a small gzip bomb is refused at
    the cap and never inflated whole, on every aiohttp version.

    Raises:
        TransportError: an encoding not asked for, a corrupt stream, or more than
            ``limit`` bytes once decoded.
    """
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in _WBITS:
        raise TransportError(f"response has an unsupported Content-Encoding: {encoding[:40]!r}")
    wbits = _WBITS[encoding]
    if wbits == zlib.MAX_WBITS and body[:1] and body[0] & 0x0F != 8:
        wbits = -zlib.MAX_WBITS  # "deflate" sent raw, without zlib's header, as some servers do
    inflater = zlib.decompressobj(wbits)
    try:
        decoded = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise TransportError(f"response body is not valid {encoding}: {exc}") from None
    if len(decoded) > limit:
        raise TransportError(f"response body exceeds {limit} bytes once decompressed")
    return decoded


@functools.lru_cache(maxsize=16)
def _client_timeout(total: float) -> aiohttp.ClientTimeout:
    """One immutable ``ClientTimeout`` per value: a client sends every request with the same."""
    return aiohttp.ClientTimeout(total=total)


class AiohttpTransport:
    """Sends requests over one ``aiohttp.ClientSession``, its own or a borrowed one.

    An own session is created lazily, inside the running loop, and closed by
    `aclose()`; a borrowed one is never closed here. Redirects are not
    followed (credentials must not travel to another host), TLS is verified,
    and bodies are read up to ``max_body`` bytes.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise InvalidParameterError("session must be an aiohttp.ClientSession")
        if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
            raise InvalidParameterError("ssl must be an ssl.SSLContext (verification stays on)")
        if ssl_context is not None and ssl_context.verify_mode == ssl.CERT_NONE:
            raise InvalidParameterError("ssl must verify certificates (verify_mode CERT_NONE)")
        self._session, self._owned, self._closed = session, session is None, False
        # Always a context, never True: aiohttp lets a connector's ssl=False win over a
        # request's ssl=True, so a borrowed session could otherwise switch verification off.
        self._ssl = ssl_context if ssl_context is not None else _verified_context()
        self._max_body = max_body

    async def send(
        self,
        request: Request,
        timeout: float,  # noqa: ASYNC109 - one aiohttp ClientTimeout bounds connect, send, read
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send ``request``; raise [`TransportError`][schedcancel.TransportError] when no usable
        response came.

        Its ``request_sent`` is False when no connection could be made, so
        nothing left; True otherwise (the request may have reached the server).
        """
        if self._closed:
            raise RuntimeError("transport is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        failure: str
        sent = True
        try:
            async with self._session.request(
                request.method,
                URL(request.url, encoded=True),  # percent-encoded and signed as is
                headers=request.headers,
                data=request.body,
                allow_redirects=False,
                auto_decompress=False,  # decode_body bounds what a compressed body inflates to
                ssl=self._ssl,
                timeout=_client_timeout(timeout),
            ) as response:
                body = await self._read(response.content)
                encoding = response.headers.get("Content-Encoding", "")
                return (
                    response.status,
                    response.headers,
                    decode_body(body, encoding, self._max_body),
                )
        except TimeoutError:
            failure = f"no response within {timeout} s"
        except (aiohttp.ClientError, OSError) as exc:
            # No connection could be made (refused, DNS, TLS handshake): nothing was sent.
            sent = not isinstance(exc, aiohttp.ClientConnectorError)
            # aiohttp's messages and reprs may quote the URL, which carries the apiKey:
            # keep a scrubbed message only.
            failure = f"{type(exc).__name__}: {request.scrub(str(exc))}"
        # Raised outside the handler, so the error has no __context__ either: aiohttp's
        # exception holds the full URL and the Authorization header in its request_info.
        raise TransportError(failure, request_sent=sent)

    async def _read(self, content: aiohttp.StreamReader) -> bytes:
        """Read the whole body, but never more than ``max_body`` bytes of it."""
        limit = self._max_body
        body = bytearray()
        # A small body usually arrived with its headers: one read, no wait for EOF.
        while not content.at_eof():
            chunk = await content.read(limit + 1 - len(body))
            if not chunk:
                break
            body += chunk
            if len(body) > limit:
                raise TransportError(f"response body exceeds {limit} bytes")
        return bytes(body)

    async def aclose(self) -> None:
        """Close the session if it is this transport's own; a borrowed one stays open."""
        self._closed = True
        if self._owned and self._session is not None:
            await self._session.close()
