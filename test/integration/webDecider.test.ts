import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { channelIdentityShapes } from '../../src/chat/channels.js';
import { webAdapter } from '../../src/chat/web/channel.js';
import { describeRefusal, SELF_APPROVAL_TEXT } from '../../src/core/approval/refusals.js';
import { IdentitySyntax, NO_LINKS } from '../../src/core/approvers.js';
import type { Actor } from '../../src/core/audit/index.js';
import type { Clock } from '../../src/core/clock.js';
import type { PolicyDecision } from '../../src/core/policy/index.js';
import type { ApprovalSettings } from '../../src/core/policy/types.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { ChannelRegistry } from '../../src/services/approvals/channel.js';
import { ApprovalService } from '../../src/services/approvals/service.js';
import { WebApprovals } from '../../src/services/approvals/web.js';
import { ApproverService } from '../../src/services/approvers.js';
import { AuditService } from '../../src/services/audit.js';
import { PermissionService } from '../../src/services/permissions.js';
import { PersonDirectory } from '../../src/services/persons.js';
import type { Agent } from '../../src/store/agentRepository.js';
import type { Db } from '../../src/store/db.js';
import { testDatabases } from '../helpers/databases.js';
import { memoryLogger } from '../helpers/memoryLogger.js';
import { RecordingChannel } from '../helpers/recordingChannel.js';

/**
 * Deciding on the web (issue 15) through ApprovalService.decideAs with a `web` decider: who may
 * (the account's linked chat identities where their channel lists them, a Slack group they are
 * in, `web:<name>`), and the same rules as chat after that — the self-approval ban across the
 * person's identities, one vote per person in a quorum — with the vote audited as cast on the web
 * with the passkey's credential id.
 */

const T0 = new Date('2026-03-03T12:00:00.000Z');
const SLACK_ALICE = 'U0ALICE';
const SLACK_BOB = 'U0BOB';
const SLACK_DAVE = 'U0DAVE';
const PASSKEY = 'cred-alice-1';

/**
 * A millisecond per reading, across every test of the file (they share the tables): what happens
 * later is newer, in the inbox's order.
 */
let ticks = 0;

function harness(db: Db, approval: () => ApprovalSettings | undefined) {
  const clock: Clock = { now: () => new Date(T0.getTime() + ticks++) };
  const audit = new AuditService(db, clock);
  const agents = new AgentService(db, audit, clock);
  const persons = new PersonDirectory(db, memoryLogger().logger, NO_LINKS);
  const accounts = new ApproverService(
    db,
    audit,
    clock,
    new IdentitySyntax(channelIdentityShapes()),
    NO_LINKS,
  );
  accounts.onChange(() => persons.load());
  const permissions = new PermissionService(
    db,
    audit,
    {
      evaluate: (): PolicyDecision => ({
        decision: 'require_approval',
        policy: { id: 'pol_web', name: 'people decide' },
        reason: 'people decide',
        ...(approval() ? { approval: approval() } : {}),
      }),
    },
    clock,
    { approvalTimeoutSeconds: 900, requireActionDetails: false, approverLinks: persons.links },
  );
  const slack = new RecordingChannel('slack', { channel: 'C1', approvers: [SLACK_ALICE, SLACK_BOB] });
  const channels = new ChannelRegistry(['slack', 'discord', 'web']);
  channels.register(slack);
  channels.register(webAdapter);
  const approvals = new ApprovalService(
    db,
    permissions,
    audit,
    channels,
    memoryLogger().logger,
    persons.links,
    { pageUrl: (id) => `https://otp.example.com/approve/${id}`, clock },
  );
  const web = new WebApprovals(db, approvals, persons.links, clock, audit);
  return { audit, agents, accounts, persons, permissions, approvals, slack, channels, web };
}

describe.each(testDatabases())('deciding on the web on $name', (database) => {
  let db: Db;
  let agent: Agent;
  let h: ReturnType<typeof harness>;
  let approval: ApprovalSettings | undefined;
  const operator: RequestOrigin = {
    actor: { type: 'operator', id: 'opk_admin', name: 'admin', platform: 'api' },
  };

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    await db.query('DELETE FROM approvers');
    approval = undefined;
    h = harness(db, () => approval);
    await h.persons.load();
    agent = (await h.agents.create({ name: `agent-${Date.now()}${Math.random()}` }, operator)).agent;
  });

  const account = (name: string, identities: string[] = []) =>
    h.accounts.create({ name, identities }, operator);

  async function pending(context: Record<string, unknown> = {}, action = 'deploy.production') {
    const { permission } = await h.permissions.request(
      agent,
      { action, context },
      { actor: { type: 'agent', id: agent.id } },
    );
    expect(permission.status).toBe('pending');
    return permission;
  }

  const onWeb = async (
    approverId: string,
    permissionId: string,
    approved = true,
    credentialId = PASSKEY,
    verifiedAt = T0,
  ) => {
    const result = await h.approvals.decideAs(
      { kind: 'web', approverId, credentialId, verifiedAt },
      { permissionId, approved },
    );
    return result.kind === 'refused'
      ? { kind: 'refused', message: describeRefusal(result.refusal) }
      : { kind: result.kind, status: result.permission.status };
  };

  const status = async (id: string) =>
    (await h.permissions.get({ operator: true }, id, operator)).permission.status;

  async function events(type: string, permissionId: string) {
    await h.audit.drain();
    const { rows } = await db.query<{ actor: Actor; details: Record<string, unknown> }>(
      'SELECT actor, details FROM audit_events WHERE type = $1 AND permission_id = $2 ORDER BY seq',
      [type, permissionId],
    );
    return rows;
  }

  it('an account whose linked Slack id is a default approver approves; the audit names web and the passkey', async () => {
    const alice = await account('alice', [`slack:${SLACK_ALICE}`]);
    const p = await pending();
    expect(await onWeb(alice.id, p.id)).toEqual({ kind: 'decided', status: 'approved' });
    const [approve] = await events('approve', p.id);
    expect(approve?.actor).toMatchObject({
      type: 'approver',
      platform: 'web',
      userId: alice.id,
      userName: 'alice',
      person: 'alice',
      credentialId: PASSKEY,
    });
    const stored = (await h.permissions.get({ operator: true }, p.id, operator)).permission;
    expect(stored.decidedBy).toMatchObject({ platform: 'web', credentialId: PASSKEY });
  });

  it('a stranger (linked to nobody listed) is refused, the request stays pending, and the attempt is audited', async () => {
    const dave = await account('dave', [`slack:${SLACK_DAVE}`]);
    const nobody = await account('nobody');
    const p = await pending();
    const refused = { kind: 'refused', message: 'You are not an approver for this request.' };
    expect(await onWeb(dave.id, p.id)).toEqual(refused);
    expect(await onWeb(nobody.id, p.id, false)).toEqual(refused);
    expect(await status(p.id)).toBe('pending');
    const attempts = await events('unauthorized_approver', p.id);
    expect(
      attempts.map((e) => [e.actor.userName, e.actor.platform, e.actor.credentialId, e.details.attempted]),
    ).toEqual([
      ['dave', 'web', PASSKEY, 'approve'],
      ['nobody', 'web', PASSKEY, 'deny'],
    ]);
  });

  it('the policy may name web approvers as web:<name> or web:<id>; a bare name grants nothing on the web', async () => {
    const erin = await account('erin');
    const frank = await account('frank');
    approval = { approvers: ['web:Erin', 'frank'] };
    const p = await pending();
    expect(await onWeb(frank.id, p.id)).toMatchObject({ kind: 'refused' });
    expect(await onWeb(erin.id, p.id)).toEqual({ kind: 'decided', status: 'approved' });

    approval = { approvers: [`web:${frank.id}`] };
    const q = await pending();
    expect(await onWeb(frank.id, q.id)).toEqual({ kind: 'decided', status: 'approved' });
  });

  it('a Slack user group the linked Slack id belongs to grants on the web too', async () => {
    const alice = await account('alice', [`slack:${SLACK_ALICE}`]);
    const dave = await account('dave', [`slack:${SLACK_DAVE}`]);
    h.slack.groups.set('SOPS', [SLACK_DAVE]);
    approval = { approvers: ['slack:group:SOPS'] };
    const p = await pending();
    expect(await onWeb(alice.id, p.id)).toMatchObject({ kind: 'refused' });
    expect(await onWeb(dave.id, p.id)).toEqual({ kind: 'decided', status: 'approved' });
  });

  it('the self-approval ban holds across the person’s identities (requester named by the Slack id)', async () => {
    const alice = await account('alice', [`slack:${SLACK_ALICE}`]);
    const p = await pending({ user_id: SLACK_ALICE });
    expect(await onWeb(alice.id, p.id)).toEqual({ kind: 'refused', message: SELF_APPROVAL_TEXT });
    const q = await pending({ user_id: 'alice' });
    expect(await onWeb(alice.id, q.id)).toEqual({ kind: 'refused', message: SELF_APPROVAL_TEXT });
    expect(await status(p.id)).toBe('pending');
    expect(await status(q.id)).toBe('pending');
  });

  it('in a quorum of 2, the same person voting in Slack and on the web counts once', async () => {
    const alice = await account('alice', [`slack:${SLACK_ALICE}`]);
    const bob = await account('bob', [`slack:${SLACK_BOB}`]);
    approval = { quorum: 2 };
    const p = await pending();
    const slackClick = await h.approvals.decideAs(
      { kind: 'channel', user: h.slack.user(SLACK_ALICE) },
      { permissionId: p.id, approved: true },
    );
    expect(slackClick.kind).toBe('decided');
    expect(await onWeb(alice.id, p.id)).toEqual({ kind: 'unchanged', status: 'pending' });
    expect(await status(p.id)).toBe('pending');
    expect(await onWeb(bob.id, p.id, true, 'cred-bob')).toEqual({ kind: 'decided', status: 'approved' });
    const [approve] = await events('approve', p.id);
    expect(approve?.details.approvers).toEqual(['person:alice', 'person:bob']);
  });

  it('a disabled account is refused, and so is any decision once the request is closed', async () => {
    const alice = await account('alice', [`slack:${SLACK_ALICE}`]);
    const bob = await account('bob', [`slack:${SLACK_BOB}`]);
    const p = await pending();
    await h.accounts.disable('alice', operator);
    expect(await onWeb(alice.id, p.id)).toEqual({
      kind: 'refused',
      message: 'Your approver account is disabled: ask an operator to enable it.',
    });
    expect(await onWeb(bob.id, p.id, false)).toEqual({ kind: 'decided', status: 'denied' });
    expect(await onWeb(bob.id, p.id)).toEqual({
      kind: 'refused',
      message: 'This request was already denied by bob.',
    });
  });

  it('the inbox lists the pending requests this approver may decide, newest first, with filters, and recent decisions', async () => {
    const alice = await account('alice', [`slack:${SLACK_ALICE}`]);
    const dave = await account('dave', [`slack:${SLACK_DAVE}`]);
    const first = await pending({}, 'deploy.production');
    const second = await pending({}, 'payment.send');
    const third = await pending({}, 'payment.send');
    expect(await onWeb(alice.id, third.id, false)).toMatchObject({ status: 'denied' });

    // Earlier tests' requests are in the same tables: this agent's are the ones to look at.
    const inbox = await h.web.inbox(alice.id, { agentId: agent.id });
    expect(inbox.pending.map((v) => v.permission.id)).toEqual([second.id, first.id]);
    const all = await h.web.inbox(alice.id, {});
    expect(all.pending.map((v) => v.permission.id)).toEqual(expect.arrayContaining([second.id, first.id]));
    expect(all.pending.map((v) => v.permission.id)).not.toContain(third.id);
    expect(all.recent[0]?.permission).toMatchObject({ id: third.id, status: 'denied' });
    const filtered = await h.web.inbox(alice.id, { agentId: agent.id, action: 'payment.send' });
    expect(filtered.pending.map((v) => v.permission.id)).toEqual([second.id]);
    expect((await h.web.inbox(alice.id, { agentId: 'agt_other' })).pending).toEqual([]);

    // Dave is no approver of any of them: nothing waits for him, and no decision is shown to him.
    const strangers = await h.web.inbox(dave.id, {});
    expect(strangers).toEqual({ pending: [], recent: [] });
  });

  describe('step-up: a policy with approval.passkey', () => {
    const click = async (userId: string, permissionId: string, approved: boolean) => {
      const result = await h.approvals.decideAs(
        { kind: 'channel', user: h.slack.user(userId) },
        { permissionId, approved },
      );
      return result.kind === 'refused'
        ? { kind: 'refused', message: describeRefusal(result.refusal) }
        : { kind: result.kind, status: result.permission.status };
    };

    it('a Slack Approve hands over to the page (audited); the passkey vote on the page approves', async () => {
      const alice = await account('alice', [`slack:${SLACK_ALICE}`]);
      approval = { passkey: true };
      const p = await pending();
      expect(await click(SLACK_ALICE, p.id, true)).toEqual({
        kind: 'refused',
        message: `This request needs a passkey confirmation: approve it on the web page https://otp.example.com/approve/${p.id}`,
      });
      expect(await status(p.id)).toBe('pending');
      const [handOver] = await events('approval_step_up', p.id);
      expect(handOver?.actor).toMatchObject({ platform: 'slack', userId: SLACK_ALICE, person: 'alice' });
      expect(handOver?.details).toEqual({ approverId: alice.id });

      expect(await onWeb(alice.id, p.id)).toEqual({ kind: 'decided', status: 'approved' });
      const [approve] = await events('approve', p.id);
      expect(approve?.actor).toMatchObject({ platform: 'web', credentialId: PASSKEY, person: 'alice' });
    });

    it('a clicker with no approver account is told to ask for an invitation; Deny stays one click', async () => {
      approval = { passkey: true };
      const p = await pending();
      expect(await click(SLACK_BOB, p.id, true)).toEqual({
        kind: 'refused',
        message:
          'This request needs a passkey confirmation on the web, and this account is linked to no approver account: ask an operator for an invitation.',
      });
      expect(await click(SLACK_BOB, p.id, false)).toEqual({ kind: 'decided', status: 'denied' });
    });

    it('on the page, an approval needs a fresh passkey assertion (a deny does not)', async () => {
      const alice = await account('alice', [`slack:${SLACK_ALICE}`]);
      approval = { passkey: true };
      const p = await pending();
      const old = new Date(T0.getTime() - 10 * 60_000);
      expect(await onWeb(alice.id, p.id, true, PASSKEY, old)).toEqual({
        kind: 'refused',
        message:
          'This request needs a fresh passkey confirmation: sign in with your passkey again, then approve.',
      });
      expect(await status(p.id)).toBe('pending');
      expect(await onWeb(alice.id, p.id, false, PASSKEY, old)).toEqual({ kind: 'decided', status: 'denied' });
      // Without step-up, an older session approves as usual.
      approval = undefined;
      const q = await pending();
      expect(await onWeb(alice.id, q.id, true, PASSKEY, old)).toEqual({
        kind: 'decided',
        status: 'approved',
      });
    });
  });
});
