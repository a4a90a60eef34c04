import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { newOperatorKey } from '../../src/core/credentials.js';
import { createLogger } from '../../src/logger.js';
import { type Running, startService } from '../../src/main.js';
import { type Schema, validate } from '../helpers/jsonSchema.js';

/**
 * Issue 13: /openapi.json is the contract SDKs in other languages are generated from, so every
 * answer the API gives must be what the document says. Real calls (the composition production
 * runs, in process) reach every operation of the document — enumerated from it, so a new route
 * fails here until it is exercised — with its 2xx answers and the main 4xx ones. Each answer
 * needs a documented response for its status and content type; a JSON body must fit that
 * response's schema exactly (no property the schema does not declare, none it requires
 * missing); every X-* header must be documented.
 */

interface Operation {
  responses: Record<
    string,
    | {
        content?: Record<string, { schema: Schema; 'x-events'?: Record<string, Schema> }>;
        headers?: Record<string, unknown>;
      }
    | undefined
  >;
}
interface Doc {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: the tests read fields of the answers they check.
  data: any;
  headers: Record<string, string | string[] | number | undefined>;
  text: string;
}

/** HTTP's own headers (and a directive to proxies): not part of the API's contract. */
const STANDARD_HEADERS = new Set([
  'x-accel-buffering',
  'content-type',
  'content-length',
  'content-disposition',
  'cache-control',
  'connection',
  'date',
  'keep-alive',
  'transfer-encoding',
]);

describe('/openapi.json against real answers', () => {
  let running: Running;
  let dataDir: string;
  let doc: Doc;
  const operatorKey = newOperatorKey();
  /** "GET /api/v1/agents/{id}" → the statuses it answered. */
  const answered = new Map<string, Set<number>>();
  const problems: string[] = [];
  /** Server-Sent Events whose data was checked against the document. */
  let eventsChecked = 0;

  const resolve = (ref: string): Schema => {
    const name = ref.replace('#/components/schemas/', '');
    const schema = doc.components.schemas[name];
    if (!schema) throw new Error(`unresolvable $ref ${ref}`);
    return schema;
  };

  /** Checks one answer of `METHOD template` against the document; what does not fit is recorded. */
  function check(method: string, template: string, answer: Answer): void {
    const label = `${method} ${template} → ${answer.status}`;
    const statuses = answered.get(`${method} ${template}`) ?? new Set<number>();
    statuses.add(answer.status);
    answered.set(`${method} ${template}`, statuses);
    const operation = doc.paths[template]?.[method.toLowerCase()];
    if (!operation) {
      problems.push(`${label}: the operation is not in /openapi.json`);
      return;
    }
    const documented =
      operation.responses[String(answer.status)] ??
      (answer.status >= 400 ? operation.responses.default : undefined);
    if (!documented) {
      problems.push(`${label}: no response documented for this status`);
      return;
    }
    for (const name of Object.keys(answer.headers)) {
      if (STANDARD_HEADERS.has(name)) continue;
      const known = Object.keys(documented.headers ?? {}).some((h) => h.toLowerCase() === name);
      if (!known) problems.push(`${label}: header ${name} is not documented`);
    }
    const contentType =
      String(answer.headers['content-type'] ?? '')
        .split(';')[0]
        ?.trim() ?? '';
    const content = documented.content?.[contentType];
    if (!content) {
      problems.push(`${label}: content type ${contentType} is not documented`);
      return;
    }
    if (contentType === 'text/event-stream') {
      checkEvents(label, answer.text, content['x-events'] ?? {});
      return;
    }
    if (contentType !== 'application/json') return;
    const body = JSON.parse(answer.text) as unknown;
    for (const problem of validate(content.schema, body, resolve)) problems.push(`${label}: ${problem}`);
  }

  /** Each Server-Sent Event must be one the document names, its JSON data fitting that event's schema. */
  function checkEvents(label: string, text: string, events: Record<string, Schema>): void {
    for (const block of text.split('\n\n')) {
      const lines = block.split('\n');
      const name = lines.find((l) => l.startsWith('event: '))?.slice('event: '.length);
      const data = lines.find((l) => l.startsWith('data: '))?.slice('data: '.length);
      if (data === undefined) continue;
      const schema = events[name ?? 'message'];
      if (!schema) {
        problems.push(`${label}: event ${name} is not documented`);
        continue;
      }
      eventsChecked += 1;
      for (const problem of validate(schema, JSON.parse(data), resolve, `event ${name}`)) {
        problems.push(`${label}: ${problem}`);
      }
    }
  }

  /** Calls `METHOD template` (path parameters filled in from `params`) and checks the answer. */
  async function call(
    method: string,
    template: string,
    options: {
      key?: string | null;
      params?: Record<string, string>;
      query?: string;
      body?: unknown;
      ip?: string;
    } = {},
  ): Promise<Answer> {
    const url =
      template.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(options.params?.[name] ?? '')) +
      (options.query ? `?${options.query}` : '');
    const key = options.key === undefined ? operatorKey : options.key;
    const res = await running.app!.inject({
      method: method as 'GET',
      url,
      headers: key ? { authorization: `Bearer ${key}` } : {},
      ...(options.ip && { remoteAddress: options.ip }),
      ...(options.body === undefined ? {} : { payload: options.body as object }),
    });
    const answer: Answer = {
      status: res.statusCode,
      data: undefined,
      headers: res.headers,
      text: res.body,
    };
    if (String(res.headers['content-type']).startsWith('application/json')) {
      const parsed = res.json() as { data?: unknown; error?: unknown };
      answer.data = parsed.data ?? parsed.error;
    }
    check(method, template, answer);
    return answer;
  }

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'aotp-contract-'));
    const env: NodeJS.ProcessEnv = {
      LOG_LEVEL: 'silent',
      PORT: '0',
      HOST: '127.0.0.1',
      AGENT_OTP_DATA_DIR: dataDir,
      ADMIN_TOKEN: operatorKey,
      // Invitation links are built on it (and passkeys bound to it).
      PUBLIC_URL: 'https://otp.example.com',
      REDIS_URL: inject('redisUrl'),
      REDIS_KEY_PREFIX: `tc${Math.random().toString(36).slice(2, 10)}`,
    };
    running = await startService(loadConfig(env), createLogger('silent'), ['api']);
    doc = (await running.app!.inject({ method: 'GET', url: '/openapi.json' })).json() as Doc;
  }, 60_000);

  afterAll(async () => {
    await running?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('every operation, with its 2xx and main 4xx answers, answers as documented', async () => {
    // ---- agents ----
    const created = await call('POST', '/api/v1/agents', {
      body: { name: 'contract-agent', description: 'checks the contract', metadata: { team: 'sdk' } },
    });
    expect(created.status).toBe(201);
    const agentId = created.data.id as string;
    const agentKey = created.data.apiKey as string;
    const tester = await call('POST', '/api/v1/agents', {
      body: { name: 'contract-tester', environment: 'test' },
    });
    const testerKey = tester.data.apiKey as string;
    expect((await call('POST', '/api/v1/agents', { body: { name: 'contract-agent' } })).status).toBe(409);
    expect((await call('POST', '/api/v1/agents', { body: { name: '' } })).status).toBe(400);
    expect((await call('POST', '/api/v1/agents', { key: null, body: { name: 'x' } })).status).toBe(401);
    expect((await call('POST', '/api/v1/agents', { key: agentKey, body: { name: 'x' } })).status).toBe(403);
    expect((await call('GET', '/api/v1/agents', { query: 'limit=1' })).data.nextCursor).not.toBeNull();
    await call('GET', '/api/v1/agents/name-duplicates');
    expect((await call('GET', '/api/v1/agents/{id}', { params: { id: agentId } })).data.keys).toHaveLength(1);
    expect((await call('GET', '/api/v1/agents/{id}', { params: { id: 'agt_none' } })).status).toBe(404);
    await call('PATCH', '/api/v1/agents/{id}', {
      params: { id: agentId },
      body: { rateLimitPerMin: 1000, webhookUrl: 'https://hooks.example.com/otp' },
    });
    const spare = await call('POST', '/api/v1/agents', { body: { name: 'contract-spare' } });
    const rotated = await call('POST', '/api/v1/agents/{id}/rotate-key', {
      params: { id: spare.data.id },
      body: { gracePeriod: 60 },
    });
    expect(rotated.status).toBe(200);
    expect((await call('POST', '/api/v1/agents/{id}/revoke', { params: { id: spare.data.id } })).status).toBe(
      200,
    );
    expect((await call('DELETE', '/api/v1/agents/{id}', { params: { id: spare.data.id } })).status).toBe(200);

    // ---- approver accounts ----
    const approver = await call('POST', '/api/v1/approvers', {
      body: { name: 'contract-alice', email: 'alice@example.com', identities: ['slack:U0ALICE'] },
    });
    expect(approver.status).toBe(201);
    const approverId = approver.data.id as string;
    expect((await call('POST', '/api/v1/approvers', { body: { name: 'CONTRACT-alice' } })).data.code).toBe(
      'APPROVER_NAME_TAKEN',
    );
    expect(
      (await call('POST', '/api/v1/approvers', { body: { name: 'bob', identities: ['slack:bob'] } })).status,
    ).toBe(400);
    expect((await call('POST', '/api/v1/approvers', { key: agentKey, body: { name: 'x' } })).status).toBe(
      403,
    );
    expect((await call('GET', '/api/v1/approvers', { query: 'limit=1' })).data.approvers).toHaveLength(1);
    expect((await call('GET', '/api/v1/approvers/{id}', { params: { id: 'contract-alice' } })).data.id).toBe(
      approverId,
    );
    expect((await call('GET', '/api/v1/approvers/{id}', { params: { id: 'nobody' } })).status).toBe(404);
    const patched = await call('PATCH', '/api/v1/approvers/{id}', {
      params: { id: approverId },
      body: { email: null, addIdentities: ['discord:111111111111111111'] },
    });
    expect(patched.data.identities).toEqual(['discord:111111111111111111', 'slack:U0ALICE']);
    const other = await call('POST', '/api/v1/approvers', { body: { name: 'contract-bob' } });
    expect(
      (
        await call('PATCH', '/api/v1/approvers/{id}', {
          params: { id: other.data.id },
          body: { addIdentities: ['slack:U0ALICE'] },
        })
      ).data.code,
    ).toBe('APPROVER_IDENTITY_TAKEN');
    expect(
      (await call('POST', '/api/v1/approvers/{id}/disable', { params: { id: approverId } })).data.status,
    ).toBe('disabled');
    expect(
      (await call('POST', '/api/v1/approvers/{id}/enable', { params: { id: approverId } })).data.status,
    ).toBe('active');
    expect((await call('DELETE', '/api/v1/approvers/{id}', { params: { id: other.data.id } })).status).toBe(
      200,
    );
    const invitation = await call('POST', '/api/v1/approvers/{id}/invitations', {
      params: { id: 'contract-alice' },
    });
    expect(invitation.status).toBe(201);
    expect(invitation.data.url).toMatch(/^https:\/\/otp\.example\.com\/enrol\/[A-Za-z0-9_-]{43}$/);
    expect(
      (await call('POST', '/api/v1/approvers/{id}/invitations', { params: { id: 'nobody' } })).status,
    ).toBe(404);
    expect(
      (await call('GET', '/api/v1/approvers/{id}/passkeys', { params: { id: approverId } })).data,
    ).toEqual({
      passkeys: [],
    });
    // A passkey is made in a browser (test/e2e/webAuth.test.ts); here one is stored as enrolment would.
    await running.db.query(
      `INSERT INTO passkeys (credential_id, approver_id, public_key, counter, transports, name, created_at)
       VALUES ('contract-passkey', $1, 'AQ', 0, '{internal}', 'laptop', now())`,
      [approverId],
    );
    const removed = await call('POST', '/api/v1/approvers/{id}/passkeys/remove', {
      params: { id: 'contract-alice' },
      body: { credentialId: 'contract-passkey' },
    });
    expect(removed.data).toMatchObject({ credentialId: 'contract-passkey', name: 'laptop' });
    expect(
      (
        await call('POST', '/api/v1/approvers/{id}/passkeys/remove', {
          params: { id: approverId },
          body: { credentialId: 'no-such-passkey' },
        })
      ).status,
    ).toBe(404);

    // ---- policies ----
    const payments = await call('POST', '/api/v1/policies', {
      body: {
        name: 'payments-need-two',
        conditions: { action: 'payment.*' },
        action: 'require_approval',
        approval: { quorum: 2 },
        priority: 10,
      },
    });
    expect(payments.status).toBe(201);
    await call('POST', '/api/v1/policies', {
      body: { name: 'reads-are-fine', conditions: { action: 'file.read' }, action: 'auto_approve', ttl: 600 },
    });
    await call('POST', '/api/v1/policies', {
      body: { name: 'no-deletes', conditions: { action: 'db.drop' }, action: 'deny', reason: 'never' },
    });
    expect(
      (await call('POST', '/api/v1/policies', { body: { name: 'broken', action: 'maybe' } })).status,
    ).toBe(422);
    const listed = await call('GET', '/api/v1/policies');
    const policies = listed.data.policies as Record<string, unknown>[];
    const dryRun = await call('PUT', '/api/v1/policies', {
      query: 'dry_run=true',
      body: {
        policies: [
          ...policies.map(({ id, position: _p, createdAt: _c, updatedAt: _u, ...p }) => ({ id, ...p })),
          { name: 'for-a-ghost', agent: 'ghost-agent', conditions: { action: 'x.*' }, action: 'deny' },
        ],
      },
    });
    expect(dryRun.data.unknownAgents).toHaveLength(1);
    const replaced = await call('PUT', '/api/v1/policies', {
      body: policies.map(({ id, position: _p, createdAt: _c, updatedAt: _u, ...p }) => ({ id, ...p })),
    });
    expect(replaced.data.plan.unchanged).toHaveLength(3);
    const tested = await call('POST', '/api/v1/policies/test', {
      body: { agent: 'contract-agent', action: 'payment.send', scope: { max_amount: 5 } },
    });
    expect(tested.data.approval).toBeDefined();
    expect(
      (await call('POST', '/api/v1/policies/test', { body: { agent: 'nobody', action: 'a' } })).status,
    ).toBe(404);
    const policyId = payments.data.id as string;
    await call('GET', '/api/v1/policies/{id}', { params: { id: policyId } });
    await call('PATCH', '/api/v1/policies/{id}', {
      params: { id: policyId },
      body: { description: 'two people' },
    });
    const doomed = await call('POST', '/api/v1/policies', {
      body: { name: 'short-lived', conditions: { action: 'tmp.*' }, action: 'deny' },
    });
    await call('DELETE', '/api/v1/policies/{id}', { params: { id: doomed.data.id } });
    expect((await call('GET', '/api/v1/policies/{id}', { params: { id: doomed.data.id } })).status).toBe(404);

    // ---- permissions: each decision, each reader ----
    const request = (key: string, body: unknown) =>
      call('POST', '/api/v1/permissions/request', { key, body });
    const pending = await request(agentKey, {
      action: 'payment.send',
      resource: 'acct:1',
      scope: { max_amount: 100 },
      context: { why: 'invoice 7' },
      webhookUrl: 'https://hooks.example.com/otp',
    });
    expect(pending.status).toBe(202);
    // A chat message links the request: its approvalUrl is part of the pending answers.
    await running.db.query('UPDATE permissions SET approval_url = $1 WHERE id = $2', [
      'https://chat.example.com/archives/C1/p1',
      pending.data.id,
    ]);
    const approved = await request(agentKey, { action: 'file.read', resource: 'report.pdf' });
    expect(approved.status).toBe(201);
    const denied = await request(agentKey, { action: 'db.drop' });
    expect(denied.status).toBe(200);
    expect((await request(agentKey, { action: '' })).status).toBe(400);
    expect((await request(operatorKey, { action: 'a' })).status).toBe(403);

    const get = (id: string, key: string) => call('GET', '/api/v1/permissions/{id}', { key, params: { id } });
    expect((await get(pending.data.id, agentKey)).data.approvalUrl).toBeDefined();
    const operatorView = await get(pending.data.id, operatorKey);
    expect(operatorView.data).toMatchObject({ tokenState: 'none', approvals: { count: 0, required: 2 } });
    expect((await get('perm_none', agentKey)).status).toBe(404);
    const waited = await call('GET', '/api/v1/permissions/{id}', {
      key: agentKey,
      params: { id: denied.data.id },
      query: 'wait=1',
    });
    expect(waited.data.status).toBe('denied');
    await call('GET', '/api/v1/permissions/{id}/events', {
      key: agentKey,
      params: { id: denied.data.id },
    });
    expect(eventsChecked).toBe(1);
    expect(
      (await call('GET', '/api/v1/permissions/{id}/events', { params: { id: 'perm_none' } })).status,
    ).toBe(404);

    const decide = (id: string, body: unknown) =>
      call('POST', '/api/v1/permissions/{id}/decide', { params: { id }, body });
    const firstVote = await decide(pending.data.id, { approved: true, reason: 'ok by me' });
    expect(firstVote.data.approvals).toEqual({ count: 1, required: 2 });
    expect((await decide(denied.data.id, { approved: true })).status).toBe(409);
    const toDeny = await request(agentKey, { action: 'payment.refund' });
    await decide(toDeny.data.id, { approved: false, reason: 'no' });
    await call('GET', '/api/v1/permissions', { query: 'status=pending&limit=1' });
    await call('GET', '/api/v1/permissions', { query: `agent=contract-agent&action=file.read` });
    expect((await call('GET', '/api/v1/permissions', { query: 'status=odd' })).status).toBe(400);

    // verify and use with a token, then after it is spent.
    const granted = await request(testerKey, {
      action: 'email.send',
      scope: { max_recipients: 1, max_uses: 1 },
    });
    expect(granted.status).toBe(201);
    const token = granted.data.token as string;
    const tokenCall = (what: 'verify' | 'use', body: unknown) =>
      call('POST', `/api/v1/permissions/{id}/${what}`, {
        key: testerKey,
        params: { id: granted.data.id },
        body,
      });
    expect(
      (await tokenCall('verify', { token, actionDetails: { recipients: ['a@x', 'b@x'] } })).data,
    ).toMatchObject({ valid: false });
    expect((await tokenCall('verify', { token })).data.valid).toBe(true);
    expect((await tokenCall('use', { token, actionDetails: { recipients: ['a@x', 'b@x'] } })).status).toBe(
      403,
    );
    expect((await tokenCall('use', { token })).status).toBe(200);
    expect((await tokenCall('use', { token })).status).toBe(410);
    expect((await tokenCall('verify', { token: 'wrong' })).data.valid).toBe(false);
    expect((await get(granted.data.id, 'ak_live_not_a_key')).status).toBe(401);
    expect((await get(granted.data.id, operatorKey)).data.tokenState).toBe('exhausted');

    const toRevoke = await request(testerKey, { action: 'file.read' });
    expect(
      (
        await call('POST', '/api/v1/permissions/{id}/revoke', {
          params: { id: toRevoke.data.id },
          body: { reason: 'done' },
        })
      ).data.status,
    ).toBe('revoked');
    const toCancel = await request(agentKey, { action: 'payment.send', scope: { max_amount: 1 } });
    const cancel = (id: string) =>
      call('POST', '/api/v1/permissions/{id}/cancel', { key: agentKey, params: { id } });
    expect((await cancel(toCancel.data.id)).data.status).toBe('cancelled');
    expect((await cancel(denied.data.id)).status).toBe(409);

    // ---- webhook deliveries (the first vote queued none; the denial did) ----
    const deliveries = await call('GET', '/api/v1/webhooks/deliveries', { query: 'agent=contract-agent' });
    const delivery = (deliveries.data.deliveries as { id: string }[])[0];
    expect(delivery).toBeDefined();
    await running.db.query(`UPDATE webhook_deliveries SET status = 'dead' WHERE id = $1`, [delivery?.id]);
    const replay = (id: string) =>
      call('POST', '/api/v1/webhooks/deliveries/{id}/replay', { params: { id } });
    expect((await replay(delivery?.id as string)).data.status).toBe('pending');
    expect((await replay('whd_none')).status).toBe(404);

    // ---- metrics ----
    expect((await call('GET', '/api/v1/metrics', { key: agentKey })).data.agentId).toBe(agentId);
    await call('GET', '/api/v1/metrics', { query: 'period=7d' });
    expect((await call('GET', '/api/v1/metrics', { query: 'period=1y' })).status).toBe(400);

    // ---- audit ----
    const events = await call('GET', '/api/v1/audit', { query: 'limit=5' });
    expect(events.data.events).toHaveLength(5);
    await call('GET', '/api/v1/audit', { query: `permission_id=${pending.data.id}` });
    expect((await call('GET', '/api/v1/audit', { query: 'event_type=nope' })).status).toBe(400);
    expect((await call('POST', '/api/v1/audit/verify')).data.valid).toBe(true);
    const exported = await call('GET', '/api/v1/audit/export', { query: 'count=true' });
    expect(Number(exported.headers['x-total-count'])).toBeGreaterThan(0);
    await call('GET', '/api/v1/audit/export', { query: 'format=csv' });
    expect((await call('GET', '/api/v1/audit/export', { query: 'format=xml' })).status).toBe(400);
    const redacted = await call('POST', '/api/v1/audit/redact', {
      body: { subject: 'invoice 7', dryRun: true },
    });
    expect(redacted.data.dryRun).toBe(true);
    expect((await call('POST', '/api/v1/audit/redact', { body: { subject: 'x' } })).status).toBe(400);

    // ---- 429s: an agent over its limit, an address failing to authenticate ----
    const busy = await call('POST', '/api/v1/agents', { body: { name: 'contract-busy' } });
    await call('PATCH', '/api/v1/agents/{id}', {
      params: { id: busy.data.id },
      body: { rateLimitPerMin: 1 },
    });
    expect((await request(busy.data.apiKey, { action: 'payment.send' })).status).toBe(202);
    const overLimit = await request(busy.data.apiKey, { action: 'payment.send' });
    expect([overLimit.status, overLimit.headers['x-ratelimit-remaining']]).toEqual([429, '0']);
    // AUTH_FAILURES_PER_MIN (30) failures from one address, then even a good key is refused.
    for (let i = 0; i < 30; i += 1) {
      const guess = await call('GET', '/api/v1/agents', { key: `ak_live_guess${i}`, ip: '192.0.2.9' });
      expect(guess.status).toBe(401);
    }
    const blocked = await call('GET', '/api/v1/agents', { ip: '192.0.2.9' });
    expect([blocked.status, blocked.data.code]).toEqual([429, 'RATE_LIMITED']);
    expect(blocked.headers['retry-after']).toBeDefined();

    // ---- operations ----
    expect((await call('GET', '/healthz', { key: null })).data).toBeUndefined();
    await call('GET', '/readyz', { key: null });
    expect((await call('GET', '/metrics', { key: null })).text).toContain('# TYPE');
    await call('GET', '/openapi.json', { key: null });

    expect(problems).toEqual([]);
  }, 60_000);

  it('the calls above reached every operation of the document with a 2xx answer', () => {
    const missing: string[] = [];
    for (const [template, operations] of Object.entries(doc.paths)) {
      for (const method of Object.keys(operations)) {
        const statuses = [...(answered.get(`${method.toUpperCase()} ${template}`) ?? [])];
        if (!statuses.some((s) => s >= 200 && s < 300)) missing.push(`${method.toUpperCase()} ${template}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('documents a schema for every JSON answer, never an empty one', () => {
    const empty: string[] = [];
    for (const [template, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        for (const [status, response] of Object.entries(operation.responses)) {
          const schema = response?.content?.['application/json']?.schema as
            | (Schema & { properties?: { data?: Schema } })
            | undefined;
          if (!schema) continue;
          // The envelope's data, or the whole answer of a route outside the envelope.
          const described = schema.properties?.data ?? schema;
          if (Object.keys(described).length === 0)
            empty.push(`${method.toUpperCase()} ${template} ${status}`);
        }
      }
    }
    expect(empty).toEqual([]);
  });
});
