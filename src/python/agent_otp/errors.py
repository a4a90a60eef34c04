"""Typed errors of the SDK, one class per server error code, as in the TypeScript SDK.

Every error is an :class:`AgentOTPError` carrying the server's stable ``code``, the HTTP
``status``, the ``request_id`` to quote to an operator and, where known, the ``permission_id``:
the fields to log instead of the error itself. Messages never contain tokens or keys: text that
comes from elsewhere (server messages, socket errors) goes through :func:`redact_secrets` first.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional

_SECRET_PATTERNS = [
    re.compile(r"otp_v1_[A-Za-z0-9_-]+"),
    re.compile(r"\bak_(?:live|test)_[A-Za-z0-9_-]+"),
    re.compile(r"\buk_[A-Za-z0-9_-]{8,}"),
    re.compile(r"\bwhsec_[A-Za-z0-9+/=_-]+"),
    re.compile(r"\bBearer\s+\S+", re.IGNORECASE),
]


def redact_secrets(text: str) -> str:
    """Replaces anything shaped like a token, API key, operator key or webhook secret."""
    out = text
    for pattern in _SECRET_PATTERNS:
        out = pattern.sub("[redacted]", out)
    return out


class AgentOTPError(Exception):
    """Base class. ``code`` is the server's error code (``INVALID_API_KEY``, ``TOKEN_USED``…)
    or one of the SDK's own (``NETWORK_ERROR``, ``TIMEOUT``…)."""

    default_code = "AGENT_OTP_ERROR"

    def __init__(
        self,
        message: str = "Agent OTP error",
        *,
        code: Optional[str] = None,
        status: Optional[int] = None,
        request_id: Optional[str] = None,
        permission_id: Optional[str] = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: str = code or self.default_code
        self.status = status
        self.request_id = request_id
        self.permission_id = permission_id
        self.details = details

    def to_dict(self) -> Dict[str, Any]:
        """What to log: the identifying fields, nothing else."""
        return {
            "name": type(self).__name__,
            "code": self.code,
            "message": self.message,
            "status": self.status,
            "request_id": self.request_id,
            "permission_id": self.permission_id,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, code={self.code!r}, status={self.status!r}, "
            f"request_id={self.request_id!r}, permission_id={self.permission_id!r})"
        )


class AuthenticationError(AgentOTPError):
    """401 MISSING_API_KEY, INVALID_API_KEY or EXPIRED_API_KEY: the key is wrong, revoked or absent."""

    default_code = "AUTHENTICATION_ERROR"


class ForbiddenError(AgentOTPError):
    """403 FORBIDDEN: authenticated, but this key may not do that."""

    default_code = "FORBIDDEN"


class NotFoundError(AgentOTPError):
    """404 NOT_FOUND: no such permission for this agent."""

    default_code = "NOT_FOUND"


class ConflictError(AgentOTPError):
    """409 CONFLICT / ALREADY_DECIDED / IDEMPOTENCY_KEY_REUSED."""

    default_code = "CONFLICT"


class ValidationError(AgentOTPError):
    """The request was refused as malformed (400, 413, 415, 422), or the client is misconfigured."""

    default_code = "VALIDATION_ERROR"


class RateLimitError(AgentOTPError):
    """429 RATE_LIMITED. ``retry_after`` is in seconds, from the Retry-After header."""

    default_code = "RATE_LIMITED"

    def __init__(self, message: str = "Rate limit exceeded", *, retry_after: Optional[float] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class NetworkError(AgentOTPError):
    """The server could not be reached, or the connection failed before an answer arrived."""

    default_code = "NETWORK_ERROR"


class TimeoutError(AgentOTPError):  # noqa: A001 - the TypeScript SDK's name
    """No decision within the wait's ``timeout`` (``permission_id`` names the pending request),
    or one HTTP attempt took longer than the client's ``timeout`` (code ``REQUEST_TIMEOUT``)."""

    default_code = "TIMEOUT"


class ServerError(AgentOTPError):
    """A 5xx answer (generic by design; ``request_id`` finds the details in the server log)."""

    default_code = "SERVER_ERROR"


class PermissionDeniedError(AgentOTPError):
    """Denied (by policy or by a human) while the caller waited for a decision."""

    default_code = "PERMISSION_DENIED"

    def __init__(self, message: str = "Permission denied", *, reason: Optional[str] = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reason = reason


class PermissionExpiredError(AgentOTPError):
    """The request ended without a decision while the caller waited: expired or cancelled."""

    default_code = "PERMISSION_EXPIRED"


class InvalidTokenError(AgentOTPError):
    """401 INVALID_TOKEN: the token does not belong to this permission."""

    default_code = "INVALID_TOKEN"


class TokenExpiredError(AgentOTPError):
    """410 TOKEN_EXPIRED: the token's TTL has passed."""

    default_code = "TOKEN_EXPIRED"


class TokenRevokedError(AgentOTPError):
    """410 TOKEN_REVOKED: the permission was revoked."""

    default_code = "TOKEN_REVOKED"


class TokenUsedError(AgentOTPError):
    """410 TOKEN_USED: the token has no uses left."""

    default_code = "TOKEN_USED"


TokenConsumedError = TokenUsedError


class ScopeViolationError(AgentOTPError):
    """403 SCOPE_VIOLATION: the action details break the granted scope; nothing was consumed.
    ``key`` is the first scope key broken (``max_amount``, ``allowed_recipients``…)."""

    default_code = "SCOPE_VIOLATION"

    def __init__(
        self,
        message: str = "Scope violation",
        *,
        violations: Optional[List[Dict[str, Any]]] = None,
        key: Optional[str] = None,
        **kw: Any,
    ) -> None:
        super().__init__(message, **kw)
        self.violations: List[Dict[str, Any]] = list(violations or [])
        first = self.violations[0].get("key") if self.violations and isinstance(self.violations[0], dict) else None
        self.key: Optional[str] = key if key is not None else first


class WebhookVerificationError(AgentOTPError):
    """``verify_webhook`` refused a delivery: bad or missing signature, stale timestamp, not JSON."""

    default_code = "WEBHOOK_INVALID"


_VALIDATION_CODES = {
    "VALIDATION_ERROR",
    "INVALID_JSON",
    "UNSUPPORTED_MEDIA_TYPE",
    "PAYLOAD_TOO_LARGE",
    "SCOPE_WIDENING",
    "INVALID_POLICY",
}
_AUTH_CODES = {"MISSING_API_KEY", "INVALID_API_KEY", "EXPIRED_API_KEY"}


def error_for_code(
    code: str,
    message: str,
    init: Mapping[str, Any],
    *,
    details: Any = None,
    retry_after: Optional[float] = None,
) -> Optional[AgentOTPError]:
    """The typed error for a server code (HTTP answers and a failed verify's ``reason``), or
    None when the code alone does not decide the class."""
    kw = dict(init)
    if code == "INVALID_TOKEN":
        return InvalidTokenError(message, **kw)
    if code == "TOKEN_USED":
        return TokenUsedError(message, **kw)
    if code == "TOKEN_EXPIRED":
        return TokenExpiredError(message, **kw)
    if code == "TOKEN_REVOKED":
        return TokenRevokedError(message, **kw)
    if code == "SCOPE_VIOLATION":
        d = details if isinstance(details, dict) else {}
        violations = d.get("violations") if isinstance(d.get("violations"), list) else []
        key = d.get("key") if isinstance(d.get("key"), str) else None
        return ScopeViolationError(message, violations=violations, key=key, **kw)
    if code == "FORBIDDEN":
        return ForbiddenError(message, **kw)
    if code == "NOT_FOUND":
        return NotFoundError(message, **kw)
    if code in ("CONFLICT", "ALREADY_DECIDED", "IDEMPOTENCY_KEY_REUSED"):
        return ConflictError(message, **kw)
    if code == "RATE_LIMITED":
        return _rate_limited(message, kw, retry_after, details)
    return None


def error_from_response(
    status: int,
    body: Any,
    *,
    request_id: Optional[str] = None,
    permission_id: Optional[str] = None,
    retry_after: Optional[float] = None,
) -> AgentOTPError:
    """An error answer as its typed error: by the server's ``error.code`` first (a 401 can be a
    bad key or a bad token), by status second (proxies answer without the envelope)."""
    err = body.get("error") if isinstance(body, dict) else None
    err = err if isinstance(err, dict) else {}
    server_code = err.get("code") if isinstance(err.get("code"), str) else None
    raw_message = err.get("message")
    message = redact_secrets(raw_message) if isinstance(raw_message, str) and raw_message else f"HTTP {status}"
    rid = err.get("requestId") if isinstance(err.get("requestId"), str) else request_id
    init: Dict[str, Any] = {"status": status, "request_id": rid, "permission_id": permission_id}
    if server_code:
        init["code"] = server_code
    if "details" in err:
        init["details"] = err["details"]

    if server_code:
        by_code = error_for_code(server_code, message, init, details=err.get("details"), retry_after=retry_after)
        if by_code is not None:
            return by_code
        if server_code in _AUTH_CODES:
            return AuthenticationError(message, **init)
        if server_code in _VALIDATION_CODES:
            return ValidationError(message, **init)
    if status >= 500:
        return ServerError(message if server_code else f"Server error (HTTP {status})", **init)
    if status in (400, 413, 415, 422):
        return ValidationError(message, **init)
    if status == 401:
        return AuthenticationError(message, **init)
    if status == 403:
        return ForbiddenError(message, **init)
    if status == 404:
        return NotFoundError(message, **init)
    if status == 409:
        return ConflictError(message, **init)
    if status == 429:
        return _rate_limited(message, init, retry_after, err.get("details"))
    init.setdefault("code", "API_ERROR")
    return AgentOTPError(message, **init)


def _rate_limited(message: str, init: Mapping[str, Any], retry_after: Optional[float], details: Any) -> RateLimitError:
    from_body = details.get("retryAfter") if isinstance(details, dict) else None
    seconds = retry_after
    if seconds is None and isinstance(from_body, (int, float)) and not isinstance(from_body, bool):
        seconds = from_body
    return RateLimitError(message, retry_after=seconds, **dict(init))
