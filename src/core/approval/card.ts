import type { Actor } from '../audit/index.js';
import type { Permission } from '../permission.js';
import { quorumOf } from '../permissionView.js';
import type { ScopeRow } from '../scope/index.js';

/**
 * The platform-neutral approval card (DESIGN §7): everything an approver needs to decide, and
 * the state it is in. Slack renders it to Block Kit, Discord to an embed; neither decides
 * anything from it.
 */
export interface ApprovalCard {
  permissionId: string;
  agentName: string;
  agentId: string;
  action: string;
  resource: string | null;
  /** The scope in force, as readable rows (describeScope). */
  scopeRows: ScopeRow[];
  /** Raw scope, for the "Approve with changes…" form. */
  scope: Record<string, unknown>;
  /** Context entries, the reason first. */
  context: { key: string; value: string }[];
  reason: string | null;
  /** The user the agent acts for (context.user_id), if given. */
  requestedBy: string | null;
  /** Approval deadline while pending; token expiry once approved. */
  expiresAt: Date;
  policyName: string | null;
  state: CardState;
}

export type CardState =
  | { kind: 'pending'; approvals: number; required: number }
  | { kind: 'approved'; by: Actor | null; at: Date; expiresAt: Date }
  | { kind: 'denied'; by: Actor | null; at: Date; reason: string | null }
  | { kind: 'used'; at: Date }
  | { kind: 'expired'; unused: boolean }
  | { kind: 'revoked'; at: Date }
  | { kind: 'cancelled'; at: Date };

/** What an approver can change in "Approve with changes…": caps to lower, lists to trim. */
export interface NarrowingForm {
  caps: { key: string; label: string; current: number }[];
  lists: { key: string; label: string; values: string[] }[];
}

/** What a card shows for the permission's current state (the quorum rule is quorumOf's). */
export function cardState(p: Permission): CardState {
  const at = p.updatedAt;
  switch (p.status) {
    case 'pending':
      return { kind: 'pending', approvals: p.approvals.length, required: quorumOf(p) };
    case 'approved':
      return { kind: 'approved', by: p.decidedBy, at: p.decidedAt ?? at, expiresAt: p.expiresAt };
    case 'denied':
      return { kind: 'denied', by: p.decidedBy, at: p.decidedAt ?? at, reason: p.decisionReason };
    case 'used':
      return { kind: 'used', at: p.lastUsedAt ?? at };
    case 'expired':
      return { kind: 'expired', unused: p.decidedAt !== null && p.usesRemaining === p.maxUses };
    case 'revoked':
      return { kind: 'revoked', at };
    case 'cancelled':
      return { kind: 'cancelled', at };
  }
}

/**
 * `${status}:${approvals}`: what a posted message shows; equal signatures need no edit. The
 * reconciler's SQL (staleMessages) computes the same string, so change both together.
 */
export function renderSignature(p: Pick<Permission, 'status' | 'approvals'>): string {
  return `${p.status}:${p.approvals.length}`;
}
