import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Actor } from '../../src/core/audit/index.js';
import type { Clock } from '../../src/core/clock.js';
import { AppError } from '../../src/core/errors.js';
import type { Permission } from '../../src/core/permission.js';
import type { PolicyDecision, PolicyRequest } from '../../src/core/policy/index.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { AuditService } from '../../src/services/audit.js';
import {
  type PermissionRequestInput,
  PermissionService,
  type PermissionSettings,
  type PolicyEvaluator,
} from '../../src/services/permissions.js';
import type { Agent } from '../../src/store/agentRepository.js';
import type { Db } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrate.js';
import { createPostgresDb } from '../../src/store/postgres.js';
import { appError } from '../helpers/appError.js';
import { createSchema, dropSchema, testDatabases, uniqueSchema } from '../helpers/databases.js';

/** A Monday, noon UTC; each test starts here and moves the clock forward itself. */
const T0 = new Date('2025-03-03T12:00:00.000Z');
const APPROVAL_TIMEOUT_S = 900;
const TOKEN_SHAPE = /^otp_v1_[A-Za-z0-9_-]{43}$/;

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
/** A token of the right shape that nobody committed to. */
const strayToken = () => `otp_v1_${randomBytes(32).toString('base64url')}`;
const at = (base: Date, seconds: number) => new Date(base.getTime() + seconds * 1000);

const operatorOrigin: RequestOrigin = {
  actor: { type: 'operator', id: 'opk_admin', name: 'admin', platform: 'cli' },
  ip: '127.0.0.1',
  userAgent: 'vitest',
};
const alice: Actor = { type: 'operator', id: 'opk_alice', name: 'alice', platform: 'api' };
const carol: Actor = { type: 'operator', id: 'opk_carol', name: 'carol', platform: 'api' };
const bobOnSlack: Actor = {
  type: 'approver',
  platform: 'slack',
  teamId: 'T1',
  userId: 'U1',
  userName: 'bob',
};

const autoApprove = (extra: Partial<PolicyDecision> = {}): PolicyDecision => ({
  decision: 'auto_approve',
  policy: { id: 'pol_auto', name: 'small-payments' },
  reason: 'Small payments are fine',
  ...extra,
});
const requireApproval = (extra: Partial<PolicyDecision> = {}): PolicyDecision => ({
  decision: 'require_approval',
  policy: { id: 'pol_human', name: 'ask-a-human' },
  reason: 'A human decides',
  ...extra,
});
const denyDecision = (reason: string): PolicyDecision => ({
  decision: 'deny',
  policy: { id: 'pol_deny', name: 'no-deletes' },
  reason,
});

const detailsOf = (err: AppError) => (err.details ?? {}) as Record<string, unknown>;

interface EventRow {
  type: string;
  actor_type: string;
  actor: Actor;
  agent_id: string | null;
  permission_id: string | null;
  details: Record<string, unknown>;
}

/**
 * Everything a test needs over one database: a controllable clock, a policy evaluator whose
 * decision each test sets, and the services wired as in production.
 */
function harness(db: Db) {
  const state = { current: T0, decision: autoApprove(), seen: [] as PolicyRequest[] };
  const clock: Clock = { now: () => state.current };
  const policy: PolicyEvaluator = {
    evaluate: (request) => {
      state.seen.push(request);
      return state.decision;
    },
  };
  const settings: PermissionSettings = {
    approvalTimeoutSeconds: APPROVAL_TIMEOUT_S,
    requireActionDetails: false,
  };
  const audit = new AuditService(db, clock);
  const agents = new AgentService(db, audit, clock);
  const permissions = new PermissionService(db, audit, policy, clock, settings);

  const origin = (agent: Agent): RequestOrigin => ({
    actor: { type: 'agent', id: agent.id, name: agent.name },
    ip: '203.0.113.7',
    userAgent: 'agent-sdk/test',
  });

  return {
    state,
    clock,
    policy,
    audit,
    agents,
    permissions,
    origin,
    advance(seconds: number) {
      state.current = at(state.current, seconds);
    },
    async newAgent(environment: 'live' | 'test' = 'live'): Promise<Agent> {
      const created = await agents.create(
        { name: `agent-${randomBytes(3).toString('hex')}`, environment },
        operatorOrigin,
      );
      return created.agent;
    },
    request(agent: Agent, input: Partial<PermissionRequestInput> = {}) {
      return permissions.request(agent, { action: 'payment.create', ...input }, origin(agent));
    },
    use(agent: Agent, id: string, token: string, actionDetails?: Record<string, unknown>) {
      return permissions.use(agent, id, token, actionDetails, origin(agent));
    },
    verify(agent: Agent, id: string, token: string, actionDetails?: Record<string, unknown>) {
      return permissions.verify(agent, id, token, actionDetails, origin(agent));
    },
    decide(
      id: string,
      approver: Actor,
      approved: boolean,
      extra: { reason?: string; scopeModifications?: Record<string, unknown> } = {},
    ) {
      return permissions.decide({
        permissionId: id,
        approved,
        approver,
        origin: { actor: approver },
        ...extra,
      });
    },
    async current(id: string): Promise<Permission> {
      return (await permissions.get({ operator: true }, id, { actor: { type: 'operator' } })).permission;
    },
    async events(permissionId: string): Promise<EventRow[]> {
      const { rows } = await db.query<EventRow>(
        `SELECT type, actor_type, actor, agent_id, permission_id, details
           FROM audit_events WHERE permission_id = $1 ORDER BY seq`,
        [permissionId],
      );
      return rows;
    },
    async trail(permissionId: string): Promise<string[]> {
      const { rows } = await db.query<{ type: string; actor_type: string }>(
        'SELECT type, actor_type FROM audit_events WHERE permission_id = $1 ORDER BY seq',
        [permissionId],
      );
      return rows.map((r) => `${r.type}:${r.actor_type}`);
    },
    /** Every row of both tables as JSON text: a stored token would show up here. */
    async storedText(): Promise<string[]> {
      const perms = await db.query<{ j: string }>('SELECT row_to_json(t)::text AS j FROM permissions t');
      const events = await db.query<{ j: string }>('SELECT row_to_json(t)::text AS j FROM audit_events t');
      return [...perms.rows, ...events.rows].map((r) => r.j);
    },
  };
}

type Harness = ReturnType<typeof harness>;

describe.each(testDatabases())('PermissionService on $name', (database) => {
  let db: Db;
  let h: Harness;
  let agent: Agent;
  let other: Agent;

  beforeAll(async () => {
    db = await database.open();
    h = harness(db);
  });

  afterAll(async () => {
    await db?.close();
  });

  beforeEach(async () => {
    h.state.current = T0;
    h.state.decision = autoApprove();
    h.state.seen.length = 0;
    agent = await h.newAgent();
    other = await h.newAgent();
  });

  /** An approved permission with a server-minted token. */
  async function grant(scope: Record<string, unknown> = {}, input: Partial<PermissionRequestInput> = {}) {
    h.state.decision = autoApprove();
    const { permission, token } = await h.request(agent, { scope, ...input });
    expect(permission.status).toBe('approved');
    if (!token) throw new Error('expected a token');
    return { permission, token };
  }

  /** A use that breaks one rule: SCOPE_VIOLATION naming the key, nothing consumed, audited. */
  async function expectViolation(
    permission: Permission,
    token: string,
    actionDetails: Record<string, unknown>,
    key: string,
  ): Promise<AppError> {
    const before = await h.current(permission.id);
    const usesBefore = (await h.events(permission.id)).filter((e) => e.type === 'use').length;
    const err = await appError(h.use(agent, permission.id, token, actionDetails));
    expect(err.code).toBe('SCOPE_VIOLATION');
    expect(detailsOf(err).key).toBe(key);
    const after = await h.current(permission.id);
    expect(after.status).toBe('approved');
    expect(after.usesRemaining).toBe(before.usesRemaining);
    expect(after.totals).toEqual(before.totals);
    const events = await h.events(permission.id);
    expect(events.filter((e) => e.type === 'use')).toHaveLength(usesBefore);
    const last = events[events.length - 1];
    expect(last?.type).toBe('use_rejected');
    expect(last?.details.code).toBe('SCOPE_VIOLATION');
    expect(last?.details.violations).toContain(key);
    return err;
  }

  describe('auto-approve', () => {
    it('approves at once with a server-minted otp_v1_ token, returned once, only its SHA-256 stored', async () => {
      const { permission, token, replayed } = await h.request(agent, { scope: { max_amount: 100 } });
      expect(replayed).toBe(false);
      expect(permission.status).toBe('approved');
      expect(permission.id).toMatch(/^perm_/);
      expect(token).toMatch(TOKEN_SHAPE);
      if (!token) throw new Error('expected a token');
      expect(permission.tokenHash).toBe(sha256(token));
      expect(permission.clientToken).toBe(false);
      expect(permission.usesRemaining).toBe(1);
      expect(permission.expiresAt.getTime()).toBe(at(T0, 300).getTime()); // default TTL 300 s
      expect(permission.decidedBy).toMatchObject({ type: 'policy', id: 'pol_auto', name: 'small-payments' });
      expect(permission.decisionReason).toBe('Small payments are fine');

      const { rows } = await db.query<{ token_hash: string }>(
        'SELECT token_hash FROM permissions WHERE id = $1',
        [permission.id],
      );
      expect(rows[0]?.token_hash).toBe(sha256(token));
      const stored = await h.storedText();
      expect(stored.some((text) => text.includes(permission.id))).toBe(true);
      expect(stored.filter((text) => text.includes(token))).toEqual([]);

      // Not handed out a second time.
      expect((await h.permissions.get({ agent }, permission.id, h.origin(agent))).token).toBeUndefined();

      const used = await h.use(agent, permission.id, token, { amount: 40 });
      expect(used.status).toBe('used');
      expect((await h.storedText()).filter((text) => text.includes(token))).toEqual([]);
    });

    it('with a client tokenHash commitment returns no token, and the client token works for use', async () => {
      const clientToken = strayToken();
      const { permission, token } = await h.request(agent, { tokenHash: sha256(clientToken) });
      expect(permission.status).toBe('approved');
      expect(token).toBeUndefined();
      expect(permission.clientToken).toBe(true);
      expect(permission.tokenHash).toBe(sha256(clientToken));

      expect((await appError(h.use(agent, permission.id, strayToken()))).code).toBe('INVALID_TOKEN');
      const used = await h.use(agent, permission.id, clientToken, {});
      expect(used.status).toBe('used');
      expect(used.usesRemaining).toBe(0);
      expect((await h.storedText()).filter((text) => text.includes(clientToken))).toEqual([]);
    });

    it('a scopeTemplate narrows the requested scope (min caps, intersected allow-lists) and ttlCap caps the TTL', async () => {
      h.state.decision = autoApprove({
        scopeTemplate: {
          max_amount: 100,
          max_total_amount: 1000,
          allowed_recipients: ['*@acme.com'],
          max_uses: 2,
        },
        ttlCap: 120,
      });
      const requestedScope = {
        max_amount: 500,
        max_total_amount: 800,
        allowed_recipients: ['bob@acme.com', 'eve@evil.com'],
        max_uses: 5,
      };
      const { permission, token } = await h.request(agent, { scope: requestedScope, ttl: 600 });
      if (!token) throw new Error('expected a token');
      expect(permission.requestedScope).toEqual(requestedScope);
      expect(permission.scope).toEqual({
        max_amount: 100,
        max_total_amount: 800,
        allowed_recipients: ['bob@acme.com'],
        max_uses: 2,
      });
      expect(permission.maxUses).toBe(2);
      expect(permission.usesRemaining).toBe(2);
      expect(permission.ttlSeconds).toBe(120);
      expect(permission.expiresAt.getTime()).toBe(at(T0, 120).getTime());
      // The evaluator saw what the agent asked for.
      expect(h.state.seen[0]).toMatchObject({
        agentId: agent.id,
        action: 'payment.create',
        scope: requestedScope,
      });

      await expectViolation(permission, token, { amount: 150, recipient: 'bob@acme.com' }, 'max_amount');
      await expectViolation(
        permission,
        token,
        { amount: 10, recipient: 'eve@evil.com' },
        'allowed_recipients',
      );
      const used = await h.use(agent, permission.id, token, { amount: 100, recipient: 'bob@acme.com' });
      expect(used.usesRemaining).toBe(1);

      h.advance(121);
      expect((await appError(h.use(agent, permission.id, token, { amount: 1 }))).code).toBe('TOKEN_EXPIRED');
    });

    it('a ttlCap above the requested TTL leaves the request as asked', async () => {
      h.state.decision = autoApprove({ ttlCap: 3600, scopeTemplate: { max_amount: 1000 } });
      const { permission } = await h.request(agent, { ttl: 60, scope: { max_amount: 50 } });
      expect(permission.ttlSeconds).toBe(60);
      expect(permission.scope).toEqual({ max_amount: 50 });
    });

    it('test agent keys auto-approve regardless of the evaluator', async () => {
      h.state.decision = denyDecision('Nothing is allowed');
      const testAgent = await h.newAgent('test');
      const { permission, token } = await h.request(testAgent, { scope: { max_amount: 5 } });
      expect(permission.status).toBe('approved');
      expect(token).toMatch(TOKEN_SHAPE);
      expect(permission.decidedBy).toMatchObject({ type: 'policy' });
      expect(h.state.seen).toHaveLength(0);
      if (!token) throw new Error('expected a token');
      expect((await h.use(testAgent, permission.id, token, { amount: 5 })).status).toBe('used');

      // The live agent asking the same thing is denied.
      expect((await h.request(agent, { scope: { max_amount: 5 } })).permission.status).toBe('denied');
    });
  });

  describe('deny', () => {
    it('denies with the reason; use with any token fails', async () => {
      h.state.decision = denyDecision('Deletes are never allowed');
      const clientToken = strayToken();
      const { permission, token } = await h.request(agent, {
        action: 'db.delete',
        tokenHash: sha256(clientToken),
      });
      expect(permission.status).toBe('denied');
      expect(permission.decisionReason).toBe('Deletes are never allowed');
      expect(permission.usesRemaining).toBe(0);
      expect(token).toBeUndefined();

      const withStray = await appError(h.use(agent, permission.id, strayToken(), {}));
      expect(withStray.code).toBe('INVALID_TOKEN');
      const withCommitted = await appError(h.use(agent, permission.id, clientToken, {}));
      expect(withCommitted.code).toBe('FORBIDDEN');
      const verified = await h.verify(agent, permission.id, clientToken, {});
      expect(verified.valid).toBe(false);

      expect((await h.permissions.get({ agent }, permission.id, h.origin(agent))).token).toBeUndefined();
      expect((await h.current(permission.id)).status).toBe('denied');
      expect(await h.trail(permission.id)).toEqual([
        'request:agent',
        'deny:policy',
        'use_rejected:agent',
        'use_rejected:agent',
        'verify:agent',
      ]);
    });
  });

  describe('require_approval and decide', () => {
    async function pending(
      scope: Record<string, unknown> = {},
      extra: Partial<PolicyDecision> = {},
      ttl?: number,
    ) {
      h.state.decision = requireApproval(extra);
      const outcome = await h.request(agent, { scope, ...(ttl ? { ttl } : {}) });
      expect(outcome.permission.status).toBe('pending');
      expect(outcome.token).toBeUndefined();
      return outcome.permission;
    }

    it('pending until an operator approves; expiresAt = decision time + ttl; get returns the token exactly once', async () => {
      const p = await pending({ max_amount: 100 }, {}, 120);
      expect(p.expiresAt.getTime()).toBe(at(T0, APPROVAL_TIMEOUT_S).getTime());
      expect(p.tokenHash).toBeNull();
      expect(p.usesRemaining).toBe(0);
      expect((await h.permissions.get({ agent }, p.id, h.origin(agent))).token).toBeUndefined();

      h.advance(60);
      const decidedAt = h.clock.now();
      const result = await h.decide(p.id, alice, true, { reason: 'looks fine' });
      expect(result.changed).toBe(true);
      expect(result.approvals).toEqual({ count: 1, required: 1 });
      expect(result.permission.status).toBe('approved');
      expect(result.permission.decidedBy).toEqual(alice);
      expect(result.permission.decidedAt?.getTime()).toBe(decidedAt.getTime());
      expect(result.permission.expiresAt.getTime()).toBe(at(decidedAt, 120).getTime());
      expect(result.permission.usesRemaining).toBe(1);

      // An operator read never mints the agent's token.
      expect(
        (await h.permissions.get({ operator: true }, p.id, { actor: { type: 'operator' } })).token,
      ).toBeUndefined();
      const first = await h.permissions.get({ agent }, p.id, h.origin(agent));
      expect(first.token).toMatch(TOKEN_SHAPE);
      const token = first.token ?? '';
      expect(first.permission.tokenHash).toBe(sha256(token));
      const second = await h.permissions.get({ agent }, p.id, h.origin(agent));
      expect(second.token).toBeUndefined();
      expect((await h.storedText()).filter((text) => text.includes(token))).toEqual([]);

      const used = await h.use(agent, p.id, token, { amount: 100 });
      expect(used.status).toBe('used');
    });

    it('a client commitment sent with a pending request is the token after approval', async () => {
      h.state.decision = requireApproval();
      const clientToken = strayToken();
      const { permission } = await h.request(agent, { tokenHash: sha256(clientToken) });
      await h.decide(permission.id, alice, true);
      expect((await h.permissions.get({ agent }, permission.id, h.origin(agent))).token).toBeUndefined();
      expect((await h.use(agent, permission.id, clientToken, {})).status).toBe('used');
    });

    it('a deny is final; deciding again is ALREADY_DECIDED naming the earlier decision', async () => {
      const p = await pending();
      h.advance(30);
      const denied = await h.decide(p.id, alice, false, { reason: 'not today' });
      expect(denied.permission.status).toBe('denied');
      expect(denied.permission.decisionReason).toBe('not today');
      expect((await h.permissions.get({ agent }, p.id, h.origin(agent))).token).toBeUndefined();

      const late = await appError(h.decide(p.id, carol, true));
      expect(late.code).toBe('ALREADY_DECIDED');
      expect(late.message).toContain('alice');
      expect(detailsOf(late)).toMatchObject({
        status: 'denied',
        decidedBy: alice,
        decidedAt: at(T0, 30).toISOString(),
      });
      // Alice changing her mind is a conflict too, not a silent flip.
      expect((await appError(h.decide(p.id, alice, true))).code).toBe('ALREADY_DECIDED');
      expect((await h.current(p.id)).status).toBe('denied');
      expect(await h.trail(p.id)).toEqual(['request:agent', 'deny:operator']);
    });

    it('a deny after an approval is ALREADY_DECIDED naming the approver', async () => {
      const p = await pending();
      await h.decide(p.id, bobOnSlack, true);
      const late = await appError(h.decide(p.id, alice, false));
      expect(late.code).toBe('ALREADY_DECIDED');
      expect(detailsOf(late)).toMatchObject({ status: 'approved', decidedBy: bobOnSlack });
      expect((await h.current(p.id)).status).toBe('approved');
    });

    it('the same approver repeating the same decision is changed:false, not an error', async () => {
      const p = await pending();
      const first = await h.decide(p.id, alice, true);
      expect(first.changed).toBe(true);
      h.advance(5);
      const again = await h.decide(p.id, alice, true);
      expect(again.changed).toBe(false);
      expect(again.permission.status).toBe('approved');
      expect(again.permission.decidedAt?.getTime()).toBe(T0.getTime());

      const q = await pending();
      await h.decide(q.id, alice, false);
      expect((await h.decide(q.id, alice, false)).changed).toBe(false);

      expect(await h.trail(p.id)).toEqual(['request:agent', 'approve:operator']);
      expect(await h.trail(q.id)).toEqual(['request:agent', 'deny:operator']);
    });

    it('scopeModifications that narrow lower a cap, and the lower cap is enforced on use', async () => {
      const p = await pending({ max_amount: 100, allowed_recipients: ['*@acme.com'] });
      const result = await h.decide(p.id, alice, true, {
        scopeModifications: { max_amount: 40, allowed_recipients: ['bob@acme.com'] },
      });
      expect(result.permission.status).toBe('approved');
      expect(result.permission.scope).toEqual({ max_amount: 40, allowed_recipients: ['bob@acme.com'] });
      expect(result.permission.requestedScope).toEqual({
        max_amount: 100,
        allowed_recipients: ['*@acme.com'],
      });
      const token = (await h.permissions.get({ agent }, p.id, h.origin(agent))).token ?? '';
      const approved = await h.current(p.id);

      await expectViolation(approved, token, { amount: 50, recipient: 'bob@acme.com' }, 'max_amount');
      await expectViolation(approved, token, { amount: 10, recipient: 'ann@acme.com' }, 'allowed_recipients');
      expect((await h.use(agent, p.id, token, { amount: 40, recipient: 'bob@acme.com' })).status).toBe(
        'used',
      );
      const approve = (await h.events(p.id)).find((e) => e.type === 'approve');
      expect(approve?.details.scopeModifications).toEqual({
        max_amount: 40,
        allowed_recipients: ['bob@acme.com'],
      });
    });

    it('narrowing max_uses lowers the maximum too, so an untouched token still expires as unused', async () => {
      const p = await pending({ max_uses: 3 });
      const result = await h.decide(p.id, alice, true, { scopeModifications: { max_uses: 2 } });
      expect(result.permission.usesRemaining).toBe(2);
      h.advance(301);
      await h.permissions.expireDue();
      const expire = (await h.events(p.id)).find((e) => e.type === 'expire');
      expect(expire?.details).toMatchObject({ previousStatus: 'approved', unused: true });
      expect((await h.current(p.id)).maxUses).toBe(2);
    });

    it.each([
      ['raising a cap', { max_amount: 150 }, 'max_amount'],
      [
        'adding an allow-list entry',
        { allowed_recipients: ['*@acme.com', 'eve@evil.com'] },
        'allowed_recipients',
      ],
      ['removing a key', { max_amount: null }, 'max_amount'],
      ['raising max_uses', { max_uses: 5 }, 'max_uses'],
    ])(
      'widening by %s is SCOPE_WIDENING and the request stays pending',
      async (_label, modifications, key) => {
        const p = await pending({ max_amount: 100, allowed_recipients: ['*@acme.com'], max_uses: 2 });
        const err = await appError(h.decide(p.id, alice, true, { scopeModifications: modifications }));
        expect(err.code).toBe('SCOPE_WIDENING');
        expect(detailsOf(err).key).toBe(key);
        const after = await h.current(p.id);
        expect(after.status).toBe('pending');
        expect(after.scope).toEqual({ max_amount: 100, allowed_recipients: ['*@acme.com'], max_uses: 2 });
        expect(after.decidedBy).toBeNull();
        expect(await h.trail(p.id)).toEqual(['request:agent']);

        // The request can still be decided properly.
        expect((await h.decide(p.id, alice, true)).permission.status).toBe('approved');
      },
    );

    it('quorum 2: one approval leaves it pending, the same approver counts once, a second approver approves', async () => {
      const p = await pending({ max_amount: 100 }, { approval: { quorum: 2 } });
      const first = await h.decide(p.id, alice, true);
      expect(first.changed).toBe(true);
      expect(first.permission.status).toBe('pending');
      expect(first.approvals).toEqual({ count: 1, required: 2 });
      expect((await h.permissions.get({ agent }, p.id, h.origin(agent))).token).toBeUndefined();

      const repeat = await h.decide(p.id, alice, true);
      expect(repeat.changed).toBe(false);
      expect(repeat.permission.status).toBe('pending');
      expect(repeat.approvals).toEqual({ count: 1, required: 2 });

      h.advance(10);
      const second = await h.decide(p.id, bobOnSlack, true);
      expect(second.changed).toBe(true);
      expect(second.permission.status).toBe('approved');
      expect(second.approvals).toEqual({ count: 2, required: 2 });
      expect(second.permission.decidedBy).toEqual(bobOnSlack);
      expect(second.permission.expiresAt.getTime()).toBe(at(T0, 10 + 300).getTime());

      expect(await h.trail(p.id)).toEqual(['request:agent', 'approval_vote:operator', 'approve:approver']);
      const approve = (await h.events(p.id)).find((e) => e.type === 'approve');
      expect(approve?.actor).toMatchObject({ platform: 'slack', teamId: 'T1', userId: 'U1' });
      expect(approve?.details.approvers).toEqual(['operator:opk_alice', 'slack:U1']);
    });

    it("quorum 2: a voter's narrowing is not lost when the last approver approves without changes", async () => {
      const p = await pending({ max_amount: 100 }, { approval: { quorum: 2 } });
      await h.decide(p.id, alice, true, { scopeModifications: { max_amount: 50 } });
      const second = await h.decide(p.id, carol, true);
      expect(second.permission.status).toBe('approved');
      // Alice agreed to at most 50: granting 100 would widen what one of the quorum approved.
      expect(second.permission.scope.max_amount).toBeLessThanOrEqual(50);
    });

    it('the agent may cancel a pending request; later decisions are ALREADY_DECIDED', async () => {
      const p = await pending();
      const cancelled = await h.permissions.cancel(agent, p.id, h.origin(agent));
      expect(cancelled.status).toBe('cancelled');
      expect((await h.permissions.cancel(agent, p.id, h.origin(agent))).status).toBe('cancelled');
      expect((await appError(h.decide(p.id, alice, true))).code).toBe('ALREADY_DECIDED');
      expect(await h.trail(p.id)).toEqual(['request:agent', 'cancel:agent']);

      const { permission: approved } = await grant();
      expect((await appError(h.permissions.cancel(agent, approved.id, h.origin(agent)))).code).toBe(
        'ALREADY_DECIDED',
      );
    });

    it('a reason Postgres cannot store, or longer than 2000 characters, is VALIDATION_ERROR from any channel, and nothing is decided', async () => {
      // The service is where Slack and Discord forms reach decide, past any HTTP validation.
      const p = await pending();
      for (const reason of ['fine\u0000', 'ok \ud800', 'x'.repeat(2001)]) {
        const err = await appError(h.decide(p.id, bobOnSlack, true, { reason }));
        expect(err.code).toBe('VALIDATION_ERROR');
        expect(detailsOf(err).path).toBe('reason');
      }
      const err = await appError(h.decide(p.id, alice, false, { scopeModifications: { ['k\u0000']: 1 } }));
      expect(detailsOf(err).path).toBe('scopeModifications.k\ufffd');
      expect((await h.current(p.id)).status).toBe('pending');
      expect(await h.trail(p.id)).toEqual(['request:agent']);

      const { permission: approved } = await grant();
      const revoke = await appError(
        h.permissions.revoke({ agent }, approved.id, h.origin(agent), 'no\u0000'),
      );
      expect(detailsOf(revoke).path).toBe('reason');
      expect((await h.current(approved.id)).status).toBe('approved');
    });

    it('max_uses beyond the 32-bit column is VALIDATION_ERROR naming scope.max_uses, and nothing is stored', async () => {
      const before = (await db.query('SELECT id FROM permissions')).rows.length;
      const err = await appError(h.request(agent, { scope: { max_uses: 2 ** 31 } }));
      expect(err.code).toBe('VALIDATION_ERROR');
      expect(detailsOf(err).path).toBe('scope.max_uses');
      expect((await db.query('SELECT id FROM permissions')).rows.length).toBe(before);
      const { permission } = await grant({ max_uses: 2 ** 31 - 1 });
      expect(permission.usesRemaining).toBe(2 ** 31 - 1);
    });
  });

  describe('use', () => {
    it('max_uses 3: three uses (2, 1, 0 left), status used after the third, a fourth is TOKEN_USED', async () => {
      const { permission, token } = await grant({ max_uses: 3 });
      expect(permission.usesRemaining).toBe(3);
      const remaining: number[] = [];
      const statuses: string[] = [];
      for (let i = 0; i < 3; i++) {
        h.advance(1);
        const used = await h.use(agent, permission.id, token, { amount: i });
        remaining.push(used.usesRemaining);
        statuses.push(used.status);
      }
      expect(remaining).toEqual([2, 1, 0]);
      expect(statuses).toEqual(['approved', 'approved', 'used']);
      const after = await h.current(permission.id);
      expect(after.status).toBe('used');
      expect(after.lastUsedAt?.getTime()).toBe(at(T0, 3).getTime());
      expect((await appError(h.use(agent, permission.id, token, {}))).code).toBe('TOKEN_USED');
      expect((await h.events(permission.id)).filter((e) => e.type === 'use')).toHaveLength(3);
    });

    it('a wrong token is INVALID_TOKEN and consumes nothing', async () => {
      const { permission, token } = await grant({ max_uses: 2 });
      for (const wrong of [strayToken(), 'not-a-token', '', `${token}x`, token.toUpperCase()]) {
        expect((await appError(h.use(agent, permission.id, wrong, {}))).code).toBe('INVALID_TOKEN');
      }
      expect((await h.verify(agent, permission.id, strayToken(), {})).reason).toBe('INVALID_TOKEN');
      expect((await h.current(permission.id)).usesRemaining).toBe(2);
      expect((await h.use(agent, permission.id, token, {})).usesRemaining).toBe(1);
    });

    it("another agent's permission id is NOT_FOUND for get, verify, use, revoke and cancel", async () => {
      const { permission, token } = await grant({ max_uses: 2 });
      h.state.decision = requireApproval();
      const { permission: waiting } = await h.request(agent);
      const theirs = h.origin(other);

      const calls: [string, () => Promise<unknown>][] = [
        ['get', () => h.permissions.get({ agent: other }, permission.id, h.origin(other))],
        ['verify', () => h.permissions.verify(other, permission.id, token, {}, theirs)],
        ['use', () => h.permissions.use(other, permission.id, token, {}, theirs)],
        ['revoke', () => h.permissions.revoke({ agent: other }, permission.id, theirs)],
        ['cancel', () => h.permissions.cancel(other, waiting.id, theirs)],
        ['get a pending one', () => h.permissions.get({ agent: other }, waiting.id, h.origin(other))],
        ['revoke a pending one', () => h.permissions.revoke({ agent: other }, waiting.id, theirs)],
      ];
      for (const [label, call] of calls) {
        const err = await appError(call());
        expect(err.code, label).toBe('NOT_FOUND');
        expect(err.message, label).not.toContain(agent.id);
      }
      // Unknown and malformed ids look the same.
      expect(
        (await appError(h.permissions.get({ agent }, 'perm_0000000000000000000000', h.origin(agent)))).code,
      ).toBe('NOT_FOUND');
      expect(
        (await appError(h.permissions.get({ agent }, "perm_'; DROP TABLE x", h.origin(agent)))).code,
      ).toBe('NOT_FOUND');

      expect((await h.current(permission.id)).usesRemaining).toBe(2);
      expect((await h.current(permission.id)).status).toBe('approved');
      expect((await h.current(waiting.id)).status).toBe('pending');
      // Nothing was audited against the owner's permissions on the other agent's behalf.
      expect(await h.trail(permission.id)).toEqual(['request:agent', 'approve:policy']);
      expect(await h.trail(waiting.id)).toEqual(['request:agent']);
      // The owner still can.
      expect((await h.use(agent, permission.id, token, {})).usesRemaining).toBe(1);
    });

    it('after revoke the token is TOKEN_REVOKED', async () => {
      const { permission, token } = await grant({ max_uses: 2 });
      await h.use(agent, permission.id, token, {});
      const revoked = await h.permissions.revoke(
        { operator: true },
        permission.id,
        operatorOrigin,
        'compromised',
      );
      expect(revoked.status).toBe('revoked');
      expect(revoked.decisionReason).toBe('compromised');
      expect((await appError(h.use(agent, permission.id, token, {}))).code).toBe('TOKEN_REVOKED');
      expect((await h.verify(agent, permission.id, token, {})).reason).toBe('TOKEN_REVOKED');
      // Revoking again is harmless and writes nothing.
      expect((await h.permissions.revoke({ agent }, permission.id, h.origin(agent))).status).toBe('revoked');
      expect(await h.trail(permission.id)).toEqual([
        'request:agent',
        'approve:policy',
        'use:agent',
        'revoke:operator',
        'use_rejected:agent',
        'verify:agent',
      ]);
      const revoke = (await h.events(permission.id)).find((e) => e.type === 'revoke');
      expect(revoke?.details).toMatchObject({ reason: 'compromised', previousStatus: 'approved' });

      // A used token cannot be revoked into a different state.
      const { permission: spent, token: spentToken } = await grant();
      await h.use(agent, spent.id, spentToken, {});
      expect((await appError(h.permissions.revoke({ agent }, spent.id, h.origin(agent)))).code).toBe(
        'CONFLICT',
      );
    });

    it('after the clock passes expiresAt the token is TOKEN_EXPIRED and expireDue marks it expired (unused)', async () => {
      const { permission, token } = await grant({}, { ttl: 60 });
      const { permission: touched, token: touchedToken } = await grant({ max_uses: 2 }, { ttl: 60 });
      await h.use(agent, touched.id, touchedToken, {});

      h.advance(59);
      expect((await h.verify(agent, permission.id, token, {})).valid).toBe(true);
      h.advance(1); // exactly expiresAt: no longer valid
      expect((await appError(h.use(agent, permission.id, token, {}))).code).toBe('TOKEN_EXPIRED');
      // A read shows it expired at once; the sweeper records the change (audit, webhook) later.
      expect((await h.current(permission.id)).status).toBe('expired');
      expect((await h.events(permission.id)).filter((e) => e.type === 'expire')).toHaveLength(0);

      expect(await h.permissions.expireDue()).toBeGreaterThanOrEqual(2);
      const after = await h.current(permission.id);
      expect(after.status).toBe('expired');
      expect((await appError(h.use(agent, permission.id, token, {}))).code).toBe('TOKEN_EXPIRED');

      const expire = (await h.events(permission.id)).filter((e) => e.type === 'expire');
      expect(expire).toHaveLength(1);
      expect(expire[0]?.actor_type).toBe('system');
      expect(expire[0]?.details).toEqual({ previousStatus: 'approved', unused: true });
      const touchedExpire = (await h.events(touched.id)).find((e) => e.type === 'expire');
      expect(touchedExpire?.details).toEqual({ previousStatus: 'approved', unused: false });

      // A second run finds nothing more for these.
      await h.permissions.expireDue();
      expect((await h.events(permission.id)).filter((e) => e.type === 'expire')).toHaveLength(1);
    });

    it('pending requests past the approval timeout expire too', async () => {
      h.state.decision = requireApproval();
      const { permission } = await h.request(agent);
      h.advance(APPROVAL_TIMEOUT_S - 1);
      await h.permissions.expireDue();
      expect((await h.current(permission.id)).status).toBe('pending');
      h.advance(1);
      // Too late to approve, even before the sweeper ran.
      expect(['CONFLICT', 'ALREADY_DECIDED']).toContain(
        (await appError(h.decide(permission.id, alice, true))).code,
      );
      // Reads show it expired the moment the deadline passed, before the sweeper ran.
      expect((await h.current(permission.id)).status).toBe('expired');
      await h.permissions.expireDue();
      expect((await h.current(permission.id)).status).toBe('expired');
      expect(await h.trail(permission.id)).toEqual(['request:agent', 'expire:system']);
      const expire = (await h.events(permission.id)).find((e) => e.type === 'expire');
      expect(expire?.details).toEqual({ previousStatus: 'pending', unused: false });
      expect((await appError(h.decide(permission.id, alice, true))).code).toBe('ALREADY_DECIDED');
    });
  });

  describe('scope violations: SCOPE_VIOLATION naming the key, nothing consumed', () => {
    it('max_amount exceeded', async () => {
      const { permission, token } = await grant({ max_amount: 100, max_uses: 2 });
      const err = await expectViolation(permission, token, { amount: 100.01 }, 'max_amount');
      expect(detailsOf(err).violations).toEqual([expect.objectContaining({ key: 'max_amount', limit: 100 })]);
      // A quoted number is still a number.
      await expectViolation(permission, token, { amount: '5000' }, 'max_amount');
      expect((await h.use(agent, permission.id, token, { amount: 100 })).usesRemaining).toBe(1);
    });

    it('recipient outside allowed_recipients (glob *@acme.com)', async () => {
      const { permission, token } = await grant({ allowed_recipients: ['*@acme.com'], max_uses: 2 });
      await expectViolation(
        permission,
        token,
        { recipients: ['bob@acme.com', 'eve@evil.com'] },
        'allowed_recipients',
      );
      await expectViolation(permission, token, { recipient: 'eve@evil.com' }, 'allowed_recipients');
      await expectViolation(permission, token, { recipient: 'eve@acme.com.evil.com' }, 'allowed_recipients');
      await expectViolation(permission, token, { recipient: 'eve@sub.acme.com' }, 'allowed_recipients');
      const used = await h.use(agent, permission.id, token, { recipients: ['bob@acme.com', 'ann@acme.com'] });
      expect(used.usesRemaining).toBe(1);
    });

    it('subject not matching subject_pattern ^Invoice #\\d+$', async () => {
      const { permission, token } = await grant({ subject_pattern: '^Invoice #\\d+$', max_uses: 2 });
      await expectViolation(
        permission,
        token,
        { subject: 'Invoice #12 and a phishing link' },
        'subject_pattern',
      );
      await expectViolation(permission, token, { subject: 'Re: Invoice #12' }, 'subject_pattern');
      await expectViolation(permission, token, { subject: 'Invoice #' }, 'subject_pattern');
      expect((await h.use(agent, permission.id, token, { subject: 'Invoice #1234' })).usesRemaining).toBe(1);
    });

    it('max_total_amount exceeded across uses: 60 ok, 50 refused at cap 100, then 40 ok', async () => {
      const { permission, token } = await grant({ max_total_amount: 100, max_uses: 3 });
      const first = await h.use(agent, permission.id, token, { amount: 60 });
      expect(first.usesRemaining).toBe(2);
      expect(first.totals).toEqual({ amount: 60 });
      const err = await expectViolation(first, token, { amount: 50 }, 'max_total_amount');
      expect(detailsOf(err).violations).toEqual([
        expect.objectContaining({ key: 'max_total_amount', limit: 100 }),
      ]);
      const third = await h.use(agent, permission.id, token, { amount: 40 });
      expect(third.usesRemaining).toBe(1);
      expect(third.totals).toEqual({ amount: 100 });
      await expectViolation(third, token, { amount: 1 }, 'max_total_amount');
    });

    it('outside allowed_hours in the scope timezone, judged by the clock', async () => {
      // 13:30 UTC on 3 March 2025 is 08:30 in New York (EST): inside 9–17 in UTC, outside in New York.
      h.state.current = new Date('2025-03-03T13:30:00.000Z');
      const { permission, token } = await grant(
        { allowed_hours: { start: 9, end: 17 }, timezone: 'America/New_York' },
        { ttl: 3600 },
      );
      const err = await expectViolation(permission, token, {}, 'allowed_hours');
      expect(err.message).toContain('America/New_York');
      h.advance(31 * 60); // 09:01 in New York
      expect((await h.use(agent, permission.id, token, {})).status).toBe('used');
    });

    it('a blocked_<f> value (case-insensitively)', async () => {
      const { permission, token } = await grant({ blocked_recipients: ['*@evil.com'], max_uses: 2 });
      await expectViolation(permission, token, { recipient: 'mallory@evil.com' }, 'blocked_recipients');
      await expectViolation(
        permission,
        token,
        { recipients: ['bob@acme.com', 'Mallory@EVIL.com'] },
        'blocked_recipients',
      );
      expect((await h.use(agent, permission.id, token, { recipient: 'bob@acme.com' })).usesRemaining).toBe(1);
    });

    it('<f>_allowed: false forbids the field', async () => {
      const { permission, token } = await grant({ attachments_allowed: false, max_uses: 2 });
      await expectViolation(permission, token, { attachments: ['payroll.xlsx'] }, 'attachments_allowed');
      await expectViolation(permission, token, { attachment: 'payroll.xlsx' }, 'attachments_allowed');
      expect((await h.use(agent, permission.id, token, { subject: 'hello' })).usesRemaining).toBe(1);
      expect((await h.use(agent, permission.id, token, { attachments: false })).status).toBe('used');
    });
  });

  describe('verify consumes nothing', () => {
    it('valid, violating and used tokens', async () => {
      const { permission, token } = await grant({ max_amount: 100, max_uses: 1 });
      const ok = await h.verify(agent, permission.id, token, { amount: 50 });
      expect(ok.valid).toBe(true);
      expect(ok.reason).toBeUndefined();
      expect(ok.permission.usesRemaining).toBe(1);

      const bad = await h.verify(agent, permission.id, token, { amount: 500 });
      expect(bad.valid).toBe(false);
      expect(bad.reason).toBe('SCOPE_VIOLATION');
      expect(bad.violations).toEqual([
        expect.objectContaining({ key: 'max_amount', field: 'amount', limit: 100 }),
      ]);
      expect((await h.current(permission.id)).usesRemaining).toBe(1);

      await h.use(agent, permission.id, token, { amount: 50 });
      const spent = await h.verify(agent, permission.id, token, { amount: 50 });
      expect(spent.valid).toBe(false);
      expect(spent.reason).toBe('TOKEN_USED');

      const verifies = (await h.events(permission.id)).filter((e) => e.type === 'verify');
      expect(verifies.map((e) => e.details)).toEqual([
        { valid: true, reason: null, violations: null },
        { valid: false, reason: 'SCOPE_VIOLATION', violations: ['max_amount'] },
        { valid: false, reason: 'TOKEN_USED', violations: null },
      ]);
      expect(verifies.every((e) => e.actor_type === 'agent')).toBe(true);
    });
  });

  describe('actionDetails omitted', () => {
    it('is allowed and audited with details.checked false', async () => {
      const { permission, token } = await grant({ max_amount: 100 });
      const used = await h.use(agent, permission.id, token);
      expect(used.status).toBe('used');
      const use = (await h.events(permission.id)).find((e) => e.type === 'use');
      expect(use?.details).toEqual({ checked: false });
    });

    it('with requireActionDetails: true is VALIDATION_ERROR and consumes nothing', async () => {
      const strict = new PermissionService(db, h.audit, h.policy, h.clock, {
        approvalTimeoutSeconds: APPROVAL_TIMEOUT_S,
        requireActionDetails: true,
      });
      const { permission, token } = await grant({ max_amount: 100 });
      const err = await appError(strict.use(agent, permission.id, token, undefined, h.origin(agent)));
      expect(err.code).toBe('VALIDATION_ERROR');
      expect((await h.current(permission.id)).usesRemaining).toBe(1);
      expect((await h.events(permission.id)).some((e) => e.type === 'use')).toBe(false);
      const used = await strict.use(agent, permission.id, token, { amount: 10 }, h.origin(agent));
      expect(used.status).toBe('used');
      expect((await h.events(permission.id)).find((e) => e.type === 'use')?.details).toEqual({
        checked: true,
        actionDetails: { amount: 10 },
      });
    });
  });

  describe('requests written together (group commit)', () => {
    /** The harness over a database that counts the statements inserting permissions. */
    function counted() {
      const counter = { inserts: 0 };
      const countingDb: Db = {
        ...db,
        query(sql, params) {
          if (sql.includes('INSERT INTO permissions')) counter.inserts += 1;
          return db.query(sql, params);
        },
      };
      return { counter, h: harness(countingDb) };
    }

    it('answers each of many concurrent requests with its own committed permission, in fewer statements', async () => {
      const { counter, h: grouped } = counted();
      const outcomes = await Promise.all(
        Array.from({ length: 40 }, (_, i) => grouped.request(agent, { context: { n: i } })),
      );
      expect(new Set(outcomes.map((o) => o.permission.id)).size).toBe(40);
      expect(new Set(outcomes.map((o) => o.token)).size).toBe(40);
      expect(counter.inserts).toBeLessThan(40);
      for (const [i, o] of outcomes.entries()) {
        const stored = await h.current(o.permission.id);
        expect(stored.context).toEqual({ n: i });
        expect(stored.tokenHash).toBe(sha256(o.token ?? ''));
        expect(await h.trail(o.permission.id)).toEqual(['request:agent', 'approve:policy']);
      }
    });

    it('writes one permission for concurrent requests sharing an idempotency key; the others replay it', async () => {
      h.state.decision = requireApproval();
      const outcomes = await Promise.all(
        Array.from({ length: 6 }, () => h.request(agent, { idempotencyKey: 'together-1' })),
      );
      expect(outcomes.filter((o) => !o.replayed)).toHaveLength(1);
      expect(new Set(outcomes.map((o) => o.permission.id)).size).toBe(1);
      const { rows } = await db.query<{ n: unknown }>(
        'SELECT count(*) AS n FROM permissions WHERE agent_id = $1',
        [agent.id],
      );
      expect(Number(rows[0]?.n)).toBe(1);
      expect(await h.trail(outcomes[0]?.permission.id ?? '')).toEqual(['request:agent']);
    });

    it('fails only the request the database refuses; the others in its group are written', async () => {
      const stranger: Agent = { ...agent, id: 'agent_NotInTheDatabase0000' };
      const settled = await Promise.allSettled([
        ...Array.from({ length: 8 }, () => h.request(agent)),
        h.request(stranger),
        ...Array.from({ length: 8 }, () => h.request(agent)),
      ]);
      expect(settled.map((s) => s.status)).toEqual([
        ...Array(8).fill('fulfilled'),
        'rejected',
        ...Array(8).fill('fulfilled'),
      ]);
      for (const s of settled) {
        if (s.status === 'fulfilled')
          expect(await h.trail(s.value.permission.id)).toEqual(['request:agent', 'approve:policy']);
      }
      const { rows } = await db.query<{ n: unknown }>(
        'SELECT count(*) AS n FROM audit_events WHERE agent_id = $1',
        [stranger.id],
      );
      expect(Number(rows[0]?.n)).toBe(0);
    });
  });

  describe('a use right after the request (the copy this instance keeps)', () => {
    /** A second instance on the same database: its changes never reach the first's memory. */
    const elsewhere = () => harness(db);

    function counting() {
      const seen = { selects: 0 };
      const countingDb: Db = {
        ...db,
        query(sql, params) {
          if (/^\s*SELECT \* FROM permissions/.test(sql)) seen.selects += 1;
          return db.query(sql, params);
        },
      };
      return { seen, h: harness(countingDb) };
    }

    it('spends without reading the permission again', async () => {
      const { seen, h: local } = counting();
      const { permission, token } = await local.request(agent, { scope: { max_uses: 2 } });
      const spent = await local.use(agent, permission.id, token ?? '');
      expect(spent.usesRemaining).toBe(1);
      expect(seen.selects).toBe(0);
    });

    it('refuses a token revoked on another instance, and spends nothing', async () => {
      const { permission, token } = await h.request(agent, { scope: { max_uses: 5 } });
      await elsewhere().permissions.revoke({ operator: true }, permission.id, operatorOrigin);
      const err = await appError(h.use(agent, permission.id, token ?? ''));
      expect(err.code).toBe('TOKEN_REVOKED');
      const stored = await h.current(permission.id);
      expect(stored.usesRemaining).toBe(5);
      expect(await h.trail(permission.id)).toEqual([
        'request:agent',
        'approve:policy',
        'revoke:operator',
        'use_rejected:agent',
      ]);
    });

    it('refuses a token used up on another instance as TOKEN_USED', async () => {
      const { permission, token } = await h.request(agent);
      await elsewhere().use(agent, permission.id, token ?? '');
      expect((await appError(h.use(agent, permission.id, token ?? ''))).code).toBe('TOKEN_USED');
    });

    it('names the revocation, not the scope, when a revoked token is also used out of scope', async () => {
      const { permission, token } = await h.request(agent, { scope: { max_amount: 10 } });
      await elsewhere().permissions.revoke({ operator: true }, permission.id, operatorOrigin);
      const err = await appError(h.use(agent, permission.id, token ?? '', { amount: 50 }));
      expect(err.code).toBe('TOKEN_REVOKED');
    });

    it("never another agent's permission, even one it holds a copy of", async () => {
      const { permission, token } = await h.request(agent);
      expect((await appError(h.use(other, permission.id, token ?? ''))).code).toBe('NOT_FOUND');
      expect((await h.current(permission.id)).usesRemaining).toBe(1);
    });

    it('verifies from its copy without reading the permission, and records the verify', async () => {
      const { seen, h: local } = counting();
      const { permission, token } = await local.request(agent, { scope: { max_uses: 2, max_amount: 10 } });
      const ok = await local.verify(agent, permission.id, token ?? '', { amount: 5 });
      const over = await local.verify(agent, permission.id, token ?? '', { amount: 50 });
      expect(seen.selects).toBe(0);
      expect([ok.valid, ok.permission.usesRemaining]).toEqual([true, 2]);
      expect([over.valid, over.reason]).toEqual([false, 'SCOPE_VIOLATION']);
      expect(
        (await h.events(permission.id)).filter((e) => e.type === 'verify').map((e) => e.details),
      ).toEqual([
        { valid: true, reason: null, violations: null },
        { valid: false, reason: 'SCOPE_VIOLATION', violations: ['max_amount'] },
      ]);
    });

    it('answers a verify from the row when another instance used the token meanwhile', async () => {
      const { permission, token } = await h.request(agent, { scope: { max_uses: 3 } });
      await elsewhere().use(agent, permission.id, token ?? '');
      const after = await h.verify(agent, permission.id, token ?? '');
      expect([after.valid, after.permission.usesRemaining]).toEqual([true, 2]);
      // The copy said 3 uses left: its event was not written, and the read's was, once.
      expect(await h.trail(permission.id)).toEqual([
        'request:agent',
        'approve:policy',
        'use:agent',
        'verify:agent',
      ]);
    });

    it('says TOKEN_REVOKED to a verify after a revoke on another instance, and records that answer', async () => {
      const { permission, token } = await h.request(agent, { scope: { max_uses: 5 } });
      await h.verify(agent, permission.id, token ?? '');
      await elsewhere().permissions.revoke({ operator: true }, permission.id, operatorOrigin);
      const after = await h.verify(agent, permission.id, token ?? '');
      expect([after.valid, after.reason]).toEqual([false, 'TOKEN_REVOKED']);
      const verifies = (await h.events(permission.id)).filter((e) => e.type === 'verify');
      expect(verifies.map((e) => e.details)).toEqual([
        { valid: true, reason: null, violations: null },
        { valid: false, reason: 'TOKEN_REVOKED', violations: null },
      ]);
    });

    it('keeps a copy of what a verify read: the next verify or use reads nothing', async () => {
      const { permission, token } = await elsewhere().request(agent, { scope: { max_uses: 2 } });
      const { seen, h: local } = counting();
      await local.verify(agent, permission.id, token ?? '');
      expect(seen.selects).toBe(1);
      await local.verify(agent, permission.id, token ?? '');
      expect((await local.use(agent, permission.id, token ?? '')).usesRemaining).toBe(1);
      expect(seen.selects).toBe(1);
    });
  });

  describe('idempotencyKey', () => {
    const rowsFor = async (agentId: string) => {
      const { rows } = await db.query<{ n: unknown }>(
        'SELECT count(*) AS n FROM permissions WHERE agent_id = $1',
        [agentId],
      );
      return Number(rows[0]?.n ?? 0);
    };

    it('refuses a replay whose token commitment differs from the original (409 CONFLICT)', async () => {
      h.state.decision = requireApproval();
      const tokenA = `otp_v1_${'A'.repeat(43)}`;
      const tokenB = `otp_v1_${'B'.repeat(43)}`;
      const hash = (t: string) => createHash('sha256').update(t).digest('hex');
      await h.request(agent, { idempotencyKey: 'commit-1', tokenHash: hash(tokenA) });
      const same = await h.request(agent, { idempotencyKey: 'commit-1', tokenHash: hash(tokenA) });
      expect(same.replayed).toBe(true);
      const other = await appError(h.request(agent, { idempotencyKey: 'commit-1', tokenHash: hash(tokenB) }));
      expect(other.code).toBe('CONFLICT');
    });

    it('the same key from the same agent replays the same permission for 24 h, then creates a new one', async () => {
      h.state.decision = requireApproval();
      const first = await h.request(agent, { idempotencyKey: 'order-42', scope: { max_amount: 10 } });
      expect(first.replayed).toBe(false);
      h.advance(3600);
      const again = await h.request(agent, { idempotencyKey: 'order-42', scope: { max_amount: 10 } });
      expect(again.replayed).toBe(true);
      expect(again.permission.id).toBe(first.permission.id);
      expect(await rowsFor(agent.id)).toBe(1);
      expect(await h.trail(first.permission.id)).toEqual(['request:agent']);

      const theirs = await h.request(other, { idempotencyKey: 'order-42' });
      expect(theirs.replayed).toBe(false);
      expect(theirs.permission.id).not.toBe(first.permission.id);
      expect(await rowsFor(other.id)).toBe(1);

      h.state.current = at(T0, 24 * 3600);
      const later = await h.request(agent, { idempotencyKey: 'order-42', scope: { max_amount: 10 } });
      expect(later.replayed).toBe(false);
      expect(later.permission.id).not.toBe(first.permission.id);
      expect(await rowsFor(agent.id)).toBe(2);
      // And the new one is what the key now replays.
      const replay = await h.request(agent, { idempotencyKey: 'order-42', scope: { max_amount: 10 } });
      expect(replay.permission.id).toBe(later.permission.id);
      expect(await rowsFor(agent.id)).toBe(2);
    });

    it('refuses the key with a different request (409 IDEMPOTENCY_KEY_REUSED), storing nothing', async () => {
      h.state.decision = requireApproval();
      const body = {
        idempotencyKey: 'wire-7',
        action: 'payment.send',
        resource: 'acct:1',
        scope: { max_amount: 10, allowed_recipients: ['a@x.com'] },
        context: { invoice: 'INV-1', nested: { a: 1, b: 2 } },
      };
      const first = await h.request(agent, body);
      // The same request with its keys in another order is the same request.
      const reordered = await h.request(agent, {
        context: { nested: { b: 2, a: 1 }, invoice: 'INV-1' },
        scope: { allowed_recipients: ['a@x.com'], max_amount: 10 },
        resource: 'acct:1',
        action: 'payment.send',
        idempotencyKey: 'wire-7',
      });
      expect(reordered.replayed).toBe(true);
      expect(reordered.permission.id).toBe(first.permission.id);
      const changes: Partial<typeof body & { ttl: number; webhookUrl: string }>[] = [
        { scope: { max_amount: 10000, allowed_recipients: ['a@x.com'] } },
        { action: 'payment.refund' },
        { resource: 'acct:2' },
        { context: { invoice: 'INV-2', nested: { a: 1, b: 2 } } },
        { ttl: 3600 },
        { webhookUrl: 'https://hooks.example.com/x' },
      ];
      for (const change of changes) {
        const err = await appError(h.request(agent, { ...body, ...change }));
        expect(err.code).toBe('IDEMPOTENCY_KEY_REUSED');
        expect(err.details).toEqual({ permissionId: first.permission.id });
      }
      expect(await rowsFor(agent.id)).toBe(1);
      expect(await h.trail(first.permission.id)).toEqual(['request:agent']);
    });

    it('compares a key stored before request fingerprints field by field', async () => {
      h.state.decision = requireApproval();
      const first = await h.request(agent, { idempotencyKey: 'legacy-1', scope: { max_amount: 5 } });
      await db.query('UPDATE permissions SET request_hash = NULL WHERE id = $1', [first.permission.id]);
      const same = await h.request(agent, { idempotencyKey: 'legacy-1', scope: { max_amount: 5 } });
      expect(same.permission.id).toBe(first.permission.id);
      const other = await appError(
        h.request(agent, { idempotencyKey: 'legacy-1', scope: { max_amount: 50 } }),
      );
      expect(other.code).toBe('IDEMPOTENCY_KEY_REUSED');
    });

    it('a replayed auto-approval does not hand out a second token', async () => {
      const first = await h.request(agent, { idempotencyKey: 'pay-1' });
      expect(first.token).toMatch(TOKEN_SHAPE);
      const again = await h.request(agent, { idempotencyKey: 'pay-1' });
      expect(again.replayed).toBe(true);
      expect(again.token).toBeUndefined();
      expect(again.permission.id).toBe(first.permission.id);
    });
  });

  describe('audit', () => {
    it('every transition writes exactly one event of the right type and actor', async () => {
      // Auto-approved, verified, refused, used, revoked.
      const { permission: auto, token } = await grant({ max_amount: 100, max_uses: 2 });
      await h.verify(agent, auto.id, token, { amount: 1 });
      await appError(h.use(agent, auto.id, token, { amount: 1000 }));
      await h.use(agent, auto.id, token, { amount: 10 });
      await h.permissions.revoke({ operator: true }, auto.id, operatorOrigin);
      expect(await h.trail(auto.id)).toEqual([
        'request:agent',
        'approve:policy',
        'verify:agent',
        'use_rejected:agent',
        'use:agent',
        'revoke:operator',
      ]);
      const autoEvents = await h.events(auto.id);
      expect(autoEvents.every((e) => e.agent_id === agent.id)).toBe(true);
      expect(autoEvents[1]?.actor).toMatchObject({ type: 'policy', id: 'pol_auto', name: 'small-payments' });
      expect(autoEvents[0]?.actor).toMatchObject({ type: 'agent', id: agent.id });
      expect(autoEvents[5]?.actor).toMatchObject({ type: 'operator', id: 'opk_admin' });

      // Denied by policy.
      h.state.decision = denyDecision('no');
      const { permission: denied } = await h.request(agent);
      expect(await h.trail(denied.id)).toEqual(['request:agent', 'deny:policy']);

      // Quorum: vote, a refused widening (no event), approval by a chat approver.
      h.state.decision = requireApproval({ approval: { quorum: 2 } });
      const { permission: voted } = await h.request(agent, { scope: { max_amount: 100 } });
      await h.decide(voted.id, alice, true);
      await appError(h.decide(voted.id, bobOnSlack, true, { scopeModifications: { max_amount: 1000 } }));
      await h.decide(voted.id, bobOnSlack, true);
      await appError(h.decide(voted.id, carol, false));
      expect(await h.trail(voted.id)).toEqual([
        'request:agent',
        'approval_vote:operator',
        'approve:approver',
      ]);

      // Denied by an operator, cancelled by the agent, expired by the system.
      h.state.decision = requireApproval();
      const { permission: humanDenied } = await h.request(agent);
      await h.decide(humanDenied.id, carol, false, { reason: 'no' });
      expect(await h.trail(humanDenied.id)).toEqual(['request:agent', 'deny:operator']);
      const { permission: cancelled } = await h.request(agent);
      await h.permissions.cancel(agent, cancelled.id, h.origin(agent));
      expect(await h.trail(cancelled.id)).toEqual(['request:agent', 'cancel:agent']);
      const { permission: forgotten } = await h.request(agent);
      h.advance(APPROVAL_TIMEOUT_S);
      await h.permissions.expireDue();
      expect(await h.trail(forgotten.id)).toEqual(['request:agent', 'expire:system']);

      // The origin's ip and user agent are recorded with the agent's events.
      const { rows } = await db.query<{ ip: string | null; user_agent: string | null }>(
        "SELECT ip, user_agent FROM audit_events WHERE permission_id = $1 AND type = 'use'",
        [auto.id],
      );
      expect(rows).toEqual([{ ip: '203.0.113.7', user_agent: 'agent-sdk/test' }]);
    });

    it('events are written in the same transaction as the change: a refused decide leaves no trace', async () => {
      h.state.decision = requireApproval();
      const { permission } = await h.request(agent, { scope: { max_amount: 100, subject_pattern: '^Hi' } });
      const before = await db.query<{ n: unknown }>('SELECT count(*) AS n FROM audit_events');
      await appError(h.decide(permission.id, alice, true, { scopeModifications: { max_amount: 200 } }));
      await appError(h.decide(permission.id, alice, true, { scopeModifications: { subject_pattern: '.*' } }));
      await appError(h.decide(permission.id, alice, true, { scopeModifications: { max_amount: -1 } }));
      const after = await db.query<{ n: unknown }>('SELECT count(*) AS n FROM audit_events');
      expect(Number(after.rows[0]?.n)).toBe(Number(before.rows[0]?.n));
      const stored = await h.current(permission.id);
      expect(stored.status).toBe('pending');
      expect(stored.approvals).toEqual([]);
    });
  });

  // Real concurrency needs real connections: PGlite runs one statement at a time.
  if (database.name === 'postgres') {
    describe('concurrency (Postgres, 20 connections)', () => {
      const url = process.env.TEST_DATABASE_URL ?? '';
      const schema = uniqueSchema();
      let pool: Db;
      let c: Harness;
      let racer: Agent;

      beforeAll(async () => {
        await createSchema(url, schema);
        pool = createPostgresDb({ connectionString: url, poolSize: 20, schema });
        await migrate(pool);
        c = harness(pool);
        racer = await c.newAgent();
      });

      afterAll(async () => {
        await pool?.close();
        await dropSchema(url, schema);
      });

      it('200 concurrent uses of a max_uses 3 token: exactly 3 succeed, the rest TOKEN_USED', async () => {
        c.state.decision = autoApprove();
        const { permission, token } = await c.request(racer, { scope: { max_uses: 3 } });
        if (!token) throw new Error('expected a token');
        const results = await Promise.allSettled(
          Array.from({ length: 200 }, (_, i) => c.use(racer, permission.id, token, { n: i })),
        );
        const won = results.filter((r) => r.status === 'fulfilled');
        const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        expect(won).toHaveLength(3);
        expect(lost.map((r) => (r.reason instanceof AppError ? r.reason.code : String(r.reason)))).toEqual(
          Array(197).fill('TOKEN_USED'),
        );
        const remaining = won.map((r) => (r.status === 'fulfilled' ? r.value.usesRemaining : -1)).sort();
        expect(remaining).toEqual([0, 1, 2]);
        const stored = await c.current(permission.id);
        expect(stored.status).toBe('used');
        expect(stored.usesRemaining).toBe(0);
        const events = await c.events(permission.id);
        expect(events.filter((e) => e.type === 'use')).toHaveLength(3);
        expect(events.filter((e) => e.type === 'use_rejected')).toHaveLength(197);
      });

      it('concurrent uses never overspend a max_total cap', async () => {
        c.state.decision = autoApprove();
        const { permission, token } = await c.request(racer, {
          scope: { max_uses: 50, max_total_amount: 100 },
        });
        if (!token) throw new Error('expected a token');
        const results = await Promise.allSettled(
          Array.from({ length: 50 }, () => c.use(racer, permission.id, token, { amount: 30 })),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
        const codes = results.flatMap((r) =>
          r.status === 'rejected' ? [r.reason instanceof AppError ? r.reason.code : String(r.reason)] : [],
        );
        expect(new Set(codes)).toEqual(new Set(['SCOPE_VIOLATION']));
        const stored = await c.current(permission.id);
        expect(stored.totals).toEqual({ amount: 90 });
        expect(stored.usesRemaining).toBe(47);
      });

      it('two instances spending the same tokens in opposite orders all succeed: no deadlock, no lost use', async () => {
        // Each instance groups the uses that arrive together into one statement; groups lock
        // rows in one order, so two instances' groups never wait for each other.
        const second = createPostgresDb({ connectionString: url, poolSize: 20, schema });
        try {
          const other = harness(second);
          c.state.decision = autoApprove();
          const grants: { id: string; token: string }[] = [];
          for (let i = 0; i < 60; i += 1) {
            const { permission, token } = await c.request(racer, { scope: { max_uses: 1000 } });
            if (!token) throw new Error('expected a token');
            grants.push({ id: permission.id, token });
          }
          const rounds = 4;
          const forward = Array.from({ length: rounds }, () => grants).flat();
          const backward = [...forward].reverse();
          const results = await Promise.allSettled([
            ...forward.map((g) => c.use(racer, g.id, g.token)),
            ...backward.map((g) => other.use(racer, g.id, g.token)),
          ]);
          expect(results.filter((r) => r.status === 'rejected').map((r) => String(r.reason))).toEqual([]);
          for (const g of grants) {
            const stored = await c.current(g.id);
            expect(stored.usesRemaining).toBe(1000 - 2 * rounds);
            expect((await c.events(g.id)).filter((e) => e.type === 'use')).toHaveLength(2 * rounds);
          }
        } finally {
          await second.close();
        }
      });

      it('20 concurrent decisions on one pending request: exactly one wins, the others ALREADY_DECIDED', async () => {
        c.state.decision = requireApproval();
        const { permission } = await c.request(racer);
        const deciders = Array.from({ length: 20 }, (_, i) => ({
          approved: i % 2 === 0,
          approver: { type: 'operator', id: `opk_racer${i}`, name: `racer${i}`, platform: 'api' } as Actor,
        }));
        const results = await Promise.allSettled(
          deciders.map((d) => c.decide(permission.id, d.approver, d.approved)),
        );
        const winners = results.flatMap((r, i) =>
          r.status === 'fulfilled' ? [{ result: r.value, decider: deciders[i] }] : [],
        );
        expect(winners).toHaveLength(1);
        const codes = results.flatMap((r) =>
          r.status === 'rejected' ? [r.reason instanceof AppError ? r.reason.code : String(r.reason)] : [],
        );
        expect(codes).toEqual(Array(19).fill('ALREADY_DECIDED'));

        const winner = winners[0];
        const stored = await c.current(permission.id);
        expect(stored.status).toBe(winner?.decider?.approved ? 'approved' : 'denied');
        expect(stored.decidedBy).toEqual(winner?.decider?.approver);
        const decisions = (await c.events(permission.id)).filter(
          (e) => e.type === 'approve' || e.type === 'deny',
        );
        expect(decisions).toHaveLength(1);
        expect(decisions[0]?.actor).toEqual(winner?.decider?.approver);
      });
    });
  }
});
