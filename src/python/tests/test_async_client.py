"""The asyncio client against the built server: the same outcomes and errors as the sync one,
plus what only async can do — cancel a wait at once."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, List

import pytest
from conftest import Api, Server, record

from agent_otp import (
    TOKEN_PATTERN,
    AsyncAgentOTPClient,
    AuthenticationError,
    PermissionDeniedError,
    ScopeViolationError,
    TimeoutError,
    TokenUsedError,
    ValidationError,
)


@pytest.fixture()
def aotp(server: Server, agent: Dict[str, Any]) -> AsyncAgentOTPClient:
    return AsyncAgentOTPClient(agent["apiKey"], server.url, retry_delay=0.05)


def test_auto_approve_verify_use_and_token_reuse(aotp: AsyncAgentOTPClient, tokens_seen: List[str]) -> None:
    async def scenario() -> None:
        permission = await aotp.request_permission("payment.transfer", scope={"max_amount": 100})
        assert permission["status"] == "approved" and TOKEN_PATTERN.match(permission["token"])
        tokens_seen.append(permission["token"])
        pid, token = permission["id"], permission["token"]
        assert (await aotp.verify_token(pid, token, action_details={"amount": 10}))["valid"] is True
        with pytest.raises(ScopeViolationError) as violation:
            await aotp.use_token(pid, token, action_details={"amount": 1000})
        assert violation.value.key == "max_amount" and violation.value.status == 403
        assert (await aotp.use_token(pid, token, action_details={"amount": 10}))["usesRemaining"] == 0
        with pytest.raises(TokenUsedError) as reuse:
            await aotp.use_token(pid, token)
        assert (reuse.value.code, reuse.value.status, reuse.value.permission_id) == ("TOKEN_USED", 410, pid)
        assert (await aotp.get_permission(pid))["status"] == "used"

    asyncio.run(scenario())


def test_waits_for_the_operator_and_resolves_on_the_decision(
    aotp: AsyncAgentOTPClient, operator: Api, tokens_seen: List[str]
) -> None:
    marks: Dict[str, float] = {}

    async def approve(pid: str) -> None:
        await asyncio.sleep(0.5)
        marks["decide_sent"] = time.monotonic()
        # urllib blocks: run it off the loop so the long-poll keeps being served.
        await asyncio.get_running_loop().run_in_executor(None, lambda: operator.decide(pid, approved=True))
        marks["decide_answered"] = time.monotonic()

    async def scenario() -> Dict[str, Any]:
        tasks: List[asyncio.Task] = []
        permission = await aotp.request_permission(
            "email.send",
            wait_for_approval=True,
            timeout=20,
            on_pending_approval=lambda info: tasks.append(asyncio.ensure_future(approve(info["id"]))),
        )
        resolved = time.monotonic()
        await asyncio.gather(*tasks)
        marks["resolved"] = resolved
        return dict(permission)

    permission = asyncio.run(scenario())
    after_decision = marks["resolved"] - marks["decide_sent"]
    record("async wait, operator decide sent -> request_permission returned", after_decision)
    assert after_decision < 2.0
    assert permission["status"] == "approved" and TOKEN_PATTERN.match(permission["token"])
    tokens_seen.append(permission["token"])


def test_denial_raises_with_the_reason(aotp: AsyncAgentOTPClient) -> None:
    async def scenario() -> None:
        with pytest.raises(PermissionDeniedError) as caught:
            await aotp.request_permission("db.delete", wait_for_approval=True)
        assert caught.value.reason == "Deletes are never allowed"
        assert caught.value.permission_id.startswith("perm_")

    asyncio.run(scenario())


def test_the_wait_stops_at_its_timeout_and_can_be_cancelled(aotp: AsyncAgentOTPClient) -> None:
    async def scenario() -> None:
        started = time.monotonic()
        with pytest.raises(TimeoutError) as caught:
            await aotp.request_permission("email.send", wait_for_approval=True, timeout=1.2)
        elapsed = time.monotonic() - started
        assert caught.value.code == "TIMEOUT" and caught.value.permission_id.startswith("perm_")
        assert 1.1 <= elapsed < 2.0  # exact: the poll in flight is cancelled, not waited out

        # A caller's own cancellation ends a 30 s long-poll at once, and the request stays pending.
        pending = await aotp.request_permission("email.send")
        task = asyncio.ensure_future(aotp.wait_for_permission(pending["id"], timeout=60))
        await asyncio.sleep(0.3)
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert time.monotonic() - cancelled_at < 0.5
        assert (await aotp.get_permission(pending["id"]))["status"] == "pending"
        await aotp.cancel(pending["id"])

    asyncio.run(scenario())


def test_errors_and_configuration_match_the_sync_client(server: Server, aotp: AsyncAgentOTPClient) -> None:
    async def scenario() -> None:
        with pytest.raises(AuthenticationError) as caught:
            await AsyncAgentOTPClient("ak_live_nope", server.url).get_permission("perm_x")
        assert caught.value.code == "INVALID_API_KEY" and caught.value.request_id
        with pytest.raises(ValidationError):
            await aotp.request_permission("payment.transfer", ttl=5)

    asyncio.run(scenario())
    with pytest.raises(ValidationError, match="plain HTTP"):
        AsyncAgentOTPClient("ak_live_x", "http://otp.example.com")


def test_execute_with_permission_runs_an_async_operation_then_spends(
    aotp: AsyncAgentOTPClient, tokens_seen: List[str]
) -> None:
    async def scenario() -> None:
        ids: List[str] = []

        async def operation(ctx: Dict[str, Any]) -> str:
            ids.append(ctx["id"])
            tokens_seen.append(ctx["token"])
            await asyncio.sleep(0)
            return "done"

        assert await aotp.execute_with_permission("payment.transfer", operation) == "done"
        assert (await aotp.get_permission(ids[0]))["status"] == "used"

    asyncio.run(scenario())
