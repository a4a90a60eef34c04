"""Answers only Postgres can be made to give on cue (as in test/e2e/sdk.test.ts): the test reaches
into the server's schema to age a token past its TTL, and breaks a table so that requests fail
with a real 500. Skipped without TEST_DATABASE_URL (npm test in CI sets it)."""

from __future__ import annotations

import os
import re
import time
from typing import Any, Dict, Iterator, List

import pytest
from conftest import Api, Server, _sql

from agent_otp import AgentOTPClient, ServerError, TokenExpiredError

pytestmark = pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs TEST_DATABASE_URL")


def test_token_expired_for_a_token_past_its_ttl(server: Server, otp: AgentOTPClient, tokens_seen: List[str]) -> None:
    permission = otp.request_permission("payment.transfer", ttl=30)
    tokens_seen.append(permission["token"])
    pid = permission["id"]
    assert re.match(r"^perm_[A-Za-z0-9_-]+$", pid)
    _sql(
        server.db_url or "",
        f"UPDATE {server.schema}.permissions SET expires_at = now() - interval '1 second' WHERE id = '{pid}'",
    )
    with pytest.raises(TokenExpiredError) as caught:
        otp.use_token(pid, permission["token"])
    assert (caught.value.code, caught.value.status, caught.value.permission_id) == ("TOKEN_EXPIRED", 410, pid)
    check = otp.verify_token(pid, permission["token"])
    assert check["valid"] is False and check["reason"] == "TOKEN_EXPIRED"


@pytest.fixture()
def broken_server() -> Iterator[Server]:
    """A server of its own: its permissions table is dropped."""
    srv = Server({})
    try:
        yield srv
    finally:
        srv.stop()


def test_server_error_when_the_database_breaks_after_retrying(broken_server: Server) -> None:
    agent: Dict[str, Any] = Api(broken_server.url, broken_server.admin).new_agent("broken")
    _sql(broken_server.db_url or "", f"DROP TABLE {broken_server.schema}.permissions CASCADE")
    otp = AgentOTPClient(agent["apiKey"], broken_server.url, retry_attempts=2, retry_delay=0.02)
    with pytest.raises(ServerError) as caught:
        otp.request_permission("payment.transfer")
    err = caught.value
    assert (err.code, err.status, err.message) == ("INTERNAL_ERROR", 500, "Internal server error")
    assert err.request_id
    # Three attempts reached the server (its request log is written just after each answer).
    pattern = r'"url":"/api/v1/permissions/request","statusCode":500'
    deadline = time.monotonic() + 5
    while len(re.findall(pattern, broken_server.output())) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(re.findall(pattern, broken_server.output())) == 3
