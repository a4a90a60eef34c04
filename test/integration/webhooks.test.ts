import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Clock } from '../../src/core/clock.js';
import type { PolicyDecision } from '../../src/core/policy/index.js';
import {
  MAX_RETRY_DELAY_MS,
  type NewWebhookDelivery,
  type PermissionWebhookPayload,
  permissionDelivery,
} from '../../src/core/webhook.js';
import { createLogger } from '../../src/logger.js';
import { JobQueue } from '../../src/queue/jobQueue.js';
import { verifyWebhook, WebhookVerificationError } from '../../src/sdk/index.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { AuditService } from '../../src/services/audit.js';
import { PermissionService } from '../../src/services/permissions.js';
import { loadSecretsKey, SECRETS_KEY_FILE, SecretBox, SecretBoxError } from '../../src/services/secretBox.js';
import { WebhookSecrets } from '../../src/services/webhookSecrets.js';
import { type DeliveryOutcome, WebhookService } from '../../src/services/webhooks.js';
import { type Resolver, resolveTarget, systemResolver } from '../../src/services/webhookTransport.js';
import type { Agent } from '../../src/store/agentRepository.js';
import type { Db } from '../../src/store/db.js';
import { createRedis, type Redis, whenReady } from '../../src/store/redis.js';
import { insertDelivery, type WebhookDelivery } from '../../src/store/webhookRepository.js';
import { appError } from '../helpers/appError.js';
import { testDatabases } from '../helpers/databases.js';
import { startWebhookReceiver } from '../helpers/webhookReceiver.js';

const T0 = new Date('2025-03-03T12:00:00.000Z');
const DAY_MS = 24 * 3600 * 1000;

const operator: RequestOrigin = {
  actor: { type: 'operator', id: 'opk_admin', name: 'admin', platform: 'api' },
  ip: '127.0.0.1',
  userAgent: 'vitest',
};

const autoApprove: PolicyDecision = {
  decision: 'auto_approve',
  policy: { id: 'pol_auto', name: 'auto' },
  reason: 'Small payments are fine',
};
const requireApproval: PolicyDecision = {
  decision: 'require_approval',
  policy: { id: 'pol_human', name: 'human' },
  reason: 'A human decides',
};

const startReceiver = () => startWebhookReceiver('/hook');

/** The payload of a permission event's delivery (the tests below record no alerts). */
function permissionData(d: WebhookDelivery | undefined): PermissionWebhookPayload['data'] {
  if (!d) throw new Error('no such delivery');
  return (d.payload as PermissionWebhookPayload).data;
}

function independentSignature(secret: string, id: string, timestamp: string, body: string): string {
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64')}`;
}

describe.each(testDatabases())('webhooks on $name', ({ open }) => {
  let db: Db;
  let redis: Redis;
  const prefix = `t${randomBytes(4).toString('hex')}:bull`;
  let jobs: JobQueue;
  let inspect: Queue;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const logLines: string[] = [];
  const logger = createLogger('debug', { write: (line: string) => void logLines.push(line) });

  beforeAll(async () => {
    db = await open();
    redis = createRedis(inject('redisUrl'), 'producer');
    await whenReady(redis, 5000);
    jobs = new JobQueue(redis, prefix, logger);
    inspect = new Queue('webhook', { connection: redis, prefix });
    receiver = await startReceiver();
  });

  afterAll(async () => {
    await inspect?.obliterate({ force: true }).catch(() => undefined);
    await inspect?.close();
    await jobs?.close();
    redis?.disconnect();
    await receiver?.close();
    await db?.close();
  });

  /**
   * The services wired as in production, over one database, with a clock each test moves and a
   * policy decision each test sets. Permission changes record their deliveries; `settle()`
   * reads the ones recorded since its last call.
   */
  function harness(opts: { allowPrivate?: boolean; resolve?: Resolver; queue?: boolean } = {}) {
    const state = { now: T0, decision: autoApprove };
    const clock: Clock = { now: () => state.now };
    const audit = new AuditService(db, clock);
    const secrets = new WebhookSecrets(new SecretBox(randomBytes(32)));
    const allowPrivate = opts.allowPrivate ?? true;
    const agents = new AgentService(db, audit, clock, {
      webhookSecrets: secrets,
      allowPrivateWebhooks: allowPrivate,
    });
    const permissions = new PermissionService(db, audit, { evaluate: () => state.decision }, clock, {
      approvalTimeoutSeconds: 900,
      requireActionDetails: false,
      allowPrivateWebhooks: allowPrivate,
    });
    const webhooks = new WebhookService(
      db,
      audit,
      secrets,
      clock,
      logger,
      { allowPrivate, resolve: opts.resolve, timeoutMs: 5000 },
      opts.queue ? jobs : null,
    );
    // As in production: each change hands over the delivery it recorded, to be queued.
    const recorded: string[] = [];
    permissions.onChange(({ deliveryId }) => {
      if (!deliveryId) return;
      recorded.push(deliveryId);
      void webhooks.enqueue(deliveryId);
    });
    return {
      state,
      clock,
      audit,
      agents,
      permissions,
      webhooks,
      advance(ms: number) {
        state.now = new Date(state.now.getTime() + ms);
      },
      async newAgent(webhookUrl?: string): Promise<{ agent: Agent; secret: string }> {
        const created = await agents.create({ name: `agent-${randomBytes(3).toString('hex')}` }, operator);
        expect(created.webhookSecret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
        const agent = webhookUrl
          ? await agents.update(created.agent.id, { webhookUrl }, operator)
          : created.agent;
        return { agent, secret: created.webhookSecret as string };
      },
      request(agent: Agent, input: { webhookUrl?: string; tokenHash?: string } = {}) {
        return permissions.request(
          agent,
          { action: 'payment.create', resource: 'stripe:acct_1', scope: { max_amount: 50 }, ...input },
          { actor: { type: 'agent', id: agent.id, name: agent.name } },
        );
      },
      /** The deliveries recorded since the last call, as stored. */
      settle(): Promise<WebhookDelivery[]> {
        return Promise.all(recorded.splice(0).map((id) => webhooks.get(id)));
      },
    };
  }

  const lastReceived = () => {
    const last = receiver.received[receiver.received.length - 1];
    if (!last) throw new Error('the receiver got nothing');
    return last;
  };

  it('signs a delivery per Standard Webhooks; the payload carries status and never the token', async () => {
    receiver.answer(200);
    const h = harness();
    const { agent, secret } = await h.newAgent(receiver.url);
    const { permission, token } = await h.request(agent);
    expect(token).toBeDefined();
    const [delivery, ...more] = await h.settle();
    expect(more).toEqual([]);
    expect(delivery).toMatchObject({
      permissionId: permission.id,
      agentId: agent.id,
      url: receiver.url,
      eventType: 'permission.approved',
      status: 'pending',
      attempts: 0,
    });
    expect(delivery?.id).toMatch(/^msg_[A-Za-z0-9]{22}$/);

    const before = receiver.received.length;
    const outcome = await h.webhooks.deliver(delivery?.id as string);
    expect(outcome.outcome).toBe('delivered');
    expect(receiver.received.length).toBe(before + 1);
    const got = lastReceived();
    expect(got.headers['content-type']).toBe('application/json');
    expect(got.headers['webhook-id']).toBe(delivery?.id);
    expect(got.headers['webhook-timestamp']).toBe(String(T0.getTime() / 1000));
    const signature = got.headers['webhook-signature'] as string;
    expect(signature).toBe(
      independentSignature(secret, delivery?.id as string, String(T0.getTime() / 1000), got.body),
    );
    const event = await verifyWebhook<{ type: string; timestamp: string; data: Record<string, unknown> }>(
      got.body,
      got.headers as Record<string, string>,
      secret,
      { now: T0 },
    );
    expect(event).toEqual({
      type: 'permission.approved',
      timestamp: T0.toISOString(),
      data: {
        id: permission.id,
        agentId: agent.id,
        status: 'approved',
        action: 'payment.create',
        resource: 'stripe:acct_1',
        scope: { max_amount: 50 },
        reason: 'Small payments are fine',
        decidedBy: { type: 'policy', id: 'pol_auto', name: 'auto' },
        expiresAt: permission.expiresAt.toISOString(),
        usesRemaining: 1,
      },
    });
    // A tampered body, or another secret, does not verify.
    await expect(
      verifyWebhook(got.body.replace('approved', 'denied'), got.headers as Record<string, string>, secret, {
        now: T0,
      }),
    ).rejects.toBeInstanceOf(WebhookVerificationError);

    // Neither the token nor its hash is anywhere: not sent, not stored with the delivery.
    const tokenHash = permission.tokenHash as string;
    expect(got.body).not.toContain(token as string);
    expect(got.body).not.toContain(tokenHash);
    expect(got.body).not.toMatch(/token/i);
    const stored = JSON.stringify((await db.query('SELECT * FROM webhook_deliveries')).rows);
    expect(stored).not.toContain(token as string);
    expect(stored).not.toContain(tokenHash);

    const row = (
      await db.query<{ status: string; attempts: number; delivered_at: Date; last_status: number }>(
        'SELECT status, attempts, delivered_at, last_status FROM webhook_deliveries WHERE id = $1',
        [delivery?.id],
      )
    ).rows[0];
    expect(row).toMatchObject({ status: 'delivered', attempts: 1, last_status: 200 });
    expect(new Date(row?.delivered_at as Date).getTime()).toBe(T0.getTime());
    // A second run of the same job (a duplicate) sends nothing.
    expect((await h.webhooks.deliver(delivery?.id as string)).outcome).toBe('skipped');
    expect(receiver.received.length).toBe(before + 1);
  });

  it('stores the secret only encrypted, and never logs it', async () => {
    const h = harness();
    const { agent, secret } = await h.newAgent();
    const rows = (
      await db.query<{ secret_enc: string }>('SELECT secret_enc FROM webhook_secrets WHERE agent_id = $1', [
        agent.id,
      ])
    ).rows;
    expect(rows).toHaveLength(1);
    const encoded = secret.slice('whsec_'.length);
    expect(rows[0]?.secret_enc).toMatch(/^v1:[0-9a-f]{8}:/);
    expect(rows[0]?.secret_enc).not.toContain(encoded);
    expect(rows[0]?.secret_enc).not.toContain(Buffer.from(encoded, 'base64').toString('hex'));
    const audit = JSON.stringify(
      (await db.query('SELECT * FROM audit_events WHERE agent_id = $1', [agent.id])).rows,
    );
    expect(audit).not.toContain(encoded);
    expect(logLines.join('')).not.toContain(encoded);

    // Another key cannot open it, and a ciphertext moved to another owner does not decrypt.
    const box = new SecretBox(randomBytes(32));
    const sealed = box.seal('whsec_x', 'webhook-secret:agent_a:whs_1');
    expect(box.open(sealed, 'webhook-secret:agent_a:whs_1')).toBe('whsec_x');
    expect(() => box.open(sealed, 'webhook-secret:agent_b:whs_1')).toThrow(SecretBoxError);
    expect(() => new SecretBox(randomBytes(32)).open(sealed, 'webhook-secret:agent_a:whs_1')).toThrow(
      /another SECRETS_ENCRYPTION_KEY/,
    );
  });

  it('signs with both the new and the old secret during a rotation grace period, then only the new', async () => {
    receiver.answer(200);
    const h = harness();
    const { agent, secret: oldSecret } = await h.newAgent(receiver.url);
    const rotated = await h.agents.rotateKey(
      agent.id,
      { gracePeriodSeconds: 3600, revokeImmediately: false },
      operator,
    );
    const newSecret = rotated.webhookSecret as string;
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(oldSecret);

    await h.request(agent);
    const [during] = await h.settle();
    expect((await h.webhooks.deliver(during?.id as string)).outcome).toBe('delivered');
    let got = lastReceived();
    const signatures = (got.headers['webhook-signature'] as string).split(' ');
    expect(signatures).toHaveLength(2);
    const ts = got.headers['webhook-timestamp'] as string;
    expect(signatures).toEqual([
      independentSignature(newSecret, during?.id as string, ts, got.body),
      independentSignature(oldSecret, during?.id as string, ts, got.body),
    ]);
    const headersDuring = got.headers as Record<string, string>;
    await expect(
      verifyWebhook(got.body, headersDuring, newSecret, { now: h.clock.now() }),
    ).resolves.toBeTruthy();
    await expect(
      verifyWebhook(got.body, headersDuring, oldSecret, { now: h.clock.now() }),
    ).resolves.toBeTruthy();

    // After the grace period: the new secret alone.
    h.advance(3600 * 1000 + 1);
    await h.request(agent);
    const [after] = await h.settle();
    expect((await h.webhooks.deliver(after?.id as string)).outcome).toBe('delivered');
    got = lastReceived();
    expect((got.headers['webhook-signature'] as string).split(' ')).toHaveLength(1);
    const headersAfter = got.headers as Record<string, string>;
    await expect(
      verifyWebhook(got.body, headersAfter, newSecret, { now: h.clock.now() }),
    ).resolves.toBeTruthy();
    await expect(
      verifyWebhook(got.body, headersAfter, oldSecret, { now: h.clock.now() }),
    ).rejects.toBeInstanceOf(WebhookVerificationError);

    // revokeImmediately: the previous secret stops signing at once.
    const third = await h.agents.rotateKey(
      agent.id,
      { gracePeriodSeconds: 3600, revokeImmediately: true },
      operator,
    );
    await h.request(agent);
    const [immediate] = await h.settle();
    await h.webhooks.deliver(immediate?.id as string);
    got = lastReceived();
    expect((got.headers['webhook-signature'] as string).split(' ')).toEqual([
      independentSignature(
        third.webhookSecret as string,
        immediate?.id as string,
        got.headers['webhook-timestamp'] as string,
        got.body,
      ),
    ]);
  });

  it('sends the events approved, denied, used, revoked and expired to the request’s URL over the agent’s', async () => {
    const h = harness();
    const { agent } = await h.newAgent('https://agent-level.example.com/hook');
    // The agent's URL when the request names none.
    const first = await h.request(agent);
    expect((await h.settle()).map((d) => [d.eventType, d.url])).toEqual([
      ['permission.approved', 'https://agent-level.example.com/hook'],
    ]);
    // The request's URL wins; a token use, a revoke, a denial and an expiry each produce one.
    const own = 'https://per-request.example.com/hook';
    const { permission, token } = await h.request(agent, { webhookUrl: own });
    await h.permissions.use(agent, permission.id, token as string, undefined, { actor: { type: 'agent' } });
    const second = await h.request(agent, { webhookUrl: own });
    await h.permissions.revoke({ operator: true }, second.permission.id, operator, 'no longer needed');
    h.state.decision = { decision: 'deny', policy: { id: 'pol_no', name: 'no' }, reason: 'Never' };
    await h.request(agent, { webhookUrl: own });
    h.state.decision = requireApproval;
    const pending = await h.request(agent, { webhookUrl: own });
    h.advance(901 * 1000);
    await h.permissions.expireDue();
    // Expiry also ended the first (agent-level) permission: its event goes to the agent's URL.
    const all = await h.settle();
    const agentLevel = all.filter((d) => d.agentId === agent.id && d.permissionId === first.permission.id);
    expect(agentLevel.map((d) => [d.eventType, d.url])).toEqual([
      ['permission.expired', 'https://agent-level.example.com/hook'],
    ]);
    const deliveries = all.filter((d) => d.agentId === agent.id && d.url === own);
    expect(deliveries.map((d) => [d.eventType, d.url, permissionData(d).status])).toEqual([
      ['permission.approved', own, 'approved'],
      ['permission.used', own, 'used'],
      ['permission.approved', own, 'approved'],
      ['permission.revoked', own, 'revoked'],
      ['permission.denied', own, 'denied'],
      ['permission.expired', own, 'expired'],
    ]);
    expect(deliveries[5]?.permissionId).toBe(pending.permission.id);
    expect(permissionData(deliveries[3]).reason).toBe('no longer needed');
    expect(permissionData(deliveries[1]).usesRemaining).toBe(0);
  });

  it('records nothing and queues nothing for a permission without a target', async () => {
    const h = harness({ queue: true });
    const { agent } = await h.newAgent();
    const before = (await db.query('SELECT id FROM webhook_deliveries')).rows.length;
    const waitingBefore = await inspect.getJobCounts();
    await h.request(agent);
    expect(await h.settle()).toEqual([]);
    expect((await db.query('SELECT id FROM webhook_deliveries')).rows.length).toBe(before);
    expect(await inspect.getJobCounts()).toEqual(waitingBefore);
  });

  it('refuses private, loopback, link-local and unique-local literal targets at request and PATCH time', async () => {
    const h = harness({ allowPrivate: false });
    const { agent } = await h.newAgent();
    for (const url of [
      'http://127.0.0.1:8080/hook',
      'http://localhost:8080/hook',
      'http://LOCALHOST./hook',
      'http://[::1]/hook',
      'http://[::ffff:127.0.0.1]/hook',
      'http://10.0.0.7/hook',
      'http://192.168.1.1/hook',
      'http://169.254.169.254/latest/meta-data',
      'http://[fe80::1]/hook',
      'http://[fd12:3456::1]/hook',
    ]) {
      const onRequest = await appError(h.request(agent, { webhookUrl: url }));
      expect(onRequest.code, url).toBe('VALIDATION_ERROR');
      expect(onRequest.details).toMatchObject({ issues: [{ path: 'webhookUrl' }] });
      const onPatch = await appError(h.agents.update(agent.id, { webhookUrl: url }, operator));
      expect(onPatch.code, url).toBe('VALIDATION_ERROR');
    }
    // Nothing was stored for the refused requests; a public target is fine.
    expect(await h.settle()).toEqual([]);
    await h.agents.update(agent.id, { webhookUrl: 'https://hooks.example.com/agent-otp' }, operator);
    await h.request(agent, { webhookUrl: 'https://hooks.example.com/x' });
    expect(await h.settle()).toHaveLength(1);
    // WEBHOOK_ALLOW_PRIVATE lifts it.
    const open = harness({ allowPrivate: true });
    await open.request(agent, { webhookUrl: 'http://127.0.0.1:8080/hook' });
    expect(await open.settle()).toHaveLength(1);
  });

  it('dead-letters a delivery whose hostname resolves to a private address (localhost, DNS rebinding)', async () => {
    receiver.answer(200);
    // `rebind.example.test` passes the literal check at request time, then resolves to loopback.
    const rebinding: Resolver = async (host) =>
      host === 'rebind.example.test' ? [{ address: '127.0.0.1', family: 4 }] : systemResolver(host);
    const h = harness({ allowPrivate: false, resolve: rebinding });
    const { agent } = await h.newAgent();
    const before = receiver.received.length;

    const { permission } = await h.request(agent, {
      webhookUrl: `http://rebind.example.test:${receiver.port}/hook`,
    });
    const [rebind] = await h.settle();
    h.advance(1000);
    const outcome = await h.webhooks.deliver(rebind?.id as string);
    expect(outcome).toMatchObject({ outcome: 'dead' });
    expect((outcome as Extract<DeliveryOutcome, { outcome: 'dead' }>).error).toMatch(
      /rebind\.example\.test resolves to a loopback address \(127\.0\.0\.1\)/,
    );

    // The real resolver: `localhost` (set while private targets were allowed) resolves to loopback.
    const stored = permissionDelivery(
      'approved',
      { ...permission, webhookUrl: `http://localhost:${receiver.port}/hook` },
      null,
      h.clock.now(),
    );
    await insertDelivery(db, stored as NewWebhookDelivery);
    const local = await h.webhooks.deliver(stored?.id as string);
    expect(local.outcome).toBe('dead');
    expect((local as Extract<DeliveryOutcome, { outcome: 'dead' }>).error).toMatch(
      /localhost resolves to a loopback address/,
    );
    expect(receiver.received.length).toBe(before);

    const dead = await h.webhooks.list({ status: 'dead', agentId: agent.id, limit: 10 });
    expect(dead.map((d) => [d.id, d.attempts, d.lastStatus])).toEqual([
      [stored?.id, 1, null],
      [rebind?.id, 1, null],
    ]);
    expect(dead[1]?.lastError).toMatch(/loopback/);
    const audited = await db.query<{ type: string; details: Record<string, unknown> }>(
      `SELECT type, details FROM audit_events WHERE type = 'webhook.dead' AND agent_id = $1 ORDER BY seq`,
      [agent.id],
    );
    expect(audited.rows.map((r) => r.details.deliveryId)).toEqual([rebind?.id, stored?.id]);
    expect(audited.rows[0]?.details).toMatchObject({
      attempts: 1,
      reason: expect.stringMatching(/loopback/),
    });

    // Directly: the check a delivery makes.
    const check = await resolveTarget('http://localhost:1/', false, systemResolver);
    expect(check).toMatchObject({ ok: false, permanent: true });
  });

  it('connects to the address it checked, not to a second DNS answer', async () => {
    receiver.answer(200);
    // Only this resolver knows the name: a second lookup by the HTTP client would fail.
    const pinned: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];
    const h = harness({ allowPrivate: true, resolve: pinned });
    const { agent } = await h.newAgent();
    await h.request(agent, { webhookUrl: `http://receiver.example.test:${receiver.port}/hook` });
    const [delivery] = await h.settle();
    expect((await h.webhooks.deliver(delivery?.id as string)).outcome).toBe('delivered');
    expect(lastReceived().headers.host).toBe(`receiver.example.test:${receiver.port}`);
  });

  it('retries with doubling waits until 24 h after the first attempt, then dead; a replay sends it again', async () => {
    receiver.answer(503);
    const h = harness({ queue: true });
    const { agent, secret } = await h.newAgent(receiver.url);
    await h.request(agent);
    const [delivery] = await h.settle();
    const id = delivery?.id as string;
    const first = h.clock.now().getTime();
    const before = receiver.received.length;

    const delays: number[] = [];
    let outcome = await h.webhooks.deliver(id);
    while (outcome.outcome === 'retry') {
      delays.push(outcome.delayMs);
      const row = outcome.delivery;
      expect(row.nextAttemptAt.getTime()).toBe(h.clock.now().getTime() + outcome.delayMs);
      expect(row.lastStatus).toBe(503);
      h.advance(outcome.delayMs);
      outcome = await h.webhooks.deliver(id);
    }
    expect(delays.slice(0, 6)).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000]);
    expect(Math.max(...delays)).toBeLessThanOrEqual(MAX_RETRY_DELAY_MS);
    // The last wait is cut short so that the final attempt falls on the end of the window.
    expect(h.clock.now().getTime() - first).toBe(DAY_MS);
    expect(outcome.outcome).toBe('dead');
    const dead = (outcome as Extract<DeliveryOutcome, { outcome: 'dead' }>).delivery;
    expect(dead).toMatchObject({ status: 'dead', attempts: delays.length + 1, lastStatus: 503 });
    expect(dead.lastError).toMatch(
      /^HTTP 503: receiver unavailable \(gave up 24 h after the first attempt\)$/,
    );
    expect(receiver.received.length - before).toBe(delays.length + 1);
    // Every attempt carried the same id and body.
    const attempts = receiver.received.slice(before);
    expect(new Set(attempts.map((a) => a.headers['webhook-id']))).toEqual(new Set([id]));
    expect(new Set(attempts.map((a) => a.body)).size).toBe(1);

    const audited = await db.query<{ details: Record<string, unknown> }>(
      `SELECT details FROM audit_events WHERE type = 'webhook.dead' AND permission_id = $1`,
      [dead.permissionId],
    );
    expect(audited.rows).toEqual([
      {
        details: {
          deliveryId: id,
          eventType: 'permission.approved',
          url: receiver.url,
          attempts: delays.length + 1,
          lastStatus: 503,
          reason: dead.lastError,
        },
      },
    ]);
    expect((await h.webhooks.list({ status: 'dead', agentId: agent.id, limit: 5 })).map((d) => d.id)).toEqual(
      [id],
    );

    // Replay: pending again with the attempts reset, queued under the delivery id.
    receiver.answer(200);
    const replayed = await h.webhooks.replay(id, operator);
    expect(replayed).toMatchObject({ id, status: 'pending', attempts: 0, firstAttemptAt: null });
    const job = await inspect.getJob(id);
    expect(job?.data).toEqual({ deliveryId: id });
    await job?.remove();
    expect((await appError(h.webhooks.replay(id, operator))).code).toBe('CONFLICT');
    const delivered = await h.webhooks.deliver(id);
    expect(delivered).toMatchObject({ outcome: 'delivered', delivery: { attempts: 1, status: 'delivered' } });
    const got = lastReceived();
    await expect(
      verifyWebhook(got.body, got.headers as Record<string, string>, secret, { now: h.clock.now() }),
    ).resolves.toMatchObject({
      type: 'permission.approved',
    });
    // A delivered one can be replayed too; an unknown one is 404.
    expect((await h.webhooks.replay(id, operator)).status).toBe('pending');
    await (await inspect.getJob(id))?.remove();
    expect((await appError(h.webhooks.replay('msg_0000000000000000000000', operator))).code).toBe(
      'NOT_FOUND',
    );
    expect((await appError(h.webhooks.replay('nonsense', operator))).code).toBe('NOT_FOUND');
    const replays = await db.query(
      `SELECT id FROM audit_events WHERE type = 'webhook.replayed' AND agent_id = $1`,
      [agent.id],
    );
    expect(replays.rows).toHaveLength(2);
  });

  it("stores a receiver's error answer it cannot hold as text (NUL, a character cut in half) readably, and dead-letters it", async () => {
    // The snippet is cut at 200 characters: an emoji there leaves half a surrogate pair.
    const hostile = createServer((_req, res) => {
      res.statusCode = 500;
      res.end(`bad\u0000answer ${'x'.repeat(188)}😀 tail`);
    });
    await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
    try {
      const h = harness({ queue: true });
      const { agent } = await h.newAgent(`http://127.0.0.1:${(hostile.address() as AddressInfo).port}/hook`);
      await h.request(agent);
      const [delivery] = await h.settle();
      let outcome = await h.webhooks.deliver(delivery?.id as string);
      expect(outcome.outcome).toBe('retry');
      expect((outcome as Extract<DeliveryOutcome, { outcome: 'retry' }>).delivery.lastError).toMatch(
        /^HTTP 500: bad\ufffdanswer x+\ufffd$/,
      );
      while (outcome.outcome === 'retry') {
        h.advance(outcome.delayMs);
        outcome = await h.webhooks.deliver(delivery?.id as string);
      }
      expect(outcome.outcome).toBe('dead');
    } finally {
      await new Promise<void>((resolve) => hostile.close(() => resolve()));
    }
  });

  it('lets the reconciler re-queue pending deliveries whose job was lost', async () => {
    const h = harness({ queue: false });
    const queued = harness({ queue: true });
    const { agent } = await h.newAgent('https://lost.example.com/hook');
    await h.request(agent);
    const [lost] = await h.settle();
    // Just due: its own job may still be on its way.
    expect(await queued.webhooks.requeueOverdue()).toBe(0);
    queued.advance(5 * 60 * 1000);
    expect(await queued.webhooks.requeueOverdue()).toBeGreaterThanOrEqual(1);
    const job = await inspect.getJob(lost?.id as string);
    expect(job?.data).toEqual({ deliveryId: lost?.id });
    expect(job?.opts.backoff).toEqual({ type: 'webhook' });
    await job?.remove();
  });

  it('pages through deliveries newest first', async () => {
    const h = harness();
    const { agent } = await h.newAgent('https://pages.example.com/hook');
    for (let i = 0; i < 5; i += 1) {
      h.advance(1000);
      await h.request(agent);
    }
    const ids = (await h.settle()).map((d) => d.id).reverse();
    const seen: string[] = [];
    let before: { createdAt: Date; id: string } | undefined;
    for (;;) {
      const page = await h.webhooks.list({ agentId: agent.id, limit: 2, before });
      seen.push(...page.map((d) => d.id));
      const last = page[page.length - 1];
      if (page.length < 2 || !last) break;
      before = { createdAt: last.createdAt, id: last.id };
    }
    expect(seen).toEqual(ids);
    expect(await h.webhooks.list({ agentId: agent.id, status: 'delivered', limit: 10 })).toEqual([]);
  });
});

describe('the secrets encryption key', () => {
  it('is generated once into <data dir>/secrets-key with mode 0600, or taken from SECRETS_ENCRYPTION_KEY', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'aotp-key-'));
    const lines: string[] = [];
    const logger = createLogger('info', { write: (l: string) => void lines.push(l) });
    try {
      const key = loadSecretsKey({ dataDir: dir, sharedDatabase: false }, logger);
      expect(key).toHaveLength(32);
      const file = path.join(dir, SECRETS_KEY_FILE);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(loadSecretsKey({ dataDir: dir, sharedDatabase: false }, logger).equals(key)).toBe(true);
      expect(readFileSync(file, 'utf8').trim()).toBe(key.toString('base64'));
      expect(lines.join('')).toContain(file);
      expect(lines.join('')).not.toContain(key.toString('base64'));
      // Several instances on one database must share a key: the file alone gets a warning.
      loadSecretsKey({ dataDir: dir, sharedDatabase: true }, logger);
      expect(lines.join('')).toMatch(/SECRETS_ENCRYPTION_KEY is not set/);

      const configured = randomBytes(32);
      expect(
        loadSecretsKey(
          { configured: configured.toString('base64'), dataDir: dir, sharedDatabase: true },
          logger,
        ),
      ).toEqual(configured);
      expect(() =>
        loadSecretsKey({ configured: 'c2hvcnQ=', dataDir: dir, sharedDatabase: false }, logger),
      ).toThrow(/32 bytes/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
