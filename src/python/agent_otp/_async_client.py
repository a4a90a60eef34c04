"""AsyncAgentOTPClient: the asyncio twin of AgentOTPClient — same methods, same results, same
errors, each a coroutine. Built on asyncio streams (see ``_async_http``), so a wait can be
cancelled at any point (``asyncio.wait_for``, task cancellation) and its socket closes at once.
"""

from __future__ import annotations

import asyncio
import inspect
import ssl
import time
from typing import Any, Awaitable, Callable, Dict, Optional, TypeVar, Union, cast

from . import _core as core
from ._async_http import AsyncTransport
from ._http import Call
from ._types import (
    ExecuteContext,
    PendingApprovalInfo,
    PermissionInfo,
    TokenUsageResult,
    TokenVerificationResult,
)
from ._vault import TokenVault

T = TypeVar("T")


class AsyncAgentOTPClient:
    """``AsyncAgentOTPClient(api_key, base_url=…)``: the options of :class:`AgentOTPClient`."""

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
        self._http = AsyncTransport(config)
        self._vault = TokenVault()

    def __repr__(self) -> str:  # never the key
        return f"AsyncAgentOTPClient(base_url={self.base_url!r})"

    async def request_permission(
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
        on_pending_approval: Optional[Callable[[PendingApprovalInfo], Any]] = None,
    ) -> PermissionInfo:
        """See :meth:`AgentOTPClient.request_permission`. ``on_pending_approval`` may be a
        coroutine function."""
        body, token = core.request_body(
            self._vault, action, resource, scope, context, ttl, idempotency_key, webhook_url
        )
        data = await self._http.call(Call("POST", f"{core.PATH}/request", retry=True, body=body))
        if data.get("status") in ("pending", "approved"):
            self._vault.remember_permission(data["id"], token)
        if data.get("status") == "pending" and wait_for_approval:
            if on_pending_approval is not None:
                outcome = on_pending_approval(core.pending_info(data))
                if inspect.isawaitable(outcome):
                    await outcome
            return await self._wait(data["id"], timeout)
        if wait_for_approval:
            return core.settle(self._vault, data)
        return core.to_result(data, self._vault.token_for(data["id"]))

    async def wait_for_permission(self, permission_id: str, *, timeout: Optional[float] = None) -> PermissionInfo:
        core.check_id(permission_id)
        return await self._wait(permission_id, timeout)

    async def get_permission(self, permission_id: str) -> PermissionInfo:
        data = await self._http.call(
            Call("GET", core.permission_path(permission_id), retry=True, permission_id=permission_id)
        )
        return core.to_result(data, self._vault.token_for(permission_id))

    get_permission_status = get_permission

    async def verify_token(
        self, permission_id: str, token: str, *, action_details: Optional[Dict[str, Any]] = None
    ) -> TokenVerificationResult:
        data = await self._http.call(
            Call(
                "POST",
                core.permission_path(permission_id, "/verify"),
                retry=True,
                body=core.details_body(token, action_details),
                permission_id=permission_id,
            )
        )
        return cast(TokenVerificationResult, data)

    async def use_token(
        self, permission_id: str, token: str, *, action_details: Optional[Dict[str, Any]] = None
    ) -> TokenUsageResult:
        data = await self._http.call(
            Call(
                "POST",
                core.permission_path(permission_id, "/use"),
                retry=False,  # a retried use could spend the token twice
                body=core.details_body(token, action_details),
                permission_id=permission_id,
            )
        )
        if data.get("usesRemaining", 0) <= 0:
            self._vault.forget(permission_id)
        return cast(TokenUsageResult, data)

    async def revoke_token(self, permission_id: str, *, reason: Optional[str] = None) -> PermissionInfo:
        data = await self._http.call(
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

    async def cancel(self, permission_id: str) -> PermissionInfo:
        data = await self._http.call(
            Call("POST", core.permission_path(permission_id, "/cancel"), retry=False, permission_id=permission_id)
        )
        self._vault.forget(permission_id)
        return core.to_result(data, None)

    async def execute_with_permission(
        self,
        action: str,
        operation: Callable[[ExecuteContext], Union[T, Awaitable[T]]],
        *,
        action_details: Optional[Dict[str, Any]] = None,
        **request: Any,
    ) -> T:
        """See :meth:`AgentOTPClient.execute_with_permission`; ``operation`` may be async."""
        request.pop("wait_for_approval", None)
        permission = await self.request_permission(action, wait_for_approval=True, **request)
        if permission.get("status") != "approved" or "token" not in permission:
            raise core.not_approved(permission)
        pid, token = permission["id"], permission["token"]
        check = await self.verify_token(pid, token, action_details=action_details)
        if not check.get("valid"):
            raise core.verification_error(pid, check)
        result = operation({"id": pid, "token": token, "scope": permission.get("scope", {})})
        if inspect.isawaitable(result):
            result = await result
        await self.use_token(pid, token, action_details=action_details)
        return cast(T, result)

    async def get_metrics(self, *, period: Optional[str] = None) -> Dict[str, Any]:
        return cast(
            Dict[str, Any],
            await self._http.call(Call("GET", "/api/v1/metrics", retry=True, query={"period": period})),
        )

    async def _wait(self, permission_id: str, timeout: Optional[float]) -> PermissionInfo:
        """The long-poll of :meth:`AgentOTPClient._wait`, stopped exactly at ``timeout`` (the poll
        in flight is cancelled and its connection closed)."""
        limit = core.positive("timeout", timeout, core.DEFAULT_WAIT_TIMEOUT)
        try:
            return await asyncio.wait_for(self._poll(permission_id, time.monotonic() + limit), limit)
        except asyncio.TimeoutError:
            raise core.timeout_error(permission_id, limit) from None

    async def _poll(self, permission_id: str, deadline: float) -> PermissionInfo:
        early_answers = 0
        while True:
            seconds = core.wait_seconds(deadline - time.monotonic())
            started = time.monotonic()
            data = await self._http.call(
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
                await asyncio.sleep(core.early_pause(early_answers))
                early_answers += 1
            else:
                early_answers = 0
