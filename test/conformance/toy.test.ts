import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CHANNELS } from '../../src/chat/channels.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { type Running, startService } from '../../src/main.js';
import { apiClient } from '../helpers/api.js';
import { type ChannelFixture, describeChannelConformance, eventually } from './channelConformance.js';
import {
  createToyChannel,
  TOY_SETTINGS,
  type ToyAdapter,
  type ToyMessage,
  type ToyState,
  toyChannel,
} from './toy/channel.js';

/**
 * A channel added as a plug-in (issue 14, acceptance): the toy in ./toy is one folder, registered
 * here with one line, and passes the same conformance suite as Slack and Discord — then runs in
 * the real service, started in-process with `[...CHANNELS, toyChannel]`, with nothing outside its
 * folder edited.
 */

const USERS = {
  alice: { id: 'alice', name: 'alice' },
  bob: { id: 'bob', name: 'bob' },
  stranger: { id: 'mallory', name: 'mallory' },
  groupMember: { id: 'carol', name: 'carol' },
};

describeChannelConformance('toy', async ({ interactions, logger, apiUrl }) => {
  // A toy of its own per database, so one run's messages are not the other's.
  const plugin = createToyChannel(TOY_SETTINGS);
  const create = async () => {
    const created = await plugin.create({ config: loadConfig({}), roles: ['api'], logger, interactions });
    if (!created) throw new Error('the toy channel is always configured');
    return created;
  };
  const channel = await create();
  const state = (channel.adapter as ToyAdapter).state;
  const message = (ref: string) => state.messages.find((m) => m.ref === ref);
  const fixture: ChannelFixture = {
    channel,
    defaultChannel: 'approvals',
    policyChannel: { entry: 'toy:payments', id: 'payments' },
    escalationChannel: { entry: 'toy:security', id: 'security' },
    users: USERS,
    fromAnotherProcess: async () => (await create()).adapter,
    personEntry: (user) => `toy:@${user.id}`,
    named: (user) => user.name,
    async press(user, _posted, permissionId, approved) {
      const res = await fetch(`${apiUrl()}/toy/click`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user: user.id, permissionId, approved }),
      });
      if (res.status !== 200) throw new Error(`POST /toy/click answered ${res.status}: ${await res.text()}`);
    },
    toldTo: (user) => state.told[user.id] ?? [],
    postedFor: (channelId, permissionId) =>
      state.messages
        .filter((m) => m.channel === channelId && m.permissionId === permissionId)
        .map((m) => m.ref),
    shown(posted) {
      const m = message(posted.messageRef);
      return m ? { text: m.text, buttons: m.buttons, edits: m.edits } : null;
    },
    thread: (posted) => message(posted.messageRef)?.thread ?? [],
    channelNotes: (channelId) => state.notes[channelId] ?? [],
    close: async () => undefined,
  };
  return fixture;
});

describe('the toy channel in the real service (api + worker roles, BullMQ, PGlite)', () => {
  const admin = `uk_${randomBytes(24).toString('hex')}`;
  let dataDir: string;
  let running: Running;

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'aotp-toy-'));
    const config = loadConfig({
      LOG_LEVEL: 'silent',
      PORT: '0',
      HOST: '127.0.0.1',
      AGENT_OTP_DATA_DIR: dataDir,
      ADMIN_TOKEN: admin,
      REDIS_URL: inject('redisUrl'),
      REDIS_KEY_PREFIX: `toy${randomBytes(4).toString('hex')}`,
    });
    // The one registration line: nothing else in src knows the toy.
    running = await startService(config, createLogger('silent'), ['api', 'worker'], {
      channels: [...CHANNELS, toyChannel],
    });
  }, 60_000);

  afterAll(async () => {
    await running?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('the worker posts a request to the toy, a click on its route decides it, the message shows it', async () => {
    const url = running.url as string;
    const operator = apiClient(url, admin);
    const created = await operator<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'toy-agent' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const agent = apiClient(url, created.body.data.apiKey);
    const requested = await agent<{ id: string; status: string }>('POST', '/api/v1/permissions/request', {
      action: 'email.send',
      resource: 'newsletter',
    });
    expect(requested.status, JSON.stringify(requested.body)).toBe(202);
    const id = requested.body.data.id;
    expect(requested.body.data.status).toBe('pending');

    const state = async () => (await (await fetch(`${url}/toy/state`)).json()) as ToyState;
    const messageOf = async (): Promise<ToyMessage> =>
      eventually(async () => {
        const found = (await state()).messages.filter((m) => m.permissionId === id);
        expect(found).toHaveLength(1);
        return found[0] as ToyMessage;
      }, 10_000);

    // Posted by the worker's notify job, to the toy's default channel, with buttons.
    const posted = await messageOf();
    expect(posted).toMatchObject({ channel: 'approvals', buttons: true, edits: 0 });
    expect(posted.text).toContain('email.send on newsletter');
    const linked = await eventually(async () => {
      const res = await agent<{ approvalUrl?: string }>('GET', `/api/v1/permissions/${id}`);
      expect(res.body.data.approvalUrl).toBe(`https://toy.example/approvals/${posted.ref}`);
      return res.body.data.approvalUrl;
    });
    expect(linked).toBeTruthy();

    const click = async (user: string, approved: boolean) => {
      const res = await fetch(`${url}/toy/click`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user, permissionId: id, approved }),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as { kind: string; text?: string; status?: string };
    };
    // Someone the toy does not list is refused, as on every channel.
    expect(await click('mallory', true)).toEqual({
      kind: 'note',
      text: 'You are not an approver for this request.',
    });
    expect(await click('alice', true)).toEqual({ kind: 'decided', status: 'approved' });

    // The worker's message-update job edits the same message.
    const decided = await eventually(async () => {
      const m = await messageOf();
      expect(m.buttons).toBe(false);
      return m;
    }, 10_000);
    expect(decided).toMatchObject({ ref: posted.ref, edits: 1 });
    expect(decided.text).toContain('approved by alice');
    const after = await agent<{ status: string }>('GET', `/api/v1/permissions/${id}`);
    expect(after.body.data.status).toBe('approved');
    const audit = await operator<{ events: { actor: Record<string, unknown> }[] }>(
      'GET',
      `/api/v1/audit?permission_id=${id}&event_type=approve`,
    );
    expect(audit.body.data.events.map((e) => e.actor)).toEqual([
      { type: 'approver', platform: 'toy', userId: 'alice', userName: 'alice' },
    ]);
  });
});
