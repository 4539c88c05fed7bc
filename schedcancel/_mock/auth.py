"""The mock server's own checks of credentials and signatures; pure.

Written from the API documentation, not taken from the client, so a bug in
the client's signer is caught by the server instead of copied into it. The
gateway accepts more than the client sends, and so does the emulator unless
told to be strict:

- the body hash of ``X-Signature``: SHA-512 hex, or the deprecated MD5 hex
  that the official PHP SDK still signs JSON requests with;
- the Basic-auth password: as configured, or SHA-1 applied ten times (hex each
  round), which is what the PHP SDK sends.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from typing import Literal

__all__ = [
    "BodyHash",
    "basic_credentials",
    "password_matches",
    "redact_key",
    "sdk_hashed_password",
    "signature",
    "signature_matches",
]

#: The body hashes a signature may be built with.
BodyHash = Literal["sha512", "md5"]


def signature(
    secret: str,
    *,
    method: str,
    body: bytes,
    content_type: str,
    date: str,
    request_uri: str,
    body_hash: BodyHash = "sha512",
) -> str:
    """The ``X-Signature`` of a request, as the gateway computes it.

    Base64 of HMAC-SHA512, keyed with the shared secret, over
    ``METHOD \\n hex(hash(body)) \\n Content-Type \\n Date \\n request URI``.

    Args:
        secret: the connector's shared secret.
        method: the HTTP method.
        body: the body bytes received.
        content_type: the ``Content-Type`` header as received ("" when absent).
        date: the ``X-Date`` (or ``Date``) header as received.
        request_uri: the path from the host, with the query if any.
        body_hash: ``"sha512"``, or the deprecated ``"md5"``.

    Returns:
        The base64 signature.
    """
    digest = hashlib.new(body_hash, body).hexdigest()
    message = "\n".join((method, digest, content_type, date, request_uri))
    mac = hmac.new(secret.encode(), message.encode(), hashlib.sha512).digest()
    return base64.b64encode(mac).decode("ascii")


def signature_matches(
    given: str,
    secret: str,
    *,
    method: str,
    body: bytes,
    content_type: str,
    date: str,
    request_uri: str,
    body_hashes: Iterable[BodyHash],
) -> bool:
    """Whether ``given`` is the request's signature under one of ``body_hashes``.

    Args:
        given: the ``X-Signature`` header.
        secret: the connector's shared secret.
        method: as in `signature()`.
        body: as in `signature()`.
        content_type: as in `signature()`.
        date: as in `signature()`.
        request_uri: as in `signature()`.
        body_hashes: the body hashes accepted.

    Returns:
        True when one of them gives ``given``.
    """
    return any(
        hmac.compare_digest(
            given.encode(),
            signature(
                secret,
                method=method,
                body=body,
                content_type=content_type,
                date=date,
                request_uri=request_uri,
                body_hash=body_hash,
            ).encode(),
        )
        for body_hash in body_hashes
    )


def sdk_hashed_password(password: str) -> str:
    """The password as the PHP SDK sends it: SHA-1 applied ten times, hex each round.

    Args:
        password: the plain password.

    Returns:
        40 lowercase hex digits.
    """
    value = password
    for _ in range(10):
        value = hashlib.sha1(value.encode()).hexdigest()  # noqa: S324 - the SDK's legacy form
    return value


def password_matches(given: str, expected: str, *, accept_sdk_hashed: bool) -> bool:
    """Whether the Basic-auth password ``given`` is ``expected``, plain or SDK-hashed.

    Args:
        given: the password received.
        expected: the API user's password.
        accept_sdk_hashed: also accept `sdk_hashed_password()` of it.

    Returns:
        True when it matches.
    """
    if hmac.compare_digest(given.encode(), expected.encode()):
        return True
    return accept_sdk_hashed and hmac.compare_digest(
        given.encode(), sdk_hashed_password(expected).encode()
    )


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(username, password)`` from an ``Authorization: Basic ...`` header, if well formed."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


def redact_key(api_key: str) -> str:
    """An apiKey as the recorder keeps it: at most a quarter, and four characters, then ``***``."""
    return f"{api_key[: min(4, len(api_key) // 4)]}***"
