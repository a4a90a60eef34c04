"""Verification of webhook deliveries, per Standard Webhooks (as the TypeScript ``verifyWebhook``).

The server signs ``{webhook-id}.{webhook-timestamp}.{body}`` with HMAC-SHA256 under the endpoint's
secret (``whsec_<base64 key>``) and sends ``webhook-signature: v1,<base64>`` (several,
space-separated, while a secret is rotated). Check the raw bytes received — before any JSON
parsing — and refuse old timestamps, or a captured delivery could be replayed later.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import time
from typing import Any, Iterable, Mapping, Optional, Tuple, Union

from .errors import ValidationError, WebhookVerificationError

_SECRET_PREFIX = "whsec_"
_TIMESTAMP = re.compile(r"^\d{1,15}$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")

Headers = Union[Mapping[str, Any], Iterable[Tuple[str, str]]]


def verify_webhook(
    raw_body: Union[bytes, bytearray, str],
    headers: Headers,
    secret: str,
    *,
    tolerance_seconds: float = 300,
    now: Optional[float] = None,
) -> Any:
    """Checks a delivery and returns its parsed JSON payload, or raises
    :class:`WebhookVerificationError` (code ``WEBHOOK_INVALID``): answer those with a 4xx and do
    not act on them. A malformed secret is a configuration error: :class:`ValidationError`.
    ``headers`` may be a dict (any case), ``http.client.HTTPMessage``, a Starlette/Django headers
    object or a list of pairs. ``now`` is epoch seconds (default: the clock). Receivers should
    also drop repeated ``webhook-id``\\ s: a delivery may be retried."""
    key = _secret_key(secret)
    msg_id = _single(headers, "webhook-id")
    timestamp = _single(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise WebhookVerificationError("Missing webhook-id, webhook-timestamp or webhook-signature header")
    if not _TIMESTAMP.match(timestamp):
        raise WebhookVerificationError("Invalid webhook-timestamp")
    tolerance, now_s = _time_window(tolerance_seconds, now)
    if abs(now_s - int(timestamp)) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the allowed tolerance")

    body = raw_body.encode("utf-8") if isinstance(raw_body, str) else bytes(raw_body)
    signed = f"{msg_id}.{timestamp}.".encode("utf-8") + body
    expected = hmac.new(key, signed, hashlib.sha256).digest()

    matched = False
    for entry in signatures.split(" "):
        version, comma, value = entry.partition(",")
        if not comma or version != "v1":
            continue
        candidate = _b64decode(value)
        if candidate is None:
            continue
        # No early exit on a match: every candidate is compared, in constant time each.
        if hmac.compare_digest(candidate, expected):
            matched = True
    if not matched:
        raise WebhookVerificationError("No webhook-signature matches the payload")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WebhookVerificationError("The webhook payload is not JSON") from None


def _time_window(tolerance: Any, now: Any) -> Tuple[float, float]:
    # A NaN tolerance or "now" would make every comparison false and so accept any timestamp.
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) or tolerance < 0:
        raise ValidationError("tolerance_seconds must be a finite number of seconds, 0 or more")
    now_s = time.time() if now is None else now
    if isinstance(now_s, bool) or not isinstance(now_s, (int, float)) or not math.isfinite(now_s):
        raise ValidationError("now must be a finite number of epoch seconds")
    return float(tolerance), float(now_s)


def _b64decode(text: str) -> Optional[bytes]:
    normalized = text.replace("-", "+").replace("_", "/")
    if not _BASE64.match(normalized):
        return None
    try:
        return base64.b64decode(normalized + "=" * (-len(normalized) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _secret_key(secret: Any) -> bytes:
    if not isinstance(secret, str) or not secret:
        raise ValidationError("A webhook secret (whsec_…) is required")
    encoded = secret[len(_SECRET_PREFIX):] if secret.startswith(_SECRET_PREFIX) else secret
    key = _b64decode(encoded)
    if key is None:
        raise ValidationError("The webhook secret must be whsec_ followed by base64")
    if not key:
        raise ValidationError("The webhook secret is empty")
    return key


def _header(headers: Headers, name: str) -> Optional[str]:
    """A header whatever the case of its name; repeated ones joined with a space."""
    values = []
    if hasattr(headers, "get_all"):  # http.client.HTTPMessage / email.message.Message
        values = [str(v) for v in (headers.get_all(name) or [])]  # type: ignore[union-attr]
    else:
        items = headers.items() if isinstance(headers, Mapping) else headers
        for key, value in items:
            if str(key).lower() != name or value is None:
                continue
            if isinstance(value, (list, tuple)):
                values.extend(str(v) for v in value)
            else:
                values.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
    return " ".join(values) if values else None


def _single(headers: Headers, name: str) -> Optional[str]:
    """A header that must appear once: repeated ids or timestamps are ambiguous, so refused."""
    value = _header(headers, name)
    if value is None:
        return None
    if "," in value or " " in value:
        raise WebhookVerificationError(f"The {name} header appears more than once")
    return value
