import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApprovalCard } from '../../src/chat/card.js';
import type { Actor } from '../../src/core/audit/index.js';
import type { PolicyDecision } from '../../src/core/policy/index.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { ChannelRegistry } from '../../src/services/approvals/channel.js';
import { ApprovalMessages } from '../../src/services/approvals/messages.js';
import { AuditService } from '../../src/services/audit.js';
import { ErasureService } from '../../src/services/erasure.js';
import { PermissionService } from '../../src/services/permissions.js';
import type { Agent } from '../../src/store/agentRepository.js';
import { saveChatMessage, staleMessages } from '../../src/store/chatMessageRepository.js';
import type { Db } from '../../src/store/db.js';
import { testDatabases } from '../helpers/databases.js';
import { FakeClock } from '../helpers/fakeClock.js';
import { memoryLogger } from '../helpers/memoryLogger.js';

/**
 * GDPR erasure covers every copy we hold (issue 11, defect 12): the audit trail, permission
 * rows (every text and JSON column an agent or approver fills), webhook deliveries, and the
 * chat messages we posted (marked for a re-render from the redacted rows). A dry run reports
 * the same counts and changes nothing; the chain still verifies; live permissions whose terms
 * name the person are revoked first, since erased terms cannot be enforced.
 */

const SUBJECT = 'ada@example.com';
const OPERATOR: Actor = { type: 'operator', id: 'opk_ops', name: 'ops', platform: 'cli' };
const APPROVER: Actor = { type: 'approver', platform: 'slack', userId: 'U0BOB', userName: 'bob' };

describe.each(testDatabases())('erasure on $name', (database) => {
  let db: Db;
  let clock: FakeClock;
  let audit: AuditService;
  let permissions: PermissionService;
  let erasure: ErasureService;
  let agent: Agent;
  let decision: PolicyDecision;
  let erased: { eventId: string; chatPermissionIds: string[] }[];

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    for (const table of [
      'chat_messages',
      'webhook_deliveries',
      'permissions',
      'audit_events',
      'api_keys',
      'agents',
    ]) {
      await db.query(`DELETE FROM ${table}`);
    }
    clock = new FakeClock('2025-03-03T12:00:00.000Z');
    audit = new AuditService(db, clock);
    permissions = new PermissionService(db, audit, { evaluate: () => decision }, clock, {
      approvalTimeoutSeconds: 900,
      requireActionDetails: false,
    });
    erasure = new ErasureService(db, audit, permissions);
    erased = [];
    erasure.onErased((e) => erased.push(e));
    agent = (await new AgentService(db, audit, clock).create({ name: 'billing-bot' }, { actor: OPERATOR }))
      .agent;
  });

  const origin = (userAgent = 'agent-sdk/1.0'): RequestOrigin => ({
    actor: { type: 'agent', id: agent.id, name: agent.name },
    ip: '203.0.113.9',
    userAgent,
  });
  const human: PolicyDecision = { decision: 'require_approval', policy: null, reason: 'A human decides' };
  const auto: PolicyDecision = { decision: 'auto_approve', policy: null, reason: 'fine' };

  /** Every stored row of the tables an erasure touches, as JSON text. */
  async function snapshot(): Promise<string> {
    const parts: string[] = [];
    for (const table of ['permissions', 'webhook_deliveries', 'audit_events', 'chat_messages']) {
      const { rows } = await db.query<{ j: string }>(
        `SELECT row_to_json(t)::text AS j FROM ${table} t ORDER BY 1`,
      );
      parts.push(...rows.map((r) => r.j));
    }
    return parts.join('\n');
  }

  async function delivery(id: string, permissionId: string, status: string, url: string, payload: unknown) {
    await db.query(
      `INSERT INTO webhook_deliveries (id, permission_id, agent_id, url, event_type, payload, status, created_at, next_attempt_at)
       VALUES ($1, $2, $3, $4, 'permission.approved', $5::jsonb, $6, now(), now())`,
      [id, permissionId, agent.id, url, JSON.stringify(payload), status],
    );
  }

  /** A finished request that named Ada everywhere an agent or approver can put her. */
  async function finishedNamingAda() {
    decision = human;
    const { permission } = await permissions.request(
      agent,
      {
        action: 'email.send',
        resource: `mailto:${SUBJECT}`,
        scope: { max_emails: 2, allowed_recipients: [SUBJECT, '*@acme.com'] },
        context: { reason: 'Newsletter', user_email: 'ADA@example.com', [`note:${SUBJECT}`]: 1 },
        idempotencyKey: `newsletter-${SUBJECT}`,
        webhookUrl: `https://hooks.example.com/agent?user=${SUBJECT}`,
      },
      origin(`agent-sdk/1.0 (on behalf of ${SUBJECT})`),
    );
    await saveChatMessage(db, {
      permissionId: permission.id,
      platform: 'slack',
      channel: 'C0APPROVALS',
      messageRef: '1700000000.000100',
      permalink: null,
      renderedState: 'pending:0',
    });
    await permissions.decide({
      permissionId: permission.id,
      approved: false,
      reason: `Not for ${SUBJECT}`,
      approver: { ...APPROVER, userName: `bob (for ${SUBJECT})` },
      origin: { actor: APPROVER },
    });
    // The denial's own delivery (written with the decision) is pending to her URL.
    await delivery(
      'msg_deliveredAda00000000000',
      permission.id,
      'delivered',
      'https://hooks.example.com/other',
      {
        data: { resource: `mailto:${SUBJECT}`, scope: { allowed_recipients: [SUBJECT] } },
      },
    );
    return permission;
  }

  it('a dry run reports what would change and changes nothing', async () => {
    await finishedNamingAda();
    const before = await snapshot();
    const report = await erasure.erase(SUBJECT, OPERATOR, { dryRun: true });
    expect(report).toMatchObject({
      dryRun: true,
      eventId: null,
      permissions: 1,
      webhookDeliveries: 2,
      chatMessages: 1,
      revoked: [],
    });
    expect(report.events).toBeGreaterThanOrEqual(2);
    expect(report.eventOrigins).toBeGreaterThanOrEqual(1);
    expect(await snapshot()).toBe(before);
    expect(erased).toEqual([]);
  });

  it('erases the subject from every copy, in one transaction with its event, and the chain verifies', async () => {
    const ada = await finishedNamingAda();
    decision = human;
    const other = await permissions.request(
      agent,
      { action: 'email.send', resource: 'mailto:bob@acme.com' },
      origin(),
    );
    const otherBefore = await db.query('SELECT * FROM permissions WHERE id = $1', [other.permission.id]);

    const dryRun = await erasure.erase(SUBJECT, OPERATOR, { dryRun: true });
    const report = await erasure.erase(SUBJECT, OPERATOR);
    // The dry run said exactly this.
    expect({ ...report, dryRun: true, eventId: null }).toEqual(dryRun);
    expect(report).toMatchObject({
      dryRun: false,
      permissions: 1,
      permissionFields: {
        resource: 1,
        requestedScope: 1,
        scope: 1,
        context: 1,
        decisionReason: 1,
        decidedBy: 1,
        webhookUrl: 1,
        idempotencyKey: 1,
      },
      webhookDeliveries: 2,
      chatMessages: 1,
      leftInConfiguration: { agents: 0, policies: 0, approvers: 0 },
    });
    expect(report.eventId).toMatch(/^evt_/);

    // Nothing we hold names her any more, whatever the case — except the hashed audit actor.
    const text = (await snapshot()).toLowerCase();
    const actorMentions = text.split('\n').filter((line) => line.includes(SUBJECT));
    expect(actorMentions).toHaveLength(report.eventActorsKept);
    for (const line of actorMentions) expect(line).toContain('"actor_type":"approver"');

    const row = (await permissions.get({ operator: true }, ada.id, { actor: OPERATOR })).permission;
    expect(row).toMatchObject({
      status: 'denied',
      action: 'email.send',
      resource: '[redacted]',
      scope: { max_emails: 2, allowed_recipients: ['[redacted]', '*@acme.com'] },
      context: { reason: 'Newsletter', user_email: '[redacted]', '[redacted]': 1 },
      decisionReason: '[redacted]',
      webhookUrl: null,
      idempotencyKey: null,
      requestHash: null, // a hash of what was erased
    });
    expect(row.decidedBy).toMatchObject({ userId: 'U0BOB', userName: '[redacted]' });
    // A pending delivery to an address naming her is dead; a delivered one keeps its target.
    const { rows: deliveries } = await db.query<{ event_type: string; status: string; url: string }>(
      'SELECT event_type, status, url FROM webhook_deliveries ORDER BY status',
    );
    expect(deliveries).toEqual([
      { event_type: 'permission.denied', status: 'dead', url: '[redacted]' },
      { event_type: 'permission.approved', status: 'delivered', url: 'https://hooks.example.com/other' },
    ]);
    // The posted message is marked for a re-render, and listeners are told after the commit.
    const { rows: chat } = await db.query<{ rendered_state: string | null }>(
      'SELECT rendered_state FROM chat_messages',
    );
    expect(chat).toEqual([{ rendered_state: null }]);
    expect(erased).toEqual([{ eventId: report.eventId, chatPermissionIds: [ada.id] }]);
    // Another person's request is untouched.
    expect((await db.query('SELECT * FROM permissions WHERE id = $1', [other.permission.id])).rows).toEqual(
      otherBefore.rows,
    );

    const { rows: events } = await db.query<{ type: string; details: Record<string, unknown> }>(
      "SELECT type, details FROM audit_events WHERE type = 'audit.redacted'",
    );
    expect(events).toHaveLength(1);
    expect(events[0]?.details).toMatchObject({ events: report.events, permissions: 1, webhookDeliveries: 2 });
    await audit.sealPending();
    expect(await audit.verify()).toMatchObject({ valid: true, unsealed: 0 });
  });

  it('revokes a live permission whose enforced terms name the subject before erasing them', async () => {
    decision = auto;
    // Erasing her from a block-list would widen the grant: it must not stay usable.
    const { permission: blocking, token } = await permissions.request(
      agent,
      { action: 'email.send', scope: { blocked_recipients: [SUBJECT], max_uses: 3 } },
      origin(),
    );
    // A pending one that names her (here as the person it acts for) is revoked too: its context
    // feeds the self-approval ban, and nobody should decide a blacked-out request.
    decision = human;
    const { permission: asking } = await permissions.request(
      agent,
      { action: 'email.send', context: { user_id: SUBJECT } },
      origin(),
    );

    const dryRun = await erasure.erase(SUBJECT, OPERATOR, { dryRun: true });
    expect([...dryRun.revoked].sort()).toEqual([blocking.id, asking.id].sort());
    expect(
      (await permissions.get({ operator: true }, blocking.id, { actor: OPERATOR })).permission.status,
    ).toBe('approved');

    const report = await erasure.erase(SUBJECT, OPERATOR);
    expect([...report.revoked].sort()).toEqual([blocking.id, asking.id].sort());
    const revoked = (await permissions.get({ operator: true }, blocking.id, { actor: OPERATOR })).permission;
    expect(revoked.status).toBe('revoked');
    expect(revoked.scope).toEqual({ blocked_recipients: ['[redacted]'], max_uses: 3 });
    await expect(
      permissions.use(agent, blocking.id, token as string, { recipient: SUBJECT }, origin()),
    ).rejects.toMatchObject({ code: 'TOKEN_REVOKED' });
    const { rows } = await db.query<{ type: string; actor: Actor }>(
      "SELECT type, actor FROM audit_events WHERE permission_id = $1 AND type = 'revoke'",
      [blocking.id],
    );
    expect(rows).toEqual([{ type: 'revoke', actor: OPERATOR }]);

    const pending = (await permissions.get({ operator: true }, asking.id, { actor: OPERATOR })).permission;
    expect(pending).toMatchObject({ status: 'revoked', context: { user_id: '[redacted]' } });
    await audit.sealPending();
    expect(await audit.verify()).toMatchObject({ valid: true });
  });

  it('changes nothing when any part fails: the erasure and its event are one transaction', async () => {
    await finishedNamingAda();
    const before = await snapshot();
    await expect(
      audit.redact(SUBJECT, OPERATOR, {
        copies: async () => {
          throw new Error('disk full');
        },
      }),
    ).rejects.toThrow('disk full');
    expect(await snapshot()).toBe(before);
  });

  it('redraws the posted message from the redacted row, even if the queued job is lost', async () => {
    const updates: ApprovalCard[] = [];
    const channels = new ChannelRegistry();
    channels.register({
      name: 'slack',
      defaults: { channel: 'C0APPROVALS', approvers: ['U0BOB'] },
      approverEntry: (id) => ({ kind: 'user', id }),
      targetEntry: (id) => ({ kind: 'channel', id }),
      post: async () => ({ messageRef: '1.1', permalink: null }),
      update: async (_channel, _ref, card) => void updates.push(card),
      notice: async () => undefined,
      memberOfAny: async () => false,
    });
    const approvals = new ApprovalMessages(db, channels, clock, memoryLogger().logger);
    decision = human;
    const { permission } = await permissions.request(
      agent,
      { action: 'email.send', context: { customer: SUBJECT } },
      origin(),
    );
    await saveChatMessage(db, {
      permissionId: permission.id,
      platform: 'slack',
      channel: 'C0APPROVALS',
      messageRef: '1.1',
      permalink: null,
      renderedState: 'pending:0',
    });
    // Showing the current state: a plain sync has nothing to edit.
    await approvals.syncMessages(permission.id);
    expect(updates).toHaveLength(0);

    await erasure.erase(SUBJECT, OPERATOR);
    // The reconciler finds the message (its job may have been lost with Redis) and redraws it.
    clock.advance(10_000);
    expect(await staleMessages(db, clock.now(), 10)).toEqual([permission.id]);
    await approvals.syncMessages(permission.id);
    expect(updates).toHaveLength(1);
    expect(JSON.stringify(updates[0])).not.toContain(SUBJECT);
    expect(updates[0]?.context).toEqual([{ key: 'customer', value: '[redacted]' }]);
    expect(await staleMessages(db, clock.now(), 10)).toEqual([]);

    // The erasure's own job forces the redraw, even after an update for the same state marked
    // the message current with what it read before the erasure.
    await approvals.syncMessages(permission.id, { force: true });
    expect(updates).toHaveLength(2);
  });

  it('leaves approver accounts naming the subject to the operator, and counts them', async () => {
    const at = new Date();
    await db.query(
      `INSERT INTO approvers (id, name, email, created_at, updated_at) VALUES
         ('apr_erasure1', 'ada', 'ADA@example.com', $1, $1), ('apr_erasure2', 'bo', NULL, $1, $1)`,
      [at],
    );
    await db.query(
      `INSERT INTO approver_identities (identity, approver_id, created_at) VALUES ('slack:U0BO', 'apr_erasure2', $1)`,
      [at],
    );
    try {
      const byEmail = await erasure.erase(SUBJECT, OPERATOR, { dryRun: true });
      expect(byEmail.leftInConfiguration.approvers).toBe(1);
      const byIdentity = await erasure.erase('U0BO', OPERATOR, { dryRun: true });
      expect(byIdentity.leftInConfiguration.approvers).toBe(1);
    } finally {
      await db.query(`DELETE FROM approvers WHERE id LIKE 'apr_erasure%'`);
    }
  });

  it('refuses a subject too short to name one person', async () => {
    await expect(erasure.erase(' ab ', OPERATOR)).rejects.toMatchObject({ code: 'VALIDATION_ERROR' });
  });
});
