import { createHash } from 'node:crypto';
import { type Actor, canonicalJson } from './audit/index.js';
import { AppError } from './errors.js';
import type { ApprovalSettings } from './policy/types.js';

/**
 * The permission state machine. Every transition is applied as a compare-and-swap on the stored
 * status, so two deciders, two users of a token or a decider and the expiry job cannot both win.
 *
 *   pending ──approve──▶ approved ──use (last)──▶ used
 *      │  └──deny──▶ denied        ├──revoke──▶ revoked
 *      ├──cancel──▶ cancelled      └──ttl──▶ expired
 *      └──timeout──▶ expired
 */
export const PERMISSION_STATUSES = [
  'pending',
  'approved',
  'denied',
  'expired',
  'used',
  'revoked',
  'cancelled',
] as const;
export type PermissionStatus = (typeof PERMISSION_STATUSES)[number];

export const TTL_DEFAULT_SECONDS = 300;
export const TTL_MIN_SECONDS = 30;
export const TTL_MAX_SECONDS = 3600;
/** The same idempotencyKey from the same agent returns the same permission for this long. */
export const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;

export interface ApprovalRecord {
  /**
   * The approver's key when the vote was recorded (`slack:U1`, `person:alice`; older records
   * `slack:T1:U1`). Informational: votes are compared by approverKey(actor) under the current
   * links, so records written under another rule still name the same person.
   */
  key: string;
  actor: Actor;
  at: string;
}

export interface Permission {
  id: string;
  agentId: string;
  action: string;
  resource: string | null;
  requestedScope: Record<string, unknown>;
  scope: Record<string, unknown>;
  context: Record<string, unknown>;
  status: PermissionStatus;
  ttlSeconds: number;
  policyId: string | null;
  policyName: string | null;
  decisionReason: string | null;
  decidedBy: Actor | null;
  decidedAt: Date | null;
  expiresAt: Date;
  tokenHash: string | null;
  clientToken: boolean;
  maxUses: number;
  usesRemaining: number;
  totals: Record<string, number>;
  /** The deciding policy's approval settings (who is asked, quorum, reminders), if any. */
  approval: ApprovalSettings | null;
  approvals: ApprovalRecord[];
  webhookUrl: string | null;
  /** Link to the chat message where humans decide; null until one was posted. */
  approvalUrl: string | null;
  idempotencyKey: string | null;
  /** Fingerprint of the request (requestFingerprint) when it carried an idempotencyKey. */
  requestHash: string | null;
  createdAt: Date;
  updatedAt: Date;
  lastUsedAt: Date | null;
}

/**
 * The permission as a reader sees it now: a pending request past its approval deadline, or an
 * approved token past its TTL, is `expired` the moment the deadline passes. The expiry job
 * records the change (audit row, webhook) later; no read waits for it.
 */
export function effectivePermission(p: Permission, now: Date): Permission {
  if ((p.status === 'pending' || p.status === 'approved') && p.expiresAt <= now) {
    return { ...p, status: 'expired' };
  }
  return p;
}

/** Milliseconds until time alone changes what a reader sees (a deadline), or null if never. */
export function msUntilDeadline(p: Permission, now: Date): number | null {
  if (p.status !== 'pending' && p.status !== 'approved') return null;
  return Math.max(0, p.expiresAt.getTime() - now.getTime());
}

/** Why an approved token cannot be spent right now, as the error the agent gets. */
export function tokenStateError(p: Permission, now: Date): AppError | null {
  switch (p.status) {
    case 'approved':
      if (p.expiresAt <= now) return new AppError('TOKEN_EXPIRED', 'The token has expired');
      if (p.usesRemaining <= 0) return new AppError('TOKEN_USED', 'The token has no uses left');
      return null;
    case 'used':
      return new AppError('TOKEN_USED', 'The token has already been used');
    case 'expired':
      return new AppError('TOKEN_EXPIRED', 'The token has expired');
    case 'revoked':
      return new AppError('TOKEN_REVOKED', 'The token has been revoked');
    case 'pending':
      return new AppError('FORBIDDEN', 'The permission is still waiting for approval');
    case 'denied':
      return new AppError('FORBIDDEN', 'The permission was denied');
    case 'cancelled':
      return new AppError('FORBIDDEN', 'The permission was cancelled');
  }
}
/** What an agent asked for: the fields that make two requests "the same request". */
export interface RequestedFields {
  action: string;
  resource?: string | null;
  scope?: Record<string, unknown>;
  context?: Record<string, unknown>;
  ttl?: number;
  webhookUrl?: string | null;
}

/**
 * SHA-256 of the request's canonical JSON (keys sorted, absent = its default), so a retry of the
 * same request matches however its client orders keys, and anything else does not. The token
 * commitment is compared separately (it has its own error: the caller's token would not work).
 * `withTtl: false` is for rows stored before fingerprints, whose requested ttl was not kept.
 */
export function requestFingerprint(r: RequestedFields, withTtl = true): string {
  const canonical = canonicalJson([
    r.action,
    r.resource ?? null,
    r.scope ?? {},
    r.context ?? {},
    withTtl ? (r.ttl ?? TTL_DEFAULT_SECONDS) : null,
    r.webhookUrl ?? null,
  ]);
  return createHash('sha256').update(canonical, 'utf8').digest('hex');
}

/**
 * The same idempotencyKey must come with the same request: answering a different request with
 * the earlier permission would let an agent act on a grant for something else.
 */
export function assertSameRequest(earlier: Permission, fingerprint: string, input: RequestedFields): void {
  const same =
    earlier.requestHash !== null
      ? earlier.requestHash === fingerprint
      : requestFingerprint(input, false) ===
        requestFingerprint(
          {
            action: earlier.action,
            resource: earlier.resource,
            scope: earlier.requestedScope,
            context: earlier.context,
            webhookUrl: earlier.webhookUrl,
          },
          false,
        );
  if (!same) {
    throw new AppError(
      'IDEMPOTENCY_KEY_REUSED',
      'This idempotencyKey was already used with a different request; use a new key for a new request',
      { permissionId: earlier.id },
    );
  }
}
