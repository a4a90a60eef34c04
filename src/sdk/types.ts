/**
 * Public types of `agent-otp/sdk`. Names follow the Agent OTP SDK 0.1 where it had them
 * (`AgentOTPClientConfig`, `RequestPermissionOptions`, `PermissionResult`, `PendingApprovalInfo`,
 * `UseTokenInput`, `TokenVerificationResult`, `TokenUsageResult`).
 */
import type { ScopeViolation } from './errors.js';

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface AgentOTPClientConfig {
  /** The agent's API key (`ak_live_…` / `ak_test_…`). Read it from the environment or a secrets manager. */
  apiKey: string;
  /**
   * The Agent OTP server. Must be HTTPS unless the host is loopback (`localhost`, `127.0.0.0/8`,
   * `[::1]`) or `allowInsecureHttp` is set.
   * @default 'http://127.0.0.1:3000' (where `npm start` listens)
   */
  baseUrl?: string;
  /** Per HTTP attempt, in ms. A long-poll attempt gets its wait added on top. @default 30000 */
  timeout?: number;
  /** Retries of idempotent calls after a network error, a 429 or a 5xx. @default 3 */
  retryAttempts?: number;
  /** The 0.1 documentation's name for `retryAttempts`. */
  retries?: number;
  /** First retry delay in ms; doubled on each retry, with jitter, capped at 30 s. @default 1000 */
  retryDelay?: number;
  /** A fetch implementation (tests, proxies, instrumented clients). @default globalThis.fetch */
  fetch?: FetchLike;
  /**
   * Allow `http://` to a non-loopback host: the API key and tokens would cross the network in
   * clear. Only for private networks you trust (e.g. a sidecar in the same pod).
   * @default false
   */
  allowInsecureHttp?: boolean;
}

export type PermissionStatus =
  | 'pending'
  | 'approved'
  | 'denied'
  | 'expired'
  | 'used'
  | 'revoked'
  | 'cancelled';

export type Scope = Record<string, unknown>;

export interface PendingApprovalInfo {
  id: string;
  /** The 0.1 SDK's name for `id`. */
  permissionId: string;
  /** Where a human can decide: the chat message, else the server's page of the request. */
  approvalUrl?: string;
  /** The request's Server-Sent Events stream (`GET …/:id/events`): real-time status updates. */
  eventsUrl?: string;
  /** When the request stops waiting for a decision (ISO 8601). */
  expiresAt: string;
}

export interface RequestPermissionInput<S extends Scope = Scope> {
  /** What the agent wants to do, e.g. `email.send`, `payment.transfer`. */
  action: string;
  /** The specific target, e.g. `email:client@example.com`. */
  resource?: string;
  /** The narrowest scope that does the job: policies and approvers may only narrow it further. */
  scope?: S;
  /** Who, why, where: shown to approvers and kept in the audit trail. */
  context?: Record<string, unknown>;
  /** Token lifetime in seconds once approved (server bounds 30..3600). @default 300 (server) */
  ttl?: number;
  /**
   * Makes the request safe to repeat: the same key (same agent, within 24 h) answers with the
   * same permission. The SDK sends a random one when none is given, so its own retries are safe.
   */
  idempotencyKey?: string;
  /** Where the server should POST signed status changes (see `verifyWebhook`). */
  webhookUrl?: string;
}

export interface WaitOptions {
  /** How long to wait for a decision, in ms. @default 300000 (5 minutes) */
  timeout?: number;
  /** Stops waiting (and any HTTP attempt in flight) when aborted; rejects with its reason. */
  signal?: AbortSignal;
}

export interface RequestPermissionOptions<S extends Scope = Scope>
  extends RequestPermissionInput<S>,
    WaitOptions {
  /**
   * Wait for a human when the request is pending: resolves once approved, throws
   * PermissionDeniedError, PermissionExpiredError or TimeoutError otherwise. Waiting is a
   * long-poll (`GET …/:id?wait=…`): the answer arrives as soon as the decision is made.
   * @default false
   */
  waitForApproval?: boolean;
  /** Called once, when the request is pending and `waitForApproval` is set, before waiting. */
  onPendingApproval?: (info: PendingApprovalInfo) => void;
  /** @deprecated Ignored: waiting is a long-poll that answers at once, not a fixed-interval poll. */
  pollingInterval?: number;
}

/** Fields of a permission as the server returns them, with `null`s left out. */
export interface PermissionInfo<S extends Scope = Scope> {
  id: string;
  status: PermissionStatus;
  /** The scope in force: what was asked for, narrowed by policy and approvers. */
  scope: S & Scope;
  /** Pending: the approval deadline. Approved: when the token stops working. (ISO 8601) */
  expiresAt: string;
  /** Why it was approved, denied or revoked. */
  reason?: string;
  /** Pending only: where a human can decide (the chat message, else the server's page). */
  approvalUrl?: string;
  /** Pending only: the request's Server-Sent Events stream (real-time status updates). */
  eventsUrl?: string;
  usesRemaining?: number;
  maxUses?: number;
  agentId?: string;
  action?: string;
  resource?: string;
  context?: Record<string, unknown>;
  policy?: { id: string | null; name: string | null };
  decidedBy?: Record<string, unknown>;
  decidedAt?: string;
  createdAt?: string;
  /** The token, when this client generated it (or the server minted one for this read). */
  token?: string;
}

/** An approved permission: it always carries the token this client committed to. */
export interface ApprovedPermission<S extends Scope = Scope> extends PermissionInfo<S> {
  status: 'approved';
  token: string;
}

/** Any other outcome: no token (a pending one arrives with the approval). */
export interface UnapprovedPermission<S extends Scope = Scope> extends PermissionInfo<S> {
  status: Exclude<PermissionStatus, 'approved'>;
  token?: undefined;
}

/**
 * What `requestPermission` resolves to. Checking `status === 'approved'` narrows `token` to a
 * string, as in `if (permission.status === 'approved') await otp.useToken(permission.id, permission.token)`.
 */
export type PermissionResult<S extends Scope = Scope> = ApprovedPermission<S> | UnapprovedPermission<S>;

export interface UseTokenInput {
  /** What is actually being done: checked against the granted scope (`max_*`, `allowed_*`, …). */
  actionDetails?: Record<string, unknown>;
}

export type VerifyTokenInput = UseTokenInput;

export interface TokenVerificationResult {
  valid: boolean;
  scope: Scope;
  usesRemaining: number;
  expiresAt: string;
  /** Why not valid: `INVALID_TOKEN`, `TOKEN_USED`, `TOKEN_EXPIRED`, `TOKEN_REVOKED`, `SCOPE_VIOLATION`, … */
  reason?: string;
  violations?: ScopeViolation[];
}

export interface TokenUsageResult {
  success: boolean;
  usesRemaining: number;
  /** `approved` while uses remain, `used` after the last one. */
  status?: PermissionStatus;
}

export interface RevokeOptions {
  reason?: string;
}

export interface ExecuteContext<S extends Scope = Scope> {
  id: string;
  token: string;
  scope: S & Scope;
}

export interface ExecuteWithPermissionOptions<S extends Scope = Scope> extends RequestPermissionOptions<S> {
  /** Checked with `verifyToken` before the operation runs, and sent with `useToken` after it. */
  actionDetails?: Record<string, unknown>;
}

export interface MetricsOptions {
  /** e.g. `1h`, `24h`, `7d`. */
  period?: string;
}

export interface AgentMetrics {
  period?: string;
  /** Denied / decided requests in the period: a sudden rise may mean an attack. */
  denialRate: number;
  /** Approved tokens that expired unused / approved tokens. */
  unusedTokenRate: number;
  [key: string]: unknown;
}
