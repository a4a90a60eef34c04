import type { Permission } from './permission.js';

/**
 * Clients of the original SDK 0.1 (`@orrisai/agent-otp-sdk`) know only the statuses pending,
 * approved, denied, expired and used: they stop waiting on approved, denied or expired and would
 * poll a `revoked` or `cancelled` request until their own timeout. A request that ended before
 * any decision is shown to them under the status they stop on: revoked while pending → `denied`
 * (with the reason), cancelled → `expired`. Our SDKs identify themselves (X-Agent-OTP-SDK) and
 * see the real status. A token revoked after approval stays `revoked`: such a client is no
 * longer waiting, and its use answers TOKEN_REVOKED.
 */
export const REVOKED_BEFORE_DECISION = 'The request was revoked before a decision';

export function legacyPermissionView(p: Permission): Permission {
  if (p.status === 'cancelled') return { ...p, status: 'expired' };
  // decidedAt is set only by an approval or a denial: null means it was revoked while pending.
  if (p.status === 'revoked' && p.decidedAt === null) {
    return { ...p, status: 'denied', decisionReason: p.decisionReason ?? REVOKED_BEFORE_DECISION };
  }
  return p;
}
