"""Retries, as the TypeScript SDK does them: only calls that are safe to repeat, with the same
idempotency key and token commitment on each attempt, waiting at least a 429's Retry-After — and
never waiting out a Retry-After longer than a minute. A local HTTP server scripts the answers a
real server cannot be made to give on cue."""

from __future__ import annotations

import asyncio
import time
from typing import Iterator

import pytest
from test_contract import FakeApi

from agent_otp import AgentOTPClient, AsyncAgentOTPClient, RateLimitError, ServerError

PERMISSION = {"id": "perm_1", "status": "approved", "scope": {}, "expiresAt": "2030-01-01T00:00:00.000Z"}
UNAVAILABLE = {"success": False, "error": {"code": "SERVICE_UNAVAILABLE", "message": "busy", "requestId": "r"}}
LIMITED = {"success": False, "error": {"code": "RATE_LIMITED", "message": "slow down", "requestId": "r"}}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeApi]:
    fake = FakeApi()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


@pytest.fixture()
def api(server: FakeApi) -> FakeApi:
    server.requests.clear()
    server.replies.clear()
    return server


def test_a_read_is_retried_after_a_5xx(api: FakeApi) -> None:
    api.reply(503, UNAVAILABLE)
    api.reply(200, {"success": True, "data": PERMISSION})
    otp = AgentOTPClient("ak_test_x", api.url, retry_delay=0.01)
    assert otp.get_permission("perm_1")["status"] == "approved"
    assert len(api.requests) == 2


def test_use_token_is_never_retried(api: FakeApi) -> None:
    api.reply(503, UNAVAILABLE)
    api.reply(200, {"success": True, "data": {"success": True, "usesRemaining": 0}})
    otp = AgentOTPClient("ak_test_x", api.url, retry_delay=0.01)
    with pytest.raises(ServerError) as caught:
        otp.use_token("perm_1", "otp_v1_" + "A" * 43)
    assert caught.value.status == 503
    assert len(api.requests) == 1


def test_a_request_waits_out_retry_after_and_repeats_the_same_commitment(api: FakeApi) -> None:
    api.reply(429, LIMITED, headers={"Retry-After": "1"})
    api.reply(201, {"success": True, "data": PERMISSION})
    otp = AgentOTPClient("ak_test_x", api.url, retry_delay=0.01)
    started = time.monotonic()
    permission = otp.request_permission("payment.transfer")
    assert time.monotonic() - started >= 1.0  # the Retry-After, not the 10 ms backoff
    first, second = api.requests
    assert first["body"]["idempotencyKey"] == second["body"]["idempotencyKey"]
    assert first["body"]["tokenHash"] == second["body"]["tokenHash"]
    assert permission["status"] == "approved" and permission["token"]


def test_a_retry_after_over_a_minute_is_returned_to_the_caller(api: FakeApi) -> None:
    api.reply(429, LIMITED, headers={"Retry-After": "120"})
    otp = AgentOTPClient("ak_test_x", api.url, retry_delay=0.01)
    started = time.monotonic()
    with pytest.raises(RateLimitError) as caught:
        otp.get_permission("perm_1")
    assert caught.value.retry_after == 120
    assert time.monotonic() - started < 1 and len(api.requests) == 1


def test_the_async_client_retries_the_same_way(api: FakeApi) -> None:
    api.reply(429, LIMITED, headers={"Retry-After": "1"})
    api.reply(200, {"success": True, "data": PERMISSION})
    api.reply(503, UNAVAILABLE)
    otp = AsyncAgentOTPClient("ak_test_x", api.url, retry_delay=0.01)

    async def scenario() -> None:
        started = time.monotonic()
        assert (await otp.get_permission("perm_1"))["status"] == "approved"
        assert time.monotonic() - started >= 1.0
        with pytest.raises(ServerError):
            await otp.use_token("perm_1", "otp_v1_" + "A" * 43)

    asyncio.run(scenario())
    assert len(api.requests) == 3
