import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../src/core/audit/index.js';
import type { Clock } from '../../src/core/clock.js';
import type { AppError } from '../../src/core/errors.js';
import type { PolicyDecision } from '../../src/core/policy/index.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { AlertService, type AlertThresholds } from '../../src/services/alerts.js';
import { ChannelRegistry } from '../../src/services/approvals/channel.js';
import { ApprovalMessages } from '../../src/services/approvals/messages.js';
import { AuditService } from '../../src/services/audit.js';
import { AuthFailureRecorder, type MetricsDetail, MetricsService } from '../../src/services/metrics.js';
import { PermissionService } from '../../src/services/permissions.js';
import type { Agent } from '../../src/store/agentRepository.js';
import type { Db } from '../../src/store/db.js';
import { testDatabases } from '../helpers/databases.js';
import { memoryLogger } from '../helpers/memoryLogger.js';
import { RecordingChannel } from '../helpers/recordingChannel.js';

const T0 = new Date('2025-03-03T12:00:00.000Z');
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
const newClientToken = () => `otp_v1_${randomBytes(32).toString('base64url')}`;

const operatorOrigin: RequestOrigin = {
  actor: { type: 'operator', id: 'opk_admin', name: 'admin', platform: 'cli' },
  ip: '127.0.0.1',
  userAgent: 'vitest',
};
const alice: Actor = { type: 'operator', id: 'opk_alice', name: 'alice', platform: 'api' };
const bobOnSlack: Actor = {
  type: 'approver',
  platform: 'slack',
  teamId: 'T1',
  userId: 'U1',
  userName: 'bob',
};

const auto: PolicyDecision = {
  decision: 'auto_approve',
  policy: { id: 'pol_a', name: 'auto' },
  reason: 'ok',
};
const human: PolicyDecision = {
  decision: 'require_approval',
  policy: { id: 'pol_h', name: 'human' },
  reason: 'ask',
};
const deny: PolicyDecision = { decision: 'deny', policy: { id: 'pol_d', name: 'deny' }, reason: 'no' };

describe.each(testDatabases())('metrics and alerts on $name', (database) => {
  let db: Db;
  const state = { now: T0, decision: auto };
  const clock: Clock = { now: () => state.now };
  const advance = (seconds: number) => {
    state.now = new Date(state.now.getTime() + seconds * 1000);
  };
  let permissions: PermissionService;
  let agents: AgentService;
  let metrics: MetricsService;
  let failures: AuthFailureRecorder;
  let a: Agent;
  let b: Agent;

  const origin = (agent: Agent): RequestOrigin => ({
    actor: { type: 'agent', id: agent.id, name: agent.name },
    ip: '203.0.113.7',
    userAgent: 'vitest',
  });

  /** A request decided the given way; returns its id and (if approved) its token. */
  async function request(agent: Agent, decision: PolicyDecision, scope: Record<string, unknown> = {}) {
    state.decision = decision;
    const token = newClientToken();
    const outcome = await permissions.request(
      agent,
      { action: 'payment.create', scope, tokenHash: sha256(token) },
      origin(agent),
    );
    return { id: outcome.permission.id, token };
  }
  /** A human request decided `seconds` after it was made. */
  async function humanDecided(agent: Agent, approved: boolean, seconds: number, approver: Actor = alice) {
    const r = await request(agent, human, { max_amount: 100 });
    advance(seconds);
    await permissions.decide({ permissionId: r.id, approved, approver, origin: { actor: approver } });
    return r;
  }
  const use = (agent: Agent, id: string, token: string, details?: Record<string, unknown>) =>
    permissions.use(agent, id, token, details, origin(agent));

  beforeAll(async () => {
    db = await database.open();
    const audit = new AuditService(db, clock);
    agents = new AgentService(db, audit, clock);
    permissions = new PermissionService(db, audit, { evaluate: () => state.decision }, clock, {
      approvalTimeoutSeconds: 900,
      requireActionDetails: false,
    });
    metrics = new MetricsService(db, clock);
    failures = new AuthFailureRecorder(db, clock);
    a = (await agents.create({ name: 'agent-a', environment: 'live' }, operatorOrigin)).agent;
    b = (await agents.create({ name: 'agent-b', environment: 'live' }, operatorOrigin)).agent;

    // Failed authentications two hours before: inside 24h, outside 1h.
    state.now = new Date(T0.getTime() - 2 * 3600_000);
    for (let i = 0; i < 7; i++) failures.record(null);
    await failures.flush();
    state.now = T0;

    // Agent A.
    // 1. A request that waits for a human and times out: expired, never decided.
    await request(a, human);
    // 2. N = 4 human-approved and used (approval after 10, 20, 30, 40 s); one scope violation first.
    for (const [i, seconds] of [10, 20, 30, 40].entries()) {
      const r = await humanDecided(a, true, seconds, i % 2 ? bobOnSlack : alice);
      if (i === 0) {
        const err = await use(a, r.id, r.token, { amount: 500 }).catch((e: unknown) => e);
        expect((err as AppError).code).toBe('SCOPE_VIOLATION');
      }
      advance(1);
      await use(a, r.id, r.token, { amount: 5 });
    }
    // 3. M = 3 denied: two by humans (50, 60 s), one by policy.
    await humanDecided(a, false, 50);
    await humanDecided(a, false, 60, bobOnSlack);
    await request(a, deny);
    // 4. K = 2 human-approved (70, 80 s) and left to expire unused.
    await humanDecided(a, true, 70);
    await humanDecided(a, true, 80);
    // 5. Human-approved (90 s), then revoked by an operator.
    const revoked = await humanDecided(a, true, 90);
    await permissions.revoke({ operator: true }, revoked.id, operatorOrigin);
    // 6. Auto-approved and used; auto-approved with 2 uses, used once, then expired (not unused).
    const autoUsed = await request(a, auto);
    await use(a, autoUsed.id, autoUsed.token);
    const partial = await request(a, auto, { max_uses: 2 });
    await use(a, partial.id, partial.token);
    // Failed authentications: 3 unknown keys, 2 known keys of agent A.
    for (let i = 0; i < 3; i++) failures.record(null);
    for (let i = 0; i < 2; i++) failures.record(a.id);
    // 7. Past every deadline: the expiry job runs.
    advance(1000);
    await permissions.expireDue();
    // 8. Still pending, and a live auto-approved token.
    await request(a, human);
    await request(a, auto);

    // Agent B: one denied by policy, one auto-approved and used.
    await request(b, deny);
    const bUsed = await request(b, auto);
    await use(b, bUsed.id, bUsed.token);
    await failures.flush();
  });

  afterAll(async () => {
    await db?.close();
  });

  // [approval times in ms of every human decision] 10..90 s: mean 50 s; nearest-rank p95 = 9th of 9.
  const humanTimes = { avgApprovalTimeMs: 50_000, p95ApprovalTimeMs: 90_000 };

  it('counts every status, rate and time exactly for one agent', async () => {
    const m: MetricsDetail = await metrics.detail('1h', a.id);
    expect(m).toEqual({
      period: '1h',
      since: new Date(state.now.getTime() - 3600_000).toISOString(),
      requestVolume: 15,
      approved: 1,
      denied: 3,
      expired: 4, // the timed-out request, 2 unused tokens, the partly used token
      pending: 1,
      used: 5,
      revoked: 1,
      // decided = 15 − 2 never decided (timed out, still pending) = 13
      denialRate: 3 / 13,
      // finished tokens = 5 used up + 3 expired approved; 2 of them expired unused
      unusedTokenRate: 2 / 8,
      ...humanTimes,
      failedAuthentications: 2,
      scopeViolations: 1,
      decided: 13,
      finishedTokens: 8,
      expiredUnused: 2,
    });
  });

  it('scopes to an agent, and sums over all agents for operators', async () => {
    const mb = await metrics.summary('1h', b.id);
    expect(mb).toMatchObject({
      requestVolume: 2,
      denied: 1,
      used: 1,
      denialRate: 0.5,
      unusedTokenRate: 0,
      avgApprovalTimeMs: null,
      p95ApprovalTimeMs: null,
      failedAuthentications: 0,
      scopeViolations: 0,
    });
    const all = await metrics.summary('1h');
    expect(all).toMatchObject({
      requestVolume: 17,
      approved: 1,
      denied: 4,
      expired: 4,
      pending: 1,
      used: 6,
      revoked: 1,
      denialRate: 4 / 15,
      unusedTokenRate: 2 / 9,
      ...humanTimes,
      failedAuthentications: 5,
      scopeViolations: 1,
    });
    expect(await metrics.summary('24h')).toMatchObject({ requestVolume: 17, failedAuthentications: 12 });
  });

  it('adds flushed failure counts across flushes (several instances add up)', async () => {
    const other = new AuthFailureRecorder(db, clock);
    other.record(b.id);
    other.record(b.id);
    expect(await other.flush()).toBe(2);
    expect(await other.flush()).toBe(0);
    expect((await metrics.summary('1h', b.id)).failedAuthentications).toBe(2);
    expect((await metrics.summary('1h')).failedAuthentications).toBe(7);
  });

  it('alerts once when a threshold is crossed, not again while crossed, and notes the clearing', async () => {
    const platform = new RecordingChannel('slack', { channel: 'C-approvals', approvers: [] });
    const channels = new ChannelRegistry();
    channels.register(platform);
    const sink = new ApprovalMessages(db, channels, clock, memoryLogger().logger);
    const thresholds: AlertThresholds = {
      denialRate: 0.25, // all agents: 4/15 ≈ 0.267 crosses it
      unusedTokenRate: 0.3, // 2/9 does not
      failedAuthPerMinute: 20,
      minVolume: 10,
    };
    const alerts = new AlertService(db, metrics, sink, clock, thresholds);

    const first = await alerts.evaluate();
    expect(first.map((t) => `${t.name}:${t.kind}`)).toEqual(['denial_rate:triggered']);
    expect(platform.notices).toHaveLength(1);
    expect(platform.notices[0]).toMatchObject({ channel: 'C-approvals', messageRef: null });
    expect(platform.notices[0]?.text).toMatch(/denial rate 26\.7%.*4 of 15/);

    // Still crossed: nothing new, concurrent evaluations included.
    advance(60);
    expect(await Promise.all([alerts.evaluate(), alerts.evaluate()])).toEqual([[], []]);
    expect(platform.notices).toHaveLength(1);
    const { rows } = await db.query<{ name: string; active: boolean; last_value: number }>(
      'SELECT name, active, last_value FROM alert_state ORDER BY name',
    );
    expect(rows.map((r) => [r.name, r.active])).toEqual([
      ['denial_rate', true],
      ['failed_auth_per_min', false],
      ['unused_token_rate', false],
    ]);
    expect(Number(rows[0]?.last_value)).toBeCloseTo(4 / 15, 10);

    // A burst of failed authentications in one minute crosses the per-minute threshold.
    state.now = new Date(Math.ceil(state.now.getTime() / 60_000) * 60_000 + 5_000);
    for (let i = 0; i < 21; i++) failures.record(null);
    await failures.flush();
    advance(60);
    const burst = await alerts.evaluate();
    expect(burst.map((t) => `${t.name}:${t.kind}`)).toEqual(['failed_auth_per_min:triggered']);
    expect(platform.notices[1]?.text).toMatch(/21 failed authentications/);

    // Two hours later the hour holds too few decisions to judge, and no failures: both clear.
    advance(7200);
    const cleared = await alerts.evaluate();
    expect(cleared.map((t) => `${t.name}:${t.kind}`).sort()).toEqual([
      'denial_rate:cleared',
      'failed_auth_per_min:cleared',
    ]);
    expect(platform.notices).toHaveLength(4);
    expect(platform.notices.slice(2).every((n) => /alert cleared/.test(n.text))).toBe(true);
    expect(await alerts.evaluate()).toEqual([]);
    expect(platform.notices).toHaveLength(4);
  });
});
