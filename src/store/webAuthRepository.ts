import type { Queryable } from './db.js';

/** Storage for web sign-in (migration 015): invitations, passkeys, sessions, challenges. */

export interface Invitation {
  tokenHash: string;
  approverId: string;
  createdAt: Date;
  expiresAt: Date;
  usedAt: Date | null;
}

export interface Passkey {
  credentialId: string;
  approverId: string;
  /** The COSE public key, base64url. */
  publicKey: string;
  counter: number;
  transports: string[];
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
}

export interface StoredSession {
  idHash: string;
  approverId: string;
  approverName: string;
  credentialId: string;
  csrfToken: string;
  verifiedAt: Date;
  expiresAt: Date;
}

export interface Challenge {
  challenge: string;
  purpose: 'register' | 'authenticate';
  approverId: string | null;
  invitationHash: string | null;
}

export async function insertInvitation(tx: Queryable, inv: Invitation): Promise<void> {
  await tx.query(
    `INSERT INTO approver_invitations (token_hash, approver_id, created_at, expires_at)
     VALUES ($1, $2, $3, $4)`,
    [inv.tokenHash, inv.approverId, inv.createdAt, inv.expiresAt],
  );
}

interface InvitationRow {
  token_hash: string;
  approver_id: string;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
}

export async function findInvitation(db: Queryable, tokenHash: string): Promise<Invitation | null> {
  const { rows } = await db.query<InvitationRow>('SELECT * FROM approver_invitations WHERE token_hash = $1', [
    tokenHash,
  ]);
  const r = rows[0];
  return r
    ? {
        tokenHash: r.token_hash,
        approverId: r.approver_id,
        createdAt: r.created_at,
        expiresAt: r.expires_at,
        usedAt: r.used_at,
      }
    : null;
}

/** Marks it used if it still can be: false when it was used (or expired) meanwhile. */
export async function useInvitation(tx: Queryable, tokenHash: string, now: Date): Promise<boolean> {
  const { rows } = await tx.query(
    `UPDATE approver_invitations SET used_at = $2
      WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING token_hash`,
    [tokenHash, now],
  );
  return rows.length > 0;
}

interface PasskeyRow {
  credential_id: string;
  approver_id: string;
  public_key: string;
  counter: string | number;
  transports: string[] | null;
  name: string;
  created_at: Date;
  last_used_at: Date | null;
}

const passkeyFromRow = (r: PasskeyRow): Passkey => ({
  credentialId: r.credential_id,
  approverId: r.approver_id,
  publicKey: r.public_key,
  counter: Number(r.counter),
  transports: r.transports ?? [],
  name: r.name,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
});

export async function insertPasskey(tx: Queryable, p: Passkey): Promise<void> {
  await tx.query(
    `INSERT INTO passkeys (credential_id, approver_id, public_key, counter, transports, name, created_at)
     VALUES ($1, $2, $3, $4, $5::text[], $6, $7)`,
    [p.credentialId, p.approverId, p.publicKey, p.counter, p.transports, p.name, p.createdAt],
  );
}

export async function findPasskey(db: Queryable, credentialId: string): Promise<Passkey | null> {
  const { rows } = await db.query<PasskeyRow>('SELECT * FROM passkeys WHERE credential_id = $1', [
    credentialId,
  ]);
  return rows[0] ? passkeyFromRow(rows[0]) : null;
}

export async function listPasskeys(db: Queryable, approverId: string, forUpdate = false): Promise<Passkey[]> {
  const { rows } = await db.query<PasskeyRow>(
    `SELECT * FROM passkeys WHERE approver_id = $1 ORDER BY created_at, credential_id${forUpdate ? ' FOR UPDATE' : ''}`,
    [approverId],
  );
  return rows.map(passkeyFromRow);
}

/**
 * Records a sign-in: the counter only moves forward (a concurrent sign-in with a stale counter
 * loses), and false means it did not.
 */
export async function recordPasskeyUse(
  tx: Queryable,
  credentialId: string,
  expectedCounter: number,
  newCounter: number,
  now: Date,
): Promise<boolean> {
  const { rows } = await tx.query(
    `UPDATE passkeys SET counter = $3, last_used_at = $4
      WHERE credential_id = $1 AND counter = $2 RETURNING credential_id`,
    [credentialId, expectedCounter, newCounter, now],
  );
  return rows.length > 0;
}

export async function deletePasskey(
  tx: Queryable,
  approverId: string,
  credentialId: string,
): Promise<boolean> {
  const { rows } = await tx.query(
    'DELETE FROM passkeys WHERE approver_id = $1 AND credential_id = $2 RETURNING credential_id',
    [approverId, credentialId],
  );
  return rows.length > 0;
}

export async function insertSession(
  tx: Queryable,
  s: Omit<StoredSession, 'approverName'> & { createdAt: Date },
): Promise<void> {
  await tx.query(
    `INSERT INTO web_sessions (id_hash, approver_id, credential_id, csrf_token, verified_at, expires_at, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [s.idHash, s.approverId, s.credentialId, s.csrfToken, s.verifiedAt, s.expiresAt, s.createdAt],
  );
}

/** A live session of an active approver (a disabled approver's sessions are not found). */
export async function findLiveSession(
  db: Queryable,
  idHash: string,
  now: Date,
): Promise<StoredSession | null> {
  const { rows } = await db.query<{
    id_hash: string;
    approver_id: string;
    name: string;
    credential_id: string;
    csrf_token: string;
    verified_at: Date;
    expires_at: Date;
  }>(
    `SELECT s.id_hash, s.approver_id, a.name, s.credential_id, s.csrf_token, s.verified_at, s.expires_at
       FROM web_sessions s JOIN approvers a ON a.id = s.approver_id
      WHERE s.id_hash = $1 AND s.expires_at > $2 AND a.status = 'active'`,
    [idHash, now],
  );
  const r = rows[0];
  return r
    ? {
        idHash: r.id_hash,
        approverId: r.approver_id,
        approverName: r.name,
        credentialId: r.credential_id,
        csrfToken: r.csrf_token,
        verifiedAt: r.verified_at,
        expiresAt: r.expires_at,
      }
    : null;
}

export async function deleteSession(tx: Queryable, idHash: string): Promise<boolean> {
  const { rows } = await tx.query('DELETE FROM web_sessions WHERE id_hash = $1 RETURNING id_hash', [idHash]);
  return rows.length > 0;
}

export async function deleteSessionsOf(tx: Queryable, approverId: string): Promise<void> {
  await tx.query('DELETE FROM web_sessions WHERE approver_id = $1', [approverId]);
}

/** Expired sessions and challenges: nothing reads them; removed now and then, on sign-in. */
export async function deleteExpired(tx: Queryable, now: Date): Promise<void> {
  await tx.query('DELETE FROM web_sessions WHERE expires_at <= $1', [now]);
  await tx.query('DELETE FROM webauthn_challenges WHERE expires_at <= $1', [now]);
}

export async function insertChallenge(tx: Queryable, c: Challenge & { expiresAt: Date }): Promise<void> {
  await tx.query(
    `INSERT INTO webauthn_challenges (challenge, purpose, approver_id, invitation_hash, expires_at)
     VALUES ($1, $2, $3, $4, $5)`,
    [c.challenge, c.purpose, c.approverId, c.invitationHash, c.expiresAt],
  );
}

/** Takes a challenge: it is gone afterwards, on every instance; null when unknown or expired. */
export async function takeChallenge(
  tx: Queryable,
  challenge: string,
  purpose: Challenge['purpose'],
  now: Date,
): Promise<Challenge | null> {
  const { rows } = await tx.query<{
    challenge: string;
    purpose: Challenge['purpose'];
    approver_id: string | null;
    invitation_hash: string | null;
    expires_at: Date;
  }>('DELETE FROM webauthn_challenges WHERE challenge = $1 AND purpose = $2 RETURNING *', [
    challenge,
    purpose,
  ]);
  const r = rows[0];
  if (!r || r.expires_at <= now) return null;
  return {
    challenge: r.challenge,
    purpose: r.purpose,
    approverId: r.approver_id,
    invitationHash: r.invitation_hash,
  };
}
