import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { systemClock } from '../../src/core/clock.js';
import { newOperatorKey } from '../../src/core/credentials.js';
import { registerPolicyRoutes } from '../../src/http/routes/policies.js';
import { AgentService } from '../../src/services/agents.js';
import { AuditService } from '../../src/services/audit.js';
import { PolicyService } from '../../src/services/policies.js';
import type { Db } from '../../src/store/db.js';
import { createRedis, type Redis, whenReady } from '../../src/store/redis.js';
import { testDatabases } from '../helpers/databases.js';
import { type RouteTestApp, startRouteTestApp } from '../helpers/routeApp.js';

interface Envelope<T = Record<string, unknown>> {
  success: boolean;
  data: T;
  error: { code: string; message: string; details?: { path?: string }; requestId: string };
}

describe.each(testDatabases())('policy routes on $name', (database) => {
  let db: Db;
  let redis: Redis;
  let server: RouteTestApp;
  let policies: PolicyService;
  let audit: AuditService;
  const operatorKey = newOperatorKey();
  let agentKey: string;
  let agentId: string;

  beforeAll(async () => {
    db = await database.open();
    redis = createRedis(inject('redisUrl'));
    await whenReady(redis, 5000);
    audit = new AuditService(db, systemClock);
    const agents = new AgentService(db, audit, systemClock);
    policies = new PolicyService(db, audit, systemClock, 'require_approval');
    await policies.load();
    const created = await agents.create({ name: 'billing-bot' }, { actor: { type: 'system' } });
    agentKey = created.apiKey;
    agentId = created.agent.id;
    server = await startRouteTestApp({
      db,
      redis,
      clock: systemClock,
      agents,
      operatorKey,
      routes: [(route) => registerPolicyRoutes(route, policies, agents)],
    });
  });

  afterAll(async () => {
    await server?.close();
    redis?.disconnect();
    await db?.close();
  });

  async function call<T = Record<string, unknown>>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    body?: unknown,
    key: string | null = operatorKey,
  ): Promise<{ status: number; body: Envelope<T> }> {
    const res = await server.app.inject({
      method,
      url,
      headers: key ? { authorization: `Bearer ${key}` } : {},
      ...(body === undefined ? {} : { payload: body as object }),
    });
    return { status: res.statusCode, body: res.json() as Envelope<T> };
  }

  const smallPayments = {
    name: 'small-payments',
    priority: 10,
    agent: 'billing-bot',
    conditions: { action: 'payment.*', 'scope.amount': { less_than: 100 } },
    action: 'auto_approve',
    scope_template: { max_amount: 100 },
    ttl: 120,
  };

  it('refuses callers without a key (401) and agents (403)', async () => {
    const routes: [Parameters<typeof call>[0], string, unknown?][] = [
      ['GET', '/api/v1/policies'],
      ['POST', '/api/v1/policies', smallPayments],
      ['PUT', '/api/v1/policies', { policies: [] }],
      ['GET', '/api/v1/policies/pol_AAAAAAAAAAAAAAAAAAAAAA'],
      ['PATCH', '/api/v1/policies/pol_AAAAAAAAAAAAAAAAAAAAAA', { priority: 1 }],
      ['DELETE', '/api/v1/policies/pol_AAAAAAAAAAAAAAAAAAAAAA'],
      ['POST', '/api/v1/policies/test', { action: 'x' }],
    ];
    for (const [method, url, body] of routes) {
      const anonymous = await call(method, url, body, null);
      expect(anonymous.status, `${method} ${url}`).toBe(401);
      expect(anonymous.body.error.code).toBe('MISSING_API_KEY');
      const agent = await call(method, url, body, agentKey);
      expect(agent.status, `${method} ${url}`).toBe(403);
      expect(agent.body.error.code).toBe('FORBIDDEN');
    }
    expect(await policies.list()).toEqual([]);
  });

  it('creates (201), reads, lists, patches and deletes a policy with camelCase DTOs', async () => {
    const created = await call('POST', '/api/v1/policies', smallPayments);
    expect(created.status).toBe(201);
    const policy = created.body.data;
    expect(policy).toMatchObject({
      name: 'small-payments',
      priority: 10,
      agent: 'billing-bot',
      enabled: true,
      conditions: { action: { equals: 'payment.*' }, 'scope.amount': { lessThan: 100 } },
      action: 'auto_approve',
      scopeTemplate: { max_amount: 100 },
      ttl: 120,
      position: 0,
    });
    const id = policy.id as string;
    expect(id).toMatch(/^pol_/);
    expect(new Date(policy.createdAt as string).toISOString()).toBe(policy.createdAt);
    expect(policy).not.toHaveProperty('scope_template');

    const got = await call('GET', `/api/v1/policies/${id}`);
    expect(got.status).toBe(200);
    expect(got.body.data).toEqual(policy);

    const listed = await call<{ policies: unknown[] }>('GET', '/api/v1/policies');
    expect(listed.status).toBe(200);
    expect(listed.body.data.policies).toEqual([policy]);

    const patched = await call('PATCH', `/api/v1/policies/${id}`, { priority: 20, scope_template: null });
    expect(patched.status).toBe(200);
    expect(patched.body.data).toMatchObject({ id, priority: 20, createdAt: policy.createdAt });
    expect(patched.body.data).not.toHaveProperty('scopeTemplate');

    const deleted = await call('DELETE', `/api/v1/policies/${id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body.data).toMatchObject({ id, name: 'small-payments' });
    expect((await call('GET', `/api/v1/policies/${id}`)).status).toBe(404);

    const types = (await audit.list({ limit: 10 })).map((e) => [e.type, e.actor.type]);
    expect(types.slice(0, 3)).toEqual([
      ['policy.deleted', 'operator'],
      ['policy.updated', 'operator'],
      ['policy.created', 'operator'],
    ]);
  });

  it('answers 404 NOT_FOUND for unknown ids', async () => {
    for (const [method, body] of [['GET'], ['PATCH', { priority: 1 }], ['DELETE']] as const) {
      const res = await call(method, '/api/v1/policies/pol_AAAAAAAAAAAAAAAAAAAAAA', body);
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('NOT_FOUND');
      expect(res.body.error.requestId).toBeTruthy();
    }
  });

  it('answers 422 INVALID_POLICY naming the field path, and changes nothing', async () => {
    const typo = { ...smallPayments, conditions: { 'scope.amount': { lessthan: 10 } } };
    const created = await call('POST', '/api/v1/policies', typo);
    expect(created.status).toBe(422);
    expect(created.body.error.code).toBe('INVALID_POLICY');
    expect(created.body.error.details?.path).toBe('conditions.scope.amount.lessthan');

    const replaced = await call('PUT', '/api/v1/policies', { policies: [typo] });
    expect(replaced.status).toBe(422);
    expect(replaced.body.error.details?.path).toBe('policies[0].conditions.scope.amount.lessthan');

    const list = await call('PUT', '/api/v1/policies', [{ ...smallPayments, action: 'allow' }]);
    expect(list.status).toBe(422);
    expect(list.body.error.details?.path).toBe('policies[0].action');

    const extra = await call('PUT', '/api/v1/policies', { policies: [], dryRun: true });
    expect(extra.status).toBe(422);
    expect(extra.body.error.details?.path).toBe('dryRun');

    const ok = await call('POST', '/api/v1/policies', smallPayments);
    const patch = await call('PATCH', `/api/v1/policies/${ok.body.data.id as string}`, { action: 'allow' });
    expect(patch.status).toBe(422);
    expect(patch.body.error.details?.path).toBe('action');
    expect((await policies.get(ok.body.data.id as string)).definition.action).toBe('auto_approve');
    await call('DELETE', `/api/v1/policies/${ok.body.data.id as string}`);
  });

  it('replaces the whole set with PUT, as { policies } or as a list', async () => {
    const asObject = await call<{ count: number; policies: { id: string; name: string }[] }>(
      'PUT',
      '/api/v1/policies',
      {
        policies: [
          smallPayments,
          { name: 'no-deletes', conditions: { action: 'db.delete*' }, action: 'deny' },
        ],
      },
    );
    expect(asObject.status).toBe(200);
    expect(asObject.body.data.count).toBe(2);
    const ids = asObject.body.data.policies.map((p) => p.id);

    const asList = await call<{ count: number; policies: { id: string; name: string }[] }>(
      'PUT',
      '/api/v1/policies',
      [smallPayments],
    );
    expect(asList.status).toBe(200);
    expect(asList.body.data.count).toBe(1);
    expect(asList.body.data.policies[0]?.id).toBe(ids[0]);
    expect((await call<{ policies: unknown[] }>('GET', '/api/v1/policies')).body.data.policies).toHaveLength(
      1,
    );
  });

  it('PUT says what it changes; with dry_run=true it only says it, storing and auditing nothing', async () => {
    interface Plan {
      added: { name: string; id?: string }[];
      changed: { id: string; name: string; fields: string[] }[];
      removed: { id: string; name: string }[];
      unchanged: { id: string; name: string }[];
      reordered: boolean;
    }
    interface Applied {
      dryRun: boolean;
      count: number;
      plan: Plan;
      unknownAgents: { policy: string; agents: string[] }[];
      policies?: { id: string; name: string; updatedAt: string }[];
    }
    const old = { name: 'old', conditions: { action: 'legacy.*' }, action: 'deny' };
    const keep = { name: 'keep', conditions: { action: 'read.*' }, action: 'auto_approve' };
    await call('PUT', '/api/v1/policies', []);
    const first = await call<Applied>('PUT', '/api/v1/policies', [smallPayments, old, keep]);
    expect(first.status).toBe(200);
    expect(first.body.data.plan.added.map((p) => p.name)).toEqual(['small-payments', 'old', 'keep']);
    const ids = new Map(first.body.data.policies?.map((p) => [p.name, p.id]));
    expect(first.body.data.plan.added[0]?.id).toBe(ids.get('small-payments'));
    const storedBefore = (await call<{ policies: unknown[] }>('GET', '/api/v1/policies')).body.data.policies;
    const eventsBefore = (await audit.list({ limit: 1000 })).length;

    const desired = [
      { ...smallPayments, priority: 20, ttl: 60 },
      keep,
      {
        name: 'ghost-refunds',
        agent: 'ghost-bot',
        conditions: { action: 'refund.*', agent: { in: ['billing-bot', agentId, 'nobody'] } },
        action: 'require_approval',
      },
    ];
    const expectedPlan: Plan = {
      added: [{ name: 'ghost-refunds' }],
      changed: [{ id: ids.get('small-payments')!, name: 'small-payments', fields: ['priority', 'ttl'] }],
      removed: [{ id: ids.get('old')!, name: 'old' }],
      unchanged: [{ id: ids.get('keep')!, name: 'keep' }],
      reordered: false,
    };
    const unknownAgents = [{ policy: 'ghost-refunds', agents: ['ghost-bot', 'nobody'] }];

    const dry = await call<Applied>('PUT', '/api/v1/policies?dry_run=true', { policies: desired });
    expect(dry.status, JSON.stringify(dry.body)).toBe(200);
    expect(dry.body.data).toEqual({ dryRun: true, count: 3, plan: expectedPlan, unknownAgents });
    // Nothing stored, nothing audited, the set in force unchanged.
    expect((await call<{ policies: unknown[] }>('GET', '/api/v1/policies')).body.data.policies).toEqual(
      storedBefore,
    );
    expect((await audit.list({ limit: 1000 })).length).toBe(eventsBefore);
    expect(policies.evaluate({ agentId, action: 'legacy.x', scope: {}, context: {} }).decision).toBe('deny');

    // A dry run refuses what the apply would, and a bad switch is a 400.
    const invalid = await call('PUT', '/api/v1/policies?dry_run=true', [{ ...keep, action: 'allow' }]);
    expect(invalid.status).toBe(422);
    expect(invalid.body.error.details?.path).toBe('policies[0].action');
    const badSwitch = await call('PUT', '/api/v1/policies?dry_run=yes', [keep]);
    expect(badSwitch.status).toBe(400);
    expect(badSwitch.body.error.code).toBe('VALIDATION_ERROR');
    expect((await audit.list({ limit: 1000 })).length).toBe(eventsBefore);

    // Applying does what the dry run said; unchanged policies keep their ids (and updatedAt).
    const applied = await call<Applied>('PUT', '/api/v1/policies?dry_run=false', desired);
    expect(applied.status).toBe(200);
    const newId = applied.body.data.policies?.find((p) => p.name === 'ghost-refunds')?.id;
    expect(applied.body.data).toMatchObject({
      dryRun: false,
      count: 3,
      plan: { ...expectedPlan, added: [{ name: 'ghost-refunds', id: newId }] },
      unknownAgents,
    });
    const after = new Map(applied.body.data.policies?.map((p) => [p.name, p]));
    expect(after.get('keep')?.id).toBe(ids.get('keep'));
    expect(after.get('keep')?.updatedAt).toBe(
      first.body.data.policies?.find((p) => p.name === 'keep')?.updatedAt,
    );
    expect(after.get('small-payments')?.id).toBe(ids.get('small-payments'));
    const events = await audit.list({ limit: 1000 });
    expect(events.length).toBe(eventsBefore + 1);
    expect(events[0]).toMatchObject({
      type: 'policy.replaced',
      details: { created: ['ghost-refunds'], updated: ['small-payments'], removed: [{ name: 'old' }] },
    });
    await call('PUT', '/api/v1/policies', []);
  });

  it('dry-runs a request with POST /policies/test and stores nothing', async () => {
    await call('PUT', '/api/v1/policies', [
      smallPayments,
      {
        name: 'no-deletes',
        priority: 50,
        conditions: { action: 'db.delete*' },
        action: 'deny',
        reason: 'never',
      },
    ]);
    const eventsBefore = (await audit.list({ limit: 1000 })).length;

    const approved = await call('POST', '/api/v1/policies/test', {
      agentId,
      action: 'payment.create',
      scope: { amount: 40, max_amount: 500 },
      ttl: 600,
    });
    expect(approved.status).toBe(200);
    expect(approved.body.data).toMatchObject({
      decision: 'auto_approve',
      policy: { name: 'small-payments' },
      scope: { amount: 40, max_amount: 100 },
      ttl: 120,
      agent: { id: agentId, name: 'billing-bot' },
    });

    const denied = await call('POST', '/api/v1/policies/test', {
      agentName: 'billing-bot',
      action: 'db.delete',
    });
    expect(denied.body.data).toMatchObject({ decision: 'deny', reason: 'never', scope: null, ttl: null });

    const fallback = await call('POST', '/api/v1/policies/test', { action: 'email.send' });
    expect(fallback.body.data).toMatchObject({ decision: 'require_approval', policy: null, ttl: 300 });

    const strict = await call('POST', '/api/v1/policies/test', { action: 'x', amount: 5 });
    expect(strict.status).toBe(400);
    expect(strict.body.error.code).toBe('VALIDATION_ERROR');
    const missing = await call('POST', '/api/v1/policies/test', {});
    expect(missing.status).toBe(400);

    expect((await audit.list({ limit: 1000 })).length).toBe(eventsBefore);
  });

  it('documents the routes in /openapi.json', async () => {
    const res = await server.app.inject({ method: 'GET', url: '/openapi.json' });
    const paths = (res.json() as { paths: Record<string, Record<string, unknown>> }).paths;
    expect(Object.keys(paths['/api/v1/policies'] ?? {}).sort()).toEqual(['get', 'post', 'put']);
    expect(Object.keys(paths['/api/v1/policies/{id}'] ?? {}).sort()).toEqual(['delete', 'get', 'patch']);
    expect(paths['/api/v1/policies/test']).toHaveProperty('post');
  });
});
