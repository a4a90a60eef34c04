import { randomBytes, timingSafeEqual } from 'node:crypto';
import {
  type AuthenticationResponseJSON,
  type AuthenticatorTransportFuture,
  generateAuthenticationOptions,
  generateRegistrationOptions,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from '@simplewebauthn/server';
import type { FastifyRequest } from 'fastify';
import type { Actor } from '../core/audit/index.js';
import type { Clock } from '../core/clock.js';
import { sha256Hex } from '../core/credentials.js';
import { AppError } from '../core/errors.js';
import { type RelyingParty, relyingParty } from '../core/relyingParty.js';
import { printable } from '../core/storable.js';
import { type ApproverAccount, findApprover } from '../store/approverRepository.js';
import type { Db, Queryable } from '../store/db.js';
import {
  deleteExpired,
  deletePasskey,
  deleteSession,
  deleteSessionsOf,
  findInvitation,
  findLiveSession,
  findPasskey,
  type Invitation,
  insertChallenge,
  insertInvitation,
  insertPasskey,
  insertSession,
  listPasskeys,
  type Passkey,
  recordPasskeyUse,
  takeChallenge,
  useInvitation,
} from '../store/webAuthRepository.js';
import type { RequestOrigin } from './agents.js';
import type { ApproverService } from './approvers.js';
import type { AuditService } from './audit.js';
import { CSRF_HEADER, readCookie, SESSION_COOKIE, type WebSession, type WebSessions } from './webSessions.js';

export const INVITATION_TTL_MS = 24 * 3600_000;
/** Short: a signed-in browser left open decides nothing for long. */
export const SESSION_TTL_MS = 30 * 60_000;
/** Long enough to find the phone or the security key, short enough to be useless once stolen. */
const CHALLENGE_TTL_MS = 5 * 60_000;
const CEREMONY_TIMEOUT_MS = 2 * 60_000;
const PASSKEY_NAME_MAX = 64;

/** Who is asking, for the audit trail (a browser has no key: its address and user agent). */
export interface BrowserOrigin {
  ip?: string | null;
  userAgent?: string | null;
}

export interface SignedIn {
  session: WebSession;
  /** The Set-Cookie header value that carries the session (shown once, stored only hashed). */
  cookie: string;
}

/** Whom a registration enrols: the approver of an invitation, or a signed-in approver adding one. */
export type Enrolment = { token: string } | { session: WebSession };

/** What an invitation link is, for the page that opens it. */
export type InvitationState =
  | { state: 'valid'; approver: ApproverAccount; expiresAt: Date }
  | { state: 'unknown' }
  | { state: 'used' }
  | { state: 'expired' }
  | { state: 'disabled' };

/**
 * Web sign-in for approver accounts (issue 15): enrolment invitations, passkeys (WebAuthn through
 * @simplewebauthn/server, user verification always required), and short sessions bound to the
 * approver and the passkey that signed in. Everything a browser holds (invitation token, session
 * cookie) is stored only hashed; challenges live in the database, single use, so any instance can
 * finish a ceremony another one started.
 */
export class WebAuthService implements WebSessions {
  private readonly rpResult: ReturnType<typeof relyingParty>;

  constructor(
    private readonly db: Db,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly approvers: ApproverService,
    publicUrl: string | undefined,
    private readonly sessionTtlMs = SESSION_TTL_MS,
  ) {
    this.rpResult = relyingParty(publicUrl);
  }

  /** Why web sign-in cannot work here (PUBLIC_URL), or null when it can. */
  get unavailable(): string | null {
    return this.rpResult.problem ?? null;
  }

  /** The origin our pages are served from (PUBLIC_URL's), or null when web sign-in is off. */
  get origin(): string | null {
    return this.rpResult.rp?.origin ?? null;
  }

  private get rp(): RelyingParty {
    if (!this.rpResult.rp) {
      // A 409, not a 503: retrying does not help; the server's configuration has to change.
      throw new AppError('CONFLICT', `Web sign-in is off on this server: ${this.rpResult.problem}`, {
        setting: 'PUBLIC_URL',
      });
    }
    return this.rpResult.rp;
  }

  // ── Invitations ────────────────────────────────────────────────────────────────────────────

  /** A one-time enrolment link for an active approver, valid 24 h; only its hash is stored. */
  async invite(
    idOrName: string,
    origin: RequestOrigin,
  ): Promise<{ approver: ApproverAccount; url: string; expiresAt: Date }> {
    const { id } = await this.approvers.get(idOrName);
    const rp = this.rp;
    const token = randomBytes(32).toString('base64url');
    const now = this.clock.now();
    const expiresAt = new Date(now.getTime() + INVITATION_TTL_MS);
    const approver = await this.db.transaction(async (tx) => {
      const current = await findApprover(tx, id, true);
      if (!current) throw new AppError('NOT_FOUND', `No approver has the id "${id}"`);
      if (current.status !== 'active') {
        throw new AppError(
          'CONFLICT',
          `${current.name} (${current.id}) is disabled: enable the account (approver:enable) before inviting them`,
          { approverId: current.id, status: current.status },
        );
      }
      await insertInvitation(tx, {
        tokenHash: sha256Hex(token),
        approverId: id,
        createdAt: now,
        expiresAt,
        usedAt: null,
      });
      await this.audit.append(tx, {
        type: 'approver.invited',
        actor: origin.actor,
        ip: origin.ip ?? null,
        userAgent: origin.userAgent ?? null,
        details: { approverId: current.id, name: current.name, expiresAt: expiresAt.toISOString() },
      });
      return current;
    });
    return { approver, url: `${rp.baseUrl}/enrol/${token}`, expiresAt };
  }

  /** What the link holds, without using it (a GET never changes anything). */
  async invitation(token: string): Promise<InvitationState> {
    const found = await findInvitation(this.db, sha256Hex(token));
    if (!found) return { state: 'unknown' };
    if (found.usedAt) return { state: 'used' };
    if (found.expiresAt <= this.clock.now()) return { state: 'expired' };
    const approver = await findApprover(this.db, found.approverId);
    if (!approver) return { state: 'unknown' };
    if (approver.status !== 'active') return { state: 'disabled' };
    return { state: 'valid', approver, expiresAt: found.expiresAt };
  }

  // ── Registration (enrolment, and adding a passkey when signed in) ────────────────────────

  async registrationOptions(enrolment: Enrolment): Promise<PublicKeyCredentialCreationOptionsJSON> {
    const rp = this.rp;
    const { approver, invitation } = await this.enrollee(this.db, enrolment);
    const existing = await listPasskeys(this.db, approver.id);
    const options = await generateRegistrationOptions({
      rpName: 'Agent OTP',
      rpID: rp.id,
      userName: approver.name,
      userDisplayName: approver.name,
      // Stable per approver: the same authenticator enrolling again replaces its passkey.
      userID: new TextEncoder().encode(approver.id),
      attestationType: 'none',
      excludeCredentials: existing.map((p) => ({
        id: p.credentialId,
        transports: p.transports as AuthenticatorTransportFuture[],
      })),
      authenticatorSelection: { residentKey: 'preferred', userVerification: 'required' },
      timeout: CEREMONY_TIMEOUT_MS,
    });
    await insertChallenge(this.db, {
      challenge: options.challenge,
      purpose: 'register',
      approverId: approver.id,
      invitationHash: invitation?.tokenHash ?? null,
      expiresAt: new Date(this.clock.now().getTime() + CHALLENGE_TTL_MS),
    });
    return options;
  }

  /**
   * Stores the new passkey. From an invitation it also uses the invitation up and signs the
   * approver in (the ceremony verified them); signed in, it adds a passkey to the session's
   * approver and leaves the session as it is.
   */
  async registrationVerify(
    enrolment: Enrolment,
    response: RegistrationResponseJSON,
    name: string | undefined,
    from: BrowserOrigin,
  ): Promise<{ passkey: Passkey; signedIn: SignedIn | null }> {
    const rp = this.rp;
    const now = this.clock.now();
    const refuse = (reason: string): never => {
      throw new AppError('FORBIDDEN', `The passkey could not be registered: ${reason}`);
    };
    const challenge = clientChallenge(response.response?.clientDataJSON);
    if (!challenge) refuse('the response carries no challenge');
    const taken = await takeChallenge(this.db, challenge as string, 'register', now);
    const { approver, invitation } = await this.enrollee(this.db, enrolment);
    if (
      !taken ||
      taken.approverId !== approver.id ||
      taken.invitationHash !== (invitation?.tokenHash ?? null)
    ) {
      refuse('the challenge is unknown, used or expired: start again');
    }
    let verified: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
    try {
      verified = await verifyRegistrationResponse({
        response,
        expectedChallenge: challenge as string,
        expectedOrigin: rp.origin,
        expectedRPID: rp.id,
        requireUserVerification: true,
      });
    } catch (err) {
      return refuse((err as Error).message);
    }
    if (!verified.verified || !verified.registrationInfo) return refuse('the authenticator did not verify');
    const { credential } = verified.registrationInfo;
    return this.db.transaction(async (tx) => {
      const current = await findApprover(tx, approver.id, true);
      if (current?.status !== 'active') return refuse('the approver account is disabled or gone');
      if (invitation && !(await useInvitation(tx, invitation.tokenHash, now))) {
        throw invitationRefusal('used');
      }
      if (await findPasskey(tx, credential.id)) return refuse('this passkey is already registered');
      const count = (await listPasskeys(tx, approver.id)).length;
      const passkey: Passkey = {
        credentialId: credential.id,
        approverId: approver.id,
        publicKey: Buffer.from(credential.publicKey).toString('base64url'),
        counter: credential.counter,
        transports: credential.transports ?? [],
        name: cleanName(name) ?? `Passkey ${count + 1}`,
        createdAt: now,
        lastUsedAt: null,
      };
      await insertPasskey(tx, passkey);
      await this.audit.append(tx, {
        type: 'passkey.enrolled',
        actor: webActor(current),
        ip: from.ip ?? null,
        userAgent: from.userAgent ?? null,
        details: {
          approverId: current.id,
          name: current.name,
          credentialId: passkey.credentialId,
          passkeyName: passkey.name,
          via: invitation ? 'invitation' : 'session',
        },
      });
      const signedIn = invitation ? await this.createSession(tx, current, passkey.credentialId, now) : null;
      return { passkey, signedIn };
    });
  }

  private async enrollee(
    db: Queryable,
    enrolment: Enrolment,
  ): Promise<{ approver: ApproverAccount; invitation: Invitation | null }> {
    if ('session' in enrolment) {
      const approver = await findApprover(db, enrolment.session.approverId);
      if (approver?.status !== 'active') throw new AppError('FORBIDDEN', 'Sign in again');
      return { approver, invitation: null };
    }
    const invitation = await findInvitation(db, sha256Hex(enrolment.token));
    if (!invitation) throw invitationRefusal('unknown');
    if (invitation.usedAt) throw invitationRefusal('used');
    if (invitation.expiresAt <= this.clock.now()) throw invitationRefusal('expired');
    const approver = await findApprover(db, invitation.approverId);
    if (!approver) throw invitationRefusal('unknown');
    if (approver.status !== 'active') throw invitationRefusal('disabled');
    return { approver, invitation };
  }

  // ── Authentication (sign-in) ────────────────────────────────────────────────────────────

  /** Discoverable credentials: the browser offers the approver's passkeys, no username asked. */
  async authenticationOptions(): Promise<PublicKeyCredentialRequestOptionsJSON> {
    const rp = this.rp;
    const options = await generateAuthenticationOptions({
      rpID: rp.id,
      userVerification: 'required',
      timeout: CEREMONY_TIMEOUT_MS,
    });
    const now = this.clock.now();
    await deleteExpired(this.db, now);
    await insertChallenge(this.db, {
      challenge: options.challenge,
      purpose: 'authenticate',
      approverId: null,
      invitationHash: null,
      expiresAt: new Date(now.getTime() + CHALLENGE_TTL_MS),
    });
    return options;
  }

  /** Verifies the assertion and opens a session; every failure is audited, with its reason. */
  async authenticationVerify(response: AuthenticationResponseJSON, from: BrowserOrigin): Promise<SignedIn> {
    const rp = this.rp;
    const now = this.clock.now();
    let approver: ApproverAccount | null = null;
    const refuse = async (reason: string): Promise<never> => {
      await this.audit.record({
        type: 'web.sign_in_failed',
        actor: approver ? webActor(approver) : { type: 'system', platform: 'web' },
        ip: from.ip ?? null,
        userAgent: from.userAgent ?? null,
        details: {
          reason,
          credentialId: typeof response.id === 'string' ? response.id.slice(0, 200) : null,
          ...(approver ? { approverId: approver.id, name: approver.name } : {}),
        },
      });
      throw new AppError('FORBIDDEN', 'Sign-in failed: that passkey was not accepted here. Try again.', {
        reason,
      });
    };
    const challenge = clientChallenge(response.response?.clientDataJSON);
    if (!challenge) return refuse('no challenge in the response');
    if (!(await takeChallenge(this.db, challenge, 'authenticate', now))) {
      return refuse('unknown, used or expired challenge');
    }
    const passkey = typeof response.id === 'string' ? await findPasskey(this.db, response.id) : null;
    if (!passkey) return refuse('unknown passkey');
    approver = await findApprover(this.db, passkey.approverId);
    if (!approver) return refuse('unknown passkey');
    if (approver.status !== 'active') return refuse('approver disabled');
    const userHandle = response.response?.userHandle;
    if (userHandle && Buffer.from(userHandle, 'base64url').toString('utf8') !== approver.id) {
      return refuse('the passkey names another account');
    }
    let verified: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
    try {
      verified = await verifyAuthenticationResponse({
        response,
        expectedChallenge: challenge,
        expectedOrigin: rp.origin,
        expectedRPID: rp.id,
        credential: {
          id: passkey.credentialId,
          publicKey: new Uint8Array(Buffer.from(passkey.publicKey, 'base64url')),
          counter: passkey.counter,
          transports: passkey.transports as AuthenticatorTransportFuture[],
        },
        requireUserVerification: true,
      });
    } catch (err) {
      // The library's message says what did not match (origin, counter, user verification, …).
      return refuse((err as Error).message.slice(0, 300));
    }
    if (!verified.verified) return refuse('signature not verified');
    const signedInApprover = approver;
    const signedIn = await this.db.transaction(async (tx) => {
      const current = await findApprover(tx, signedInApprover.id, true);
      if (current?.status !== 'active') return null;
      const moved = await recordPasskeyUse(
        tx,
        passkey.credentialId,
        passkey.counter,
        verified.authenticationInfo.newCounter,
        now,
      );
      if (!moved) return null;
      const session = await this.createSession(tx, current, passkey.credentialId, now);
      await this.audit.append(tx, {
        type: 'web.signed_in',
        actor: webActor(current),
        ip: from.ip ?? null,
        userAgent: from.userAgent ?? null,
        details: { approverId: current.id, name: current.name, credentialId: passkey.credentialId },
      });
      return session;
    });
    return signedIn ?? refuse('the passkey was used concurrently, or the approver changed meanwhile');
  }

  // ── Sessions ────────────────────────────────────────────────────────────────────────────

  private async createSession(
    tx: Queryable,
    approver: ApproverAccount,
    credentialId: string,
    now: Date,
  ): Promise<SignedIn> {
    const value = randomBytes(32).toString('base64url');
    const session: WebSession = {
      approverId: approver.id,
      approverName: approver.name,
      credentialId,
      verifiedAt: now,
      csrfToken: randomBytes(32).toString('base64url'),
      expiresAt: new Date(now.getTime() + this.sessionTtlMs),
    };
    await insertSession(tx, { idHash: sha256Hex(value), ...session, createdAt: now });
    return { session, cookie: this.cookie(value, Math.floor(this.sessionTtlMs / 1000)) };
  }

  /** The Set-Cookie value that ends the session in the browser. */
  clearedCookie(): string {
    return this.cookie('', 0);
  }

  private cookie(value: string, maxAgeSeconds: number): string {
    const secure = this.rpResult.rp?.secureCookies ?? true;
    return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
  }

  async current(request: FastifyRequest): Promise<WebSession | null> {
    const value = readCookie(request, SESSION_COOKIE);
    if (!value || value.length > 200) return null;
    const stored = await findLiveSession(this.db, sha256Hex(value), this.clock.now());
    if (!stored) return null;
    const { idHash: _, ...session } = stored;
    return session;
  }

  async forPost(
    request: FastifyRequest,
  ): Promise<{ session: WebSession } | { refused: 'signed_out' | 'csrf' }> {
    const session = await this.current(request);
    if (!session) return { refused: 'signed_out' };
    const header = request.headers[CSRF_HEADER];
    const presented = typeof header === 'string' ? header : '';
    const origin = request.headers.origin;
    const problem = !sameSecret(presented, session.csrfToken)
      ? presented
        ? 'wrong CSRF token'
        : 'no CSRF token'
      : origin !== undefined && origin !== this.rpResult.rp?.origin
        ? 'foreign Origin'
        : null;
    if (problem === null) return { session };
    await this.audit.record({
      type: 'web.csrf_refused',
      actor: webActor({ id: session.approverId, name: session.approverName }),
      ip: request.ip,
      userAgent: request.headers['user-agent'] ?? null,
      details: {
        approverId: session.approverId,
        reason: problem,
        method: request.method,
        url: request.routeOptions.url ?? request.url.split('?')[0],
        ...(problem === 'foreign Origin' ? { origin: String(origin).slice(0, 200) } : {}),
      },
    });
    return { refused: 'csrf' };
  }

  /**
   * A disabled approver's sessions end for good (current() already refuses them while disabled;
   * without this, enabling the account again would bring them back). Told by ApproverService.
   */
  async approverChanged(approverId: string): Promise<void> {
    const approver = await findApprover(this.db, approverId);
    if (approver?.status === 'disabled') await deleteSessionsOf(this.db, approverId);
  }

  /** Ends the request's session (its cookie is cleared by the caller). */
  async signOut(session: WebSession, request: FastifyRequest): Promise<void> {
    const value = readCookie(request, SESSION_COOKIE);
    if (!value) return;
    await this.db.transaction(async (tx) => {
      if (!(await deleteSession(tx, sha256Hex(value)))) return;
      await this.audit.append(tx, {
        type: 'web.signed_out',
        actor: webActor({ id: session.approverId, name: session.approverName }),
        ip: request.ip,
        userAgent: request.headers['user-agent'] ?? null,
        details: { approverId: session.approverId, credentialId: session.credentialId },
      });
    });
  }

  // ── Passkeys ────────────────────────────────────────────────────────────────────────────

  passkeys(approverId: string): Promise<Passkey[]> {
    return listPasskeys(this.db, approverId);
  }

  /** Operators: an approver's passkeys, by id or name. */
  async passkeysOf(idOrName: string): Promise<{ approver: ApproverAccount; passkeys: Passkey[] }> {
    const approver = await this.approvers.get(idOrName);
    return { approver, passkeys: await listPasskeys(this.db, approver.id) };
  }

  /**
   * Removes one of the approver's passkeys; its sessions end with it. The approver cannot remove
   * their last one (they would lock themselves out); an operator can (the approver then needs a
   * new invitation).
   */
  async removePasskey(
    idOrName: string,
    credentialId: string,
    origin: RequestOrigin,
    by: 'approver' | 'operator',
  ): Promise<Passkey> {
    const { id } = by === 'operator' ? await this.approvers.get(idOrName) : { id: idOrName };
    return this.db.transaction(async (tx) => {
      const current = await findApprover(tx, id, true);
      if (!current) throw new AppError('NOT_FOUND', `No approver has the id "${id}"`);
      const all = await listPasskeys(tx, id, true);
      const passkey = all.find((p) => p.credentialId === credentialId);
      if (!passkey) throw new AppError('NOT_FOUND', `${current.name} has no passkey with that id`);
      if (by === 'approver' && all.length === 1) {
        throw new AppError(
          'CONFLICT',
          'This is your only passkey: add another one before removing it, or you could not sign in again',
        );
      }
      await deletePasskey(tx, id, credentialId);
      await this.audit.append(tx, {
        type: 'passkey.removed',
        actor: origin.actor,
        ip: origin.ip ?? null,
        userAgent: origin.userAgent ?? null,
        details: { approverId: id, name: current.name, credentialId, passkeyName: passkey.name, by },
      });
      return passkey;
    });
  }
}

/** How a signed-in approver appears in the audit: the web channel's identity `web:<approver id>`. */
export function webActor(approver: { id: string; name: string }): Actor {
  return { type: 'approver', platform: 'web', userId: approver.id, userName: approver.name };
}

/** The challenge the browser signed, from clientDataJSON (plain JSON, no CBOR); null if absent. */
function clientChallenge(clientDataJSON: unknown): string | null {
  if (typeof clientDataJSON !== 'string' || clientDataJSON.length > 10_000) return null;
  try {
    const parsed = JSON.parse(Buffer.from(clientDataJSON, 'base64url').toString('utf8')) as {
      challenge?: unknown;
    };
    // Ours are base64url; anything else is not one of ours (and must not reach a query).
    return typeof parsed.challenge === 'string' && /^[A-Za-z0-9_-]{16,200}$/.test(parsed.challenge)
      ? parsed.challenge
      : null;
  } catch {
    return null;
  }
}

function sameSecret(presented: string, expected: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cleanName(name: string | undefined): string | null {
  // Control characters and lone surrogates (unstorable, or unreadable on the page) become spaces.
  const trimmed = name
    ? printable(name)
        .replace(/[\p{Cc}\ufffd\s]+/gu, ' ')
        .trim()
    : '';
  // By code point, so a cut never leaves half a surrogate pair.
  return trimmed ? Array.from(trimmed).slice(0, PASSKEY_NAME_MAX).join('').trim() : null;
}

export type InvitationRefusal = 'unknown' | 'used' | 'expired' | 'disabled';

export const INVITATION_REFUSALS: Record<
  InvitationRefusal,
  { code: 'NOT_FOUND' | 'TOKEN_USED' | 'TOKEN_EXPIRED' | 'FORBIDDEN'; message: string }
> = {
  unknown: {
    code: 'NOT_FOUND',
    message: 'This enrolment link is not known. Ask your operator for a new invitation.',
  },
  used: {
    code: 'TOKEN_USED',
    message: 'This enrolment link has already been used. Ask your operator for a new invitation.',
  },
  expired: {
    code: 'TOKEN_EXPIRED',
    message:
      'This enrolment link has expired (links are valid for 24 hours). Ask your operator for a new one.',
  },
  disabled: {
    code: 'FORBIDDEN',
    message: 'This approver account is disabled. Ask your operator to enable it.',
  },
};

export function invitationRefusal(kind: InvitationRefusal): AppError {
  const { code, message } = INVITATION_REFUSALS[kind];
  return new AppError(code, message, { invitation: kind });
}
