import { tmpdir } from 'node:os';
import { discordChannel } from '../../src/chat/discord/channel.js';
import { loadConfig } from '../../src/config.js';
import { type StoredMessage, startFakeDiscord } from '../fakes/discordApi.js';
import type { ChannelFixture, ConformanceUser } from './channelConformance.js';
import { describeChannelConformance } from './channelConformance.js';

/**
 * Discord through the conformance suite: the real plug-in (DiscordPlatform over REST, the bot on
 * the gateway) against the fake Discord; presses are INTERACTION_CREATE events the fake sends on
 * the gateway, and what a message shows is read from the fake's stored messages.
 */

const GUILD_ID = '1500000000000000001';
const APPROVALS = '1500000000000000010';
const PAYMENTS = '1500000000000000011';
const SECURITY = '1500000000000000012';
const APPROVER_ROLE = '1500000000000000020';
const USERS = {
  alice: { id: '1500000000000000100', name: 'alice' },
  bob: { id: '1500000000000000101', name: 'bob' },
  stranger: { id: '1500000000000000103', name: 'mallory' },
  groupMember: { id: '1500000000000000102', name: 'carol' },
};

const EPHEMERAL = 64;
const CHANNEL_MESSAGE = 4;

const visible = (m: StoredMessage) =>
  JSON.stringify({ content: m.current.content, embeds: m.current.embeds, components: m.current.components });
const hasButtons = (m: StoredMessage) =>
  (m.current.components ?? []).some((row) => 'components' in row && row.components.length > 0);
const isCard = (m: StoredMessage) => m.source === 'channel' && !m.deleted && m.current.embeds.length > 0;

describeChannelConformance('discord', async ({ interactions, logger }) => {
  const fake = await startFakeDiscord({
    heartbeatIntervalMs: 1000,
    guild: {
      id: GUILD_ID,
      name: 'Agent OTP conformance',
      channels: [
        { id: APPROVALS, name: 'approvals' },
        { id: PAYMENTS, name: 'payments' },
        { id: SECURITY, name: 'security' },
      ],
      roles: [{ id: APPROVER_ROLE, name: 'approvers' }],
      members: [
        { user: { id: USERS.alice.id, username: USERS.alice.name }, roles: [] },
        { user: { id: USERS.bob.id, username: USERS.bob.name }, roles: [] },
        { user: { id: USERS.groupMember.id, username: USERS.groupMember.name }, roles: [APPROVER_ROLE] },
        { user: { id: USERS.stranger.id, username: USERS.stranger.name }, roles: [] },
      ],
    },
  });
  const config = loadConfig({
    AGENT_OTP_DATA_DIR: tmpdir(),
    DISCORD_BOT_TOKEN: fake.botToken,
    DISCORD_API_URL: fake.apiUrl,
    DISCORD_APPROVAL_CHANNEL_ID: APPROVALS,
    DISCORD_APPROVERS: `${USERS.alice.id},${USERS.bob.id}`,
    DISCORD_APPROVER_ROLES: APPROVER_ROLE,
  });
  // Interactions arrive over the gateway, in the bot role.
  const created = await discordChannel.create({ config, roles: ['bot'], logger, interactions });
  if (!created) throw new Error('the Discord plug-in did not start with a bot token');
  const channel = {
    ...created,
    // Ready once the gateway session is: a press before that would reach no one.
    start: async () => {
      await created.start?.();
      await fake.ready();
    },
  };
  const told = new Map<string, string[]>();
  const toldTo = (user: ConformanceUser) => told.get(user.id) ?? [];
  const fixture: ChannelFixture = {
    channel,
    defaultChannel: APPROVALS,
    policyChannel: { entry: `discord:${PAYMENTS}`, id: PAYMENTS },
    escalationChannel: { entry: `discord:${SECURITY}`, id: SECURITY },
    users: USERS,
    async fromAnotherProcess() {
      // No bot role: REST only, as a worker posts and edits.
      const worker = await discordChannel.create({ config, roles: ['worker'], logger, interactions });
      if (!worker) throw new Error('the Discord plug-in did not start with a bot token');
      return worker.adapter;
    },
    personEntry: (user) => `discord:@${user.id}`,
    named: (user) => `<@${user.id}>`,
    async press(user, posted, permissionId, approved) {
      const message = fake.messages.get(posted.messageRef);
      const callback = await fake.clickButton({
        customId: `aotp:${approved ? 'approve' : 'deny'}:${permissionId}`,
        user: { id: user.id, username: user.name },
        channelId: posted.channel,
        messageId: posted.messageRef,
        // The fake checks the button is on the message; once decided it is gone, and a press
        // comes only from a client still showing the older message.
        force: !message || !hasButtons(message),
      });
      // A note only the clicker sees is an ephemeral reply to the interaction.
      if (callback.type === CHANNEL_MESSAGE && (callback.flags & EPHEMERAL) === EPHEMERAL)
        told.set(user.id, [...toldTo(user), String(callback.data?.content ?? '')]);
    },
    toldTo,
    postedFor: (channelId, permissionId) =>
      fake
        .messagesIn(channelId)
        .filter((m) => isCard(m) && m.current.embeds.some((e) => e.footer?.text === `ID: ${permissionId}`))
        .map((m) => m.id),
    shown(posted) {
      const m = fake.messages.get(posted.messageRef);
      return m ? { text: visible(m), buttons: hasButtons(m), edits: m.history.length } : null;
    },
    thread: (posted) =>
      fake
        .messagesIn(posted.channel)
        .filter((m) => m.current.message_reference?.message_id === posted.messageRef)
        .map((m) => m.current.content),
    channelNotes: (channelId) =>
      fake
        .messagesIn(channelId)
        .filter((m) => m.source === 'channel' && !isCard(m) && !m.current.message_reference)
        .map((m) => m.current.content),
    close: () => fake.close(),
  };
  return fixture;
});
