import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/core/clock.js';
import type { AppError } from '../../src/core/errors.js';
import type { PolicyRequest } from '../../src/core/policy/index.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { AuditService } from '../../src/services/audit.js';
import { PolicyService } from '../../src/services/policies.js';
import type { Db } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrate.js';
import { createPostgresDb } from '../../src/store/postgres.js';
import { appError } from '../helpers/appError.js';
import { createSchema, dropSchema, testDatabases, uniqueSchema } from '../helpers/databases.js';
import { memoryLogger } from '../helpers/memoryLogger.js';

const clock: Clock = { now: () => new Date() };
const operator: RequestOrigin = {
  actor: { type: 'operator', id: 'opk_test', name: 'tester', platform: 'api' },
  ip: '127.0.0.1',
  userAgent: 'vitest',
};

const request = (overrides: Partial<PolicyRequest> = {}): PolicyRequest => ({
  agentId: 'agent_1',
  agentName: 'billing-bot',
  action: 'payment.create',
  resource: null,
  scope: { amount: 50 },
  context: {},
  ...overrides,
});

const smallPayments = {
  name: 'small-payments',
  priority: 10,
  conditions: { action: 'payment.*', 'scope.amount': { less_than: 100 } },
  action: 'auto_approve',
  scope_template: { max_amount: 100 },
  ttl: 120,
};
const denyDelete = {
  name: 'no-deletes',
  priority: 100,
  conditions: { action: { starts_with: 'db.delete' } },
  action: 'deny',
  reason: 'Deletes are never allowed',
};

/** Policy errors name the offending path. */
const rejection = (promise: Promise<unknown>) => appError<{ path: string }>(promise);

async function countAudit(db: Db): Promise<number> {
  const { rows } = await db.query<{ n: unknown }>('SELECT count(*) AS n FROM audit_events');
  return Number(rows[0]?.n ?? 0);
}

describe.each(testDatabases())('PolicyService on $name', (database) => {
  let db: Db;
  let audit: AuditService;
  let policies: PolicyService;
  const dirs: string[] = [];

  beforeAll(async () => {
    db = await database.open();
  });

  // One database per file (a fresh PGlite costs seconds); each test starts from empty tables.
  beforeEach(async () => {
    await db.exec('TRUNCATE policies, audit_events, agents CASCADE');
    audit = new AuditService(db, clock);
    policies = new PolicyService(db, audit, clock, 'require_approval');
    await policies.load();
  });

  afterAll(async () => {
    await db?.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  function policyFile(text: string): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'aotp-policies-'));
    dirs.push(dir);
    const file = path.join(dir, 'policies.yaml');
    writeFileSync(file, text);
    return file;
  }

  it('starts with an empty set deciding the default action', async () => {
    expect(policies.isLoaded).toBe(true);
    expect(await policies.list()).toEqual([]);
    expect(policies.evaluate(request())).toMatchObject({ decision: 'require_approval', policy: null });
  });

  it('creates, reads, updates and deletes a policy, each change audited with its actor', async () => {
    const created = await policies.create(smallPayments, operator);
    expect(created.id).toMatch(/^pol_[A-Za-z0-9]{22}$/);
    expect(created.definition).toEqual({
      id: created.id,
      name: 'small-payments',
      priority: 10,
      enabled: true,
      conditions: { action: { equals: 'payment.*' }, 'scope.amount': { lessThan: 100 } },
      action: 'auto_approve',
      scopeTemplate: { max_amount: 100 },
      ttl: 120,
    });
    expect(await policies.get(created.id)).toEqual(created);
    expect((await policies.list()).map((p) => p.id)).toEqual([created.id]);

    const second = await policies.create({ ...denyDelete, id: 'pol_ignoredignoredignored1' }, operator);
    expect(second.id).not.toBe('pol_ignoredignoredignored1');
    expect(second.position).toBeGreaterThan(created.position);

    const updated = await policies.update(
      created.id,
      { scope_template: { max_amount: 75 }, enabled: false, reason: 'small', ttl: null },
      operator,
    );
    expect(updated.definition).toMatchObject({ scopeTemplate: { max_amount: 75 }, enabled: false });
    expect(updated.definition.ttl).toBeUndefined();
    expect(updated.position).toBe(created.position);
    expect(updated.createdAt.getTime()).toBe(created.createdAt.getTime());
    expect((await policies.get(created.id)).definition).toEqual(updated.definition);

    const removed = await policies.remove(second.id, operator);
    expect(removed.name).toBe('no-deletes');
    expect((await policies.list()).map((p) => p.name)).toEqual(['small-payments']);

    const events = await audit.list({ limit: 100 });
    expect(events.map((e) => e.type).reverse()).toEqual([
      'policy.created',
      'policy.created',
      'policy.updated',
      'policy.deleted',
    ]);
    for (const event of events) {
      expect(event.actor).toMatchObject({ type: 'operator', id: 'opk_test' });
      expect(event.ip).toBe('127.0.0.1');
    }
    const update = events.find((e) => e.type === 'policy.updated');
    expect(update?.details).toEqual({
      id: created.id,
      name: 'small-payments',
      fields: ['enabled', 'reason', 'scopeTemplate', 'ttl'],
    });
    expect(events.find((e) => e.type === 'policy.deleted')?.details).toMatchObject({
      id: second.id,
      name: 'no-deletes',
    });
  });

  it('answers NOT_FOUND for unknown and malformed ids', async () => {
    for (const id of ['pol_AAAAAAAAAAAAAAAAAAAAAA', 'nope', "pol_'; DROP TABLE policies"]) {
      expect((await rejection(policies.get(id))).code).toBe('NOT_FOUND');
      expect((await rejection(policies.update(id, { priority: 1 }, operator))).code).toBe('NOT_FOUND');
      expect((await rejection(policies.remove(id, operator))).code).toBe('NOT_FOUND');
    }
    expect(await countAudit(db)).toBe(0);
  });

  it('refuses an invalid change naming its path, writing nothing and keeping the set in force', async () => {
    const kept = await policies.create(smallPayments, operator);
    const auditBefore = await countAudit(db);
    const typo = { ...smallPayments, name: 'typo', conditions: { 'scope.amount': { lessthan: 10 } } };

    const replaced = await rejection(policies.replaceAll([typo], operator));
    expect(replaced.code).toBe('INVALID_POLICY');
    expect(replaced.details.path).toBe('policies[0].conditions.scope.amount.lessthan');
    expect(replaced.message).toContain('policies[0].conditions.scope.amount.lessthan');

    const created = await rejection(policies.create(typo, operator));
    expect(created.code).toBe('INVALID_POLICY');
    expect(created.details.path).toBe('conditions.scope.amount.lessthan');

    const patched = await rejection(
      policies.update(kept.id, { conditions: { 'scope.amount': { lessthan: 1 } } }, operator),
    );
    expect(patched.details.path).toBe('conditions.scope.amount.lessthan');

    const regex = await rejection(
      policies.create({ name: 'r', conditions: { resource: { matches: '(' } }, action: 'deny' }, operator),
    );
    expect(regex.details.path).toBe('conditions.resource.matches');

    const template = await rejection(
      policies.replaceAll({ policies: [{ ...smallPayments, scope_template: { max_amount: -1 } }] }, operator),
    );
    expect(template.details.path).toBe('policies[0].scopeTemplate.max_amount');

    const duplicate = await rejection(policies.create({ ...denyDelete, name: 'small-payments' }, operator));
    expect(duplicate.details.path).toBe('name');
    const duplicateInSet = await rejection(policies.replaceAll([denyDelete, denyDelete], operator));
    expect(duplicateInSet.details.path).toBe('policies[1].name');

    const other = await policies.create(denyDelete, operator);
    const rename = await rejection(policies.update(other.id, { name: 'small-payments' }, operator));
    expect(rename.details.path).toBe('name');
    const both = await rejection(
      policies.update(other.id, { scopeTemplate: {}, scope_template: {} }, operator),
    );
    expect(both.details.path).toBe('scope_template');
    const id = await rejection(policies.update(other.id, { id: kept.id }, operator));
    expect(id.details.path).toBe('id');

    expect(await countAudit(db)).toBe(auditBefore + 1); // only the valid create of `other`
    expect((await policies.list()).map((p) => p.name)).toEqual(['small-payments', 'no-deletes']);
    expect(policies.evaluate(request())).toMatchObject({
      decision: 'auto_approve',
      policy: { id: kept.id, name: 'small-payments' },
    });
  });

  it('rolls the change back when its audit row cannot be written', async () => {
    const before = await policies.create(smallPayments, operator);
    const failing = {
      ...audit,
      append: async () => {
        throw new Error('audit down');
      },
    } as unknown as AuditService;
    const broken = new PolicyService(db, failing, clock, 'require_approval');
    await broken.load();
    await expect(broken.replaceAll([denyDelete], operator)).rejects.toThrow('audit down');
    await expect(broken.remove(before.id, operator)).rejects.toThrow('audit down');
    expect((await policies.list()).map((p) => p.id)).toEqual([before.id]);
    expect(broken.evaluate(request())).toMatchObject({ decision: 'auto_approve' });
  });

  it('evaluates with the new set right after each change, and tells listeners', async () => {
    let notified = 0;
    policies.onChange(() => {
      notified += 1;
    });
    const created = await policies.create(smallPayments, operator);
    expect(policies.evaluate(request())).toEqual({
      decision: 'auto_approve',
      policy: { id: created.id, name: 'small-payments' },
      reason: 'Matched policy "small-payments"',
      scopeTemplate: { max_amount: 100 },
      ttlCap: 120,
    });
    await policies.update(created.id, { action: 'deny' }, operator);
    expect(policies.evaluate(request()).decision).toBe('deny');
    await policies.update(created.id, { enabled: false }, operator);
    expect(policies.evaluate(request())).toMatchObject({ decision: 'require_approval', policy: null });
    await policies.replaceAll({ policies: [{ ...smallPayments, action: 'require_approval' }] }, operator);
    expect(policies.evaluate(request())).toMatchObject({
      decision: 'require_approval',
      policy: { name: 'small-payments' },
    });
    await policies.remove((await policies.list())[0]!.id, operator);
    expect(policies.evaluate(request())).toMatchObject({ policy: null });
    expect(notified).toBe(5);
  });

  it('replaceAll keeps the ids of policies it continues (by id, else by name) and audits the diff', async () => {
    const a = await policies.create(smallPayments, operator);
    const b = await policies.create(denyDelete, operator);
    const result = await policies.replaceAll(
      [
        { ...denyDelete, priority: 5 },
        { ...smallPayments, id: a.id, name: 'renamed' },
        { name: 'new-one', conditions: {}, action: 'require_approval' },
      ],
      operator,
    );
    const [first, second, third] = result.policies;
    expect(first?.id).toBe(b.id);
    expect(second?.id).toBe(a.id);
    expect(second?.name).toBe('renamed');
    expect(third?.id).toMatch(/^pol_/);
    expect((await policies.list()).map((p) => [p.id, p.position])).toEqual([
      [b.id, 0],
      [a.id, 1],
      [third?.id, 2],
    ]);
    const [event] = await audit.list({ eventType: 'policy.replaced', limit: 1 });
    expect(event?.details).toMatchObject({
      count: 3,
      previousCount: 2,
      created: ['new-one'],
      updated: ['no-deletes', 'renamed'],
      removed: [],
    });
  });

  it('applies YAML documents, reporting syntax errors with their line', async () => {
    const result = await policies.applyDocument(
      'policies:\n  - name: yaml-policy\n    conditions:\n      action: email.*\n    action: auto_approve\n',
      operator,
    );
    expect(result.policies.map((p) => p.name)).toEqual(['yaml-policy']);
    expect(policies.evaluate(request({ action: 'email.send' })).decision).toBe('auto_approve');
    const syntax = await rejection(policies.applyDocument('policies:\n  - name: [unclosed\n', operator));
    expect(syntax.code).toBe('INVALID_POLICY');
    expect(syntax.details).toHaveProperty('line');
    expect((await policies.list()).map((p) => p.name)).toEqual(['yaml-policy']);
  });

  it('loadFile replaces the stored set only when the file differs, as the system', async () => {
    let notified = 0;
    policies.onChange(() => {
      notified += 1;
    });
    const file = policyFile(
      [
        'policies:',
        '  - name: small-payments',
        '    priority: 10',
        '    conditions:',
        '      action: payment.*',
        '      scope.amount: { less_than: 100 }',
        '    action: auto_approve',
        '    scope_template: { max_amount: 100 }',
      ].join('\n'),
    );
    const first = await policies.loadFile(file);
    expect(first.changed).toBe(true);
    const events = await audit.list({ limit: 10 });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({
      type: 'policy.replaced',
      actor: { type: 'system' },
      details: { count: 1, source: 'file', file },
    });

    // Restarting with the same file, even written in the other spelling, writes nothing.
    const again = await policies.loadFile(file);
    expect(again.changed).toBe(false);
    const camel = policyFile(
      JSON.stringify([
        {
          name: 'small-payments',
          priority: 10,
          enabled: true,
          conditions: { action: { equals: 'payment.*' }, 'scope.amount': { lessThan: 100 } },
          action: 'auto_approve',
          scopeTemplate: { max_amount: 100 },
        },
      ]),
    );
    const fresh = new PolicyService(db, audit, clock, 'require_approval');
    expect((await fresh.loadFile(camel)).changed).toBe(false);
    expect(fresh.evaluate(request())).toMatchObject({ decision: 'auto_approve' });
    expect(await audit.list({ limit: 10 })).toHaveLength(1);
    expect(notified).toBe(1);
    expect(again.policies[0]?.id).toBe(first.policies[0]?.id);

    // A changed file replaces the set; the policy it continues keeps its id.
    const changed = policyFile(
      'policies:\n  - name: small-payments\n    conditions: { action: payment.* }\n    action: deny\n',
    );
    const third = await policies.loadFile(changed);
    expect(third.changed).toBe(true);
    expect(third.policies[0]?.id).toBe(first.policies[0]?.id);
    expect(policies.evaluate(request()).decision).toBe('deny');
    expect(await audit.list({ limit: 10 })).toHaveLength(2);

    const invalid = policyFile('policies:\n  - name: x\n    conditions: {}\n    action: allow\n');
    const error = await rejection(policies.loadFile(invalid));
    expect(error.details.path).toBe('policies[0].action');
    expect(error.message).toContain(invalid);
    await expect(policies.loadFile(path.join(path.dirname(invalid), 'missing.yaml'))).rejects.toThrow(
      /Cannot read the policy file/,
    );
    expect(policies.evaluate(request()).decision).toBe('deny');
  });

  it('loadFile logs what it applied, by name, and warns about policies naming agents that do not exist', async () => {
    await new AgentService(db, audit, clock).create({ name: 'billing-bot' }, operator);
    await policies.replaceAll([smallPayments, denyDelete], operator);
    const log = memoryLogger();
    const service = new PolicyService(db, audit, clock, 'require_approval', log.logger);
    const file = policyFile(
      [
        '- name: small-payments',
        '  priority: 30',
        '  agent: billing-bot',
        '  conditions: { action: payment.* }',
        '  action: auto_approve',
        '- name: ghost-refunds',
        '  agent: ghost-bot',
        '  conditions: { action: refund.*, agent: { not_in: [billing-bot, typo-bot] } }',
        '  action: deny',
      ].join('\n'),
    );
    const result = await service.loadFile(file);
    expect(result.plan).toMatchObject({
      added: [{ name: 'ghost-refunds' }],
      changed: [
        { name: 'small-payments', fields: ['agent', 'conditions', 'priority', 'scopeTemplate', 'ttl'] },
      ],
      removed: [{ name: 'no-deletes' }],
    });
    const lines = log
      .text()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({
      level: 30,
      msg: 'POLICIES_FILE applied: 1 added, 1 changed, 1 removed, 0 unchanged',
      file,
      added: ['ghost-refunds'],
      changed: [{ name: 'small-payments' }],
      removed: ['no-deletes'],
    });
    expect(lines[1]).toMatchObject({
      level: 40,
      msg: 'POLICIES_FILE: policies name agents that do not exist: ghost-refunds (ghost-bot, typo-bot)',
      policies: [{ policy: 'ghost-refunds', agents: ['ghost-bot', 'typo-bot'] }],
    });

    // The next start with the same file applies nothing and says so, warning again.
    const next = memoryLogger();
    await new PolicyService(db, audit, clock, 'require_approval', next.logger).loadFile(file);
    expect(next.text()).toContain(
      'POLICIES_FILE: the stored policies already match the file; nothing applied',
    );
    expect(next.text()).toContain('ghost-refunds (ghost-bot, typo-bot)');
  });

  it('load() keeps the previous compiled set when the stored set does not compile', async () => {
    await policies.create(smallPayments, operator);
    await db.query(`INSERT INTO policies (id, name, definition, position) VALUES ($1, $2, $3::jsonb, 99)`, [
      'pol_CorruptCorruptCorrupt1',
      'corrupt',
      JSON.stringify({
        name: 'corrupt',
        priority: 1000,
        enabled: true,
        conditions: { action: { lessthan: 1 } },
        action: 'deny',
      }),
    ]);
    const error = await rejection(policies.load());
    expect(error.code).toBe('INVALID_POLICY');
    expect(error.details.path).toBe('policies[1].conditions.action.lessthan');
    expect(policies.evaluate(request())).toMatchObject({ decision: 'auto_approve' });

    // A service starting on it still starts: the policy it cannot read fails closed (a deny
    // policy denies whatever it might match), the others decide as stored.
    const log = memoryLogger();
    const cold = new PolicyService(db, audit, clock, 'auto_approve', log.logger);
    await cold.load();
    expect(cold.isLoaded).toBe(true);
    expect(cold.evaluate(request())).toMatchObject({ decision: 'deny' });
    expect(log.text()).toContain('a stored policy does not compile');
  });

  it('starts on a stored pattern larger than an upgrade now accepts, failing closed', async () => {
    const tooLarge = `${'.{1000}'.repeat(10)}[^a]`;
    const stored = (id: string, name: string, priority: number, action: string) =>
      db.query(`INSERT INTO policies (id, name, definition, position) VALUES ($1, $2, $3::jsonb, $4)`, [
        id,
        name,
        JSON.stringify({
          name,
          priority,
          enabled: true,
          conditions: { action: { equals: 'payment.*' }, 'context.memo': { matches: tooLarge } },
          action,
        }),
        priority,
      ]);
    await stored('pol_LegacyApproveLegacyApp1', 'legacy-approve', 10, 'auto_approve');
    const cold = new PolicyService(db, audit, clock, 'auto_approve', memoryLogger().logger);
    await cold.load();
    // It would have auto-approved only if its pattern matched: now a human decides.
    expect(cold.evaluate(request({ context: { memo: 'x' } })).decision).toBe('require_approval');
    // A request it cannot match (another action) is not held up by it.
    expect(cold.evaluate(request({ action: 'email.send' })).decision).toBe('auto_approve');

    await stored('pol_LegacyDenyLegacyDenyLe1', 'legacy-deny', 20, 'deny');
    const again = new PolicyService(db, audit, clock, 'auto_approve', memoryLogger().logger);
    await again.load();
    expect(again.evaluate(request({ context: { memo: 'x' } })).decision).toBe('deny');
    // A template over the bounds is dropped, not applied: a human decides, the agent gets no 400.
    await db.query(`INSERT INTO policies (id, name, definition, position) VALUES ($1, $2, $3::jsonb, 30)`, [
      'pol_LegacyTemplateLegacyTe1',
      'legacy-template',
      JSON.stringify({
        name: 'legacy-template',
        priority: 30,
        enabled: true,
        conditions: { action: { equals: 'email.*' } },
        action: 'auto_approve',
        scopeTemplate: { to_pattern: tooLarge },
      }),
    ]);
    const third = new PolicyService(db, audit, clock, 'auto_approve', memoryLogger().logger);
    await third.load();
    const tried = await third.test({ action: 'email.send', scope: { max_emails: 1 } });
    expect(tried).toMatchObject({ decision: 'require_approval', scope: { max_emails: 1 } });
    // Changing the set through the service still refuses it, naming the pattern.
    const error = await rejection(cold.create({ ...denyDelete }, operator));
    expect(error.code).toBe('INVALID_POLICY');
    expect(error.details.path).toMatch(/matches/);
  });

  it('a policy stored before the size limits still loads and decides; changing it needs it within them', async () => {
    const longName = 'n'.repeat(300);
    await db.query(`INSERT INTO policies (id, name, definition, position) VALUES ($1, $2, $3::jsonb, 0)`, [
      'pol_OversizedOversizedOver',
      longName,
      JSON.stringify({
        name: longName,
        priority: 5,
        enabled: true,
        conditions: { action: 'payment.*' },
        action: 'deny',
        reason: 'r'.repeat(5000),
      }),
    ]);
    await policies.load();
    expect(policies.evaluate(request())).toMatchObject({ decision: 'deny', policy: { name: longName } });
    // Another policy can still be added next to it; the old one is changed only into a valid one.
    await policies.create({ ...denyDelete }, operator);
    const error = await rejection(policies.update('pol_OversizedOversizedOver', { priority: 6 }, operator));
    expect(error.details.path).toBe('name');
    const fixed = await policies.update(
      'pol_OversizedOversizedOver',
      { name: 'short', reason: null },
      operator,
    );
    expect(fixed.name).toBe('short');
  });

  it('POLICIES_FILE: a string Postgres cannot store or an over-long name is INVALID_POLICY, nothing stored', async () => {
    for (const name of ['"bad\\0name"', 'n'.repeat(201)]) {
      const file = policyFile(
        `policies:\n  - name: ${name}\n    conditions: { action: x }\n    action: deny\n`,
      );
      const error = await rejection(policies.loadFile(file));
      expect(error.code).toBe('INVALID_POLICY');
      expect(error.details.path).toBe('policies[0].name');
    }
    expect(await policies.list()).toEqual([]);
  });

  it('test() gives the decision, narrowed scope and ttl without storing anything', async () => {
    const agents = new AgentService(db, audit, clock);
    const { agent } = await agents.create({ name: 'billing-bot' }, operator);
    const created = await policies.create(
      { ...smallPayments, agent: 'billing-bot', conditions: { action: 'payment.*' } },
      operator,
    );
    await policies.create(denyDelete, operator);
    const auditBefore = await countAudit(db);

    const byId = await policies.test({
      agentId: agent.id,
      action: 'payment.create',
      scope: { max_amount: 500 },
    });
    expect(byId).toEqual({
      decision: 'auto_approve',
      policy: { id: created.id, name: 'small-payments' },
      reason: 'Matched policy "small-payments"',
      scope: { max_amount: 100 },
      ttl: 120,
      agent: { id: agent.id, name: 'billing-bot' },
    });
    const byName = await policies.test({ agentName: 'billing-bot', action: 'payment.create', ttl: 60 });
    expect(byName).toMatchObject({ decision: 'auto_approve', ttl: 60, agent: { id: agent.id } });
    const otherAgent = await policies.test({ agentName: 'someone-else', action: 'payment.create' });
    expect(otherAgent).toMatchObject({
      decision: 'require_approval',
      policy: null,
      scope: {},
      ttl: 300,
      agent: { id: null, name: 'someone-else' },
    });
    const denied = await policies.test({ action: 'db.delete.users' });
    expect(denied).toMatchObject({
      decision: 'deny',
      scope: null,
      ttl: null,
      reason: 'Deletes are never allowed',
    });
    const badScope = await rejection(
      policies.test({ agentId: agent.id, action: 'payment.create', scope: { max_amount: 'lots' } }),
    );
    expect(badScope.code).toBe('VALIDATION_ERROR');

    expect(await countAudit(db)).toBe(auditBefore);
    const { rows } = await db.query<{ n: unknown }>('SELECT count(*) AS n FROM permissions');
    expect(Number(rows[0]?.n)).toBe(0);
  });

  it('a second instance decides the same after load(); concurrent writers never both win', async () => {
    const a = policies;
    const b = new PolicyService(db, audit, clock, 'require_approval');
    await b.load();
    await a.create(smallPayments, operator);
    expect(b.evaluate(request()).decision).toBe('require_approval');
    await b.load();
    expect(b.evaluate(request())).toEqual(a.evaluate(request()));

    const results = await Promise.allSettled([
      a.create({ ...denyDelete, name: 'same' }, operator),
      b.create({ ...denyDelete, name: 'same', priority: 1 }, operator),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((refused.reason as AppError).code).toBe('INVALID_POLICY');

    await Promise.all([
      a.create({ ...denyDelete, name: 'one' }, operator),
      b.create({ ...denyDelete, name: 'two' }, operator),
    ]);
    const positions = (await a.list()).map((p) => p.position);
    expect(new Set(positions).size).toBe(positions.length);
  });
});

describe.runIf(process.env.TEST_DATABASE_URL)('two PolicyService instances on one Postgres database', () => {
  const url = process.env.TEST_DATABASE_URL ?? '';
  const schema = uniqueSchema();
  let dbA: Db;
  let dbB: Db;

  beforeAll(async () => {
    await createSchema(url, schema);
    dbA = createPostgresDb({ connectionString: url, poolSize: 4, schema });
    dbB = createPostgresDb({ connectionString: url, poolSize: 4, schema });
    await migrate(dbA);
  });

  afterAll(async () => {
    await dbA?.close();
    await dbB?.close();
    await dropSchema(url, schema);
  });

  it('after A changes the set and B loads it, B decides the same', async () => {
    const a = new PolicyService(dbA, new AuditService(dbA, clock), clock, 'require_approval');
    const b = new PolicyService(dbB, new AuditService(dbB, clock), clock, 'require_approval');
    await Promise.all([a.load(), b.load()]);

    const created = await a.create(smallPayments, operator);
    await b.load();
    expect(b.evaluate(request())).toEqual(a.evaluate(request()));
    expect(b.evaluate(request())).toMatchObject({ policy: { id: created.id } });

    await a.replaceAll([denyDelete, { ...smallPayments, action: 'deny' }], operator);
    await b.load();
    for (const req of [request(), request({ action: 'db.delete.rows' }), request({ action: 'x' })]) {
      expect(b.evaluate(req)).toEqual(a.evaluate(req));
    }

    // Both instances start with the same POLICIES_FILE at once: one replaces, the other sees it done.
    const dir = mkdtempSync(path.join(tmpdir(), 'aotp-policies-'));
    try {
      const file = path.join(dir, 'p.yaml');
      writeFileSync(file, 'policies:\n  - name: only\n    conditions: {}\n    action: auto_approve\n');
      const [ra, rb] = await Promise.all([a.loadFile(file), b.loadFile(file)]);
      expect([ra.changed, rb.changed].sort()).toEqual([false, true]);
      expect(b.evaluate(request())).toEqual(a.evaluate(request()));
      const { rows } = await dbA.query<{ n: unknown }>(
        `SELECT count(*) AS n FROM audit_events WHERE type = 'policy.replaced'`,
      );
      expect(Number(rows[0]?.n)).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
