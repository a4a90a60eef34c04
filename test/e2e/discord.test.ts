import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FakeDiscord,
  type FakeRestCall,
  type InteractionCallbackRecord,
  type StoredMessage,
  startFakeDiscord,
} from '../fakes/discordApi.js';
import { type FakeMessage, type FakeSlack, startFakeSlack } from '../fakes/slackApi.js';
import { blockActionPayload, postSlack } from '../fakes/slackRequests.js';
import { type ChatApi, chatApi, chatLink, type Permission, sleep, waitUntil } from '../helpers/chatE2e.js';
import { type ServerProcess, startServer } from '../helpers/serverProcess.js';

/**
 * Discord approvals end to end: the built server as a process, a fake Discord (REST + Gateway)
 * at the network edge that a real discord.js client logs in to, real Redis and Postgres (PGlite
 * when TEST_DATABASE_URL is unset). Buttons and the modal arrive as INTERACTION_CREATE over the
 * gateway; answers go back through the interaction callback; later states edit the message by REST.
 * The last block routes one request to Slack and Discord at once.
 */

const DB_URL = process.env.TEST_DATABASE_URL;
const DATABASE = DB_URL ? 'postgres' : 'pglite';
const ADMIN = `uk_${randomBytes(24).toString('hex')}`;

/** On PGlite both servers run one after the other on one data dir (a fresh PGlite is slow to start). */
const PGLITE_DIR = DATABASE === 'pglite' ? mkdtempSync(path.join(tmpdir(), 'aotp-discord-e2e-')) : undefined;
afterAll(() => {
  if (PGLITE_DIR) rmSync(PGLITE_DIR, { recursive: true, force: true });
});
const dataDir = PGLITE_DIR ? { dataDir: PGLITE_DIR } : {};

const GUILD_ID = '1300000000000000001';
const CHANNEL_ID = '1300000000000000010';
const APPROVER_ROLE = '1300000000000000020';
const ALICE = { id: '1300000000000000100', username: 'alice' }; // approver by id
const BOB = { id: '1300000000000000101', username: 'bob' }; // approver by id
const CAROL = { id: '1300000000000000102', username: 'carol' }; // approver through her role
const MALLORY = { id: '1300000000000000103', username: 'mallory' }; // neither

const SLACK_CHANNEL = 'C0APPROVALS';
const SLACK_TEAM = { id: 'T0FAKETEAM', domain: 'fake' };
const SALLY = { id: 'U0SALLY', name: 'sally' }; // Slack approver
const SIGNING_SECRET = `sign_${randomBytes(16).toString('hex')}`;

const BOTH_PLATFORMS = 'both platforms';

const POLICIES = {
  policies: [
    {
      name: 'two-person deploys',
      priority: 10,
      conditions: { action: { startsWith: 'deploy.' } },
      action: 'require_approval',
      approval: { quorum: 2 },
    },
    {
      name: 'one-second tokens',
      priority: 10,
      conditions: { action: { startsWith: 'blink.' } },
      action: 'require_approval',
      ttl: 1,
    },
    {
      name: BOTH_PLATFORMS,
      priority: 10,
      conditions: { action: { startsWith: 'both.' } },
      action: 'require_approval',
      approval: { channels: [`slack:${SLACK_CHANNEL}`, `discord:${CHANNEL_ID}`] },
    },
  ],
};

function fakeDiscord(): Promise<FakeDiscord> {
  return startFakeDiscord({
    heartbeatIntervalMs: 1000,
    guild: {
      id: GUILD_ID,
      name: 'Agent OTP test guild',
      channels: [{ id: CHANNEL_ID, name: 'approvals' }],
      roles: [{ id: APPROVER_ROLE, name: 'approvers' }],
      members: [
        { user: ALICE, roles: [] },
        { user: BOB, roles: [] },
        { user: CAROL, roles: [APPROVER_ROLE] },
        { user: MALLORY, roles: [] },
      ],
    },
  });
}

function discordEnv(fake: FakeDiscord): NodeJS.ProcessEnv {
  return {
    ADMIN_TOKEN: ADMIN,
    RATE_LIMIT_PER_MIN: '100000',
    RATE_LIMIT_PER_HOUR: '1000000',
    TOKEN_RATE_LIMIT_PER_MIN: '100000',
    TOKEN_RATE_LIMIT_PER_HOUR: '1000000',
    DISCORD_BOT_TOKEN: fake.botToken,
    DISCORD_APPROVAL_CHANNEL_ID: CHANNEL_ID,
    DISCORD_APPROVERS: `${ALICE.id},${BOB.id}`,
    DISCORD_APPROVER_ROLES: APPROVER_ROLE,
    DISCORD_API_URL: fake.apiUrl,
  };
}

/** An agent, an operator, and the few calls every scenario needs. */
const setUp = (server: ServerProcess) =>
  chatApi(server, ADMIN, { policies: POLICIES, requestStatus: 'pending' });

// ---- reading the fake Discord ------------------------------------------------------------------------

const customIds = (id: string) => ({
  approve: `aotp:approve:${id}`,
  deny: `aotp:deny:${id}`,
  changes: `aotp:changes:${id}`,
  modal: `aotp:modal:${id}`,
});

/** The approval message of a permission in the channel (its embed footer carries the id). */
function approvalMessage(fake: FakeDiscord, id: string): StoredMessage | undefined {
  return fake
    .messagesIn(CHANNEL_ID)
    .find(
      (m) =>
        m.source === 'channel' && !m.deleted && m.current.embeds.some((e) => e.footer?.text === `ID: ${id}`),
    );
}

async function messageOf(fake: FakeDiscord, id: string, timeoutMs = 5000): Promise<StoredMessage> {
  return fake.waitFor(() => approvalMessage(fake, id), timeoutMs);
}

/** The successful POSTs of a permission's approval message (retries included: look at status). */
const postsFor = (fake: FakeDiscord, id: string): FakeRestCall[] =>
  fake
    .calls('POST /channels/:channelId/messages')
    .filter((c) => JSON.stringify(c.body ?? {}).includes(`ID: ${id}`));

/** What a reader sees: the content line, the embeds and the buttons. */
const shown = (m: { content?: unknown; embeds?: unknown; components?: unknown }) =>
  JSON.stringify({ content: m.content, embeds: m.embeds, components: m.components });

const buttonIds = (m: StoredMessage): string[] =>
  m.current.components?.flatMap((row) =>
    'components' in row
      ? row.components.flatMap((c) =>
          'custom_id' in c && typeof c.custom_id === 'string' ? [c.custom_id] : [],
        )
      : [],
  ) ?? [];

/** The message once it shows `text` (and no buttons, unless `buttons`). */
function messageShowing(
  fake: FakeDiscord,
  id: string,
  text: string | RegExp,
  opts: { buttons?: boolean; timeoutMs?: number } = {},
): Promise<StoredMessage> {
  return fake.waitFor(() => {
    const m = approvalMessage(fake, id);
    if (!m) return undefined;
    const s = shown(m.current);
    const has = typeof text === 'string' ? s.includes(text) : text.test(s);
    return has && buttonIds(m).length > 0 === (opts.buttons ?? false) ? m : undefined;
  }, opts.timeoutMs ?? 5000);
}

const EPHEMERAL = 64;
const UPDATE_MESSAGE = 7;
const CHANNEL_MESSAGE = 4;
const MODAL = 9;

function expectEphemeral(cb: InteractionCallbackRecord, text: RegExp): string {
  expect(cb.type).toBe(CHANNEL_MESSAGE);
  expect(cb.flags & EPHEMERAL).toBe(EPHEMERAL);
  const content = String(cb.data?.content ?? '');
  expect(content).toMatch(text);
  return content;
}

// ---------------------------------------------------------------------------------------------------

describe('Discord approvals (gateway interactions, REST messages)', () => {
  let fake: FakeDiscord;
  let server: ServerProcess;
  let api: ChatApi;

  const click = (m: StoredMessage, user: typeof ALICE, customId: string, timeoutMs?: number) =>
    fake.clickButton({
      customId,
      user,
      channelId: m.channelId,
      messageId: m.id,
      ...(timeoutMs ? { timeoutMs } : {}),
    });

  beforeAll(async () => {
    fake = await fakeDiscord();
    server = await startServer({ database: DATABASE, ...dataDir, env: discordEnv(fake) });
    await fake.ready();
    api = await setUp(server);
  });

  afterAll(async () => {
    await server?.stop();
    await fake?.close();
  });

  it('posts a request with three buttons; an approver approves it; the agent gets its token once', async () => {
    const pending = await api.request({
      action: 'email.send',
      resource: 'newsletter',
      scope: { max_emails: 5 },
    });
    const message = await messageOf(fake, pending.id);
    const ids = customIds(pending.id);

    // One POST with one embed and one action row of the three buttons.
    const [post, ...more] = postsFor(fake, pending.id);
    expect(more).toHaveLength(0);
    expect(post?.status).toBe(200);
    expect(post?.path).toBe(`/channels/${CHANNEL_ID}/messages`);
    const body = post?.body as { embeds: unknown[]; components: { type: number; components: unknown[] }[] };
    expect(body.embeds).toHaveLength(1);
    expect(body.components).toHaveLength(1);
    expect(body.components[0]?.type).toBe(1);
    expect(body.components[0]?.components).toHaveLength(3);
    expect(buttonIds(message)).toEqual([ids.approve, ids.deny, ids.changes]);
    // The permalink of the message becomes the approval URL.
    const link = await waitUntil('the approvalUrl', async () =>
      chatLink((await api.get(pending.id)).approvalUrl),
    );
    expect(link).toBe(`https://discord.com/channels/${GUILD_ID}/${CHANNEL_ID}/${message.id}`);

    // Alice presses Approve: the message is updated in the interaction's answer.
    const cb = await click(message, ALICE, ids.approve);
    expect(cb.type).toBe(UPDATE_MESSAGE);
    expect(cb.messageId).toBe(message.id);
    expect(cb.data?.components).toEqual([]);
    expect(shown(cb.data ?? {})).toContain(`<@${ALICE.id}>`);
    expect(buttonIds(message)).toEqual([]);

    const approved = await api.get(pending.id, 5);
    expect(approved.status).toBe('approved');
    expect(approved.token).toMatch(/^otp_v1_/);
    expect((await api.get(pending.id)).token).toBeUndefined();

    const [event, ...others] = await api.audit(pending.id, 'approve');
    expect(others).toHaveLength(0);
    expect(event?.actor).toEqual({
      type: 'approver',
      platform: 'discord',
      guildId: GUILD_ID,
      userId: ALICE.id,
      userName: ALICE.username,
    });

    // The agent uses it; the message then shows "Used" (an edit by REST, not by an interaction).
    const use = await api.use(pending.id, approved.token, { emails: 3 });
    expect(use.status, JSON.stringify(use.body)).toBe(200);
    const used = await messageShowing(fake, pending.id, 'Used');
    expect(used.current.content).toMatch(/— used$/);
    expect(
      fake
        .calls(`PATCH /channels/${CHANNEL_ID}/messages/${message.id}`)
        .some((c) => c.status === 200 && shown(c.body as object).includes('Used')),
    ).toBe(true);
    expect(postsFor(fake, pending.id)).toHaveLength(1);
  });

  it("erases a person's data from the posted message: edited to the redacted card", async () => {
    const subject = `ada-${randomBytes(3).toString('hex')}@example.com`;
    const pending = await api.request({
      action: 'email.send',
      resource: `mailto:${subject}`,
      context: { reason: 'Newsletter', customer: subject },
    });
    const message = await messageOf(fake, pending.id);
    await waitUntil('the approvalUrl', async () => chatLink((await api.get(pending.id)).approvalUrl));
    expect(shown(message.current)).toContain(subject);

    const dryRun = await api.operator<Record<string, unknown>>('POST', '/api/v1/audit/redact', {
      subject,
      dryRun: true,
    });
    expect(dryRun.body.data).toMatchObject({ dryRun: true, permissions: 1, chatMessages: 1, eventId: null });
    await sleep(300);
    expect(shown(message.current)).toContain(subject);

    const erased = await api.operator<Record<string, unknown>>('POST', '/api/v1/audit/redact', { subject });
    // A pending request that names the person is revoked first: nobody decides a blacked-out card.
    expect(erased.body.data).toMatchObject({
      dryRun: false,
      permissions: 1,
      chatMessages: 1,
      revoked: [pending.id],
    });
    // Discord markdown escapes the brackets (`\\[redacted\\]`); the revoked card has no buttons.
    const redacted = await messageShowing(fake, pending.id, 'redacted');
    expect(shown(redacted.current)).not.toContain(subject);
    // Operators see the stored status; an agent without X-Agent-OTP-SDK reads it as SDK 0.1 does.
    expect(
      (await api.operator<Permission>('GET', `/api/v1/permissions/${pending.id}`)).body.data.status,
    ).toBe('revoked');
    expect((await api.get(pending.id)).status).toBe('denied');
    expect(
      fake
        .calls(`PATCH /channels/${CHANNEL_ID}/messages/${message.id}`)
        .some((c) => c.status === 200 && shown(c.body as object).includes('redacted')),
    ).toBe(true);
  });

  it('refuses a stranger ephemerally and audits it; a role member approves; the requester cannot', async () => {
    const pending = await api.request({ action: 'db.write', resource: 'orders' });
    const message = await messageOf(fake, pending.id);
    const ids = customIds(pending.id);

    const refusal = await click(message, MALLORY, ids.approve);
    expectEphemeral(refusal, /not an approver/i);
    expect((await api.get(pending.id)).status).toBe('pending');
    expect(buttonIds(message)).toHaveLength(3);
    const attempts = await api.audit(pending.id, 'unauthorized_approver');
    expect(attempts).toHaveLength(1);
    expect(attempts[0]?.actor).toMatchObject({
      type: 'approver',
      platform: 'discord',
      guildId: GUILD_ID,
      userId: MALLORY.id,
    });
    expect(attempts[0]?.details).toMatchObject({ attempted: 'approve' });
    // Deny is no better.
    expectEphemeral(await click(message, MALLORY, ids.deny), /not an approver/i);
    expect(await api.audit(pending.id, 'unauthorized_approver')).toHaveLength(2);
    expect((await api.get(pending.id)).status).toBe('pending');
    expect(await api.audit(pending.id, 'approve')).toHaveLength(0);

    // Carol is not listed herself, but holds the approver role.
    const byRole = await click(message, CAROL, ids.approve);
    expect(byRole.type).toBe(UPDATE_MESSAGE);
    const approved = await api.get(pending.id, 5);
    expect(approved.status).toBe('approved');
    expect(approved.decidedBy).toMatchObject({ platform: 'discord', userId: CAROL.id, guildId: GUILD_ID });

    // Alice is an approver, but not for a request made on her behalf.
    const own = await api.request({
      action: 'payment.send',
      scope: { max_amount: 10 },
      context: { user_id: ALICE.id, reason: 'pay the invoice' },
    });
    const ownMessage = await messageOf(fake, own.id);
    expectEphemeral(await click(ownMessage, ALICE, customIds(own.id).approve), /on your behalf/i);
    expect((await api.get(own.id)).status).toBe('pending');
    expect(await api.audit(own.id, 'unauthorized_approver')).toHaveLength(1);
    expect((await click(ownMessage, BOB, customIds(own.id).approve)).type).toBe(UPDATE_MESSAGE);
    expect((await api.get(own.id, 5)).decidedBy).toMatchObject({ userId: BOB.id });
  });

  it('narrows a cap in the "Approve with changes…" modal and refuses a widening', async () => {
    const pending = await api.request({ action: 'payment.transfer', scope: { max_amount: 100 } });
    const message = await messageOf(fake, pending.id);
    const ids = customIds(pending.id);

    const opened = await click(message, ALICE, ids.changes);
    expect(opened.type).toBe(MODAL);
    expect(opened.data?.custom_id).toBe(ids.modal);
    const inputs = JSON.stringify(opened.data?.components);
    expect(inputs).toContain('"custom_id":"cap:max_amount"');
    expect(inputs).toContain('"value":"100"');

    const submitted = await fake.submitModal({
      customId: ids.modal,
      user: ALICE,
      channelId: CHANNEL_ID,
      fields: { 'cap:max_amount': '40', reason: 'forty is enough' },
    });
    expect(submitted.type).toBe(UPDATE_MESSAGE);
    expect(submitted.messageId).toBe(message.id);
    expect(submitted.data?.components).toEqual([]);
    const approved = await api.get(pending.id, 5);
    expect(approved.status).toBe('approved');
    expect(approved.scope).toMatchObject({ max_amount: 40 });
    const [event] = await api.audit(pending.id, 'approve');
    expect(event?.details).toMatchObject({ scopeModifications: { max_amount: 40 } });

    const over = await api.use(pending.id, approved.token, { amount: 50 });
    expect(over.status).toBe(403);
    expect((over.body as unknown as { error: { code: string } }).error.code).toBe('SCOPE_VIOLATION');
    expect((await api.use(pending.id, approved.token, { amount: 40 })).status).toBe(200);

    // Raising the cap is refused, naming the granted limit; nothing changes.
    const other = await api.request({ action: 'payment.transfer', scope: { max_amount: 100 } });
    const otherMessage = await messageOf(fake, other.id);
    expect((await click(otherMessage, ALICE, customIds(other.id).changes)).type).toBe(MODAL);
    const raised = await fake.submitModal({
      customId: customIds(other.id).modal,
      user: ALICE,
      channelId: CHANNEL_ID,
      fields: { 'cap:max_amount': '150' },
    });
    const text = expectEphemeral(raised, /can only be lowered/i);
    expect(text).toContain('100');
    expect(text).toContain('**Max amount**'); // the input's label, not the raw scope key
    const still = await api.get(other.id);
    expect(still.status).toBe('pending');
    expect(still.scope).toEqual({ max_amount: 100 });
    expect(buttonIds(otherMessage)).toHaveLength(3);
  });

  it('needs two distinct approvers under quorum 2 and shows 1/2 in between', async () => {
    const pending = await api.request({ action: 'deploy.production', resource: 'api' });
    const message = await messageOf(fake, pending.id);
    const ids = customIds(pending.id);
    expect(shown(message.current)).toContain('0/2');

    const first = await click(message, ALICE, ids.approve);
    expect(first.type).toBe(UPDATE_MESSAGE);
    expect(shown(first.data ?? {})).toContain('1/2');
    expect(buttonIds(message)).toHaveLength(3);
    expect((await api.get(pending.id)).status).toBe('pending');

    // Alice again: still one approval, and she is told so.
    expectEphemeral(await click(message, ALICE, ids.approve), /already counted \(1\/2\)/i);
    expect((await api.get(pending.id)).status).toBe('pending');

    const second = await click(message, BOB, ids.approve);
    expect(second.type).toBe(UPDATE_MESSAGE);
    const approved = await api.get(pending.id, 5);
    expect(approved.status).toBe('approved');
    const [event] = await api.audit(pending.id, 'approve');
    expect(event?.actor).toMatchObject({ platform: 'discord', userId: BOB.id });
    expect(event?.details.approvers).toHaveLength(2);
    await messageShowing(fake, pending.id, `<@${BOB.id}>`);
  });

  it('edits the message for later states: revoked, and expired unused', async () => {
    const revokedOne = await api.request({ action: 'file.read', resource: 'secrets.txt' });
    const revokedMessage = await messageOf(fake, revokedOne.id);
    expect((await click(revokedMessage, BOB, customIds(revokedOne.id).approve)).type).toBe(UPDATE_MESSAGE);
    expect((await api.get(revokedOne.id, 5)).status).toBe('approved');
    const revoke = await api.operator('POST', `/api/v1/permissions/${revokedOne.id}/revoke`, {
      reason: 'changed my mind',
    });
    expect(revoke.status, JSON.stringify(revoke.body)).toBe(200);
    const revoked = await messageShowing(fake, revokedOne.id, 'Revoked');
    expect(revoked.current.content).toMatch(/— revoked$/);

    // A policy caps this token at one second: unused, it expires and the message says so.
    const blink = await api.request({ action: 'blink.once' });
    const blinkMessage = await messageOf(fake, blink.id);
    expect((await click(blinkMessage, BOB, customIds(blink.id).approve)).type).toBe(UPDATE_MESSAGE);
    const expired = await messageShowing(fake, blink.id, 'Expired unused', { timeoutMs: 8000 });
    expect(expired.current.content).toMatch(/— expired unused$/);
    expect((await api.get(blink.id)).status).toBe('expired');
  });

  it('retries a failed post and posts the message once', async () => {
    // One 500: discord.js itself retries it (rest.retries), at once.
    fake.failNext('POST /channels/:channelId/messages', { status: 500 });
    const once = await api.request({ action: 'email.send', resource: 'failed once' });
    const onceMessage = await messageOf(fake, once.id);
    expect(postsFor(fake, once.id).map((c) => c.status)).toEqual([500, 200]);
    expect((await click(onceMessage, ALICE, customIds(once.id).approve)).type).toBe(UPDATE_MESSAGE);

    // discord.js retries a 5xx itself (rest.retries 3): four failures make the queue job fail.
    fake.failNext('POST /channels/:channelId/messages', { status: 500, times: 4 });
    const pending = await api.request({ action: 'email.send', resource: 'retried' });
    const message = await messageOf(fake, pending.id, 10_000);
    const posts = postsFor(fake, pending.id);
    expect(posts.map((c) => c.status)).toEqual([500, 500, 500, 500, 200]);
    // The fifth try came from the queue's backoff (1 s), not from discord.js's immediate retries.
    const [fourth, fifth] = posts.slice(3);
    expect((fifth?.at ?? 0) - (fourth?.at ?? 0)).toBeGreaterThanOrEqual(800);
    await sleep(500);
    const copies = fake
      .messagesIn(CHANNEL_ID)
      .filter((m) => m.current.embeds.some((e) => e.footer?.text === `ID: ${pending.id}`));
    expect(copies.map((m) => m.id)).toEqual([message.id]);
    expect((await click(message, ALICE, customIds(pending.id).approve)).type).toBe(UPDATE_MESSAGE);
  });

  it('reconnects after the gateway drops, and a later click still works', async () => {
    const resumesBefore = fake.gateway.resumes.length;
    await fake.dropGateway();
    await fake.waitFor(() => fake.isConnected() && fake.gateway.resumes.length > resumesBefore, 10_000);
    expect(fake.gateway.resumes.at(-1)?.ok).toBe(true);

    const pending = await api.request({ action: 'email.send', resource: 'after the drop' });
    const message = await messageOf(fake, pending.id);
    expect((await click(message, ALICE, customIds(pending.id).approve)).type).toBe(UPDATE_MESSAGE);
    expect((await api.get(pending.id, 5)).status).toBe('approved');

    // A connection killed without a close frame (1006) is resumed too.
    const resumes = fake.gateway.resumes.length;
    await fake.dropGateway({ abrupt: true });
    await fake.waitFor(() => fake.isConnected() && fake.gateway.resumes.length > resumes, 10_000);
    const next = await api.request({ action: 'email.send', resource: 'after the second drop' });
    const nextMessage = await messageOf(fake, next.id);
    expect((await click(nextMessage, BOB, customIds(next.id).deny)).type).toBe(UPDATE_MESSAGE);
    expect((await api.get(next.id, 5)).status).toBe('denied');
  });

  it('survives a failing interaction callback and client errors: the server stays up', async () => {
    // The answer to a click fails (discord.js retries 5xx three times): the decision stands, the
    // failure is logged, and the queue edits the message anyway.
    const pending = await api.request({ action: 'email.send', resource: 'callback fails' });
    const message = await messageOf(fake, pending.id);
    fake.failNext('POST /interactions/:interactionId/:token/callback', { status: 500, times: 4 });
    await expect(click(message, ALICE, customIds(pending.id).approve, 1500)).rejects.toThrow(/no callback/);
    expect((await api.get(pending.id, 5)).status).toBe('approved');
    await messageShowing(fake, pending.id, `<@${ALICE.id}>`);
    await waitUntil('the logged interaction failure', () =>
      server.output().includes('discord interaction failed'),
    );

    // A fatal gateway close makes the client emit shardError: logged, never a crash.
    await fake.dropGateway({ code: 4004, reason: 'Authentication failed.' });
    await waitUntil('the logged gateway error', () => server.output().includes('discord gateway error'));
    await sleep(300);
    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
    // REST does not need the gateway: a new request is still posted.
    const after = await api.request({ action: 'email.send', resource: 'after the error' });
    await messageOf(fake, after.id);
    expect(await server.logsSoFar()).not.toMatch(/uncaught|unhandled/i);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('one request in Slack and in Discord', () => {
  let discord: FakeDiscord;
  let slack: FakeSlack;
  let server: ServerProcess;
  let api: ChatApi;

  beforeAll(async () => {
    discord = await fakeDiscord();
    slack = await startFakeSlack({
      users: { [SALLY.id]: { name: SALLY.name } },
      channels: [SLACK_CHANNEL],
      teamId: SLACK_TEAM.id,
      serverPingIntervalMs: 0,
    });
    server = await startServer({
      database: DATABASE,
      ...dataDir,
      env: {
        ...discordEnv(discord),
        SLACK_BOT_TOKEN: slack.botToken,
        SLACK_SIGNING_SECRET: SIGNING_SECRET,
        SLACK_API_URL: slack.apiUrl,
        SLACK_APPROVERS: SALLY.id,
      },
    });
    await discord.ready();
    api = await setUp(server);
  });

  afterAll(async () => {
    await server?.stop();
    await discord?.close();
    await slack?.close();
  });

  const hasSlackButtons = (m: FakeMessage) => (m.blocks ?? []).some((b) => b.type === 'actions');
  const slackShown = (m: FakeMessage) => `${m.text}\n${JSON.stringify(m.blocks ?? [])}`;

  async function slackMessageOf(id: string): Promise<FakeMessage> {
    const call = await slack.waitFor(
      (c) =>
        c.method === 'chat.postMessage' && c.response?.ok === true && JSON.stringify(c.args).includes(id),
      5000,
    );
    const message = slack.getMessage(String(call.response?.channel), String(call.response?.ts));
    if (!message) throw new Error(`no Slack message for ${id}`);
    return message;
  }

  it('posts to both; approving in Discord edits the Slack message too', async () => {
    const pending = await api.request({ action: 'both.deploy', resource: 'api' });
    const [inSlack, inDiscord] = await Promise.all([
      slackMessageOf(pending.id),
      messageOf(discord, pending.id),
    ]);
    expect(inSlack.channel).toBe(SLACK_CHANNEL);
    expect(hasSlackButtons(inSlack)).toBe(true);
    expect(buttonIds(inDiscord)).toHaveLength(3);

    const cb = await discord.clickButton({
      customId: customIds(pending.id).approve,
      user: ALICE,
      channelId: CHANNEL_ID,
      messageId: inDiscord.id,
    });
    expect(cb.type).toBe(UPDATE_MESSAGE);
    expect((await api.get(pending.id, 5)).status).toBe('approved');

    const update = await slack.waitFor(
      (c) =>
        c.method === 'chat.update' &&
        c.args.ts === inSlack.ts &&
        c.response?.ok === true &&
        JSON.stringify(c.args).includes(ALICE.username),
      5000,
    );
    expect(update.args.channel).toBe(SLACK_CHANNEL);
    const edited = slack.getMessage(inSlack.channel, inSlack.ts);
    expect(edited && hasSlackButtons(edited)).toBe(false);
    expect(edited && slackShown(edited)).toContain(ALICE.username);
  });

  it('approving in Slack edits the Discord message', async () => {
    const pending = await api.request({ action: 'both.deploy', resource: 'worker' });
    const [inSlack, inDiscord] = await Promise.all([
      slackMessageOf(pending.id),
      messageOf(discord, pending.id),
    ]);

    const res = await postSlack(
      `${server.url}/slack/events`,
      SIGNING_SECRET,
      blockActionPayload({
        user: SALLY,
        team: SLACK_TEAM,
        actionId: 'aotp_approve',
        value: pending.id,
        channel: inSlack.channel,
        messageTs: inSlack.ts,
        message: inSlack,
      }),
    );
    expect(res.status, res.text).toBe(200);
    const approved = await api.get(pending.id, 5);
    expect(approved.status).toBe('approved');
    expect(approved.decidedBy).toMatchObject({ platform: 'slack', userId: SALLY.id });

    const patch = await discord.waitFor(
      () =>
        discord
          .calls(`PATCH /channels/${CHANNEL_ID}/messages/${inDiscord.id}`)
          .find((c) => c.status === 200 && shown(c.body as object).includes(SALLY.name)),
      5000,
    );
    expect((patch.body as { components: unknown[] }).components).toEqual([]);
    expect(buttonIds(inDiscord)).toEqual([]);
    expect(shown(inDiscord.current)).toContain(`Approved by ${SALLY.name}`);
  });
});
