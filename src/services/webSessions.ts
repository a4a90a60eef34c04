import type { FastifyRequest } from 'fastify';

/** The session cookie: HttpOnly, SameSite=Strict, Secure outside loopback, short-lived. */
export const SESSION_COOKIE = 'aotp_session';
/** The header a page's POST carries its CSRF token in (web.js sets it). */
export const CSRF_HEADER = 'x-csrf-token';

/** An approver signed in on the web with a passkey. */
export interface WebSession {
  approverId: string;
  approverName: string;
  /** The passkey that signed this session in (base64url credential id): recorded with each vote. */
  credentialId: string;
  /** When the passkey assertion behind this session was made (step-up needs a fresh one). */
  verifiedAt: Date;
  /** Sent back by the page on every POST (X-CSRF-Token); bound to this session. */
  csrfToken: string;
  expiresAt: Date;
}

/**
 * The seam between the pages and sign-in: every page asks it who is signed in. A session ends
 * at its expiry, at sign-out, and as soon as its approver is disabled or deleted.
 */
export interface WebSessions {
  /** The request's signed-in approver, or null (no cookie, unknown, expired, approver disabled). */
  current(request: FastifyRequest): Promise<WebSession | null>;
  /**
   * For a state-changing request: the session, with its CSRF token (header) and the request's
   * Origin checked; otherwise why not — 'signed_out' or 'csrf'. A 'csrf' refusal is already
   * audited (`web.csrf_refused`, by WebAuthService): the caller only refuses.
   */
  forPost(request: FastifyRequest): Promise<{ session: WebSession } | { refused: 'signed_out' | 'csrf' }>;
}

/** One cookie's value from the Cookie header, or null. */
export function readCookie(request: FastifyRequest, name: string): string | null {
  const header = request.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return null;
      }
    }
  }
  return null;
}
