import { type ApproverLinks, approverKey, displayName, distinctApprovals, NO_LINKS } from './approvers.js';
import type { Actor } from './audit/index.js';
import type { Permission } from './permission.js';

/**
 * What the operator sees of a permission beyond its stored fields (`permission:get`,
 * GET /permissions/:id): where its token stands and how far its approval got. Pure, and never
 * derived from or exposing the token or its hash beyond "one exists".
 */
export const TOKEN_STATES = ['none', 'unused', 'used', 'exhausted', 'expired', 'revoked'] as const;
export type TokenState = (typeof TOKEN_STATES)[number];

/**
 * - none: no token exists (pending, denied, cancelled, or expired/revoked before approval) or
 *   one was granted but the agent has not collected it yet;
 * - unused: a live token with all its uses left; used: live, some uses spent;
 * - exhausted: every use spent; expired: its TTL ran out; revoked: withdrawn by an operator.
 */
export function tokenState(p: Permission, now: Date): TokenState {
  // decidedAt is set only by an approval or a denial; expiry and revocation of a pending
  // request leave it null, so it tells "a token was granted" apart from "never approved".
  const granted = p.decidedAt !== null && p.status !== 'denied';
  switch (p.status) {
    case 'pending':
    case 'denied':
    case 'cancelled':
      return 'none';
    case 'used':
      return 'exhausted';
    case 'expired':
      return granted ? 'expired' : 'none';
    case 'revoked':
      return granted && p.tokenHash !== null ? 'revoked' : 'none';
    case 'approved':
      // An agent-collected token has its hash stored on first read; a client token from the start.
      if (p.tokenHash === null) return 'none';
      if (p.usesRemaining <= 0) return 'exhausted';
      if (p.expiresAt <= now) return 'expired';
      return p.usesRemaining < p.maxUses ? 'used' : 'unused';
  }
}

export interface ApprovalVote {
  approver: string;
  decision: 'approve' | 'deny';
  at: string;
}

export interface ApprovalProgress {
  /** Distinct persons who approved so far. */
  count: number;
  /** How many approvals the request needs (its policy's quorum, 1 by default). */
  required: number;
  votes: ApprovalVote[];
}

export function quorumOf(p: Pick<Permission, 'approval'>): number {
  const quorum = p.approval?.quorum;
  return typeof quorum === 'number' && quorum >= 1 ? quorum : 1;
}

/** A person's name as the audit trail shows it: linked person, user name, then ids. */
export function approverName(actor: Actor): string {
  const who = actor.person ?? displayName(actor);
  return actor.platform && actor.platform !== 'api' ? `${who} (${actor.platform})` : who;
}

/** Approvals so far, one per person; a denial (which ends the request) is the last vote. */
export function approvalProgress(p: Permission, links: ApproverLinks = NO_LINKS): ApprovalProgress {
  const approvals = distinctApprovals(p.approvals, links);
  const votes: ApprovalVote[] = approvals.map((a) => ({
    approver: approverName(a.actor),
    decision: 'approve',
    at: a.at,
  }));
  if (p.status === 'denied' && p.decidedBy && p.decidedAt) {
    const denier = approverKey(p.decidedBy, links);
    // A policy denial is not a vote; only a person's.
    if (p.decidedBy.type !== 'policy' && !approvals.some((a) => approverKey(a.actor, links) === denier)) {
      votes.push({ approver: approverName(p.decidedBy), decision: 'deny', at: p.decidedAt.toISOString() });
    }
  }
  return { count: approvals.length, required: quorumOf(p), votes };
}
