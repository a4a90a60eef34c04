import { App, type BlockAction, LogLevel, type Receiver } from '@slack/bolt';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AckingSocketModeReceiver } from '../../src/chat/slack/ack.js';
import { FastifySlackReceiver } from '../../src/chat/slack/receiver.js';
import { type FakeSlack, startFakeSlack } from '../fakes/slackApi.js';
import {
  blockActionPayload,
  nowSeconds,
  postSlack,
  signSlackRequest,
  viewClosedPayload,
} from '../fakes/slackRequests.js';
import { memoryLogger } from '../helpers/memoryLogger.js';

/**
 * Our two Slack receivers under the real Bolt App, driven the way Slack drives them (signed HTTP
 * posts; Socket Mode envelopes from the fake Slack): every signed request is answered within
 * Slack's 3 seconds whether or not a listener handles it, and only a timestamp within 5 minutes
 * of now, either way, is accepted (issue 11, defects 7 and 8).
 */

const SIGNING_SECRET = 'test-signing-secret-0123456789';
const TEAM = { id: 'T0FAKETEAM', domain: 'fake' };
const ALICE = { id: 'U0ALICE', name: 'alice' };
const SLACK_DEADLINE_MS = 3000;

const button = (actionId: string) =>
  blockActionPayload({ user: ALICE, team: TEAM, actionId, value: 'perm_x', channel: 'C1', messageTs: '1.1' });

const viewClosed = viewClosedPayload({
  user: ALICE,
  team: TEAM,
  callbackId: 'aotp_narrow',
  privateMetadata: 'perm_x',
});

/** What each case's listener saw, so the tests can check the handled ones still ran. */
function boltApp(fake: FakeSlack, receiver: Receiver) {
  const seen: string[] = [];
  const app = new App({
    token: fake.botToken,
    receiver,
    logLevel: LogLevel.ERROR,
    clientOptions: { slackApiUrl: fake.apiUrl, retryConfig: { retries: 0 } },
  });
  app.action<BlockAction>('known', async ({ ack }) => {
    await ack();
    seen.push('known');
  });
  // A listener that never gets round to acking in time (a slow database, a slow Slack call).
  app.action<BlockAction>('slow', async ({ ack }) => {
    await new Promise((r) => setTimeout(r, 5000));
    seen.push('slow');
    await ack();
  });
  app.error(async () => undefined);
  return { app, seen };
}

/** How long `work` took; an answer that never comes fails after 5 s instead of hanging the suite. */
async function timed<T>(work: Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const never = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
  });
  try {
    const value = await Promise.race([work, never]);
    return { value, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

describe('FastifySlackReceiver (HTTP mode) under Bolt', () => {
  let fake: FakeSlack;
  let server: FastifyInstance;
  let url: string;
  let seen: string[];

  beforeAll(async () => {
    fake = await startFakeSlack({ teamId: TEAM.id, serverPingIntervalMs: 0 });
    const receiver = new FastifySlackReceiver(SIGNING_SECRET, memoryLogger().logger);
    const built = boltApp(fake, receiver);
    seen = built.seen;
    server = Fastify({ forceCloseConnections: true });
    receiver.register(server);
    const address = await server.listen({ port: 0, host: '127.0.0.1' });
    url = `${address}/slack/events`;
  });

  afterAll(async () => {
    await server?.close();
    await fake?.close();
  });

  const post = (payload: unknown, opts: Parameters<typeof postSlack>[3] = {}) =>
    timed(postSlack(url, SIGNING_SECRET, payload, opts));

  it('answers at once a signed request no listener handles', async () => {
    for (const payload of [button('unknown_action'), viewClosed, {}]) {
      const { value, ms } = await post(payload);
      expect(value.status, JSON.stringify(payload)).toBe(200);
      expect(ms).toBeLessThan(1000);
    }
    // ssl_check: Slack's certificate probe of the request URL, a plain form post.
    const probe = await post({ ssl_check: '1', token: 'x' }, { encoding: 'form' });
    expect(probe.value.status).toBe(200);
    expect(probe.ms).toBeLessThan(1000);
    // A handled one still reaches its listener.
    expect((await post(button('known'))).value.status).toBe(200);
    await expect.poll(() => seen).toContain('known');
  });

  it('answers a slow listener before Slack gives up; the listener still finishes', async () => {
    const { value, ms } = await post(button('slow'));
    expect(value.status).toBe(200);
    expect(ms).toBeLessThan(SLACK_DEADLINE_MS);
    expect(seen).not.toContain('slow');
    await expect.poll(() => seen, { timeout: 6000 }).toContain('slow');
  });

  it('refuses signatures dated more than 5 minutes from now, in the past or the future', async () => {
    const now = nowSeconds();
    for (const timestamp of [now + 7 * 86400, now + 301, now - 301, now - 7 * 86400]) {
      const { value } = await post(button('known'), { timestamp });
      expect(value.status, String(timestamp - now)).toBe(401);
    }
    for (const timestamp of [now + 240, now - 240]) {
      const { value } = await post(button('known'), { timestamp });
      expect(value.status, String(timestamp - now)).toBe(200);
    }
  });

  it('answers a signed body that is not an object with a 400, never a 500', async () => {
    for (const body of ['null', '[]', '"x"', '7']) {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...signSlackRequest(SIGNING_SECRET, body) },
        body,
      });
      expect(res.status, body).toBe(400);
    }
  });
});

describe('AckingSocketModeReceiver (Socket Mode) under Bolt', () => {
  let fake: FakeSlack;
  let receiver: AckingSocketModeReceiver;
  let app: App;
  let seen: string[];

  beforeAll(async () => {
    fake = await startFakeSlack({
      teamId: TEAM.id,
      serverPingIntervalMs: 0,
      ackTimeoutMs: SLACK_DEADLINE_MS,
    });
    receiver = new AckingSocketModeReceiver(
      {
        appToken: fake.appToken,
        logLevel: LogLevel.ERROR,
        installerOptions: { clientOptions: { slackApiUrl: fake.apiUrl } },
      },
      memoryLogger().logger,
    );
    const built = boltApp(fake, receiver);
    app = built.app;
    seen = built.seen;
    await app.start();
    await fake.socketConnected();
  });

  afterAll(async () => {
    // Wait for the close handshake before the fake goes away (see test/fakes/slack.test.ts).
    const disconnected = new Promise((resolve) => receiver.client.once('disconnected', resolve));
    await app.stop();
    await disconnected;
    await fake.close();
  });

  it('acks every envelope, handled or not, within 3 seconds', async () => {
    for (const payload of [button('unknown_action'), viewClosed, {}, button('known')]) {
      const { value, ms } = await timed(
        fake.sendSocketEvent('interactive', payload as Record<string, unknown>),
      );
      expect(value.envelope_id, JSON.stringify(payload)).toBeTruthy();
      expect(ms).toBeLessThan(1000);
    }
    const slow = await timed(
      fake.sendSocketEvent('interactive', button('slow') as unknown as Record<string, unknown>),
    );
    expect(slow.value.envelope_id).toBeTruthy();
    expect(slow.ms).toBeLessThan(SLACK_DEADLINE_MS);
    await expect.poll(() => seen, { timeout: 6000 }).toEqual(['known', 'slow']);
  });
});
