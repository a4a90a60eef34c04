/**
 * `@agent-otp/sdk` (re-exported by the server package as `agent-otp/sdk`): the client an AI
 * agent uses to ask Agent OTP for one-time, scoped permissions. It depends on nothing but
 * `fetch` and Web Crypto, so it runs in Node 20+, Deno, Bun, browsers and edge runtimes.
 *
 * @example
 * ```ts
 * import { AgentOTPClient } from '@agent-otp/sdk';
 *
 * const otp = new AgentOTPClient({ apiKey: process.env.AGENT_OTP_API_KEY!, baseUrl: 'https://otp.example.com' });
 * const permission = await otp.requestPermission({
 *   action: 'email.send',
 *   scope: { max_emails: 1, allowed_recipients: ['client@example.com'] },
 *   context: { reason: 'Monthly invoice' },
 *   waitForApproval: true,
 * });
 * if (permission.status === 'approved') {
 *   await sendEmail();
 *   await otp.useToken(permission.id, permission.token, { actionDetails: { recipient: 'client@example.com' } });
 * }
 * ```
 *
 * @packageDocumentation
 */
export { AgentOTPClient, DEFAULT_BASE_URL } from './client.js';
export {
  AgentOTPError,
  type AgentOTPErrorInit,
  AuthenticationError,
  ConflictError,
  ForbiddenError,
  InvalidTokenError,
  isAgentOTPError,
  NetworkError,
  NotFoundError,
  PermissionDeniedError,
  PermissionExpiredError,
  RateLimitError,
  type ScopeViolation,
  ScopeViolationError,
  ServerError,
  TimeoutError,
  TokenConsumedError,
  TokenExpiredError,
  TokenRevokedError,
  TokenUsedError,
  ValidationError,
  WebhookVerificationError,
} from './errors.js';
export { generateToken, hashToken, TOKEN_PATTERN, TOKEN_PREFIX } from './token.js';
export type {
  AgentMetrics,
  AgentOTPClientConfig,
  ApprovedPermission,
  ExecuteContext,
  ExecuteWithPermissionOptions,
  FetchLike,
  MetricsOptions,
  PendingApprovalInfo,
  PermissionInfo,
  PermissionResult,
  PermissionStatus,
  RequestPermissionInput,
  RequestPermissionOptions,
  RevokeOptions,
  Scope,
  TokenUsageResult,
  TokenVerificationResult,
  UnapprovedPermission,
  UseTokenInput,
  VerifyTokenInput,
  WaitOptions,
} from './types.js';
export { SDK_VERSION } from './version.js';
export {
  type AlertWebhookEvent,
  type VerifyWebhookOptions,
  verifyWebhook,
  type WebhookEvent,
  type WebhookHeaders,
} from './webhook.js';
