import { describe, expect, it } from 'vitest';
import { channelIdentityShapes } from '../../../src/chat/channels.js';
import { parseApproverLinks } from '../../../src/core/approvers.js';
import type { Permission } from '../../../src/core/permission.js';
import { approvalProgress, tokenState } from '../../../src/core/permissionView.js';

/** The user-id syntax of the channels this build has (src/chat/channels.ts). */
const SHAPES = channelIdentityShapes();

const NOW = new Date('2026-03-02T10:00:00Z');
const LATER = new Date('2026-03-02T10:05:00Z');
const EARLIER = new Date('2026-03-02T09:55:00Z');
const HASH = 'a'.repeat(64);

function permission(over: Partial<Permission>): Permission {
  return {
    id: 'perm_x',
    agentId: 'agent_x',
    action: 'email.send',
    resource: null,
    requestedScope: {},
    scope: {},
    context: {},
    status: 'pending',
    ttlSeconds: 300,
    policyId: null,
    policyName: null,
    decisionReason: null,
    decidedBy: null,
    decidedAt: null,
    expiresAt: LATER,
    tokenHash: null,
    clientToken: false,
    maxUses: 1,
    usesRemaining: 0,
    totals: {},
    approval: null,
    approvals: [],
    webhookUrl: null,
    approvalUrl: null,
    idempotencyKey: null,
    requestHash: null,
    createdAt: EARLIER,
    updatedAt: EARLIER,
    lastUsedAt: null,
    ...over,
  };
}

const approved = (over: Partial<Permission> = {}) =>
  permission({
    status: 'approved',
    decidedAt: EARLIER,
    decidedBy: { type: 'operator', id: 'opk_a' },
    tokenHash: HASH,
    maxUses: 3,
    usesRemaining: 3,
    ...over,
  });

describe('tokenState', () => {
  it('is none while no token exists: pending (even with a client commitment), denied, cancelled', () => {
    expect(tokenState(permission({}), NOW)).toBe('none');
    expect(tokenState(permission({ tokenHash: HASH, clientToken: true }), NOW)).toBe('none');
    expect(tokenState(permission({ status: 'denied', decidedAt: EARLIER }), NOW)).toBe('none');
    expect(tokenState(permission({ status: 'cancelled' }), NOW)).toBe('none');
  });

  it('is none for an approval the agent has not collected yet', () => {
    expect(tokenState(approved({ tokenHash: null }), NOW)).toBe('none');
  });

  it('follows the uses of a live token: unused, used, exhausted', () => {
    expect(tokenState(approved(), NOW)).toBe('unused');
    expect(tokenState(approved({ usesRemaining: 2 }), NOW)).toBe('used');
    expect(tokenState(approved({ usesRemaining: 0 }), NOW)).toBe('exhausted');
    expect(tokenState(approved({ status: 'used', usesRemaining: 0 }), NOW)).toBe('exhausted');
  });

  it('is expired past the TTL, before the expiry job got to it too', () => {
    expect(tokenState(approved({ expiresAt: EARLIER }), NOW)).toBe('expired');
    expect(tokenState(approved({ status: 'expired' }), NOW)).toBe('expired');
  });

  it('tells a revoked token from a request revoked or expired before anyone approved it', () => {
    expect(tokenState(approved({ status: 'revoked' }), NOW)).toBe('revoked');
    expect(tokenState(permission({ status: 'revoked', tokenHash: HASH, clientToken: true }), NOW)).toBe(
      'none',
    );
    expect(tokenState(permission({ status: 'expired' }), NOW)).toBe('none');
  });
});

describe('approvalProgress', () => {
  const links = parseApproverLinks('alice=slack:U0ALICE,operator:opk_alice', SHAPES);

  it('counts one vote per person and names them, against the policy quorum', () => {
    const p = permission({
      approval: { quorum: 3 },
      approvals: [
        {
          key: 'slack:U0ALICE',
          actor: { type: 'approver', platform: 'slack', userId: 'U0ALICE', userName: 'alice' },
          at: '2026-03-02T09:56:00.000Z',
        },
        // The same person again through a linked identity: not a second vote.
        {
          key: 'operator:opk_alice',
          actor: { type: 'operator', id: 'opk_alice' },
          at: '2026-03-02T09:57:00.000Z',
        },
      ],
    });
    expect(approvalProgress(p, links)).toEqual({
      count: 1,
      required: 3,
      votes: [{ approver: 'alice (slack)', decision: 'approve', at: '2026-03-02T09:56:00.000Z' }],
    });
  });

  it("adds a person's denial as the last vote, but not a policy's", () => {
    const bob = { type: 'approver' as const, platform: 'discord' as const, userId: '1', userName: 'bob' };
    const denied = permission({ status: 'denied', decidedBy: bob, decidedAt: NOW });
    expect(approvalProgress(denied).votes).toEqual([
      { approver: 'bob (discord)', decision: 'deny', at: NOW.toISOString() },
    ]);
    const byPolicy = permission({
      status: 'denied',
      decidedBy: { type: 'policy', name: 'no' },
      decidedAt: NOW,
    });
    expect(approvalProgress(byPolicy)).toEqual({ count: 0, required: 1, votes: [] });
  });
});
