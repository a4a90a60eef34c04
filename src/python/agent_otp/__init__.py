"""Agent OTP for Python: one-time, scoped, short-lived permissions for AI agents.

    from agent_otp import AgentOTPClient

    otp = AgentOTPClient(os.environ["AGENT_OTP_API_KEY"], base_url="https://otp.example.com")
    permission = otp.request_permission(
        "email.send",
        scope={"max_emails": 1, "allowed_recipients": ["client@example.com"]},
        context={"reason": "Monthly invoice"},
        wait_for_approval=True,
    )
    send_email()
    otp.use_token(permission["id"], permission["token"], action_details={"recipient": "client@example.com"})

No dependencies: ``http.client`` for the sync client, asyncio streams for the async one.
"""

from ._async_client import AsyncAgentOTPClient
from ._client import AgentOTPClient
from ._core import DEFAULT_BASE_URL
from ._token import TOKEN_PATTERN, TOKEN_PREFIX, generate_token, hash_token
from ._types import (
    ExecuteContext,
    PendingApprovalInfo,
    PermissionInfo,
    TokenUsageResult,
    TokenVerificationResult,
)
from ._version import SDK_VERSION
from .decorator import requires_permission
from .errors import (
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
    ServerError,
    TimeoutError,
    TokenConsumedError,
    TokenExpiredError,
    TokenRevokedError,
    TokenUsedError,
    ValidationError,
    WebhookVerificationError,
    redact_secrets,
)
from .webhook import verify_webhook

__version__ = SDK_VERSION

__all__ = [
    "AgentOTPClient",
    "AgentOTPError",
    "AsyncAgentOTPClient",
    "AuthenticationError",
    "ConflictError",
    "DEFAULT_BASE_URL",
    "ExecuteContext",
    "ForbiddenError",
    "InvalidTokenError",
    "NetworkError",
    "NotFoundError",
    "PendingApprovalInfo",
    "PermissionDeniedError",
    "PermissionExpiredError",
    "PermissionInfo",
    "RateLimitError",
    "SDK_VERSION",
    "ScopeViolationError",
    "ServerError",
    "TOKEN_PATTERN",
    "TOKEN_PREFIX",
    "TimeoutError",
    "TokenConsumedError",
    "TokenExpiredError",
    "TokenRevokedError",
    "TokenUsageResult",
    "TokenUsedError",
    "TokenVerificationResult",
    "ValidationError",
    "WebhookVerificationError",
    "generate_token",
    "hash_token",
    "redact_secrets",
    "requires_permission",
    "verify_webhook",
]
