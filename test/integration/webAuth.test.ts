import { randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { channelIdentityShapes } from '../../src/chat/channels.js';
import { IdentitySyntax, NO_LINKS } from '../../src/core/approvers.js';
import type { Clock } from '../../src/core/clock.js';
import { sha256Hex } from '../../src/core/credentials.js';
import type { RequestOrigin } from '../../src/services/agents.js';
import { ApproverService } from '../../src/services/approvers.js';
import { AuditService } from '../../src/services/audit.js';
import { INVITATION_TTL_MS, SESSION_TTL_MS, WebAuthService } from '../../src/services/webAuth.js';
import type { Db } from '../../src/store/db.js';
import { insertPasskey, insertSession, useInvitation } from '../../src/store/webAuthRepository.js';
import { appError } from '../helpers/appError.js';
import { testDatabases } from '../helpers/databases.js';

/**
 * Web sign-in (issue 15) where no browser is needed: invitations (hashed, single use, 24 h, not
 * for a disabled approver, not without a usable PUBLIC_URL), sessions (end at expiry, when the
 * approver is disabled or deleted, when their passkey is removed), the CSRF and Origin checks of
 * a page's POST, and failed sign-ins — each audited. The passkey ceremonies themselves run in
 * Chromium (test/e2e/webAuth.test.ts).
 */

const T0 = new Date('2026-03-03T12:00:00.000Z');
const PUBLIC_URL = 'https://otp.example.com';

const operator: RequestOrigin = {
  actor: { type: 'operator', id: 'opk_admin', name: 'admin', platform: 'api' },
  ip: '127.0.0.1',
};

function fakeRequest(headers: Record<string, string>): FastifyRequest {
  return {
    headers,
    ip: '203.0.113.9',
    method: 'POST',
    url: '/approve/perm_x/decision',
    routeOptions: { url: '/approve/:id/decision' },
  } as unknown as FastifyRequest;
}

describe.each(testDatabases())('web sign-in on $name', (database) => {
  let db: Db;
  let now: Date;
  let audit: AuditService;
  let accounts: ApproverService;
  let web: WebAuthService;
  const clock: Clock = { now: () => now };

  const events = async (type: string) =>
    (
      await db.query<{ details: Record<string, unknown>; actor: Record<string, unknown> }>(
        'SELECT details, actor FROM audit_events WHERE type = $1 ORDER BY seq',
        [type],
      )
    ).rows;

  /** A passkey and a signed-in session as a sign-in would store them (no browser here). */
  async function signIn(approverId: string, credentialId = `cred-${randomBytes(4).toString('hex')}`) {
    await insertPasskey(db, {
      credentialId,
      approverId,
      publicKey: 'AQ',
      counter: 0,
      transports: ['internal'],
      name: 'laptop',
      createdAt: now,
      lastUsedAt: null,
    });
    const cookie = randomBytes(32).toString('base64url');
    const csrfToken = randomBytes(32).toString('base64url');
    await insertSession(db, {
      idHash: sha256Hex(cookie),
      approverId,
      credentialId,
      csrfToken,
      verifiedAt: now,
      expiresAt: new Date(now.getTime() + SESSION_TTL_MS),
      createdAt: now,
    });
    return { cookie: `aotp_session=${cookie}`, csrfToken, credentialId };
  }

  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    await db.query('DELETE FROM approvers');
    now = T0;
    audit = new AuditService(db, clock);
    accounts = new ApproverService(db, audit, clock, new IdentitySyntax(channelIdentityShapes()), NO_LINKS);
    web = new WebAuthService(db, audit, clock, accounts, PUBLIC_URL);
    accounts.onChange((id) => web.approverChanged(id));
  });

  describe('invitations', () => {
    it('a link under PUBLIC_URL, valid 24 hours, stored only as a hash, and audited', async () => {
      const alice = await accounts.create({ name: 'alice' }, operator);
      const { url, expiresAt } = await web.invite('alice', operator);
      const token = /^https:\/\/otp\.example\.com\/enrol\/([A-Za-z0-9_-]{43})$/.exec(url)?.[1] as string;
      expect(token).toBeDefined();
      expect(expiresAt).toEqual(new Date(T0.getTime() + INVITATION_TTL_MS));
      const stored = await db.query<Record<string, unknown>>('SELECT * FROM approver_invitations');
      expect(JSON.stringify(stored.rows)).not.toContain(token);
      expect(stored.rows[0]?.token_hash).toBe(sha256Hex(token));

      expect(await web.invitation(token)).toMatchObject({ state: 'valid', approver: { id: alice.id } });
      now = new Date(expiresAt.getTime() - 1);
      expect((await web.invitation(token)).state).toBe('valid');
      now = expiresAt;
      expect((await web.invitation(token)).state).toBe('expired');
      expect(await appError(web.registrationOptions({ token }))).toMatchObject({ code: 'TOKEN_EXPIRED' });

      const [invited] = await events('approver.invited');
      expect(invited?.details).toMatchObject({ approverId: alice.id, name: 'alice' });
      expect(JSON.stringify(invited)).not.toContain(token);
    });

    it('works once: concurrent uses, one wins; then the link and its ceremony are refused', async () => {
      await accounts.create({ name: 'alice' }, operator);
      const { url } = await web.invite('alice', operator);
      const token = url.slice(url.lastIndexOf('/') + 1);
      // Registration options do not use it up (a GET or a retry must not burn the link).
      await web.registrationOptions({ token });
      await web.registrationOptions({ token });
      const uses = await Promise.all(
        Array.from({ length: 5 }, () => db.transaction((tx) => useInvitation(tx, sha256Hex(token), now))),
      );
      expect(uses.filter(Boolean)).toHaveLength(1);
      expect((await web.invitation(token)).state).toBe('used');
      expect(await appError(web.registrationOptions({ token }))).toMatchObject({ code: 'TOKEN_USED' });
      expect((await web.invitation('x'.repeat(43))).state).toBe('unknown');
      expect(await appError(web.registrationOptions({ token: 'nope' }))).toMatchObject({ code: 'NOT_FOUND' });
    });

    it('refused for a disabled approver, and an invitation sent before stops working', async () => {
      await accounts.create({ name: 'alice' }, operator);
      const { url } = await web.invite('alice', operator);
      const token = url.slice(url.lastIndexOf('/') + 1);
      await accounts.disable('alice', operator);
      const refused = await appError(web.invite('alice', operator));
      expect(refused).toMatchObject({ code: 'CONFLICT' });
      expect(refused.message).toContain('approver:enable');
      expect((await web.invitation(token)).state).toBe('disabled');
      expect(await appError(web.registrationOptions({ token }))).toMatchObject({ code: 'FORBIDDEN' });
    });

    it('needs PUBLIC_URL over HTTPS, or http on loopback', async () => {
      await accounts.create({ name: 'alice' }, operator);
      for (const [publicUrl, fragment] of [
        [undefined, 'PUBLIC_URL is not set'],
        ['http://otp.example.com', 'is not HTTPS'],
      ] as const) {
        const off = new WebAuthService(db, audit, clock, accounts, publicUrl);
        expect(off.unavailable).toContain(fragment);
        expect(await appError(off.invite('alice', operator))).toMatchObject({
          code: 'CONFLICT',
          details: { setting: 'PUBLIC_URL' },
        });
      }
      const local = new WebAuthService(db, audit, clock, accounts, 'http://localhost:3000/');
      expect(local.unavailable).toBeNull();
      expect((await local.invite('alice', operator)).url).toMatch(/^http:\/\/localhost:3000\/enrol\//);
    });
  });

  describe('sessions', () => {
    it('the signed-in approver until expiry; a Secure cookie over HTTPS', async () => {
      const alice = await accounts.create({ name: 'alice' }, operator);
      const { cookie, csrfToken, credentialId } = await signIn(alice.id);
      expect(await web.current(fakeRequest({ cookie }))).toMatchObject({
        approverId: alice.id,
        approverName: 'alice',
        credentialId,
        csrfToken,
      });
      expect(await web.current(fakeRequest({ cookie: 'aotp_session=forged' }))).toBeNull();
      expect(await web.current(fakeRequest({}))).toBeNull();
      now = new Date(T0.getTime() + SESSION_TTL_MS);
      expect(await web.current(fakeRequest({ cookie }))).toBeNull();
      expect(web.clearedCookie()).toBe('aotp_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure');
    });

    it('ends when the approver is disabled (for good: enabling does not revive it) or deleted', async () => {
      const alice = await accounts.create({ name: 'alice' }, operator);
      const bob = await accounts.create({ name: 'bob' }, operator);
      const a = await signIn(alice.id);
      const b = await signIn(bob.id);
      await accounts.disable('alice', operator);
      expect(await web.current(fakeRequest({ cookie: a.cookie }))).toBeNull();
      expect(await web.forPost(fakeRequest({ cookie: a.cookie, 'x-csrf-token': a.csrfToken }))).toEqual({
        refused: 'signed_out',
      });
      await accounts.enable('alice', operator);
      expect(await web.current(fakeRequest({ cookie: a.cookie }))).toBeNull();
      expect(await web.current(fakeRequest({ cookie: b.cookie }))).not.toBeNull();
      await accounts.delete('bob', operator);
      expect(await web.current(fakeRequest({ cookie: b.cookie }))).toBeNull();
    });

    it('ends when its passkey is removed; an approver cannot remove their last passkey', async () => {
      const alice = await accounts.create({ name: 'alice' }, operator);
      const first = await signIn(alice.id);
      const byAlice: RequestOrigin = { actor: { type: 'approver', platform: 'web', userId: alice.id } };
      const last = await appError(web.removePasskey(alice.id, first.credentialId, byAlice, 'approver'));
      expect(last).toMatchObject({ code: 'CONFLICT' });
      expect(last.message).toContain('only passkey');
      const second = await signIn(alice.id);
      await web.removePasskey(alice.id, first.credentialId, byAlice, 'approver');
      expect(await web.current(fakeRequest({ cookie: first.cookie }))).toBeNull();
      expect(await web.current(fakeRequest({ cookie: second.cookie }))).not.toBeNull();
      // An operator may remove the last one (a lost device); the approver needs a new invitation.
      await web.removePasskey('alice', second.credentialId, operator, 'operator');
      expect(await web.passkeys(alice.id)).toEqual([]);
      expect((await events('passkey.removed')).map((e) => e.details.by)).toEqual(['approver', 'operator']);
    });
  });

  describe("a page's POST", () => {
    it('needs the session CSRF token and, when sent, our Origin; each refusal is audited', async () => {
      const alice = await accounts.create({ name: 'alice' }, operator);
      const { cookie, csrfToken } = await signIn(alice.id);
      expect(await web.forPost(fakeRequest({ 'x-csrf-token': csrfToken }))).toEqual({
        refused: 'signed_out',
      });
      const refusals: [Record<string, string>, string][] = [
        [{ cookie }, 'no CSRF token'],
        [{ cookie, 'x-csrf-token': `${csrfToken.slice(1)}A` }, 'wrong CSRF token'],
        [{ cookie, 'x-csrf-token': 'short' }, 'wrong CSRF token'],
        [{ cookie, 'x-csrf-token': csrfToken, origin: 'https://evil.example' }, 'foreign Origin'],
        [{ cookie, 'x-csrf-token': csrfToken, origin: 'http://otp.example.com' }, 'foreign Origin'],
      ];
      for (const [headers] of refusals) {
        expect(await web.forPost(fakeRequest(headers))).toEqual({ refused: 'csrf' });
      }
      const audited = await events('web.csrf_refused');
      expect(audited.map((e) => e.details.reason)).toEqual(refusals.map(([, reason]) => reason));
      expect(audited[0]?.details).toMatchObject({ approverId: alice.id, url: '/approve/:id/decision' });
      expect(audited[0]?.actor).toMatchObject({ type: 'approver', platform: 'web', userId: alice.id });

      const accepted: Record<string, string>[] = [
        { cookie, 'x-csrf-token': csrfToken },
        { cookie, 'x-csrf-token': csrfToken, origin: PUBLIC_URL },
      ];
      for (const headers of accepted) {
        expect(await web.forPost(fakeRequest(headers))).toMatchObject({ session: { approverId: alice.id } });
      }
    });
  });

  describe('sign-in', () => {
    it('a challenge works once and an unknown passkey is refused; every failure is audited', async () => {
      const options = await web.authenticationOptions();
      expect(options).toMatchObject({ rpId: 'otp.example.com', userVerification: 'required' });
      expect(options.allowCredentials ?? []).toEqual([]);
      const clientDataJSON = Buffer.from(
        JSON.stringify({ type: 'webauthn.get', challenge: options.challenge, origin: PUBLIC_URL }),
      ).toString('base64url');
      const response = {
        id: 'unknown-credential',
        rawId: 'unknown-credential',
        type: 'public-key' as const,
        clientExtensionResults: {},
        response: { clientDataJSON, authenticatorData: 'AA', signature: 'AA' },
      };
      const from = { ip: '203.0.113.9', userAgent: 'test' };
      expect(await appError(web.authenticationVerify(response, from))).toMatchObject({ code: 'FORBIDDEN' });
      expect(await appError(web.authenticationVerify(response, from))).toMatchObject({ code: 'FORBIDDEN' });
      const failed = await events('web.sign_in_failed');
      expect(failed.map((e) => e.details.reason)).toEqual([
        'unknown passkey',
        'unknown, used or expired challenge',
      ]);
      expect(await events('web.signed_in')).toEqual([]);
    });
  });
});
