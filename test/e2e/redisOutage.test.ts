import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeCall, type FakeSlack, startFakeSlack } from '../fakes/slackApi.js';
import { type Api, type ApiResponse, apiClient } from '../helpers/api.js';
import { sleep, waitUntil } from '../helpers/chatE2e.js';
import { PrivateRedis } from '../helpers/privateRedis.js';
import { type ServerProcess, startServer } from '../helpers/serverProcess.js';

/**
 * A Redis outage (issue 11, defect 5): the built server as a process on a redis-server of this
 * file's own, which the test kills and restarts on the same port. While Redis is down every
 * endpoint answers within a second (the acceptance bound, generous on purpose: these are not
 * micro-benchmarks); once it is back everything recovers without a restart.
 */

const DB_URL = process.env.TEST_DATABASE_URL;
const ADMIN = `uk_${randomBytes(24).toString('hex')}`;
const CHANNEL = 'C0APPROVALS';
const SECURITY_CHANNEL = 'C0SECURITY';
const SIGNING_SECRET = `sign_${randomBytes(16).toString('hex')}`;
const BOUND_MS = 1000;

const POLICIES = {
  policies: [
    { name: 'payments-auto', priority: 10, conditions: { action: 'payment.*' }, action: 'auto_approve' },
    { name: 'email-human', priority: 5, conditions: { action: 'email.*' }, action: 'require_approval' },
    {
      name: 'oncall-escalates',
      priority: 5,
      conditions: { action: 'oncall.*' },
      action: 'require_approval',
      approval: { remind_after: 1, escalate_after: 2, escalate_to: [`slack:${SECURITY_CHANNEL}`] },
    },
  ],
};

interface Permission {
  id: string;
  status: string;
  token?: string;
}

/** A private Redis to kill and a fake Slack to watch: what each suite here starts with. */
async function startRig(): Promise<{ redis: PrivateRedis; fake: FakeSlack }> {
  const redis = await PrivateRedis.start();
  const fake = await startFakeSlack({
    users: { U0ALICE: { name: 'alice' } },
    channels: [CHANNEL, SECURITY_CHANNEL],
    serverPingIntervalMs: 0,
  });
  return { redis, fake };
}

function slackEnv(fake: FakeSlack, redis: PrivateRedis, extra: Record<string, string> = {}) {
  return {
    ADMIN_TOKEN: ADMIN,
    REDIS_URL: redis.url,
    RECONCILE_INTERVAL_MS: '1000',
    SLACK_BOT_TOKEN: fake.botToken,
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_API_URL: fake.apiUrl,
    SLACK_APPROVAL_CHANNEL: CHANNEL,
    SLACK_APPROVERS: 'U0ALICE',
    ...extra,
  };
}

const posted = (fake: FakeSlack, id: string) =>
  fake
    .calls('chat.postMessage')
    .filter(
      (c: FakeCall) => c.response?.ok === true && !c.args.thread_ts && JSON.stringify(c.args).includes(id),
    );

/** Runs `call`, records how long it took under `what`, and returns its answer. */
async function timed<T>(
  latencies: Record<string, number[]>,
  what: string,
  call: () => Promise<T>,
): Promise<T> {
  const started = performance.now();
  const result = await call();
  const list = latencies[what] ?? [];
  list.push(Math.round(performance.now() - started));
  latencies[what] = list;
  return result;
}

describe('a Redis outage', () => {
  let redis: PrivateRedis;
  let fake: FakeSlack;
  let server: ServerProcess;
  let operator: Api;
  let agent: Api;
  let agentKey: string;
  let approved: Permission;
  const duringOutage: Permission[] = [];
  /** Asked during the outage, with a reminder after 1 s and an escalation after 2 s. */
  let escalating: Permission;
  const latencies: Record<string, number[]> = {};
  /** Where the server's output stood when Redis went down. */
  let outageLogStart = 0;

  beforeAll(async () => {
    ({ redis, fake } = await startRig());
    server = await startServer({
      database: DB_URL ? 'postgres' : 'pglite',
      env: slackEnv(fake, redis, { RATE_LIMIT_PER_MIN: '1000', RATE_LIMIT_PER_HOUR: '10000' }),
    });
    operator = apiClient(server.url, ADMIN);
    expect((await operator('PUT', '/api/v1/policies', POLICIES)).status).toBe(200);
    const created = await operator<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'outage' });
    agentKey = created.body.data.apiKey;
    agent = apiClient(server.url, agentKey);
    const res = await agent<Permission>('POST', '/api/v1/permissions/request', {
      action: 'payment.transfer',
      scope: { max_uses: 10 },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    approved = res.body.data;
  });

  afterAll(async () => {
    await server?.stop();
    await redis?.close();
    await fake?.close();
  });

  it('answers every endpoint within 1 s while Redis is down', async () => {
    await redis.stop();
    outageLogStart = (await server.logsSoFar()).length;
    const stranger = apiClient(server.url, `ak_test_${randomBytes(32).toString('base64url')}`);
    // Several rounds, so calls land at different points of the client's reconnect attempts.
    for (let round = 0; round < 4; round += 1) {
      const auto = await timed(latencies, 'request (auto-approved)', () =>
        agent<Permission>('POST', '/api/v1/permissions/request', { action: 'payment.transfer' }),
      );
      expect(auto.status, JSON.stringify(auto.body)).toBe(201);
      const pending = await timed(latencies, 'request (pending)', () =>
        agent<Permission>('POST', '/api/v1/permissions/request', {
          action: 'email.send',
          resource: `outage-${round}`,
        }),
      );
      expect(pending.status, JSON.stringify(pending.body)).toBe(202);
      duringOutage.push(pending.body.data);
      const verify = await timed(latencies, 'verify', () =>
        agent<{ valid: boolean }>('POST', `/api/v1/permissions/${approved.id}/verify`, {
          token: approved.token,
        }),
      );
      expect(verify.body.data.valid).toBe(true);
      const use = await timed(latencies, 'use', () =>
        agent('POST', `/api/v1/permissions/${approved.id}/use`, { token: approved.token }),
      );
      expect(use.status, JSON.stringify(use.body)).toBe(200);
      const invalid = await timed(latencies, 'invalid key', () =>
        stranger('POST', '/api/v1/permissions/request', { action: 'payment.transfer' }),
      );
      expect(invalid.status).toBe(401);
      const get = await timed(latencies, 'GET', () =>
        agent<Permission>('GET', `/api/v1/permissions/${pending.body.data.id}`),
      );
      expect(get.body.data.status).toBe('pending');
      const ready = await timed(latencies, '/readyz', () =>
        fetch(`${server.url}/readyz`).then(async (r) => ({
          status: r.status,
          body: (await r.json()) as { error: { code: string; details: { checks: Record<string, string> } } },
        })),
      );
      expect(ready.status).toBe(503);
      expect(ready.body.error.code).toBe('NOT_READY');
      expect(ready.body.error.details.checks.redis).toBe('unavailable');
      const metrics = await timed(latencies, '/metrics', () =>
        fetch(`${server.url}/metrics`).then((r) => r.status),
      );
      expect(metrics).toBe(200);
      const policies = await timed(latencies, 'PUT /policies', () =>
        operator('PUT', '/api/v1/policies', POLICIES),
      );
      expect(policies.status).toBe(200);
      await sleep(700);
    }
    const oncall = await agent<Permission>('POST', '/api/v1/permissions/request', { action: 'oncall.page' });
    expect(oncall.status).toBe(202);
    escalating = oncall.body.data;
    console.info('latencies with Redis down (ms):', JSON.stringify(latencies));
    for (const [what, list] of Object.entries(latencies)) {
      expect(Math.max(...list), what).toBeLessThan(BOUND_MS);
    }
  });

  it('answers a long poll by its deadline while Redis is down', async () => {
    const pending = duringOutage[0] as Permission;
    const started = performance.now();
    const res = await agent<Permission>('GET', `/api/v1/permissions/${pending.id}?wait=1`);
    const elapsed = performance.now() - started;
    expect(res.body.data.status).toBe('pending');
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(1000 + BOUND_MS);
  });

  it('wakes an agent waiting on this instance as soon as a decision is made', async () => {
    const pending = duringOutage.pop() as Permission;
    const started = performance.now();
    const waiting = agent<Permission>('GET', `/api/v1/permissions/${pending.id}?wait=20`);
    await sleep(200);
    const decided = await operator('POST', `/api/v1/permissions/${pending.id}/decide`, { approved: true });
    expect(decided.status, JSON.stringify(decided.body)).toBe(200);
    const res = await waiting;
    expect(res.body.data.status).toBe('approved');
    expect(performance.now() - started).toBeLessThan(200 + BOUND_MS);
  });

  it('logs the outage once, not once per request or per reconnect attempt', async () => {
    const lines = (await server.logsSoFar()).slice(outageLogStart).split('\n');
    const problems = lines.filter((l) => /"level":(40|50|60)/.test(l) || l.includes('Error'));
    expect(lines.filter((l) => l.includes('rate limiter unavailable'))).toHaveLength(1);
    // About 40 calls and 10 s of reconnect attempts: a handful of lines, each naming a consequence.
    expect(problems.length, problems.join('\n')).toBeLessThanOrEqual(5);
  });

  it('recovers once Redis is back: posts what was asked during the outage, counts rate limits again', async () => {
    await redis.restart();
    await waitUntil('readyz 200', async () => (await fetch(`${server.url}/readyz`)).status === 200, 5000);
    // Nothing was enqueued during the outage: the reconciler posts these from Postgres.
    for (const pending of duringOutage) {
      await waitUntil(
        `the approval message of ${pending.id}`,
        () => posted(fake, pending.id).length === 1,
        15_000,
      );
    }
    // Its reminder and escalation were due during the outage; their delayed jobs were never queued.
    const message = await fake.waitFor(
      (c) =>
        c.method === 'chat.postMessage' &&
        c.args.channel === CHANNEL &&
        JSON.stringify(c.args).includes(escalating.id),
      15_000,
    );
    await fake.waitFor(
      (c) =>
        c.method === 'chat.postMessage' &&
        c.args.thread_ts === message.response?.ts &&
        String(c.args.text).includes('still waiting'),
      15_000,
    );
    await fake.waitFor(
      (c) =>
        c.method === 'chat.postMessage' &&
        c.args.channel === SECURITY_CHANNEL &&
        JSON.stringify(c.args.blocks ?? []).includes(escalating.id),
      15_000,
    );
    await sleep(2500); // more reconciler runs: each follow-up is sent once
    const reminders = fake
      .calls('chat.postMessage')
      .filter(
        (c) => c.args.thread_ts === message.response?.ts && String(c.args.text).includes('still waiting'),
      );
    expect(reminders).toHaveLength(1);
    const res: ApiResponse<Permission> = await agent('POST', '/api/v1/permissions/request', {
      action: 'payment.transfer',
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('x-ratelimit-remaining')).not.toBeNull();
    expect((await server.logsSoFar()).slice(outageLogStart)).toContain(
      '"msg":"rate limiter available again"',
    );
  });

  it('stops on SIGTERM within seconds while Redis is down, answering the agents still waiting', async () => {
    await redis.stop();
    const pending = duringOutage[0] as Permission;
    const longPoll = agent<Permission>('GET', `/api/v1/permissions/${pending.id}?wait=60`);
    const stream = await fetch(`${server.url}/api/v1/permissions/${pending.id}/events`, {
      headers: { authorization: `Bearer ${agentKey}` },
    });
    expect(stream.status).toBe(200);
    const streamEnded = stream.text();
    await sleep(500);
    const started = performance.now();
    await server.stop();
    const elapsed = performance.now() - started;
    expect(server.output()).toContain('"msg":"stopped"');
    expect(elapsed).toBeLessThan(5000);
    expect((await longPoll).body.data.status).toBe('pending');
    expect(await streamEnded).toContain('"status":"pending"');
  });
});

/**
 * Several processes on one Postgres and one Redis: pub/sub messages published during the outage
 * are lost, so instances re-read what they may have missed; a worker started during the outage
 * runs, and posts what was asked once Redis is back.
 */
describe.runIf(DB_URL)('a Redis outage across instances (two APIs and a worker)', () => {
  let redis: PrivateRedis;
  let fake: FakeSlack;
  let a: ServerProcess;
  let b: ServerProcess;
  let worker: ServerProcess | undefined;
  let operatorA: Api;
  let agentA: Api;
  let agentB: Api;
  let leftPending: Permission;
  let sharedEnv: Record<string, string>;

  beforeAll(async () => {
    ({ redis, fake } = await startRig());
    sharedEnv = slackEnv(fake, redis, { REDIS_KEY_PREFIX: `t${randomBytes(4).toString('hex')}` });
    a = await startServer({ command: 'api', database: 'postgres', env: sharedEnv });
    b = await startServer({ command: 'api', database: 'postgres', schema: a.schema, env: sharedEnv });
    operatorA = apiClient(a.url, ADMIN);
    expect((await operatorA('PUT', '/api/v1/policies', POLICIES)).status).toBe(200);
    const created = await operatorA<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'outage-multi' });
    agentA = apiClient(a.url, created.body.data.apiKey);
    agentB = apiClient(b.url, created.body.data.apiKey);
  });

  afterAll(async () => {
    await worker?.stop();
    await b?.stop();
    await a?.stop();
    await redis?.close();
    await fake?.close();
  });

  it('wakes an agent waiting on another instance within seconds, not at its deadline', async () => {
    await redis.stop();
    const pending = await agentA<Permission>('POST', '/api/v1/permissions/request', { action: 'email.send' });
    expect(pending.status).toBe(202);
    const started = performance.now();
    const waiting = agentB<Permission>('GET', `/api/v1/permissions/${pending.body.data.id}?wait=30`);
    await sleep(200);
    const decided = await operatorA('POST', `/api/v1/permissions/${pending.body.data.id}/decide`, {
      approved: true,
    });
    expect(decided.status).toBe(200);
    expect((await waiting).body.data.status).toBe('approved');
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('applies a policy change made on another instance within seconds', async () => {
    const denyPayments = {
      policies: [
        { name: 'no-payments', priority: 20, conditions: { action: 'payment.*' }, action: 'deny' },
        ...POLICIES.policies,
      ],
    };
    expect((await operatorA('PUT', '/api/v1/policies', denyPayments)).status).toBe(200);
    await waitUntil(
      'instance B to deny payments',
      async () =>
        (await agentB<Permission>('POST', '/api/v1/permissions/request', { action: 'payment.transfer' })).body
          .data.status === 'denied',
      10_000,
    );
  });

  it('starts a worker while Redis is down, which posts what was asked once Redis is back', async () => {
    const pending = await agentA<Permission>('POST', '/api/v1/permissions/request', { action: 'email.send' });
    expect(pending.status).toBe(202);
    leftPending = pending.body.data;
    worker = await startServer({ command: 'worker', database: 'postgres', schema: a.schema, env: sharedEnv });
    await sleep(1000);
    expect(posted(fake, leftPending.id)).toHaveLength(0);
    await redis.restart();
    await waitUntil(
      `the approval message of ${leftPending.id}`,
      () => posted(fake, leftPending.id).length === 1,
      15_000,
    );
  });

  it('wakes an agent waiting on another instance at once after Redis is back (resubscribed)', async () => {
    await waitUntil('B ready', async () => (await fetch(`${b.url}/readyz`)).status === 200, 5000);
    const started = performance.now();
    const waiting = agentB<Permission>('GET', `/api/v1/permissions/${leftPending.id}?wait=30`);
    await sleep(200);
    expect(
      (await operatorA('POST', `/api/v1/permissions/${leftPending.id}/decide`, { approved: false })).status,
    ).toBe(200);
    expect((await waiting).body.data.status).toBe('denied');
    expect(performance.now() - started).toBeLessThan(200 + BOUND_MS);
  });

  it('stops every role on SIGTERM within seconds while Redis is down', async () => {
    await redis.stop();
    await sleep(500);
    for (const server of [worker as ServerProcess, b, a]) {
      const started = performance.now();
      await server.stop();
      expect(server.output()).toContain('"msg":"stopped"');
      expect(performance.now() - started).toBeLessThan(5000);
    }
  });
});
