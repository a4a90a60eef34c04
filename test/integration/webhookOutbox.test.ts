import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../src/core/audit/index.js';
import type { Permission } from '../../src/core/permission.js';
import type { PolicyDecision } from '../../src/core/policy/index.js';
import { type PermissionWebhookPayload, webhookPayload } from '../../src/core/webhook.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { AuditService } from '../../src/services/audit.js';
import { type PermissionChange, PermissionService } from '../../src/services/permissions.js';
import type { Agent } from '../../src/store/agentRepository.js';
import type { Db } from '../../src/store/db.js';
import { appError } from '../helpers/appError.js';
import { testDatabases } from '../helpers/databases.js';
import { FakeClock } from '../helpers/fakeClock.js';

const operator: RequestOrigin = { actor: { type: 'operator', id: 'opk_admin', name: 'admin' } };
const approver: Actor = { type: 'approver', platform: 'slack', teamId: 'T1', userId: 'U7', userName: 'ada' };
const AGENT_URL = 'https://agent-level.example.com/hook';
const OWN_URL = 'https://per-request.example.com/hook';

interface DeliveryRow {
  id: string;
  permission_id: string;
  agent_id: string;
  url: string;
  event_type: string;
  payload: PermissionWebhookPayload;
  status: string;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * The transactional outbox: a permission event's webhook delivery is written by the statement or
 * transaction that makes the change. Here no listener is registered on the PermissionService at
 * all, as in a process killed right after the commit: every delivery must already be stored.
 */
describe.each(testDatabases())('webhook deliveries recorded with their change on $name', ({ open }) => {
  let db: Db;
  /** Every SQL text sent since the last reset. */
  let statements: string[] = [];
  let traced: Db;

  beforeAll(async () => {
    db = await open();
    const trace = <T extends (...args: never[]) => unknown>(fn: T) =>
      ((sql: string, ...rest: unknown[]) => {
        statements.push(sql);
        return (fn as unknown as (...a: unknown[]) => unknown)(sql, ...rest);
      }) as unknown as T;
    traced = {
      ...db,
      query: trace(db.query),
      transaction: (fn) => db.transaction((tx) => fn({ ...tx, query: trace(tx.query.bind(tx)) })),
    };
  });
  afterAll(async () => {
    await db?.close();
  });

  function setup() {
    const clock = new FakeClock('2025-03-03T12:00:00.000Z');
    const state: { decision: PolicyDecision } = {
      decision: { decision: 'auto_approve', policy: { id: 'pol_a', name: 'auto' }, reason: 'fine' },
    };
    const audit = new AuditService(db, clock);
    const agents = new AgentService(db, audit, clock, { allowPrivateWebhooks: false });
    const permissions = new PermissionService(traced, audit, { evaluate: () => state.decision }, clock, {
      approvalTimeoutSeconds: 900,
      requireActionDetails: false,
    });
    const origin = (agent: Agent): RequestOrigin => ({
      actor: { type: 'agent', id: agent.id, name: agent.name },
    });
    return {
      clock,
      state,
      agents,
      permissions,
      async newAgent(webhookUrl?: string): Promise<Agent> {
        const { agent } = await agents.create({ name: `outbox-${randomBytes(3).toString('hex')}` }, operator);
        return webhookUrl ? agents.update(agent.id, { webhookUrl }, operator) : agent;
      },
      request(
        agent: Agent,
        input: { webhookUrl?: string; maxUses?: number; idempotencyKey?: string; token?: string } = {},
      ) {
        const token = input.token ?? `otp_v1_${randomBytes(32).toString('base64url')}`;
        return permissions
          .request(
            agent,
            {
              action: 'payment.create',
              scope: { max_uses: input.maxUses ?? 1 },
              tokenHash: sha256(token),
              ...(input.webhookUrl ? { webhookUrl: input.webhookUrl } : {}),
              ...(input.idempotencyKey ? { idempotencyKey: input.idempotencyKey } : {}),
            },
            origin(agent),
          )
          .then((outcome) => ({ ...outcome, token }));
      },
      use(agent: Agent, p: Permission, token: string) {
        return permissions.use(agent, p.id, token, undefined, origin(agent));
      },
      async deliveries(permissionId: string): Promise<DeliveryRow[]> {
        const { rows } = await db.query<DeliveryRow>(
          'SELECT * FROM webhook_deliveries WHERE permission_id = $1 ORDER BY created_at, event_type',
          [permissionId],
        );
        return rows;
      },
      async stored(id: string): Promise<Permission> {
        return (await permissions.get({ operator: true }, id, operator)).permission;
      },
    };
  }

  it('records permission.approved and permission.denied of a policy decision in the request statement', async () => {
    const h = setup();
    const agent = await h.newAgent(AGENT_URL);
    const { permission: approved } = await h.request(agent);
    h.state.decision = { decision: 'deny', policy: { id: 'pol_d', name: 'no' }, reason: 'Never' };
    const { permission: denied } = await h.request(agent, { webhookUrl: OWN_URL });

    const [a, ...moreA] = await h.deliveries(approved.id);
    expect(moreA).toEqual([]);
    expect(a).toMatchObject({ event_type: 'permission.approved', url: AGENT_URL, status: 'pending' });
    expect(a?.payload).toEqual(
      webhookPayload('permission.approved', await h.stored(approved.id), h.clock.now()),
    );
    const [d, ...moreD] = await h.deliveries(denied.id);
    expect(moreD).toEqual([]);
    expect(d).toMatchObject({ event_type: 'permission.denied', url: OWN_URL });
    expect(d?.payload.data).toMatchObject({ status: 'denied', reason: 'Never' });
  });

  it('records permission.approved and permission.denied of a human decision in its transaction', async () => {
    const h = setup();
    h.state.decision = {
      decision: 'require_approval',
      policy: { id: 'pol_h', name: 'human' },
      reason: 'ask',
    };
    const agent = await h.newAgent(AGENT_URL);
    const { permission: one } = await h.request(agent);
    const { permission: two } = await h.request(agent, { webhookUrl: OWN_URL });
    // A pending request sends nothing.
    expect(await h.deliveries(one.id)).toEqual([]);
    h.clock.advance(60_000);
    await h.permissions.decide({
      permissionId: one.id,
      approved: true,
      approver,
      origin: { actor: approver },
    });
    await h.permissions.decide({
      permissionId: two.id,
      approved: false,
      reason: 'no',
      approver,
      origin: { actor: approver },
    });

    const [approved] = await h.deliveries(one.id);
    expect(approved).toMatchObject({ event_type: 'permission.approved', url: AGENT_URL });
    expect(approved?.payload).toEqual(
      webhookPayload('permission.approved', await h.stored(one.id), h.clock.now()),
    );
    expect(approved?.payload.data.decidedBy).toMatchObject({ userName: 'ada' });
    const [denied] = await h.deliveries(two.id);
    expect(denied).toMatchObject({ event_type: 'permission.denied', url: OWN_URL });

    // A repeated decision changes nothing and records nothing more.
    await h.permissions.decide({
      permissionId: one.id,
      approved: true,
      approver,
      origin: { actor: approver },
    });
    expect(await h.deliveries(one.id)).toHaveLength(1);
  });

  it('records permission.used with the last use only, its payload as the stored row says', async () => {
    const h = setup();
    const agent = await h.newAgent();
    const { permission, token } = await h.request(agent, { webhookUrl: OWN_URL, maxUses: 3 });
    await h.use(agent, permission, token);
    await h.use(agent, permission, token);
    expect((await h.deliveries(permission.id)).map((d) => d.event_type)).toEqual(['permission.approved']);
    h.clock.advance(5000);
    const spent = await h.use(agent, permission, token);
    expect(spent.status).toBe('used');
    const used = (await h.deliveries(permission.id)).filter((d) => d.event_type === 'permission.used');
    expect(used).toHaveLength(1);
    // Built before the statement, it equals the payload of the row the statement left.
    expect(used[0]?.payload).toEqual(
      webhookPayload('permission.used', await h.stored(permission.id), h.clock.now()),
    );
    expect(used[0]?.payload.data).toMatchObject({ status: 'used', usesRemaining: 0 });
    // A refused use after that records nothing.
    expect((await appError(h.use(agent, permission, token))).code).toBe('TOKEN_USED');
    expect(await h.deliveries(permission.id)).toHaveLength(2);
  });

  it('records permission.revoked in the revoke transaction, with the reason', async () => {
    const h = setup();
    const agent = await h.newAgent(AGENT_URL);
    const { permission } = await h.request(agent);
    await h.permissions.revoke({ operator: true }, permission.id, operator, 'no longer needed');
    const revoked = (await h.deliveries(permission.id)).filter((d) => d.event_type === 'permission.revoked');
    expect(revoked).toHaveLength(1);
    expect(revoked[0]?.payload).toEqual(
      webhookPayload('permission.revoked', await h.stored(permission.id), h.clock.now()),
    );
    expect(revoked[0]?.payload.data.reason).toBe('no longer needed');
    // Revoking again is a no-op answer and records nothing.
    await h.permissions.revoke({ operator: true }, permission.id, operator);
    expect(await h.deliveries(permission.id)).toHaveLength(2);
  });

  it('records permission.expired for a batch of expiries in their transaction, only where there is a target', async () => {
    const h = setup();
    const withUrl = await h.newAgent(AGENT_URL);
    const without = await h.newAgent();
    const leaving = await h.newAgent(AGENT_URL);
    const approved = await h.request(withUrl);
    const own = await h.request(without, { webhookUrl: OWN_URL });
    const none = await h.request(without);
    const ofRevokedAgent = await h.request(leaving);
    h.state.decision = { decision: 'require_approval', policy: null, reason: 'ask' };
    const pending = await h.request(withUrl);
    await h.agents.revoke(leaving.id, operator);
    h.clock.advance(3600_000);
    await h.permissions.expireDue();

    const expired = async (p: Permission) =>
      (await h.deliveries(p.id)).filter((d) => d.event_type === 'permission.expired');
    for (const p of [approved.permission, pending.permission]) {
      const rows = await expired(p);
      expect(rows.map((d) => d.url)).toEqual([AGENT_URL]);
      expect(rows[0]?.payload).toEqual(
        webhookPayload('permission.expired', await h.stored(p.id), h.clock.now()),
      );
    }
    expect((await expired(own.permission)).map((d) => d.url)).toEqual([OWN_URL]);
    expect(await h.deliveries(none.permission.id)).toEqual([]);
    // An agent no longer active gets no webhook at its own URL.
    expect(await expired(ofRevokedAgent.permission)).toEqual([]);
  });

  it('hands each listener the id of the delivery its change recorded, to be queued after commit', async () => {
    const h = setup();
    const changes: PermissionChange[] = [];
    h.permissions.onChange((c) => changes.push(c));
    const agent = await h.newAgent(AGENT_URL);
    const { permission, token } = await h.request(agent);
    await h.use(agent, permission, token);
    const rows = await h.deliveries(permission.id);
    expect(rows.map((d) => d.event_type)).toEqual(['permission.approved', 'permission.used']);
    expect(changes.map((c) => [c.type, c.deliveryId])).toEqual([
      ['approved', rows.find((d) => d.event_type === 'permission.approved')?.id],
      ['used', rows.find((d) => d.event_type === 'permission.used')?.id],
    ]);
  });

  it('costs a permission without a target nothing: no delivery SQL on any of its paths', async () => {
    const h = setup();
    const agent = await h.newAgent();
    statements = [];
    const { permission, token } = await h.request(agent, { maxUses: 2 });
    await h.use(agent, permission, token);
    await h.use(agent, permission, token);
    const second = await h.request(agent);
    await h.permissions.revoke({ operator: true }, second.permission.id, operator);
    h.state.decision = { decision: 'require_approval', policy: null, reason: 'ask' };
    const third = await h.request(agent);
    await h.permissions.decide({
      permissionId: third.permission.id,
      approved: true,
      approver,
      origin: { actor: approver },
    });
    h.clock.advance(3600_000);
    await h.permissions.expireDue();
    expect(statements.length).toBeGreaterThan(5);
    expect(statements.filter((sql) => sql.includes('webhook_deliveries'))).toEqual([]);
    expect(await h.deliveries(permission.id)).toEqual([]);
  });

  it('records one delivery for concurrent requests with one idempotency key: only the inserted one', async () => {
    const h = setup();
    const agent = await h.newAgent(AGENT_URL);
    const token = `otp_v1_${randomBytes(32).toString('base64url')}`;
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, () => h.request(agent, { idempotencyKey: 'same-key', token })),
    );
    expect(new Set(outcomes.map((o) => o.permission.id)).size).toBe(1);
    const { rows } = await db.query('SELECT id FROM webhook_deliveries WHERE agent_id = $1', [agent.id]);
    expect(rows).toHaveLength(1);
  });
});
