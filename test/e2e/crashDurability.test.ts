import { createHash, randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, apiClient } from '../helpers/api.js';
import { type ServerProcess, startServer } from '../helpers/serverProcess.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhookReceiver.js';

const DB_URL = process.env.TEST_DATABASE_URL;
const ADMIN = `uk_${randomBytes(24).toString('hex')}`;
/** Calls running at once during the burst. */
const WORKERS = 16;
/** The server is killed once this many calls have been answered: well inside the burst. */
const KILL_AFTER_ANSWERS = 400;

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

type Kind = 'request' | 'use' | 'verify';

/** A call that got an HTTP answer before the crash. */
interface Answered {
  kind: Kind;
  status: number;
  permissionId: string;
  /** The webhook target the call's event goes to, if any. */
  target: string | null;
  /** For a use: the status it left the permission in. */
  permissionStatus?: string;
}

interface Counted {
  permission_id: string;
  type: string;
  n: string;
}

/**
 * `kill -9` during a burst of requests, uses and verifies (the built server on real Postgres):
 * every call that was answered has its audit event, and every answered call that causes a
 * webhook event has its delivery row, exactly once. Nothing an answer promised may depend on
 * work left in the process after the answer.
 */
describe.runIf(DB_URL)('kill -9 mid-burst on Postgres', () => {
  let server: ServerProcess;
  let receiver: WebhookReceiver;
  let db: pg.Client;

  beforeAll(async () => {
    receiver = await startWebhookReceiver('/crash');
    server = await startServer({
      database: 'postgres',
      env: {
        ADMIN_TOKEN: ADMIN,
        WEBHOOK_ALLOW_PRIVATE: 'true',
        DEFAULT_POLICY_ACTION: 'auto_approve',
        RATE_LIMIT_PER_MIN: '10000000',
        RATE_LIMIT_PER_HOUR: '100000000',
        TOKEN_RATE_LIMIT_PER_MIN: '10000000',
        TOKEN_RATE_LIMIT_PER_HOUR: '100000000',
        RECONCILE_INTERVAL_MS: '600000',
      },
    });
    db = new pg.Client({ connectionString: DB_URL });
    await db.connect();
    await db.query(`SET search_path = ${server.schema}`);
  }, 120_000);

  afterAll(async () => {
    await db?.end();
    await server?.stop();
    await receiver?.close();
  });

  it('keeps the audit event of every answered call and the delivery of every answered webhook event', async () => {
    const operator = apiClient(server.url, ADMIN);
    // Agent A names a webhookUrl on some requests; agent B has its own URL for all of its.
    const a = await operator<{ id: string; apiKey: string }>('POST', '/api/v1/agents', { name: 'crash-a' });
    const b = await operator<{ id: string; apiKey: string }>('POST', '/api/v1/agents', { name: 'crash-b' });
    expect(a.status).toBe(201);
    const agentUrl = `${receiver.url}?agent=b`;
    const patched = await operator('PATCH', `/api/v1/agents/${b.body.data.id}`, { webhookUrl: agentUrl });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    const agents: { api: Api; ownUrl: string | null }[] = [
      { api: apiClient(server.url, a.body.data.apiKey), ownUrl: null },
      { api: apiClient(server.url, b.body.data.apiKey), ownUrl: agentUrl },
    ];

    // Long-lived tokens to verify, one per worker.
    const verifiable = await Promise.all(
      Array.from({ length: WORKERS }, async (_, i) => {
        const agent = agents[i % 2] as (typeof agents)[number];
        const token = `otp_v1_${randomBytes(32).toString('base64url')}`;
        const res = await agent.api<{ id: string }>('POST', '/api/v1/permissions/request', {
          action: 'crash.verify',
          ttl: 3600,
          scope: { max_uses: 1_000_000, max_amount: 100 },
          tokenHash: sha256(token),
        });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
        return { agent, id: res.body.data.id, token };
      }),
    );

    const answered: Answered[] = [];
    let crashed = false;
    let onEnough: () => void = () => undefined;
    const enough = new Promise<void>((resolve) => {
      onEnough = resolve;
    });
    const answer = (call: Answered) => {
      answered.push(call);
      if (answered.length >= KILL_AFTER_ANSWERS) onEnough();
    };

    /** One worker: request (half with a webhookUrl), use it, verify its long-lived token 3 times. */
    const worker = async (w: number) => {
      const mine = verifiable[w] as (typeof verifiable)[number];
      const { agent } = mine;
      for (let i = 0; !crashed; i += 1) {
        try {
          const own = w % 2 === 0 && i % 2 === 0 ? `${receiver.url}?w=${w}&i=${i}` : null;
          const target = own ?? agent.ownUrl;
          const req = await agent.api<{ id: string; token: string }>('POST', '/api/v1/permissions/request', {
            action: 'crash.op',
            scope: { max_amount: 100 },
            ...(own ? { webhookUrl: own } : {}),
          });
          answer({ kind: 'request', status: req.status, permissionId: req.body.data?.id, target });
          if (req.status !== 201) continue;
          const { id, token } = req.body.data;
          const use = await agent.api<{ status: string }>('POST', `/api/v1/permissions/${id}/use`, {
            token,
            actionDetails: { amount: 5 },
          });
          answer({
            kind: 'use',
            status: use.status,
            permissionId: id,
            target,
            permissionStatus: use.body.data?.status,
          });
          for (let v = 0; v < 3; v += 1) {
            const verify = await agent.api('POST', `/api/v1/permissions/${mine.id}/verify`, {
              token: mine.token,
              actionDetails: { amount: 5 },
            });
            answer({ kind: 'verify', status: verify.status, permissionId: mine.id, target: null });
          }
        } catch {
          // No answer (the connection died with the server): the call promised nothing.
          if (crashed) return;
        }
      }
    };

    const burst = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
    await Promise.race([enough, new Promise((resolve) => setTimeout(resolve, 60_000))]);
    crashed = true;
    await server.kill('SIGKILL');
    await burst;

    const ok = answered.filter((c) => c.status >= 200 && c.status < 300);
    const byKind = (kind: Kind) => ok.filter((c) => c.kind === kind);
    // The burst was real, and nothing failed before the crash.
    expect(answered.filter((c) => c.status >= 500)).toEqual([]);
    expect(byKind('request').length).toBeGreaterThanOrEqual(20);
    expect(byKind('use').length).toBeGreaterThanOrEqual(20);
    expect(byKind('verify').length).toBeGreaterThanOrEqual(50);

    const events = new Map<string, number>();
    for (const r of (
      await db.query<Counted>(
        `SELECT permission_id, type, count(*) AS n FROM audit_events
          WHERE permission_id IS NOT NULL GROUP BY permission_id, type`,
      )
    ).rows) {
      events.set(`${r.permission_id} ${r.type}`, Number(r.n));
    }
    const deliveries = new Map<string, number>();
    for (const r of (
      await db.query<Counted>(
        `SELECT permission_id, event_type AS type, count(*) AS n FROM webhook_deliveries
          GROUP BY permission_id, event_type`,
      )
    ).rows) {
      deliveries.set(`${r.permission_id} ${r.type}`, Number(r.n));
    }
    const count = (map: Map<string, number>, id: string, type: string) => map.get(`${id} ${type}`) ?? 0;

    // Audit: each answered verify has its own event (counted per permission); each answered
    // request its request and approve events; each answered use its use event.
    const verifiesPerPermission = new Map<string, number>();
    for (const c of byKind('verify')) {
      verifiesPerPermission.set(c.permissionId, (verifiesPerPermission.get(c.permissionId) ?? 0) + 1);
    }
    const missing: string[] = [];
    for (const [id, n] of verifiesPerPermission) {
      const stored = count(events, id, 'verify');
      if (stored < n) missing.push(`${id}: ${n} verifies answered, ${stored} audited`);
    }
    for (const c of byKind('request')) {
      for (const type of ['request', 'approve']) {
        if (count(events, c.permissionId, type) !== 1) missing.push(`${c.permissionId}: no ${type} event`);
      }
    }
    for (const c of byKind('use')) {
      if (count(events, c.permissionId, 'use') !== 1) missing.push(`${c.permissionId}: no use event`);
    }
    expect(missing).toEqual([]);

    // Webhooks: one delivery per answered event with a target, none without one.
    const wrong: string[] = [];
    for (const c of byKind('request')) {
      const n = count(deliveries, c.permissionId, 'permission.approved');
      if (n !== (c.target ? 1 : 0)) wrong.push(`${c.permissionId}: ${n} permission.approved deliveries`);
    }
    for (const c of byKind('use')) {
      expect(c.permissionStatus).toBe('used');
      const n = count(deliveries, c.permissionId, 'permission.used');
      if (n !== (c.target ? 1 : 0)) wrong.push(`${c.permissionId}: ${n} permission.used deliveries`);
    }
    expect(wrong).toEqual([]);
    expect([...deliveries.values()].filter((n) => n > 1)).toEqual([]);
    // Targets of both kinds were exercised.
    expect(byKind('use').filter((c) => c.target === agentUrl).length).toBeGreaterThan(0);
    expect(byKind('use').filter((c) => c.target && c.target !== agentUrl).length).toBeGreaterThan(0);
    expect(byKind('use').filter((c) => c.target === null).length).toBeGreaterThan(0);
  }, 180_000);
});
