/**
 * Self-test of the fake Discord: a real discord.js Client logs in over REST + Gateway, posts and edits
 * messages, handles button/modal interactions, survives a dropped gateway, and is refused like Discord
 * would refuse it. Plus a few raw-protocol checks with a bare `ws` client.
 */
import { inflateSync, constants as zlibConstants } from 'node:zlib';
import {
  ActionRowBuilder,
  ButtonBuilder,
  ButtonStyle,
  Client,
  DiscordAPIError,
  EmbedBuilder,
  Events,
  GatewayIntentBits,
  HTTPError,
  type Interaction,
  LabelBuilder,
  MessageFlags,
  ModalBuilder,
  type TextChannel,
  TextInputBuilder,
  TextInputStyle,
} from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type FakeDiscord, type FakeDiscordUserInput, startFakeDiscord } from './discordApi.js';

const GUILD_ID = '1200000000000000001';
const CHANNEL_ID = '1200000000000000010';
const OTHER_CHANNEL_ID = '1200000000000000011';
const APPROVER_ROLE = '1200000000000000020';
const ALICE = { id: '1200000000000000100', username: 'alice', global_name: 'Alice' };
const BOB = { id: '1200000000000000101', username: 'bob' };

type Handler = (interaction: Interaction) => Promise<void>;

let fake: FakeDiscord;
let client: Client;
let handler: Handler | undefined;
const clientErrors: unknown[] = [];
const seen: Interaction[] = [];

function approvalRow(requestId: string, disabled = false) {
  return new ActionRowBuilder<ButtonBuilder>().addComponents(
    new ButtonBuilder()
      .setCustomId(`approve:${requestId}`)
      .setLabel('Approve')
      .setStyle(ButtonStyle.Success)
      .setDisabled(disabled),
    new ButtonBuilder()
      .setCustomId(`deny:${requestId}`)
      .setLabel('Deny')
      .setStyle(ButtonStyle.Danger)
      .setDisabled(disabled),
  );
}

async function channel(): Promise<TextChannel> {
  const ch = await client.channels.fetch(CHANNEL_ID);
  if (!ch?.isTextBased()) throw new Error('approvals channel is not text based');
  return ch as TextChannel;
}

async function postApproval(requestId: string) {
  const ch = await channel();
  return ch.send({
    embeds: [
      new EmbedBuilder()
        .setTitle('Permission request')
        .setDescription(`deploy-bot wants db.write (${requestId})`),
    ],
    components: [approvalRow(requestId)],
  });
}

/** A click on a button of `msg`, a message posted in the approvals channel. */
function click(customId: string, user: FakeDiscordUserInput, msg: { id: string }) {
  return fake.clickButton({ customId, user, channelId: CHANNEL_ID, messageId: msg.id });
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  fake = await startFakeDiscord({
    heartbeatIntervalMs: 1000,
    guild: {
      id: GUILD_ID,
      name: 'Agent OTP',
      channels: [
        { id: CHANNEL_ID, name: 'approvals', type: 0 },
        { id: OTHER_CHANNEL_ID, name: 'general', type: 0 },
      ],
      roles: [{ id: APPROVER_ROLE, name: 'approver' }],
      members: [
        { user: ALICE, roles: [APPROVER_ROLE] },
        { user: BOB, roles: [] },
      ],
    },
  });
  client = new Client({
    intents: [GatewayIntentBits.Guilds],
    rest: { api: fake.apiUrl, retries: 0, offset: 0 },
    // Re-identifying within 5 s would otherwise wait 5 s + up to 1.5 s of jitter (SimpleIdentifyThrottler).
    ws: { buildIdentifyThrottler: () => ({ waitForIdentify: async () => {} }) },
  });
  client.on(Events.Error, (err) => clientErrors.push(err));
  client.on(Events.ShardError, (err) => clientErrors.push(err));
  client.on(Events.InteractionCreate, (interaction) => {
    seen.push(interaction);
    const h = handler;
    if (h) h(interaction).catch((err: unknown) => clientErrors.push(err));
  });
  const ready = new Promise<void>((resolve) => client.once(Events.ClientReady, () => resolve()));
  await client.login(fake.botToken);
  await ready;
  await fake.ready();
});

afterAll(async () => {
  await client?.destroy();
  await fake?.close();
});

describe('fake Discord with a real discord.js Client', () => {
  it('logs in: GET /gateway/bot, plain JSON gateway, IDENTIFY with the intents, READY + GUILD_CREATE', () => {
    expect(client.isReady()).toBe(true);
    expect(client.user?.id).toBe(fake.applicationId);
    expect(fake.calls('GET /gateway/bot')).toHaveLength(1);
    expect(fake.calls('GET /gateway/bot')[0]?.authorization).toBe(`Bot ${fake.botToken}`);
    const conn = fake.gateway.connections[0];
    expect(conn?.path).toBe('/gateway');
    expect(conn?.query).toEqual({ v: '10', encoding: 'json' }); // no compress: zlib-sync is not installed
    const identify = fake.gateway.identifies[0];
    expect(identify?.intents).toBe(GatewayIntentBits.Guilds);
    expect(identify?.compress).toBe(false);
    expect(identify?.shard).toEqual([0, 1]);
    const guild = client.guilds.cache.get(GUILD_ID);
    expect(guild?.available).toBe(true);
    expect(guild?.name).toBe('Agent OTP');
    expect(guild?.channels.cache.get(CHANNEL_ID)?.name).toBe('approvals');
    expect(guild?.roles.cache.get(APPROVER_ROLE)?.name).toBe('approver');
    // Without GUILD_PRESENCES Discord only sends the bot's own member.
    expect(guild?.members.cache.map((m) => m.id)).toEqual([fake.applicationId]);
    const outgoing = fake.gateway.frames
      .filter((f) => f.direction === 'out' && f.op === 0)
      .map((f) => [f.t, f.s]);
    expect(outgoing.slice(0, 2)).toEqual([
      ['READY', 1],
      ['GUILD_CREATE', 2],
    ]);
  });

  it('answers heartbeats with HEARTBEAT_ACK', async () => {
    await fake.waitFor(() => fake.gateway.heartbeats >= 1, 3000);
    await fake.waitFor(() => client.ws.ping >= 0, 3000);
    expect(fake.gateway.frames.some((f) => f.direction === 'out' && f.op === 11)).toBe(true);
  });

  it('fetches a member over REST (the adapter cannot rely on the member cache)', async () => {
    const guild = client.guilds.cache.get(GUILD_ID);
    const alice = await guild?.members.fetch(ALICE.id);
    expect(alice?.roles.cache.has(APPROVER_ROLE)).toBe(true);
    expect(alice?.user.globalName).toBe('Alice');
    expect(fake.calls('GET /guilds/:guildId/members/:userId').at(-1)?.path).toBe(
      `/guilds/${GUILD_ID}/members/${ALICE.id}`,
    );
    const err = await rejection(guild!.members.fetch('1200000000000009999'));
    expect(err).toBeInstanceOf(DiscordAPIError);
    expect((err as DiscordAPIError).code).toBe(10007);
  });

  it('posts a message with an embed and a button row, then edits it', async () => {
    const msg = await postApproval('r1');
    const post = fake.calls('POST /channels/:channelId/messages').at(-1);
    expect(post?.path).toBe(`/channels/${CHANNEL_ID}/messages`);
    expect(post?.body).toMatchObject({
      embeds: [{ title: 'Permission request' }],
      components: [{ type: 1, components: [{ type: 2, custom_id: 'approve:r1' }, { custom_id: 'deny:r1' }] }],
    });
    const stored = fake.messages.get(msg.id);
    expect(stored?.channelId).toBe(CHANNEL_ID);
    expect(stored?.current.author.id).toBe(fake.applicationId);
    expect(msg.author.id).toBe(fake.applicationId);
    expect(msg.embeds[0]?.title).toBe('Permission request');
    expect(msg.components).toHaveLength(1);

    const edited = await msg.edit({
      embeds: [new EmbedBuilder().setTitle('Permission request').setDescription('approved by alice')],
      components: [approvalRow('r1', true)],
    });
    expect(fake.calls('PATCH /channels/:channelId/messages/:messageId').at(-1)?.path).toBe(
      `/channels/${CHANNEL_ID}/messages/${msg.id}`,
    );
    expect(stored?.history).toHaveLength(1);
    expect(stored?.history[0]?.embeds[0]?.description).toContain('r1');
    expect(stored?.current.embeds[0]?.description).toBe('approved by alice');
    expect(stored?.current.edited_timestamp).not.toBeNull();
    expect(edited.editedTimestamp).not.toBeNull();

    // Disabled buttons cannot be clicked (force: true models a stale client).
    await expect(click('approve:r1', ALICE, msg)).rejects.toThrow(/no enabled button/);

    const err = await rejection(
      client.rest.patch(`/channels/${CHANNEL_ID}/messages/1200000000000009999`, { body: { content: 'x' } }),
    );
    expect((err as DiscordAPIError).status).toBe(404);
    expect((err as DiscordAPIError).code).toBe(10008);
  });

  it('delivers a button click; an ephemeral reply is callback type 4 with flags 64', async () => {
    const msg = await postApproval('r2');
    handler = async (interaction) => {
      if (!interaction.isButton()) return;
      expect(interaction.customId).toBe('approve:r2');
      expect(interaction.user.id).toBe(ALICE.id);
      expect(interaction.inCachedGuild() && interaction.member.roles.cache.has(APPROVER_ROLE)).toBe(true);
      expect(interaction.message.id).toBe(msg.id);
      expect(interaction.channelId).toBe(CHANNEL_ID);
      await interaction.reply({
        content: 'Noted — waiting for a second approver.',
        flags: MessageFlags.Ephemeral,
      });
    };
    const cb = await click('approve:r2', ALICE, msg);
    expect(cb.type).toBe(4);
    expect(cb.flags).toBe(64);
    expect(cb.data?.content).toBe('Noted — waiting for a second approver.');
    const reply = fake.messages.get(cb.messageId ?? '');
    expect(reply?.ephemeral).toBe(true);
    expect(reply?.current.interaction_metadata?.user.id).toBe(ALICE.id);
    // Ephemeral messages are invisible to channel routes.
    await expect(client.rest.get(`/channels/${CHANNEL_ID}/messages/${reply?.id}`)).rejects.toMatchObject({
      code: 10008,
    });
    const callback = fake.calls('POST /interactions/:interactionId/:token/callback').at(-1);
    expect(callback?.authorization).toBeNull(); // discord.js sends interaction callbacks without auth
    expect(callback?.status).toBe(204);
  });

  it('interaction.update() is callback type 7 and edits the stored message', async () => {
    const msg = await postApproval('r3');
    handler = async (interaction) => {
      if (!interaction.isButton()) return;
      await interaction.update({
        embeds: [new EmbedBuilder().setTitle('Permission request').setDescription('Denied by bob')],
        components: [approvalRow('r3', true)],
      });
    };
    const cb = await click('deny:r3', BOB, msg);
    expect(cb.type).toBe(7);
    expect(cb.messageId).toBe(msg.id);
    const stored = fake.messages.get(msg.id);
    expect(stored?.history).toHaveLength(1);
    expect(stored?.current.embeds[0]?.description).toBe('Denied by bob');
    expect(JSON.stringify(stored?.current.components)).toContain('"disabled":true');

    // A second response to the same interaction is refused like Discord does (40060).
    const ix = fake.interactions.get(cb.interactionId);
    const again = await rejection(
      client.rest.post(`/interactions/${ix?.id}/${ix?.token}/callback`, { body: { type: 6 }, auth: false }),
    );
    expect((again as DiscordAPIError).code).toBe(40060);
  });

  it('deferUpdate() + editReply() go through type 6 and PATCH @original on the component message', async () => {
    const msg = await postApproval('r4');
    handler = async (interaction) => {
      if (!interaction.isButton()) return;
      await interaction.deferUpdate();
      await interaction.editReply({ content: 'Approved', components: [] });
      await interaction.followUp({ content: 'Audit id 42', flags: MessageFlags.Ephemeral });
    };
    const cb = await click('approve:r4', ALICE, msg);
    expect(cb.type).toBe(6);
    await fake.waitFor(() => fake.calls('POST /webhooks/:applicationId/:token').length > 0);
    expect(fake.calls('PATCH /webhooks/:applicationId/:token/messages/@original')).toHaveLength(1);
    const stored = fake.messages.get(msg.id);
    expect(stored?.current.content).toBe('Approved');
    expect(stored?.current.components).toEqual([]);
    const followup = fake.messagesIn(CHANNEL_ID).find((m) => m.source === 'followup');
    expect(followup?.ephemeral).toBe(true);
    expect(followup?.current.content).toBe('Audit id 42');
  });

  it('showModal() is callback type 9; the modal submit reaches the bot with its fields', async () => {
    const msg = await postApproval('r5');
    const modalSubmits: { reason: string; ticket: string; fromMessage: boolean }[] = [];
    handler = async (interaction) => {
      if (interaction.isButton()) {
        await interaction.showModal(
          new ModalBuilder()
            .setCustomId('deny-reason:r5')
            .setTitle('Why deny?')
            .addLabelComponents(
              new LabelBuilder()
                .setLabel('Reason')
                .setTextInputComponent(
                  new TextInputBuilder()
                    .setCustomId('reason')
                    .setStyle(TextInputStyle.Paragraph)
                    .setMaxLength(500),
                ),
              new LabelBuilder()
                .setLabel('Ticket')
                .setTextInputComponent(
                  new TextInputBuilder()
                    .setCustomId('ticket')
                    .setStyle(TextInputStyle.Short)
                    .setRequired(false),
                ),
            ),
        );
      } else if (interaction.isModalSubmit()) {
        modalSubmits.push({
          reason: interaction.fields.getTextInputValue('reason'),
          ticket: interaction.fields.getTextInputValue('ticket'),
          fromMessage: interaction.isFromMessage(),
        });
        if (interaction.isFromMessage()) {
          await interaction.update({ content: 'Denied', components: [approvalRow('r5', true)] });
        }
      }
    };
    const modalCb = await click('deny:r5', ALICE, msg);
    expect(modalCb.type).toBe(9);
    expect(modalCb.data).toMatchObject({ custom_id: 'deny-reason:r5', title: 'Why deny?' });

    await expect(
      fake.submitModal({
        customId: 'deny-reason:r5',
        user: ALICE,
        channelId: CHANNEL_ID,
        fields: { nope: 'x' },
      }),
    ).rejects.toThrow(/required|no field/);

    const submitCb = await fake.submitModal({
      customId: 'deny-reason:r5',
      user: ALICE,
      channelId: CHANNEL_ID,
      fields: { reason: 'not during the freeze' },
    });
    expect(modalSubmits).toEqual([{ reason: 'not during the freeze', ticket: '', fromMessage: true }]);
    expect(submitCb.type).toBe(7);
    expect(fake.messages.get(msg.id)?.current.content).toBe('Denied');
    const payload = fake.interactions.get(submitCb.interactionId)?.payload;
    expect(payload).toMatchObject({
      type: 5,
      data: {
        custom_id: 'deny-reason:r5',
        components: [{ type: 18, component: { type: 4, custom_id: 'reason' } }, {}],
      },
      message: { id: msg.id },
    });
  });

  it('legacy action-row modals submit as rows of text inputs', async () => {
    const msg = await postApproval('r6');
    let value: string | undefined;
    let responseContent: string | undefined;
    handler = async (interaction) => {
      if (interaction.isButton()) {
        await interaction.showModal({
          custom_id: 'legacy:r6',
          title: 'Legacy',
          components: [
            {
              type: 1,
              components: [{ type: 4, custom_id: 'why', label: 'Why', style: TextInputStyle.Short }],
            },
          ],
        });
      } else if (interaction.isModalSubmit()) {
        value = interaction.fields.getTextInputValue('why');
        const response = await interaction.reply({
          content: 'ok',
          flags: MessageFlags.Ephemeral,
          withResponse: true,
        });
        responseContent = response.resource?.message?.content;
      }
    };
    await click('deny:r6', BOB, msg);
    const cb = await fake.submitModal({
      customId: 'legacy:r6',
      user: BOB,
      channelId: CHANNEL_ID,
      fields: { why: 'because' },
    });
    expect(value).toBe('because');
    // clickButton/submitModal resolve when the fake has the callback, before the bot's reply() has returned.
    expect(await fake.waitFor(() => responseContent, 2000)).toBe('ok'); // ?with_response=true answers 200 with the interaction callback response
    expect(cb.type).toBe(4);
    expect(fake.interactions.get(cb.interactionId)?.payload).toMatchObject({
      data: { components: [{ type: 1, components: [{ type: 4, custom_id: 'why', value: 'because' }] }] },
    });
  });

  it("refuses bodies over Discord's limits with 400 / 50035 and the offending path", async () => {
    const ch = await channel();
    const err = await rejection(
      ch.send({ embeds: [{ title: 'too big', fields: [{ name: 'diff', value: 'x'.repeat(1025) }] }] }),
    );
    expect(err).toBeInstanceOf(DiscordAPIError);
    const apiErr = err as DiscordAPIError;
    expect(apiErr.status).toBe(400);
    expect(apiErr.code).toBe(50035);
    expect(apiErr.rawError).toMatchObject({
      message: 'Invalid Form Body',
      errors: {
        embeds: { 0: { fields: { 0: { value: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH' }] } } } } },
      },
    });
    expect(apiErr.message).toContain('embeds[0].fields[0].value');

    const tooLong = await rejection(ch.send({ content: 'y'.repeat(2001) }));
    expect((tooLong as DiscordAPIError).code).toBe(50035);
    const total = await rejection(
      ch.send({
        embeds: [
          { description: 'a'.repeat(4096) },
          { description: 'b'.repeat(2000) }, // 6096 > 6000 in total
        ],
      }),
    );
    expect((total as DiscordAPIError).rawError).toMatchObject({
      errors: { embeds: { _errors: [{ code: 'MAX_EMBED_SIZE_EXCEEDED' }] } },
    });
    const rows = await rejection(
      ch.send({ content: 'x', components: Array.from({ length: 6 }, (_, i) => approvalRow(`rows${i}`)) }),
    );
    expect((rows as DiscordAPIError).rawError).toMatchObject({ errors: { components: { _errors: [{}] } } });
    const dup = await rejection(
      ch.send({ content: 'x', components: [approvalRow('same'), approvalRow('same')] }),
    );
    expect(JSON.stringify((dup as DiscordAPIError).rawError)).toContain('COMPONENT_CUSTOM_ID_DUPLICATED');
    const empty = await rejection(client.rest.post(`/channels/${CHANNEL_ID}/messages`, { body: {} }));
    expect((empty as DiscordAPIError).code).toBe(50006);

    // Modal limits: title <= 45.
    const msg = await postApproval('r7');
    let modalError: unknown;
    handler = async (interaction) => {
      if (!interaction.isButton()) return;
      try {
        await interaction.showModal({
          custom_id: 'm',
          title: 't'.repeat(46),
          components: [{ type: 1, components: [{ type: 4, custom_id: 'a', label: 'A', style: 1 }] }],
        });
      } catch (e) {
        modalError = e;
        await interaction.reply({ content: 'fallback', flags: MessageFlags.Ephemeral });
      }
    };
    const cb = await click('approve:r7', ALICE, msg);
    expect(cb.type).toBe(4);
    expect((modalError as DiscordAPIError).rawError).toMatchObject({
      errors: { data: { title: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH' }] } } },
    });
  });

  it('injects failures: 429 is retried after retry_after, 500 surfaces with retries: 0, bad token is 401', async () => {
    const ch = await channel();
    fake.failNext('POST /channels/:channelId/messages', { status: 429, retryAfter: 0.05 });
    const before = fake.calls('POST /channels/:channelId/messages').length;
    const msg = await ch.send('after a rate limit');
    const posts = fake.calls('POST /channels/:channelId/messages').slice(before);
    expect(posts.map((c) => c.status)).toEqual([429, 200]);
    expect(msg.content).toBe('after a rate limit');

    fake.failNext(`POST /channels/${CHANNEL_ID}/messages`, { status: 500 });
    const err = await rejection(ch.send('boom'));
    expect(err).toBeInstanceOf(HTTPError);
    expect((err as HTTPError).status).toBe(500);

    const res = await fetch(`${fake.apiUrl}/v10/users/@me`, { headers: { Authorization: 'Bot wrong' } });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ message: '401: Unauthorized', code: 0 });
  });

  it('resumes after the gateway drops and replays what it missed', async () => {
    const resumed = new Promise<number>((resolve) =>
      client.once(Events.ShardResume, (_id, replayed) => resolve(replayed)),
    );
    const msg = await postApproval('r8');
    handler = async (interaction) => {
      if (interaction.isButton())
        await interaction.reply({ content: 'after resume', flags: MessageFlags.Ephemeral });
    };
    const resumesBefore = fake.gateway.resumes.length;
    await fake.dropGateway({ code: 4000 });
    expect(fake.isConnected()).toBe(false);
    // Clicked while the bot is away: buffered in the session and replayed on RESUME.
    const cb = await click('approve:r8', ALICE, msg);
    expect(cb.type).toBe(4);
    expect(await resumed).toBeGreaterThanOrEqual(1);
    const resume = fake.gateway.resumes[resumesBefore];
    expect(resume).toMatchObject({ ok: true });
    expect(fake.gateway.connections.at(-1)?.path).toBe('/resume-gateway');
    expect(fake.gateway.identifies).toHaveLength(1);
  });

  it('op 7 RECONNECT: the client closes with 4200 and resumes', async () => {
    const resumesBefore = fake.gateway.resumes.length;
    const connsBefore = fake.gateway.connections.length;
    fake.sendReconnect();
    await fake.waitFor(() => fake.gateway.resumes.length > resumesBefore && fake.isConnected(), 5000);
    expect(fake.gateway.connections[connsBefore - 1]).toMatchObject({ closeCode: 4200, closedBy: 'client' });
    expect(fake.gateway.resumes.at(-1)?.ok).toBe(true);
    const msg = await postApproval('r9');
    handler = async (interaction) => {
      if (interaction.isButton()) await interaction.deferUpdate();
    };
    const cb = await click('deny:r9', BOB, msg);
    expect(cb.type).toBe(6);
  });

  it('a lost session makes the client re-identify (INVALID_SESSION false on RESUME) and keep working', async () => {
    const identifiesBefore = fake.gateway.identifies.length;
    await fake.dropGateway({ code: 4000, invalidateSession: true });
    await fake.waitFor(() => fake.gateway.identifies.length > identifiesBefore && fake.isConnected(), 8000);
    expect(fake.gateway.resumes.at(-1)?.ok).toBe(false);
    expect(fake.gateway.frames.some((f) => f.direction === 'out' && f.op === 9 && f.d === false)).toBe(true);
    const msg = await postApproval('r10');
    handler = async (interaction) => {
      if (interaction.isButton())
        await interaction.reply({ content: 'still here', flags: MessageFlags.Ephemeral });
    };
    // The new session is up once its GUILD_CREATE is in.
    await fake.waitFor(() => client.isReady() && client.guilds.cache.get(GUILD_ID)?.available, 5000);
    const cb = await click('approve:r10', ALICE, msg);
    expect(cb.type).toBe(4);
  });

  it('an unacked heartbeat is a zombie connection: the client reconnects and resumes', async () => {
    const resumesBefore = fake.gateway.resumes.length;
    fake.setHeartbeatAcks(false);
    try {
      await fake.waitFor(() => fake.gateway.resumes.length > resumesBefore, 6000);
    } finally {
      fake.setHeartbeatAcks(true);
    }
    await fake.waitFor(() => fake.isConnected(), 3000);
    expect(fake.gateway.resumes.at(-1)?.ok).toBe(true);
  });

  it('a late initial response is refused with 10062 Unknown interaction', async () => {
    const slow = await startFakeDiscord({ interactionResponseWindowMs: 50, botToken: 'slow-token' });
    try {
      const raw = new WebSocket(`${slow.gatewayUrl}?v=10&encoding=json`);
      await new Promise((r) => raw.once('open', r));
      raw.send(
        JSON.stringify({ op: 2, d: { token: 'slow-token', intents: 1, properties: {}, shard: [0, 1] } }),
      );
      await slow.ready();
      const payload = {
        id: '1300000000000000001',
        token: 'tok',
        type: 3,
        application_id: slow.applicationId,
        channel_id: '1',
        channel: { id: '1', type: 1 },
        data: { component_type: 2, custom_id: 'x' },
      };
      const pending = slow.sendInteraction(payload, 1000).catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 80));
      const res = await fetch(`${slow.apiUrl}/v10/interactions/${payload.id}/tok/callback`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 6 }),
      });
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ message: 'Unknown interaction', code: 10062 });
      expect(String(await pending)).toMatch(/10062/);
      raw.terminate();
    } finally {
      await slow.close();
    }
  });

  it('saw only the interactions it was sent, and no client errors', () => {
    expect(seen.every((i) => i.isButton() || i.isModalSubmit())).toBe(true);
    expect(clientErrors).toEqual([]);
  });
});

describe('raw gateway protocol', () => {
  /** A bare ws client whose listeners are attached before the handshake (HELLO can arrive with it). */
  function connect(url: string) {
    const ws = new WebSocket(url);
    const frames: { data: Buffer; isBinary: boolean }[] = [];
    const waiting: (() => void)[] = [];
    ws.on('message', (data, isBinary) => {
      frames.push({ data: data as Buffer, isBinary });
      for (const w of waiting.splice(0)) w();
    });
    const closeCode = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    const opened = new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    let read = 0;
    async function next(): Promise<{ data: Buffer; isBinary: boolean }> {
      while (frames.length <= read) await new Promise<void>((r) => waiting.push(r));
      return frames[read++]!;
    }
    return { ws, opened, next, closeCode };
  }

  it('supports compress=zlib-stream (one deflate context, Z_SYNC_FLUSH per frame)', async () => {
    const f = await startFakeDiscord({ botToken: 'raw-token', heartbeatIntervalMs: 1234 });
    try {
      const c = connect(`${f.gatewayUrl}?v=10&encoding=json&compress=zlib-stream`);
      await c.opened;
      c.ws.send(JSON.stringify({ op: 1, d: null }));
      c.ws.send(
        JSON.stringify({ op: 2, d: { token: 'raw-token', intents: 0, properties: {}, shard: [0, 1] } }),
      );
      const chunks: Buffer[] = [];
      const payloads: Record<string, unknown>[] = [];
      let decodedBytes = 0;
      while (payloads.length < 3) {
        const frame = await c.next();
        expect(frame.isBinary).toBe(true);
        chunks.push(frame.data);
        const all = inflateSync(Buffer.concat(chunks), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
        payloads.push(JSON.parse(all.subarray(decodedBytes).toString('utf8')) as Record<string, unknown>);
        decodedBytes = all.length;
      }
      expect(payloads[0]).toMatchObject({ op: 10, d: { heartbeat_interval: 1234 } });
      expect(payloads[1]).toMatchObject({ op: 11 });
      expect(payloads[2]).toMatchObject({
        op: 0,
        t: 'READY',
        s: 1,
        d: { resume_gateway_url: f.resumeGatewayUrl },
      });
      c.ws.terminate();
    } finally {
      await f.close();
    }
  });

  it('closes 4004 on a bad token, 4003 before identify, 4012 on a wrong version', async () => {
    const f = await startFakeDiscord({ botToken: 'raw-token' });
    try {
      const a = connect(`${f.gatewayUrl}?v=10&encoding=json`);
      expect(JSON.parse(String((await a.next()).data))).toMatchObject({ op: 10 });
      a.ws.send(JSON.stringify({ op: 2, d: { token: 'nope', intents: 1, properties: {} } }));
      expect(await a.closeCode).toBe(4004);

      const b = connect(`${f.gatewayUrl}?v=10&encoding=json`);
      await b.next();
      b.ws.send(JSON.stringify({ op: 3, d: { status: 'online' } }));
      expect(await b.closeCode).toBe(4003);

      const c = connect(`${f.gatewayUrl}?v=9&encoding=json`);
      expect(await c.closeCode).toBe(4012);
    } finally {
      await f.close();
    }
  });
});
