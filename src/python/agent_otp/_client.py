"""AgentOTPClient: what an agent calls before a sensitive action (blocking, ``http.client``).

Same behaviour as the TypeScript SDK's client: it makes its own token and sends only its hash,
waits for humans by long-polling, retries only what is safe to repeat, and refuses to send its
key over plain HTTP except to loopback. Timeouts here are in seconds.
"""

from __future__ import annotations

import ssl
import time
from typing import Any, Callable, Dict, Optional, TypeVar, cast

from . import _core as core
from ._http import Call, SyncTransport
from ._types import (
    ExecuteContext,
    PendingApprovalInfo,
    PermissionInfo,
    TokenUsageResult,
    TokenVerificationResult,
)
from ._vault import TokenVault

T = TypeVar("T")


class AgentOTPClient:
    """``AgentOTPClient(api_key, base_url="https://otp.example.com")``.

    ``timeout`` is per HTTP attempt in seconds (a long-poll gets its wait added on top);
    ``retry_attempts`` retries idempotent calls after a network error, a 429 (at least its
    Retry-After) or a 5xx, backing off from ``retry_delay`` seconds. ``base_url`` must be HTTPS
    unless the host is loopback or ``allow_insecure_http`` is set.
    """

    def __init__(
        self,
        api_key: str,
        base_url: Optional[str] = None,
        *,
        timeout: Optional[float] = None,
        retry_attempts: Optional[int] = None,
        retry_delay: Optional[float] = None,
        allow_insecure_http: bool = False,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        config = core.make_config(
            api_key, base_url, timeout, retry_attempts, retry_delay, allow_insecure_http, ssl_context
        )
        self.base_url = config.base_url
        self._timeout = config.timeout
        self._http = SyncTransport(config)
        self._vault = TokenVault()

    def __repr__(self) -> str:  # never the key
        return f"AgentOTPClient(base_url={self.base_url!r})"

    def request_permission(
        self,
        action: str,
        *,
        resource: Optional[str] = None,
        scope: Optional[Dict[str, Any]] = None,
        context: Optional[Dict[str, Any]] = None,
        ttl: Optional[int] = None,
        idempotency_key: Optional[str] = None,
        webhook_url: Optional[str] = None,
        wait_for_approval: bool = False,
        timeout: Optional[float] = None,
        on_pending_approval: Optional[Callable[[PendingApprovalInfo], None]] = None,
    ) -> PermissionInfo:
        """Asks for a permission. Approved → ``{"status": "approved", "token": …}`` (the token
        this client generated; the server only saw its hash). Denied → ``{"status": "denied",
        "reason": …}``, or PermissionDeniedError with ``wait_for_approval``. Pending → returned as
        is, or with ``wait_for_approval`` the call long-polls until the decision (at most
        ``timeout`` seconds, default 300, then TimeoutError)."""
        body, token = core.request_body(
            self._vault, action, resource, scope, context, ttl, idempotency_key, webhook_url
        )
        data = self._http.call(Call("POST", f"{core.PATH}/request", retry=True, body=body))
        if data.get("status") in ("pending", "approved"):
            self._vault.remember_permission(data["id"], token)
        if data.get("status") == "pending" and wait_for_approval:
            if on_pending_approval is not None:
                on_pending_approval(core.pending_info(data))
            return self._wait(data["id"], timeout)
        if wait_for_approval:
            return core.settle(self._vault, data)
        return core.to_result(data, self._vault.token_for(data["id"]))

    def wait_for_permission(self, permission_id: str, *, timeout: Optional[float] = None) -> PermissionInfo:
        """Waits for the decision on a pending permission (e.g. requested without waiting)."""
        core.check_id(permission_id)
        return self._wait(permission_id, timeout)

    def get_permission(self, permission_id: str) -> PermissionInfo:
        """Reads a permission; carries the token when approved and this client generated it."""
        data = self._http.call(
            Call("GET", core.permission_path(permission_id), retry=True, permission_id=permission_id)
        )
        return core.to_result(data, self._vault.token_for(permission_id))

    get_permission_status = get_permission

    def verify_token(
        self, permission_id: str, token: str, *, action_details: Optional[Dict[str, Any]] = None
    ) -> TokenVerificationResult:
        """Checks a token (and, with ``action_details``, the action) against the granted scope
        without consuming anything: problems come back as ``{"valid": False, "reason": …}``."""
        return cast(
            TokenVerificationResult,
            self._http.call(
                Call(
                    "POST",
                    core.permission_path(permission_id, "/verify"),
                    retry=True,  # consumes nothing, so safe to repeat
                    body=core.details_body(token, action_details),
                    permission_id=permission_id,
                )
            ),
        )

    def use_token(
        self, permission_id: str, token: str, *, action_details: Optional[Dict[str, Any]] = None
    ) -> TokenUsageResult:
        """Spends one use of the token; ``action_details`` are checked against the scope first
        (ScopeViolationError consumes nothing). Never retried: if the answer is lost, the use may
        have happened — ``get_permission`` tells."""
        data = self._http.call(
            Call(
                "POST",
                core.permission_path(permission_id, "/use"),
                retry=False,
                body=core.details_body(token, action_details),
                permission_id=permission_id,
            )
        )
        if data.get("usesRemaining", 0) <= 0:
            self._vault.forget(permission_id)
        return cast(TokenUsageResult, data)

    def revoke_token(self, permission_id: str, *, reason: Optional[str] = None) -> PermissionInfo:
        """Revokes a permission: its token stops working at once."""
        data = self._http.call(
            Call(
                "POST",
                core.permission_path(permission_id, "/revoke"),
                retry=False,
                body={"reason": reason} if reason is not None else {},
                permission_id=permission_id,
            )
        )
        self._vault.forget(permission_id)
        return core.to_result(data, None)

    def cancel(self, permission_id: str) -> PermissionInfo:
        """Withdraws a pending request (a waiting ``request_permission`` then raises PermissionExpiredError)."""
        data = self._http.call(
            Call("POST", core.permission_path(permission_id, "/cancel"), retry=False, permission_id=permission_id)
        )
        self._vault.forget(permission_id)
        return core.to_result(data, None)

    def execute_with_permission(
        self,
        action: str,
        operation: Callable[[ExecuteContext], T],
        *,
        action_details: Optional[Dict[str, Any]] = None,
        **request: Any,
    ) -> T:
        """Request (waiting for a human if needed) → verify (with ``action_details``) → run
        ``operation(context)`` → use. If the operation raises, the token is not spent and the
        error propagates; the token then simply expires. Returns what the operation returned.
        ``request`` takes the keyword arguments of ``request_permission``."""
        request.pop("wait_for_approval", None)
        permission = self.request_permission(action, wait_for_approval=True, **request)
        if permission.get("status") != "approved" or "token" not in permission:
            raise core.not_approved(permission)
        pid, token = permission["id"], permission["token"]
        check = self.verify_token(pid, token, action_details=action_details)
        if not check.get("valid"):
            raise core.verification_error(pid, check)
        result = operation({"id": pid, "token": token, "scope": permission.get("scope", {})})
        self.use_token(pid, token, action_details=action_details)
        return result

    def get_metrics(self, *, period: Optional[str] = None) -> Dict[str, Any]:
        """Request, decision and token-use rates of this agent."""
        return cast(
            Dict[str, Any], self._http.call(Call("GET", "/api/v1/metrics", retry=True, query={"period": period}))
        )

    def _wait(self, permission_id: str, timeout: Optional[float]) -> PermissionInfo:
        """Long-polls ``GET …/:id?wait=N``: the server answers at once on a decision, or after N
        seconds with ``pending`` (then the next poll starts immediately). A server that ignores
        ``wait`` is polled with a growing pause instead. Blocking sockets cannot be interrupted,
        so the last poll asks for at most the time left (rounded up to a whole second)."""
        limit = core.positive("timeout", timeout, core.DEFAULT_WAIT_TIMEOUT)
        deadline = time.monotonic() + limit
        early_answers = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise core.timeout_error(permission_id, limit)
            seconds = core.wait_seconds(remaining)
            started = time.monotonic()
            data = self._http.call(
                Call(
                    "GET",
                    core.permission_path(permission_id),
                    retry=True,
                    query={"wait": seconds},
                    timeout=seconds + self._timeout,
                    permission_id=permission_id,
                )
            )
            if data.get("status") != "pending":
                return core.settle(self._vault, data)
            if time.monotonic() - started < seconds / 2:
                pause = core.early_pause(early_answers)
                early_answers += 1
                time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            else:
                early_answers = 0
