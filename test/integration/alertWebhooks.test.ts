import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import type { Clock } from '../../src/core/clock.js';
import { newOperatorKey } from '../../src/core/credentials.js';
import type { PolicyDecision } from '../../src/core/policy/index.js';
import { newWebhookSecret } from '../../src/core/webhook.js';
import { registerWebhookRoutes } from '../../src/http/routes/webhooks.js';
import { createLogger } from '../../src/logger.js';
import { JobQueue } from '../../src/queue/jobQueue.js';
import { type AlertWebhookEvent, verifyWebhook, WebhookVerificationError } from '../../src/sdk/index.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { AlertService, type AlertThresholds } from '../../src/services/alerts.js';
import { AuditService } from '../../src/services/audit.js';
import { AuthFailureRecorder, MetricsService } from '../../src/services/metrics.js';
import { PermissionService } from '../../src/services/permissions.js';
import { SecretBox } from '../../src/services/secretBox.js';
import { WebhookSecrets } from '../../src/services/webhookSecrets.js';
import { type DeliveryOutcome, WebhookService, type WebhookSettings } from '../../src/services/webhooks.js';
import type { Db } from '../../src/store/db.js';
import { createRedis, type Redis, whenReady } from '../../src/store/redis.js';
import type { WebhookDelivery } from '../../src/store/webhookRepository.js';
import { testDatabases } from '../helpers/databases.js';
import { type RouteTestApp, startRouteTestApp } from '../helpers/routeApp.js';
import { type Received, startWebhookReceiver } from '../helpers/webhookReceiver.js';

/** On a minute boundary: failed authentications are counted per minute. */
const T0 = new Date('2025-03-03T12:00:00.000Z');
const MINUTE_MS = 60_000;
const ALERT_SECRET = newWebhookSecret();

const operator: RequestOrigin = {
  actor: { type: 'operator', id: 'opk_admin', name: 'admin', platform: 'api' },
  ip: '127.0.0.1',
  userAgent: 'vitest',
};

const thresholds: AlertThresholds = {
  denialRate: 0.5,
  unusedTokenRate: 0.3,
  failedAuthPerMinute: 5,
  minVolume: 10,
};

const startReceiver = () => startWebhookReceiver('/alerts');

const kinds = (transitions: { name: string; kind: string }[]) =>
  transitions.map((t) => `${t.name}:${t.kind}`);

describe.each(testDatabases())('alert webhooks on $name', (database) => {
  let db: Db;
  let redis: Redis;
  let jobs: JobQueue;
  let inspect: Queue;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const prefix = `t${randomBytes(4).toString('hex')}:bull`;
  const logger = createLogger('silent');
  const state = { now: T0 };
  const clock: Clock = { now: () => state.now };
  let audit: AuditService;
  let secrets: WebhookSecrets;
  let metrics: MetricsService;
  let failures: AuthFailureRecorder;
  const notes: string[] = [];
  const sink = {
    async broadcast(text: string) {
      notes.push(text);
      return ['slack:C-approvals'];
    },
  };

  /** The delivery service as the worker wires it: ALERT_WEBHOOK_URL is the local receiver. */
  const webhookService = (settings: Partial<WebhookSettings> = {}) =>
    new WebhookService(
      db,
      audit,
      secrets,
      clock,
      logger,
      {
        // The guard against private targets stays on: alerts go to the operator's own URL.
        allowPrivate: false,
        timeoutMs: 5000,
        retryWindowMs: 10 * MINUTE_MS,
        alertUrl: receiver.url,
        alertSecret: ALERT_SECRET,
        ...settings,
      },
      jobs,
    );

  /** `count` failed authentications in the current minute, then one minute on (so it is complete). */
  async function failedAuthMinute(count: number): Promise<void> {
    state.now = new Date(Math.floor(state.now.getTime() / MINUTE_MS) * MINUTE_MS + 5_000);
    for (let i = 0; i < count; i += 1) failures.record(null);
    await failures.flush();
    state.now = new Date(state.now.getTime() + MINUTE_MS);
  }

  const alertRows = async () =>
    (await webhookService().list({ limit: 200 })).filter((d) => d.eventType.startsWith('alert.'));

  async function fullyDelivered(webhooks: WebhookService, id: string): Promise<DeliveryOutcome> {
    const outcome = await webhooks.deliver(id);
    expect(outcome.outcome, JSON.stringify(outcome)).toBe('delivered');
    return outcome;
  }

  beforeAll(async () => {
    db = await database.open();
    redis = createRedis(inject('redisUrl'), 'producer');
    await whenReady(redis, 5000);
    jobs = new JobQueue(redis, prefix, logger);
    inspect = new Queue('webhook', { connection: redis, prefix });
    receiver = await startReceiver();
    audit = new AuditService(db, clock);
    secrets = new WebhookSecrets(new SecretBox(randomBytes(32)));
    metrics = new MetricsService(db, clock);
    failures = new AuthFailureRecorder(db, clock);
  });

  afterAll(async () => {
    await inspect?.obliterate({ force: true }).catch(() => undefined);
    await inspect?.close();
    await jobs?.close();
    redis?.disconnect();
    await receiver?.close();
    await db?.close();
  });

  beforeEach(async () => {
    receiver.answer(200);
    // Every test starts with no active alert, an hour after the last one's failures.
    state.now = new Date(state.now.getTime() + 3600_000);
    await new AlertService(db, metrics, sink, clock, thresholds, logger).evaluate();
  });

  it('sends one signed alert.triggered when a threshold is crossed, none while crossed, one alert.cleared', async () => {
    const webhooks = webhookService();
    const alerts = new AlertService(db, metrics, sink, clock, thresholds, logger, webhooks);
    const before = receiver.received.length;
    const notesBefore = notes.length;

    await failedAuthMinute(6);
    const triggeredAt = state.now;
    expect(kinds(await alerts.evaluate())).toEqual(['failed_auth_per_min:triggered']);
    const [triggered, ...others] = await alertRows();
    expect(others).toEqual([]);
    expect(triggered).toMatchObject({
      permissionId: null,
      agentId: null,
      url: receiver.url,
      eventType: 'alert.triggered',
      status: 'pending',
    });
    // Queued after the commit, under the delivery id (the worker sends it).
    expect((await inspect.getJob(triggered?.id as string))?.data).toEqual({ deliveryId: triggered?.id });

    await fullyDelivered(webhooks, triggered?.id as string);
    expect(receiver.received.length).toBe(before + 1);
    const got = receiver.received[receiver.received.length - 1] as Received;
    expect(got.headers['webhook-id']).toBe(triggered?.id);
    const event = await verifyWebhook<AlertWebhookEvent>(
      got.body,
      got.headers as Record<string, string>,
      ALERT_SECRET,
      { now: state.now },
    );
    expect(event).toEqual({
      type: 'alert.triggered',
      timestamp: triggeredAt.toISOString(),
      data: {
        alert: 'failed_auth_per_min',
        value: 6,
        threshold: 5,
        summary: expect.stringMatching(/^Agent OTP alert: 6 failed authentications in the minute from/),
      },
    });
    expect(event.data.summary).not.toMatch(/:[a-z_]+:/);
    // Another secret (an agent's, say) does not verify it.
    await expect(
      verifyWebhook(got.body, got.headers as Record<string, string>, newWebhookSecret(), { now: state.now }),
    ).rejects.toBeInstanceOf(WebhookVerificationError);
    // The chat note is still posted, once, with its emoji.
    expect(notes.slice(notesBefore)).toEqual([`:rotating_light: ${event.data.summary}`]);

    // Still crossed a minute later, and under concurrent evaluations: nothing more is recorded.
    await failedAuthMinute(9);
    expect(await Promise.all([alerts.evaluate(), alerts.evaluate()])).toEqual([[], []]);
    expect(await alertRows()).toHaveLength(1);

    // A quiet minute: it clears, once.
    state.now = new Date(state.now.getTime() + MINUTE_MS);
    expect(kinds(await alerts.evaluate())).toEqual(['failed_auth_per_min:cleared']);
    expect(await alerts.evaluate()).toEqual([]);
    const rows = await alertRows();
    expect(rows.map((d) => d.eventType)).toEqual(['alert.cleared', 'alert.triggered']);
    await fullyDelivered(webhooks, rows[0]?.id as string);
    const cleared = receiver.received[receiver.received.length - 1] as Received;
    await expect(
      verifyWebhook<AlertWebhookEvent>(
        cleared.body,
        cleared.headers as Record<string, string>,
        ALERT_SECRET,
        {
          now: state.now,
        },
      ),
    ).resolves.toMatchObject({
      type: 'alert.cleared',
      data: {
        alert: 'failed_auth_per_min',
        value: 0,
        threshold: 5,
        summary: expect.stringMatching(/^Agent OTP alert cleared: 0 failed/),
      },
    });
    // In all: one triggered, one cleared.
    expect(
      receiver.received.slice(before).map((r) => (JSON.parse(r.body) as AlertWebhookEvent).type),
    ).toEqual(['alert.triggered', 'alert.cleared']);
  });

  it('records the webhook in the transaction that flips the alert: a failed record leaves it unannounced', async () => {
    const webhooks = webhookService();
    const broken = {
      recordAlert: async () => {
        throw new Error('disk full');
      },
      enqueue: (id: string) => webhooks.enqueue(id),
    };
    const notesBefore = notes.length;
    await failedAuthMinute(7);
    await expect(
      new AlertService(db, metrics, sink, clock, thresholds, logger, broken).evaluate(),
    ).rejects.toThrow('disk full');
    const { rows } = await db.query<{ active: boolean }>(
      `SELECT active FROM alert_state WHERE name = 'failed_auth_per_min'`,
    );
    expect(rows[0]?.active).toBe(false);
    expect(notes.length).toBe(notesBefore);
    // The next evaluation announces it, with its webhook.
    const before = (await alertRows()).length;
    const alerts = new AlertService(db, metrics, sink, clock, thresholds, logger, webhooks);
    expect(kinds(await alerts.evaluate())).toEqual(['failed_auth_per_min:triggered']);
    expect((await alertRows()).length).toBe(before + 1);
  });

  it('retries a failing receiver, then keeps the delivery dead; an operator replays it', async () => {
    const webhooks = webhookService();
    const alerts = new AlertService(db, metrics, sink, clock, thresholds, logger, webhooks);
    await failedAuthMinute(8);
    expect(kinds(await alerts.evaluate())).toEqual(['failed_auth_per_min:triggered']);
    const [delivery] = await alertRows();
    const id = delivery?.id as string;
    await (await inspect.getJob(id))?.remove();

    receiver.answer(500);
    const before = receiver.received.length;
    let outcome = await webhooks.deliver(id);
    let retries = 0;
    while (outcome.outcome === 'retry') {
      retries += 1;
      expect(outcome.delivery.lastStatus).toBe(500);
      state.now = new Date(state.now.getTime() + outcome.delayMs);
      outcome = await webhooks.deliver(id);
    }
    expect(retries).toBeGreaterThanOrEqual(5);
    expect(outcome.outcome).toBe('dead');
    expect(receiver.received.length - before).toBe(retries + 1);
    // Every attempt carried the same id and the same bytes.
    const attempts = receiver.received.slice(before);
    expect(new Set(attempts.map((a) => a.headers['webhook-id']))).toEqual(new Set([id]));
    expect(new Set(attempts.map((a) => a.body)).size).toBe(1);

    // Kept, with its last error, in the dead letters an operator lists.
    const dead = await webhooks.list({ status: 'dead', limit: 50 });
    expect(dead.find((d) => d.id === id)).toMatchObject({
      status: 'dead',
      attempts: retries + 1,
      lastStatus: 500,
      lastError: expect.stringMatching(/^HTTP 500: receiver unavailable/),
      permissionId: null,
      agentId: null,
    });
    const audited = await db.query<{ agent_id: string | null; details: Record<string, unknown> }>(
      `SELECT agent_id, details FROM audit_events WHERE type = 'webhook.dead' AND details->>'deliveryId' = $1`,
      [id],
    );
    expect(audited.rows).toEqual([
      {
        agent_id: null,
        details: expect.objectContaining({
          eventType: 'alert.triggered',
          url: receiver.url,
          lastStatus: 500,
        }),
      },
    ]);

    // The receiver is back: a replay sends it again, signed with ALERT_WEBHOOK_SECRET.
    receiver.answer(200);
    expect(await webhooks.replay(id, operator)).toMatchObject({ id, status: 'pending', attempts: 0 });
    expect((await inspect.getJob(id))?.data).toEqual({ deliveryId: id });
    await (await inspect.getJob(id))?.remove();
    await fullyDelivered(webhooks, id);
    const got = receiver.received[receiver.received.length - 1] as Received;
    await expect(
      verifyWebhook(got.body, got.headers as Record<string, string>, ALERT_SECRET, { now: state.now }),
    ).resolves.toMatchObject({ type: 'alert.triggered', data: { value: 8 } });
  });

  it('dead-letters an alert at once when the delivering instance has no ALERT_WEBHOOK_SECRET', async () => {
    const recorder = webhookService();
    await failedAuthMinute(6);
    expect(
      kinds(await new AlertService(db, metrics, sink, clock, thresholds, logger, recorder).evaluate()),
    ).toEqual(['failed_auth_per_min:triggered']);
    const [delivery] = await alertRows();
    const before = receiver.received.length;
    const unsigned = webhookService({ alertSecret: undefined });
    const outcome = await unsigned.deliver(delivery?.id as string);
    expect(outcome.outcome).toBe('dead');
    expect((outcome as Extract<DeliveryOutcome, { outcome: 'dead' }>).error).toMatch(
      /ALERT_WEBHOOK_SECRET is not set/,
    );
    expect(receiver.received.length).toBe(before);
  });

  it('records nothing without ALERT_WEBHOOK_URL, and lets the reconciler re-queue a lost alert job', async () => {
    await failedAuthMinute(6);
    const before = (await alertRows()).length;
    const silent = webhookService({ alertUrl: undefined });
    expect(
      kinds(await new AlertService(db, metrics, sink, clock, thresholds, logger, silent).evaluate()),
    ).toEqual(['failed_auth_per_min:triggered']);
    expect((await alertRows()).length).toBe(before);

    // A quiet minute clears it; this time the job is lost (a Redis flush) after the commit.
    state.now = new Date(state.now.getTime() + MINUTE_MS);
    const webhooks = webhookService();
    expect(
      kinds(await new AlertService(db, metrics, sink, clock, thresholds, logger, webhooks).evaluate()),
    ).toEqual(['failed_auth_per_min:cleared']);
    const [lost] = await alertRows();
    expect(lost?.eventType).toBe('alert.cleared');
    await (await inspect.getJob(lost?.id as string))?.remove();
    state.now = new Date(state.now.getTime() + 5 * MINUTE_MS);
    expect(await webhooks.requeueOverdue()).toBeGreaterThanOrEqual(1);
    expect((await inspect.getJob(lost?.id as string))?.data).toEqual({ deliveryId: lost?.id });
  });

  it('keeps permission and alert deliveries apart in the table', async () => {
    const insert = (eventType: string, permissionId: string | null, agentId: string | null) =>
      db.query(
        `INSERT INTO webhook_deliveries (id, permission_id, agent_id, url, event_type, payload, created_at, next_attempt_at)
         VALUES ($1, $2, $3, 'https://x.example.com', $4, '{}'::jsonb, now(), now())`,
        [`msg_${randomBytes(8).toString('hex')}`, permissionId, agentId, eventType],
      );
    await expect(insert('permission.approved', null, null)).rejects.toThrow(/webhook_deliveries_owner_check/);
    await expect(insert('alert.triggered', null, 'agent_someone')).rejects.toThrow(
      /webhook_deliveries_owner_check/,
    );
    await expect(insert('something.else', null, null)).rejects.toThrow(/webhook_deliveries_owner_check/);
  });

  describe('listing deliveries over HTTP', () => {
    let server: RouteTestApp;
    const operatorKey = newOperatorKey();
    let agentKey: string;
    let agentId: string;

    beforeAll(async () => {
      const agents = new AgentService(db, audit, clock, {
        webhookSecrets: secrets,
        allowPrivateWebhooks: true,
      });
      const webhooks = webhookService();
      // An agent with its own webhook, and one delivery of its permission.
      const created = await agents.create({ name: 'lister' }, operator);
      agentKey = created.apiKey;
      agentId = created.agent.id;
      const withHook = await agents.update(
        agentId,
        { webhookUrl: 'https://agent.example.com/hook' },
        operator,
      );
      const autoApprove: PolicyDecision = {
        decision: 'auto_approve',
        policy: { id: 'pol_a', name: 'auto' },
        reason: 'ok',
      };
      const permissions = new PermissionService(db, audit, { evaluate: () => autoApprove }, clock, {
        approvalTimeoutSeconds: 900,
        requireActionDetails: false,
        allowPrivateWebhooks: true,
      });
      // The request records its approval's delivery to the agent's URL in the same statement.
      const { permission } = await permissions.request(
        withHook,
        { action: 'payment.create' },
        { actor: { type: 'agent', id: agentId, name: 'lister' } },
      );
      expect(await webhooks.list({ agentId, limit: 10 })).toMatchObject([{ permissionId: permission.id }]);
      server = await startRouteTestApp({
        db,
        redis,
        clock,
        agents,
        operatorKey,
        routes: [(route) => registerWebhookRoutes(route, webhooks, agents)],
      });
    });

    afterAll(async () => {
      await server?.close();
    });

    const list = async (key: string, query = '') => {
      const res = await server.app.inject({
        method: 'GET',
        url: `/api/v1/webhooks/deliveries?limit=200${query}`,
        headers: { authorization: `Bearer ${key}` },
      });
      return {
        status: res.statusCode,
        body: res.json() as { data: { deliveries: WebhookDelivery[] }; error?: { code: string } },
        raw: res.body,
      };
    };

    it('shows alert deliveries to an operator, never to an agent', async () => {
      const all = await list(operatorKey);
      expect(all.status).toBe(200);
      const alertsListed = all.body.data.deliveries.filter((d) => d.eventType.startsWith('alert.'));
      expect(alertsListed.length).toBeGreaterThanOrEqual(2);
      for (const d of alertsListed) expect(d).toMatchObject({ permissionId: null, agentId: null });

      // An agent key is refused outright, so it sees no alert (nor any other) delivery.
      const asAgent = await list(agentKey);
      expect(asAgent.status).toBe(403);
      expect(asAgent.body.error?.code).toBe('FORBIDDEN');
      expect(asAgent.raw).not.toContain('alert.');

      // One agent's deliveries never include the alerts.
      const own = await list(operatorKey, `&agent_id=${agentId}`);
      expect(own.body.data.deliveries.map((d) => [d.eventType, d.agentId])).toEqual([
        ['permission.approved', agentId],
      ]);
    });

    it('replays an alert delivery for an operator', async () => {
      const [alert] = (await list(operatorKey, '&status=delivered')).body.data.deliveries.filter((d) =>
        d.eventType.startsWith('alert.'),
      );
      const res = await server.app.inject({
        method: 'POST',
        url: `/api/v1/webhooks/deliveries/${alert?.id}/replay`,
        headers: { authorization: `Bearer ${operatorKey}` },
      });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({
        data: { id: alert?.id, status: 'pending', permissionId: null, agentId: null },
      });
      await (await inspect.getJob(alert?.id as string))?.remove();
    });
  });
});
