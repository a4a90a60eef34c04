import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgliteDb } from '../../src/store/pglite.js';
import { type Api, apiClient } from '../helpers/api.js';
import { addVirtualAuthenticator, launchBrowser, newPage, settleAll } from '../helpers/browser.js';
import { runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';
import { freePort } from '../setup/redis.js';

const ADMIN = `uk_${randomBytes(24).toString('hex')}`;
const DATABASE = process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite';

/**
 * Issue 15's acceptance for sign-in, in a real browser: Debian's Chromium with Chrome's virtual
 * authenticator (a platform authenticator with user verification), against the built server as
 * a process whose PUBLIC_URL is its own loopback address. An approver is invited with the CLI,
 * enrols a passkey from the link, signs out and signs in again with it; a used and an expired
 * invitation are refused with a page saying so.
 */
describe('web sign-in with a passkey, in Chromium', () => {
  let server: ServerProcess;
  let publicUrl: string;
  let port: number;
  let browser: Browser;
  let operator: Api;
  const cli = (args: string[]) => runCli(args, { AGENT_OTP_URL: server.url, AGENT_OTP_ADMIN_TOKEN: ADMIN });
  const start = (dataDir?: string, schema?: string) =>
    startServer({
      database: DATABASE,
      dataDir,
      schema,
      env: { ADMIN_TOKEN: ADMIN, PORT: String(port), PUBLIC_URL: publicUrl },
    });

  beforeAll(async () => {
    // PUBLIC_URL names the port, so it is chosen before the server starts. `localhost`, not
    // 127.0.0.1: browsers refuse an IP address as a passkey's relying party.
    port = await freePort();
    publicUrl = `http://localhost:${port}`;
    await settleAll([
      start().then((s) => {
        server = s;
      }),
      launchBrowser().then((b) => {
        browser = b;
      }),
    ]);
    operator = apiClient(server.url, ADMIN);
  }, 180_000);

  /** Servers replaced by a restart on the same data dir, stopped last. */
  const retired: ServerProcess[] = [];

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    for (const old of retired) await old.stop();
  });

  let usedLink = '';

  it('enrols from the invitation link, signs out, and signs in again with the passkey', async () => {
    const invited = await cli(['approver:invite', '--name', 'alice', '--slack', 'U0ALICE']);
    expect(invited.code, invited.stderr).toBe(0);
    const link = /(http:\/\/\S+\/enrol\/[A-Za-z0-9_-]{43})$/m.exec(invited.stdout)?.[1];
    expect(link, invited.stdout).toBeDefined();
    expect(link?.startsWith(`${publicUrl}/enrol/`)).toBe(true);
    usedLink = link as string;

    const { context, page } = await newPage(browser, { width: 390, height: 844 });
    const authenticator = await addVirtualAuthenticator(page);
    const enrolPage = await page.goto(usedLink);
    expect(enrolPage?.status()).toBe(200);
    expect(await page.textContent('h1')).toBe('Welcome, alice');

    await page.fill('#passkey-name', 'test phone');
    await page.click('#create-passkey');
    await page.waitForURL(`${publicUrl}/account`);
    expect(await page.textContent('#approver-name')).toBe('alice');
    expect(await page.locator('#passkeys li').allTextContents()).toEqual([
      expect.stringContaining('test phone'),
    ]);
    // A discoverable passkey (resident key), so signing in needs no username.
    const stored = await authenticator.credentials();
    expect(stored.map((c) => c.isResidentCredential)).toEqual([true]);

    const [cookie] = (await context.cookies()).filter((c) => c.name === 'aotp_session');
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', secure: false, path: '/' });
    // Short-lived: about 30 minutes from now.
    expect(cookie?.expires ?? 0).toBeGreaterThan(Date.now() / 1000 + 29 * 60);
    expect(cookie?.expires ?? 0).toBeLessThan(Date.now() / 1000 + 31 * 60);

    await page.click('#sign-out');
    await page.waitForURL(`${publicUrl}/login`);
    expect((await context.cookies()).filter((c) => c.name === 'aotp_session')).toEqual([]);
    // Signed out, the account page sends to sign-in, and back afterwards.
    await page.goto(`${publicUrl}/account`);
    expect(page.url()).toBe(`${publicUrl}/login?next=%2Faccount`);

    await page.click('#sign-in');
    await page.waitForURL(`${publicUrl}/account`);
    expect(await page.textContent('#approver-name')).toBe('alice');
    expect(await page.textContent('#passkeys')).toContain('signed in with this one');
    expect((await authenticator.credentials())[0]?.signCount).toBeGreaterThanOrEqual(2);
    await page.screenshot({ path: 'test-results/web-account-phone.png', fullPage: true });

    // The only passkey cannot be removed by its approver: they could not sign in again.
    await page.click('button.remove-passkey');
    await expect.poll(() => page.textContent('#status')).toContain('only passkey');
    expect(await page.locator('#passkeys li').count()).toBe(1);

    // A second device: it adds a passkey while signed in; then the first one can go.
    await authenticator.cdp.send('WebAuthn.removeVirtualAuthenticator', {
      authenticatorId: authenticator.authenticatorId,
    });
    const second = await addVirtualAuthenticator(page);
    await page.click('#add-passkey');
    await expect.poll(() => page.locator('#passkeys li').count()).toBe(2);
    expect(await second.credentials()).toHaveLength(1);
    await page.click('li:has-text("test phone") button.remove-passkey');
    // The session stood on the removed passkey: it ended with it, and the page asks to sign in.
    await page.waitForURL(`${publicUrl}/login?next=%2Faccount`);
    await page.click('#sign-in');
    await page.waitForURL(`${publicUrl}/account`);
    expect(await page.locator('#passkeys li').allTextContents()).toEqual([
      expect.stringMatching(/Passkey 2[\s\S]*signed in with this one/),
    ]);

    const passkeys = await cli(['approver:passkeys', 'alice']);
    expect(passkeys.code, passkeys.stderr).toBe(0);
    expect(passkeys.stdout).toMatch(/Passkey 2/);
    expect(passkeys.stdout).not.toMatch(/test phone/);

    const audit = await operator<{
      events: { type: string; actor: { platform?: string; userId?: string } }[];
    }>('GET', '/api/v1/audit?limit=200');
    const types = audit.body.data.events.map((e) => e.type);
    expect(types).toEqual(
      expect.arrayContaining([
        'approver.invited',
        'passkey.enrolled',
        'web.signed_out',
        'web.signed_in',
        'passkey.removed',
      ]),
    );
    const signedIn = audit.body.data.events.find((e) => e.type === 'web.signed_in');
    expect(signedIn?.actor).toMatchObject({ platform: 'web', userId: expect.stringMatching(/^apr_/) });
    await context.close();
  });

  it('a used invitation is refused: a page saying so (410), and no passkey can be made from it', async () => {
    expect(usedLink).not.toBe('');
    const { context, page } = await newPage(browser);
    await addVirtualAuthenticator(page);
    const response = await page.goto(usedLink);
    expect(response?.status()).toBe(410);
    expect(await page.textContent('h1')).toBe('Enrolment link already used');
    expect(await page.locator('#create-passkey').count()).toBe(0);

    const token = usedLink.slice(usedLink.lastIndexOf('/') + 1);
    const options = await page.request.post(`${publicUrl}/web/enrol/options`, { data: { token } });
    expect(options.status()).toBe(410);
    expect(((await options.json()) as { error: { code: string } }).error.code).toBe('TOKEN_USED');

    const unknown = await page.goto(`${publicUrl}/enrol/${'x'.repeat(43)}`);
    expect(unknown?.status()).toBe(404);
    expect(await page.textContent('h1')).toBe('Unknown enrolment link');
    await context.close();
  });

  it('hostile input to the sign-in routes (not in /openapi.json) is a 4xx, never a 5xx', async () => {
    const junkCredential = (patch: Record<string, unknown>) => ({
      id: 'abc',
      rawId: 'abc',
      type: 'public-key',
      clientExtensionResults: {},
      response: { clientDataJSON: 'AA', authenticatorData: 'AA', signature: 'AA' },
      ...patch,
    });
    const clientData = (challenge: string) =>
      Buffer.from(JSON.stringify({ type: 'webauthn.get', challenge, origin: publicUrl })).toString(
        'base64url',
      );
    const requests: [string, string, unknown?][] = [
      ['GET', '/enrol/%00'],
      ['GET', '/enrol/%ZZ'],
      ['GET', `/enrol/${'a'.repeat(300)}`],
      ['GET', '/login?next=%00'],
      ['GET', '/login?next=//evil.example'],
      ['POST', '/web/enrol/options', { token: '\u0000' }],
      ['POST', '/web/enrol/options', { token: 'x', extra: 1 }],
      ['POST', '/web/enrol/options', '{"token": '],
      ['POST', '/web/enrol/verify', { token: 'x', response: junkCredential({}) }],
      ['POST', '/web/enrol/verify', { token: 'x', response: junkCredential({ id: '\u0000' }) }],
      ['POST', '/web/login/verify', { response: junkCredential({}) }],
      ['POST', '/web/login/verify', { response: junkCredential({ id: 'a\ud800' }) }],
      [
        'POST',
        '/web/login/verify',
        { response: junkCredential({ response: { clientDataJSON: clientData('\u0000') } }) },
      ],
      [
        'POST',
        '/web/login/verify',
        { response: junkCredential({ response: { clientDataJSON: clientData('A'.repeat(43)) } }) },
      ],
      ['POST', '/web/login/verify', { response: 'nope', next: 'x'.repeat(5000) }],
      ['POST', '/logout', {}],
      ['POST', '/web/passkeys/remove', { credentialId: '\u0000' }],
    ];
    for (const [method, path, body] of requests) {
      const res = await fetch(`${server.url}${path}`, {
        method,
        redirect: 'manual',
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await res.text();
      expect(res.status, `${method} ${path}: ${text}`).toBeLessThan(500);
      if (path.startsWith('/login')) {
        // Only a local path is a place to return to: anything else falls back to the inbox.
        expect(res.status).toBe(200);
        expect(text).toContain('data-next="/inbox"');
      } else expect(res.status, `${method} ${path}: ${text}`).toBeGreaterThanOrEqual(400);
    }
  });

  it('an expired invitation is refused', async () => {
    // Inviting an existing account, by name.
    expect((await cli(['approver:create', '--name', 'bob'])).code).toBe(0);
    const invited = await cli(['approver:invite', 'bob']);
    expect(invited.code, invited.stderr).toBe(0);
    expect(invited.stdout).toMatch(/^Send this link to bob \(apr_\w+\); it works once, until /);
    const link = /(http:\/\/\S+\/enrol\/\S+)$/m.exec(invited.stdout)?.[1] as string;

    // The server keeps the time of the machine: age the invitation in its database instead.
    const expire = "UPDATE approver_invitations SET expires_at = now() - interval '1 second'";
    if (DATABASE === 'postgres') {
      const client = new pg.Client({
        connectionString: process.env.TEST_DATABASE_URL,
        options: `-c search_path=${server.schema}`,
      });
      await client.connect();
      await client.query(expire);
      await client.end();
    } else {
      // PGlite is the server's own file: stop it, edit, start it again on the same data dir.
      const dataDir = server.dataDir;
      await server.kill('SIGTERM');
      const db = await createPgliteDb(dataDir);
      await db.query(expire);
      await db.close();
      // The first handle owns the data dir: stopped after this one, it removes it.
      retired.push(server);
      server = await start(dataDir);
    }

    const { context, page } = await newPage(browser);
    const response = await page.goto(link);
    expect(response?.status()).toBe(410);
    expect(await page.textContent('h1')).toBe('Enrolment link expired');
    expect(await page.textContent('p.error')).toContain('valid for 24 hours');
    await context.close();
  });
});
