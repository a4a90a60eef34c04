import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, apiClient } from '../helpers/api.js';
import { runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';

const ADMIN = `uk_${randomBytes(24).toString('hex')}`;
const METRICS_TOKEN = `mt_${randomBytes(16).toString('hex')}`;

const POLICIES = {
  policies: [
    { name: 'payments-auto', priority: 10, conditions: { action: 'payment.*' }, action: 'auto_approve' },
    { name: 'no-deletes', priority: 20, conditions: { action: 'db.delete' }, action: 'deny' },
  ],
};

interface Summary {
  agentId: string | null;
  requestVolume: number;
  approved: number;
  denied: number;
  used: number;
  denialRate: number;
  unusedTokenRate: number;
  avgApprovalTimeMs: number | null;
  failedAuthentications: number;
  scopeViolations: number;
}

/** Metrics through the built server: the JSON API per key kind, Prometheus text, its token. */
describe('metrics through the built server', () => {
  let server: ServerProcess;
  let operator: Api;
  let agentX: Api;
  let agentY: Api;
  let xId: string;
  let yId: string;
  let permissionId: string;

  beforeAll(async () => {
    server = await startServer({
      database: process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite',
      env: { ADMIN_TOKEN: ADMIN, METRICS_TOKEN },
    });
    operator = apiClient(server.url, ADMIN);
    expect((await operator('PUT', '/api/v1/policies', POLICIES)).status).toBe(200);
    const x = await operator<{ id: string; apiKey: string }>('POST', '/api/v1/agents', { name: 'x' });
    const y = await operator<{ id: string; apiKey: string }>('POST', '/api/v1/agents', { name: 'y' });
    xId = x.body.data.id;
    yId = y.body.data.id;
    agentX = apiClient(server.url, x.body.data.apiKey);
    agentY = apiClient(server.url, y.body.data.apiKey);

    // Traffic: X gets a token, violates its scope once, uses it, tries again; X is denied once.
    const granted = await agentX<{ id: string; token: string }>('POST', '/api/v1/permissions/request', {
      action: 'payment.create',
      scope: { max_amount: 10 },
    });
    expect(granted.status).toBe(201);
    permissionId = granted.body.data.id;
    const { token } = granted.body.data;
    const use = (amount: number) =>
      agentX('POST', `/api/v1/permissions/${permissionId}/use`, { token, actionDetails: { amount } });
    expect((await use(50)).body.error.code).toBe('SCOPE_VIOLATION');
    expect((await use(5)).status).toBe(200);
    expect((await use(5)).body.error.code).toBe('TOKEN_USED');
    expect((await agentX('POST', '/api/v1/permissions/request', { action: 'db.delete' })).status).toBe(200);
    // Y gets a token it never uses.
    expect((await agentY('POST', '/api/v1/permissions/request', { action: 'payment.refund' })).status).toBe(
      201,
    );
    // A failed authentication.
    const bogus = apiClient(server.url, `ak_live_${randomBytes(24).toString('hex')}`);
    expect((await bogus('GET', '/api/v1/metrics')).status).toBe(401);
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
  });

  it('gives an agent key its own metrics only', async () => {
    const own = await agentX<Summary>('GET', '/api/v1/metrics?period=1h');
    expect(own.status, JSON.stringify(own.body)).toBe(200);
    expect(own.body.data).toMatchObject({
      agentId: xId,
      requestVolume: 2,
      approved: 0,
      denied: 1,
      used: 1,
      denialRate: 0.5,
      unusedTokenRate: 0,
      avgApprovalTimeMs: null,
      scopeViolations: 1,
    });
    const foreign = await agentX('GET', `/api/v1/metrics?agent_id=${yId}`);
    expect(foreign.status).toBe(403);
    expect(foreign.body.error.code).toBe('FORBIDDEN');
    expect((await agentX('GET', '/api/v1/metrics?period=2h')).status).toBe(400);
  });

  it('gives an operator key every agent or one; failed authentications arrive within a flush', async () => {
    const one = await operator<Summary>('GET', `/api/v1/metrics?period=24h&agent_id=${yId}`);
    expect(one.body.data).toMatchObject({ agentId: yId, requestVolume: 1, approved: 1, denialRate: 0 });
    let all = await operator<Summary>('GET', '/api/v1/metrics?period=1h');
    // The failure counts reach Postgres on the next flush (every 5 s).
    const deadline = Date.now() + 15_000;
    while (all.body.data.failedAuthentications < 1 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000));
      all = await operator<Summary>('GET', '/api/v1/metrics?period=1h');
    }
    expect(all.body.data).toMatchObject({
      agentId: null,
      requestVolume: 3,
      approved: 1,
      denied: 1,
      used: 1,
      denialRate: 1 / 3,
      failedAuthentications: 1,
      scopeViolations: 1,
    });
    const cli = await runCli(['metrics', '--period', '1h', '--json'], {
      AGENT_OTP_URL: server.url,
      AGENT_OTP_ADMIN_TOKEN: ADMIN,
    });
    expect(JSON.parse(cli.stdout)).toMatchObject({ requestVolume: 3, scopeViolations: 1 });
    const text = await runCli(['metrics', '--period', '1h', '--agent', xId], {
      AGENT_OTP_URL: server.url,
      AGENT_OTP_ADMIN_TOKEN: ADMIN,
    });
    expect(text.stdout).toMatch(/denialRate\s+50\.0%/);
  }, 40_000);

  it('serves Prometheus metrics behind METRICS_TOKEN', async () => {
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    const wrong = await fetch(`${server.url}/metrics`, {
      headers: { authorization: 'Bearer nope-nope-nope' },
    });
    expect(wrong.status).toBe(401);
    const res = await fetch(`${server.url}/metrics`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const body = await res.text();
    for (const expected of [
      'agent_otp_permissions_total{status="approved",action="payment.create"} 1',
      'agent_otp_permissions_total{status="denied",action="db.delete"} 1',
      'agent_otp_permissions_total{status="used",action="payment.create"} 1',
      'agent_otp_token_uses_total{result="success"} 1',
      'agent_otp_token_uses_total{result="scope_violation"} 1',
      'agent_otp_token_uses_total{result="used"} 1',
      'agent_otp_decisions_total{by="policy"} 3',
      'agent_otp_approval_duration_seconds_count 0',
      'agent_otp_failed_auth_total 1',
      'agent_otp_queue_depth{queue="notify"}',
      'route="/api/v1/permissions/:id/use"',
      'agent_otp_http_request_duration_seconds_bucket{le="0.001",method="POST",route="/api/v1/permissions/request",status="201"}',
      'agent_otp_process_cpu_user_seconds_total',
    ]) {
      expect(body, expected).toContain(expected);
    }
    // Route patterns, never raw URLs.
    expect(body).not.toContain(permissionId);
  });
});
