/**
 * Typed errors of the SDK. Every error is an `AgentOTPError` carrying the server's stable `code`,
 * the HTTP `status`, the `requestId` to quote to an operator and, where one is known, the
 * `permissionId` — the fields the security guide tells callers to log instead of the error
 * itself. Messages never contain tokens or keys: text that comes from elsewhere (server
 * messages, fetch failures) goes through `redactSecrets` first.
 */

export interface AgentOTPErrorInit {
  code?: string;
  status?: number;
  requestId?: string;
  permissionId?: string;
  details?: unknown;
  cause?: unknown;
}

const SECRET_PATTERNS: RegExp[] = [
  /otp_v1_[A-Za-z0-9_-]+/g,
  /\bak_(?:live|test)_[A-Za-z0-9_-]+/g,
  /\buk_[A-Za-z0-9_-]{8,}/g,
  /\bwhsec_[A-Za-z0-9+/=_-]+/g,
  /\bBearer\s+\S+/gi,
];

/** Replaces anything shaped like a token, API key, operator key or webhook secret. */
export function redactSecrets(text: string): string {
  let out = text;
  for (const pattern of SECRET_PATTERNS) out = out.replace(pattern, '[redacted]');
  return out;
}

export class AgentOTPError extends Error {
  /** The server's error code (`INVALID_API_KEY`, `TOKEN_USED`, …) or one of the SDK's own. */
  readonly code: string;
  /** The HTTP status of the answer that caused this error, when there was one. */
  readonly status?: number;
  /** The server's request id (also in its logs): quote it when reporting a problem. */
  readonly requestId?: string;
  /** The permission the failed call was about, when known. */
  readonly permissionId?: string;
  readonly details?: unknown;

  /**
   * `new AgentOTPError(message, init)`; the 0.1 SDK's `(message, code, details)` form is
   * accepted too, so code written against it keeps compiling.
   */
  constructor(message: string, init: AgentOTPErrorInit | string = {}, details?: unknown) {
    const opts: AgentOTPErrorInit = typeof init === 'string' ? { code: init, details } : init;
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    // Down-levelled builds (ES5 targets, some bundlers) lose the subclass prototype of Error
    // subclasses; restoring it keeps `instanceof` working wherever this file is compiled.
    Object.setPrototypeOf(this, new.target.prototype);
    this.name = 'AgentOTPError';
    this.code = opts.code ?? 'AGENT_OTP_ERROR';
    if (opts.status !== undefined) this.status = opts.status;
    if (opts.requestId !== undefined) this.requestId = opts.requestId;
    if (opts.permissionId !== undefined) this.permissionId = opts.permissionId;
    if (opts.details !== undefined) this.details = opts.details;
  }

  /** What structured loggers print: the identifying fields, nothing else. */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      status: this.status,
      requestId: this.requestId,
      permissionId: this.permissionId,
    };
  }
}

/** 401 with MISSING_API_KEY, INVALID_API_KEY or EXPIRED_API_KEY: the key is wrong, revoked or absent. */
export class AuthenticationError extends AgentOTPError {
  constructor(message = 'Authentication failed', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'AUTHENTICATION_ERROR', ...init });
    this.name = 'AuthenticationError';
  }
}

/** 403 FORBIDDEN: authenticated, but this key may not do that (e.g. an agent key on an operator route). */
export class ForbiddenError extends AgentOTPError {
  constructor(message = 'Forbidden', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'FORBIDDEN', ...init });
    this.name = 'ForbiddenError';
  }
}

/** 404 NOT_FOUND: no such permission for this agent (another agent's permission looks the same). */
export class NotFoundError extends AgentOTPError {
  constructor(message = 'Not found', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'NOT_FOUND', ...init });
    this.name = 'NotFoundError';
  }
}

/**
 * 409 CONFLICT / ALREADY_DECIDED: the permission is not in a state that allows the call;
 * IDEMPOTENCY_KEY_REUSED: the idempotencyKey was first used with a different request.
 */
export class ConflictError extends AgentOTPError {
  constructor(message = 'Conflict', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'CONFLICT', ...init });
    this.name = 'ConflictError';
  }
}

/**
 * The request was refused as malformed (400 VALIDATION_ERROR / INVALID_JSON, 413, 415, 422
 * SCOPE_WIDENING / INVALID_POLICY), or the client was configured wrongly (thrown synchronously
 * by the constructor).
 */
export class ValidationError extends AgentOTPError {
  constructor(message = 'Validation failed', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'VALIDATION_ERROR', ...init });
    this.name = 'ValidationError';
  }
}

/** 429 RATE_LIMITED. `retryAfter` is in seconds, from the Retry-After header. */
export class RateLimitError extends AgentOTPError {
  readonly retryAfter?: number;

  constructor(message = 'Rate limit exceeded', init: AgentOTPErrorInit & { retryAfter?: number } = {}) {
    const { retryAfter, ...rest } = init;
    super(message, { code: 'RATE_LIMITED', ...rest });
    this.name = 'RateLimitError';
    if (retryAfter !== undefined) this.retryAfter = retryAfter;
  }
}

/** The server could not be reached, or the connection failed before an answer arrived. */
export class NetworkError extends AgentOTPError {
  constructor(message = 'Network request failed', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'NETWORK_ERROR', ...init });
    this.name = 'NetworkError';
  }
}

/**
 * A wait ran out: no decision within `requestPermission`'s `timeout` (then `permissionId` says
 * which request is still pending), or one HTTP attempt took longer than the client's `timeout`.
 */
export class TimeoutError extends AgentOTPError {
  constructor(message = 'Timed out', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'TIMEOUT', ...init });
    this.name = 'TimeoutError';
  }
}

/** A 5xx answer (the body is generic by design; `requestId` finds the details in the server log). */
export class ServerError extends AgentOTPError {
  constructor(message = 'Server error', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'SERVER_ERROR', ...init });
    this.name = 'ServerError';
  }
}

/** The request was denied (by policy or by a human) while the caller waited for a decision. */
export class PermissionDeniedError extends AgentOTPError {
  readonly reason?: string;

  constructor(message = 'Permission denied', init: AgentOTPErrorInit & { reason?: string } = {}) {
    const { reason, ...rest } = init;
    super(message, { code: 'PERMISSION_DENIED', ...rest });
    this.name = 'PermissionDeniedError';
    if (reason !== undefined) this.reason = reason;
  }
}

/** The request ended without a decision while the caller waited: it expired or was cancelled. */
export class PermissionExpiredError extends AgentOTPError {
  constructor(message = 'Permission request expired', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'PERMISSION_EXPIRED', ...init });
    this.name = 'PermissionExpiredError';
  }
}

/** 403 INVALID_TOKEN (401 before server 0.2): the token does not belong to this permission. */
export class InvalidTokenError extends AgentOTPError {
  constructor(message = 'Invalid token', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'INVALID_TOKEN', ...init });
    this.name = 'InvalidTokenError';
  }
}

/** 410 TOKEN_EXPIRED: the token's TTL has passed. */
export class TokenExpiredError extends AgentOTPError {
  constructor(message = 'Token has expired', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'TOKEN_EXPIRED', ...init });
    this.name = 'TokenExpiredError';
  }
}

/** 410 TOKEN_REVOKED: the permission was revoked. */
export class TokenRevokedError extends AgentOTPError {
  constructor(message = 'Token has been revoked', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'TOKEN_REVOKED', ...init });
    this.name = 'TokenRevokedError';
  }
}

/** 410 TOKEN_USED: the token has no uses left. */
export class TokenUsedError extends AgentOTPError {
  constructor(message = 'Token has already been used', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'TOKEN_USED', ...init });
    this.name = 'TokenUsedError';
  }
}

/** The 0.1 SDK's changelog name for `TokenUsedError`. */
export const TokenConsumedError = TokenUsedError;
export type TokenConsumedError = TokenUsedError;

export interface ScopeViolation {
  key: string;
  field?: string;
  message: string;
  limit?: unknown;
}

/**
 * 403 SCOPE_VIOLATION: the actionDetails break the granted scope. Nothing was consumed.
 * `key` is the first scope key broken (`max_amount`, `allowed_recipients`, …).
 */
export class ScopeViolationError extends AgentOTPError {
  readonly violations: ScopeViolation[];
  readonly key?: string;

  constructor(
    message = 'Scope violation',
    init: AgentOTPErrorInit & { violations?: ScopeViolation[]; key?: string } = {},
  ) {
    const { violations, key, ...rest } = init;
    super(message, { code: 'SCOPE_VIOLATION', ...rest });
    this.name = 'ScopeViolationError';
    this.violations = violations ?? [];
    const first = key ?? this.violations[0]?.key;
    if (first !== undefined) this.key = first;
  }
}

/** `verifyWebhook` refused a delivery: bad or missing signature, stale timestamp, unparsable body. */
export class WebhookVerificationError extends AgentOTPError {
  constructor(message = 'Webhook verification failed', init: AgentOTPErrorInit = {}) {
    super(message, { code: 'WEBHOOK_INVALID', ...init });
    this.name = 'WebhookVerificationError';
  }
}

/** Narrows an unknown `catch` value, for the guide's `logger.error({code, permissionId})` pattern. */
export function isAgentOTPError(error: unknown): error is AgentOTPError {
  return error instanceof AgentOTPError;
}

interface ErrorBody {
  code?: unknown;
  message?: unknown;
  details?: unknown;
  requestId?: unknown;
}

const VALIDATION_CODES = new Set([
  'VALIDATION_ERROR',
  'INVALID_JSON',
  'UNSUPPORTED_MEDIA_TYPE',
  'PAYLOAD_TOO_LARGE',
  'SCOPE_WIDENING',
  'INVALID_POLICY',
]);
const AUTH_CODES = new Set(['MISSING_API_KEY', 'INVALID_API_KEY', 'EXPIRED_API_KEY']);

/**
 * The typed error for a server error code (the codes shared by HTTP answers and by a failed
 * verify's `reason`), or null when the code alone does not decide the class.
 */
export function errorForCode(
  code: string,
  message: string,
  init: AgentOTPErrorInit,
  extra: { details?: unknown; retryAfter?: number } = {},
): AgentOTPError | null {
  switch (code) {
    case 'INVALID_TOKEN':
      return new InvalidTokenError(message, init);
    case 'TOKEN_USED':
      return new TokenUsedError(message, init);
    case 'TOKEN_EXPIRED':
      return new TokenExpiredError(message, init);
    case 'TOKEN_REVOKED':
      return new TokenRevokedError(message, init);
    case 'SCOPE_VIOLATION': {
      const details = (extra.details ?? {}) as { violations?: unknown; key?: unknown };
      const violations = Array.isArray(details.violations) ? (details.violations as ScopeViolation[]) : [];
      return new ScopeViolationError(message, {
        ...init,
        violations,
        ...(typeof details.key === 'string' ? { key: details.key } : {}),
      });
    }
    case 'FORBIDDEN':
      return new ForbiddenError(message, init);
    case 'NOT_FOUND':
      return new NotFoundError(message, init);
    case 'CONFLICT':
    case 'ALREADY_DECIDED':
    case 'IDEMPOTENCY_KEY_REUSED':
      return new ConflictError(message, init);
    case 'RATE_LIMITED':
      return rateLimited(message, init, extra.retryAfter, extra.details);
    default:
      return null;
  }
}

/**
 * Turns an error answer into its typed error: by the server's `error.code` first (a 403 can be
 * a wrong token, a scope violation or a forbidden route; servers before 0.2 answered a wrong
 * token with 401), by status second (proxies and older servers answer without our envelope).
 */
export function errorFromResponse(
  status: number,
  body: { error?: ErrorBody } | undefined,
  extra: { requestId?: string; permissionId?: string; retryAfter?: number },
): AgentOTPError {
  const err = body?.error;
  const serverCode = typeof err?.code === 'string' ? err.code : undefined;
  const message =
    typeof err?.message === 'string' && err.message ? redactSecrets(err.message) : `HTTP ${status}`;
  const requestId = typeof err?.requestId === 'string' ? err.requestId : extra.requestId;
  const init: AgentOTPErrorInit = {
    status,
    ...(serverCode ? { code: serverCode } : {}),
    ...(requestId ? { requestId } : {}),
    ...(extra.permissionId ? { permissionId: extra.permissionId } : {}),
    ...(err?.details !== undefined ? { details: err.details } : {}),
  };

  const byCode = serverCode
    ? errorForCode(serverCode, message, init, { details: err?.details, retryAfter: extra.retryAfter })
    : null;
  if (byCode) return byCode;
  if (serverCode && AUTH_CODES.has(serverCode)) return new AuthenticationError(message, init);
  if (serverCode && VALIDATION_CODES.has(serverCode)) return new ValidationError(message, init);

  if (status >= 500) return new ServerError(serverCode ? message : `Server error (HTTP ${status})`, init);
  switch (status) {
    case 400:
    case 413:
    case 415:
    case 422:
      return new ValidationError(message, init);
    case 401:
      return new AuthenticationError(message, init);
    case 403:
      return new ForbiddenError(message, init);
    case 404:
      return new NotFoundError(message, init);
    case 409:
      return new ConflictError(message, init);
    case 429:
      return rateLimited(message, init, extra.retryAfter, err?.details);
    default:
      return new AgentOTPError(message, { code: 'API_ERROR', ...init });
  }
}

function rateLimited(
  message: string,
  init: AgentOTPErrorInit,
  retryAfter: number | undefined,
  details: unknown,
): RateLimitError {
  const fromBody = (details as { retryAfter?: unknown } | undefined)?.retryAfter;
  const seconds = retryAfter ?? (typeof fromBody === 'number' ? fromBody : undefined);
  return new RateLimitError(message, { ...init, ...(seconds !== undefined ? { retryAfter: seconds } : {}) });
}
