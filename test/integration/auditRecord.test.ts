import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newOperatorKey } from '../../src/core/credentials.js';
import { registerAuditRoutes } from '../../src/http/routes/audit.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { AuditService, type AuditWriteFailure } from '../../src/services/audit.js';
import { ErasureService } from '../../src/services/erasure.js';
import { PermissionService } from '../../src/services/permissions.js';
import type { Agent } from '../../src/store/agentRepository.js';
import type { Db } from '../../src/store/db.js';
import { createRedis, whenReady } from '../../src/store/redis.js';
import { appError } from '../helpers/appError.js';
import { testDatabases } from '../helpers/databases.js';
import { FakeClock } from '../helpers/fakeClock.js';
import { startRouteTestApp } from '../helpers/routeApp.js';

const operator: RequestOrigin = { actor: { type: 'operator', id: 'opk_admin', name: 'admin' } };

/**
 * Events that record an answered call without a state change (verify, audit.exported) are
 * durable before the call is answered, written by group commit, and a refused one fails alone.
 */
describe.each(testDatabases())('standalone audit events on $name', ({ open }) => {
  let db: Db;
  /** INSERTs into audit_events since the last reset, counted at the driver. */
  let inserts = 0;
  let counted: Db;

  beforeAll(async () => {
    db = await open();
    counted = {
      ...db,
      query: (sql, params) => {
        if (sql.trimStart().startsWith('INSERT INTO audit_events')) inserts += 1;
        return db.query(sql, params);
      },
    };
  });
  afterAll(async () => {
    await db?.close();
  });

  async function setup() {
    const clock = new FakeClock('2025-03-03T12:00:00.000Z');
    const audit = new AuditService(counted, clock);
    const failures: AuditWriteFailure[] = [];
    audit.onWriteFailure((f) => failures.push(f));
    const agents = new AgentService(db, audit, clock);
    const permissions = new PermissionService(
      db,
      audit,
      { evaluate: () => ({ decision: 'deny', policy: null, reason: 'unused: test keys are auto-approved' }) },
      clock,
      { approvalTimeoutSeconds: 900, requireActionDetails: false },
    );
    const created = await agents.create(
      { name: `verifier-${randomBytes(3).toString('hex')}`, environment: 'test' },
      operator,
    );
    const agent: Agent = created.agent;
    const origin: RequestOrigin = { actor: { type: 'agent', id: agent.id, name: agent.name } };
    const { permission, token } = await permissions.request(
      agent,
      { action: 'payment.create', scope: { max_uses: 1000, max_amount: 50 } },
      origin,
    );
    const verify = () => permissions.verify(agent, permission.id, token as string, { amount: 5 }, origin);
    /** Verify events of this permission, read on another connection than the writer's. */
    const stored = async (): Promise<number> => {
      const { rows } = await db.query<{ n: unknown }>(
        `SELECT count(*) AS n FROM audit_events WHERE type = 'verify' AND permission_id = $1`,
        [permission.id],
      );
      return Number(rows[0]?.n);
    };
    return { audit, permissions, failures, verify, stored };
  }

  it('writes a verify event before verify answers, at once when idle', async () => {
    const { verify, stored } = await setup();
    for (let i = 1; i <= 3; i += 1) {
      const started = performance.now();
      expect((await verify()).valid).toBe(true);
      // No timer: an idle writer writes at once (a batching delay was 100 ms).
      expect(performance.now() - started).toBeLessThan(1000);
      expect(await stored()).toBe(i);
    }
  });

  it('writes the events of concurrent verifies in a few shared INSERTs, each answered after its own', async () => {
    const { verify, stored } = await setup();
    inserts = 0;
    const answered: number[] = [];
    const calls = Array.from({ length: 60 }, () =>
      verify().then(async (outcome) => {
        expect(outcome.valid).toBe(true);
        answered.push(await stored());
      }),
    );
    await Promise.all(calls);
    expect(await stored()).toBe(60);
    // Every verify saw its own event (and maybe others') stored when it was answered.
    expect(Math.min(...answered)).toBeGreaterThanOrEqual(1);
    expect(inserts).toBeLessThan(30);
  });

  it('isolates an event the database refuses: the others are written, it fails and is reported without its details', async () => {
    const { audit, failures, verify, stored } = await setup();
    const secret = 'hunter2-in-an-operator-filter';
    // A NUL character (jsonb refuses \u0000) among 20 concurrent verifies: the case that once
    // dropped a whole batch of 21 events.
    const verifies = Array.from({ length: 20 }, () => verify());
    const bad = audit.record({
      type: 'audit.exported',
      actor: operator.actor,
      details: { eventType: `${secret}\u0000` },
    });
    const more = Array.from({ length: 20 }, () => verify());
    const err = await appError(bad);
    expect(err.code).toBe('INTERNAL_ERROR');
    expect(err.message).not.toContain(secret);
    for (const outcome of await Promise.all([...verifies, ...more])) expect(outcome.valid).toBe(true);
    expect(await stored()).toBe(40);

    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({
      eventId: expect.stringMatching(/^evt_/),
      type: 'audit.exported',
      reason: expect.stringMatching(/^SQLSTATE [0-9A-Z]{5}$/),
    });
    expect(JSON.stringify(failures)).not.toContain(secret);
    const exported = await db.query(`SELECT 1 FROM audit_events WHERE type = 'audit.exported'`);
    expect(exported.rows).toEqual([]);
  });

  it('commits the audit.exported event of an export before sending its first byte', async () => {
    const { audit, permissions } = await setup();
    const redis = createRedis(inject('redisUrl'));
    await whenReady(redis, 5000);
    const operatorKey = newOperatorKey();
    const clock = new FakeClock('2025-03-03T12:00:00.000Z');
    const agents = new AgentService(db, audit, clock);
    const app = await startRouteTestApp({
      db,
      redis,
      clock,
      agents,
      operatorKey,
      routes: [
        (route) => registerAuditRoutes(route, audit, new ErasureService(db, audit, permissions), agents),
      ],
    });
    try {
      const res = await app.app.inject({
        method: 'GET',
        url: '/api/v1/audit/export?format=jsonl&event_type=verify',
        headers: { authorization: `Bearer ${operatorKey}` },
      });
      expect(res.statusCode).toBe(200);
      const { rows } = await db.query<{ details: Record<string, unknown> }>(
        `SELECT details FROM audit_events WHERE type = 'audit.exported'`,
      );
      expect(rows.map((r) => r.details)).toEqual([
        expect.objectContaining({ format: 'jsonl', eventType: 'verify' }),
      ]);
    } finally {
      await app.close();
      redis.disconnect();
    }
  });
});
