import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, apiClient } from '../helpers/api.js';
import { runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';

const DB_URL = process.env.TEST_DATABASE_URL;
const ADMIN = `uk_${randomBytes(24).toString('hex')}`;

const POLICIES = {
  policies: [
    {
      name: 'payments-auto',
      priority: 10,
      conditions: { action: { equals: 'payment.*' } },
      action: 'auto_approve',
    },
    {
      name: 'no-deletes',
      priority: 20,
      conditions: { action: 'db.delete' },
      action: 'deny',
      reason: 'Deletes are never allowed',
    },
    { name: 'email-needs-human', priority: 5, conditions: { action: 'email.*' }, action: 'require_approval' },
  ],
};

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * The lifecycle through the built server on real Postgres and Redis, with two server processes
 * sharing them: the acceptance checks of single use under concurrency, scope enforcement over
 * HTTP, audit tamper detection from the CLI, and no token in clear anywhere.
 */
describe.runIf(DB_URL)('permissions across two server instances on Postgres', () => {
  let a: ServerProcess;
  let b: ServerProcess;
  let operatorA: Api;
  let agentKey: string;
  let agentA: Api;
  let agentB: Api;
  let otherAgent: Api;
  const tokensSeen: string[] = [];

  beforeAll(async () => {
    const prefix = `t${randomBytes(4).toString('hex')}`;
    const env = {
      ADMIN_TOKEN: ADMIN,
      REDIS_KEY_PREFIX: prefix,
      RATE_LIMIT_PER_MIN: '100000',
      RATE_LIMIT_PER_HOUR: '1000000',
      TOKEN_RATE_LIMIT_PER_MIN: '100000',
      TOKEN_RATE_LIMIT_PER_HOUR: '1000000',
    };
    a = await startServer({ database: 'postgres', env });
    b = await startServer({ database: 'postgres', schema: a.schema, env });
    operatorA = apiClient(a.url, ADMIN);
    const put = await operatorA('PUT', '/api/v1/policies', POLICIES);
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    const created = await operatorA<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'payer' });
    agentKey = created.body.data.apiKey;
    agentA = apiClient(a.url, agentKey);
    agentB = apiClient(b.url, agentKey);
    const other = await operatorA<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'other' });
    otherAgent = apiClient(a.url, other.body.data.apiKey);
  });

  afterAll(async () => {
    await b?.stop();
    await a?.stop();
  });

  async function approvedPayment(scope: Record<string, unknown>): Promise<{ id: string; token: string }> {
    const res = await agentA<{ id: string; token: string; status: string }>(
      'POST',
      '/api/v1/permissions/request',
      {
        action: 'payment.transfer',
        scope,
      },
    );
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    tokensSeen.push(res.body.data.token);
    return res.body.data;
  }

  it('spends a 3-use token exactly 3 times out of 500 concurrent uses split across both instances', async () => {
    const { id, token } = await approvedPayment({ max_uses: 3 });
    const results = await Promise.all(
      Array.from({ length: 500 }, (_, i) =>
        (i % 2 ? agentA : agentB)('POST', `/api/v1/permissions/${id}/use`, { token, actionDetails: {} }),
      ),
    );
    const ok = results.filter((r) => r.status === 200);
    const used = results.filter((r) => r.status === 410 && r.body.error.code === 'TOKEN_USED');
    expect(ok).toHaveLength(3);
    expect(used).toHaveLength(497);
    const audit = await operatorA<{ events: unknown[] }>(
      'GET',
      `/api/v1/audit?permission_id=${id}&event_type=use`,
    );
    expect(audit.body.data.events).toHaveLength(3);
  });

  it('decides by policy: auto-approve, deny with the reason, pending for a human', async () => {
    const denied = await agentA('POST', '/api/v1/permissions/request', { action: 'db.delete' });
    expect(denied.status).toBe(200);
    expect(denied.body.data).toMatchObject({ status: 'denied', reason: 'Deletes are never allowed' });

    const pending = await agentA<{ id: string; status: string; approvalUrl?: string }>(
      'POST',
      '/api/v1/permissions/request',
      {
        action: 'email.send',
        scope: { max_emails: 5 },
      },
    );
    expect(pending.status).toBe(202);
    expect(pending.body.data.status).toBe('pending');
    // No chat is configured: the link is the server's own page of the request.
    expect(pending.body.data.approvalUrl).toBe(`${a.url}/approve/${pending.body.data.id}`);

    // The decision is made on instance B; the agent reads its token once from instance A.
    const cli = await runCli(
      ['approve', pending.body.data.id, '--scope', '{"max_emails": 2}', '--yes', '--json'],
      {
        AGENT_OTP_URL: b.url,
        AGENT_OTP_ADMIN_TOKEN: ADMIN,
      },
    );
    expect(cli.code, cli.stderr).toBe(0);
    const first = await agentA<{ token?: string; scope: Record<string, unknown> }>(
      'GET',
      `/api/v1/permissions/${pending.body.data.id}`,
    );
    expect(first.body.data.scope).toMatchObject({ max_emails: 2 });
    expect(first.body.data.token).toMatch(/^otp_v1_/);
    tokensSeen.push(first.body.data.token as string);
    const second = await agentA<{ token?: string }>('GET', `/api/v1/permissions/${pending.body.data.id}`);
    expect(second.body.data.token).toBeUndefined();

    const late = await runCli(['deny', pending.body.data.id, '--yes'], {
      AGENT_OTP_URL: a.url,
      AGENT_OTP_ADMIN_TOKEN: ADMIN,
    });
    expect(late.code).not.toBe(0);
    expect(late.stderr).toContain('ALREADY_DECIDED');
  });

  it('wakes a long-poll on one instance as soon as the other instance records the decision', async () => {
    const pending = await agentA<{ id: string }>('POST', '/api/v1/permissions/request', {
      action: 'email.notify',
    });
    expect(pending.status).toBe(202);
    const id = pending.body.data.id;
    const started = Date.now();
    const waiting = agentB<{ status: string; token?: string }>('GET', `/api/v1/permissions/${id}?wait=20`);
    await new Promise((r) => setTimeout(r, 300));
    const decidedAt = Date.now();
    expect((await operatorA('POST', `/api/v1/permissions/${id}/decide`, { approved: true })).status).toBe(
      200,
    );
    const answer = await waiting;
    const answeredAt = Date.now();
    expect(answer.body.data.status).toBe('approved');
    expect(answer.body.data.token).toMatch(/^otp_v1_/);
    tokensSeen.push(answer.body.data.token as string);
    expect(decidedAt - started).toBeGreaterThanOrEqual(300); // it really waited
    expect(answeredAt - decidedAt).toBeLessThan(2000); // woken by the decision, not the 20 s timeout
  });

  it('answers a long-poll on a pending request after the wait when nothing happens', async () => {
    const pending = await agentA<{ id: string }>('POST', '/api/v1/permissions/request', {
      action: 'email.later',
    });
    const started = Date.now();
    const answer = await agentB<{ status: string }>(
      'GET',
      `/api/v1/permissions/${pending.body.data.id}?wait=1`,
    );
    expect(answer.body.data.status).toBe('pending');
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    const tooLong = await agentB('GET', `/api/v1/permissions/${pending.body.data.id}?wait=61`);
    expect(tooLong.status).toBe(400);
  });

  it('streams status changes as Server-Sent Events until the permission is final', async () => {
    const pending = await agentA<{ id: string }>('POST', '/api/v1/permissions/request', {
      action: 'email.stream',
    });
    const id = pending.body.data.id;
    const res = await fetch(`${b.url}/api/v1/permissions/${id}/events`, {
      headers: { authorization: `Bearer ${agentKey}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const readUntil = async (needle: string) => {
      while (!text.includes(needle)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
      }
    };
    await readUntil('"status":"pending"');
    await operatorA('POST', `/api/v1/permissions/${id}/decide`, { approved: false, reason: 'not now' });
    await readUntil('"status":"denied"');
    const { done } = await reader.read();
    expect(done).toBe(true); // denied is final: the stream ends
    const events = text.split('\n\n').filter((e) => e.startsWith('id:'));
    expect(events.map((e) => JSON.parse(e.split('data: ')[1] as string).status)).toEqual([
      'pending',
      'denied',
    ]);
  });

  it('hides another agent’s permission behind a 404', async () => {
    const { id, token } = await approvedPayment({});
    for (const [method, path, body] of [
      ['GET', `/api/v1/permissions/${id}`, undefined],
      ['POST', `/api/v1/permissions/${id}/use`, { token }],
      ['POST', `/api/v1/permissions/${id}/verify`, { token }],
      ['POST', `/api/v1/permissions/${id}/revoke`, {}],
    ] as const) {
      const res = await otherAgent(method, path, body);
      expect(res.status, `${method} ${path}`).toBe(404);
    }
  });

  it.each([
    ['max_amount', { max_amount: 100 }, { amount: 150 }],
    ['allowed_recipients', { allowed_recipients: ['*@acme.com'] }, { recipient: 'eve@evil.example' }],
    ['subject_pattern', { subject_pattern: '^Invoice #\\d+$' }, { subject: 'Invoice #12 and more' }],
    ['allowed_hours', { allowed_hours: { start: 0, end: 0 } }, {}],
  ])(
    'refuses a use that breaks %s with 403 naming the key, and consumes nothing',
    async (key, scope, details) => {
      const { id, token } = await approvedPayment(scope);
      const res = await agentB('POST', `/api/v1/permissions/${id}/use`, { token, actionDetails: details });
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe('SCOPE_VIOLATION');
      expect(res.body.error.message).toContain(key);
      expect((res.body.error.details as { key: string }).key).toBe(key);
      const after = await agentA<{ usesRemaining: number; status: string }>(
        'GET',
        `/api/v1/permissions/${id}`,
      );
      expect(after.body.data).toMatchObject({ usesRemaining: 1, status: 'approved' });
    },
  );

  it('enforces a cumulative cap across uses on different instances', async () => {
    const { id, token } = await approvedPayment({ max_uses: 5, max_total_amount: 100 });
    expect(
      (await agentA('POST', `/api/v1/permissions/${id}/use`, { token, actionDetails: { amount: 60 } }))
        .status,
    ).toBe(200);
    const over = await agentB('POST', `/api/v1/permissions/${id}/use`, {
      token,
      actionDetails: { amount: 50 },
    });
    expect(over.status).toBe(403);
    expect((over.body.error.details as { key: string }).key).toBe('max_total_amount');
    expect(
      (await agentB('POST', `/api/v1/permissions/${id}/use`, { token, actionDetails: { amount: 40 } }))
        .status,
    ).toBe(200);
  });

  it('answers revoked and expired tokens with 410, and a wrong token with 403 (401 means the API key)', async () => {
    const { id, token } = await approvedPayment({});
    const wrong = await agentA('POST', `/api/v1/permissions/${id}/use`, {
      token: `otp_v1_${'A'.repeat(43)}`,
    });
    expect(wrong.status).toBe(403);
    expect(wrong.body.error.code).toBe('INVALID_TOKEN');
    expect((await agentA('POST', `/api/v1/permissions/${id}/revoke`, {})).status).toBe(200);
    const revoked = await agentB('POST', `/api/v1/permissions/${id}/use`, { token });
    expect(revoked.status).toBe(410);
    expect(revoked.body.error.code).toBe('TOKEN_REVOKED');
  });

  it('takes a client token commitment and never returns a token for it', async () => {
    const clientToken = `otp_v1_${randomBytes(32).toString('base64url')}`;
    tokensSeen.push(clientToken);
    const res = await agentA<{ id: string; token?: string }>('POST', '/api/v1/permissions/request', {
      action: 'payment.refund',
      tokenHash: sha256(clientToken),
    });
    expect(res.status).toBe(201);
    expect(res.body.data.token).toBeUndefined();
    const use = await agentB('POST', `/api/v1/permissions/${res.body.data.id}/use`, { token: clientToken });
    expect(use.status).toBe(200);
  });

  it('rate-limits permission requests per agent with Retry-After and X-RateLimit headers', async () => {
    const limited = await operatorA<{ id: string; apiKey: string }>('POST', '/api/v1/agents', {
      name: 'chatty',
    });
    await operatorA('PATCH', `/api/v1/agents/${limited.body.data.id}`, { rateLimitPerMin: 2 });
    const chatty = apiClient(b.url, limited.body.data.apiKey);
    const first = await chatty('POST', '/api/v1/permissions/request', { action: 'payment.x' });
    expect(first.headers.get('x-ratelimit-limit')).toBe('2');
    expect(first.headers.get('x-ratelimit-remaining')).toBe('1');
    await chatty('POST', '/api/v1/permissions/request', { action: 'payment.x' });
    const third = await apiClient(a.url, limited.body.data.apiKey)('POST', '/api/v1/permissions/request', {
      action: 'payment.x',
    });
    expect(third.status).toBe(429);
    expect(third.body.error.code).toBe('RATE_LIMITED');
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    // A client pacing itself on the headers still has them when it has run out.
    expect(third.headers.get('x-ratelimit-limit')).toBe('2');
    expect(third.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(Number(third.headers.get('x-ratelimit-reset'))).toBeGreaterThanOrEqual(
      Number(first.headers.get('x-ratelimit-reset')),
    );
  });

  it('refuses the reported hostile pattern, and a huge subject on an accepted one fails closed (defect 1)', async () => {
    // The report: an ak_test_ key (auto-approved) asks for ten `.{1000}` then `[^a]` (74
    // characters, 10 003 instructions), then verifies with a 60 000-character subject: 8–10 s of
    // event loop per call. The pattern is now refused where it enters.
    const created = await operatorA<{ apiKey: string }>('POST', '/api/v1/agents', {
      name: 'tester',
      environment: 'test',
    });
    const tester = apiClient(a.url, created.body.data.apiKey);
    const attack = await tester('POST', '/api/v1/permissions/request', {
      action: 'anything',
      scope: { subject_pattern: `${'.{1000}'.repeat(10)}[^a]` },
    });
    expect(attack.status).toBe(400);
    expect(attack.body.error.code).toBe('VALIDATION_ERROR');
    expect(attack.body.error.details).toMatchObject({ path: 'scope.subject_pattern' });
    // About the largest accepted pattern: a 60 000-character subject is refused, not matched.
    const granted = await tester<{ id: string; token: string }>('POST', '/api/v1/permissions/request', {
      action: 'anything',
      scope: { subject_pattern: '^(?:x|[^z]{995})' },
    });
    expect(granted.status).toBe(201);
    const { id, token } = granted.body.data;
    tokensSeen.push(token);
    const [verify, health] = await Promise.all([
      tester<{ valid: boolean }>('POST', `/api/v1/permissions/${id}/verify`, {
        token,
        actionDetails: { subject: 'a'.repeat(60_000) },
      }),
      fetch(`${a.url}/healthz`),
    ]);
    expect(verify.status).toBe(200);
    expect(verify.body.data.valid).toBe(false);
    expect(health.status).toBe(200);
  });

  it('refuses a "1,000" use under max_amount: 50 with 403 SCOPE_VIOLATION and spends nothing (defect 9)', async () => {
    const { id, token } = await approvedPayment({ max_amount: 50, max_uses: 2 });
    for (const amount of ['1,000', '1000 USD', [1000]]) {
      const use = await agentB('POST', `/api/v1/permissions/${id}/use`, { token, actionDetails: { amount } });
      expect(use.status, JSON.stringify(amount)).toBe(403);
      expect(use.body.error.code).toBe('SCOPE_VIOLATION');
      expect(use.body.error.details).toMatchObject({ key: 'max_amount' });
    }
    const after = await agentA<{ usesRemaining: number }>('GET', `/api/v1/permissions/${id}`);
    expect(after.body.data.usesRemaining).toBe(2);
  });

  it('rate-limits verify and use together per agent, across instances, with Retry-After (defect 1)', async () => {
    const limited = await operatorA<{ id: string; apiKey: string }>('POST', '/api/v1/agents', {
      name: 'verifier',
    });
    const patch = await operatorA('PATCH', `/api/v1/agents/${limited.body.data.id}`, {
      tokenRateLimitPerMin: 2,
    });
    expect(patch.status, JSON.stringify(patch.body)).toBe(200);
    const onA = apiClient(a.url, limited.body.data.apiKey);
    const onB = apiClient(b.url, limited.body.data.apiKey);
    const granted = await onA<{ id: string; token: string }>('POST', '/api/v1/permissions/request', {
      action: 'payment.x',
      scope: { max_uses: 5 },
    });
    const { id, token } = granted.body.data;
    tokensSeen.push(token);
    const first = await onA('POST', `/api/v1/permissions/${id}/verify`, { token });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-ratelimit-remaining')).toBe('1');
    expect((await onB('POST', `/api/v1/permissions/${id}/use`, { token })).status).toBe(200);
    const third = await onA('POST', `/api/v1/permissions/${id}/use`, { token });
    expect(third.status).toBe(429);
    expect(third.body.error.code).toBe('RATE_LIMITED');
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    const after = await onB<{ usesRemaining: number }>('GET', `/api/v1/permissions/${id}`);
    expect(after.body.data.usesRemaining).toBe(4);
  });

  it('uses a changed policy set on the other instance within a second', async () => {
    const before = await agentB('POST', '/api/v1/permissions/request', { action: 'file.write' });
    expect(before.body.data).toMatchObject({ status: 'pending' });
    const created = await operatorA('POST', '/api/v1/policies', {
      name: 'files-denied',
      priority: 50,
      conditions: { action: 'file.*' },
      action: 'deny',
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    await new Promise((r) => setTimeout(r, 1000));
    const after = await agentB('POST', '/api/v1/permissions/request', { action: 'file.write' });
    expect(after.body.data).toMatchObject({ status: 'denied' });
  });

  it('names a row changed by SQL when audit:verify walks the chain', async () => {
    const env = { AGENT_OTP_URL: a.url, AGENT_OTP_ADMIN_TOKEN: ADMIN };
    const clean = await runCli(['audit:verify'], env);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stdout).toContain('intact');

    const client = new pg.Client({ connectionString: DB_URL });
    await client.connect();
    try {
      await client.query(`SET search_path TO ${a.schema}`);
      const { rows } = await client.query<{ id: string }>(
        "SELECT id FROM audit_events WHERE type = 'use' AND chain_index IS NOT NULL ORDER BY chain_index LIMIT 1",
      );
      const target = rows[0]?.id as string;
      await client.query(
        `UPDATE audit_events SET details = '{"checked": true, "actionDetails": {"amount": 1}}' WHERE id = $1`,
        [target],
      );
      const broken = await runCli(['audit:verify'], env);
      expect(broken.code).toBe(2);
      expect(broken.stdout).toContain(target);
    } finally {
      await client.end();
    }
  });

  it('keeps no token in clear in the database or the logs', async () => {
    expect(tokensSeen.length).toBeGreaterThan(5);
    const client = new pg.Client({ connectionString: DB_URL });
    await client.connect();
    let dump = '';
    try {
      await client.query(`SET search_path TO ${a.schema}`);
      const { rows } = await client.query<{ tablename: string }>(
        'SELECT tablename FROM pg_tables WHERE schemaname = $1',
        [a.schema],
      );
      for (const { tablename } of rows) {
        const data = await client.query(`SELECT row_to_json(t)::text AS j FROM ${tablename} t`);
        dump += data.rows.map((r) => r.j).join('\n');
      }
    } finally {
      await client.end();
    }
    expect(dump.length).toBeGreaterThan(1000);
    const logs = (await a.logsSoFar()) + (await b.logsSoFar());
    for (const token of tokensSeen) {
      expect(dump).not.toContain(token);
      expect(logs).not.toContain(token);
    }
    expect(logs).not.toMatch(/otp_v1_[A-Za-z0-9_-]{20,}/);
    expect(dump).not.toMatch(/otp_v1_[A-Za-z0-9_-]{20,}/);
  });
});
