import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ApprovalCard } from '../../src/chat/card.js';
import { channelIdentityShapes } from '../../src/chat/channels.js';
import { describeRefusal } from '../../src/core/approval/refusals.js';
import { type ApproverLinks, NO_LINKS, parseApproverLinks } from '../../src/core/approvers.js';
import type { Actor } from '../../src/core/audit/index.js';
import type { Clock } from '../../src/core/clock.js';
import type { PolicyDecision } from '../../src/core/policy/index.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import {
  type ApprovalChannel,
  ChannelRegistry,
  type ChannelUser,
} from '../../src/services/approvals/channel.js';
import { ApprovalService } from '../../src/services/approvals/service.js';
import { AuditService } from '../../src/services/audit.js';
import { PermissionService } from '../../src/services/permissions.js';
import type { Agent } from '../../src/store/agentRepository.js';
import type { Db } from '../../src/store/db.js';
import { appError } from '../helpers/appError.js';
import { testDatabases } from '../helpers/databases.js';
import { memoryLogger } from '../helpers/memoryLogger.js';

/** The user-id syntax of the channels this build has (src/chat/channels.ts). */
const SHAPES = channelIdentityShapes();

/**
 * One person, one vote (issue 11, defect 2): the rules over approvers — quorum, "already decided
 * by you", the self-approval ban — run through ApprovalService and PermissionService exactly as
 * Slack and Discord reach them, with an in-memory chat platform in place of the adapters.
 */

const T0 = new Date('2025-03-03T12:00:00.000Z');
const SLACK_ALICE = 'U0ALICE';
const SLACK_BOB = 'U0BOB';
const DISCORD_ALICE = '111111111111111111';
const DISCORD_CAROL = '333333333333333333';

const LINKS = parseApproverLinks(`alice=slack:${SLACK_ALICE},discord:${DISCORD_ALICE}`, SHAPES);

class MemoryPlatform implements ApprovalChannel {
  constructor(
    readonly name: string,
    readonly defaults: { channel: string | null; approvers: string[] },
  ) {}
  approverEntry(entry: string) {
    return { kind: 'user' as const, id: entry };
  }
  targetEntry(entry: string) {
    return { kind: 'channel' as const, id: entry };
  }
  async post(_channel: string, _card: ApprovalCard) {
    return { messageRef: 'm1', permalink: null };
  }
  async update(): Promise<void> {}
  async notice(): Promise<void> {}
  async memberOfAny(): Promise<boolean> {
    return false;
  }
}

const slack = (userId: string, teamId?: string): ChannelUser => ({
  channel: 'slack',
  userId,
  userName: userId.toLowerCase(),
  ...(teamId ? { teamId } : {}),
});
const discord = (userId: string, guildId?: string): ChannelUser => ({
  channel: 'discord',
  userId,
  userName: `d${userId.slice(0, 4)}`,
  ...(guildId ? { guildId } : {}),
});

function harness(db: Db, links: ApproverLinks) {
  const clock: Clock = { now: () => T0 };
  const decision: PolicyDecision = {
    decision: 'require_approval',
    policy: { id: 'pol_quorum', name: 'two people' },
    reason: 'two people decide',
    approval: { quorum: 2 },
  };
  const audit = new AuditService(db, clock);
  const agents = new AgentService(db, audit, clock);
  const permissions = new PermissionService(db, audit, { evaluate: () => decision }, clock, {
    approvalTimeoutSeconds: 900,
    requireActionDetails: false,
    approverLinks: links,
  });
  const channels = new ChannelRegistry();
  channels.register(new MemoryPlatform('slack', { channel: 'C1', approvers: [SLACK_ALICE, SLACK_BOB] }));
  channels.register(
    new MemoryPlatform('discord', {
      channel: '222222222222222222',
      approvers: [DISCORD_ALICE, DISCORD_CAROL],
    }),
  );
  const approvals = new ApprovalService(db, permissions, audit, channels, memoryLogger().logger, links);
  return { audit, agents, permissions, approvals };
}

describe.each(testDatabases())('one person, one vote on $name', (database) => {
  let db: Db;
  let agent: Agent;
  let h: ReturnType<typeof harness>;

  const operator: RequestOrigin = { actor: { type: 'operator', id: 'opk_admin', name: 'admin' } };

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    h = harness(db, LINKS);
    agent = (await h.agents.create({ name: `agent-${Date.now()}${Math.random()}` }, operator)).agent;
  });

  async function pending(context: Record<string, unknown> = {}) {
    const { permission } = await h.permissions.request(
      agent,
      { action: 'deploy.production', context },
      { actor: { type: 'agent', id: agent.id } },
    );
    expect(permission.status).toBe('pending');
    return permission;
  }

  /** A chat click, as the outcome a channel words: decided, unchanged, closed, or refused. */
  const click = async (permissionId: string, user: ChannelUser, approved = true) => {
    const result = await h.approvals.decideAs({ kind: 'channel', user }, { permissionId, approved });
    if (result.kind !== 'refused') return { kind: result.kind };
    if (result.refusal.reason === 'closed') return { kind: 'closed' };
    return { kind: 'refused', message: describeRefusal(result.refusal) };
  };

  async function status(id: string) {
    return (await h.permissions.get({ operator: true }, id, operator)).permission;
  }

  async function events(id: string, type: string) {
    const { rows } = await db.query<{ actor: Actor; details: Record<string, unknown> }>(
      'SELECT actor, details FROM audit_events WHERE permission_id = $1 AND type = $2 ORDER BY seq',
      [id, type],
    );
    return rows;
  }

  it('the same Slack user from another workspace, or from none, is one vote', async () => {
    const p = await pending();
    expect(await click(p.id, slack(SLACK_BOB, 'T1'))).toMatchObject({ kind: 'decided' });
    // An org-wide install or a shared channel sends no team, another workspace another team id.
    expect(await click(p.id, slack(SLACK_BOB))).toMatchObject({ kind: 'unchanged' });
    expect(await click(p.id, slack(SLACK_BOB, 'T2'))).toMatchObject({ kind: 'unchanged' });
    expect((await status(p.id)).status).toBe('pending');
    expect(await events(p.id, 'approval_vote')).toHaveLength(1);
    // A second person completes the quorum.
    expect(await click(p.id, slack(SLACK_ALICE, 'T1'))).toMatchObject({ kind: 'decided' });
    expect((await status(p.id)).status).toBe('approved');
  });

  it('the same Discord member with and without a guild is one vote', async () => {
    const p = await pending();
    expect(await click(p.id, discord(DISCORD_CAROL, '999999999999999999'))).toMatchObject({
      kind: 'decided',
    });
    expect(await click(p.id, discord(DISCORD_CAROL))).toMatchObject({ kind: 'unchanged' });
    expect((await status(p.id)).status).toBe('pending');
  });

  it('a linked person is one vote across platforms, and the audit names the person', async () => {
    const p = await pending();
    expect(await click(p.id, slack(SLACK_ALICE, 'T1'))).toMatchObject({ kind: 'decided' });
    expect(await click(p.id, discord(DISCORD_ALICE, '999999999999999999'))).toMatchObject({
      kind: 'unchanged',
    });
    expect((await status(p.id)).status).toBe('pending');
    const [vote] = await events(p.id, 'approval_vote');
    expect(vote?.actor).toMatchObject({ platform: 'slack', userId: SLACK_ALICE, person: 'alice' });

    expect(await click(p.id, discord(DISCORD_CAROL))).toMatchObject({ kind: 'decided' });
    const approved = await status(p.id);
    expect(approved.status).toBe('approved');
    const [approve] = await events(p.id, 'approve');
    expect(approve?.details.approvers).toEqual(['person:alice', `discord:${DISCORD_CAROL}`]);
    // Repeating her approval on the other platform after the decision is a no-op, not a conflict.
    expect(await click(p.id, discord(DISCORD_ALICE))).toMatchObject({ kind: 'unchanged' });
  });

  it('a vote stored under the old key (platform:team:user) still counts as that person', async () => {
    const p = await pending();
    // As an earlier version stored it, in flight during the upgrade.
    const old = {
      key: `slack:T1:${SLACK_BOB}`,
      actor: { type: 'approver', platform: 'slack', teamId: 'T1', userId: SLACK_BOB, userName: 'bob' },
      at: T0.toISOString(),
    };
    await db.query('UPDATE permissions SET approvals = $2::jsonb WHERE id = $1', [
      p.id,
      JSON.stringify([old]),
    ]);
    expect(await click(p.id, slack(SLACK_BOB))).toMatchObject({ kind: 'unchanged' });
    expect(await click(p.id, slack(SLACK_BOB, 'T9'))).toMatchObject({ kind: 'unchanged' });
    expect((await status(p.id)).status).toBe('pending');

    // Two old records of one person (the defect itself, before the upgrade) are still one vote.
    const dup = { ...old, key: `slack::${SLACK_BOB}`, actor: { ...old.actor, teamId: undefined } };
    await db.query('UPDATE permissions SET approvals = $2::jsonb WHERE id = $1', [
      p.id,
      JSON.stringify([old, dup]),
    ]);
    expect(await click(p.id, slack(SLACK_BOB))).toMatchObject({ kind: 'unchanged' });
    expect((await status(p.id)).status).toBe('pending');
    expect(await click(p.id, slack(SLACK_ALICE))).toMatchObject({ kind: 'decided' });
    const approved = await status(p.id);
    expect(approved.status).toBe('approved');
    expect(approved.approvals.map((a) => a.actor.userId)).toEqual([SLACK_BOB, SLACK_ALICE]);
  });

  it('repeating a decision from another workspace is "unchanged", not a conflicting decision', async () => {
    h = harness(db, NO_LINKS);
    const single = await h.permissions.request(
      agent,
      { action: 'deploy.production' },
      { actor: { type: 'agent', id: agent.id } },
    );
    const id = single.permission.id;
    await h.permissions.decide({
      permissionId: id,
      approved: false,
      approver: { type: 'approver', platform: 'slack', teamId: 'T1', userId: SLACK_BOB, userName: 'bob' },
      origin: operator,
    });
    expect(await click(id, slack(SLACK_BOB), false)).toMatchObject({ kind: 'unchanged' });
    expect(await click(id, slack(SLACK_BOB, 'T2'), false)).toMatchObject({ kind: 'unchanged' });
    // The opposite decision is still refused as already decided.
    expect(await click(id, slack(SLACK_BOB), true)).toMatchObject({ kind: 'closed' });
  });

  it('the self-approval ban covers every linked identity of the requester', async () => {
    for (const requester of [
      SLACK_ALICE,
      `slack:${SLACK_ALICE}`,
      'alice',
      'Alice',
      `discord:${DISCORD_ALICE}`,
    ]) {
      const p = await pending({ user_id: requester });
      expect(await click(p.id, discord(DISCORD_ALICE)), requester).toMatchObject({
        kind: 'refused',
        message: 'You cannot approve a request made on your behalf.',
      });
      expect(await click(p.id, slack(SLACK_ALICE, 'T1')), requester).toMatchObject({ kind: 'refused' });
      expect((await status(p.id)).approvals).toEqual([]);
      const [refusal] = await events(p.id, 'unauthorized_approver');
      expect(refusal?.actor).toMatchObject({ person: 'alice' });
    }
    // Someone else may approve it.
    const p = await pending({ user_id: SLACK_ALICE });
    expect(await click(p.id, slack(SLACK_BOB))).toMatchObject({ kind: 'decided' });
  });

  it('the ban holds on every channel: an operator key linked to the requester cannot decide', async () => {
    // alice also holds an operator key: the API and the CLI reach decide() with that identity.
    const links = parseApproverLinks(`alice=slack:${SLACK_ALICE},operator:opk_alice`, SHAPES);
    h = harness(db, links);
    const alice: RequestOrigin = { actor: { type: 'operator', id: 'opk_alice', name: 'alice-laptop' } };
    const p = await pending({ user_id: `slack:${SLACK_ALICE}` });
    for (const approved of [true, false]) {
      const refused = await appError(
        h.permissions.decide({ permissionId: p.id, approved, approver: alice.actor, origin: alice }),
      );
      expect(refused.code).toBe('FORBIDDEN');
    }
    expect((await status(p.id)).status).toBe('pending');
    const refusals = await events(p.id, 'unauthorized_approver');
    expect(refusals.map((r) => r.details.attempted)).toEqual(['approve', 'deny']);
    expect(refusals[0]?.actor).toMatchObject({ id: 'opk_alice', person: 'alice' });
    // Another operator may.
    const other = await h.permissions.decide({
      permissionId: p.id,
      approved: true,
      approver: operator.actor,
      origin: operator,
    });
    expect(other.changed).toBe(true); // counted (this harness's policy needs a quorum of 2)
    expect(other.approvals.count).toBe(1);
  });
});
