"""Shapes of what the clients return: dicts with the server's (camelCase) field names, nulls left
out, exactly as the TypeScript SDK returns them."""

from __future__ import annotations

from typing import Any, Dict, List, TypedDict


Scope = Dict[str, Any]


class PermissionInfo(TypedDict, total=False):
    id: str
    #: pending, approved, denied, expired, used, revoked or cancelled
    status: str
    #: The scope in force: what was asked for, narrowed by policy and approvers.
    scope: Scope
    #: Pending: the approval deadline. Approved: when the token stops working. (ISO 8601)
    expiresAt: str
    reason: str
    approvalUrl: str
    usesRemaining: int
    maxUses: int
    agentId: str
    action: str
    resource: str
    context: Dict[str, Any]
    decidedBy: Dict[str, Any]
    decidedAt: str
    createdAt: str
    #: The token, when approved and this client generated it.
    token: str


class PendingApprovalInfo(TypedDict, total=False):
    id: str
    permissionId: str
    expiresAt: str
    approvalUrl: str


class ExecuteContext(TypedDict):
    id: str
    token: str
    scope: Scope


class TokenVerificationResult(TypedDict, total=False):
    valid: bool
    scope: Scope
    usesRemaining: int
    expiresAt: str
    #: Why not valid: INVALID_TOKEN, TOKEN_USED, TOKEN_EXPIRED, TOKEN_REVOKED, SCOPE_VIOLATION…
    reason: str
    violations: List[Dict[str, Any]]


class TokenUsageResult(TypedDict, total=False):
    success: bool
    usesRemaining: int
    status: str
