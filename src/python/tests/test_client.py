"""The sync client against the built server: every outcome an agent meets and every error class,
each produced by a real server answer (as test/e2e/sdk.test.ts does for the TypeScript SDK)."""

from __future__ import annotations

import secrets
import socket
import statistics
import threading
import time
from typing import Any, Dict, List

import pytest
from conftest import Api, Server, record

from agent_otp import (
    TOKEN_PATTERN,
    AgentOTPClient,
    AgentOTPError,
    AuthenticationError,
    ConflictError,
    ForbiddenError,
    InvalidTokenError,
    NetworkError,
    NotFoundError,
    PermissionDeniedError,
    PermissionExpiredError,
    RateLimitError,
    ScopeViolationError,
    TimeoutError,
    TokenRevokedError,
    TokenUsedError,
    ValidationError,
    generate_token,
)


def approved(otp: AgentOTPClient, tokens_seen: List[str], scope: Dict[str, Any] = None) -> Dict[str, Any]:
    permission = otp.request_permission("payment.transfer", scope=scope or {})
    assert permission["status"] == "approved"
    tokens_seen.append(permission["token"])
    return dict(permission)


def later(seconds: float, fn: Any, *args: Any, **kwargs: Any) -> None:
    threading.Timer(seconds, fn, args, kwargs).start()


def test_auto_approved_request_verify_use_with_the_clients_own_token(otp: AgentOTPClient, tokens_seen: List[str]) -> None:
    permission = otp.request_permission(
        "payment.transfer",
        resource="account:acme",
        scope={"max_amount": 100},
        context={"reason": "Monthly subscription payment"},
    )
    assert permission["status"] == "approved"
    token = permission["token"]
    tokens_seen.append(token)
    assert TOKEN_PATTERN.match(token)
    assert permission["scope"] == {"max_amount": 100}
    assert permission["usesRemaining"] == 1

    check = otp.verify_token(permission["id"], token, action_details={"amount": 60})
    assert check["valid"] is True and check["usesRemaining"] == 1
    too_much = otp.verify_token(permission["id"], token, action_details={"amount": 600})
    assert too_much["valid"] is False and too_much["reason"] == "SCOPE_VIOLATION"
    assert too_much["violations"][0]["key"] == "max_amount"

    used = otp.use_token(permission["id"], token, action_details={"amount": 60})
    assert used["success"] is True and used["usesRemaining"] == 0
    assert otp.get_permission(permission["id"])["status"] == "used"


def test_the_audit_trail_records_the_python_sdk_as_user_agent(otp: AgentOTPClient, operator: Api, tokens_seen: List[str]) -> None:
    pid = approved(otp, tokens_seen)["id"]
    events = operator.ok("GET", f"/api/v1/audit?permission_id={pid}&event_type=request")["events"]
    assert events[0]["userAgent"].startswith("agent-otp-sdk/")


def test_a_repeated_idempotency_key_returns_the_same_permission_and_token(otp: AgentOTPClient, tokens_seen: List[str]) -> None:
    key = "order-" + secrets.token_hex(4)
    first = otp.request_permission("payment.refund", idempotency_key=key)
    again = otp.request_permission("payment.refund", idempotency_key=key)
    assert again["id"] == first["id"] and again["token"] == first["token"]
    tokens_seen.append(first["token"])
    otp.use_token(first["id"], first["token"])
    with pytest.raises(TokenUsedError):
        otp.use_token(again["id"], first["token"])


def test_denial_is_a_result_without_waiting_and_an_error_with_waiting(otp: AgentOTPClient) -> None:
    permission = otp.request_permission("db.delete", resource="table:users")
    assert permission["status"] == "denied"
    assert permission["reason"] == "Deletes are never allowed"
    assert "token" not in permission

    with pytest.raises(PermissionDeniedError) as caught:
        otp.request_permission("db.delete", wait_for_approval=True)
    assert caught.value.code == "PERMISSION_DENIED"
    assert caught.value.reason == "Deletes are never allowed"
    assert caught.value.permission_id.startswith("perm_")


def test_waits_for_a_human_and_resolves_as_soon_as_the_operator_approves(
    otp: AgentOTPClient, operator: Api, tokens_seen: List[str]
) -> None:
    """Five waits, each approved by the operator 0.5 s into its long-poll; the time from the
    decision to request_permission returning is measured and printed (median and worst)."""
    after_sent: List[float] = []
    after_answered: List[float] = []
    for _ in range(5):
        marks: Dict[str, float] = {}
        pending: List[Dict[str, Any]] = []
        deciders: List[threading.Timer] = []

        def approve(pid: str) -> None:
            marks["decide_sent"] = time.monotonic()
            operator.decide(pid, approved=True, scopeModifications={"max_emails": 1})
            marks["decide_answered"] = time.monotonic()

        def on_pending(info: Dict[str, Any]) -> None:
            pending.append(dict(info))
            deciders.append(threading.Timer(0.5, approve, (info["id"],)))  # well into the long-poll
            deciders[0].start()

        permission = otp.request_permission(
            "email.send",
            scope={"max_emails": 5, "allowed_recipients": ["*@acme.com"]},
            wait_for_approval=True,
            timeout=20,
            on_pending_approval=on_pending,
        )
        resolved = time.monotonic()
        deciders[0].join()  # the long-poll may answer before the operator's own call returns
        after_sent.append(resolved - marks["decide_sent"])
        after_answered.append(resolved - marks["decide_answered"])

        assert len(pending) == 1 and pending[0]["permissionId"] == permission["id"]
        assert permission["status"] == "approved"
        assert TOKEN_PATTERN.match(permission["token"])
        tokens_seen.append(permission["token"])
        assert permission["scope"]["max_emails"] == 1  # narrowed by the approver
        used = otp.use_token(permission["id"], permission["token"], action_details={"recipient": "bob@acme.com"})
        assert used == {"success": True, "usesRemaining": 0, "status": "used"}

    record("sync wait, operator decide sent -> request_permission returned, median of 5", statistics.median(after_sent))
    record("sync wait, operator decide sent -> request_permission returned, worst of 5", max(after_sent))
    record("sync wait, operator decide answered -> request_permission returned, median of 5", statistics.median(after_answered))
    # The waits ended on the decisions, not on their 20 s polls: a generous bound; the figures are printed.
    assert max(after_sent) < 2.0


def test_a_human_denial_during_the_wait_raises_permission_denied(otp: AgentOTPClient, operator: Api) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        otp.request_permission(
            "email.send",
            wait_for_approval=True,
            timeout=20,
            on_pending_approval=lambda info: later(0.2, operator.decide, info["id"], approved=False, reason="wrong recipient"),
        )
    assert caught.value.reason == "wrong recipient"


def test_timeout_then_a_later_approval_brings_the_committed_token(
    otp: AgentOTPClient, operator: Api, tokens_seen: List[str]
) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError) as caught:
        otp.request_permission("email.send", wait_for_approval=True, timeout=1.5)
    elapsed = time.monotonic() - started
    assert caught.value.code == "TIMEOUT"
    assert 1.4 <= elapsed < 4
    pid = caught.value.permission_id
    assert otp.get_permission(pid)["status"] == "pending"
    assert "token" not in otp.get_permission(pid)

    later(0.2, operator.decide, pid, approved=True)
    permission = otp.wait_for_permission(pid, timeout=20)
    assert permission["status"] == "approved" and TOKEN_PATTERN.match(permission["token"])
    tokens_seen.append(permission["token"])
    assert otp.use_token(pid, permission["token"])["success"] is True


def test_cancel_while_another_thread_waits_raises_permission_expired(otp: AgentOTPClient) -> None:
    with pytest.raises(PermissionExpiredError) as caught:
        otp.request_permission(
            "email.send", wait_for_approval=True, timeout=20, on_pending_approval=lambda info: later(0.3, otp.cancel, info["id"])
        )
    assert caught.value.code == "PERMISSION_EXPIRED"
    assert caught.value.details == {"status": "cancelled"}
    assert otp.get_permission(caught.value.permission_id)["status"] == "cancelled"


class TestEveryErrorClassFromARealAnswer:
    def test_authentication_error_for_an_unknown_and_a_revoked_key(self, server: Server, operator: Api) -> None:
        bad = AgentOTPClient("ak_live_" + secrets.token_urlsafe(24), server.url, retry_delay=0.05)
        with pytest.raises(AuthenticationError) as caught:
            bad.request_permission("payment.transfer")
        assert caught.value.code == "INVALID_API_KEY" and caught.value.status == 401
        assert caught.value.request_id

        doomed = operator.new_agent("doomed")
        operator.ok("POST", f"/api/v1/agents/{doomed['id']}/revoke", {})
        with pytest.raises(AuthenticationError) as revoked:
            AgentOTPClient(doomed["apiKey"], server.url).get_permission("perm_x")
        assert revoked.value.code == "EXPIRED_API_KEY"

    def test_validation_error_for_a_ttl_out_of_bounds(self, otp: AgentOTPClient) -> None:
        with pytest.raises(ValidationError) as caught:
            otp.request_permission("payment.transfer", ttl=5)
        assert caught.value.code == "VALIDATION_ERROR" and caught.value.status == 400
        assert "ttl" in caught.value.message

    def test_rate_limit_error_with_retry_after(self, server: Server, operator: Api) -> None:
        limited = operator.new_agent("limited")
        operator.ok("PATCH", f"/api/v1/agents/{limited['id']}", {"rateLimitPerMin": 1})
        slow = AgentOTPClient(limited["apiKey"], server.url, retry_attempts=0)
        slow.request_permission("payment.transfer")
        with pytest.raises(RateLimitError) as caught:
            slow.request_permission("payment.transfer")
        assert caught.value.code == "RATE_LIMITED" and caught.value.status == 429
        assert 0 < caught.value.retry_after <= 60

    def test_scope_violation_names_the_key_and_consumes_nothing(self, otp: AgentOTPClient, tokens_seen: List[str]) -> None:
        p = approved(otp, tokens_seen, {"max_amount": 100})
        with pytest.raises(ScopeViolationError) as caught:
            otp.use_token(p["id"], p["token"], action_details={"amount": 150})
        err = caught.value
        assert (err.code, err.status, err.key, err.permission_id) == ("SCOPE_VIOLATION", 403, "max_amount", p["id"])
        assert err.violations[0]["key"] == "max_amount" and err.violations[0]["limit"] == 100
        assert otp.use_token(p["id"], p["token"], action_details={"amount": 99})["success"] is True

    def test_token_used_for_a_second_use(self, otp: AgentOTPClient, tokens_seen: List[str]) -> None:
        p = approved(otp, tokens_seen)
        otp.use_token(p["id"], p["token"])
        with pytest.raises(TokenUsedError) as caught:
            otp.use_token(p["id"], p["token"])
        assert (caught.value.code, caught.value.status) == ("TOKEN_USED", 410)

    def test_token_revoked_after_revoke_token(self, otp: AgentOTPClient, tokens_seen: List[str]) -> None:
        p = approved(otp, tokens_seen)
        assert otp.revoke_token(p["id"], reason="task abandoned")["status"] == "revoked"
        with pytest.raises(TokenRevokedError) as caught:
            otp.use_token(p["id"], p["token"])
        assert (caught.value.code, caught.value.status) == ("TOKEN_REVOKED", 410)

    def test_invalid_token_for_a_token_that_is_not_this_permissions(self, otp: AgentOTPClient, tokens_seen: List[str]) -> None:
        p = approved(otp, tokens_seen)
        with pytest.raises(InvalidTokenError) as caught:
            otp.use_token(p["id"], generate_token())
        assert not isinstance(caught.value, AuthenticationError)
        assert (caught.value.code, caught.value.status) == ("INVALID_TOKEN", 403)

    def test_forbidden_for_an_operator_key_used_as_an_agent_key(self, server: Server) -> None:
        with pytest.raises(ForbiddenError) as caught:
            AgentOTPClient(server.admin, server.url).request_permission("payment.transfer")
        assert (caught.value.code, caught.value.status) == ("FORBIDDEN", 403)
        assert server.admin not in str(caught.value) and server.admin not in repr(caught.value)

    def test_not_found_for_another_agents_permission_and_conflict_cancelling_a_decided_one(
        self, server: Server, operator: Api, otp: AgentOTPClient, tokens_seen: List[str]
    ) -> None:
        p = approved(otp, tokens_seen)
        other = AgentOTPClient(operator.new_agent("nosy")["apiKey"], server.url)
        with pytest.raises(NotFoundError) as caught:
            other.get_permission(p["id"])
        assert (caught.value.code, caught.value.status, caught.value.permission_id) == ("NOT_FOUND", 404, p["id"])
        with pytest.raises(ConflictError) as conflict:
            otp.cancel(p["id"])
        assert (conflict.value.code, conflict.value.status) == ("ALREADY_DECIDED", 409)

    def test_network_error_for_a_port_nothing_listens_on(self, agent: Dict[str, Any]) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        down = AgentOTPClient(agent["apiKey"], f"http://127.0.0.1:{port}", retry_attempts=1, retry_delay=0.01)
        with pytest.raises(NetworkError) as caught:
            down.request_permission("payment.transfer")
        assert caught.value.code == "NETWORK_ERROR"
        assert isinstance(caught.value, AgentOTPError)


class TestExecuteWithPermission:
    def test_requests_verifies_runs_then_spends(self, otp: AgentOTPClient, tokens_seen: List[str]) -> None:
        seen: List[Dict[str, Any]] = []

        def send(ctx: Dict[str, Any]) -> str:
            seen.append(ctx)
            tokens_seen.append(ctx["token"])
            return "sent"

        assert otp.execute_with_permission("payment.transfer", send, scope={"max_amount": 50}, action_details={"amount": 20}) == "sent"
        assert seen[0]["scope"] == {"max_amount": 50}
        assert otp.get_permission(seen[0]["id"])["status"] == "used"

    def test_does_not_spend_the_token_when_the_operation_raises(self, otp: AgentOTPClient, tokens_seen: List[str]) -> None:
        ids: List[str] = []

        def fail(ctx: Dict[str, Any]) -> None:
            ids.append(ctx["id"])
            tokens_seen.append(ctx["token"])
            raise RuntimeError("smtp down")

        with pytest.raises(RuntimeError, match="smtp down"):
            otp.execute_with_permission("payment.transfer", fail)
        assert otp.get_permission(ids[0])["status"] == "approved"

    def test_does_not_run_the_operation_outside_the_scope(self, otp: AgentOTPClient) -> None:
        ran: List[bool] = []
        with pytest.raises(ScopeViolationError) as caught:
            otp.execute_with_permission(
                "payment.transfer", lambda ctx: ran.append(True), scope={"max_amount": 50}, action_details={"amount": 500}
            )
        assert caught.value.key == "max_amount" and ran == []


def test_https_is_required_except_to_loopback(agent: Dict[str, Any]) -> None:
    key = agent["apiKey"]
    with pytest.raises(ValidationError, match="plain HTTP"):
        AgentOTPClient(key, "http://otp.example.com")
    for url in ("https://otp.example.com", "http://localhost:3000", "http://127.0.0.1:3000", "http://[::1]:3000"):
        assert AgentOTPClient(key, url).base_url == url
    assert AgentOTPClient(key, "http://10.0.0.5:3000", allow_insecure_http=True).base_url == "http://10.0.0.5:3000"
    with pytest.raises(ValidationError, match="credentials"):
        AgentOTPClient(key, "https://user:pw@otp.example.com")
    with pytest.raises(AuthenticationError):
        AgentOTPClient("", "https://otp.example.com")
    assert key not in repr(AgentOTPClient(key, "https://otp.example.com"))
