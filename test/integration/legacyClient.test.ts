import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { SIGNED_OUT } from '../../src/chat/web/channel.js';
import { registerApprovalPages } from '../../src/chat/web/pages.js';
import { NO_LINKS } from '../../src/core/approvers.js';
import type { Clock } from '../../src/core/clock.js';
import { newOperatorKey } from '../../src/core/credentials.js';
import { hashToken, newToken } from '../../src/core/token.js';
import { pendingLinks } from '../../src/http/routes/permissionLinks.js';
import { registerPermissionRoutes } from '../../src/http/routes/permissions.js';
import { registerPolicyRoutes } from '../../src/http/routes/policies.js';
import { AgentOTPClient } from '../../src/sdk/client.js';
import { errorFromResponse, InvalidTokenError, PermissionDeniedError } from '../../src/sdk/errors.js';
import type { PendingApprovalInfo } from '../../src/sdk/types.js';
import { AgentService } from '../../src/services/agents.js';
import { WebApprovals } from '../../src/services/approvals/web.js';
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

/** Real time, plus jumps a test makes: deadlines pass at once, and real waits still work. */
class JumpClock implements Clock {
  private offset = 0;
  now(): Date {
    return new Date(Date.now() + this.offset);
  }
  jump(ms: number): void {
    this.offset += ms;
  }
}

interface Wire {
  status: number;
  headers: Headers;
  body: {
    success: boolean;
    data: Record<string, unknown> & { id: string; status: string };
    error: { code: string; message: string };
  };
}

const APPROVAL_TIMEOUT_S = 900;

/**
 * The wire contract of the original SDK 0.1 (`@orrisai/agent-otp-sdk`), as that client speaks
 * it: raw HTTP with an agent key and no X-Agent-OTP-SDK header. It polls GET /permissions/:id,
 * stops only on approved, denied or expired, calls onPendingApproval only when a pending answer
 * carries both approvalUrl and webhookUrl, and picks its error class from the HTTP status alone
 * (401 → AuthenticationError). Our SDKs send X-Agent-OTP-SDK and see the real statuses.
 */
describe.each(testDatabases())('SDK 0.1 wire contract on $name', (database) => {
  let db: Db;
  let redis: Redis;
  let server: RouteTestApp;
  let agents: AgentService;
  let base: string;
  const clock = new JumpClock();
  const operatorKey = newOperatorKey();

  beforeAll(async () => {
    db = await database.open();
    redis = createRedis(inject('redisUrl'));
    await whenReady(redis, 5000);
    const audit = new AuditService(db, clock);
    agents = new AgentService(db, audit, clock);
    const policies = new PolicyService(db, audit, clock, 'require_approval');
    await policies.load();
    const permissions = new PermissionService(db, audit, policies, clock, {
      approvalTimeoutSeconds: APPROVAL_TIMEOUT_S,
      requireActionDetails: false,
    });
    const waiters = new PermissionWaiters();
    permissions.onChange((change) => waiters.notify(change.permission.id));
    const limiterClock = new FakeClock('2030-01-07T10:00:30.000Z');
    const limiters = testLimiters(redis, limiterClock);
    const approvals = operatorApprovals(db, permissions, audit);
    server = await startRouteTestApp({
      db,
      redis,
      clock,
      agents,
      operatorKey,
      routes: [
        (route) =>
          registerPermissionRoutes(route, {
            permissions,
            approvals,
            limiters,
            waiters,
            agents,
          }),
        // The approval page, signed out: what a browser without a passkey session sees.
        (_route, app) =>
          registerApprovalPages(app, {
            approvals,
            requests: new WebApprovals(db, approvals, () => NO_LINKS, clock, audit),
            sessions: SIGNED_OUT,
          }),
        (route) => registerPolicyRoutes(route, policies, agents),
      ],
    });
    await server.app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
    const put = await call('PUT', '/api/v1/policies', operatorKey, {
      policies: [{ name: 'payments', conditions: { action: 'payment.*' }, action: 'auto_approve' }],
    });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
  });

  afterAll(async () => {
    await server?.close();
    redis?.disconnect();
    await db?.close();
  });

  /** One HTTP call as SDK 0.1 makes it (no SDK header), or as ours (`sdk: 'typescript/…'`). */
  async function call(
    method: 'GET' | 'POST' | 'PUT',
    path: string,
    key: string,
    body?: unknown,
    sdk?: string,
  ): Promise<Wire> {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(sdk ? { 'x-agent-otp-sdk': sdk } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Wire['body'] };
  }

  const OUR_SDK = 'typescript/0.2.0';

  async function newAgentKey(): Promise<string> {
    const created = await agents.create(
      { name: `legacy-${randomBytes(3).toString('hex')}` },
      { actor: { type: 'system' } },
    );
    return created.apiKey;
  }

  /** requestPermission as SDK 0.1 sends it: action, scope, context; the server mints the token. */
  async function requestPending(key: string, extra: Record<string, unknown> = {}, sdk?: string) {
    const res = await call(
      'POST',
      '/api/v1/permissions/request',
      key,
      { action: 'email.send', scope: { max_emails: 1 }, context: { reason: 'invoice' }, ...extra },
      sdk,
    );
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.data.status).toBe('pending');
    return res.body.data;
  }

  async function approvedToken(key: string, ttl = 60) {
    const res = await call('POST', '/api/v1/permissions/request', key, {
      action: 'payment.send',
      scope: { max_amount: 10 },
      ttl,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.data as { id: string; status: string; token: string };
  }

  /** The events of a permission's stream until the server ends it (final state). */
  async function streamEvents(url: string, key: string, sdk?: string) {
    const started = Date.now();
    const res = await fetch(url, {
      headers: { authorization: `Bearer ${key}`, ...(sdk ? { 'x-agent-otp-sdk': sdk } : {}) },
      signal: AbortSignal.timeout(15_000),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const text = await res.text();
    const events = text
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => JSON.parse(line.slice(6)) as { status: string; reason?: string | null });
    return { events, ms: Date.now() - started };
  }

  describe('1. a pending answer carries approvalUrl and a real-time status URL (onPendingApproval fires)', () => {
    it('the request answer and every read of a pending request carry both, non-empty', async () => {
      const key = await newAgentKey();
      const pending = await requestPending(key);
      const id = pending.id;
      const approvalUrl = `${base}/approve/${id}`;
      const streamUrl = `${base}/api/v1/permissions/${id}/events`;
      expect(pending).toMatchObject({ approvalUrl, webhookUrl: streamUrl, eventsUrl: streamUrl });

      const read = await call('GET', `/api/v1/permissions/${id}`, key);
      expect(read.body.data).toMatchObject({ status: 'pending', approvalUrl, webhookUrl: streamUrl });
    });

    it('approvalUrl answers a page of this server showing the request status, without a key', async () => {
      const key = await newAgentKey();
      const pending = await requestPending(key);
      const page = await fetch(String(pending.approvalUrl));
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      const html = await page.text();
      expect(html).toContain(pending.id);
      expect(html).toContain('data-status="pending"');
      // Read-only: the page names neither the action nor its context.
      expect(html).not.toContain('email.send');
      expect(html).not.toContain('invoice');

      const unknown = await fetch(`${base}/approve/perm_doesnotexist`);
      expect(unknown.status).toBe(404);
      expect(await unknown.text()).toContain('not found');
    });

    it('webhookUrl is the request’s SSE stream: it delivers the decision in real time', async () => {
      const key = await newAgentKey();
      const pending = await requestPending(key);
      const streaming = streamEvents(String(pending.webhookUrl), key);
      await new Promise((r) => setTimeout(r, 300));
      const deny = await call('POST', `/api/v1/permissions/${pending.id}/decide`, operatorKey, {
        approved: false,
        reason: 'not now',
      });
      expect(deny.status, JSON.stringify(deny.body)).toBe(200);
      const { events } = await streamEvents(String(pending.webhookUrl), key);
      expect(events.map((e) => e.status)).toEqual(['denied']);
      const live = await streaming;
      expect(live.events.map((e) => e.status)).toEqual(['pending', 'denied']);
      expect(live.events[1]?.reason).toBe('not now');
    });

    it('the request-side callback webhookUrl stays the agent’s; the answer’s is the stream for SDK 0.1 only', async () => {
      const key = await newAgentKey();
      const callback = 'https://hooks.example.com/agent-otp';
      const legacy = await requestPending(key, { webhookUrl: callback });
      expect(legacy.webhookUrl).toBe(`${base}/api/v1/permissions/${legacy.id}/events`);

      const ours = await requestPending(key, { webhookUrl: callback, idempotencyKey: 'k-ours' }, OUR_SDK);
      expect(ours.webhookUrl).toBeUndefined();
      expect(ours).toMatchObject({
        approvalUrl: `${base}/approve/${ours.id}`,
        eventsUrl: `${base}/api/v1/permissions/${ours.id}/events`,
      });
    });

    it('approvalUrl is the chat message once one was posted; PUBLIC_URL is the base of the others', () => {
      const permission = {
        id: 'perm_x',
        status: 'pending',
        approvalUrl: 'https://acme.slack.com/archives/C1/p1',
      } as Parameters<typeof pendingLinks>[0];
      expect(pendingLinks(permission, 'https://otp.example.com', true)).toEqual({
        approvalUrl: 'https://acme.slack.com/archives/C1/p1',
        eventsUrl: 'https://otp.example.com/api/v1/permissions/perm_x/events',
        webhookUrl: 'https://otp.example.com/api/v1/permissions/perm_x/events',
      });
      expect(pendingLinks({ ...permission, status: 'approved' }, 'https://otp.example.com', true)).toBeNull();
      // With the web approval page (PUBLIC_URL set), the page is every pending request's approvalUrl.
      expect(pendingLinks(permission, 'https://otp.example.com', false, true)).toEqual({
        approvalUrl: 'https://otp.example.com/approve/perm_x',
        eventsUrl: 'https://otp.example.com/api/v1/permissions/perm_x/events',
      });
    });

    it('a decided request carries no links', async () => {
      const key = await newAgentKey();
      const { id } = await approvedToken(key);
      const read = await call('GET', `/api/v1/permissions/${id}`, key);
      expect(read.body.data.status).toBe('approved');
      expect(read.body.data).not.toHaveProperty('approvalUrl');
      expect(read.body.data).not.toHaveProperty('webhookUrl');
    });
  });

  describe('2. revoked or cancelled while pending: a status SDK 0.1 stops on; ours sees the real one', () => {
    it('revoked → denied with the reason (GET); our SDK and operators see revoked', async () => {
      const key = await newAgentKey();
      const { id } = await requestPending(key);
      const revoke = await call('POST', `/api/v1/permissions/${id}/revoke`, operatorKey, {
        reason: 'Operator withdrew it',
      });
      expect(revoke.status).toBe(200);

      const legacy = await call('GET', `/api/v1/permissions/${id}`, key);
      expect(legacy.body.data).toMatchObject({ status: 'denied', reason: 'Operator withdrew it' });
      expect(legacy.body.data).not.toHaveProperty('approvalUrl');

      const ours = await call('GET', `/api/v1/permissions/${id}`, key, undefined, OUR_SDK);
      expect(ours.body.data.status).toBe('revoked');
      const operator = await call('GET', `/api/v1/permissions/${id}`, operatorKey);
      expect(operator.body.data.status).toBe('revoked');
    });

    it('revoked without a reason → denied with one', async () => {
      const key = await newAgentKey();
      const { id } = await requestPending(key);
      expect((await call('POST', `/api/v1/permissions/${id}/revoke`, operatorKey, {})).status).toBe(200);
      const legacy = await call('GET', `/api/v1/permissions/${id}`, key);
      expect(legacy.body.data.status).toBe('denied');
      expect(legacy.body.data.reason).toEqual(expect.stringMatching(/revoked/i));
    });

    it('cancelled → expired; our SDK sees cancelled', async () => {
      const key = await newAgentKey();
      const { id } = await requestPending(key);
      expect((await call('POST', `/api/v1/permissions/${id}/cancel`, key)).status).toBe(200);
      expect((await call('GET', `/api/v1/permissions/${id}`, key)).body.data.status).toBe('expired');
      expect((await call('GET', `/api/v1/permissions/${id}`, key, undefined, OUR_SDK)).body.data.status).toBe(
        'cancelled',
      );
    });

    it('a waiting read (long-poll and stream) ends on the revocation with denied, not at its timeout', async () => {
      const key = await newAgentKey();
      const { id } = await requestPending(key);
      const started = Date.now();
      const polling = call('GET', `/api/v1/permissions/${id}?wait=20`, key);
      const streaming = streamEvents(`${base}/api/v1/permissions/${id}/events`, key);
      const oursStreaming = streamEvents(`${base}/api/v1/permissions/${id}/events`, key, OUR_SDK);
      await new Promise((r) => setTimeout(r, 300));
      await call('POST', `/api/v1/permissions/${id}/revoke`, operatorKey, { reason: 'no longer needed' });
      const polled = await polling;
      expect(polled.body.data).toMatchObject({ status: 'denied', reason: 'no longer needed' });
      expect(Date.now() - started).toBeLessThan(5000);
      expect((await streaming).events.map((e) => e.status)).toEqual(['pending', 'denied']);
      expect((await oursStreaming).events.map((e) => e.status)).toEqual(['pending', 'revoked']);
    });

    it('our TypeScript SDK (it sends X-Agent-OTP-SDK) sees revoked and cancelled, and gets the links', async () => {
      const key = await newAgentKey();
      const otp = new AgentOTPClient({
        apiKey: key,
        baseUrl: base,
        allowInsecureHttp: true,
        retryAttempts: 0,
      });
      const infos: PendingApprovalInfo[] = [];
      const waiting = otp.requestPermission({
        action: 'email.send',
        waitForApproval: true,
        timeout: 20_000,
        onPendingApproval: (info) => {
          infos.push(info);
          void call('POST', `/api/v1/permissions/${info.id}/revoke`, operatorKey, { reason: 'stop' });
        },
      });
      await expect(waiting).rejects.toBeInstanceOf(PermissionDeniedError);
      await expect(waiting).rejects.toThrow(/was revoked: stop/);
      const id = String(infos[0]?.id);
      expect(infos[0]).toMatchObject({
        approvalUrl: `${base}/approve/${id}`,
        eventsUrl: `${base}/api/v1/permissions/${id}/events`,
      });
      expect((await otp.getPermission(id)).status).toBe('revoked');

      const pending = await otp.requestPermission({ action: 'email.send' });
      await otp.cancel(pending.id);
      expect((await otp.getPermission(pending.id)).status).toBe('cancelled');
    });

    it('a token revoked after approval stays revoked (that client is no longer waiting)', async () => {
      const key = await newAgentKey();
      const { id } = await approvedToken(key);
      await call('POST', `/api/v1/permissions/${id}/revoke`, operatorKey, {});
      expect((await call('GET', `/api/v1/permissions/${id}`, key)).body.data.status).toBe('revoked');
    });
  });

  describe('3. a token that is not this permission’s is not a 401 (401 means the API key)', () => {
    it('use with a wrong token: 403 INVALID_TOKEN; verify: valid false; a bad key is still 401', async () => {
      const key = await newAgentKey();
      const { id } = await approvedToken(key);
      const wrong = `otp_v1_${'A'.repeat(43)}`;
      const use = await call('POST', `/api/v1/permissions/${id}/use`, key, { token: wrong });
      expect(use.status).toBe(403);
      expect(use.body.error.code).toBe('INVALID_TOKEN');
      const garbage = await call('POST', `/api/v1/permissions/${id}/use`, key, { token: 'not-a-token' });
      expect(garbage.status).toBe(403);

      const verify = await call('POST', `/api/v1/permissions/${id}/verify`, key, { token: wrong });
      expect(verify.status).toBe(200);
      expect(verify.body.data).toMatchObject({ valid: false, reason: 'INVALID_TOKEN' });

      const badKey = await call('POST', `/api/v1/permissions/${id}/use`, 'ak_live_wrongkey', {
        token: wrong,
      });
      expect(badKey.status).toBe(401);
      expect(badKey.body.error.code).toBe('INVALID_API_KEY');
    });

    it('our SDK still raises InvalidTokenError for the new status', () => {
      const err = errorFromResponse(
        403,
        { error: { code: 'INVALID_TOKEN', message: 'The token does not match this permission' } },
        {},
      );
      expect(err).toBeInstanceOf(InvalidTokenError);
      expect(err).toMatchObject({ status: 403, code: 'INVALID_TOKEN' });
    });
  });

  describe('4. a read shows expired the moment a deadline passes, before the expiry job runs', () => {
    it('pending past its approval timeout: GET, the stream and use answer expired, for every client', async () => {
      const key = await newAgentKey();
      const { id } = await requestPending(key);
      clock.jump(APPROVAL_TIMEOUT_S * 1000 + 1000);
      for (const sdk of [undefined, OUR_SDK]) {
        const read = await call('GET', `/api/v1/permissions/${id}`, key, undefined, sdk);
        expect(read.body.data.status).toBe('expired');
        expect(read.body.data).not.toHaveProperty('approvalUrl');
      }
      const operator = await call('GET', `/api/v1/permissions/${id}`, operatorKey);
      expect(operator.body.data).toMatchObject({ status: 'expired', tokenState: 'none' });
      const { events } = await streamEvents(`${base}/api/v1/permissions/${id}/events`, key);
      expect(events.map((e) => e.status)).toEqual(['expired']);
      const use = await call('POST', `/api/v1/permissions/${id}/use`, key, {
        token: `otp_v1_${'A'.repeat(43)}`,
      });
      expect(use.status).not.toBe(401);
    });

    it('a waiting read answers expired at the approval deadline (long-poll and stream)', async () => {
      const key = await newAgentKey();
      const { id } = await requestPending(key);
      // The deadline is now 1.5 s away.
      clock.jump(APPROVAL_TIMEOUT_S * 1000 - 1500);
      const started = Date.now();
      const streaming = streamEvents(`${base}/api/v1/permissions/${id}/events`, key);
      const polled = await call('GET', `/api/v1/permissions/${id}?wait=20`, key);
      const waited = Date.now() - started;
      expect(polled.body.data.status).toBe('expired');
      expect(waited).toBeGreaterThanOrEqual(1000);
      expect(waited).toBeLessThan(4000);
      const streamed = await streaming;
      expect(streamed.events.map((e) => e.status)).toEqual(['pending', 'expired']);
      expect(streamed.ms).toBeLessThan(4000);
    });

    it('an approved token past its TTL: GET shows expired, verify and use answer TOKEN_EXPIRED', async () => {
      const key = await newAgentKey();
      const { id, token } = await approvedToken(key, 60);
      expect((await call('GET', `/api/v1/permissions/${id}`, key)).body.data.status).toBe('approved');
      clock.jump(61_000);
      for (const sdk of [undefined, OUR_SDK]) {
        expect((await call('GET', `/api/v1/permissions/${id}`, key, undefined, sdk)).body.data.status).toBe(
          'expired',
        );
      }
      const operator = await call('GET', `/api/v1/permissions/${id}`, operatorKey);
      expect(operator.body.data).toMatchObject({ status: 'expired', tokenState: 'expired' });
      const verify = await call('POST', `/api/v1/permissions/${id}/verify`, key, { token });
      expect(verify.body.data).toMatchObject({ valid: false, reason: 'TOKEN_EXPIRED' });
      const use = await call('POST', `/api/v1/permissions/${id}/use`, key, { token });
      expect(use.status).toBe(410);
      expect(use.body.error.code).toBe('TOKEN_EXPIRED');
      const listed = await call(
        'GET',
        `/api/v1/permissions?agent=${String(operator.body.data.agentId)}`,
        operatorKey,
      );
      const rows = (listed.body.data as unknown as { permissions: { id: string; status: string }[] })
        .permissions;
      expect(rows.find((p) => p.id === id)?.status).toBe('expired');
    });

    it('a pending request past its deadline is TOKEN_EXPIRED on use, not "still waiting"', async () => {
      const key = await newAgentKey();
      // A request that committed its own token (tokenHash), so the token is right and only time is wrong.
      const token = newToken();
      const tokenHash = hashToken(token);
      const { id } = await requestPending(key, { tokenHash });
      clock.jump(APPROVAL_TIMEOUT_S * 1000 + 1000);
      const use = await call('POST', `/api/v1/permissions/${id}/use`, key, { token });
      expect(use.status).toBe(410);
      expect(use.body.error.code).toBe('TOKEN_EXPIRED');
    });
  });
});
