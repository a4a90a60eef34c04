import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { slackChannel } from '../../src/chat/slack/channel.js';
import { loadConfig } from '../../src/config.js';
import { type FakeMessage, startFakeSlack } from '../fakes/slackApi.js';
import { blockActionPayload, postSlack } from '../fakes/slackRequests.js';
import { type ChannelFixture, describeChannelConformance, type PostedMessage } from './channelConformance.js';

/**
 * Slack through the conformance suite: the real plug-in (SlackPlatform, Bolt in HTTP mode on the
 * API server) against the fake Slack Web API; presses are signed interaction requests to the
 * mounted POST /slack/events, and what a message shows is read from the fake's stored messages.
 */

const SIGNING_SECRET = `sign_${randomBytes(16).toString('hex')}`;
const TEAM = { id: 'T0CONFORM', domain: 'conform' };
const APPROVALS = 'C0APPROVALS';
const PAYMENTS = 'C0PAYMENTS';
const SECURITY = 'C0SECURITY';
const GROUP = 'S0LEADS';
const USERS = {
  alice: { id: 'U0ALICE', name: 'alice' },
  bob: { id: 'U0BOB', name: 'bob' },
  stranger: { id: 'U0MALLORY', name: 'mallory' },
  groupMember: { id: 'U0CAROL', name: 'carol' },
};

/** What a person sees: the text and blocks, without the block ids Slack assigns on every edit. */
const visible = (m: FakeMessage) =>
  `${m.text}\n${JSON.stringify(m.blocks ?? [], (key, value) => (key === 'block_id' ? undefined : value))}`;
const isCard = (m: FakeMessage) => !m.thread_ts && (m.blocks ?? []).length > 0;
const hasButtons = (m: FakeMessage) => (m.blocks ?? []).some((b) => b.type === 'actions');

function splitRef(ref: string) {
  const slash = ref.lastIndexOf('/');
  return { channel: ref.slice(0, slash), ts: ref.slice(slash + 1) };
}

describeChannelConformance('slack', async ({ interactions, logger, apiUrl }) => {
  const fake = await startFakeSlack({
    users: Object.fromEntries(Object.values(USERS).map((u) => [u.id, { name: u.name }])),
    usergroups: { [GROUP]: [USERS.groupMember.id] },
    channels: [APPROVALS, PAYMENTS, SECURITY],
    teamId: TEAM.id,
    serverPingIntervalMs: 0,
  });
  const config = loadConfig({
    AGENT_OTP_DATA_DIR: tmpdir(),
    SLACK_BOT_TOKEN: fake.botToken,
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
    SLACK_API_URL: fake.apiUrl,
    SLACK_APPROVAL_CHANNEL: APPROVALS,
    SLACK_APPROVERS: `${USERS.alice.id},${USERS.bob.id},${GROUP}`,
  });
  // HTTP mode: Bolt's interactions arrive on the API server, so the `api` role receives them.
  const channel = await slackChannel.create({ config, roles: ['api'], logger, interactions });
  if (!channel) throw new Error('the Slack plug-in did not start with a bot token');
  const message = (m: PostedMessage) => {
    const { channel: id, ts } = splitRef(m.messageRef);
    return fake.getMessage(id, ts);
  };
  const fixture: ChannelFixture = {
    channel,
    defaultChannel: APPROVALS,
    policyChannel: { entry: `slack:${PAYMENTS}`, id: PAYMENTS },
    escalationChannel: { entry: `slack:${SECURITY}`, id: SECURITY },
    users: USERS,
    async fromAnotherProcess() {
      const worker = await slackChannel.create({ config, roles: ['worker'], logger, interactions });
      if (!worker) throw new Error('the Slack plug-in did not start with a bot token');
      return worker.adapter;
    },
    personEntry: (user) => `slack:@${user.id}`,
    named: (user) => `<@${user.id}>`,
    async press(user, posted, permissionId, approved) {
      const m = message(posted);
      if (!m) throw new Error(`no Slack message ${posted.messageRef}`);
      const payload = blockActionPayload({
        user,
        team: TEAM,
        actionId: approved ? 'aotp_approve' : 'aotp_deny',
        value: permissionId,
        channel: m.channel,
        messageTs: m.ts,
        message: m,
      });
      const res = await postSlack(`${apiUrl()}/slack/events`, SIGNING_SECRET, payload);
      if (res.status !== 200) throw new Error(`POST /slack/events answered ${res.status}: ${res.text}`);
    },
    toldTo: (user) => fake.ephemerals.filter((e) => e.user === user.id).map((e) => e.text),
    postedFor: (channelId, permissionId) =>
      fake.messages
        .filter((m) => m.channel === channelId && isCard(m) && visible(m).includes(permissionId))
        .map((m) => `${m.channel}/${m.ts}`),
    shown(posted) {
      const m = message(posted);
      return m ? { text: visible(m), buttons: hasButtons(m), edits: m.versions.length - 1 } : null;
    },
    thread(posted) {
      const { channel: id, ts } = splitRef(posted.messageRef);
      return fake.messages.filter((m) => m.channel === id && m.thread_ts === ts).map((m) => m.text);
    },
    channelNotes: (channelId) =>
      fake.messages.filter((m) => m.channel === channelId && !m.thread_ts && !isCard(m)).map((m) => m.text),
    close: () => fake.close(),
  };
  return fixture;
});
