"""The transport: one authenticated JSON call, the ``{success, data}`` envelope unpacked, errors
typed, and retries with exponential backoff for the calls that are safe to repeat. Which calls
those are is decided per method by the clients (``retry``): a retried ``use`` could spend a token
twice, so it is never retried. The pure parts (request, answer, backoff) are shared by the sync
transport here and the asyncio one in ``_async_http``.
"""

from __future__ import annotations

import http.client
import json
import random
import socket
import ssl
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import quote, urlsplit

from .errors import (
    AgentOTPError,
    NetworkError,
    RateLimitError,
    ServerError,
    TimeoutError,
    ValidationError,
    error_from_response,
    redact_secrets,
)
from ._version import SDK_VERSION

#: Backoff never waits longer than this between two attempts (seconds).
MAX_RETRY_DELAY = 30.0
#: A Retry-After longer than this is not waited out inside a call: the RateLimitError is raised.
MAX_RETRY_AFTER = 60.0


@dataclass
class Config:
    base_url: str
    api_key: str
    timeout: float
    retry_attempts: int
    retry_delay: float
    ssl_context: Optional[ssl.SSLContext] = None


@dataclass
class Call:
    method: str
    path: str
    retry: bool
    query: Dict[str, Any] = field(default_factory=dict)
    body: Any = None
    #: This call's per-attempt timeout in seconds, instead of the client's.
    timeout: Optional[float] = None
    #: Put on errors, so callers can log which permission failed.
    permission_id: Optional[str] = None


@dataclass
class Prepared:
    scheme: str
    host: str
    port: int
    target: str
    headers: Dict[str, str]
    body: Optional[bytes]
    timeout: float
    method: str = "GET"


def prepare(config: Config, call: Call) -> Prepared:
    parts = urlsplit(config.base_url)
    target = (parts.path or "") + call.path
    params = [(k, v) for k, v in call.query.items() if v is not None]
    if params:
        target += "?" + "&".join(f"{quote(str(k), safe='')}={quote(str(v), safe='')}" for k, v in params)
    headers = {
        "Accept": "application/json",
        "Authorization": f"Bearer {config.api_key}",
        "User-Agent": f"agent-otp-sdk/{SDK_VERSION}",
        "X-Agent-OTP-SDK": f"python/{SDK_VERSION}",
    }
    body: Optional[bytes] = None
    # Every POST carries a JSON body (at least {}): the server refuses an empty body declared as JSON.
    if call.method == "POST":
        headers["Content-Type"] = "application/json"
        body = json.dumps({} if call.body is None else call.body, separators=(",", ":")).encode("utf-8")
        headers["Content-Length"] = str(len(body))
    scheme = parts.scheme
    port = parts.port or (443 if scheme == "https" else 80)
    return Prepared(scheme, parts.hostname or "", port, target, headers, body, call.timeout or config.timeout, call.method)


def interpret(call: Call, status: int, headers: Mapping[str, str], text: bytes) -> Any:
    """The answer's ``data``, or the typed error it stands for. ``headers`` keys are lowercase."""
    try:
        envelope = json.loads(text.decode("utf-8")) if text else None
    except (UnicodeDecodeError, ValueError):
        envelope = None
    request_id = headers.get("x-request-id")
    ok = 200 <= status < 300
    if ok and isinstance(envelope, dict) and envelope.get("success") is True:
        return envelope.get("data")
    if ok:
        raise AgentOTPError(
            f"Unexpected answer to {call.method} {call.path} (HTTP {status})",
            code="INVALID_RESPONSE",
            status=status,
            request_id=request_id,
            permission_id=call.permission_id,
        )
    raise error_from_response(
        status,
        envelope,
        request_id=request_id,
        permission_id=call.permission_id,
        retry_after=parse_retry_after(headers.get("retry-after")),
    )


def transport_error(call: Call, exc: BaseException, timeout: float) -> AgentOTPError:
    """A failure before an answer arrived, as NetworkError or TimeoutError (REQUEST_TIMEOUT)."""
    unknown = (
        "; the server may have acted on it: check the permission before trying again"
        if call.method == "POST" and not call.retry
        else ""
    )
    if isinstance(exc, socket.timeout):
        return TimeoutError(
            f"{call.method} {call.path} got no answer within {timeout:g} s{unknown}",
            code="REQUEST_TIMEOUT",
            permission_id=call.permission_id,
        )
    # Described (redacted), not chained as __cause__: the cause could carry the request's headers.
    detail = redact_secrets(f"{type(exc).__name__}: {exc}")
    return NetworkError(f"{call.method} {call.path} failed: {detail}{unknown}", permission_id=call.permission_id)


def is_retryable(err: BaseException) -> bool:
    return (
        isinstance(err, (NetworkError, RateLimitError, ServerError))
        or (isinstance(err, TimeoutError) and err.code == "REQUEST_TIMEOUT")
    )


def retry_delay(config: Config, attempt: int, err: BaseException) -> Optional[float]:
    """``retry_delay × 2^attempt``, capped, with equal jitter so clients failing together do not
    retry in lockstep. A 429's Retry-After is a floor; one longer than MAX_RETRY_AFTER is
    returned to the caller instead (None)."""
    exponential = min(MAX_RETRY_DELAY, config.retry_delay * 2**attempt)
    jittered = exponential / 2 + random.random() * (exponential / 2)
    if isinstance(err, RateLimitError) and err.retry_after is not None:
        if err.retry_after > MAX_RETRY_AFTER:
            return None
        return max(float(err.retry_after), jittered)
    return jittered


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    trimmed = value.strip()
    if trimmed.isdigit():
        return int(trimmed)
    try:
        when = parsedate_to_datetime(trimmed)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0, int(-(-(when.timestamp() - time.time()) // 1)))


def should_retry(config: Config, call: Call, attempt: int, err: AgentOTPError) -> Optional[float]:
    if not call.retry or attempt >= config.retry_attempts or not is_retryable(err):
        return None
    return retry_delay(config, attempt, err)


class SyncTransport:
    """``http.client`` with a fresh connection per attempt (no pool to go stale between long-polls)."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def call(self, call: Call) -> Any:
        attempt = 0
        while True:
            try:
                return self._attempt(call)
            except AgentOTPError as err:
                delay = should_retry(self.config, call, attempt, err)
                if delay is None:
                    raise
                time.sleep(delay)
                attempt += 1

    def _attempt(self, call: Call) -> Any:
        p = prepare(self.config, call)
        conn: http.client.HTTPConnection
        if p.scheme == "https":
            conn = http.client.HTTPSConnection(
                p.host, p.port, timeout=p.timeout, context=self.config.ssl_context or ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(p.host, p.port, timeout=p.timeout)
        try:
            try:
                conn.request(call.method, p.target, body=p.body, headers=p.headers)
                response = conn.getresponse()
                text = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise transport_error(call, exc, p.timeout) from None
            headers = {k.lower(): v for k, v in response.getheaders()}
            return interpret(call, response.status, headers, text)
        finally:
            conn.close()


def check_base_url(raw: Any, allow_insecure_http: bool) -> str:
    """The key and every token travel in each request, so the transport must be encrypted —
    except to this machine itself, where there is no network to read them on."""
    if not isinstance(raw, str):
        raise ValidationError("base_url must be a string")
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValidationError(f"base_url is not a valid URL: {redact_secrets(raw)}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"base_url must be an https:// URL (got {redact_secrets(raw)})")
    if parts.username or parts.password:
        raise ValidationError("base_url must not contain credentials; pass the key as api_key")
    if parts.query or parts.fragment:
        raise ValidationError("base_url must not contain a query or fragment")
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname):
        raise ValidationError(
            f"Refusing to send the API key over plain HTTP to {parts.netloc}: use https://, "
            "or set allow_insecure_http for a network you trust"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def is_loopback(hostname: str) -> bool:
    host = hostname.lower().strip("[]")
    if host in ("localhost", "::1"):
        return True
    octets = host.split(".")
    return (
        len(octets) == 4
        and all(o.isdigit() and len(o) <= 3 and int(o) <= 255 for o in octets)
        and int(octets[0]) == 127
    )


def split_status(raw: bytes) -> Tuple[int, Dict[str, str], bytes]:
    """Parses a whole HTTP/1.1 answer read to EOF (the asyncio transport sends Connection: close)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        raise http.client.HTTPException("incomplete answer")
    lines = head.decode("latin-1").split("\r\n")
    status_parts = lines[0].split(" ", 2)
    if len(status_parts) < 2 or not status_parts[0].startswith("HTTP/") or not status_parts[1].isdigit():
        raise http.client.HTTPException("bad status line")
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            key = name.strip().lower()
            headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    body = rest
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(rest)
    elif headers.get("content-length", "").isdigit():
        length = int(headers["content-length"])
        if len(rest) < length:
            raise http.client.HTTPException("answer cut short")
        body = rest[:length]
    return int(status_parts[1]), headers, body


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0:
            raise http.client.HTTPException("bad chunked encoding")
        size = int(data[pos:end].split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return bytes(out)
        start = end + 2
        out += data[start : start + size]
        pos = start + size + 2
