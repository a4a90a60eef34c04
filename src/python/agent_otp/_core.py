"""What the sync and async clients share: configuration checks, the request body with its token
commitment, and how a permission seen on the wire becomes a result or an error. Everything here
is I/O-free, so the two clients differ only in how they wait."""

from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple
from urllib.parse import quote

from ._http import Config, check_base_url
from ._token import generate_idempotency_key, generate_token, hash_token
from ._types import PendingApprovalInfo, PermissionInfo, TokenVerificationResult
from ._vault import TokenVault
from .errors import (
    AgentOTPError,
    AuthenticationError,
    PermissionDeniedError,
    PermissionExpiredError,
    TokenUsedError,
    ValidationError,
    error_for_code,
    redact_secrets,
)

DEFAULT_BASE_URL = "http://127.0.0.1:3000"
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRY_ATTEMPTS = 3
DEFAULT_RETRY_DELAY = 1.0
DEFAULT_WAIT_TIMEOUT = 300.0
#: Seconds per long-poll: below the usual 60 s idle timeout of proxies and load balancers.
MAX_WAIT_SECONDS = 30
#: Backoff bounds (s) for a server that answers ``pending`` at once instead of holding the poll.
EARLY_ANSWER_DELAY_MIN = 0.25
EARLY_ANSWER_DELAY_MAX = 5.0

PATH = "/api/v1/permissions"


def make_config(
    api_key: Any,
    base_url: Optional[str],
    timeout: Optional[float],
    retry_attempts: Optional[int],
    retry_delay: Optional[float],
    allow_insecure_http: bool,
    ssl_context: Any,
) -> Config:
    if not isinstance(api_key, str) or not api_key.strip():
        raise AuthenticationError("An API key is required (api_key)", code="MISSING_API_KEY")
    if any(c.isspace() for c in api_key):
        raise ValidationError("The API key contains whitespace; check how it is read from the environment")
    return Config(
        base_url=check_base_url(base_url if base_url is not None else DEFAULT_BASE_URL, allow_insecure_http),
        api_key=api_key,
        timeout=positive("timeout", timeout, DEFAULT_TIMEOUT),
        retry_attempts=non_negative_int("retry_attempts", retry_attempts, DEFAULT_RETRY_ATTEMPTS),
        retry_delay=non_negative("retry_delay", retry_delay, DEFAULT_RETRY_DELAY),
        ssl_context=ssl_context,
    )


def permission_path(permission_id: str, suffix: str = "") -> str:
    check_id(permission_id)
    return f"{PATH}/{quote(permission_id, safe='')}{suffix}"


def request_body(
    vault: TokenVault,
    action: Any,
    resource: Optional[str],
    scope: Optional[Dict[str, Any]],
    context: Optional[Dict[str, Any]],
    ttl: Optional[int],
    idempotency_key: Optional[str],
    webhook_url: Optional[str],
) -> Tuple[Dict[str, Any], str]:
    """The request's JSON and the token it commits to (only its hash is sent)."""
    if not isinstance(action, str) or not action.strip():
        raise ValidationError("action is required")
    # A repeated caller key must commit to the same token as the first request it created.
    token = (idempotency_key and vault.token_for_key(idempotency_key)) or generate_token()
    if idempotency_key:
        vault.remember_key(idempotency_key, token)
    body: Dict[str, Any] = {"action": action}
    if resource is not None:
        body["resource"] = resource
    body["scope"] = scope if scope is not None else {}
    body["context"] = context if context is not None else {}
    if ttl is not None:
        body["ttl"] = ttl
    body["tokenHash"] = hash_token(token)
    # Always present, so the automatic retry of a lost answer cannot create a second permission.
    body["idempotencyKey"] = idempotency_key or generate_idempotency_key()
    if webhook_url is not None:
        body["webhookUrl"] = webhook_url
    return body, token


def to_result(data: Dict[str, Any], client_token: Optional[str]) -> PermissionInfo:
    out: Dict[str, Any] = {k: v for k, v in data.items() if v is not None}
    out["scope"] = data.get("scope") or {}
    # The client's own token; a server that minted one for this read (no commitment sent) wins.
    token = data.get("token") or client_token
    if data.get("status") == "approved" and token:
        out["token"] = token
    else:
        out.pop("token", None)
    return out  # type: ignore[return-value]


def pending_info(data: Dict[str, Any]) -> PendingApprovalInfo:
    info: Dict[str, Any] = {"id": data["id"], "permissionId": data["id"], "expiresAt": data.get("expiresAt")}
    if isinstance(data.get("approvalUrl"), str):
        info["approvalUrl"] = data["approvalUrl"]
    return info  # type: ignore[return-value]


def settle(vault: TokenVault, data: Dict[str, Any]) -> PermissionInfo:
    """A decided permission seen while waiting: approved is returned, anything else raised."""
    pid = data.get("id")
    status = data.get("status")
    reason = data.get("reason")
    if status == "approved":
        return to_result(data, vault.token_for(pid))
    vault.forget(pid)
    if status in ("denied", "revoked"):
        suffix = f": {redact_secrets(reason)}" if reason else ""
        raise PermissionDeniedError(f"Permission {pid} was {status}{suffix}", permission_id=pid, reason=reason or None)
    if status in ("expired", "cancelled"):
        raise PermissionExpiredError(
            f"Permission request {pid} was {status} before a decision", permission_id=pid, details={"status": status}
        )
    if status == "used":
        raise TokenUsedError(f"Permission {pid} has already been used", permission_id=pid)
    raise AgentOTPError(f"Permission {pid} is {status}", code="INVALID_RESPONSE", permission_id=pid)


def not_approved(permission: PermissionInfo) -> AgentOTPError:
    """Unreachable with wait_for_approval; kept so a server anomaly cannot run the operation."""
    return PermissionDeniedError(
        f"Permission {permission.get('id')} is {permission.get('status')}",
        permission_id=permission.get("id"),
        reason=permission.get("reason"),
    )


def verification_error(permission_id: str, check: TokenVerificationResult) -> AgentOTPError:
    """The error ``execute_with_permission`` raises when the pre-flight verify says no."""
    code = check.get("reason") or "INVALID_TOKEN"
    message = f"Token for permission {permission_id} failed verification: {code}"
    init = {"code": code, "permission_id": permission_id}
    return error_for_code(code, message, init, details={"violations": check.get("violations") or []}) or AgentOTPError(
        message, **init
    )


def wait_seconds(remaining: float) -> int:
    return int(min(MAX_WAIT_SECONDS, max(1, math.ceil(remaining))))


def early_pause(early_answers: int) -> float:
    return min(EARLY_ANSWER_DELAY_MAX, EARLY_ANSWER_DELAY_MIN * 2**early_answers)


def details_body(token: str, action_details: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    check_token(token)
    body: Dict[str, Any] = {"token": token}
    if action_details is not None:
        body["actionDetails"] = action_details
    return body


def check_id(permission_id: Any) -> None:
    if not isinstance(permission_id, str) or not permission_id:
        raise ValidationError("A permission id is required")


def check_token(token: Any) -> None:
    if not isinstance(token, str) or not token:
        raise ValidationError("A token is required")


def positive(name: str, value: Optional[float], fallback: float) -> float:
    if value is None:
        return fallback
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValidationError(f"{name} must be a positive number of seconds")
    return float(value)


def non_negative(name: str, value: Optional[float], fallback: float) -> float:
    if value is None:
        return fallback
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValidationError(f"{name} must be zero or more")
    return float(value)


def non_negative_int(name: str, value: Optional[int], fallback: int) -> int:
    if value is None:
        return fallback
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(f"{name} must be a whole number, zero or more")
    return value


def timeout_error(permission_id: str, timeout: float) -> AgentOTPError:
    from .errors import TimeoutError

    return TimeoutError(
        f"No decision on permission {permission_id} within {timeout:g} s; it may still be approved later",
        permission_id=permission_id,
    )
