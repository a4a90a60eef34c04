import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { channelIdentityShapes } from '../../src/chat/channels.js';
import { describeRefusal } from '../../src/core/approval/refusals.js';
import { IdentitySyntax, parseApproverLinks } from '../../src/core/approvers.js';
import type { Actor } from '../../src/core/audit/index.js';
import type { Clock } from '../../src/core/clock.js';
import type { PolicyDecision } from '../../src/core/policy/index.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { ChannelRegistry, type ChannelUser } from '../../src/services/approvals/channel.js';
import { ApprovalService } from '../../src/services/approvals/service.js';
import { ApproverService } from '../../src/services/approvers.js';
import { AuditService } from '../../src/services/audit.js';
import { PermissionService } from '../../src/services/permissions.js';
import { PersonDirectory } from '../../src/services/persons.js';
import type { Agent } from '../../src/store/agentRepository.js';
import type { Db } from '../../src/store/db.js';
import { appError } from '../helpers/appError.js';
import { testDatabases } from '../helpers/databases.js';
import { memoryLogger } from '../helpers/memoryLogger.js';
import { RecordingChannel } from '../helpers/recordingChannel.js';

/**
 * Approver accounts (issue 15, first step): a stored person makes one person of several channel
 * identities, exactly as APPROVER_LINKS does, without a restart — one vote in a quorum across
 * Slack and Discord, the self-approval ban under every identity — and every change is audited.
 */

const T0 = new Date('2026-03-03T12:00:00.000Z');
const SLACK_ALICE = 'U0ALICE';
const DISCORD_ALICE = '111111111111111111';
const SLACK_BOB = 'U0BOB';
const SLACK_CAROL = 'U0CAROL';
const DISCORD_CAROL = '333333333333333333';

/** Carol is linked the old way, in the environment. */
const CONFIGURED = parseApproverLinks(
  `carol=slack:${SLACK_CAROL},discord:${DISCORD_CAROL}`,
  channelIdentityShapes(),
);

function harness(db: Db) {
  const clock: Clock = { now: () => T0 };
  const decision: PolicyDecision = {
    decision: 'require_approval',
    policy: { id: 'pol_two', name: 'two people' },
    reason: 'two people decide',
    approval: { quorum: 2 },
  };
  const audit = new AuditService(db, clock);
  const agents = new AgentService(db, audit, clock);
  const persons = new PersonDirectory(db, memoryLogger().logger, CONFIGURED);
  const accounts = new ApproverService(
    db,
    audit,
    clock,
    new IdentitySyntax(channelIdentityShapes()),
    CONFIGURED,
  );
  accounts.onChange(() => persons.load());
  const permissions = new PermissionService(db, audit, { evaluate: () => decision }, clock, {
    approvalTimeoutSeconds: 900,
    requireActionDetails: false,
    approverLinks: persons.links,
  });
  const slack = new RecordingChannel('slack', {
    channel: 'C1',
    approvers: [SLACK_ALICE, SLACK_BOB, SLACK_CAROL],
  });
  const discord = new RecordingChannel('discord', {
    channel: '222222222222222222',
    approvers: [DISCORD_ALICE, DISCORD_CAROL],
  });
  const channels = new ChannelRegistry();
  channels.register(slack);
  channels.register(discord);
  const approvals = new ApprovalService(
    db,
    permissions,
    audit,
    channels,
    memoryLogger().logger,
    persons.links,
  );
  return { audit, agents, accounts, persons, permissions, approvals, slack, discord };
}

describe.each(testDatabases())('approver accounts on $name', (database) => {
  let db: Db;
  let agent: Agent;
  let h: ReturnType<typeof harness>;
  const operator: RequestOrigin = {
    actor: { type: 'operator', id: 'opk_admin', name: 'admin', platform: 'api' },
    ip: '127.0.0.1',
  };

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    await db.query('DELETE FROM approvers');
    h = harness(db);
    await h.persons.load();
    agent = (await h.agents.create({ name: `agent-${Date.now()}${Math.random()}` }, operator)).agent;
  });

  const alice = () =>
    h.accounts.create(
      {
        name: 'alice',
        email: 'alice@example.com',
        identities: [`slack:${SLACK_ALICE}`, `discord:${DISCORD_ALICE}`],
      },
      operator,
    );

  async function pending(context: Record<string, unknown> = {}) {
    const { permission } = await h.permissions.request(
      agent,
      { action: 'deploy.production', context },
      { actor: { type: 'agent', id: agent.id } },
    );
    expect(permission.status).toBe('pending');
    return permission;
  }

  const click = async (permissionId: string, user: ChannelUser) => {
    const result = await h.approvals.decideAs({ kind: 'channel', user }, { permissionId, approved: true });
    return result.kind === 'refused'
      ? { kind: 'refused', message: describeRefusal(result.refusal) }
      : { kind: result.kind };
  };

  const status = async (id: string) =>
    (await h.permissions.get({ operator: true }, id, operator)).permission.status;

  async function events(type: string, where = 'TRUE', params: unknown[] = []) {
    await h.audit.drain();
    const { rows } = await db.query<{ actor: Actor; details: Record<string, unknown> }>(
      `SELECT actor, details FROM audit_events WHERE type = $1 AND ${where} ORDER BY seq`,
      [type, ...params],
    );
    return rows;
  }

  it('a stored approver with Slack and Discord identities votes once in a quorum of 2', async () => {
    await alice();
    const p = await pending();
    expect(await click(p.id, h.slack.user(SLACK_ALICE))).toEqual({ kind: 'decided' });
    // Her Discord click is the same person's second try: nothing changes.
    expect(await click(p.id, h.discord.user(DISCORD_ALICE))).toEqual({ kind: 'unchanged' });
    expect(await status(p.id)).toBe('pending');
    const [vote] = await events('approval_vote', 'permission_id = $2', [p.id]);
    expect(vote?.actor).toMatchObject({ platform: 'slack', userId: SLACK_ALICE, person: 'alice' });

    expect(await click(p.id, h.slack.user(SLACK_BOB))).toEqual({ kind: 'decided' });
    expect(await status(p.id)).toBe('approved');
    const [approve] = await events('approve', 'permission_id = $2', [p.id]);
    expect(approve?.details.approvers).toEqual(['person:alice', `slack:${SLACK_BOB}`]);
  });

  it('an account created while a request waits counts the vote already cast (no restart)', async () => {
    const p = await pending();
    expect(await click(p.id, h.discord.user(DISCORD_ALICE))).toEqual({ kind: 'decided' });
    await alice();
    expect(await click(p.id, h.slack.user(SLACK_ALICE))).toEqual({ kind: 'unchanged' });
    expect(await status(p.id)).toBe('pending');
    // Unlinking her Slack identity makes it a person of its own again: its click is a second vote.
    await h.accounts.update('alice', { removeIdentities: [`slack:${SLACK_ALICE}`] }, operator);
    expect(await click(p.id, h.slack.user(SLACK_ALICE))).toEqual({ kind: 'decided' });
    expect(await status(p.id)).toBe('approved');
  });

  it('the self-approval ban covers every identity of the stored person, named any way', async () => {
    const { id } = await alice();
    const asked: string[] = [];
    for (const requester of ['alice', 'person:ALICE', SLACK_ALICE, `discord:${DISCORD_ALICE}`]) {
      const p = await pending({ user_id: requester });
      asked.push(p.id);
      for (const user of [h.slack.user(SLACK_ALICE), h.discord.user(DISCORD_ALICE)]) {
        const answer = await click(p.id, user);
        expect(answer.kind, `${requester} clicked as ${user.channel}`).toBe('refused');
      }
      expect(await status(p.id)).toBe('pending');
    }
    const refusals = await events('unauthorized_approver', 'permission_id = ANY($2::text[])', [asked]);
    expect(refusals).toHaveLength(8);
    expect(refusals.every((r) => r.actor.person === 'alice')).toBe(true);
    // A disabled account is still one person: disabling never opens the ban.
    await h.accounts.disable(id, operator);
    const p = await pending({ user_id: SLACK_ALICE });
    expect((await click(p.id, h.discord.user(DISCORD_ALICE))).kind).toBe('refused');
  });

  it('a disabled approver is still one vote; a deleted one is a person per identity again', async () => {
    await alice();
    const disabled = await h.accounts.disable('ALICE', operator);
    expect(disabled.status).toBe('disabled');
    const p = await pending();
    expect(await click(p.id, h.slack.user(SLACK_ALICE))).toEqual({ kind: 'decided' });
    expect(await click(p.id, h.discord.user(DISCORD_ALICE))).toEqual({ kind: 'unchanged' });

    await h.accounts.delete('alice', operator);
    const q = await pending();
    expect(await click(q.id, h.slack.user(SLACK_ALICE))).toEqual({ kind: 'decided' });
    expect(await click(q.id, h.discord.user(DISCORD_ALICE))).toEqual({ kind: 'decided' });
    expect(await status(q.id)).toBe('approved');
  });

  it('refuses a taken name, a taken identity and a malformed identity with stable codes', async () => {
    const { id } = await alice();
    const sameName = await appError(h.accounts.create({ name: 'Alice', identities: [] }, operator));
    expect([sameName.code, sameName.details]).toEqual([
      'APPROVER_NAME_TAKEN',
      { name: 'Alice', approverId: id },
    ]);

    const sameIdentity = await appError(
      h.accounts.create({ name: 'mallory', identities: [`discord:${DISCORD_ALICE}`] }, operator),
    );
    expect(sameIdentity.code).toBe('APPROVER_IDENTITY_TAKEN');
    expect(sameIdentity.message).toContain(`"alice" (${id})`);

    // APPROVER_LINKS's persons and identities are taken too: they would split or merge votes.
    const envIdentity = await appError(
      h.accounts.create({ name: 'mallory', identities: [`slack:${SLACK_CAROL}`] }, operator),
    );
    expect([envIdentity.code, envIdentity.details]).toEqual([
      'APPROVER_IDENTITY_TAKEN',
      { identity: `slack:${SLACK_CAROL}`, person: 'carol', source: 'APPROVER_LINKS' },
    ]);
    const envName = await appError(h.accounts.create({ name: 'CAROL' }, operator));
    expect(envName.code).toBe('APPROVER_NAME_TAKEN');
    expect(envName.message).toContain('APPROVER_LINKS');

    const malformed = await appError(
      h.accounts.create({ name: 'dave', identities: ['slack:alice'] }, operator),
    );
    expect(malformed.code).toBe('VALIDATION_ERROR');
    expect(malformed.message).toContain('expected slack:U…/W…, discord:<user id> or operator:opk_…');
    const unknownChannel = await appError(
      h.accounts.create({ name: 'dave', identities: ['teams:42'] }, operator),
    );
    expect(unknownChannel.code).toBe('VALIDATION_ERROR');

    // Another approver's identity, by update; and racing creates of one identity: one wins.
    const bob = await h.accounts.create({ name: 'bob', identities: [`slack:${SLACK_BOB}`] }, operator);
    expect(
      (await appError(h.accounts.update(bob.id, { addIdentities: [`slack:${SLACK_ALICE}`] }, operator))).code,
    ).toBe('APPROVER_IDENTITY_TAKEN');
    const rename = await appError(h.accounts.update(bob.id, { name: 'ALICE' }, operator));
    expect([rename.code, rename.details]).toEqual(['APPROVER_NAME_TAKEN', { name: 'ALICE', approverId: id }]);
    const race = await Promise.allSettled(
      ['erin', 'frank', 'grace'].map((name) =>
        h.accounts.create({ name, identities: ['discord:444444444444444444'] }, operator),
      ),
    );
    expect(race.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const losers = race.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(losers.map((r) => (r.reason as { code: string }).code)).toEqual([
      'APPROVER_IDENTITY_TAKEN',
      'APPROVER_IDENTITY_TAKEN',
    ]);
    // Nothing of a refused create was stored.
    expect((await h.accounts.list({ limit: 50 })).map((a) => a.name).sort()).toEqual(
      ['alice', 'bob', race.find((r) => r.status === 'fulfilled')?.value.name].sort(),
    );
  });

  it('audits every change with the operator who made it', async () => {
    const created = await alice();
    await h.accounts.update(
      created.id,
      {
        name: 'alice-w',
        email: null,
        addIdentities: ['operator:opk_alice'],
        removeIdentities: [`slack:${SLACK_ALICE}`],
      },
      operator,
    );
    await h.accounts.disable(created.id, operator);
    await h.accounts.disable(created.id, operator);
    await h.accounts.enable(created.id, operator);
    await h.accounts.delete(created.id, operator);
    await h.audit.drain();
    const { rows } = await db.query<{
      type: string;
      actor: Actor;
      details: Record<string, unknown>;
      ip: string;
    }>(
      `SELECT type, actor, details, ip FROM audit_events
        WHERE type LIKE 'approver.%' AND details->>'approverId' = $1 ORDER BY seq`,
      [created.id],
    );
    // Disabling twice records once: the second changed nothing.
    expect(rows.map((r) => r.type)).toEqual([
      'approver.created',
      'approver.updated',
      'approver.disabled',
      'approver.enabled',
      'approver.deleted',
    ]);
    expect(
      rows.every((r) => r.actor.type === 'operator' && r.actor.id === 'opk_admin' && r.ip === '127.0.0.1'),
    ).toBe(true);
    expect(rows[0]?.details).toEqual({
      approverId: created.id,
      name: 'alice',
      identities: [`discord:${DISCORD_ALICE}`, `slack:${SLACK_ALICE}`],
      email: true,
    });
    expect(rows[1]?.details).toEqual({
      approverId: created.id,
      name: 'alice-w',
      previousName: 'alice',
      fields: ['email', 'name'],
      added: ['operator:opk_alice'],
      removed: [`slack:${SLACK_ALICE}`],
    });
    expect(await appError(h.accounts.get(created.id))).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('a rename is the name the person votes under from then on', async () => {
    const { id } = await alice();
    await h.accounts.update(id, { name: 'alice-r' }, operator);
    const p = await pending({ user_id: 'alice-r' });
    expect((await click(p.id, h.discord.user(DISCORD_ALICE))).kind).toBe('refused');
    const q = await pending();
    await click(q.id, h.discord.user(DISCORD_ALICE));
    const [vote] = await events('approval_vote', 'permission_id = $2', [q.id]);
    expect(vote?.actor.person).toBe('alice-r');
  });

  it('another instance follows once it reloads (what the approvers-changed message triggers)', async () => {
    const other = new PersonDirectory(db, memoryLogger().logger, CONFIGURED);
    await other.load();
    const before = other.links();
    await alice();
    expect(other.links()).toBe(before);
    await other.load();
    expect(other.links().persons.get(`discord:${DISCORD_ALICE}`)).toBe('alice');
    expect(other.links().persons.get(`slack:${SLACK_CAROL}`)).toBe('carol');
  });
});
