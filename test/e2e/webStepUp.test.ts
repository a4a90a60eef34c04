import { randomBytes } from 'node:crypto';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeMessage, type FakeSlack, startFakeSlack } from '../fakes/slackApi.js';
import { blockActionPayload, postSlack, type SlackUserRef } from '../fakes/slackRequests.js';
import { addVirtualAuthenticator, launchBrowser, newPage, settleAll } from '../helpers/browser.js';
import { type AuditEvent, type ChatApi, chatApi, waitUntil } from '../helpers/chatE2e.js';
import { runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';
import { freePort } from '../setup/redis.js';

const DATABASE = process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite';
const ADMIN = `uk_${randomBytes(24).toString('hex')}`;
const SIGNING_SECRET = `sign_${randomBytes(16).toString('hex')}`;
const CHANNEL = 'C0APPROVALS';
const TEAM = { id: 'T0FAKETEAM', domain: 'fake' };
const ALICE = { id: 'U0ALICE', name: 'alice' }; // Slack approver, linked to the approver account alice
const BOB = { id: 'U0BOB', name: 'bob' }; // Slack approver, no account

const POLICIES = {
  policies: [
    {
      name: 'wire transfers need a passkey',
      conditions: { action: 'payment.wire' },
      action: 'require_approval',
      approval: { quorum: 1, passkey: true },
    },
    {
      name: 'two-person deploys',
      conditions: { action: 'deploy.*' },
      action: 'require_approval',
      approval: { quorum: 2 },
    },
    {
      name: 'secrets need dave',
      conditions: { action: 'secrets.read' },
      action: 'require_approval',
      approval: { approvers: ['web:dave'] },
    },
  ],
};

/**
 * Issue 15's acceptance for step-up, one vote per person, and the refusals, in Chromium with a
 * virtual authenticator against the built server, which also runs Slack over HTTP against the
 * fake Slack API (signed clicks on POST /slack/events). Alice's Slack id is linked to her approver
 * account, so a Slack click and a web vote are the same person's.
 */
describe('step-up, one person across Slack and the web, and refusals, in Chromium', () => {
  let fake: FakeSlack;
  let server: ServerProcess;
  let publicUrl: string;
  let browser: Browser;
  let api: ChatApi;
  const cli = (args: string[]) => runCli(args, { AGENT_OTP_URL: server.url, AGENT_OTP_ADMIN_TOKEN: ADMIN });

  beforeAll(async () => {
    // `localhost`, not 127.0.0.1: browsers refuse an IP address as a passkey's relying party.
    const port = await freePort();
    publicUrl = `http://localhost:${port}`;
    fake = await startFakeSlack({
      users: { [ALICE.id]: { name: ALICE.name }, [BOB.id]: { name: BOB.name } },
      channels: [CHANNEL],
      teamId: TEAM.id,
      serverPingIntervalMs: 0,
    });
    await settleAll([
      startServer({
        database: DATABASE,
        env: {
          ADMIN_TOKEN: ADMIN,
          PORT: String(port),
          PUBLIC_URL: publicUrl,
          SLACK_BOT_TOKEN: fake.botToken,
          SLACK_SIGNING_SECRET: SIGNING_SECRET,
          SLACK_API_URL: fake.apiUrl,
          SLACK_APPROVAL_CHANNEL: CHANNEL,
          SLACK_APPROVERS: `${ALICE.id},${BOB.id}`,
        },
      }).then((s) => {
        server = s;
      }),
      launchBrowser().then((b) => {
        browser = b;
      }),
    ]);
    api = await chatApi(server, ADMIN, { policies: POLICIES, requestStatus: 'pending' });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await fake?.close();
  });

  /** Invites an approver with the CLI and enrols a passkey from the link in a fresh browser context. */
  async function enrol(args: string[]): Promise<{ page: Page; approverId: string }> {
    const invited = await cli(['approver:invite', ...args]);
    expect(invited.code, invited.stderr).toBe(0);
    const link = /(http:\/\/\S+\/enrol\/[A-Za-z0-9_-]{43})$/m.exec(invited.stdout)?.[1];
    expect(link, invited.stdout).toBeDefined();
    const approverId = /\b(apr_\w+)/.exec(invited.stdout)?.[1];
    expect(approverId, invited.stdout).toBeDefined();
    const { page } = await newPage(browser, { width: 390, height: 844 });
    await addVirtualAuthenticator(page);
    await page.goto(link as string);
    await page.click('#create-passkey');
    await page.waitForURL(`${publicUrl}/account`);
    return { page, approverId: approverId as string };
  }

  /** The Slack approval message of a permission, once posted. */
  async function messageOf(id: string): Promise<FakeMessage> {
    const call = await fake.waitFor(
      (c) =>
        c.method === 'chat.postMessage' &&
        c.response?.ok === true &&
        !c.args.thread_ts &&
        JSON.stringify(c.args).includes(id),
      5000,
    );
    const message = fake.getMessage(String(call.response?.channel), String(call.response?.ts));
    if (!message) throw new Error(`no message for ${id}`);
    return message;
  }

  /** A signed click on the request's Slack message; the handler runs after the ack. */
  async function click(id: string, user: SlackUserRef, actionId: 'aotp_approve' | 'aotp_deny') {
    const message = await messageOf(id);
    const payload = blockActionPayload({
      user,
      team: TEAM,
      actionId,
      value: id,
      channel: message.channel,
      messageTs: message.ts,
      message,
    });
    const res = await postSlack(`${server.url}/slack/events`, SIGNING_SECRET, payload);
    expect(res.status, res.text).toBe(200);
  }

  /**
   * A POST of a decision from the page's own context (its cookie, its Origin), with the page's
   * CSRF token, another one (`csrf`), or none (`withCsrf` false).
   */
  async function postDecision(page: Page, id: string, withCsrf: boolean, csrf?: string) {
    const token = csrf ?? (await page.getAttribute('meta[name="csrf-token"]', 'content')) ?? '';
    return page.evaluate(
      async ({ id, headers }) => {
        const res = await fetch(`/approve/${id}/decision`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ decision: 'approve' }),
        });
        return { status: res.status, body: (await res.json()) as { outcome: string; message: string } };
      },
      { id, headers: { 'content-type': 'application/json', ...(withCsrf ? { 'x-csrf-token': token } : {}) } },
    );
  }

  let alice: { page: Page; approverId: string };

  it('step-up: a Slack Approve hands over to the page, where a fresh passkey sign-in approves', async () => {
    alice = await enrol(['--name', 'alice', '--slack', ALICE.id]);
    const p = await api.request({
      action: 'payment.wire',
      resource: 'acct:ops',
      scope: { max_amount: 5000 },
    });

    const clickedAt = Date.now();
    await click(p.id, ALICE, 'aotp_approve');
    const answer = await waitUntil('the ephemeral answer to alice', () =>
      fake.ephemerals.find((e) => e.user === ALICE.id && e.text.includes(`/approve/${p.id}`)),
    );
    console.log(`step-up ephemeral ${Date.now() - clickedAt} ms after the Slack click: ${answer.text}`);
    expect(answer.text).toContain(`${publicUrl}/approve/${p.id}`);
    expect((await api.get(p.id)).status).toBe('pending');

    // A fresh passkey sign-in, reached from the link in the answer.
    const { page } = alice;
    await page.click('#sign-out');
    await page.waitForURL(`${publicUrl}/login`);
    await page.goto(`${publicUrl}/approve/${p.id}`);
    await page.click(`a[href="/login?next=${encodeURIComponent(`/approve/${p.id}`)}"]`);
    await page.click('#sign-in');
    await page.waitForURL(`${publicUrl}/approve/${p.id}`);
    expect(await page.textContent('main')).toContain('needs a passkey confirmation');
    await page.click('button[data-decision="approve"]');
    await expect.poll(() => page.textContent('#outcome')).toBe('Approved.');
    expect((await api.get(p.id)).status).toBe('approved');

    const stepUps = await api.audit(p.id, 'approval_step_up');
    expect(stepUps).toHaveLength(1);
    expect(stepUps[0]?.actor).toMatchObject({ platform: 'slack', userId: ALICE.id });
    expect(stepUps[0]?.details).toMatchObject({ approverId: alice.approverId });
    const approvals = await api.audit(p.id, 'approve');
    expect(approvals).toHaveLength(1);
    expect(approvals[0]?.actor).toMatchObject({
      platform: 'web',
      userId: alice.approverId,
      credentialId: expect.stringMatching(/^[A-Za-z0-9_-]{16,}$/),
    });
  });

  it('a quorum of 2: the same person voting in Slack and on the page counts once', async () => {
    const p = await api.request({ action: 'deploy.prod', resource: 'api' });
    await click(p.id, ALICE, 'aotp_approve');
    const votes = await waitUntil('alice’s Slack vote', async () => {
      const events = await api.audit(p.id, 'approval_vote');
      return events.length > 0 ? events : null;
    });
    expect(votes.map((e) => e.actor)).toEqual([
      expect.objectContaining({ platform: 'slack', userId: ALICE.id }),
    ]);

    const { page } = alice;
    await page.goto(`${publicUrl}/approve/${p.id}`);
    expect(await page.textContent('#progress')).toBe('1/2');
    await page.click('button[data-decision="approve"]');
    await expect.poll(() => page.textContent('#outcome')).toBe('Your approval is already counted (1/2).');
    expect((await api.get(p.id)).status).toBe('pending');
    expect(await api.audit(p.id, 'approval_vote')).toHaveLength(1);

    await click(p.id, BOB, 'aotp_approve');
    const done = await waitUntil('bob’s completing vote', async () => {
      const read = await api.get(p.id);
      return read.status === 'approved' ? read : null;
    });
    expect(done.status).toBe('approved');
    await expect.poll(() => page.getAttribute('#status', 'data-status'), { timeout: 5000 }).toBe('approved');
  });

  it('refused and audited: no CSRF token, an approver not allowed, an approver disabled mid-session', async () => {
    const dave = await enrol(['--name', 'dave']);
    const mallory = await enrol(['--name', 'mallory']);
    const p = await api.request({ action: 'secrets.read', resource: 'vault:prod' });

    // Without the CSRF token: refused, audited, nothing decided.
    await dave.page.goto(`${publicUrl}/approve/${p.id}`);
    const noCsrf = await postDecision(dave.page, p.id, false);
    expect(noCsrf.status).toBe(403);
    expect(noCsrf.body.message).toContain('reload it and try again');
    const csrfEvents = await api.operator<{ events: AuditEvent[] }>(
      'GET',
      '/api/v1/audit?event_type=web.csrf_refused',
    );
    expect(csrfEvents.body.data.events).toEqual([
      expect.objectContaining({
        actor: expect.objectContaining({ platform: 'web', userId: dave.approverId }),
        details: expect.objectContaining({ reason: 'no CSRF token', approverId: dave.approverId }),
      }),
    ]);
    expect((await api.get(p.id)).status).toBe('pending');

    // Mallory is signed in but not an approver for it: the page refuses, and so does a POST.
    const shown = await mallory.page.goto(`${publicUrl}/approve/${p.id}`);
    expect(shown?.status()).toBe(403);
    expect(await mallory.page.textContent('main')).toContain('You are not an approver for this request.');
    const notAllowed = await postDecision(mallory.page, p.id, true);
    expect(notAllowed).toEqual({
      status: 403,
      body: expect.objectContaining({ reason: 'not_an_approver' }),
    });
    const unauthorized = await api.audit(p.id, 'unauthorized_approver');
    expect(unauthorized).toEqual([
      expect.objectContaining({
        actor: expect.objectContaining({ platform: 'web', userId: mallory.approverId }),
        details: expect.objectContaining({ attempted: 'approve' }),
      }),
    ]);

    // Dave is disabled while signed in: his session ends; his next GET shows the signed-out page
    // and his next POST (with the CSRF token he had) is refused and audited on the request.
    const csrf = (await dave.page.getAttribute('meta[name="csrf-token"]', 'content')) as string;
    const disabled = await cli(['approver:disable', 'dave']);
    expect(disabled.code, disabled.stderr).toBe(0);
    const after = await dave.page.goto(`${publicUrl}/approve/${p.id}`);
    expect(after?.status()).toBe(200);
    expect(await dave.page.textContent('main')).toContain('to see it and decide');
    expect(await dave.page.locator('button[data-decision="approve"]').count()).toBe(0);
    const ended = await postDecision(dave.page, p.id, true, csrf);
    expect(ended).toEqual({
      status: 403,
      body: expect.objectContaining({ message: 'Your session has ended: sign in again.' }),
    });
    const refusals = await api.audit(p.id, 'unauthorized_approver');
    expect(refusals).toHaveLength(2);
    expect(refusals.find((e) => e.details.reason === 'not signed in')).toMatchObject({
      actor: { platform: 'web' },
      details: { attempted: 'approve' },
    });
    expect((await api.get(p.id)).status).toBe('pending');
    // Signing in again with his passkey is refused as well while he is disabled.
    await dave.page.goto(`${publicUrl}/login`);
    await dave.page.click('#sign-in');
    await expect
      .poll(() => dave.page.textContent('main'))
      .toContain('Sign-in failed: that passkey was not accepted here. Try again.');
    expect(dave.page.url()).toBe(`${publicUrl}/login`);
    const failed = await api.operator<{ events: AuditEvent[] }>(
      'GET',
      '/api/v1/audit?event_type=web.sign_in_failed',
    );
    expect(failed.body.data.events).toEqual([
      expect.objectContaining({
        details: expect.objectContaining({ reason: 'approver disabled', approverId: dave.approverId }),
      }),
    ]);
  });
});
