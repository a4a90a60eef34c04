/**
 * Every error the product can answer with, as a stable code. The HTTP layer maps codes to
 * statuses in one table (src/http/errors.ts); nothing else chooses a status.
 */
export const ERROR_CODES = [
  'VALIDATION_ERROR',
  'INVALID_JSON',
  'UNSUPPORTED_MEDIA_TYPE',
  'PAYLOAD_TOO_LARGE',
  'MISSING_API_KEY',
  'INVALID_API_KEY',
  'EXPIRED_API_KEY',
  'INVALID_TOKEN',
  'FORBIDDEN',
  'SCOPE_VIOLATION',
  'NOT_FOUND',
  'UNKNOWN_AGENT',
  'CONFLICT',
  'AGENT_NAME_TAKEN',
  'AGENT_NAME_AMBIGUOUS',
  'APPROVER_NAME_TAKEN',
  'APPROVER_IDENTITY_TAKEN',
  'ALREADY_DECIDED',
  'IDEMPOTENCY_KEY_REUSED',
  'SCOPE_WIDENING',
  'INVALID_POLICY',
  'TOKEN_USED',
  'TOKEN_EXPIRED',
  'TOKEN_REVOKED',
  'RATE_LIMITED',
  'NOT_READY',
  'INTERNAL_ERROR',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details?: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.details = details;
  }
}

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;
