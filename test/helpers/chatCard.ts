import type { ApprovalCard } from '../../src/chat/card.js';
import { describeScope } from '../../src/core/scope/index.js';

export const CARD_PERMISSION_ID = 'perm_0123456789ABCDEFGHIJKL';
export const CARD_EXPIRES = new Date('2024-01-15T12:05:00Z');

/**
 * A pending approval card for the chat renderer tests: a payment with a cap, a use limit and an
 * allow-list, a reason, a policy. `scopeRows` follow `overrides.scope`. Each platform's tests pass
 * their own `requestedBy` (a Slack or Discord user id).
 */
export function chatCard(overrides: Partial<ApprovalCard> = {}): ApprovalCard {
  const scope = overrides.scope ?? {
    max_amount: 100,
    max_uses: 2,
    allowed_recipients: ['a@acme.com', 'b@acme.com'],
  };
  return {
    permissionId: CARD_PERMISSION_ID,
    agentName: 'billing-bot',
    agentId: 'agent_0123456789ABCDEFGHIJKL',
    action: 'payments.send',
    resource: 'stripe:acct_1',
    scopeRows: describeScope(scope),
    scope,
    context: [
      { key: 'reason', value: 'Pay invoice 42' },
      { key: 'invoice', value: '42' },
    ],
    reason: 'Pay invoice 42',
    requestedBy: null,
    expiresAt: CARD_EXPIRES,
    policyName: 'payments-over-50',
    state: { kind: 'pending', approvals: 0, required: 1 },
    ...overrides,
  };
}
