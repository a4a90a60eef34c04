import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AUDIT_EVENT_TYPES } from '../../src/core/audit/index.js';
import { systemClock } from '../../src/core/clock.js';
import { newOperatorKey } from '../../src/core/credentials.js';
import { registerAuditRoutes } from '../../src/http/routes/audit.js';
import { registerMetricsRoutes } from '../../src/http/routes/metrics.js';
import { registerPermissionRoutes } from '../../src/http/routes/permissions.js';
import { registerPolicyRoutes } from '../../src/http/routes/policies.js';
import { registerWebhookRoutes } from '../../src/http/routes/webhooks.js';
import { createLogger } from '../../src/logger.js';
import { nameDuplicateLines } from '../../src/services/agentNames.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { AuditService } from '../../src/services/audit.js';
import { ErasureService } from '../../src/services/erasure.js';
import { MetricsService } from '../../src/services/metrics.js';
import { PermissionService } from '../../src/services/permissions.js';
import { PolicyService } from '../../src/services/policies.js';
import { promMetrics } from '../../src/services/prometheus.js';
import { SecretBox } from '../../src/services/secretBox.js';
import { PermissionWaiters } from '../../src/services/waiters.js';
import { WebhookSecrets } from '../../src/services/webhookSecrets.js';
import { WebhookService } from '../../src/services/webhooks.js';
import type { Db } from '../../src/store/db.js';
import { loadMigrations } from '../../src/store/migrate.js';
import { createRedis, type Redis, whenReady } from '../../src/store/redis.js';
import { testDatabases } from '../helpers/databases.js';
import { operatorApprovals, startRouteTestApp, testLimiters } from '../helpers/routeApp.js';

interface Envelope<T = Record<string, unknown>> {
  success: boolean;
  data: T;
  error: { code: string; message: string; details?: Record<string, unknown>; requestId: string };
}

const operator: RequestOrigin = { actor: { type: 'operator', name: 'test' } };

/**
 * Names and ids (issue 12, item 5): agent names are unique case-insensitively, every agent
 * filter of the API takes an id or a name, and an unknown agent or event type is an error that
 * lists what exists — never an empty page or zeros. Over real Postgres and PGlite.
 */
describe.each(testDatabases())('agent names on $name', (database) => {
  let redis: Redis;

  beforeAll(async () => {
    redis = createRedis(inject('redisUrl'));
    await whenReady(redis, 5000);
  });

  afterAll(() => {
    redis?.disconnect();
  });

  /** Every route with an agent filter, in-process, over `db`. */
  async function startApp(db: Db, operatorKey: string) {
    const audit = new AuditService(db, systemClock);
    const secrets = new WebhookSecrets(new SecretBox(randomBytes(32)));
    const agents = new AgentService(db, audit, systemClock, {
      webhookSecrets: secrets,
      allowPrivateWebhooks: true,
    });
    const policies = new PolicyService(db, audit, systemClock, 'require_approval');
    await policies.load();
    const permissions = new PermissionService(db, audit, policies, systemClock, {
      approvalTimeoutSeconds: 900,
      requireActionDetails: false,
      allowPrivateWebhooks: true,
    });
    const logger = createLogger('silent');
    const webhooks = new WebhookService(db, audit, secrets, systemClock, logger, { allowPrivate: true });
    const limiters = testLimiters(redis, systemClock);
    const server = await startRouteTestApp({
      db,
      redis,
      clock: systemClock,
      agents,
      operatorKey,
      routes: [
        (route) =>
          registerPermissionRoutes(route, {
            permissions,
            approvals: operatorApprovals(db, permissions, audit),
            limiters,
            waiters: new PermissionWaiters(),
            agents,
          }),
        (route) => registerPolicyRoutes(route, policies, agents),
        (route) => registerAuditRoutes(route, audit, new ErasureService(db, audit, permissions), agents),
        (route) => registerWebhookRoutes(route, webhooks, agents),
        (route, app) =>
          registerMetricsRoutes(route, app, {
            metrics: new MetricsService(db, systemClock),
            prom: promMetrics(),
            agents,
          }),
      ],
    });
    const call = async <T = Record<string, unknown>>(
      method: 'GET' | 'POST' | 'PATCH',
      url: string,
      body?: unknown,
      key: string = operatorKey,
    ): Promise<{ status: number; body: Envelope<T>; text: string }> => {
      const res = await server.app.inject({
        method,
        url,
        headers: { authorization: `Bearer ${key}` },
        ...(body === undefined ? {} : { payload: body as object }),
      });
      const text = res.body;
      let parsed: Envelope<T>;
      try {
        parsed = JSON.parse(text) as Envelope<T>;
      } catch {
        parsed = { success: true, data: undefined as T, error: undefined as never };
      }
      return { status: res.statusCode, body: parsed, text };
    };
    return { server, agents, policies, permissions, call };
  }

  describe('on a new database', () => {
    let db: Db;
    let app: Awaited<ReturnType<typeof startApp>>;
    const operatorKey = newOperatorKey();
    let billing: { id: string; key: string };
    let support: { id: string; key: string };

    beforeAll(async () => {
      db = await database.open();
      app = await startApp(db, operatorKey);
      const created = async (name: string) => {
        const res = await app.call<{ id: string; apiKey: string }>('POST', '/api/v1/agents', { name });
        expect(res.status).toBe(201);
        return { id: res.body.data.id, key: res.body.data.apiKey };
      };
      billing = await created('billing-bot');
      support = await created('support-bot');
      await app.agents.update(billing.id, { webhookUrl: 'https://agent.example.com/hook' }, operator);
      // Policies match agent names exactly: this one approves billing-bot's payments.
      await app.policies.create(
        {
          name: 'billing-payments',
          agent: 'billing-bot',
          conditions: { action: 'payment.*' },
          action: 'auto_approve',
        },
        operator,
      );
      // billing-bot: an approved payment (with its webhook delivery); support-bot: a pending email.
      const billingAgent = await app.agents.resolve(billing.id);
      const supportAgent = await app.agents.resolve(support.id);
      const paid = await app.permissions.request(billingAgent, { action: 'payment.send' }, operator);
      expect(paid.permission.status).toBe('approved');
      await app.permissions.request(supportAgent, { action: 'email.send' }, operator);
    });

    afterAll(async () => {
      await app?.server.close();
      await db?.close();
    });

    it('refuses a second agent with the same name in any case (409 AGENT_NAME_TAKEN naming the holder)', async () => {
      for (const name of ['billing-bot', 'Billing-Bot', '  BILLING-BOT ']) {
        const res = await app.call('POST', '/api/v1/agents', { name });
        expect(res.status, name).toBe(409);
        expect(res.body.error.code).toBe('AGENT_NAME_TAKEN');
        expect(res.body.error.message).toContain(billing.id);
        expect(res.body.error.details).toMatchObject({ agentId: billing.id });
      }
      const list = await app.call<{ agents: { name: string }[] }>('GET', '/api/v1/agents?limit=200');
      expect(list.body.data.agents.filter((a) => a.name.toLowerCase() === 'billing-bot')).toHaveLength(1);
    });

    it('refuses a rename to a taken name, and allows an agent to change the case of its own', async () => {
      const taken = await app.call('PATCH', `/api/v1/agents/${support.id}`, { name: 'BILLING-bot' });
      expect(taken.status).toBe(409);
      expect(taken.body.error.code).toBe('AGENT_NAME_TAKEN');
      const own = await app.call<{ name: string }>('PATCH', `/api/v1/agents/${support.id}`, {
        name: 'Support-Bot',
      });
      expect(own.status).toBe(200);
      expect(own.body.data.name).toBe('Support-Bot');
      const back = await app.call('PATCH', `/api/v1/agents/${support.id}`, { name: 'support-bot' });
      expect(back.status).toBe(200);
    });

    it('gives a name to one of two concurrent creates (the unique index decides)', async () => {
      const name = `race-${randomBytes(4).toString('hex')}`;
      const results = await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          app.call('POST', '/api/v1/agents', { name: i % 2 ? name.toUpperCase() : name }),
        ),
      );
      expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
      expect(
        results.filter((r) => r.status === 409).every((r) => r.body.error.code === 'AGENT_NAME_TAKEN'),
      ).toBe(true);
    });

    it('refuses a name shaped like an agent id', async () => {
      const res = await app.call('POST', '/api/v1/agents', { name: support.id });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_ERROR');
    });

    /** Every agent filter, and how to read the agents of its answer. */
    type Answer = { body: Envelope<unknown>; text: string };
    const rowsOf = (r: Answer, key: string) =>
      ((r.body.data as Record<string, { agentId: string }[]>)[key] ?? []).map((row) => row.agentId);
    const FILTERS: { name: string; url: (filter: string) => string; agentsOf: (r: Answer) => string[] }[] = [
      {
        name: 'permissions',
        url: (f) => `/api/v1/permissions?${f}`,
        agentsOf: (r) => rowsOf(r, 'permissions'),
      },
      { name: 'audit', url: (f) => `/api/v1/audit?${f}`, agentsOf: (r) => rowsOf(r, 'events') },
      {
        name: 'audit export',
        url: (f) => `/api/v1/audit/export?${f}`,
        agentsOf: (r) =>
          r.text
            .split('\n')
            .filter(Boolean)
            .map((line) => (JSON.parse(line) as { agentId: string }).agentId),
      },
      {
        name: 'webhook deliveries',
        url: (f) => `/api/v1/webhooks/deliveries?${f}`,
        agentsOf: (r) => rowsOf(r, 'deliveries'),
      },
      {
        name: 'metrics',
        url: (f) => `/api/v1/metrics?${f}`,
        agentsOf: (r) => {
          const m = r.body.data as { agentId: string; requestVolume: number };
          return m.requestVolume > 0 ? [m.agentId] : [];
        },
      },
    ];

    it.each(FILTERS)('$name: filters by id, by name in any case, as agent or agent_id', async (filter) => {
      const answers = [];
      for (const query of [
        `agent=${billing.id}`,
        'agent=billing-bot',
        'agent=BILLING-BOT',
        'agent_id=billing-bot',
        `agent_id=${billing.id}`,
      ]) {
        const res = await app.call('GET', filter.url(query));
        expect(res.status, query).toBe(200);
        const agents = filter.agentsOf(res);
        expect(agents.length, query).toBeGreaterThan(0);
        expect(new Set(agents), query).toEqual(new Set([billing.id]));
        answers.push(agents.length);
      }
      expect(new Set(answers).size).toBe(1);
      // support-bot's rows are there too, under its own name.
      const other = await app.call('GET', filter.url('agent=support-bot'));
      expect(other.status).toBe(200);
      expect(filter.agentsOf(other).every((a) => a === support.id)).toBe(true);
    });

    it.each(FILTERS)(
      '$name: an unknown agent is 404 UNKNOWN_AGENT listing the agents, not an empty answer',
      async (filter) => {
        for (const query of ['agent=billing-bott', 'agent_id=agent_0000000000000000000000']) {
          const res = await app.call('GET', filter.url(query));
          expect(res.status, query).toBe(404);
          expect(res.body.error.code).toBe('UNKNOWN_AGENT');
          expect(res.body.error.message).toContain('billing-bot');
          expect(res.body.error.message).toContain(support.id);
          const details = res.body.error.details as { known: { id: string; name: string }[]; total: number };
          expect(details.known).toEqual(
            expect.arrayContaining([
              { id: billing.id, name: 'billing-bot' },
              { id: support.id, name: 'support-bot' },
            ]),
          );
          expect(details.known.length).toBeLessThanOrEqual(20);
          expect(details.total).toBeGreaterThanOrEqual(2);
        }
      },
    );

    it('metrics for an agent key: its own id or name, never a list of the others', async () => {
      for (const query of ['', `?agent=${billing.id}`, '?agent=Billing-Bot']) {
        const res = await app.call<{ agentId: string; requestVolume: number }>(
          'GET',
          `/api/v1/metrics${query}`,
          undefined,
          billing.key,
        );
        expect(res.status, query).toBe(200);
        expect(res.body.data).toMatchObject({ agentId: billing.id, requestVolume: 1 });
      }
      for (const query of ['?agent=support-bot', '?agent=nobody']) {
        const res = await app.call('GET', `/api/v1/metrics${query}`, undefined, billing.key);
        expect(res.status, query).toBe(403);
        expect(JSON.stringify(res.body)).not.toContain(support.id);
      }
    });

    it('policy test takes the agent by id or name, and refuses an unknown one with the list', async () => {
      for (const agent of [billing.id, 'billing-bot', 'Billing-Bot']) {
        const res = await app.call<{
          decision: string;
          policy: { name: string };
          agent: { id: string; name: string };
        }>('POST', '/api/v1/policies/test', { agent, action: 'payment.send' });
        expect(res.status, agent).toBe(200);
        expect(res.body.data).toMatchObject({
          decision: 'auto_approve',
          policy: { name: 'billing-payments' },
          agent: { id: billing.id, name: 'billing-bot' },
        });
      }
      const unknown = await app.call('POST', '/api/v1/policies/test', {
        agent: 'biling-bot',
        action: 'payment.send',
      });
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.code).toBe('UNKNOWN_AGENT');
      expect(unknown.body.error.message).toContain('billing-bot');
    });

    it('an unknown event type is 400 listing the known types; a known one filters', async () => {
      for (const url of ['/api/v1/audit?event_type=usee', '/api/v1/audit/export?event_type=usee']) {
        const res = await app.call('GET', url);
        expect(res.status, url).toBe(400);
        expect(res.body.error.code).toBe('VALIDATION_ERROR');
        expect(res.body.error.message).toContain('usee');
        expect(res.body.error.message).toContain('use_rejected');
        expect((res.body.error.details as { known: string[] }).known).toEqual([...AUDIT_EVENT_TYPES]);
      }
      const known = await app.call<{ events: { type: string; agentId: string }[] }>(
        'GET',
        '/api/v1/audit?event_type=request&agent=support-bot',
      );
      expect(known.status).toBe(200);
      expect(known.body.data.events.map((e) => [e.type, e.agentId])).toEqual([['request', support.id]]);
    });

    it('lists no name duplicates on a database that never had any', async () => {
      const res = await app.call<{ duplicates: unknown[] }>('GET', '/api/v1/agents/name-duplicates');
      expect(res.status).toBe(200);
      expect(res.body.data.duplicates).toEqual([]);
    });
  });

  describe('migrating a database whose agents share names', () => {
    let db: Db;
    let app: Awaited<ReturnType<typeof startApp>>;
    const operatorKey = newOperatorKey();
    const ids = {
      oldest: 'agent_000000000000000000000A',
      second: 'agent_000000000000000000000B',
      third: 'agent_000000000000000000000C',
      deleted: 'agent_000000000000000000000D',
      alone: 'agent_000000000000000000000E',
    };

    beforeAll(async () => {
      db = await database.open({ migrations: loadMigrations().filter((m) => m.version < '012') });
      const insert = (id: string, name: string, createdAt: string, status = 'active') =>
        db.query(
          `INSERT INTO agents (id, name, environment, status, created_at, updated_at)
           VALUES ($1, $2, 'live', $3, $4, $4)`,
          [id, name, status, createdAt],
        );
      // A deleted agent older than all of them does not count: its name is free.
      await insert(ids.deleted, 'ops-bot', '2024-12-01T00:00:00Z', 'deleted');
      await insert(ids.oldest, 'ops-bot', '2025-01-01T00:00:00Z');
      await insert(ids.second, 'OPS-BOT', '2025-02-01T00:00:00Z');
      await insert(ids.third, 'Ops-Bot', '2025-03-01T00:00:00Z', 'revoked');
      await insert(ids.alone, 'lonely-bot', '2025-01-01T00:00:00Z');
      const { migrate } = await import('../../src/store/migrate.js');
      expect(await migrate(db)).toContain('012_agent_names');
      app = await startApp(db, operatorKey);
    });

    afterAll(async () => {
      await app?.server.close();
      await db?.close();
    });

    it('flags all but the oldest live agent of a shared name, and reports them', async () => {
      const { rows } = await db.query<{ id: string; name_duplicate: boolean }>(
        'SELECT id, name_duplicate FROM agents ORDER BY id',
      );
      expect(Object.fromEntries(rows.map((r) => [r.id, r.name_duplicate]))).toEqual({
        [ids.oldest]: false,
        [ids.second]: true,
        [ids.third]: true,
        [ids.deleted]: false,
        [ids.alone]: false,
      });
      const dup = await app.call<{ duplicates: { id: string; name: string; sharesNameWith: string[] }[] }>(
        'GET',
        '/api/v1/agents/name-duplicates',
      );
      expect(dup.body.data.duplicates).toEqual([
        { id: ids.second, name: 'OPS-BOT', sharesNameWith: [ids.oldest, ids.third] },
        { id: ids.third, name: 'Ops-Bot', sharesNameWith: [ids.oldest, ids.second] },
      ]);
      const list = await app.call<{ agents: { id: string; nameDuplicate: boolean }[] }>(
        'GET',
        '/api/v1/agents',
      );
      expect(
        list.body.data.agents
          .filter((a) => a.nameDuplicate)
          .map((a) => a.id)
          .sort(),
      ).toEqual([ids.second, ids.third]);
      const lines = await nameDuplicateLines(db);
      expect(lines).toHaveLength(2);
      expect(lines[0]).toContain(ids.second);
      expect(lines[0]).toContain('rename');
    });

    it('answers a filter by the shared name with 409 AGENT_NAME_AMBIGUOUS listing the ids; ids still work', async () => {
      const res = await app.call('GET', '/api/v1/audit?agent=ops-bot');
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe('AGENT_NAME_AMBIGUOUS');
      expect(res.body.error.details).toEqual({ name: 'ops-bot', ids: [ids.oldest, ids.second, ids.third] });
      for (const id of [ids.oldest, ids.second]) {
        expect((await app.call('GET', `/api/v1/permissions?agent=${id}`)).status).toBe(200);
      }
      // A name shared with nobody resolves as usual.
      expect((await app.call('GET', '/api/v1/permissions?agent=lonely-bot')).status).toBe(200);
    });

    it('keeps the name taken, and a rename clears the flag until the name designates one agent', async () => {
      const again = await app.call('POST', '/api/v1/agents', { name: 'Ops-bot' });
      expect(again.status).toBe(409);
      expect(again.body.error.code).toBe('AGENT_NAME_TAKEN');
      expect(again.body.error.details).toMatchObject({ agentId: ids.oldest });
      // A flagged agent cannot take another taken name either.
      const onto = await app.call('PATCH', `/api/v1/agents/${ids.second}`, { name: 'LONELY-BOT' });
      expect(onto.status).toBe(409);
      const renamed = await app.call<{ nameDuplicate: boolean }>('PATCH', `/api/v1/agents/${ids.second}`, {
        name: 'ops-bot-2',
      });
      expect(renamed.status).toBe(200);
      expect(renamed.body.data.nameDuplicate).toBe(false);
      await app.call('PATCH', `/api/v1/agents/${ids.third}`, { name: 'ops-bot-3' });
      const dup = await app.call<{ duplicates: unknown[] }>('GET', '/api/v1/agents/name-duplicates');
      expect(dup.body.data.duplicates).toEqual([]);
      const test = await app.call<{ agent: { id: string } }>('POST', '/api/v1/policies/test', {
        agent: 'OPS-BOT',
        action: 'x.y',
      });
      expect(test.status).toBe(200);
      expect(test.body.data.agent.id).toBe(ids.oldest);
    });
  });
});
