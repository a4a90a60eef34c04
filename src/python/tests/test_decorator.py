"""@requires_permission on tool functions, sync and async, against the built server: the call
runs under a fresh permission that it spends; a denial or an out-of-scope call never runs."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Dict, List

import pytest
from conftest import Api, Server

from agent_otp import (
    AgentOTPClient,
    AsyncAgentOTPClient,
    PermissionDeniedError,
    ScopeViolationError,
    requires_permission,
)


def permissions_for(operator: Api, action: str) -> List[Dict[str, Any]]:
    return operator.ok("GET", f"/api/v1/permissions?action={action}")["permissions"]


def test_a_sync_tool_runs_under_a_permission_it_spends(otp: AgentOTPClient, operator: Api) -> None:
    action = f"payment.tool_{secrets.token_hex(3)}"

    @requires_permission(action, scope={"max_amount": 100}, action_details=lambda to, amount: {"amount": amount}, client=otp)
    def transfer(to: str, amount: int) -> str:
        """Sends money."""
        return f"sent {amount} to {to}"

    assert transfer.__name__ == "transfer" and transfer.__doc__ == "Sends money."  # frameworks read these
    assert transfer("acme", 40) == "sent 40 to acme"
    [permission] = permissions_for(operator, action)
    assert permission["status"] == "used" and permission["scope"] == {"max_amount": 100}

    ran: List[int] = []

    @requires_permission(action, scope={"max_amount": 100}, action_details=lambda amount: {"amount": amount}, client=otp)
    def too_much(amount: int) -> None:
        ran.append(amount)

    with pytest.raises(ScopeViolationError) as caught:
        too_much(500)
    assert caught.value.key == "max_amount" and ran == []
    statuses = sorted(p["status"] for p in permissions_for(operator, action))
    assert statuses == ["approved", "used"]  # the refused call spent nothing


def test_a_denied_tool_does_not_run(otp: AgentOTPClient) -> None:
    ran: List[bool] = []

    @requires_permission("db.delete", client=otp)
    def drop_users() -> None:
        ran.append(True)

    with pytest.raises(PermissionDeniedError) as caught:
        drop_users()
    assert caught.value.reason == "Deletes are never allowed" and ran == []


def test_an_async_tool_waits_for_a_human_then_runs(server: Server, agent: Dict[str, Any], operator: Api) -> None:
    aotp = AsyncAgentOTPClient(agent["apiKey"], server.url)
    action = f"email.tool_{secrets.token_hex(3)}"

    @requires_permission(action, resource=lambda to: f"email:{to}", client=aotp, timeout=20)
    async def send_email(to: str) -> str:
        return f"mailed {to}"

    async def approve_when_pending() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(100):
            pending = await loop.run_in_executor(None, permissions_for, operator, action)
            if pending:
                await loop.run_in_executor(None, lambda: operator.decide(pending[0]["id"], approved=True))
                return
            await asyncio.sleep(0.05)

    async def scenario() -> str:
        result, _ = await asyncio.gather(send_email("bob@acme.com"), approve_when_pending())
        return result

    assert asyncio.run(scenario()) == "mailed bob@acme.com"
    [permission] = permissions_for(operator, action)
    assert permission["status"] == "used" and permission["resource"] == "email:bob@acme.com"


def test_the_client_must_match_the_function_kind(otp: AgentOTPClient) -> None:
    @requires_permission("payment.transfer", client=otp)
    async def wrong() -> None:
        return None

    with pytest.raises(TypeError, match="AsyncAgentOTPClient"):
        asyncio.run(wrong())
