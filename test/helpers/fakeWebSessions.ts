import type { FastifyRequest } from 'fastify';
import type { AuditService } from '../../src/services/audit.js';
import {
  CSRF_HEADER,
  readCookie,
  SESSION_COOKIE,
  type WebSession,
  type WebSessions,
} from '../../src/services/webSessions.js';
import { findApprover } from '../../src/store/approverRepository.js';
import type { Queryable } from '../../src/store/db.js';

/**
 * WebSessions as the pages see it, without passkeys: a test signs an approver in by minting a
 * cookie value. It keeps the interface's promises the pages rely on — a session ends as soon as
 * its approver is disabled or deleted, and a POST needs the session's CSRF token in the header,
 * a refusal of which the store audits itself (`web.csrf_refused`) —
 * so route tests exercise the pages' behaviour, not sign-in (that is WebAuth's, tested there).
 */
export class FakeWebSessions implements WebSessions {
  private readonly sessions = new Map<string, WebSession>();
  private next = 0;

  constructor(
    private readonly db: Queryable,
    private readonly audit: AuditService,
  ) {}

  /** Signs the approver in; returns the Cookie header and the CSRF token a page would carry. */
  signIn(
    approverId: string,
    approverName: string,
    credentialId = `cred-${approverName}`,
    verifiedAt = new Date(),
  ) {
    this.next += 1;
    const value = `session-${this.next}`;
    const csrfToken = `csrf-${this.next}`;
    this.sessions.set(value, {
      approverId,
      approverName,
      credentialId,
      verifiedAt,
      csrfToken,
      expiresAt: new Date(Date.now() + 3600_000),
    });
    return { cookie: `${SESSION_COOKIE}=${value}`, csrfToken, credentialId };
  }

  async current(request: FastifyRequest): Promise<WebSession | null> {
    const value = readCookie(request, SESSION_COOKIE);
    const session = value === null ? undefined : this.sessions.get(value);
    if (!session) return null;
    const approver = await findApprover(this.db, session.approverId);
    return approver?.status === 'active' ? session : null;
  }

  async forPost(request: FastifyRequest) {
    const session = await this.current(request);
    if (!session) return { refused: 'signed_out' as const };
    if (request.headers[CSRF_HEADER] !== session.csrfToken) {
      // As WebAuthService does: the session store audits a CSRF refusal, the caller only refuses.
      await this.audit.record({
        type: 'web.csrf_refused',
        actor: {
          type: 'approver',
          platform: 'web',
          userId: session.approverId,
          userName: session.approverName,
        },
        details: { approverId: session.approverId, reason: 'missing or wrong CSRF token' },
      });
      return { refused: 'csrf' as const };
    }
    return { session };
  }
}
