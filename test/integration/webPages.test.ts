import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { channelIdentityShapes } from '../../src/chat/channels.js';
import { registerWebAssets } from '../../src/chat/web/assets.js';
import { WEB_PAGE_ASSETS, webAdapter } from '../../src/chat/web/channel.js';
import { CONTENT_SECURITY_POLICY } from '../../src/chat/web/page.js';
import { registerApprovalPages } from '../../src/chat/web/pages.js';
import { IdentitySyntax, NO_LINKS } from '../../src/core/approvers.js';
import type { Actor } from '../../src/core/audit/index.js';
import type { Clock } from '../../src/core/clock.js';
import type { Permission } from '../../src/core/permission.js';
import type { PolicyDecision } from '../../src/core/policy/index.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { ChannelRegistry } from '../../src/services/approvals/channel.js';
import { ApprovalService } from '../../src/services/approvals/service.js';
import { WebApprovals } from '../../src/services/approvals/web.js';
import { ApproverService } from '../../src/services/approvers.js';
import { AuditService } from '../../src/services/audit.js';
import { PermissionService } from '../../src/services/permissions.js';
import { PersonDirectory } from '../../src/services/persons.js';
import type { Agent } from '../../src/store/agentRepository.js';
import type { ApproverAccount } from '../../src/store/approverRepository.js';
import type { Db } from '../../src/store/db.js';
import { testDatabases } from '../helpers/databases.js';
import { FakeWebSessions } from '../helpers/fakeWebSessions.js';
import { memoryLogger } from '../helpers/memoryLogger.js';
import { RecordingChannel } from '../helpers/recordingChannel.js';

/**
 * The approval page and the inbox over HTTP (Fastify inject), with a WebSessions double in place
 * of passkey sign-in: what a signed-out visitor sees, what a signed-in approver sees and decides,
 * and what is refused (no CSRF token, an approver not allowed, an approver disabled mid-session).
 */

const SLACK_ALICE = 'U0ALICE';
const SLACK_BOB = 'U0BOB';

describe.each(testDatabases())('web approval pages on $name', (database) => {
  let db: Db;
  let app: FastifyInstance;
  let audit: AuditService;
  let agents: AgentService;
  let accounts: ApproverService;
  let permissions: PermissionService;
  let sessions: FakeWebSessions;
  let agent: Agent;
  let alice: ApproverAccount;
  let dave: ApproverAccount;
  let quorum = 1;
  let passkey = false;
  const operator: RequestOrigin = {
    actor: { type: 'operator', id: 'opk_admin', name: 'admin', platform: 'api' },
  };

  beforeAll(async () => {
    db = await database.open();
    const clock: Clock = { now: () => new Date() };
    audit = new AuditService(db, clock);
    agents = new AgentService(db, audit, clock);
    const persons = new PersonDirectory(db, memoryLogger().logger, NO_LINKS);
    accounts = new ApproverService(db, audit, clock, new IdentitySyntax(channelIdentityShapes()), NO_LINKS);
    accounts.onChange(() => persons.load());
    permissions = new PermissionService(
      db,
      audit,
      {
        evaluate: (): PolicyDecision => ({
          decision: 'require_approval',
          policy: { id: 'pol_pay', name: 'payments need a person' },
          reason: 'payments need a person',
          approval: { quorum, ...(passkey ? { passkey } : {}) },
        }),
      },
      clock,
      { approvalTimeoutSeconds: 900, requireActionDetails: false, approverLinks: persons.links },
    );
    const channels = new ChannelRegistry(['slack', 'discord', 'web']);
    channels.register(new RecordingChannel('slack', { channel: 'C1', approvers: [SLACK_ALICE, SLACK_BOB] }));
    channels.register(webAdapter);
    const approvals = new ApprovalService(
      db,
      permissions,
      audit,
      channels,
      memoryLogger().logger,
      persons.links,
    );
    sessions = new FakeWebSessions(db, audit);
    app = Fastify();
    registerWebAssets(app, ['web.css', 'web.js', ...WEB_PAGE_ASSETS]);
    registerApprovalPages(app, {
      approvals,
      requests: new WebApprovals(db, approvals, persons.links, clock, audit),
      sessions,
    });
    await app.ready();
    agent = (await agents.create({ name: 'billing-bot' }, operator)).agent;
    alice = await accounts.create({ name: 'alice', identities: [`slack:${SLACK_ALICE}`] }, operator);
    dave = await accounts.create({ name: 'dave', identities: ['slack:U0DAVE'] }, operator);
  });
  afterAll(async () => {
    await app?.close();
    await db?.close();
  });
  beforeEach(() => {
    quorum = 1;
    passkey = false;
  });

  async function pending(context: Record<string, unknown> = { reason: 'Invoice INV-7 for ACME' }) {
    const { permission } = await permissions.request(
      agent,
      {
        action: 'payment.send',
        resource: 'acct:ops',
        scope: { max_amount: 100, allowed_recipients: ['acme', 'globex'] },
        context,
      },
      { actor: { type: 'agent', id: agent.id } },
    );
    expect(permission.status).toBe('pending');
    return permission;
  }

  const stored = async (id: string): Promise<Permission> =>
    (await permissions.get({ operator: true }, id, operator)).permission;

  const get = (url: string, cookie?: string) =>
    app.inject({ method: 'GET', url, headers: cookie ? { cookie } : {} });

  const decide = (id: string, body: Record<string, unknown>, who?: { cookie: string; csrfToken?: string }) =>
    app.inject({
      method: 'POST',
      url: `/approve/${id}/decision`,
      headers: {
        ...(who ? { cookie: who.cookie } : {}),
        ...(who?.csrfToken ? { 'x-csrf-token': who.csrfToken } : {}),
      },
      payload: body,
    });

  async function events(type: string, permissionId: string) {
    await audit.drain();
    const { rows } = await db.query<{ actor: Actor; details: Record<string, unknown> }>(
      'SELECT actor, details FROM audit_events WHERE type = $1 AND permission_id = $2 ORDER BY seq',
      [type, permissionId],
    );
    return rows;
  }

  it('signed out: the status and the sign-in link, nothing of the request, with the strict CSP and no inline script', async () => {
    const p = await pending();
    const res = await get(`/approve/${p.id}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.body).toContain('data-status="pending"');
    expect(res.body).toContain(`href="/login?next=${encodeURIComponent(`/approve/${p.id}`)}"`);
    expect(res.body).not.toContain('payment.send');
    expect(res.body).not.toContain('INV-7');
    expect(res.body).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
    expect((await get('/approve/perm_nope')).statusCode).toBe(404);
    const inbox = await get('/inbox');
    expect(inbox.body).toContain('href="/login?next=%2Finbox"');
  });

  it('signed in: what the chat card shows, the decision controls, no inline script; GETs change nothing', async () => {
    const p = await pending();
    const who = sessions.signIn(alice.id, 'alice');
    const res = await get(`/approve/${p.id}`, who.cookie);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-security-policy']).toBe(CONTENT_SECURITY_POLICY);
    for (const text of [
      'billing-bot',
      'payment.send',
      'acct:ops',
      'Invoice INV-7 for ACME',
      'payments need a person',
    ]) {
      expect(res.body).toContain(text);
    }
    expect(res.body).toContain(`<meta name="csrf-token" content="${who.csrfToken}">`);
    expect(res.body).toContain('data-decision="approve"');
    expect(res.body).toContain('data-decision="deny"');
    expect(res.body).toContain('data-cap="max_amount"');
    expect(res.body).toContain('value="globex"');
    expect(res.body).toContain('src="/assets/approve.js"');
    expect(res.body).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/);
    expect(res.body).not.toMatch(/\son[a-z]+=/i);
    const state = await get(`/approve/${p.id}/state`, who.cookie);
    expect(state.json()).toMatchObject({ status: 'pending', approvals: { count: 0, required: 1 } });
    await get('/inbox', who.cookie);
    expect(await stored(p.id)).toMatchObject({ status: 'pending', approvals: [] });
    expect((await get('/assets/approve.js')).statusCode).toBe(200);
    expect((await get('/assets/inbox.js')).statusCode).toBe(200);
  });

  it('a POST without the CSRF token (or signed out) is refused with 403 and audited once; nothing changes', async () => {
    const p = await pending();
    const who = sessions.signIn(alice.id, 'alice');
    const noToken = await decide(p.id, { decision: 'approve' }, { cookie: who.cookie });
    expect(noToken.statusCode).toBe(403);
    expect(noToken.json().message).toMatch(/reload it/);
    const wrong = await decide(p.id, { decision: 'deny' }, { cookie: who.cookie, csrfToken: 'forged' });
    expect(wrong.statusCode).toBe(403);
    const signedOut = await decide(p.id, { decision: 'approve' });
    expect(signedOut.statusCode).toBe(403);
    expect(signedOut.json().message).toMatch(/sign in/i);
    expect((await stored(p.id)).status).toBe('pending');
    // The CSRF refusals are the session store's to audit (web.csrf_refused): the page adds none.
    await audit.drain();
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM audit_events WHERE type = 'web.csrf_refused' AND actor->>'userId' = $1",
      [alice.id],
    );
    expect(rows[0]?.n).toBe(2);
    const refused = await events('unauthorized_approver', p.id);
    expect(
      refused.map((e) => [e.actor.platform, e.actor.userName, e.details.reason, e.details.attempted]),
    ).toEqual([['web', undefined, 'not signed in', 'approve']]);
  });

  it('approve: decided, answered in words, audited as web with the passkey; the page then shows it decided', async () => {
    const p = await pending();
    const who = sessions.signIn(alice.id, 'alice', 'cred-alice-phone');
    const res = await decide(p.id, { decision: 'approve' }, who);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ outcome: 'decided', status: 'approved', message: 'Approved.' });
    const [approve] = await events('approve', p.id);
    expect(approve?.actor).toMatchObject({
      platform: 'web',
      userId: alice.id,
      credentialId: 'cred-alice-phone',
    });
    const again = await decide(p.id, { decision: 'approve' }, who);
    expect(again.json()).toMatchObject({
      outcome: 'unchanged',
      message: 'This request was already approved by alice.',
    });
    const page = await get(`/approve/${p.id}`, who.cookie);
    expect(page.body).toContain('data-status="approved"');
    // The chat's state line, without its emoji (a page does not rely on an emoji font).
    expect(page.body).toMatch(/data-status="approved">Approved by alice \(web\) · expires /);
  });

  it('deny with a reason; a too-long reason is refused with the chat modal message', async () => {
    const p = await pending();
    const who = sessions.signIn(alice.id, 'alice');
    const long = await decide(p.id, { decision: 'deny', reason: 'x'.repeat(5000) }, who);
    expect(long.statusCode).toBe(422);
    expect(long.json().errors.reason).toMatch(/^At most \d+ characters \(got 5000\)$/);
    const res = await decide(p.id, { decision: 'deny', reason: 'Not this vendor' }, who);
    expect(res.json()).toMatchObject({ outcome: 'decided', status: 'denied', message: 'Denied.' });
    expect(await stored(p.id)).toMatchObject({ status: 'denied', decisionReason: 'Not this vendor' });
  });

  it('approve with changes: a narrowed cap and list are granted; a widening is refused with the chat modal message', async () => {
    const p = await pending();
    const who = sessions.signIn(alice.id, 'alice');
    const wider = await decide(p.id, { decision: 'approve_with_changes', caps: { max_amount: '500' } }, who);
    expect(wider.statusCode).toBe(422);
    expect(wider.json().errors).toEqual({ max_amount: 'Can only be lowered (granted: 100)' });
    const stranger = await decide(
      p.id,
      { decision: 'approve_with_changes', lists: { allowed_recipients: ['acme', 'initech'] } },
      who,
    );
    expect(stranger.json().errors.allowed_recipients).toBe('Not in the granted list: initech');
    expect((await stored(p.id)).status).toBe('pending');
    const ok = await decide(
      p.id,
      {
        decision: 'approve_with_changes',
        caps: { max_amount: '40' },
        lists: { allowed_recipients: ['acme'] },
      },
      who,
    );
    expect(ok.json()).toMatchObject({ outcome: 'decided', status: 'approved' });
    expect((await stored(p.id)).scope).toMatchObject({ max_amount: 40, allowed_recipients: ['acme'] });
  });

  it('an approver not allowed for the request sees no details and is refused on POST (audited)', async () => {
    const p = await pending();
    const who = sessions.signIn(dave.id, 'dave');
    const page = await get(`/approve/${p.id}`, who.cookie);
    expect(page.statusCode).toBe(403);
    expect(page.body).toContain('You are not an approver for this request.');
    expect(page.body).not.toContain('INV-7');
    const res = await decide(p.id, { decision: 'approve' }, who);
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({
      outcome: 'refused',
      message: 'You are not an approver for this request.',
    });
    const [refused] = await events('unauthorized_approver', p.id);
    expect(refused?.actor).toMatchObject({ platform: 'web', userName: 'dave', credentialId: 'cred-dave' });
  });

  it('an approver disabled mid-session is signed out at once: the page and POST refuse, and the POST is audited', async () => {
    const carol = await accounts.create({ name: 'carol', identities: ['slack:U0CAROL'] }, operator);
    const p = await pending();
    const who = sessions.signIn(carol.id, 'carol');
    expect((await get('/inbox', who.cookie)).body).toContain('Signed in as carol');
    await accounts.disable('carol', operator);
    expect((await get(`/approve/${p.id}`, who.cookie)).body).toContain('/login?next=');
    const res = await decide(p.id, { decision: 'approve' }, who);
    expect(res.statusCode).toBe(403);
    expect((await stored(p.id)).status).toBe('pending');
    expect((await events('unauthorized_approver', p.id)).map((e) => e.details.reason)).toEqual([
      'not signed in',
    ]);
  });

  it('a quorum vote is counted and shown; the inbox lists what waits, newest first', async () => {
    quorum = 2;
    const older = await pending();
    const p = await pending();
    const who = sessions.signIn(alice.id, 'alice');
    const res = await decide(p.id, { decision: 'approve' }, who);
    expect(res.json()).toMatchObject({
      outcome: 'decided',
      status: 'pending',
      message: 'Your approval is counted (1/2).',
    });
    const state = await get(`/approve/${p.id}/state`, who.cookie);
    expect(state.json()).toMatchObject({
      status: 'pending',
      approvals: { count: 1, required: 2 },
      votes: ['Approved by alice (web)'],
    });
    const inbox = await get(`/inbox?agent=${agent.id}&action=payment.send`, who.cookie);
    const newest = inbox.body.indexOf(`/approve/${p.id}`);
    expect(newest).toBeGreaterThan(0);
    expect(inbox.body.indexOf(`/approve/${older.id}`)).toBeGreaterThan(newest);
    expect((await get('/inbox?action=other.action', who.cookie)).body).toContain('Nothing waiting for you.');
  });

  it('step-up: the page says a passkey is needed; an old sign-in is sent to confirm again; Deny needs no fresh one', async () => {
    passkey = true;
    const p = await pending();
    const old = sessions.signIn(alice.id, 'alice', 'cred-old', new Date(Date.now() - 10 * 60_000));
    expect((await get(`/approve/${p.id}`, old.cookie)).body).toContain('needs a passkey confirmation');
    const stale = await decide(p.id, { decision: 'approve' }, old);
    expect(stale.statusCode).toBe(403);
    expect(stale.json()).toMatchObject({
      reason: 'passkey_stale',
      login: `/login?next=${encodeURIComponent(`/approve/${p.id}`)}`,
    });
    expect((await stored(p.id)).status).toBe('pending');
    const fresh = sessions.signIn(alice.id, 'alice', 'cred-fresh');
    expect((await decide(p.id, { decision: 'approve' }, fresh)).json()).toMatchObject({ status: 'approved' });
    const [approve] = await events('approve', p.id);
    expect(approve?.actor.credentialId).toBe('cred-fresh');

    const q = await pending();
    expect((await decide(q.id, { decision: 'deny' }, old)).json()).toMatchObject({ status: 'denied' });
  });
});
