import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeRefusal, SELF_APPROVAL_TEXT } from '../../src/core/approval/refusals.js';
import { type IdentityShape, NO_LINKS, parseApproverLinks } from '../../src/core/approvers.js';
import type { Actor } from '../../src/core/audit/index.js';
import { AppError } from '../../src/core/errors.js';
import type { Permission } from '../../src/core/permission.js';
import type { PolicyDecision } from '../../src/core/policy/index.js';
import type { ApprovalSettings } from '../../src/core/policy/types.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { ChannelRegistry, type ChannelUser } from '../../src/services/approvals/channel.js';
import { ApprovalMessages } from '../../src/services/approvals/messages.js';
import { type ApprovalJobs, ApprovalScheduler } from '../../src/services/approvals/scheduler.js';
import {
  ApprovalService,
  type DecisionInput,
  type DecisionResult,
} from '../../src/services/approvals/service.js';
import { AuditService } from '../../src/services/audit.js';
import { PermissionService } from '../../src/services/permissions.js';
import type { Agent } from '../../src/store/agentRepository.js';
import type { Db } from '../../src/store/db.js';
import { findPermission } from '../../src/store/permissionRepository.js';
import { appError } from '../helpers/appError.js';
import { testDatabases } from '../helpers/databases.js';
import { FakeClock } from '../helpers/fakeClock.js';
import { memoryLogger } from '../helpers/memoryLogger.js';
import { RecordingChannel } from '../helpers/recordingChannel.js';

/**
 * The approval rules (DESIGN §13, issue 14) through ApprovalService, ApprovalMessages and
 * ApprovalScheduler as every channel reaches them, on both databases, with in-memory recording
 * channels in place of Slack and Discord: no process, no wire fake. Each test checks what a user
 * would notice — the answer to the click, the stored permission, the audit trail, and what the
 * channels were asked to post, edit or note.
 *
 * Two configured channels, `chat` (which claims bare targets, as Slack does) and `team`; `mail`
 * is known to this build but not configured, as Discord is where no bot token is set.
 */

const T0 = '2025-03-03T12:00:00.000Z';
const APPROVAL_TIMEOUT_SECONDS = 900;
const KNOWN_CHANNELS = ['chat', 'team', 'mail'];
const RECORDING_SHAPE: IdentityShape = { pattern: /^[A-Za-z0-9-]{1,64}$/, hint: '<id>' };
const SHAPES = { chat: RECORDING_SHAPE, team: RECORDING_SHAPE, mail: RECORDING_SHAPE };
const operatorOrigin: RequestOrigin = { actor: { type: 'operator', id: 'opk_admin', name: 'admin' } };

interface Setup {
  /** The matching policy's approval settings (a require_approval decision). */
  approval?: ApprovalSettings;
  /** Another policy decision altogether (auto_approve, deny). */
  decision?: PolicyDecision;
  /** Registered channels (default: none). */
  channels?: RecordingChannel[];
  /** APPROVER_LINKS. */
  links?: string;
}

/** The services as main.ts wires them, over recording channels. */
function harness(db: Db, setup: Setup = {}) {
  const clock = new FakeClock(T0);
  const decision: PolicyDecision = setup.decision ?? {
    decision: 'require_approval',
    policy: { id: 'pol_rules', name: 'a human decides' },
    reason: 'a human decides',
    ...(setup.approval ? { approval: setup.approval } : {}),
  };
  const links = setup.links ? parseApproverLinks(setup.links, SHAPES) : NO_LINKS;
  const audit = new AuditService(db, clock);
  const agents = new AgentService(db, audit, clock);
  const permissions = new PermissionService(db, audit, { evaluate: () => decision }, clock, {
    approvalTimeoutSeconds: APPROVAL_TIMEOUT_SECONDS,
    requireActionDetails: false,
    approverLinks: links,
  });
  const channels = new ChannelRegistry(KNOWN_CHANNELS);
  for (const channel of setup.channels ?? []) channels.register(channel);
  const { logger } = memoryLogger();
  const approvals = new ApprovalService(db, permissions, audit, channels, logger, links);
  const messages = new ApprovalMessages(db, channels, clock, logger);
  return { clock, audit, agents, permissions, channels, approvals, messages };
}
type Harness = ReturnType<typeof harness>;

/** An ApprovalJobs that records what was scheduled, in order, and runs nothing. */
function recordingJobs() {
  const calls: string[] = [];
  const soon: string[] = [];
  const jobs: ApprovalJobs = {
    notify: async (id) => void calls.push(`notify ${id}`),
    messageUpdate: async (p) => void calls.push(`messageUpdate ${p.id} ${p.status}:${p.approvals.length}`),
    messageRedraw: async (id, eventId) => void calls.push(`messageRedraw ${id} ${eventId}`),
    expireAt: async (p) => void calls.push(`expireAt ${p.id} ${p.expiresAt.toISOString()}`),
    remindIn: async (id, seconds) => void calls.push(`remindIn ${id} ${seconds}`),
    escalateIn: async (id, seconds) => void calls.push(`escalateIn ${id} ${seconds}`),
    soon: (what, work) => {
      soon.push(what);
      void work;
    },
  };
  return { jobs, calls, soon };
}

const at = (seconds: number) => new Date(Date.parse(T0) + seconds * 1000).toISOString();

describe.each(testDatabases())('ApprovalService rules on $name', (database) => {
  let db: Db;
  let h: Harness;
  let agent: Agent;

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await db?.close();
  });

  /** A fresh harness and agent for one test. */
  async function setup(s: Setup = {}): Promise<Harness> {
    h = harness(db, s);
    agent = (await h.agents.create({ name: `agent-${Date.now()}-${Math.random()}` }, operatorOrigin)).agent;
    return h;
  }

  async function request(
    input: { context?: Record<string, unknown>; scope?: Record<string, unknown> } = {},
  ): Promise<Permission> {
    const { permission } = await h.permissions.request(
      agent,
      { action: 'deploy.production', ...input },
      { actor: { type: 'agent', id: agent.id } },
    );
    return permission;
  }

  async function pending(input: Parameters<typeof request>[0] = {}): Promise<Permission> {
    const permission = await request(input);
    expect(permission.status).toBe('pending');
    return permission;
  }

  const click = (
    user: ChannelUser,
    permissionId: string,
    approved = true,
    extra: Omit<DecisionInput, 'permissionId' | 'approved'> = {},
  ) => h.approvals.decideAs({ kind: 'channel', user }, { permissionId, approved, ...extra });

  const asOperator = (origin: RequestOrigin, permissionId: string, approved = true) =>
    h.approvals.decideAs({ kind: 'operator', origin }, { permissionId, approved });

  async function stored(id: string): Promise<Permission> {
    const permission = await findPermission(db, id);
    if (!permission) throw new Error(`${id} is not stored`);
    return permission;
  }

  async function events(id: string) {
    const { rows } = await db.query<{ type: string; actor: Actor; details: Record<string, unknown> }>(
      'SELECT type, actor, details FROM audit_events WHERE permission_id = $1 ORDER BY seq',
      [id],
    );
    return rows;
  }
  const eventTypes = async (id: string) => (await events(id)).map((e) => e.type);

  /** The refusal of a result that must be one, with the AppError the API would answer. */
  function refusalOf(result: DecisionResult) {
    if (result.kind !== 'refused') throw new Error(`expected a refusal, got ${result.kind}`);
    expect(result.error).toBeInstanceOf(AppError);
    return { ...result.refusal, code: result.error.code, message: result.error.message };
  }

  /** A refused click left the request as it was, audited once as `unauthorized_approver`. */
  async function expectRefusedAndAudited(
    id: string,
    actor: Partial<Actor>,
    reason: string,
    attempted: string,
  ) {
    const permission = await stored(id);
    expect(permission.status).toBe('pending');
    expect(permission.approvals).toEqual([]);
    expect(await eventTypes(id)).toEqual(['request', 'unauthorized_approver']);
    const [, refused] = await events(id);
    expect(refused?.actor).toMatchObject({ type: 'approver', ...actor });
    expect(refused?.details).toEqual({ reason, attempted });
  }

  describe('who may approve', () => {
    it("the policy's approvers, prefixed with the channel or bare, may decide", async () => {
      const chat = new RecordingChannel('chat');
      const team = new RecordingChannel('team');
      await setup({ channels: [chat, team], approval: { approvers: ['chat:U1', 'U2'] } });

      const byPrefixed = await pending();
      const first = await click(chat.user('U1', 'una'), byPrefixed.id);
      expect(first).toMatchObject({ kind: 'decided', approvals: { count: 1, required: 1 } });
      expect((await stored(byPrefixed.id)).status).toBe('approved');
      const approve = (await events(byPrefixed.id)).find((e) => e.type === 'approve');
      expect(approve?.actor).toEqual({ type: 'approver', platform: 'chat', userId: 'U1', userName: 'una' });
      expect(approve?.details.approvers).toEqual(['chat:U1']);

      // A bare id is offered to every channel, matching that channel's user of that id.
      const byBare = await pending();
      expect(await click(chat.user('U2'), byBare.id, false)).toMatchObject({ kind: 'decided' });
      expect((await stored(byBare.id)).status).toBe('denied');
      const onTeam = await pending();
      expect(await click(team.user('U2'), onTeam.id)).toMatchObject({ kind: 'decided' });
      expect((await stored(onTeam.id)).decidedBy).toMatchObject({ platform: 'team', userId: 'U2' });
    });

    it("without approvers in the policy, each channel's own defaults decide", async () => {
      const chat = new RecordingChannel('chat', { channel: null, approvers: ['U1'] });
      const team = new RecordingChannel('team', { channel: null, approvers: ['T1'] });
      await setup({ channels: [chat, team], approval: { quorum: 1 } });

      const p = await pending();
      // Defaults are per channel: team's default approver id means nothing on chat.
      expect(refusalOf(await click(chat.user('T1'), p.id))).toMatchObject({
        reason: 'not_an_approver',
        code: 'FORBIDDEN',
      });
      expect(await click(team.user('T1'), p.id)).toMatchObject({ kind: 'decided' });
      const q = await pending();
      expect(await click(chat.user('U1'), q.id)).toMatchObject({ kind: 'decided' });
      expect((await stored(q.id)).status).toBe('approved');
    });

    it('no approvers anywhere: refused as no_approvers, audited, still pending', async () => {
      const chat = new RecordingChannel('chat');
      await setup({ channels: [chat] });
      const p = await pending();
      const refusal = refusalOf(await click(chat.user('U1'), p.id));
      expect(refusal).toEqual({
        reason: 'no_approvers',
        code: 'FORBIDDEN',
        message: 'No approvers are configured for this request.',
      });
      await expectRefusedAndAudited(
        p.id,
        { platform: 'chat', userId: 'U1' },
        'No approvers are configured for this request.',
        'approve',
      );
    });

    it('a stranger is refused as not_an_approver and audited with the reason', async () => {
      const chat = new RecordingChannel('chat', { channel: null, approvers: ['U1'] });
      await setup({ channels: [chat], approval: { approvers: ['chat:U1'] } });
      const p = await pending();
      const refusal = refusalOf(await click(chat.user('U9', 'mallory'), p.id, false));
      expect(refusal).toEqual({
        reason: 'not_an_approver',
        code: 'FORBIDDEN',
        message: 'You are not an approver for this request.',
      });
      await expectRefusedAndAudited(
        p.id,
        { platform: 'chat', userId: 'U9', userName: 'mallory' },
        'You are not an approver for this request.',
        'deny',
      );
    });

    it('a click from a channel that is not configured here is refused as channel_disabled', async () => {
      const chat = new RecordingChannel('chat');
      await setup({ channels: [chat], approval: { approvers: ['mail:M1', 'M1'] } });
      const p = await pending();
      const mailUser: ChannelUser = { channel: 'mail', userId: 'M1', userName: 'mia' };
      expect(refusalOf(await click(mailUser, p.id))).toEqual({
        reason: 'channel_disabled',
        code: 'FORBIDDEN',
        message: 'Approvals are not enabled on this platform.',
      });
      await expectRefusedAndAudited(
        p.id,
        { platform: 'mail', userId: 'M1' },
        'Approvals are not enabled on this platform.',
        'approve',
      );
    });

    it("another channel's prefixed entry is not a bare id on this channel", async () => {
      const chat = new RecordingChannel('chat');
      const team = new RecordingChannel('team');
      await setup({ channels: [chat, team], approval: { approvers: ['chat:U1', 'team:X1', 'mail:X2'] } });
      const p = await pending();
      // chat users who happen to have team's and mail's ids are nobody's approvers here.
      for (const id of ['X1', 'X2', 'team:X1']) {
        expect(refusalOf(await click(chat.user(id), p.id)).reason, id).toBe('not_an_approver');
      }
      expect((await stored(p.id)).status).toBe('pending');
      expect(await click(team.user('X1'), p.id)).toMatchObject({ kind: 'decided' });
    });

    it('links make one person but grant nothing: a linked identity decides only where it is listed', async () => {
      const chat = new RecordingChannel('chat');
      const team = new RecordingChannel('team');
      await setup({
        channels: [chat, team],
        links: 'alice=chat:UA,team:TA',
        approval: { approvers: ['team:TA'] },
      });
      const p = await pending();
      // Alice's chat identity is hers, but only her team identity is an approver of this request.
      expect(refusalOf(await click(chat.user('UA', 'alice-chat'), p.id)).reason).toBe('not_an_approver');
      const [refusal] = (await events(p.id)).filter((e) => e.type === 'unauthorized_approver');
      expect(refusal?.actor).toMatchObject({ platform: 'chat', userId: 'UA', person: 'alice' });
      expect((await stored(p.id)).status).toBe('pending');
      expect(await click(team.user('TA', 'alice-team'), p.id)).toMatchObject({ kind: 'decided' });
      const approved = await stored(p.id);
      expect(approved.status).toBe('approved');
      expect(approved.decidedBy).toMatchObject({ platform: 'team', userId: 'TA', person: 'alice' });
      const approve = (await events(p.id)).find((e) => e.type === 'approve');
      expect(approve?.details.approvers).toEqual(['person:alice']);
    });

    it('an operator key may decide any request, whatever the approver lists say', async () => {
      await setup({ approval: { approvers: ['chat:U1'] } });
      const p = await pending();
      expect(await asOperator(operatorOrigin, p.id)).toMatchObject({ kind: 'decided' });
      const approve = (await events(p.id)).find((e) => e.type === 'approve');
      expect(approve?.actor).toMatchObject({ type: 'operator', id: 'opk_admin' });
      expect((await stored(p.id)).status).toBe('approved');
    });
  });

  describe('groups and roles', () => {
    it("a member of a listed group may decide, by the channel's own membership", async () => {
      const chat = new RecordingChannel('chat');
      const team = new RecordingChannel('team');
      chat.groups.set('ops', ['U5']);
      team.groups.set('ops', ['U6']);
      await setup({ channels: [chat, team], approval: { approvers: ['chat:group:ops'] } });
      const p = await pending();
      // Not in chat's group, and team's group of the same name is not the one listed.
      expect(refusalOf(await click(chat.user('U6'), p.id))).toMatchObject({
        reason: 'not_an_approver',
        code: 'FORBIDDEN',
      });
      expect(refusalOf(await click(team.user('U6'), p.id)).reason).toBe('not_an_approver');
      expect(await click(chat.user('U5'), p.id)).toMatchObject({ kind: 'decided' });
      expect((await stored(p.id)).decidedBy).toMatchObject({ platform: 'chat', userId: 'U5' });
    });

    it("a group from the channel's defaults grants too; a non-member is refused", async () => {
      const chat = new RecordingChannel('chat', { channel: null, approvers: ['group:leads'] });
      chat.groups.set('leads', ['U7']);
      await setup({ channels: [chat] });
      const p = await pending();
      expect(refusalOf(await click(chat.user('U8'), p.id)).reason).toBe('not_an_approver');
      expect(await click(chat.user('U7'), p.id, false)).toMatchObject({ kind: 'decided' });
      expect((await stored(p.id)).status).toBe('denied');
    });
  });

  describe('self-approval', () => {
    const links = 'alice=chat:UA,team:TA';
    const approval: ApprovalSettings = { approvers: ['chat:UA', 'team:TA', 'chat:UB'] };

    it.each(['UA', 'chat:UA', 'team:TA', 'alice', 'ALICE', 'person:alice'])(
      'the requester named as %s cannot decide from either channel',
      async (requester) => {
        const chat = new RecordingChannel('chat');
        const team = new RecordingChannel('team');
        await setup({ channels: [chat, team], links, approval });
        const p = await pending({ context: { user_id: requester } });
        const fromChat = refusalOf(await click(chat.user('UA'), p.id));
        expect(fromChat).toEqual({ reason: 'self_approval', code: 'FORBIDDEN', message: SELF_APPROVAL_TEXT });
        // Nothing recorded but the refusal itself.
        await expectRefusedAndAudited(
          p.id,
          { platform: 'chat', userId: 'UA', person: 'alice' },
          SELF_APPROVAL_TEXT,
          'approve',
        );
        expect(refusalOf(await click(team.user('TA'), p.id, false)).reason).toBe('self_approval');
        expect((await stored(p.id)).status).toBe('pending');
        // Someone else may.
        expect(await click(chat.user('UB'), p.id)).toMatchObject({ kind: 'decided' });
        expect((await stored(p.id)).status).toBe('approved');
      },
    );

    it('an operator key linked to the requester is refused too; another operator is not', async () => {
      await setup({ links: 'alice=chat:UA,operator:opk_alice', approval });
      const alice: RequestOrigin = { actor: { type: 'operator', id: 'opk_alice', name: 'alice-laptop' } };
      const p = await pending({ context: { user_id: 'chat:UA' } });
      expect(refusalOf(await asOperator(alice, p.id, false))).toEqual({
        reason: 'self_approval',
        code: 'FORBIDDEN',
        message: SELF_APPROVAL_TEXT,
      });
      expect((await stored(p.id)).status).toBe('pending');
      const [, refused] = await events(p.id);
      expect(refused).toMatchObject({
        type: 'unauthorized_approver',
        actor: { type: 'operator', id: 'opk_alice', person: 'alice' },
        details: { reason: SELF_APPROVAL_TEXT, attempted: 'deny' },
      });
      expect(await asOperator(operatorOrigin, p.id)).toMatchObject({ kind: 'decided' });
      expect((await stored(p.id)).status).toBe('approved');
    });
  });

  describe('quorum', () => {
    it('two distinct persons: a vote, a repeat that changes nothing, then the approval', async () => {
      const chat = new RecordingChannel('chat');
      await setup({ channels: [chat], approval: { approvers: ['U1', 'U2'], quorum: 2 } });
      const p = await pending();

      expect(await click(chat.user('U1'), p.id)).toMatchObject({
        kind: 'decided',
        permission: { status: 'pending' },
        approvals: { count: 1, required: 2 },
      });
      expect(await click(chat.user('U1'), p.id)).toMatchObject({
        kind: 'unchanged',
        approvals: { count: 1, required: 2 },
      });
      expect((await stored(p.id)).approvals.map((a) => a.actor.userId)).toEqual(['U1']);

      expect(await click(chat.user('U2'), p.id)).toMatchObject({
        kind: 'decided',
        permission: { status: 'approved' },
        approvals: { count: 2, required: 2 },
      });
      const trail = await events(p.id);
      expect(trail.map((e) => e.type)).toEqual(['request', 'approval_vote', 'approve']);
      expect(trail[1]).toMatchObject({
        actor: { platform: 'chat', userId: 'U1' },
        details: { approvals: 1, required: 2 },
      });
      expect(trail[2]).toMatchObject({
        actor: { platform: 'chat', userId: 'U2' },
        details: { approvers: ['chat:U1', 'chat:U2'] },
      });
    });

    it('one linked person from two channels is one vote', async () => {
      const chat = new RecordingChannel('chat');
      const team = new RecordingChannel('team');
      await setup({
        channels: [chat, team],
        links: 'alice=chat:UA,team:TA',
        approval: { approvers: ['chat:UA', 'team:TA', 'team:TB'], quorum: 2 },
      });
      const p = await pending();
      expect(await click(chat.user('UA'), p.id)).toMatchObject({ kind: 'decided' });
      expect(await click(team.user('TA'), p.id)).toMatchObject({
        kind: 'unchanged',
        approvals: { count: 1, required: 2 },
      });
      expect((await stored(p.id)).status).toBe('pending');
      expect(await eventTypes(p.id)).toEqual(['request', 'approval_vote']);
      expect(await click(team.user('TB'), p.id)).toMatchObject({ kind: 'decided' });
      const approve = (await events(p.id)).at(-1);
      expect(approve).toMatchObject({ type: 'approve', details: { approvers: ['person:alice', 'team:TB'] } });
    });

    it('a denial ends the request whatever the votes so far', async () => {
      const chat = new RecordingChannel('chat');
      await setup({ channels: [chat], approval: { approvers: ['U1', 'U2', 'U3'], quorum: 2 } });
      const p = await pending();
      await click(chat.user('U1'), p.id);
      expect(await click(chat.user('U2', 'dee'), p.id, false, { reason: 'not today' })).toMatchObject({
        kind: 'decided',
        permission: { status: 'denied' },
      });
      const denied = await stored(p.id);
      expect(denied).toMatchObject({ status: 'denied', decisionReason: 'not today' });
      expect(denied.decidedBy).toMatchObject({ userId: 'U2' });
      expect(await eventTypes(p.id)).toEqual(['request', 'approval_vote', 'deny']);
      const late = refusalOf(await click(chat.user('U3'), p.id));
      expect(late).toMatchObject({ reason: 'closed', code: 'ALREADY_DECIDED' });
      expect(describeRefusal(late)).toBe('This request was already denied by dee.');
      expect((await stored(p.id)).status).toBe('denied');
    });
  });

  describe('narrowing', () => {
    const scope = { max_amount: 100, max_uses: 3 };

    it('approving with a lower cap stores the narrowed scope and audits the change', async () => {
      const chat = new RecordingChannel('chat');
      await setup({ channels: [chat], approval: { approvers: ['U1'] } });
      const p = await pending({ scope });
      const result = await click(chat.user('U1'), p.id, true, {
        scopeModifications: { max_amount: 40, max_uses: 1 },
      });
      expect(result).toMatchObject({ kind: 'decided', permission: { status: 'approved' } });
      const approved = await stored(p.id);
      expect(approved.scope).toEqual({ max_amount: 40, max_uses: 1 });
      expect(approved.requestedScope).toEqual(scope);
      expect(approved).toMatchObject({ maxUses: 1, usesRemaining: 1 });
      const approve = (await events(p.id)).find((e) => e.type === 'approve');
      expect(approve?.details).toMatchObject({
        scope: { max_amount: 40, max_uses: 1 },
        scopeModifications: { max_amount: 40, max_uses: 1 },
      });
    });

    it('a widening is thrown as SCOPE_WIDENING and changes nothing', async () => {
      const chat = new RecordingChannel('chat');
      await setup({ channels: [chat], approval: { approvers: ['U1'] } });
      const p = await pending({ scope });
      // decideAs returns typed refusals for who may decide; a widening is a bad request, thrown.
      const err = await appError(
        click(chat.user('U1'), p.id, true, { scopeModifications: { max_amount: 500 } }),
      );
      expect(err.code).toBe('SCOPE_WIDENING');
      const operatorErr = await appError(
        h.approvals.decideAs(
          { kind: 'operator', origin: operatorOrigin },
          { permissionId: p.id, approved: true, scopeModifications: { max_uses: 10 } },
        ),
      );
      expect(operatorErr.code).toBe('SCOPE_WIDENING');
      const still = await stored(p.id);
      expect(still).toMatchObject({ status: 'pending', scope, approvals: [] });
      expect(await eventTypes(p.id)).toEqual(['request']);
    });

    it('the "Approve with changes" form is open only while pending', async () => {
      const chat = new RecordingChannel('chat');
      await setup({ channels: [chat], approval: { approvers: ['U1'] } });
      const p = await pending({ scope });
      const open = await h.approvals.changesForm(p.id);
      expect(open).toMatchObject({
        kind: 'open',
        card: { permissionId: p.id, scope, state: { kind: 'pending', approvals: 0, required: 1 } },
      });
      await click(chat.user('U1'), p.id);
      const closed = await h.approvals.changesForm(p.id);
      expect(closed).toMatchObject({
        kind: 'closed',
        refusal: { reason: 'closed', permission: { status: 'approved' } },
      });
      expect(await h.approvals.changesForm('perm_doesnotexist0000000000')).toEqual({
        kind: 'closed',
        refusal: { reason: 'not_found' },
      });
    });
  });

  describe('refusal reasons', () => {
    it('closed: already decided by someone else, naming them', async () => {
      const chat = new RecordingChannel('chat');
      await setup({ channels: [chat], approval: { approvers: ['U1', 'U2'] } });
      const p = await pending();
      await click(chat.user('U1', 'una'), p.id);
      const result = await click(chat.user('U2'), p.id, false);
      if (result.kind !== 'refused' || result.refusal.reason !== 'closed') throw new Error('expected closed');
      expect(result.refusal.permission).toMatchObject({
        id: p.id,
        status: 'approved',
        decidedBy: { userId: 'U1' },
      });
      expect(result.error.code).toBe('ALREADY_DECIDED');
      expect(describeRefusal(result.refusal)).toBe('This request was already approved by una.');
      // The operator path answers the same.
      const op = refusalOf(await asOperator(operatorOrigin, p.id, false));
      expect(op).toMatchObject({ reason: 'closed', code: 'ALREADY_DECIDED' });
      expect((await stored(p.id)).status).toBe('approved');
      expect(await eventTypes(p.id)).toEqual(['request', 'approve']);
    });

    it('expired before the decision: CONFLICT, and the clicker is told it expired', async () => {
      const chat = new RecordingChannel('chat');
      await setup({ channels: [chat], approval: { approvers: ['U1'] } });
      const p = await pending();
      h.clock.advance((APPROVAL_TIMEOUT_SECONDS + 1) * 1000);
      // Past its deadline, not yet swept to `expired` in storage.
      expect((await stored(p.id)).status).toBe('pending');
      const refusal = refusalOf(await click(chat.user('U1'), p.id));
      expect(refusal).toMatchObject({ reason: 'closed', code: 'CONFLICT' });
      expect(describeRefusal(refusal)).toBe('This request has expired.');
      expect(refusalOf(await asOperator(operatorOrigin, p.id)).code).toBe('CONFLICT');
      expect(await eventTypes(p.id)).toEqual(['request']);
    });

    it('not_found: an unknown request, from a channel and from an operator', async () => {
      const chat = new RecordingChannel('chat');
      await setup({ channels: [chat], approval: { approvers: ['U1'] } });
      const auditSize = async () => (await db.query('SELECT 1 FROM audit_events')).rows.length;
      const before = await auditSize();
      for (const id of ['perm_doesnotexist0000000000', 'not-an-id']) {
        expect(refusalOf(await click(chat.user('U1'), id)), id).toMatchObject({
          reason: 'not_found',
          code: 'NOT_FOUND',
        });
        expect(refusalOf(await asOperator(operatorOrigin, id)), id).toMatchObject({
          reason: 'not_found',
          code: 'NOT_FOUND',
        });
      }
      // Nothing to attribute an attempt to: nothing is audited.
      expect(await auditSize()).toBe(before);
    });
  });

  describe('messages', () => {
    async function chatMessages(id: string) {
      const { rows } = await db.query<{ platform: string; channel: string; message_ref: string }>(
        'SELECT platform, channel, message_ref FROM chat_messages WHERE permission_id = $1 ORDER BY platform, channel',
        [id],
      );
      return rows.map((r) => `${r.platform}:${r.channel}:${r.message_ref}`);
    }
    async function followUps(id: string) {
      const { rows } = await db.query<{
        notified_at: Date | null;
        reminded_at: Date | null;
        escalated_at: Date | null;
      }>('SELECT notified_at, reminded_at, escalated_at FROM permissions WHERE id = $1', [id]);
      return rows[0];
    }

    it("notify posts to the policy's channels once, and records the first permalink", async () => {
      const chat = new RecordingChannel(
        'chat',
        { channel: 'C-default', approvers: [] },
        { claimsBareTargets: true },
      );
      const team = new RecordingChannel('team', { channel: 'T-default', approvers: [] });
      await setup({
        channels: [chat, team],
        // A bare entry is chat's (it claims them); a user target and an unconfigured channel post nothing.
        approval: { channels: ['C-ops', 'team:T-ops', 'team:@TB', 'mail:M-ops'], approvers: ['U1'] },
      });
      const p = await pending({ context: { reason: 'release 1.2' } });
      await h.messages.notify(p.id);

      expect(chat.posts.map((m) => m.channel)).toEqual(['C-ops']);
      expect(team.posts.map((m) => m.channel)).toEqual(['T-ops']);
      expect(chat.posts[0]?.card).toMatchObject({
        permissionId: p.id,
        agentName: agent.name,
        action: 'deploy.production',
        reason: 'release 1.2',
        state: { kind: 'pending', approvals: 0, required: 1 },
      });
      expect((await stored(p.id)).approvalUrl).toBe('https://chat.example/C-ops/chat-m1');
      expect(await chatMessages(p.id)).toEqual(['chat:C-ops:chat-m1', 'team:T-ops:team-m1']);
      expect((await followUps(p.id))?.notified_at).toEqual(new Date(T0));

      await h.messages.notify(p.id);
      expect(chat.posts).toHaveLength(1);
      expect(team.posts).toHaveLength(1);
    });

    it("without channels in the policy, notify posts to each channel's default", async () => {
      const chat = new RecordingChannel('chat', { channel: 'C-default', approvers: ['U1'] });
      const team = new RecordingChannel('team', { channel: 'T-default', approvers: [] });
      const quiet = new RecordingChannel('quiet'); // no default channel
      await setup({ channels: [chat, team, quiet] });
      const p = await pending();
      await h.messages.notify(p.id);
      expect(chat.posts.map((m) => m.channel)).toEqual(['C-default']);
      expect(team.posts.map((m) => m.channel)).toEqual(['T-default']);
      expect(quiet.posts).toEqual([]);
      // A decided request is not posted.
      const q = await pending();
      await click(chat.user('U1'), q.id);
      await h.messages.notify(q.id);
      expect(chat.posts).toHaveLength(1);
    });

    it('a failed post throws; the retry posts only the missing message', async () => {
      const chat = new RecordingChannel('chat', { channel: 'C-default', approvers: [] });
      const team = new RecordingChannel('team', { channel: 'T-default', approvers: [] });
      await setup({ channels: [chat, team] });
      const p = await pending();
      team.failPosts = true;
      await expect(h.messages.notify(p.id)).rejects.toThrow(/posting failed.*team:T-default: team is down/);
      expect(chat.posts).toHaveLength(1);
      expect((await followUps(p.id))?.notified_at).toBeNull();
      expect((await stored(p.id)).approvalUrl).toBe('https://chat.example/C-default/chat-m1');

      team.failPosts = false;
      await h.messages.notify(p.id);
      expect(chat.posts).toHaveLength(1);
      expect(team.posts.map((m) => m.channel)).toEqual(['T-default']);
      expect((await followUps(p.id))?.notified_at).not.toBeNull();
      // The first permalink stays the approvalUrl.
      expect((await stored(p.id)).approvalUrl).toBe('https://chat.example/C-default/chat-m1');
    });

    it('syncMessages edits every message once per new state, skipping one the channel edited itself', async () => {
      const chat = new RecordingChannel('chat', { channel: 'C-default', approvers: ['U1', 'U2'] });
      const team = new RecordingChannel('team', { channel: 'T-default', approvers: [] });
      await setup({ channels: [chat, team], approval: { quorum: 2 } });
      const p = await pending();
      await h.messages.notify(p.id);
      await h.messages.syncMessages(p.id);
      expect([...chat.updates, ...team.updates]).toEqual([]); // nothing changed since posting

      await click(chat.user('U1'), p.id);
      await h.messages.syncMessages(p.id);
      expect(chat.updates.map((u) => [u.channel, u.messageRef, u.card.state])).toEqual([
        ['C-default', 'chat-m1', { kind: 'pending', approvals: 1, required: 2 }],
      ]);
      expect(team.updates.map((u) => u.messageRef)).toEqual(['team-m1']);
      await h.messages.syncMessages(p.id);
      expect(chat.updates).toHaveLength(1);
      expect(team.updates).toHaveLength(1);

      const decided = await click(chat.user('U2', 'ursula'), p.id);
      if (decided.kind !== 'decided') throw new Error(`expected decided, got ${decided.kind}`);
      // chat answered the click by editing its own message.
      await h.messages.noteRendered(decided.permission, 'chat', 'C-default');
      await h.messages.syncMessages(p.id);
      expect(chat.updates).toHaveLength(1);
      expect(team.updates.at(-1)?.card.state).toMatchObject({
        kind: 'approved',
        by: { platform: 'chat', userId: 'U2', userName: 'ursula' },
      });
      expect(team.updates).toHaveLength(2);

      // An erasure rewrote what cards show: force redraws every message.
      await h.messages.syncMessages(p.id, { force: true });
      expect(chat.updates).toHaveLength(2);
      expect(team.updates).toHaveLength(3);
    });

    it('remind notes each message, mentioning the user approvers but not groups', async () => {
      const chat = new RecordingChannel('chat', { channel: 'C-default', approvers: [] });
      const team = new RecordingChannel('team', { channel: 'T-default', approvers: [] });
      await setup({
        channels: [chat, team],
        approval: { approvers: ['chat:U1', 'chat:group:ops', 'team:T1', 'U2'], remindAfter: 300 },
      });
      const p = await pending();
      await h.messages.notify(p.id);
      h.clock.advance(300_000);
      await h.messages.remind(p.id);
      const text = 'Reminder: this request is still waiting for a decision.';
      expect(chat.notices).toEqual([
        { channel: 'C-default', messageRef: 'chat-m1', text, mentions: ['U1', 'U2'] },
      ]);
      expect(team.notices).toEqual([
        { channel: 'T-default', messageRef: 'team-m1', text, mentions: ['T1', 'U2'] },
      ]);
      expect((await followUps(p.id))?.reminded_at).toEqual(new Date(at(300)));

      // Decided: no more reminders.
      await click(chat.user('U1'), p.id);
      await h.messages.remind(p.id);
      expect(chat.notices).toHaveLength(1);
    });

    it('escalate posts to an escalateTo channel and mentions an escalateTo user in the thread', async () => {
      const chat = new RecordingChannel(
        'chat',
        { channel: 'C-default', approvers: [] },
        { claimsBareTargets: true },
      );
      const team = new RecordingChannel('team', { channel: 'T-default', approvers: [] });
      await setup({
        channels: [chat, team],
        approval: {
          approvers: ['U1'],
          escalateAfter: 600,
          escalateTo: ['chat:C-escalations', 'team:@TB', '@UB', 'mail:@MB'],
        },
      });
      const p = await pending();
      await h.messages.notify(p.id);
      h.clock.advance(600_000);
      await h.messages.escalate(p.id);

      expect(chat.posts.map((m) => m.channel)).toEqual(['C-default', 'C-escalations']);
      expect(chat.posts[1]?.card).toMatchObject({ permissionId: p.id, state: { kind: 'pending' } });
      const text = 'Escalated: please decide on this request.';
      expect(chat.notices).toEqual([{ channel: 'C-default', messageRef: 'chat-m1', text, mentions: ['UB'] }]);
      expect(team.notices).toEqual([{ channel: 'T-default', messageRef: 'team-m1', text, mentions: ['TB'] }]);
      expect(await chatMessages(p.id)).toEqual([
        'chat:C-default:chat-m1',
        'chat:C-escalations:chat-m2',
        'team:T-default:team-m1',
      ]);
      expect((await followUps(p.id))?.escalated_at).toEqual(new Date(at(600)));

      // The escalation message is edited with the others once decided.
      await click(chat.user('U1'), p.id);
      await h.messages.syncMessages(p.id);
      expect(chat.updates.map((u) => u.messageRef).sort()).toEqual(['chat-m1', 'chat-m2']);
    });

    it("broadcast notes each channel's default channel and says where it went", async () => {
      const chat = new RecordingChannel('chat', { channel: 'C-default', approvers: [] });
      const team = new RecordingChannel('team', { channel: 'T-default', approvers: [] });
      const quiet = new RecordingChannel('quiet');
      await setup({ channels: [chat, team, quiet] });
      expect(await h.messages.broadcast('Unused tokens are piling up')).toEqual([
        'chat:C-default',
        'team:T-default',
      ]);
      const note = { messageRef: null, text: 'Unused tokens are piling up', mentions: [] };
      expect(chat.notices).toEqual([{ channel: 'C-default', ...note }]);
      expect(team.notices).toEqual([{ channel: 'T-default', ...note }]);
      expect(quiet.notices).toEqual([]);
    });
  });

  describe('scheduler', () => {
    /** The scheduler listening to PermissionService as main.ts wires it. */
    async function scheduled(s: Setup) {
      await setup(s);
      const recorded = recordingJobs();
      const scheduler = new ApprovalScheduler(recorded.jobs, h.clock, () => h.channels.enabled);
      h.permissions.onChange((change) => scheduler.onPermissionEvent(change));
      return { ...recorded, scheduler };
    }

    const followUps: ApprovalSettings = { approvers: ['U1'], remindAfter: 300, escalateAfter: 600 };

    it('a pending request: expiry always, and posting, reminder and escalation with channels', async () => {
      const chat = new RecordingChannel('chat', { channel: 'C-default', approvers: [] });
      const { calls, soon } = await scheduled({ channels: [chat], approval: followUps });
      const p = await pending();
      expect(calls).toEqual([
        `expireAt ${p.id} ${at(APPROVAL_TIMEOUT_SECONDS)}`,
        `notify ${p.id}`,
        `remindIn ${p.id} 300`,
        `escalateIn ${p.id} 600`,
      ]);
      expect(soon).toEqual(['expire', 'notify', 'remind', 'escalate']);
    });

    it('a pending request with no channel configured still expires on time', async () => {
      const { calls } = await scheduled({ approval: followUps });
      const p = await pending();
      expect(calls).toEqual([`expireAt ${p.id} ${at(APPROVAL_TIMEOUT_SECONDS)}`]);
    });

    it("a human approval schedules the token's expiry and a message update; votes and denials an update", async () => {
      const chat = new RecordingChannel('chat', { channel: 'C-default', approvers: [] });
      const { calls } = await scheduled({
        channels: [chat],
        approval: { approvers: ['U1', 'U2'], quorum: 2 },
      });
      const p = await pending();
      calls.length = 0;
      h.clock.advance(60_000);
      await click(chat.user('U1'), p.id);
      expect(calls).toEqual([`messageUpdate ${p.id} pending:1`]);
      await click(chat.user('U2'), p.id);
      const ttl = (await stored(p.id)).ttlSeconds;
      expect(calls.slice(1)).toEqual([
        `expireAt ${p.id} ${at(60 + ttl)}`,
        `messageUpdate ${p.id} approved:2`,
      ]);

      const q = await pending();
      calls.length = 0;
      await click(chat.user('U1'), q.id, false);
      expect(calls).toEqual([`messageUpdate ${q.id} denied:0`]);
    });

    it('with no channel configured, a human approval schedules only the expiry', async () => {
      const { calls } = await scheduled({ approval: { approvers: ['U1'] } });
      const p = await pending();
      calls.length = 0;
      await asOperator(operatorOrigin, p.id);
      const approved = await stored(p.id);
      expect(calls).toEqual([`expireAt ${p.id} ${approved.expiresAt.toISOString()}`]);
    });

    it('a policy auto-approval schedules nothing', async () => {
      const chat = new RecordingChannel('chat', { channel: 'C-default', approvers: [] });
      const { calls } = await scheduled({
        channels: [chat],
        decision: { decision: 'auto_approve', policy: { name: 'trusted' }, reason: 'trusted agent' },
      });
      expect((await request()).status).toBe('approved');
      expect(calls).toEqual([]);
    });

    it('a policy denial schedules nothing', async () => {
      const chat = new RecordingChannel('chat', { channel: 'C-default', approvers: [] });
      const { calls } = await scheduled({
        channels: [chat],
        decision: { decision: 'deny', policy: { name: 'never' }, reason: 'never' },
      });
      expect((await request()).status).toBe('denied');
      expect(calls).toEqual([]);
    });

    it('an expiry sweep edits the posted messages', async () => {
      const chat = new RecordingChannel('chat', { channel: 'C-default', approvers: [] });
      const { calls } = await scheduled({ channels: [chat], approval: { approvers: ['U1'] } });
      const p = await pending();
      calls.length = 0;
      h.clock.advance((APPROVAL_TIMEOUT_SECONDS + 1) * 1000);
      expect(await h.permissions.expireDue()).toBeGreaterThanOrEqual(1);
      expect(calls).toContain(`messageUpdate ${p.id} expired:0`);
    });

    it('an erasure redraws messages only when a channel is configured', async () => {
      const chat = new RecordingChannel('chat');
      const enabled = await scheduled({ channels: [chat] });
      enabled.scheduler.onErased({ eventId: 'evt_1', chatPermissionIds: ['perm_a', 'perm_b'] });
      expect(enabled.calls).toEqual(['messageRedraw perm_a evt_1', 'messageRedraw perm_b evt_1']);
      expect(enabled.soon).toEqual(['message-update', 'message-update']);

      const disabled = await scheduled({});
      disabled.scheduler.onErased({ eventId: 'evt_2', chatPermissionIds: ['perm_a'] });
      expect(disabled.calls).toEqual([]);
    });
  });
});
