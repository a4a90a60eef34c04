import { describe, expect, it } from 'vitest';
import {
  agentReferences,
  type PolicyDefinition,
  parsePolicySet,
  planPolicySet,
} from '../../../src/core/policy/index.js';

const parse = (input: unknown[]): PolicyDefinition[] => parsePolicySet(input);

/** Stored rows the way the service keeps them: normalised, the id inside the definition too. */
function stored(input: unknown[]) {
  return parse(input).map((definition, i) => {
    const id = `policy_${i + 1}`;
    return { id, name: definition.name, definition: { ...definition, id } };
  });
}

const base = [
  { name: 'small-refunds', priority: 10, conditions: { action: 'refund.*' }, action: 'auto_approve' },
  {
    name: 'big-refunds',
    priority: 20,
    conditions: { action: 'refund.*', 'scope.amount': { greater_than: 100 } },
    action: 'require_approval',
  },
  { name: 'old', conditions: { action: 'legacy.*' }, action: 'deny' },
];

describe('planPolicySet', () => {
  it('says by name what is added, changed (which fields), removed and unchanged, keeping ids', () => {
    const plan = planPolicySet(
      stored(base),
      parse([
        // Same content, another spelling: unchanged.
        {
          name: 'small-refunds',
          priority: 10,
          conditions: { action: { equals: 'refund.*' } },
          action: 'auto_approve',
        },
        {
          name: 'big-refunds',
          priority: 30,
          conditions: { action: 'refund.*', 'scope.amount': { greater_than: 500 } },
          action: 'require_approval',
        },
        { name: 'refund-small', conditions: { action: 'refund.small' }, action: 'auto_approve' },
      ]),
    );
    expect(plan).toEqual({
      added: [{ name: 'refund-small' }],
      changed: [{ id: 'policy_2', name: 'big-refunds', fields: ['conditions', 'priority'] }],
      removed: [{ id: 'policy_3', name: 'old' }],
      unchanged: [{ id: 'policy_1', name: 'small-refunds' }],
      reordered: false,
    });
  });

  it('continues a policy named by id through a rename, and says so', () => {
    const desired = parse([{ ...base[2], id: 'policy_3', name: 'legacy', action: 'require_approval' }]);
    const plan = planPolicySet(stored(base), desired);
    expect(plan.changed).toEqual([
      { id: 'policy_3', name: 'legacy', previousName: 'old', fields: ['action', 'name'] },
    ]);
    expect(plan.removed.map((p) => p.name)).toEqual(['small-refunds', 'big-refunds']);
    expect(plan.added).toEqual([]);
  });

  it('a newcomer does not take the id of a policy renamed by id away from its old name', () => {
    const desired = parse([
      { ...base[0], id: 'policy_1', name: 'renamed' },
      { ...base[0], priority: 1 },
    ]);
    const plan = planPolicySet(stored([base[0]]), desired);
    expect(plan.changed).toEqual([
      { id: 'policy_1', name: 'renamed', previousName: 'small-refunds', fields: ['name'] },
    ]);
    expect(plan.added).toEqual([{ name: 'small-refunds' }]);
  });

  it('applying the stored set again changes nothing; reordering alone is reported', () => {
    const current = stored(base);
    const same = planPolicySet(
      current,
      current.map((r) => r.definition),
    );
    expect(same.unchanged.map((p) => p.id)).toEqual(['policy_1', 'policy_2', 'policy_3']);
    expect([same.added, same.changed, same.removed, same.reordered]).toEqual([[], [], [], false]);

    const swapped = planPolicySet(current, parse([base[1], base[0], base[2]]));
    expect(swapped.unchanged).toHaveLength(3);
    expect(swapped.reordered).toBe(true);
    // Adding at the top or removing one is not a reorder of the rest.
    expect(planPolicySet(current, parse([{ ...base[2], name: 'new' }, base[0], base[2]])).reordered).toBe(
      false,
    );
  });

  it('an empty set removes everything; an empty store adds everything', () => {
    expect(planPolicySet(stored(base), []).removed).toHaveLength(3);
    expect(planPolicySet([], parse(base)).added.map((p) => p.name)).toEqual([
      'small-refunds',
      'big-refunds',
      'old',
    ]);
  });
});

describe('agentReferences', () => {
  it('names the agent restriction and literal agent operands, not patterns', () => {
    const [policy] = parse([
      {
        name: 'p',
        agent: 'billing-bot',
        conditions: { agent: { in: ['a', 'b'], not_equals: 'c', starts_with: 'prefix-' } },
        action: 'deny',
      },
    ]);
    expect(agentReferences(policy!).sort()).toEqual(['a', 'b', 'billing-bot', 'c']);
    const [plain] = parse([{ name: 'q', conditions: { agent: 'solo' }, action: 'deny' }]);
    expect(agentReferences(plain!)).toEqual(['solo']);
    const [none] = parse([{ name: 'r', conditions: { action: 'x' }, action: 'deny' }]);
    expect(agentReferences(none!)).toEqual([]);
  });
});
