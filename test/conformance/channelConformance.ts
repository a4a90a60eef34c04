import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatInteractions } from '../../src/chat/interactions.js';
import type { RunningChannel } from '../../src/chat/plugin.js';
import type { Actor } from '../../src/core/audit/index.js';
import { systemClock } from '../../src/core/clock.js';
import type { Permission } from '../../src/core/permission.js';
import type { Logger } from '../../src/logger.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { type ApprovalChannel, ChannelRegistry } from '../../src/services/approvals/channel.js';
import { ApprovalMessages } from '../../src/services/approvals/messages.js';
import { type ApprovalJobs, ApprovalScheduler } from '../../src/services/approvals/scheduler.js';
import { ApprovalService } from '../../src/services/approvals/service.js';
import { AuditService } from '../../src/services/audit.js';
import { PermissionService } from '../../src/services/permissions.js';
import { PolicyService } from '../../src/services/policies.js';
import type { Agent } from '../../src/store/agentRepository.js';
import { type ChatMessageRef, listChatMessages } from '../../src/store/chatMessageRepository.js';
import type { Db } from '../../src/store/db.js';
import { findPermission } from '../../src/store/permissionRepository.js';
import { type TestDatabase, testDatabases } from '../helpers/databases.js';
import { memoryLogger } from '../helpers/memoryLogger.js';

/**
 * The behaviour every approval channel must show (issue 14), run against each adapter the way
 * BullMQ runs one suite on every backend: the approval core wired as src/main.ts wires it
 * (PermissionService, ApprovalService, ApprovalMessages, ApprovalScheduler, ChatInteractions),
 * the channel created by its own plug-in, and presses arriving through the channel's own inbound
 * path (a signed Slack request, a Discord gateway interaction, the toy's HTTP route). Queued jobs
 * run inline (no BullMQ); reminders and escalations are called where their delayed job would.
 * A new channel joins with a `*.test.ts` here calling describeChannelConformance with its fixture.
 */

export interface ConformanceUser {
  id: string;
  name: string;
}

/** A posted approval message, as the core stored it (chat_messages). */
export type PostedMessage = Pick<ChatMessageRef, 'channel' | 'messageRef'>;

/** What a posted message shows now, read back from the channel (the fake's recorded state). */
export interface ShownMessage {
  /** Every visible word, flattened (text, blocks, embeds…). */
  text: string;
  /** Does it still offer Approve/Deny? */
  buttons: boolean;
  /** How many times it was edited in place since it was posted. */
  edits: number;
}

export interface ChannelFixture {
  /** The channel as its plug-in created it. */
  channel: RunningChannel;
  /** Where the channel's defaults post (a channel id as stored with the message). */
  defaultChannel: string;
  /** A second channel, as a policy's `channels` entry names it, and its id. */
  policyChannel: { entry: string; id: string };
  /** A third channel for `escalateTo`, as an entry, and its id. */
  escalationChannel: { entry: string; id: string };
  /**
   * Approvers by the channel's defaults (alice, bob), someone who is not, and someone approved only
   * as a member of a group the defaults name (every channel so far has groups: Slack user groups,
   * Discord roles).
   */
  users: {
    alice: ConformanceUser;
    bob: ConformanceUser;
    stranger: ConformanceUser;
    groupMember: ConformanceUser;
  };
  /** An `escalateTo` entry naming a person to mention. */
  personEntry(user: ConformanceUser): string;
  /** How a decided card names the person who decided. */
  named(user: ConformanceUser): string;
  /**
   * The channel's adapter as another process would create it from the same settings (outbound
   * only): it must edit and reply to messages it did not post, from their stored refs alone.
   */
  fromAnotherProcess(): Promise<ApprovalChannel>;
  /** Presses Approve or Deny on a posted message as `user`, through the channel's own inbound path. */
  press(
    user: ConformanceUser,
    message: PostedMessage,
    permissionId: string,
    approved: boolean,
  ): Promise<void>;
  /** Every note shown to `user` alone so far (refusals, repeats), oldest first. */
  toldTo(user: ConformanceUser): string[];
  /** The approval messages of a permission in a channel, as the channel holds them. */
  postedFor(channelId: string, permissionId: string): string[];
  shown(message: PostedMessage): ShownMessage | null;
  /** Notes in the message's thread (replies to it), oldest first. */
  thread(message: PostedMessage): string[];
  /** Notes posted in the channel itself, not on a message (alerts). */
  channelNotes(channelId: string): string[];
  close(): Promise<void>;
}

export interface FixtureContext {
  /** The shared click/form flow, to hand to the plug-in's create(). */
  interactions: ChatInteractions;
  logger: Logger;
  /** The API server's address, once listening (the channel's mounted routes are on it). */
  apiUrl(): string;
}

export type ChannelSetup = (context: FixtureContext) => Promise<ChannelFixture>;

/** Polls `check` (an assertion) until it passes or `timeoutMs` is over. */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

/**
 * The queue as ApprovalScheduler sees it, run inline: posting and message edits start at once
 * (as a worker would pick them up), delayed work is only recorded, and every failure is kept so
 * the suite can see a job that would have been retried.
 */
class InlineJobs implements ApprovalJobs {
  readonly delayed: string[] = [];
  readonly failures: string[] = [];

  constructor(private readonly messages: ApprovalMessages) {}

  async notify(permissionId: string) {
    await this.messages.notify(permissionId);
  }
  async messageUpdate(permission: Pick<Permission, 'id'>) {
    await this.messages.syncMessages(permission.id);
  }
  async messageRedraw(permissionId: string) {
    await this.messages.syncMessages(permissionId, { force: true });
  }
  async expireAt(permission: Pick<Permission, 'id'>) {
    this.delayed.push(`expire:${permission.id}`);
  }
  async remindIn(permissionId: string) {
    this.delayed.push(`remind:${permissionId}`);
  }
  async escalateIn(permissionId: string) {
    this.delayed.push(`escalate:${permissionId}`);
  }
  soon(what: string, work: Promise<void>) {
    work.catch((err) => this.failures.push(`${what}: ${(err as Error).message}`));
  }
}

const OPERATOR: RequestOrigin = { actor: { type: 'operator', id: 'opk_conformance', name: 'conformance' } };

async function harness(db: Db, setup: ChannelSetup) {
  const clock = systemClock;
  const { logger } = memoryLogger();
  const audit = new AuditService(db, clock);
  const agents = new AgentService(db, audit, clock);
  const policies = new PolicyService(db, audit, clock, 'require_approval', logger);
  await policies.load();
  const permissions = new PermissionService(db, audit, policies, clock, {
    approvalTimeoutSeconds: 900,
    requireActionDetails: false,
  });
  // As main.ts: the core first, then each plug-in created with the interactions and registered.
  const channels = new ChannelRegistry();
  const approvals = new ApprovalService(db, permissions, audit, channels, logger);
  const messages = new ApprovalMessages(db, channels, clock, logger);
  const interactions = new ChatInteractions(approvals, messages);
  const jobs = new InlineJobs(messages);
  const scheduler = new ApprovalScheduler(jobs, clock, () => channels.enabled);
  permissions.onChange((change) => scheduler.onPermissionEvent(change));
  const server: FastifyInstance = Fastify();
  let url = '';
  const fixture = await setup({ interactions, logger, apiUrl: () => url });
  channels.register(fixture.channel.adapter);
  fixture.channel.mount?.(server);
  url = await server.listen({ port: 0, host: '127.0.0.1' });
  await fixture.channel.start?.();
  return {
    approvals,
    messages,
    db,
    audit,
    agents,
    policies,
    permissions,
    jobs,
    fixture,
    async close() {
      await fixture.channel.stop?.();
      await server.close();
      await audit.drain();
      await fixture.close();
    },
  };
}

export function describeChannelConformance(
  name: string,
  setup: ChannelSetup,
  /** Default: PGlite, and Postgres too when TEST_DATABASE_URL is set. */
  opts: { databases?: TestDatabase[] } = {},
): void {
  describe.each(opts.databases ?? testDatabases())(`channel conformance: ${name} on $name`, (database) => {
    let db: Db;
    let h: Awaited<ReturnType<typeof harness>>;
    let f: ChannelFixture;
    let agent: Agent;

    beforeAll(async () => {
      db = await database.open();
      h = await harness(db, setup);
      f = h.fixture;
      agent = (await h.agents.create({ name: `conformance-${name}` }, OPERATOR)).agent;
      const channelsEntry = f.policyChannel.entry;
      await h.policies.replaceAll(
        {
          policies: [
            {
              name: 'two people',
              priority: 10,
              conditions: { action: 'deploy.*' },
              action: 'require_approval',
              approval: { quorum: 2 },
            },
            {
              name: 'routed',
              priority: 10,
              conditions: { action: 'route.*' },
              action: 'require_approval',
              approval: { channels: [channelsEntry] },
            },
            {
              name: 'followed up',
              priority: 10,
              conditions: { action: 'oncall.*' },
              action: 'require_approval',
              approval: {
                remind_after: 60,
                escalate_after: 120,
                escalate_to: [f.escalationChannel.entry, f.personEntry(f.users.bob)],
              },
            },
          ],
        },
        OPERATOR,
      );
    });

    afterAll(async () => {
      // A job that failed would have been retried by BullMQ: here it is a failure of the channel.
      expect(h?.jobs.failures ?? []).toEqual([]);
      await h?.close();
      await db?.close();
    });

    async function request(action: string, context: Record<string, unknown> = {}): Promise<Permission> {
      const { permission } = await h.permissions.request(
        agent,
        { action, resource: `res-${Math.random().toString(36).slice(2, 8)}`, context },
        { actor: { type: 'agent', id: agent.id } },
      );
      expect(permission.status).toBe('pending');
      return permission;
    }

    const current = async (id: string) => (await findPermission(db, id)) as Permission;

    /** The request's one message in `channelId`, once the (inline) notify job posted it. */
    const postedIn = (id: string, channelId: string) =>
      eventually(async () => {
        const messages = (await listChatMessages(db, id)).filter((m) => m.channel === channelId);
        expect(messages).toHaveLength(1);
        return messages[0] as ChatMessageRef;
      });

    const shownNow = (m: PostedMessage) => {
      const shown = f.shown(m);
      expect(shown, `message ${m.messageRef}`).not.toBeNull();
      return shown as ShownMessage;
    };

    const auditOf = async (id: string, type: string) =>
      (
        await db.query<{ actor: Actor; details: Record<string, unknown> }>(
          'SELECT actor, details FROM audit_events WHERE permission_id = $1 AND type = $2 ORDER BY seq',
          [id, type],
        )
      ).rows;

    /** Presses and waits until `user` is told something new; returns what they were told. */
    async function pressTold(user: ConformanceUser, m: PostedMessage, id: string, approved: boolean) {
      const before = f.toldTo(user).length;
      await f.press(user, m, id, approved);
      return eventually(() => {
        const told = f.toldTo(user).slice(before);
        expect(told.length).toBeGreaterThan(0);
        return told.join('\n');
      });
    }

    it('posts a pending request to the default channel once, with its link as approvalUrl', async () => {
      const p = await request('email.send');
      const m = await postedIn(p.id, f.defaultChannel);
      const shown = shownNow(m);
      expect(shown.buttons).toBe(true);
      expect(shown.text).toContain('email.send');
      expect(shown.text).toContain(p.id);
      const stored = (await listChatMessages(db, p.id))[0];
      await eventually(async () => expect((await current(p.id)).approvalUrl).toBe(stored?.permalink ?? null));
      expect(stored?.permalink, 'a permalink for approvalUrl').toBeTruthy();

      // A retried or duplicated notify job posts nothing more.
      await h.messages.notify(p.id);
      await h.messages.notify(p.id);
      expect(f.postedFor(f.defaultChannel, p.id)).toHaveLength(1);
      expect(await listChatMessages(db, p.id)).toHaveLength(1);
    });

    it("posts to a policy's `channels` entry instead of the default channel", async () => {
      const p = await request('route.payments');
      const m = await postedIn(p.id, f.policyChannel.id);
      expect(shownNow(m).buttons).toBe(true);
      await h.messages.notify(p.id);
      expect(f.postedFor(f.policyChannel.id, p.id)).toHaveLength(1);
      expect(f.postedFor(f.defaultChannel, p.id)).toHaveLength(0);
      expect((await listChatMessages(db, p.id)).map((x) => x.channel)).toEqual([f.policyChannel.id]);
    });

    it("an approver's Approve decides it, and the same message shows who approved, buttons gone", async () => {
      const p = await request('file.read');
      const m = await postedIn(p.id, f.defaultChannel);
      await f.press(f.users.alice, m, p.id, true);
      await eventually(async () => expect((await current(p.id)).status).toBe('approved'));
      const shown = await eventually(() => {
        const s = shownNow(m);
        expect(s.buttons).toBe(false);
        expect(s.text).toMatch(/approved by/i);
        return s;
      });
      expect(shown.text).toContain(f.named(f.users.alice));
      expect(shown.edits).toBeGreaterThan(0);
      // Edited in place: the stored reference is the one posted, and nothing new was posted.
      expect((await listChatMessages(db, p.id)).map((x) => x.messageRef)).toEqual([m.messageRef]);
      expect(f.postedFor(f.defaultChannel, p.id)).toEqual([m.messageRef]);
      const approvals = await auditOf(p.id, 'approve');
      expect(approvals).toHaveLength(1);
      expect(approvals[0]?.actor).toMatchObject({
        type: 'approver',
        platform: f.channel.adapter.name,
        userId: f.users.alice.id,
      });
      // A later press on the decided request changes nothing and says why.
      expect(await pressTold(f.users.bob, m, p.id, false)).toMatch(/already approved/i);
      expect((await current(p.id)).status).toBe('approved');
    });

    it('Deny decides it, and the message shows who denied', async () => {
      const p = await request('db.drop');
      const m = await postedIn(p.id, f.defaultChannel);
      await f.press(f.users.bob, m, p.id, false);
      await eventually(async () => expect((await current(p.id)).status).toBe('denied'));
      const shown = await eventually(() => {
        const s = shownNow(m);
        expect(s.buttons).toBe(false);
        expect(s.text).toMatch(/denied by/i);
        return s;
      });
      expect(shown.text).toContain(f.named(f.users.bob));
      expect(await auditOf(p.id, 'deny')).toHaveLength(1);
    });

    it("a stranger's press is refused: told so, nothing decided, the attempt audited", async () => {
      const p = await request('payments.refund');
      const m = await postedIn(p.id, f.defaultChannel);
      const editsBefore = shownNow(m).edits;
      expect(await pressTold(f.users.stranger, m, p.id, true)).toMatch(/not an approver/i);
      expect(await pressTold(f.users.stranger, m, p.id, false)).toMatch(/not an approver/i);
      const after = await current(p.id);
      expect(after.status).toBe('pending');
      expect(after.approvals).toEqual([]);
      const attempts = await auditOf(p.id, 'unauthorized_approver');
      expect(attempts.map((a) => a.details.attempted)).toEqual(['approve', 'deny']);
      expect(attempts[0]?.actor).toMatchObject({
        platform: f.channel.adapter.name,
        userId: f.users.stranger.id,
      });
      expect(await auditOf(p.id, 'approve')).toHaveLength(0);
      const shown = shownNow(m);
      expect(shown.buttons).toBe(true);
      expect(shown.edits).toBe(editsBefore);
    });

    it('the person a request is made for cannot approve it; another approver can', async () => {
      const p = await request('payments.send', { user_id: f.users.alice.id, reason: 'pay the invoice' });
      const m = await postedIn(p.id, f.defaultChannel);
      expect(await pressTold(f.users.alice, m, p.id, true)).toMatch(
        /cannot approve a request made on your behalf/i,
      );
      expect((await current(p.id)).status).toBe('pending');
      expect(await auditOf(p.id, 'unauthorized_approver')).toHaveLength(1);
      await f.press(f.users.bob, m, p.id, true);
      await eventually(async () => expect((await current(p.id)).status).toBe('approved'));
    });

    it('a member of an approver group may decide', async () => {
      const member = f.users.groupMember;
      const p = await request('groups.check');
      const m = await postedIn(p.id, f.defaultChannel);
      await f.press(member, m, p.id, true);
      await eventually(async () => expect((await current(p.id)).status).toBe('approved'));
      expect((await current(p.id)).decidedBy).toMatchObject({ userId: member.id });
    });

    it('with quorum 2 the first press shows 1/2, the same person again is one vote, a second person decides', async () => {
      const p = await request('deploy.api');
      const m = await postedIn(p.id, f.defaultChannel);
      expect(shownNow(m).text).toContain('0/2');
      await f.press(f.users.alice, m, p.id, true);
      await eventually(async () => expect((await current(p.id)).approvals).toHaveLength(1));
      await eventually(() => {
        const s = shownNow(m);
        expect(s.text).toContain('1/2');
        expect(s.buttons).toBe(true);
      });
      expect((await current(p.id)).status).toBe('pending');

      expect(await pressTold(f.users.alice, m, p.id, true)).toMatch(/already counted \(1\/2\)/);
      const after = await current(p.id);
      expect(after.status).toBe('pending');
      expect(after.approvals).toHaveLength(1);

      await f.press(f.users.bob, m, p.id, true);
      await eventually(async () => expect((await current(p.id)).status).toBe('approved'));
      const shown = await eventually(() => {
        const s = shownNow(m);
        expect(s.buttons).toBe(false);
        expect(s.text).toMatch(/approved by/i);
        return s;
      });
      expect(shown.text).toContain(f.named(f.users.bob));
      expect((await current(p.id)).approvals.map((a) => a.actor.userId)).toEqual([
        f.users.alice.id,
        f.users.bob.id,
      ]);
      expect(f.postedFor(f.defaultChannel, p.id)).toEqual([m.messageRef]);
    });

    it('reminders and escalation notes land in the thread; escalation posts once to escalateTo', async () => {
      const p = await request('oncall.page');
      const m = await postedIn(p.id, f.defaultChannel);
      expect(h.jobs.delayed).toEqual(expect.arrayContaining([`remind:${p.id}`, `escalate:${p.id}`]));

      await h.messages.remind(p.id);
      const reminder = await eventually(() => {
        const notes = f.thread(m).filter((t) => /reminder/i.test(t));
        expect(notes).toHaveLength(1);
        return notes[0] as string;
      });
      // Default approvers are named in the reminder.
      expect(reminder).toContain(f.users.alice.id);

      await h.messages.escalate(p.id);
      const escalation = await eventually(() => {
        const notes = f.thread(m).filter((t) => /escalated/i.test(t));
        expect(notes).toHaveLength(1);
        return notes[0] as string;
      });
      expect(escalation).toContain(f.users.bob.id);
      const escalated = await postedIn(p.id, f.escalationChannel.id);
      expect(shownNow(escalated).buttons).toBe(true);
      // A repeated escalation job posts the card no second time.
      await h.messages.escalate(p.id);
      expect(f.postedFor(f.escalationChannel.id, p.id)).toHaveLength(1);

      // A decision edits both messages, each in place.
      await f.press(f.users.alice, m, p.id, true);
      await eventually(() => {
        for (const message of [m, escalated]) {
          const s = shownNow(message);
          expect(s.buttons).toBe(false);
          expect(s.text).toMatch(/approved by/i);
        }
      });
      expect(f.postedFor(f.defaultChannel, p.id)).toEqual([m.messageRef]);
      expect(f.postedFor(f.escalationChannel.id, p.id)).toEqual([escalated.messageRef]);
    });

    it('message refs survive: another process edits and replies to a message it did not post', async () => {
      const p = await request('refs.check');
      const m = await postedIn(p.id, f.defaultChannel);
      const edits = shownNow(m).edits;
      const channels = new ChannelRegistry();
      channels.register(await f.fromAnotherProcess());
      const elsewhere = new ApprovalMessages(db, channels, systemClock, memoryLogger().logger);
      await elsewhere.syncMessages(p.id, { force: true });
      await eventually(() => expect(shownNow(m).edits).toBe(edits + 1));
      await elsewhere.remind(p.id);
      await eventually(() => expect(f.thread(m).filter((t) => /reminder/i.test(t))).toHaveLength(1));
      expect(f.postedFor(f.defaultChannel, p.id)).toEqual([m.messageRef]);
    });

    it('an alert broadcast lands in the default channel', async () => {
      const text = `Alert ${Math.random().toString(36).slice(2, 8)}: approvals are piling up`;
      const sent = await h.messages.broadcast(text);
      expect(sent).toEqual([`${f.channel.adapter.name}:${f.defaultChannel}`]);
      await eventually(() =>
        expect(f.channelNotes(f.defaultChannel).some((n) => n.includes(text))).toBe(true),
      );
    });
  });
}
