import { createServer } from 'node:net';
import { App, LogLevel, SocketModeReceiver, verifySlackRequest } from '@slack/bolt';
import { SocketModeClient } from '@slack/socket-mode';
import { type WebAPIPlatformError, WebClient } from '@slack/web-api';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type FakeSlack, startFakeSlack } from './slackApi.js';
import {
  blockActionPayload,
  formBody,
  nowSeconds,
  plainTextValues,
  postSlack,
  signSlackRequest,
  viewSubmissionPayload,
} from './slackRequests.js';

const CHANNEL = 'C0APPROVALS';
const ALICE = { id: 'U0ALICE', name: 'alice' };
const TEAM = { id: 'T0FAKETEAM', domain: 'fake' };

function section(text: string) {
  return { type: 'section', text: { type: 'mrkdwn', text } };
}

function approvalBlocks() {
  return [
    { type: 'header', text: { type: 'plain_text', text: 'Permission request' } },
    section('*deploy-bot* wants `db.write`'),
    {
      type: 'actions',
      block_id: 'decision',
      elements: [
        { type: 'button', action_id: 'approve', text: { type: 'plain_text', text: 'Approve' }, value: 'p1' },
        {
          type: 'button',
          action_id: 'deny',
          style: 'danger',
          text: { type: 'plain_text', text: 'Deny' },
          value: 'p1',
        },
      ],
    },
  ];
}

async function platformError(p: Promise<unknown>): Promise<WebAPIPlatformError> {
  try {
    await p;
  } catch (err) {
    return err as WebAPIPlatformError;
  }
  throw new Error('expected the call to fail');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

describe('fake Slack Web API with a real WebClient', () => {
  let fake: FakeSlack;
  let client: WebClient;

  beforeAll(async () => {
    fake = await startFakeSlack({
      users: { [ALICE.id]: { name: 'alice', real_name: 'Alice Liddell' } },
      usergroups: { S0ADMINS: [ALICE.id, 'U0BOB'] },
      channels: { [CHANNEL]: { name: 'approvals' } },
    });
    client = new WebClient(fake.botToken, {
      slackApiUrl: fake.apiUrl,
      retryConfig: { retries: 0 },
      logLevel: LogLevel.ERROR,
    });
  });
  afterEach(() => fake.reset());
  afterAll(() => fake.close());

  it('answers auth.test like Slack', async () => {
    const res = await client.auth.test();
    expect(res).toMatchObject({
      ok: true,
      team_id: fake.teamId,
      user_id: fake.botUserId,
      bot_id: fake.botId,
    });
    expect(res.url).toMatch(/^https:\/\//);
  });

  it('posts, updates and links a message; records form-encoded calls', async () => {
    const posted = await client.chat.postMessage({
      channel: CHANNEL,
      text: 'Approve?',
      blocks: approvalBlocks(),
    });
    expect(posted.ok).toBe(true);
    expect(posted.channel).toBe(CHANNEL);
    expect(posted.ts).toMatch(/^\d{10}\.\d{6}$/);
    expect(posted.message?.blocks).toHaveLength(3);

    const call = fake.calls('chat.postMessage')[0];
    expect(call?.encoding).toBe('form');
    expect(call?.token).toBe(fake.botToken);
    expect(Array.isArray(call?.args['blocks'])).toBe(true); // arrived as a JSON string, decoded

    const ts = posted.ts!;
    const updated = await client.chat.update({
      channel: CHANNEL,
      ts,
      text: 'Approved',
      blocks: [section('Done')],
    });
    expect(updated).toMatchObject({ ok: true, channel: CHANNEL, ts });
    const msg = fake.getMessage(CHANNEL, ts);
    expect(msg?.text).toBe('Approved');
    expect(msg?.blocks).toHaveLength(1);
    expect(msg?.versions.map((v) => v.via)).toEqual(['chat.postMessage', 'chat.update']);
    expect(fake.messages).toHaveLength(1);

    const link = await client.chat.getPermalink({ channel: CHANNEL, message_ts: ts });
    expect(link.permalink).toBe(`https://fake.slack.test/archives/${CHANNEL}/p${ts.replace('.', '')}`);

    const missing = await platformError(client.chat.update({ channel: CHANNEL, ts: '1.000001', text: 'x' }));
    expect(missing.data.error).toBe('message_not_found');
  });

  it("enforces Slack's limits", async () => {
    const tooMany = Array.from({ length: 51 }, (_, i) => section(`row ${i}`));
    const err = await platformError(
      client.chat.postMessage({ channel: CHANNEL, text: 't', blocks: tooMany }),
    );
    expect(err.code).toBe('slack_webapi_platform_error');
    expect(err.data.error).toBe('invalid_blocks');
    expect(err.data.response_metadata?.messages?.[0]).toContain('/blocks');

    const longHeader = [{ type: 'header', text: { type: 'plain_text', text: 'x'.repeat(151) } }];
    expect(
      (await platformError(client.chat.postMessage({ channel: CHANNEL, blocks: longHeader }))).data.error,
    ).toBe('invalid_blocks');
    const longButton = [
      {
        type: 'actions',
        elements: [{ type: 'button', action_id: 'a', text: { type: 'plain_text', text: 'x'.repeat(76) } }],
      },
    ];
    expect(
      (await platformError(client.chat.postMessage({ channel: CHANNEL, blocks: longButton }))).data.error,
    ).toBe('invalid_blocks');
    const tooLong = await platformError(
      client.chat.postMessage({ channel: CHANNEL, text: 'x'.repeat(40_001) }),
    );
    expect(tooLong.data.error).toBe('msg_too_long');
    const badFormat = await platformError(
      client.apiCall('chat.postMessage', { channel: CHANNEL, blocks: '{nope' }),
    );
    expect(badFormat.data.error).toBe('invalid_blocks_format');
    const nowhere = await platformError(client.chat.postMessage({ channel: 'C0NOWHERE', text: 'x' }));
    expect(nowhere.data.error).toBe('channel_not_found');
    expect(fake.messages).toHaveLength(0);
  });

  it('checks tokens', async () => {
    const wrong = new WebClient('xoxb-wrong', { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } });
    expect((await platformError(wrong.auth.test())).data.error).toBe('invalid_auth');
    const appTokenClient = new WebClient(fake.appToken, {
      slackApiUrl: fake.apiUrl,
      retryConfig: { retries: 0 },
    });
    expect(
      (await platformError(appTokenClient.chat.postMessage({ channel: CHANNEL, text: 'x' }))).data.error,
    ).toBe('not_allowed_token_type');
    expect((await platformError(client.apps.connections.open({}))).data.error).toBe('not_allowed_token_type');
  });

  it('injects failures once, and web-api retries the HTTP-level ones', async () => {
    fake.failNext('chat.postMessage', 'ratelimited');
    const err = await platformError(client.chat.postMessage({ channel: CHANNEL, text: 'x' }));
    expect(err.data.error).toBe('ratelimited');
    expect((await client.chat.postMessage({ channel: CHANNEL, text: 'x' })).ok).toBe(true);

    const retrying = new WebClient(fake.botToken, {
      slackApiUrl: fake.apiUrl,
      retryConfig: { retries: 2, minTimeout: 10, maxTimeout: 20 },
      logLevel: LogLevel.ERROR,
    });
    fake.failNext('chat.postMessage', { status: 500 });
    fake.failNext('chat.postMessage', { status: 429, retryAfter: 0 });
    expect((await retrying.chat.postMessage({ channel: CHANNEL, text: 'retried' })).ok).toBe(true);
    const statuses = fake.calls('chat.postMessage').map((c) => c.status);
    expect(statuses.slice(-3)).toEqual([500, 429, 200]);

    const rejecting = new WebClient(fake.botToken, {
      slackApiUrl: fake.apiUrl,
      rejectRateLimitedCalls: true,
      logLevel: LogLevel.ERROR,
    });
    fake.failNext('chat.update', { status: 429, retryAfter: 7 });
    await expect(rejecting.chat.update({ channel: CHANNEL, ts: '1.1', text: 'x' })).rejects.toMatchObject({
      code: 'slack_webapi_rate_limited_error',
      retryAfter: 7,
    });
  });

  it('opens modals, checking trigger_id and view limits', async () => {
    const view = {
      type: 'modal' as const,
      callback_id: 'narrow',
      private_metadata: 'p1',
      title: { type: 'plain_text' as const, text: 'Approve with changes' },
      submit: { type: 'plain_text' as const, text: 'Approve' },
      blocks: [
        {
          type: 'input',
          block_id: 'cap',
          label: { type: 'plain_text', text: 'Max rows' },
          element: { type: 'plain_text_input', action_id: 'value' },
        },
      ],
    };
    const noTrigger = await platformError(client.apiCall('views.open', { view }));
    expect(noTrigger.data.error).toBe('invalid_arguments');
    const longTitle = { ...view, title: { type: 'plain_text' as const, text: 'x'.repeat(25) } };
    expect(
      (await platformError(client.views.open({ trigger_id: '1.2.3', view: longTitle }))).data.error,
    ).toBe('invalid_arguments');
    const opened = await client.views.open({ trigger_id: '1.2.3', view });
    expect(opened.view?.id).toMatch(/^V/);
    expect(opened.view?.callback_id).toBe('narrow');
    expect(fake.views[0]?.trigger_id).toBe('1.2.3');
  });

  it('serves users, usergroups and conversations', async () => {
    const user = await client.users.info({ user: ALICE.id });
    expect(user.user).toMatchObject({ id: ALICE.id, name: 'alice', real_name: 'Alice Liddell' });
    expect(user.user?.profile?.display_name).toBe('alice');
    expect((await platformError(client.users.info({ user: 'U0NOBODY' }))).data.error).toBe('user_not_found');
    expect((await client.usergroups.users.list({ usergroup: 'S0ADMINS' })).users).toEqual([
      ALICE.id,
      'U0BOB',
    ]);
    const info = await client.conversations.info({ channel: CHANNEL });
    expect(info.channel).toMatchObject({ id: CHANNEL, name: 'approvals', is_channel: true });
    expect((await platformError(client.conversations.info({ channel: 'C0NOPE' }))).data.error).toBe(
      'channel_not_found',
    );
    const eph = await client.chat.postEphemeral({ channel: CHANNEL, user: ALICE.id, text: 'only you' });
    expect(eph.message_ts).toBeTruthy();
    expect(fake.ephemerals[0]?.text).toBe('only you');
  });

  it('accepts JSON bodies with the Authorization header', async () => {
    const res = await fetch(`${fake.apiUrl}chat.postMessage`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${fake.botToken}`,
        'content-type': 'application/json; charset=utf-8',
      },
      body: JSON.stringify({ channel: CHANNEL, text: 'json', blocks: [section('json')] }),
    });
    const body = (await res.json()) as { ok: boolean; ts: string };
    expect(body.ok).toBe(true);
    expect(fake.calls('chat.postMessage')[0]?.encoding).toBe('json');
    expect(fake.getMessage(CHANNEL, body.ts)?.blocks).toHaveLength(1);
  });

  it('waitFor resolves with a later call, and response_url replaces the original', async () => {
    const waiting = fake.waitFor((c) => c.method === 'chat.postMessage' && c.args['text'] === 'later', 2000);
    setTimeout(() => void client.chat.postMessage({ channel: CHANNEL, text: 'later' }), 20);
    const call = await waiting;
    const ts = String(call.response?.['ts']);
    await expect(fake.waitFor('users.info', 50)).rejects.toThrow(/no matching call/);

    const url = fake.responseUrl({ channel: CHANNEL, ts });
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ replace_original: true, text: 'replaced', blocks: [section('replaced')] }),
    });
    expect(res.status).toBe(200);
    expect(fake.getMessage(CHANNEL, ts)?.text).toBe('replaced');
    expect(fake.calls('response_url')).toHaveLength(1);
  });
});

describe('fake Slack Socket Mode with a real SocketModeClient', () => {
  let fake: FakeSlack;
  let client: SocketModeClient;

  beforeAll(async () => {
    fake = await startFakeSlack({ serverPingIntervalMs: 200 });
    client = new SocketModeClient({
      appToken: fake.appToken,
      clientOptions: { slackApiUrl: fake.apiUrl },
      clientPingTimeout: 1000, // also the reconnect delay
      logLevel: LogLevel.ERROR,
    });
  });
  afterAll(async () => {
    await client.disconnect();
    await fake.close();
  });

  it('connects, gets an interactive envelope, acks it with a payload, and reconnects after a drop', async () => {
    const received: unknown[] = [];
    client.on('interactive', async ({ ack, body }: { ack: (r?: object) => Promise<void>; body: unknown }) => {
      received.push(body);
      await ack({ response_action: 'errors', errors: { cap: 'Must be lower than 100' } });
    });
    await client.start();
    await fake.socketConnected();
    const open = fake.calls('apps.connections.open');
    expect(open).toHaveLength(1);
    expect(open[0]?.token).toBe(fake.appToken);

    const payload = viewSubmissionPayload({
      user: ALICE,
      team: TEAM,
      callbackId: 'narrow',
      privateMetadata: 'p1',
      values: plainTextValues({ cap: { value: '500' } }),
    });
    const ack = await fake.sendSocketEvent('interactive', { ...payload });
    expect(ack.envelope_id).toBeTruthy();
    expect(ack.payload).toEqual({ response_action: 'errors', errors: { cap: 'Must be lower than 100' } });
    expect(received).toHaveLength(1);

    // The client reconnects after clientPingTimeout. Wait for the client's own 'connected' too: stopping
    // it while a reconnect is still connecting leaves an unhandled rejection inside socket-mode.
    let reconnected = new Promise((resolve) => client.once('connected', resolve));
    await fake.dropSocket();
    await fake.socketConnected(10_000);
    await reconnected;
    expect(fake.calls('apps.connections.open')).toHaveLength(2);
    expect(fake.socketConnectionCount).toBe(2);
    const again = await fake.sendSocketEvent('interactive', { ...payload });
    expect(again.payload?.['response_action']).toBe('errors');

    reconnected = new Promise((resolve) => client.once('connected', resolve));
    await fake.dropSocket('disconnect'); // Slack's {type:'disconnect'}: the client closes and reconnects
    await fake.socketConnected(10_000);
    await reconnected;
    expect(fake.calls('apps.connections.open')).toHaveLength(3);
  }, 30_000);
});

describe('slackRequests helpers against Bolt', () => {
  const signingSecret = 'fake-signing-secret';
  let fake: FakeSlack;
  let app: App;
  let url: string;
  const seen: { action?: unknown; view?: unknown } = {};

  beforeAll(async () => {
    fake = await startFakeSlack();
    app = new App({
      token: fake.botToken,
      signingSecret,
      logLevel: LogLevel.ERROR,
      clientOptions: { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } },
    });
    app.action('approve', async ({ ack, body, client, action }) => {
      await ack();
      seen.action = action;
      if (body.type === 'block_actions' && body.channel && body.message) {
        await client.chat.update({
          channel: body.channel.id,
          ts: body.message.ts,
          text: 'Approved by alice',
        });
      }
    });
    app.view('narrow', async ({ ack, view }) => {
      seen.view = view.state.values;
      await ack({ response_action: 'errors', errors: { cap: 'too high' } });
    });
    const port = await freePort();
    await app.start(port);
    url = `http://127.0.0.1:${port}/slack/events`;
  });
  afterAll(async () => {
    await app.stop();
    await fake.close();
  });

  it('signs like Slack', () => {
    const body = formBody({ a: 1 });
    const headers = signSlackRequest(signingSecret, body, 1_700_000_000);
    expect(headers['x-slack-signature']).toMatch(/^v0=[0-9a-f]{64}$/);
    expect(() =>
      verifySlackRequest({
        signingSecret,
        body,
        headers: {
          'x-slack-signature': headers['x-slack-signature'],
          'x-slack-request-timestamp': Number(headers['x-slack-request-timestamp']),
        },
        nowMilliseconds: 1_700_000_000_000,
      }),
    ).not.toThrow();
  });

  it('drives a block action through Bolt into the fake', async () => {
    const posted = await new WebClient(fake.botToken, { slackApiUrl: fake.apiUrl }).chat.postMessage({
      channel: CHANNEL,
      text: 'Approve?',
      blocks: approvalBlocks(),
    });
    const message = fake.getMessage(CHANNEL, posted.ts!);
    const payload = blockActionPayload({
      user: ALICE,
      team: TEAM,
      actionId: 'approve',
      value: 'p1',
      channel: CHANNEL,
      messageTs: posted.ts!,
      ...(message ? { message } : {}),
    });
    expect(payload.actions[0]).toMatchObject({ block_id: 'decision', text: { text: 'Approve' } });
    const res = await postSlack(url, signingSecret, payload);
    expect(res.status).toBe(200);
    await fake.waitFor('chat.update');
    expect(fake.getMessage(CHANNEL, posted.ts!)?.text).toBe('Approved by alice');
    expect(seen.action).toMatchObject({ action_id: 'approve', value: 'p1', type: 'button' });
  });

  it('returns view_submission errors in the HTTP response', async () => {
    const payload = viewSubmissionPayload({
      user: ALICE,
      team: TEAM,
      callbackId: 'narrow',
      privateMetadata: 'p1',
      values: plainTextValues({ cap: { value: '500' } }),
    });
    const res = await postSlack(url, signingSecret, payload);
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ response_action: 'errors', errors: { cap: 'too high' } });
    expect(seen.view).toEqual({ cap: { value: { type: 'plain_text_input', value: '500' } } });
  });

  it('rejects forged and stale signatures', async () => {
    const payload = blockActionPayload({
      user: ALICE,
      team: TEAM,
      actionId: 'approve',
      value: 'p1',
      channel: CHANNEL,
      messageTs: '1.000001',
    });
    expect((await postSlack(url, signingSecret, payload, { signature: 'v0=deadbeef' })).status).toBe(401);
    expect((await postSlack(url, 'other-secret', payload)).status).toBe(401);
    expect((await postSlack(url, signingSecret, payload, { timestamp: nowSeconds() - 600 })).status).toBe(
      401,
    );
  });
});

describe('Bolt in Socket Mode against the fake', () => {
  it('starts, connects and acks a view submission with errors', async () => {
    const fake = await startFakeSlack();
    const receiver = new SocketModeReceiver({
      appToken: fake.appToken,
      logLevel: LogLevel.ERROR,
      installerOptions: { clientOptions: { slackApiUrl: fake.apiUrl } },
    });
    const app = new App({
      token: fake.botToken,
      receiver,
      logLevel: LogLevel.ERROR,
      clientOptions: { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } },
    });
    app.view('narrow', async ({ ack }) => {
      await ack({ response_action: 'errors', errors: { cap: 'too high' } });
    });
    try {
      await app.start();
      await fake.socketConnected();
      const ack = await fake.sendSocketEvent('interactive', {
        ...viewSubmissionPayload({
          user: ALICE,
          team: TEAM,
          callbackId: 'narrow',
          privateMetadata: 'p1',
          values: {},
        }),
      });
      expect(ack.payload).toEqual({ response_action: 'errors', errors: { cap: 'too high' } });
      expect(fake.calls('auth.test')).toHaveLength(1);
    } finally {
      // Bolt's SocketModeReceiver.stop() does not wait for the close handshake; wait for it before the
      // fake goes away, or the client logs a WebSocket error.
      const disconnected = new Promise((resolve) => receiver.client.once('disconnected', resolve));
      await app.stop();
      await disconnected;
      await fake.close();
    }
  });
});
