import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ZodError } from 'zod';
import { AppError, type ErrorCode } from '../core/errors.js';
import { rateLimitHeaders } from '../services/rateLimits.js';

/** The one code → HTTP status table (DESIGN §11). */
export const STATUS_BY_CODE: Record<ErrorCode, number> = {
  VALIDATION_ERROR: 400,
  INVALID_JSON: 400,
  UNSUPPORTED_MEDIA_TYPE: 415,
  PAYLOAD_TOO_LARGE: 413,
  MISSING_API_KEY: 401,
  INVALID_API_KEY: 401,
  EXPIRED_API_KEY: 401,
  // 403, not 401: a 401 means the API key (clients take it for a bad key, SDK 0.1 among them).
  INVALID_TOKEN: 403,
  FORBIDDEN: 403,
  SCOPE_VIOLATION: 403,
  NOT_FOUND: 404,
  UNKNOWN_AGENT: 404,
  CONFLICT: 409,
  AGENT_NAME_TAKEN: 409,
  AGENT_NAME_AMBIGUOUS: 409,
  APPROVER_NAME_TAKEN: 409,
  APPROVER_IDENTITY_TAKEN: 409,
  ALREADY_DECIDED: 409,
  IDEMPOTENCY_KEY_REUSED: 409,
  SCOPE_WIDENING: 422,
  INVALID_POLICY: 422,
  TOKEN_USED: 410,
  TOKEN_EXPIRED: 410,
  TOKEN_REVOKED: 410,
  RATE_LIMITED: 429,
  NOT_READY: 503,
  INTERNAL_ERROR: 500,
};

export interface ErrorBody {
  success: false;
  error: { code: ErrorCode; message: string; details?: unknown; requestId: string };
}

export function errorBody(code: ErrorCode, message: string, requestId: string, details?: unknown): ErrorBody {
  return {
    success: false,
    error: { code, message, ...(details === undefined ? {} : { details }), requestId },
  };
}

export function zodToAppError(err: ZodError): AppError {
  const issues = err.issues.map((i) => ({ path: i.path.join('.'), message: i.message }));
  const first = issues[0];
  const where = first?.path ? `${first.path}: ` : '';
  return new AppError('VALIDATION_ERROR', `Invalid request: ${where}${first?.message ?? 'invalid'}`, {
    issues,
  });
}

/** Framework errors (body parsing, limits) become stable codes; nothing internal leaks out. */
function fromFrameworkError(err: FastifyError): AppError | null {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('PAYLOAD_TOO_LARGE', 'Request body is larger than the 1 MiB limit');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('UNSUPPORTED_MEDIA_TYPE', 'Send the body as application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError('INVALID_JSON', 'The body is empty but Content-Type is application/json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError('VALIDATION_ERROR', 'Content-Length does not match the body');
    // Routing errors, answered through the frameworkErrors option of buildServer.
    case 'FST_ERR_BAD_URL':
      return new AppError('VALIDATION_ERROR', 'The URL path is not valid percent-encoded UTF-8');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      return new AppError('VALIDATION_ERROR', 'A path parameter is longer than 100 characters');
    default:
      break;
  }
  if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new AppError('INVALID_JSON', 'The body is not valid JSON');
  }
  if (err.statusCode === 400 && /proto|constructor/i.test(err.message)) {
    return new AppError('INVALID_JSON', 'The body contains forbidden keys (__proto__ or constructor)');
  }
  if (err.statusCode === 404) return new AppError('NOT_FOUND', 'Not found');
  if (err.statusCode === 405) return new AppError('NOT_FOUND', 'Method not allowed here');
  return null;
}

export function toAppError(err: unknown): AppError | null {
  if (err instanceof AppError) return err;
  if (err instanceof ZodError) return zodToAppError(err);
  if (err && typeof err === 'object' && 'code' in err) return fromFrameworkError(err as FastifyError);
  return null;
}

/** Uploads up to this size are read to the end before a 413 is answered (see drainBody). */
const DRAIN_MAX_BYTES = 8 * 1024 * 1024;
const DRAIN_TIMEOUT_MS = 5000;

/**
 * Reads and discards the rest of an oversized upload. Closing a connection with unread data
 * makes the kernel send a reset, and many clients then lose the 413 they were sent and report a
 * broken pipe instead. Bounded in size and time, so it cannot be used to hold the server.
 */
function drainBody(request: FastifyRequest): Promise<void> {
  const raw = request.raw;
  const declared = Number(request.headers['content-length']);
  if (raw.readableEnded || !(declared <= DRAIN_MAX_BYTES)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(done, DRAIN_TIMEOUT_MS);
    raw.once('end', done);
    raw.once('error', done);
    raw.once('close', done);
    raw.resume();
  });
}

export async function sendError(
  request: FastifyRequest,
  reply: FastifyReply,
  err: unknown,
): Promise<FastifyReply> {
  const appError = toAppError(err);
  if (appError?.code === 'PAYLOAD_TOO_LARGE') await drainBody(request);
  if (!appError) {
    request.log.error({ err }, 'unhandled error');
    return reply.status(500).send(errorBody('INTERNAL_ERROR', 'Internal server error', request.id));
  }
  const status = STATUS_BY_CODE[appError.code];
  if (status >= 500) request.log.error({ err }, appError.message);
  const details = appError.details as { retryAfter?: number; limit?: number; reset?: number } | undefined;
  if (appError.code === 'RATE_LIMITED' && details?.retryAfter !== undefined) {
    reply.header('retry-after', String(details.retryAfter));
  }
  // A 429 carries the same X-RateLimit-* headers as the answers before it: a client reading
  // them to pace itself must not lose them exactly when it has run out.
  if (appError.code === 'RATE_LIMITED' && details?.limit !== undefined && details.reset !== undefined) {
    reply.headers(rateLimitHeaders({ limit: details.limit, remaining: 0, reset: details.reset }));
  }
  // 5xx bodies stay generic: whatever went wrong inside is in the log, not the response.
  const message =
    status >= 500 && appError.code === 'INTERNAL_ERROR' ? 'Internal server error' : appError.message;
  return reply
    .status(status)
    .send(errorBody(appError.code, message, request.id, status >= 500 ? undefined : appError.details));
}
