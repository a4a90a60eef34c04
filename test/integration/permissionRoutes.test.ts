import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { systemClock } from '../../src/core/clock.js';
import { newOperatorKey } from '../../src/core/credentials.js';
import { registerPermissionRoutes } from '../../src/http/routes/permissions.js';
import { registerPolicyRoutes } from '../../src/http/routes/policies.js';
import { AgentService } from '../../src/services/agents.js';
import { AuditService } from '../../src/services/audit.js';
import { PermissionService } from '../../src/services/permissions.js';
import { PolicyService } from '../../src/services/policies.js';
import { PermissionWaiters } from '../../src/services/waiters.js';
import type { Db } from '../../src/store/db.js';
import { createRedis, type Redis, whenReady } from '../../src/store/redis.js';
import { testDatabases } from '../helpers/databases.js';
import { FakeClock } from '../helpers/fakeClock.js';
import {
  operatorApprovals,
  type RouteTestApp,
  startRouteTestApp,
  testLimiters,
} from '../helpers/routeApp.js';

interface Envelope<T = Record<string, unknown>> {
  success: boolean;
  data: T;
  error: { code: string; message: string; details?: { path?: string; key?: string }; requestId: string };
}

/** The pattern of the original report: 74 characters that compile to 10 003 instructions. */
const ATTACK = `${'.{1000}'.repeat(10)}[^a]`;

/**
 * The permission routes in-process over a real database and Redis: pattern bounds at every
 * entry point answer 4xx naming the field, token calls have their own per-agent rate limit,
 * and a value's shape cannot dodge a cap (issue 11, defects 1 and 9).
 */
describe.each(testDatabases())('permission routes on $name', (database) => {
  let db: Db;
  let redis: Redis;
  let server: RouteTestApp;
  let agents: AgentService;
  const operatorKey = newOperatorKey();
  // Limits counted at one fixed instant, so a test never straddles a window boundary.
  const limiterClock = new FakeClock('2030-01-07T10:00:30.000Z');
  const TOKEN_CALLS_PER_MIN = 40;
  const AUTH_FAILURES_PER_MIN = 3;

  beforeAll(async () => {
    db = await database.open();
    redis = createRedis(inject('redisUrl'));
    await whenReady(redis, 5000);
    const audit = new AuditService(db, systemClock);
    agents = new AgentService(db, audit, systemClock);
    const policies = new PolicyService(db, audit, systemClock, 'require_approval');
    await policies.load();
    const permissions = new PermissionService(db, audit, policies, systemClock, {
      approvalTimeoutSeconds: 900,
      requireActionDetails: false,
    });
    const limiters = testLimiters(redis, limiterClock, { tokenCallsPerMin: TOKEN_CALLS_PER_MIN });
    server = await startRouteTestApp({
      db,
      redis,
      clock: systemClock,
      agents,
      operatorKey,
      authFailuresPerMin: AUTH_FAILURES_PER_MIN,
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
      ],
    });
    const put = await call('PUT', '/api/v1/policies', {
      policies: [
        { name: 'payments', conditions: { action: 'payment.*' }, action: 'auto_approve' },
        { name: 'email', conditions: { action: 'email.*' }, action: 'require_approval' },
      ],
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
  });

  afterAll(async () => {
    await server?.close();
    redis?.disconnect();
    await db?.close();
  });

  async function call<T = Record<string, unknown>>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH',
    url: string,
    body?: unknown,
    key: string = operatorKey,
  ): Promise<{ status: number; headers: Record<string, unknown>; body: Envelope<T> }> {
    const res = await server.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${key}` },
      ...(body === undefined ? {} : { payload: body as object }),
    });
    return { status: res.statusCode, headers: res.headers, body: res.json() as Envelope<T> };
  }

  async function newAgentKey(changes: Record<string, unknown> = {}): Promise<string> {
    const created = await agents.create(
      { name: `agent-${randomBytes(3).toString('hex')}` },
      { actor: { type: 'system' } },
    );
    if (Object.keys(changes).length > 0)
      await agents.update(created.agent.id, changes, { actor: { type: 'system' } });
    return created.apiKey;
  }

  async function grant(key: string, scope: Record<string, unknown>) {
    const res = await call<{ id: string; token: string }>(
      'POST',
      '/api/v1/permissions/request',
      { action: 'payment.send', scope },
      key,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.data;
  }

  describe('pattern bounds at every entry point (defect 1)', () => {
    it('a request scope: 400 VALIDATION_ERROR naming scope.<key>; nothing stored', async () => {
      const key = await newAgentKey();
      for (const pattern of [ATTACK, '.{600}.{600}', 'x'.repeat(1001)]) {
        const res = await call(
          'POST',
          '/api/v1/permissions/request',
          {
            action: 'payment.send',
            scope: { subject_pattern: pattern },
          },
          key,
        );
        expect(res.status, pattern.slice(0, 20)).toBe(400);
        expect(res.body.error.code).toBe('VALIDATION_ERROR');
        expect(res.body.error.details?.path).toBe('scope.subject_pattern');
      }
      const list = await call<{ permissions: unknown[] }>('GET', '/api/v1/permissions?action=payment.send');
      expect(list.body.data.permissions.filter((p) => JSON.stringify(p).includes('{1000}'))).toEqual([]);
    });

    it('an approver scopeModification: 400 VALIDATION_ERROR naming scopeModifications.<key>', async () => {
      const key = await newAgentKey();
      const pending = await call<{ id: string; status: string }>(
        'POST',
        '/api/v1/permissions/request',
        { action: 'email.send', scope: { max_uses: 1 } },
        key,
      );
      expect(pending.body.data.status).toBe('pending');
      const res = await call('POST', `/api/v1/permissions/${pending.body.data.id}/decide`, {
        approved: true,
        scopeModifications: { body_pattern: ATTACK },
      });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('VALIDATION_ERROR');
      expect(res.body.error.details?.path).toBe('scopeModifications.body_pattern');
      const still = await call<{ status: string }>('GET', `/api/v1/permissions/${pending.body.data.id}`);
      expect(still.body.data.status).toBe('pending');
    });

    it('a policy scope_template and a policy matches: 422 INVALID_POLICY naming the path', async () => {
      const template = await call('POST', '/api/v1/policies', {
        name: 'templated',
        conditions: { action: 'x.*' },
        action: 'auto_approve',
        scope_template: { subject_pattern: ATTACK },
      });
      expect(template.status).toBe(422);
      expect(template.body.error.code).toBe('INVALID_POLICY');
      expect(template.body.error.details?.path).toBe('scopeTemplate.subject_pattern');
      const matches = await call('PUT', '/api/v1/policies', {
        policies: [
          { name: 'ok', conditions: { action: 'payment.*' }, action: 'auto_approve' },
          { name: 'redos', conditions: { 'context.text': { matches: ATTACK } }, action: 'deny' },
        ],
      });
      expect(matches.status).toBe(422);
      expect(matches.body.error.code).toBe('INVALID_POLICY');
      expect(matches.body.error.details?.path).toBe('policies[1].conditions.context.text.matches');
      expect(matches.body.error.message).toContain('too large');
    });

    it('the reported attack is refused; the largest accepted pattern fails closed on a 60 000-character value', async () => {
      const key = await newAgentKey();
      const attack = await call(
        'POST',
        '/api/v1/permissions/request',
        {
          action: 'payment.send',
          scope: { subject_pattern: ATTACK },
        },
        key,
      );
      expect(attack.status).toBe(400);
      // About the largest program accepted (≤ 1000 instructions), matching short values too.
      const { id, token } = await grant(key, { subject_pattern: '^(?:x|[^z]{995})', max_uses: 2 });
      const subject = 'a'.repeat(60_000);
      const verify = await call<{ valid: boolean; violations: { key: string; message: string }[] }>(
        'POST',
        `/api/v1/permissions/${id}/verify`,
        { token, actionDetails: { subject } },
        key,
      );
      expect(verify.status).toBe(200);
      expect(verify.body.data.valid).toBe(false);
      expect(verify.body.data.violations[0]?.key).toBe('subject_pattern');
      expect(verify.body.data.violations[0]?.message).toContain('longer than 4096 characters');
      const use = await call(
        'POST',
        `/api/v1/permissions/${id}/use`,
        { token, actionDetails: { subject } },
        key,
      );
      expect(use.status).toBe(403);
      expect(use.body.error.code).toBe('SCOPE_VIOLATION');
      // Such a pattern covers about 450 characters within one call's work limit.
      const long = await call(
        'POST',
        `/api/v1/permissions/${id}/verify`,
        { token, actionDetails: { subject: `x${'a'.repeat(998)}` } },
        key,
      );
      expect(long.body.data).toMatchObject({ valid: false });
      expect(JSON.stringify(long.body.data)).toContain('work limit of one call');
      const ok = await call(
        'POST',
        `/api/v1/permissions/${id}/use`,
        { token, actionDetails: { subject: `x${'a'.repeat(400)}` } },
        key,
      );
      expect(ok.status).toBe(200);
    });
  });

  describe('caps read every value the same way (defect 9)', () => {
    it('"1,000", "1000 USD" and [1000] under max_amount: 50 are 403 SCOPE_VIOLATION and consume nothing', async () => {
      const key = await newAgentKey();
      const { id, token } = await grant(key, { max_amount: 50, max_total_amount: 60, max_uses: 3 });
      for (const amount of ['1,000', '1000 USD', [1000], '1e3']) {
        const res = await call(
          'POST',
          `/api/v1/permissions/${id}/use`,
          { token, actionDetails: { amount } },
          key,
        );
        expect(res.status, JSON.stringify(amount)).toBe(403);
        expect(res.body.error.code).toBe('SCOPE_VIOLATION');
        expect(res.body.error.details?.key).toBe('max_amount');
      }
      const after = await call<{ usesRemaining: number }>('GET', `/api/v1/permissions/${id}`, undefined, key);
      expect(after.body.data.usesRemaining).toBe(3);
      // A plain decimal string is read as its number, and totals add what the check counted.
      const first = await call(
        'POST',
        `/api/v1/permissions/${id}/use`,
        { token, actionDetails: { amount: '40' } },
        key,
      );
      expect(first.status).toBe(200);
      const second = await call(
        'POST',
        `/api/v1/permissions/${id}/use`,
        { token, actionDetails: { amount: [11, 10] } },
        key,
      );
      expect(second.status).toBe(403);
      expect(second.body.error.details?.key).toBe('max_total_amount');
    });
  });

  describe('verify and use are rate-limited per agent (defect 1)', () => {
    it('counts verify and use together; 429 with Retry-After once over, headers on every answer', async () => {
      const key = await newAgentKey({ tokenRateLimitPerMin: 3 });
      const { id, token } = await grant(key, { max_uses: 10 });
      const first = await call('POST', `/api/v1/permissions/${id}/verify`, { token }, key);
      expect(first.status).toBe(200);
      expect(first.headers['x-ratelimit-limit']).toBe('3');
      expect(first.headers['x-ratelimit-remaining']).toBe('2');
      expect((await call('POST', `/api/v1/permissions/${id}/use`, { token }, key)).status).toBe(200);
      expect((await call('POST', `/api/v1/permissions/${id}/verify`, { token }, key)).status).toBe(200);
      for (const kind of ['verify', 'use']) {
        const limited = await call('POST', `/api/v1/permissions/${id}/${kind}`, { token }, key);
        expect(limited.status, kind).toBe(429);
        expect(limited.body.error.code).toBe('RATE_LIMITED');
        expect(limited.body.error.message).toBe('Too many verify and use calls; slow down');
        expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
        // The same X-RateLimit-* headers as the 2xx answers, with nothing left.
        expect(limited.headers['x-ratelimit-limit']).toBe('3');
        expect(limited.headers['x-ratelimit-remaining']).toBe('0');
        expect(limited.headers['x-ratelimit-reset']).toBe(first.headers['x-ratelimit-reset']);
      }
      // The refused use spent nothing.
      const after = await call<{ usesRemaining: number }>('GET', `/api/v1/permissions/${id}`, undefined, key);
      expect(after.body.data.usesRemaining).toBe(9);
      // Requests have their own budget: still allowed.
      expect((await call('POST', '/api/v1/permissions/request', { action: 'payment.x' }, key)).status).toBe(
        201,
      );
    });

    it('a failed-authentication 429 carries X-RateLimit-* and Retry-After too', async () => {
      // Its own address (the throttle is per address), so no other test is refused.
      const from = (key: string) =>
        server.app.inject({
          method: 'GET',
          url: '/api/v1/agents',
          headers: { authorization: `Bearer ${key}` },
          remoteAddress: '198.51.100.23',
        });
      for (let i = 0; i < AUTH_FAILURES_PER_MIN; i += 1) {
        expect((await from(`ak_live_${randomBytes(20).toString('hex')}`)).statusCode).toBe(401);
      }
      const limited = await from(operatorKey);
      expect(limited.statusCode).toBe(429);
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
      expect(limited.headers['x-ratelimit-limit']).toBe(String(AUTH_FAILURES_PER_MIN));
      expect(limited.headers['x-ratelimit-remaining']).toBe('0');
      const reset = Number(limited.headers['x-ratelimit-reset']);
      expect(reset - Date.now() / 1000).toBeGreaterThan(0);
      expect(reset - Date.now() / 1000).toBeLessThanOrEqual(61);
    });

    it('the default (TOKEN_RATE_LIMIT_PER_MIN) applies to an agent without its own limit', async () => {
      const key = await newAgentKey();
      const { id, token } = await grant(key, { max_uses: 1 });
      const statuses: number[] = [];
      for (let i = 0; i <= TOKEN_CALLS_PER_MIN; i += 1) {
        statuses.push((await call('POST', `/api/v1/permissions/${id}/verify`, { token }, key)).status);
      }
      expect(statuses.filter((s) => s === 200)).toHaveLength(TOKEN_CALLS_PER_MIN);
      expect(statuses.at(-1)).toBe(429);
    });
  });
});
