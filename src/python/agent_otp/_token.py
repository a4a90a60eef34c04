"""One-time tokens: the SDK makes the token itself and sends only its SHA-256, so the server —
its database, its logs, anyone reading its traffic — never holds a usable token."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

TOKEN_PREFIX = "otp_v1_"
#: ``otp_v1_`` + 43 base64url characters: 32 random bytes, unpadded.
TOKEN_PATTERN = re.compile(r"^otp_v1_[A-Za-z0-9_-]{43}$")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def generate_token() -> str:
    """A new token from 32 bytes of the OS CSPRNG (``secrets``)."""
    return TOKEN_PREFIX + _b64url(secrets.token_bytes(32))


def hash_token(token: str) -> str:
    """Lowercase hex SHA-256 of the token string: the ``tokenHash`` commitment the server stores."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def generate_idempotency_key() -> str:
    """A random key for a request the caller gave none for, so the SDK's own retries are safe."""
    return "sdk_" + _b64url(secrets.token_bytes(18))
