"""The aiohttp seam: send a built :class:`Request`, return ``(status, headers, body)``."""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import aiohttp
from yarl import URL

from ._protocol import MAX_BODY_BYTES, Request
from .errors import InvalidParameterError, TransportError

__all__ = ["AiohttpTransport"]

_CHUNK = 64 * 1024


class AiohttpTransport:
    """Sends requests over one ``aiohttp.ClientSession``, its own or a borrowed one.

    An own session is created lazily, inside the running loop, and closed by
    :meth:`aclose`; a borrowed one is never closed here. Redirects are not
    followed (credentials must not travel to another host), TLS is verified,
    and bodies are read in chunks up to ``max_body`` bytes.
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
        self._session, self._owned, self._closed = session, session is None, False
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._max_body = max_body

    async def send(
        self,
        request: Request,
        timeout: float,  # noqa: ASYNC109 - one aiohttp ClientTimeout bounds connect, send, read
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send ``request``; raise :class:`TransportError` when no usable response came."""
        if self._closed:
            raise RuntimeError("transport is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.request(
                request.method,
                URL(request.url, encoded=True),  # percent-encoded and signed as is
                headers=dict(request.headers),
                data=request.body,
                allow_redirects=False,
                ssl=self._ssl,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                body = bytearray()
                async for chunk in response.content.iter_chunked(_CHUNK):
                    body += chunk
                    if len(body) > self._max_body:
                        raise TransportError(f"response body exceeds {self._max_body} bytes")
                return response.status, response.headers, bytes(body)
        except TimeoutError:
            raise TransportError(f"no response within {timeout} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            # aiohttp's messages and reprs may quote the URL, which carries the apiKey:
            # keep a scrubbed message and drop the chain, so no traceback can leak it.
            detail = request.scrub(str(exc))
            raise TransportError(f"{type(exc).__name__}: {detail}") from None

    async def aclose(self) -> None:
        """Close the session if it is this transport's own; a borrowed one stays open."""
        self._closed = True
        if self._owned and self._session is not None:
            await self._session.close()
