import { describe, expect, it } from 'vitest';
import { WorkBudget } from '../../../src/core/budget.js';
import { AppError } from '../../../src/core/errors.js';
import {
  compileGlob,
  compilePolicies,
  evaluate,
  type PolicyDefinition,
  type PolicyRequest,
  parsePolicyDocument,
  parsePolicySet,
  policyDefinitionSchema,
} from '../../../src/core/policy/index.js';

const request = (overrides: Partial<PolicyRequest> = {}): PolicyRequest => ({
  agentId: 'agent_1',
  action: 'email.send',
  resource: 'email:bob@example.com',
  scope: {},
  context: {},
  ...overrides,
});

/** Does a single policy with these conditions match the request? */
function holds(conditions: Record<string, unknown>, req: Partial<PolicyRequest> = {}): boolean {
  const set = compilePolicies(parsePolicySet([{ name: 'p', conditions, action: 'auto_approve' }]));
  return evaluate(set, request(req), 'deny').decision === 'auto_approve';
}

/** A single policy's answer for the request: holds, fails, or cannot be decided from its values. */
function verdict(
  conditions: Record<string, unknown>,
  req: Partial<PolicyRequest> = {},
): 'holds' | 'fails' | 'undecidable' {
  const set = compilePolicies(parsePolicySet([{ name: 'p', conditions, action: 'auto_approve' }]));
  const r = request(req);
  const fields = {
    action: r.action,
    resource: r.resource,
    agent: r.agentId,
    scope: r.scope,
    context: r.context,
  };
  const v = set.policies[0]?.matches(fields, new WorkBudget());
  return v === true ? 'holds' : v === false ? 'fails' : 'undecidable';
}

/** The AppError thrown by `fn`, so tests can look at its code and details. */
function thrown(fn: () => unknown): AppError & { details: { path: string; issues: unknown[] } } {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError & { details: { path: string; issues: unknown[] } };
  }
  throw new Error('expected an error');
}

const invalidPathOf = (input: unknown): string => {
  const error = thrown(() => parsePolicySet(input));
  expect(error.code).toBe('INVALID_POLICY');
  expect(error.message).toContain(error.details.path);
  return error.details.path;
};

describe('operators', () => {
  it('equals / plain value / not_equals', () => {
    expect(holds({ resource: { equals: 'email:bob@example.com' } })).toBe(true);
    expect(holds({ resource: { equals: 'email:eve@example.com' } })).toBe(false);
    expect(holds({ 'scope.amount': 100 }, { scope: { amount: 100 } })).toBe(true);
    expect(holds({ 'scope.amount': 100 }, { scope: { amount: '100' } })).toBe(true); // a plain decimal
    expect(verdict({ 'scope.amount': 100 }, { scope: { amount: '1,00' } })).toBe('undecidable');
    expect(verdict({ 'scope.amount': 100 }, { scope: { amount: [100] } })).toBe('undecidable');
    expect(
      verdict({ resource: 'email:bob@example.com' }, { resource: ['email:bob@example.com'] } as never),
    ).toBe('undecidable');
    expect(holds({ 'context.flag': null }, { context: { flag: null } })).toBe(true);
    expect(holds({ resource: { not_equals: 'email:eve@example.com' } })).toBe(true);
    expect(holds({ resource: { not_equals: 'email:bob@example.com' } })).toBe(false);
  });

  it('starts_with / ends_with: on text (numbers and booleans as their JSON text), undecidable on lists', () => {
    expect(holds({ action: { starts_with: 'email.' } })).toBe(true);
    expect(holds({ action: { starts_with: 'bank.' } })).toBe(false);
    expect(holds({ resource: { ends_with: '@example.com' } })).toBe(true);
    expect(holds({ resource: { ends_with: '.pdf' } })).toBe(false);
    expect(holds({ 'scope.n': { starts_with: '1' } }, { scope: { n: 12 } })).toBe(true);
    expect(holds({ 'context.x': { starts_with: '' } }, { context: { x: null } })).toBe(false);
    expect(verdict({ 'context.to': { ends_with: '@evil.com' } }, { context: { to: ['x@evil.com'] } })).toBe(
      'undecidable',
    );
    expect(verdict({ 'context.to': { ends_with: '@evil.com' } }, { context: { to: { a: 1 } } })).toBe(
      'undecidable',
    );
  });

  it('contains: substring of a string, element of an array', () => {
    expect(holds({ resource: { contains: 'bob@' } })).toBe(true);
    expect(holds({ resource: { contains: 'eve@' } })).toBe(false);
    expect(holds({ 'scope.to': { contains: 'a@x.io' } }, { scope: { to: ['a@x.io', 'b@x.io'] } })).toBe(true);
    expect(holds({ 'scope.to': { contains: 'c@x.io' } }, { scope: { to: ['a@x.io', 'b@x.io'] } })).toBe(
      false,
    );
    expect(holds({ 'scope.ids': { contains: 2 } }, { scope: { ids: [1, 2] } })).toBe(true);
    expect(holds({ 'scope.ids': { contains: '2' } }, { scope: { ids: [1, 2] } })).toBe(true); // 2 as text
    expect(holds({ 'scope.ids': { contains: 2 } }, { scope: { ids: ['2'] } })).toBe(true); // plain decimal
    expect(verdict({ 'scope.ids': { contains: 2 } }, { scope: { ids: ['2,0'] } })).toBe('undecidable');
    expect(verdict({ 'scope.ids': { contains: 'x' } }, { scope: { ids: [['x']] } })).toBe('undecidable');
    expect(verdict({ 'scope.ids': { contains: 'x' } }, { scope: { ids: { x: 1 } } })).toBe('undecidable');
  });

  it('matches: RE2, found anywhere unless anchored', () => {
    const internal = { 'context.recipient': { matches: '.*@mycompany\\.com$' } };
    expect(holds(internal, { context: { recipient: 'ann@mycompany.com' } })).toBe(true);
    expect(holds(internal, { context: { recipient: 'ann@mycompany.com.evil.io' } })).toBe(false);
    expect(
      holds({ 'context.reason': { matches: 'invoice' } }, { context: { reason: 'send invoice #4' } }),
    ).toBe(true);
    expect(
      holds({ 'context.reason': { matches: '^invoice$' } }, { context: { reason: 'send invoice' } }),
    ).toBe(false);
    expect(holds({ 'context.n': { matches: '1' } }, { context: { n: 1 } })).toBe(true); // 1 as text
    expect(verdict({ 'context.n': { matches: 'x' } }, { context: { n: ['x'] } })).toBe('undecidable');
  });

  it('number comparisons read numbers and plain decimal strings; any other value is undecidable', () => {
    const amount = (a: unknown) => ({ scope: { amount: a } });
    expect(holds({ 'scope.amount': { less_than: 100 } }, amount(99))).toBe(true);
    expect(holds({ 'scope.amount': { less_than: 100 } }, amount(100))).toBe(false);
    expect(holds({ 'scope.amount': { less_than: 100 } }, amount('5'))).toBe(true);
    expect(holds({ 'scope.amount': { less_than_or_equal: 100 } }, amount(100))).toBe(true);
    expect(holds({ 'scope.amount': { less_than_or_equal: 100 } }, amount(101))).toBe(false);
    expect(holds({ 'scope.amount': { greater_than: 100 } }, amount(101))).toBe(true);
    expect(holds({ 'scope.amount': { greater_than: 100 } }, amount(100))).toBe(false);
    expect(holds({ 'scope.amount': { greater_than: 1 } }, amount('5'))).toBe(true);
    for (const odd of ['5,000', '5000 USD', '5e3', '0x10', ' 5', 'Infinity', true, [5000], { v: 5 }]) {
      expect(verdict({ 'scope.amount': { greater_than: 1 } }, amount(odd)), JSON.stringify(odd)).toBe(
        'undecidable',
      );
    }
    expect(verdict({ 'scope.amount': { greater_than: 1 } }, amount(null))).toBe('fails');
    expect(holds({ 'scope.amount': { greater_than_or_equal: 100 } }, amount(100))).toBe(true);
    expect(holds({ 'scope.amount': { greater_than_or_equal: 100 } }, amount(99.5))).toBe(false);
  });

  it('in / not_in', () => {
    const currency = (c: unknown) => ({ scope: { currency: c } });
    expect(holds({ 'scope.currency': { in: ['USD', 'EUR'] } }, currency('EUR'))).toBe(true);
    expect(holds({ 'scope.currency': { in: ['USD', 'EUR'] } }, currency('GBP'))).toBe(false);
    expect(holds({ 'scope.currency': { not_in: ['USD', 'EUR'] } }, currency('GBP'))).toBe(true);
    expect(holds({ 'scope.currency': { not_in: ['USD', 'EUR'] } }, currency('USD'))).toBe(false);
    expect(holds({ 'scope.level': { in: [1, 2] } }, { scope: { level: '1' } })).toBe(true);
    expect(verdict({ 'scope.level': { in: [1, 2] } }, { scope: { level: 'one' } })).toBe('undecidable');
    expect(verdict({ 'scope.level': { not_in: [1, 2] } }, { scope: { level: 'one' } })).toBe('undecidable');
    expect(holds({ 'scope.level': { in: [1, 'one'] } }, { scope: { level: 'one' } })).toBe(true);
  });

  it('exists: defined and not null', () => {
    expect(holds({ 'context.user_id': { exists: true } }, { context: { user_id: 'U1' } })).toBe(true);
    expect(holds({ 'context.user_id': { exists: true } }, { context: { user_id: null } })).toBe(false);
    expect(holds({ 'context.user_id': { exists: true } })).toBe(false);
    expect(holds({ 'context.user_id': { exists: false } })).toBe(true);
    expect(holds({ 'context.user_id': { exists: false } }, { context: { user_id: null } })).toBe(true);
    expect(holds({ 'context.user_id': { exists: false } }, { context: { user_id: '' } })).toBe(false);
  });

  it('a missing field fails every operator except exists:false, not_equals and not_in', () => {
    const failing = [
      { equals: 'x' },
      { equals: null },
      { starts_with: '' },
      { ends_with: '' },
      { contains: '' },
      { matches: '.*' },
      { less_than: 1 },
      { greater_than: 1 },
      { less_than_or_equal: 1 },
      { greater_than_or_equal: 1 },
      { in: ['x', null] },
      { exists: true },
    ];
    for (const ops of failing) expect(holds({ 'scope.missing': ops }), JSON.stringify(ops)).toBe(false);
    for (const ops of [{ exists: false }, { not_equals: 'x' }, { not_in: ['x'] }]) {
      expect(holds({ 'scope.missing': ops }), JSON.stringify(ops)).toBe(true);
    }
    // A request without a resource: the field is missing, not an empty string.
    expect(holds({ resource: { starts_with: '' } }, { resource: undefined })).toBe(false);
  });

  it('several operators on one field must all hold; several fields too', () => {
    const band = { 'scope.amount': { greater_than: 10, less_than: 100 } };
    expect(holds(band, { scope: { amount: 50 } })).toBe(true);
    expect(holds(band, { scope: { amount: 5 } })).toBe(false);
    expect(holds(band, { scope: { amount: 500 } })).toBe(false);
    const both = { action: 'bank.transfer', 'scope.amount': { less_than: 100 } };
    expect(holds(both, { action: 'bank.transfer', scope: { amount: 50 } })).toBe(true);
    expect(holds(both, { action: 'bank.withdraw', scope: { amount: 50 } })).toBe(false);
  });

  it('empty conditions match every request', () => {
    expect(holds({})).toBe(true);
  });
});

describe('field paths', () => {
  it('reads nested scope and context values', () => {
    const req = { context: { metadata: { priority: 7 } } };
    expect(holds({ 'context.metadata.priority': { greater_than: 5 } }, req)).toBe(true);
    expect(holds({ 'context.metadata.priority.deeper': { exists: false } }, req)).toBe(true);
  });

  it('never walks into prototypes: __proto__, constructor, prototype and inherited keys read as missing', () => {
    for (const path of ['scope.__proto__', 'scope.constructor', 'context.prototype', 'scope.toString']) {
      expect(holds({ [path]: { exists: true } }), path).toBe(false);
      expect(holds({ [path]: { exists: false } }), path).toBe(true);
    }
    const hostile = JSON.parse('{"__proto__": {"admin": true}}') as Record<string, unknown>;
    expect(holds({ 'context.__proto__.admin': true }, { context: hostile })).toBe(false);
  });

  it('`agent` is the agent name when given, else its id', () => {
    expect(holds({ agent: 'billing-bot' }, { agentId: 'agent_1', agentName: 'billing-bot' })).toBe(true);
    expect(holds({ agent: 'agent_1' }, { agentId: 'agent_1', agentName: 'billing-bot' })).toBe(false);
    expect(holds({ agent: 'agent_1' }, { agentId: 'agent_1' })).toBe(true);
  });
});

describe('action globs', () => {
  it('match whole values with * and ?', () => {
    expect(holds({ action: 'email.*' }, { action: 'email.send' })).toBe(true);
    expect(holds({ action: 'email.*' }, { action: 'email.send.bulk' })).toBe(true);
    expect(holds({ action: 'email.*' }, { action: 'emails.send' })).toBe(false);
    expect(holds({ action: 'email.*' }, { action: 'my.email.send' })).toBe(false);
    expect(holds({ action: '*' }, { action: 'anything.at.all' })).toBe(true);
    expect(holds({ action: { equals: 'file.?rite' } }, { action: 'file.write' })).toBe(true);
    expect(holds({ action: { equals: 'file.?rite' } }, { action: 'file.wwrite' })).toBe(false);
  });

  it('apply to equals, not_equals, in and not_in', () => {
    expect(holds({ action: { not_equals: 'bank.*' } }, { action: 'email.send' })).toBe(true);
    expect(holds({ action: { not_equals: 'bank.*' } }, { action: 'bank.transfer' })).toBe(false);
    expect(holds({ action: { in: ['file.read', 'email.*'] } }, { action: 'email.read' })).toBe(true);
    expect(holds({ action: { in: ['file.read', 'email.*'] } }, { action: 'bank.read' })).toBe(false);
    expect(holds({ action: { not_in: ['*.delete'] } }, { action: 'file.delete' })).toBe(false);
    expect(holds({ action: { not_in: ['*.delete'] } }, { action: 'file.read' })).toBe(true);
  });

  it('treat regex characters literally and apply only to `action`', () => {
    expect(holds({ action: 'email.*' }, { action: 'emailXsend' })).toBe(false);
    expect(holds({ action: 'a+b.*' }, { action: 'a+b.c' })).toBe(true);
    expect(holds({ action: 'a+b.*' }, { action: 'aab.c' })).toBe(false);
    expect(holds({ resource: 'email:*' }, { resource: 'email:bob@example.com' })).toBe(false);
    expect(holds({ resource: 'email:*' }, { resource: 'email:*' })).toBe(true);
    expect(compileGlob('x*')('x\ny')).toBe(true);
  });
});

describe('snake_case and camelCase', () => {
  it('every operator has both spellings, with the same result', () => {
    const pairs: Array<[string, string, unknown]> = [
      ['not_equals', 'notEquals', 'x'],
      ['starts_with', 'startsWith', 'a'],
      ['ends_with', 'endsWith', 'c'],
      ['less_than', 'lessThan', 5],
      ['greater_than', 'greaterThan', 5],
      ['less_than_or_equal', 'lessThanOrEqual', 5],
      ['greater_than_or_equal', 'greaterThanOrEqual', 5],
      ['not_in', 'notIn', ['x']],
    ];
    for (const value of ['abc', 4, 5, 6]) {
      for (const [snake, camel, operand] of pairs) {
        const req = { scope: { v: value } };
        expect(holds({ 'scope.v': { [snake]: operand } }, req)).toBe(
          holds({ 'scope.v': { [camel]: operand } }, req),
        );
      }
    }
  });

  it('policy fields normalise to one camelCase shape', () => {
    const snake = parsePolicySet([
      {
        name: 'p',
        conditions: { 'scope.amount': { less_than: 10 } },
        action: 'require_approval',
        scope_template: { max_amount: 10 },
        approval: { remind_after: 60, escalate_after: 600, escalate_to: ['U2'], quorum: 2 },
      },
    ]);
    const camel = parsePolicySet([
      {
        name: 'p',
        conditions: { 'scope.amount': { lessThan: 10 } },
        action: 'require_approval',
        scopeTemplate: { max_amount: 10 },
        approval: { remindAfter: 60, escalateAfter: 600, escalateTo: ['U2'], quorum: 2 },
      },
    ]);
    expect(snake).toEqual(camel);
    expect(camel[0]).toEqual({
      name: 'p',
      priority: 0,
      enabled: true,
      conditions: { 'scope.amount': { lessThan: 10 } },
      action: 'require_approval',
      scopeTemplate: { max_amount: 10 },
      approval: { remindAfter: 60, escalateAfter: 600, escalateTo: ['U2'], quorum: 2 },
    });
  });

  it('normalised output parses again to itself, and keeps ids', () => {
    const once = parsePolicySet([
      { id: 'pol_1', name: 'p', conditions: { action: 'x' }, action: 'deny', ttl: 60 },
    ]);
    expect(once[0]).toMatchObject({ id: 'pol_1', conditions: { action: { equals: 'x' } }, ttl: 60 });
    expect(parsePolicySet(JSON.parse(JSON.stringify(once)))).toEqual(once);
  });

  it('null optional fields (as stored rows carry them) read as absent', () => {
    const [policy] = parsePolicySet([
      { id: null, name: 'p', agent: null, conditions: {}, action: 'deny', scope_template: null, ttl: null },
    ]);
    expect(policy).toEqual({ name: 'p', priority: 0, enabled: true, conditions: {}, action: 'deny' });
  });

  it('exports the zod schema for one policy', () => {
    expect(policyDefinitionSchema.safeParse({ name: 'p', conditions: {}, action: 'deny' }).success).toBe(
      true,
    );
    expect(policyDefinitionSchema.safeParse({ name: 'p', conditions: {}, action: 'allow' }).success).toBe(
      false,
    );
  });
});

describe('evaluation order and outcome', () => {
  /** Policies as authored (any spelling); unlisted fields default to `conditions: {}, action: deny`. */
  const policies = (defs: Array<Record<string, unknown> & { name: string }>) =>
    compilePolicies(parsePolicySet(defs.map((d) => ({ conditions: {}, action: 'deny', ...d }))));

  it('higher priority first; first match wins', () => {
    const set = policies([
      { name: 'financial', priority: 100, conditions: { action: { starts_with: 'bank.' } } },
      {
        name: 'small',
        priority: 110,
        action: 'auto_approve',
        conditions: { 'scope.amount': { less_than: 100 } },
      },
      { name: 'catch-all', priority: -1000, action: 'require_approval' },
    ]);
    const small = evaluate(set, request({ action: 'bank.transfer', scope: { amount: 50 } }));
    expect(small).toMatchObject({ decision: 'auto_approve', policy: { name: 'small' } });
    const large = evaluate(set, request({ action: 'bank.transfer', scope: { amount: 500 } }));
    expect(large).toMatchObject({ decision: 'deny', policy: { name: 'financial' } });
    expect(evaluate(set, request({ action: 'file.read' })).policy?.name).toBe('catch-all');
  });

  it('ties keep input order, and priority defaults to 0', () => {
    const set = policies([
      { name: 'a' },
      { name: 'b', priority: 0 },
      { name: 'c', priority: 1 },
      { name: 'd' },
    ]);
    expect(set.policies.map((p) => p.name)).toEqual(['c', 'a', 'b', 'd']);
    expect(evaluate(set, request()).policy?.name).toBe('c');
    const reversed = policies([{ name: 'b' }, { name: 'a' }]);
    expect(evaluate(reversed, request()).policy?.name).toBe('b');
  });

  it('disabled policies never match', () => {
    const set = policies([
      { name: 'off', enabled: false, priority: 10 },
      { name: 'on', action: 'auto_approve' },
    ]);
    expect(evaluate(set, request()).policy?.name).toBe('on');
  });

  it('agent-specific policies match only that agent, by id or by name', () => {
    const set = policies([
      { name: 'only-billing', agent: 'billing-bot', priority: 10, action: 'auto_approve' },
      { name: 'only-agent_9', agent: 'agent_9', priority: 5, action: 'auto_approve' },
      { name: 'everyone', action: 'deny' },
    ]);
    expect(evaluate(set, request({ agentId: 'agent_2', agentName: 'billing-bot' })).policy?.name).toBe(
      'only-billing',
    );
    expect(evaluate(set, request({ agentId: 'agent_9', agentName: 'other' })).policy?.name).toBe(
      'only-agent_9',
    );
    expect(evaluate(set, request({ agentId: 'agent_3', agentName: 'other' })).policy?.name).toBe('everyone');
  });

  it('no match gives the default action with no policy', () => {
    const set = policies([{ name: 'bank', conditions: { action: 'bank.*' } }]);
    const decision = evaluate(set, request());
    expect(decision).toEqual({ decision: 'require_approval', policy: null, reason: expect.any(String) });
    expect(evaluate(set, request(), 'deny')).toMatchObject({ decision: 'deny', policy: null });
    expect(evaluate(compilePolicies([]), request(), 'auto_approve').decision).toBe('auto_approve');
  });

  it('a decision carries reason, id, scope template, ttl cap and approval settings', () => {
    const set = policies([
      {
        id: 'pol_1',
        name: 'ask',
        action: 'require_approval',
        scopeTemplate: { max_emails: 5 },
        ttl: 600,
        approval: { approvers: ['U1'], quorum: 1 },
      },
    ]);
    expect(evaluate(set, request())).toEqual({
      decision: 'require_approval',
      policy: { id: 'pol_1', name: 'ask' },
      reason: 'Matched policy "ask"',
      scopeTemplate: { max_emails: 5 },
      ttlCap: 600,
      approval: { approvers: ['U1'], quorum: 1 },
    });
  });

  it('a denial carries its reason and grants nothing', () => {
    const set = policies([{ name: 'no', reason: 'Never delete', scopeTemplate: { max_uses: 1 }, ttl: 60 }]);
    expect(evaluate(set, request())).toEqual({
      decision: 'deny',
      policy: { name: 'no' },
      reason: 'Never delete',
    });
  });

  it('decisions hand out frozen copies: a caller cannot alter the compiled set', () => {
    const defs = parsePolicySet([
      { name: 'p', conditions: {}, action: 'auto_approve', scopeTemplate: { a: [1] } },
    ]);
    const set = compilePolicies(defs);
    const template = evaluate(set, request()).scopeTemplate as { a: number[] };
    expect(() => template.a.push(2)).toThrow(TypeError);
    defs[0]!.scopeTemplate!.a = 'changed';
    expect(evaluate(set, request()).scopeTemplate).toEqual({ a: [1] });
  });
});

describe('invalid policies name their path', () => {
  const base = { name: 'p', conditions: {}, action: 'deny' };
  const ok = [base, { ...base, name: 'q' }];

  it('unknown operator', () => {
    expect(
      invalidPathOf([...ok, { ...base, name: 'r', conditions: { 'scope.amount': { lessthan: 5 } } }]),
    ).toBe('policies[2].conditions.scope.amount.lessthan');
  });

  it('wrong operand type', () => {
    expect(
      invalidPathOf({ policies: [...ok, { ...base, conditions: { 'scope.amount': { less_than: '5' } } }] }),
    ).toBe('policies[2].conditions.scope.amount.less_than');
    expect(invalidPathOf([{ ...base, conditions: { 'scope.x': { in: 'USD' } } }])).toBe(
      'policies[0].conditions.scope.x.in',
    );
    expect(invalidPathOf([{ ...base, conditions: { 'scope.x': { exists: 'yes' } } }])).toBe(
      'policies[0].conditions.scope.x.exists',
    );
  });

  it('bad regex', () => {
    const error = thrown(() =>
      parsePolicySet([{ ...base, conditions: { 'context.x': { matches: '(unclosed' } } }]),
    );
    expect(error.details.path).toBe('policies[0].conditions.context.x.matches');
    expect(error.message).toMatch(/regular expression/);
    // Backreferences and lookaround are not RE2: refused, not silently different.
    expect(invalidPathOf([{ ...base, conditions: { 'context.x': { matches: '(a)\\1' } } }])).toBe(
      'policies[0].conditions.context.x.matches',
    );
  });

  it('bad action, missing name, unknown field, bad ttl, bad approval', () => {
    expect(invalidPathOf([{ ...base, action: 'allow' }])).toBe('policies[0].action');
    expect(invalidPathOf([{ conditions: {}, action: 'deny' }])).toBe('policies[0].name');
    expect(invalidPathOf([{ ...base, name: '  ' }])).toBe('policies[0].name');
    expect(invalidPathOf([{ ...base, is_active: true }])).toBe('policies[0].is_active');
    expect(invalidPathOf([{ ...base, ttl: -1 }])).toBe('policies[0].ttl');
    expect(invalidPathOf([{ ...base, approval: { quorum: 0 } }])).toBe('policies[0].approval.quorum');
    expect(invalidPathOf([{ ...base, approval: { remind_after: 60, channel: 'x' } }])).toBe(
      'policies[0].approval.channel',
    );
  });

  it('both spellings of one key at once', () => {
    expect(invalidPathOf([{ ...base, scopeTemplate: {}, scope_template: {} }])).toBe(
      'policies[0].scope_template',
    );
    expect(invalidPathOf([{ ...base, conditions: { action: { startsWith: 'a', starts_with: 'b' } } }])).toBe(
      'policies[0].conditions.action.starts_with',
    );
  });

  it('conditions: unknown root, empty operator object, non-scalar value, __proto__ key', () => {
    expect(invalidPathOf([{ ...base, conditions: { amount: { less_than: 5 } } }])).toBe(
      'policies[0].conditions.amount',
    );
    expect(invalidPathOf([{ ...base, conditions: { 'action.x': 'y' } }])).toBe(
      'policies[0].conditions.action.x',
    );
    expect(invalidPathOf([{ ...base, conditions: { 'scope..x': 1 } }])).toBe(
      'policies[0].conditions.scope..x',
    );
    expect(invalidPathOf([{ ...base, conditions: { action: {} } }])).toBe('policies[0].conditions.action');
    expect(invalidPathOf([{ ...base, conditions: { 'scope.to': ['a'] } }])).toBe(
      'policies[0].conditions.scope.to',
    );
    const proto = JSON.parse('{"__proto__": {"equals": 1}}') as unknown;
    expect(invalidPathOf([{ ...base, conditions: proto }])).toBe('policies[0].conditions.__proto__');
  });

  it('an unknown operator is the only issue reported for its condition', () => {
    const error = thrown(() => parsePolicySet([{ ...base, conditions: { action: { startswith: 'a' } } }]));
    expect(error.details.issues).toEqual([
      { path: 'policies[0].conditions.action.startswith', message: 'unknown operator "startswith"' },
    ]);
  });

  it('duplicate names or ids, and a malformed set', () => {
    expect(invalidPathOf([base, base])).toBe('policies[1].name');
    expect(
      invalidPathOf([
        { ...base, id: 'x' },
        { ...base, name: 'q', id: 'x' },
      ]),
    ).toBe('policies[1].id');
    expect(invalidPathOf({ policies: [base], extra: 1 })).toBe('extra');
    expect(invalidPathOf({ policies: 'nope' })).toBe('policies');
    expect(invalidPathOf('nope')).toBe('');
  });

  it('compilePolicies refuses what never went through the schema', () => {
    const raw = (conditions: unknown) =>
      [
        { name: 'p', priority: 0, enabled: false, conditions, action: 'deny' },
      ] as unknown as PolicyDefinition[];
    const badRegex = thrown(() => compilePolicies(raw({ 'context.x': { matches: '(a' } })));
    expect(badRegex.code).toBe('INVALID_POLICY');
    expect(badRegex.details.path).toBe('policies[0].conditions.context.x.matches');
    expect(thrown(() => compilePolicies(raw({ action: { between: [1, 2] } }))).details.path).toBe(
      'policies[0].conditions.action.between',
    );
    expect(thrown(() => compilePolicies(raw({ 'scope.a': { lessThan: '5' } }))).details.path).toBe(
      'policies[0].conditions.scope.a.lessThan',
    );
    expect(thrown(() => compilePolicies(raw({ amount: { lessThan: 5 } }))).details.path).toBe(
      'policies[0].conditions.amount',
    );
    const badAction = [{ name: 'p', priority: 0, enabled: true, conditions: {}, action: 'allow' }];
    expect(thrown(() => compilePolicies(badAction as unknown as PolicyDefinition[])).details.path).toBe(
      'policies[0].action',
    );
  });
});

describe('size limits and storable text (README "Limits")', () => {
  const base = { name: 'p', conditions: { action: 'x' }, action: 'deny' };
  const kib = (n: number) => 'x'.repeat(n * 1024);

  it('every string field has a maximum, and one character more names the field', () => {
    const over: [Record<string, unknown>, string][] = [
      [{ name: 'n'.repeat(201) }, 'policies[0].name'],
      [{ id: 'i'.repeat(65) }, 'policies[0].id'],
      [{ description: 'd'.repeat(2001) }, 'policies[0].description'],
      [{ reason: 'r'.repeat(2001) }, 'policies[0].reason'],
      [{ agent: 'a'.repeat(201) }, 'policies[0].agent'],
      [{ conditions: { 'context.note': { equals: kib(33) } } }, 'policies[0].conditions'],
      [{ scope_template: { note: kib(33) } }, 'policies[0].scope_template'],
      [
        { approval: { approvers: Array.from({ length: 51 }, (_, i) => `U${i}`) } },
        'policies[0].approval.approvers',
      ],
      [{ approval: { channels: ['c'.repeat(201)] } }, 'policies[0].approval.channels[0]'],
      [{ approval: { quorum: 101 } }, 'policies[0].approval.quorum'],
      [{ approval: { remind_after: 7 * 86400 + 1 } }, 'policies[0].approval.remind_after'],
    ];
    for (const [fields, path] of over) expect(invalidPathOf([{ ...base, ...fields }]), path).toBe(path);
    // At the limit: accepted.
    const atLimit = parsePolicySet([
      {
        ...base,
        name: 'n'.repeat(200),
        description: 'd'.repeat(2000),
        reason: 'r'.repeat(2000),
        approval: { approvers: Array.from({ length: 50 }, (_, i) => `U${i}`), quorum: 100 },
      },
    ]);
    expect(atLimit[0]?.name).toHaveLength(200);
  });

  it('a NUL or lone surrogate anywhere (value or key), or nesting past 32 levels, names its path', () => {
    expect(invalidPathOf([{ ...base, name: 'a\u0000b' }])).toBe('policies[0].name');
    expect(invalidPathOf([{ ...base, description: '\udc00' }])).toBe('policies[0].description');
    expect(invalidPathOf([{ ...base, conditions: { 'context.x\ud800': 'y' } }])).toBe(
      'policies[0].conditions.context.x\ufffd',
    );
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = { a: deep };
    expect(invalidPathOf([{ ...base, scope_template: { note: deep } }])).toMatch(
      /^policies\[0\]\.scope_template\.note(\.a)+$/,
    );
  });

  it('POLICIES_FILE gets the same checks: a YAML \\0 escape or an over-long name is INVALID_POLICY', () => {
    const doc = (name: string) => `- name: "${name}"\n  conditions: {action: x}\n  action: deny\n`;
    expect(thrown(() => parsePolicyDocument(doc('a\\0b'))).details.path).toBe('policies[0].name');
    expect(thrown(() => parsePolicyDocument(doc('n'.repeat(201)))).details.path).toBe('policies[0].name');
  });

  it('stored rows are read back without the limits, so a policy saved before them still loads', () => {
    const old = { ...base, name: 'n'.repeat(300), description: 'd'.repeat(5000) };
    expect(invalidPathOf([old])).toBe('policies[0].name');
    expect(parsePolicySet([old], 'stored')[0]?.name).toHaveLength(300);
  });
});

describe('parsePolicyDocument', () => {
  it('reads the seed YAML (list form, mixed spellings)', () => {
    const yaml = `
# Auto-approve small file reads
- name: "Auto-approve file reads"
  conditions:
    action: { equals: "file.read" }
    scope.size_limit: { lessThan: 1048576 }
  action: auto_approve
  scopeTemplate:
    max_size: 1048576
    allowed_extensions: [".txt", ".md", ".json"]

- name: "Financial operations require approval"
  conditions:
    action: { startsWith: "bank." }
  action: require_approval
  priority: 100

- name: "Auto-approve internal emails"
  conditions:
    action: { equals: "gmail.send" }
    context.recipient: { matches: ".*@mycompany\\\\.com$" }
  action: auto_approve

- name: "Default deny"
  conditions: {}
  action: deny
  priority: -1000
`;
    const set = compilePolicies(parsePolicyDocument(yaml));
    const decide = (r: Partial<PolicyRequest>) => evaluate(set, request(r)).policy?.name;
    expect(set.policies.map((p) => p.name)).toEqual([
      'Financial operations require approval',
      'Auto-approve file reads',
      'Auto-approve internal emails',
      'Default deny',
    ]);
    expect(decide({ action: 'file.read', scope: { size_limit: 10 } })).toBe('Auto-approve file reads');
    expect(decide({ action: 'gmail.send', context: { recipient: 'a@mycompany.com' } })).toBe(
      'Auto-approve internal emails',
    );
    expect(decide({ action: 'gmail.send', context: { recipient: 'a@other.com' } })).toBe('Default deny');
  });

  it('reads the documented `{policies: [...]}` form with snake_case', () => {
    const [policy] = parsePolicyDocument(`
policies:
  - name: Auto-approve small transfers
    conditions:
      action:
        equals: bank.transfer
      scope.amount:
        less_than: 100
      scope.currency:
        in: [USD, EUR]
    action: auto_approve
    priority: 110
    scope_template:
      max_amount: 100
`);
    expect(policy).toMatchObject({ priority: 110, scopeTemplate: { max_amount: 100 } });
  });

  it('reads JSON text', () => {
    const json = JSON.stringify({ policies: [{ name: 'p', conditions: { action: 'x' }, action: 'deny' }] });
    expect(parsePolicyDocument(json)).toHaveLength(1);
  });

  it('an empty document is an empty set', () => {
    expect(parsePolicyDocument('')).toEqual([]);
    expect(parsePolicyDocument('# only a comment\n')).toEqual([]);
  });

  it('YAML syntax errors and repeated keys are INVALID_POLICY with a line', () => {
    const syntax = thrown(() => parsePolicyDocument('- name: p\n  conditions: {action: [\n'));
    expect(syntax.code).toBe('INVALID_POLICY');
    expect(syntax.details).toMatchObject({ path: '', line: expect.any(Number) });
    const repeated = thrown(() => parsePolicyDocument('- name: p\n  action: deny\n  action: auto_approve\n'));
    expect(repeated.code).toBe('INVALID_POLICY');
    expect(repeated.message).toMatch(/line 3/);
  });

  it('schema errors in a document name their path', () => {
    const error = thrown(() =>
      parsePolicyDocument('- name: p\n  conditions: {scope.n: {less_than: x}}\n  action: deny\n'),
    );
    expect(error.details.path).toBe('policies[0].conditions.scope.n.less_than');
  });
});

describe('undecidable conditions settle on the strict side (defect 9)', () => {
  const policies = (...list: unknown[]) => compilePolicies(parsePolicySet(list));
  const denyBig = {
    name: 'no-big-payments',
    priority: 100,
    conditions: { action: 'payment.*', 'context.amount': { greater_than: 1000 } },
    action: 'deny',
  };
  const autoPayments = {
    name: 'payments',
    priority: 10,
    conditions: { action: 'payment.*' },
    action: 'auto_approve',
    scope_template: { max_uses: 1 },
  };
  const pay = (amount: unknown) => request({ action: 'payment.send', context: { amount } });

  it('a deny policy on an amount cannot be dodged by the shape of the amount', () => {
    const set = policies(denyBig, autoPayments);
    expect(evaluate(set, pay(500)).decision).toBe('auto_approve');
    expect(evaluate(set, pay(5000)).decision).toBe('deny');
    // Each of these was auto-approved before: "5000" was "not a number at all".
    for (const amount of ['5000', '5,000', '5000 USD', '5e3', [5000], { value: 5000 }, true]) {
      const decision = evaluate(set, pay(amount));
      expect(decision.decision, JSON.stringify(amount)).toBe('deny');
      expect(decision.policy?.name).toBe('no-big-payments');
    }
    expect(evaluate(set, pay('5,000')).reason).toBe(
      'Policy "no-big-payments" may apply (context.amount is not a number or a plain decimal string) and denies: denied to be safe',
    );
    expect(evaluate(set, pay('500')).decision).toBe('auto_approve'); // a plain decimal is its number
  });

  it('an auto-approve policy that cannot be decided goes to a person, never to auto-approval', () => {
    const small = {
      name: 'small-payments',
      priority: 20,
      conditions: { action: 'payment.*', 'context.amount': { less_than: 100 } },
      action: 'auto_approve',
      scope_template: { max_amount: 100 },
      ttl: 120,
    };
    const set = policies(small, { ...autoPayments, ttl: 600 });
    expect(evaluate(set, pay(50)).decision).toBe('auto_approve');
    const decision = evaluate(set, pay('50 USD'));
    expect(decision).toMatchObject({
      decision: 'require_approval',
      policy: { name: 'small-payments' },
      scopeTemplate: { max_amount: 100, max_uses: 1 }, // every template involved
      ttlCap: 120,
    });
    expect(decision.reason).toContain('could not be evaluated (context.amount is not a number');
    // With no policy surely applying, the default is not enough to auto-approve either.
    const alone = policies(small);
    expect(evaluate(alone, pay('50 USD'), 'auto_approve').decision).toBe('require_approval');
    expect(evaluate(alone, pay('50 USD'), 'deny').decision).toBe('deny');
  });

  it('a policy that surely denies after an undecidable one still denies; a definite match first wins', () => {
    const undecided = {
      name: 'tagged',
      priority: 50,
      conditions: { 'context.tag': { starts_with: 'x' } },
      action: 'auto_approve',
    };
    const denyAll = {
      name: 'deny-payments',
      priority: 1,
      conditions: { action: 'payment.*' },
      action: 'deny',
    };
    expect(
      evaluate(policies(undecided, denyAll), request({ action: 'payment.x', context: { tag: ['x'] } })),
    ).toMatchObject({ decision: 'deny', policy: { name: 'deny-payments' } });
    const first = { ...denyAll, priority: 99, conditions: { action: 'email.*' } };
    // A request the higher policy surely decides never looks at the undecidable one.
    expect(evaluate(policies(first, undecided), request({ context: { tag: ['x'] } }))).toMatchObject({
      decision: 'deny',
      policy: { name: 'deny-payments' },
    });
  });

  it('the approval settings of the first policy that has them travel with the escalation', () => {
    const set = policies(
      { name: 'a', priority: 9, conditions: { 'context.n': { less_than: 5 } }, action: 'auto_approve' },
      { name: 'b', priority: 1, conditions: {}, action: 'require_approval', approval: { quorum: 2 } },
    );
    expect(evaluate(set, request({ context: { n: 'five' } }))).toMatchObject({
      decision: 'require_approval',
      policy: { name: 'a' },
      approval: { quorum: 2 },
    });
  });
});

describe('hostile regexes (defect 1)', () => {
  const withMatches = (pattern: string) => () =>
    parsePolicySet([{ name: 'p', conditions: { 'context.text': { matches: pattern } }, action: 'deny' }]);

  it('refuses a pattern over the size bounds with INVALID_POLICY naming the condition', () => {
    const attack = `${'.{1000}'.repeat(10)}[^a]`; // 74 characters, 10 003 instructions
    for (const pattern of [attack, '.{600}.{600}', '\\p{L}{1000}', `${'a|'.repeat(600)}b`]) {
      const error = thrown(withMatches(pattern));
      expect(error.code, pattern).toBe('INVALID_POLICY');
      expect(error.details.path).toBe('policies[0].conditions.context.text.matches');
      expect(error.message, pattern).toMatch(/too large|characters long/);
    }
    expect(thrown(withMatches('x'.repeat(1001))).message).toContain('1001 characters long; at most 1000');
    expect(thrown(withMatches('.{600}.{600}')).message).toContain(
      'compiles to 1202 instructions (at most 1000)',
    );
    // Just inside the bounds is accepted.
    expect(() => withMatches('.{998}')()).not.toThrow();
  });

  it('refuses an action glob over the bounds when the set is compiled', () => {
    const glob = `${'a*'.repeat(400)}`;
    const error = thrown(() =>
      compilePolicies(parsePolicySet([{ name: 'g', conditions: { action: glob }, action: 'deny' }])),
    );
    expect(error.code).toBe('INVALID_POLICY');
    expect(error.details.path).toBe('policies[0].conditions.action.equals');
  });

  it('a string too long to match, or past the work limit, is undecidable: never a silent no-match', () => {
    const set = compilePolicies(
      parsePolicySet([
        { name: 'redos', conditions: { 'context.text': { matches: '(a+)+$' } }, action: 'deny' },
      ]),
    );
    // 4096 characters are matched (and (a+)+$ is linear on RE2); one more is not, and fails closed.
    expect(evaluate(set, request({ context: { text: `${'a'.repeat(4094)}!` } })).policy).toBeNull();
    const long = evaluate(set, request({ context: { text: `${'a'.repeat(50_000)}!` } }));
    expect(long).toMatchObject({ decision: 'deny', policy: { name: 'redos' } });
    expect(long.reason).toContain('longer than 4096 characters');
    // Many large patterns over long values: the work limit of one evaluation runs out first.
    const many = compilePolicies(
      parsePolicySet(
        Array.from({ length: 20 }, (_, i) => ({
          name: `p${i}`,
          priority: 100 - i,
          conditions: { 'context.text': { matches: `[^z]{${900 + i}}x` } },
          action: 'auto_approve',
        })),
      ),
    );
    const decision = evaluate(many, request({ context: { text: 'a'.repeat(4000) } }));
    expect(decision.decision).toBe('require_approval');
    expect(decision.reason).toContain('work limit');
  });

  it('contains is charged to the work limit too: V8 substring search is not linear (sibling)', () => {
    // A needle that breaks a long run of one letter: String#includes took 28 ms over 32 000
    // characters with a 1001-character needle, 220 ms with 8001.
    const needle = `${'a'.repeat(4000)}b${'a'.repeat(4000)}`;
    const set = compilePolicies(
      parsePolicySet([{ name: 'c', conditions: { 'context.text': { contains: needle } }, action: 'deny' }]),
    );
    const decision = evaluate(set, request({ context: { text: 'a'.repeat(32_000) } }));
    expect(decision).toMatchObject({ decision: 'deny', policy: { name: 'c' } });
    expect(decision.reason).toContain('work limit');
    expect(holds({ 'context.text': { contains: 'needle' } }, { context: { text: 'a needle in hay' } })).toBe(
      true,
    );
  });
});
