import type { Client, TextChannel } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDiscordBot, createDiscordClient } from '../../src/chat/discord/bot.js';
import { discordCustomId, renderDiscordMessage } from '../../src/chat/discord/render.js';
import type { ChatInteractions, ClickAnswer } from '../../src/chat/interactions.js';
import type { Permission } from '../../src/core/permission.js';
import { type FakeDiscord, type Json, snowflake, startFakeDiscord } from '../fakes/discordApi.js';
import { CARD_PERMISSION_ID, chatCard } from '../helpers/chatCard.js';
import { memoryLogger } from '../helpers/memoryLogger.js';

/**
 * The Discord adapter answers every interaction within Discord's 3 s, with the real discord.js
 * client against the fake Discord: unknown buttons, forms and component types get a short
 * ephemeral answer and reach no decision; a slow decision is deferred in time and then shown
 * (issue 11, defect 8). The shared chat flow is a stand-in here: what it decides is not under test.
 */

const GUILD_ID = '1400000000000000001';
const CHANNEL_ID = '1400000000000000010';
const ALICE = { id: '1400000000000000100', username: 'alice' };

const CHANNEL_MESSAGE = 4;
const DEFERRED_UPDATE = 6;
const EPHEMERAL = 64;

let fake: FakeDiscord;
let client: Client;
let bot: ReturnType<typeof createDiscordBot>;
const decisions: string[] = [];
let decide: () => Promise<ClickAnswer> = async () => ({ kind: 'note', text: 'no' });

const interactions = {
  click: async (_user: unknown, permissionId: string) => {
    decisions.push(permissionId);
    return decide();
  },
  openChanges: async () => ({ kind: 'open', card: chatCard() }),
  card: async () =>
    chatCard({ state: { kind: 'approved', by: null, at: new Date(), expiresAt: new Date() } }),
  noteRendered: async () => undefined,
} as unknown as ChatInteractions;

beforeAll(async () => {
  fake = await startFakeDiscord({
    heartbeatIntervalMs: 1000,
    guild: {
      id: GUILD_ID,
      name: 'Agent OTP',
      channels: [{ id: CHANNEL_ID, name: 'approvals', type: 0 }],
      roles: [],
      members: [{ user: ALICE, roles: [] }],
    },
  });
  client = createDiscordClient({ apiUrl: fake.apiUrl });
  bot = createDiscordBot(client, { token: fake.botToken, interactions, logger: memoryLogger().logger });
  await bot.start();
  await fake.ready();
});

afterAll(async () => {
  await bot?.stop();
  await fake?.close();
});

async function postCard() {
  const channel = (await client.channels.fetch(CHANNEL_ID)) as TextChannel;
  const message = renderDiscordMessage(chatCard());
  return channel.send({ content: message.content, embeds: message.embeds, components: message.components });
}

const click = (messageId: string, customId: string) =>
  fake.clickButton({ customId, user: ALICE, channelId: CHANNEL_ID, messageId, force: true, timeoutMs: 4000 });

function expectNotOurs(cb: { type: number; flags: number; data?: Json }) {
  expect(cb.type).toBe(CHANNEL_MESSAGE);
  expect(cb.flags & EPHEMERAL).toBe(EPHEMERAL);
  expect(String(cb.data?.content)).toMatch(/not one Agent OTP knows.*nothing was changed/);
}

describe('Discord interactions are always answered', () => {
  it('answers unknown buttons, mismatched ids and forms ephemerally, deciding nothing', async () => {
    const message = await postCard();
    decisions.length = 0;
    for (const customId of [
      'aotp:bogus:perm_x',
      'someone-else:thing',
      discordCustomId('modal', CARD_PERMISSION_ID),
    ]) {
      expectNotOurs(await click(message.id, customId));
    }
    // A form whose id is a button's (or not ours at all).
    for (const customId of [discordCustomId('approve', CARD_PERMISSION_ID), 'other:form']) {
      const cb = await fake.submitModal({
        customId,
        user: ALICE,
        channelId: CHANNEL_ID,
        fields: { x: 'y' },
        force: true,
      });
      expectNotOurs(cb);
    }
    expect(decisions).toEqual([]);
  });

  it('answers a component type it never sends (a select menu) instead of leaving it pending', async () => {
    const message = await postCard();
    await click(message.id, 'aotp:bogus:perm_x');
    const template = [...fake.interactions.values()].at(-1)?.payload as Json;
    const id = snowflake();
    const payload: Json = {
      ...template,
      id,
      token: `token-${id}`,
      data: { component_type: 3, custom_id: 'some-select', values: ['a'] },
    };
    expectNotOurs(await fake.sendInteraction(payload, 4000));
    expect(decisions).toEqual([]);
  });

  it('defers a slow decision before Discord gives up, then shows it', async () => {
    const message = await postCard();
    decide = async () => {
      await new Promise((r) => setTimeout(r, 3500));
      return { kind: 'decided', permission: {} as Permission };
    };
    const started = Date.now();
    const cb = await click(message.id, discordCustomId('approve', CARD_PERMISSION_ID));
    expect(cb.type).toBe(DEFERRED_UPDATE);
    expect(cb.at - started).toBeLessThan(3000);
    // The decision is then shown by editing the original message through the interaction webhook.
    await fake.waitFor(
      () =>
        fake
          .calls()
          .find(
            (c) =>
              c.route === 'PATCH /webhooks/:applicationId/:token/messages/:messageId' && c.status === 200,
          ),
      5000,
    );
    expect(JSON.stringify(fake.messagesIn(CHANNEL_ID).find((m) => m.id === message.id)?.current)).toContain(
      'Approved',
    );

    // A slow refusal is deferred the same way and then told to the clicker alone.
    decide = async () => {
      await new Promise((r) => setTimeout(r, 3500));
      return { kind: 'note', text: 'You are not an approver for this request.' };
    };
    const other = await postCard();
    const refused = await click(other.id, discordCustomId('deny', CARD_PERMISSION_ID));
    expect(refused.type).toBe(DEFERRED_UPDATE);
    const followup = await fake.waitFor(
      () => fake.calls().find((c) => c.route === 'POST /webhooks/:applicationId/:token' && c.status === 200),
      5000,
    );
    expect(JSON.stringify(followup.body)).toContain('not an approver');
    expect(((followup.body as Json).flags as number) & EPHEMERAL).toBe(EPHEMERAL);
  });
});
