import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError } from '../../core/errors.js';
import type { CeremonyLimiter } from '../../services/ceremonyLimit.js';
import type { BrowserOrigin, WebAuthService } from '../../services/webAuth.js';
import { webActor } from '../../services/webAuth.js';
import type { WebSession } from '../../services/webSessions.js';
import { html, raw, sendPage } from './page.js';

/** The page scripts of sign-in (listed for registerWebAssets). */
export const WEB_AUTH_ASSETS = ['enrol.js', 'login.js', 'account.js'] as const;

const SCRIPTS = (page: string) => ['webauthn.js', 'web.js', page];

/** A WebAuthn response as the browser package sends it; the library checks the rest. */
/** Credential ids are base64url (at most 1023 bytes): anything else is a 400 before any query. */
export const credentialId = z
  .string()
  .min(1)
  .max(1400)
  .regex(/^[A-Za-z0-9_-]+$/, 'must be base64url');

const credential = z
  .object({
    id: credentialId,
    rawId: credentialId,
    type: z.literal('public-key'),
    response: z.record(z.string(), z.unknown()),
    clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
    authenticatorAttachment: z.string().max(32).optional(),
  })
  .passthrough();

const token = z.string().min(1).max(100);
const enrolOptionsBody = z.object({ token }).strict();
const enrolVerifyBody = z
  .object({ token, response: credential, name: z.string().max(200).optional() })
  .strict();
const loginVerifyBody = z.object({ response: credential, next: z.string().max(2000).optional() }).strict();
const addVerifyBody = z.object({ response: credential, name: z.string().max(200).optional() }).strict();
const removeBody = z.object({ credentialId }).strict();

/**
 * Where to go after signing in: only a path on this server (`/approve/…`), never another site
 * (`//evil.example`, `/\evil.example` and absolute URLs are dropped for /inbox).
 */
export function localPath(next: unknown, fallback = '/inbox'): string {
  if (typeof next !== 'string' || next.length > 2000) return fallback;
  if (!/^\/(?![/\\])/.test(next) || next.includes('\\') || [...next].some(isControl)) return fallback;
  return next;
}

const isControl = (c: string) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f;

const browserOrigin = (request: FastifyRequest): BrowserOrigin => ({
  ip: request.ip,
  userAgent: request.headers['user-agent'] ?? null,
});

/**
 * Enrolment, sign-in, sign-out and the account page (issue 15). Pages are GETs that change
 * nothing; every change is a JSON POST: signed-out ones (enrol, sign in) must come from our own
 * origin, signed-in ones carry the session's CSRF token too (WebSessions.forPost).
 */
export function registerWebAuthRoutes(
  app: FastifyInstance,
  auth: WebAuthService,
  /** Per client address: the ceremonies below answer anyone (see CeremonyLimiter). */
  ceremonies: Pick<CeremonyLimiter, 'assertAllowed'>,
): void {
  const unavailablePage = (reply: FastifyReply) =>
    sendPage(reply, 503, {
      title: 'Web sign-in is off',
      body: html`<h1>Web sign-in is off</h1><p>${auth.unavailable ?? ''}.</p>
<p>Ask your operator to set <code>PUBLIC_URL</code> to this server's HTTPS address.</p>`,
    });

  /** A POST from a page of ours: a browser always sends Origin on fetch, and it must be ours. */
  const assertOwnOrigin = (request: FastifyRequest) => {
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== auth.origin) {
      throw new AppError('FORBIDDEN', 'This request did not come from a page of this server');
    }
  };

  /** The signed-in session for a POST, or the refusal (401 signed out, 403 CSRF, audited). */
  const sessionForPost = async (request: FastifyRequest): Promise<WebSession> => {
    const result = await auth.forPost(request);
    if ('session' in result) return result.session;
    if (result.refused === 'signed_out') {
      throw new AppError('FORBIDDEN', 'You are signed out: sign in again', { refused: 'signed_out' });
    }
    throw new AppError('FORBIDDEN', 'Refused: the page sent no valid CSRF token. Reload it and try again.', {
      refused: 'csrf',
    });
  };

  app.get<{ Params: { token: string } }>('/enrol/:token', async (request, reply) => {
    if (auth.unavailable) return unavailablePage(reply);
    const found = await auth.invitation(request.params.token);
    if (found.state !== 'valid') {
      const refusal = {
        unknown: { status: 404, title: 'Unknown enrolment link', text: 'This enrolment link is not known.' },
        used: {
          status: 410,
          title: 'Enrolment link already used',
          text: 'This enrolment link has already been used.',
        },
        expired: {
          status: 410,
          title: 'Enrolment link expired',
          text: 'This enrolment link has expired: links are valid for 24 hours.',
        },
        disabled: { status: 410, title: 'Account disabled', text: 'This approver account is disabled.' },
      }[found.state];
      return sendPage(reply, refusal.status, {
        title: refusal.title,
        body: html`<h1>${refusal.title}</h1><p class="error" data-refusal="${found.state}">${refusal.text}</p>
<p>Ask your operator for a new invitation. Already enrolled? <a href="/login">Sign in</a>.</p>`,
      });
    }
    return sendPage(reply, 200, {
      title: 'Create a passkey',
      scripts: SCRIPTS('enrol.js'),
      body: html`<h1>Welcome, ${found.approver.name}</h1>
<p>Create a passkey to approve requests on this server. Your device will ask for your fingerprint,
face or PIN: that is what proves it is you each time you sign in.</p>
<form id="enrol" data-token="${request.params.token}">
<label for="passkey-name">Name this passkey (optional)</label>
<input id="passkey-name" name="name" maxlength="64" placeholder="e.g. work laptop" autocomplete="off">
<button type="submit" id="create-passkey">Create a passkey</button>
</form>
<p id="status" class="muted" role="status"></p>
<p class="muted">This link works once and expires at <time>${found.expiresAt.toISOString()}</time>.</p>`,
    });
  });

  app.post('/web/enrol/options', async (request) => {
    assertOwnOrigin(request);
    await ceremonies.assertAllowed(request.ip);
    const body = enrolOptionsBody.parse(request.body);
    return { ok: true, options: await auth.registrationOptions({ token: body.token }) };
  });

  app.post('/web/enrol/verify', async (request, reply) => {
    assertOwnOrigin(request);
    await ceremonies.assertAllowed(request.ip);
    const body = enrolVerifyBody.parse(request.body);
    const { signedIn } = await auth.registrationVerify(
      { token: body.token },
      body.response as never,
      body.name,
      browserOrigin(request),
    );
    if (signedIn) reply.header('set-cookie', signedIn.cookie);
    return { ok: true, redirect: '/account' };
  });

  app.get<{ Querystring: { next?: string } }>('/login', async (request, reply) => {
    if (auth.unavailable) return unavailablePage(reply);
    const next = localPath(request.query.next);
    return sendPage(reply, 200, {
      title: 'Sign in',
      scripts: SCRIPTS('login.js'),
      body: html`<h1>Sign in</h1>
<p>Approvers sign in with the passkey they created from their invitation.</p>
<form id="login" data-next="${next}">
<button type="submit" id="sign-in">Sign in with a passkey</button>
</form>
<p id="status" class="muted" role="status"></p>`,
    });
  });

  app.post('/web/login/options', async (request) => {
    assertOwnOrigin(request);
    await ceremonies.assertAllowed(request.ip);
    return { ok: true, options: await auth.authenticationOptions() };
  });

  app.post('/web/login/verify', async (request, reply) => {
    assertOwnOrigin(request);
    await ceremonies.assertAllowed(request.ip);
    const body = loginVerifyBody.parse(request.body);
    const signedIn = await auth.authenticationVerify(body.response as never, browserOrigin(request));
    reply.header('set-cookie', signedIn.cookie);
    return { ok: true, redirect: localPath(body.next) };
  });

  app.post('/logout', async (request, reply) => {
    const session = await sessionForPost(request);
    await auth.signOut(session, request);
    reply.header('set-cookie', auth.clearedCookie());
    return { ok: true, redirect: '/login' };
  });

  app.get('/account', async (request, reply) => {
    if (auth.unavailable) return unavailablePage(reply);
    const session = await auth.current(request);
    if (!session) return reply.redirect(`/login?next=${encodeURIComponent('/account')}`, 303);
    const passkeys = await auth.passkeys(session.approverId);
    const rows = passkeys
      .map(
        (p) => html`<li data-credential="${p.credentialId}">
<strong>${p.name}</strong>${p.credentialId === session.credentialId ? raw(' <span class="muted">(signed in with this one)</span>') : ''}<br>
<span class="muted">added <time>${p.createdAt.toISOString()}</time>${p.lastUsedAt ? raw(html`, last used <time>${p.lastUsedAt.toISOString()}</time>`) : ''}</span>
<button type="button" class="remove-passkey" data-credential="${p.credentialId}">Remove</button>
</li>`,
      )
      .join('\n');
    return sendPage(reply, 200, {
      title: 'Your account',
      scripts: SCRIPTS('account.js'),
      csrfToken: session.csrfToken,
      body: html`<h1>Signed in as <span id="approver-name">${session.approverName}</span></h1>
<h2>Your passkeys</h2>
<ul id="passkeys">${raw(rows)}</ul>
<p id="status" class="muted" role="status"></p>
<button type="button" id="add-passkey">Add a passkey</button>
<button type="button" id="sign-out">Sign out</button>`,
    });
  });

  app.post('/web/passkeys/options', async (request) => {
    const session = await sessionForPost(request);
    return { ok: true, options: await auth.registrationOptions({ session }) };
  });

  app.post('/web/passkeys/verify', async (request) => {
    const session = await sessionForPost(request);
    const body = addVerifyBody.parse(request.body);
    const { passkey } = await auth.registrationVerify(
      { session },
      body.response as never,
      body.name,
      browserOrigin(request),
    );
    return { ok: true, credentialId: passkey.credentialId, redirect: '/account' };
  });

  app.post('/web/passkeys/remove', async (request) => {
    const session = await sessionForPost(request);
    const body = removeBody.parse(request.body);
    await auth.removePasskey(
      session.approverId,
      body.credentialId,
      { actor: webActor({ id: session.approverId, name: session.approverName }), ...browserOrigin(request) },
      'approver',
    );
    return { ok: true, redirect: '/account' };
  });
}
