import type { Queryable } from './db.js';

export interface OperatorKey {
  id: string;
  name: string;
  keyHash: string;
  keyPrefix: string;
  createdAt: Date;
  revokedAt: Date | null;
}

interface Row {
  id: string;
  name: string;
  key_hash: string;
  key_prefix: string;
  created_at: Date;
  revoked_at: Date | null;
}

const fromRow = (r: Row): OperatorKey => ({
  id: r.id,
  name: r.name,
  keyHash: r.key_hash,
  keyPrefix: r.key_prefix,
  createdAt: r.created_at,
  revokedAt: r.revoked_at,
});

export async function findOperatorKeyByHash(db: Queryable, keyHash: string): Promise<OperatorKey | null> {
  const { rows } = await db.query<Row>('SELECT * FROM operator_keys WHERE key_hash = $1', [keyHash]);
  return rows[0] ? fromRow(rows[0]) : null;
}

/** Inserts the key unless a key with that hash exists; returns whether it was new. A revoked
 * key configured again is not revived: rotating back to a leaked token must not work. */
export async function ensureOperatorKey(
  db: Queryable,
  key: Omit<OperatorKey, 'revokedAt'>,
): Promise<boolean> {
  const { rows } = await db.query(
    `INSERT INTO operator_keys (id, name, key_hash, key_prefix, created_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (key_hash) DO NOTHING RETURNING id`,
    [key.id, key.name, key.keyHash, key.keyPrefix, key.createdAt],
  );
  return rows.length > 0;
}

export async function countActiveOperatorKeys(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: unknown }>(
    'SELECT count(*) AS n FROM operator_keys WHERE revoked_at IS NULL',
  );
  return Number(rows[0]?.n ?? 0);
}

/** Retires earlier bootstrap keys once a different one is configured (ADMIN_TOKEN rotated). */
export async function revokeOtherBootstrapKeys(
  db: Queryable,
  currentHash: string,
  now: Date,
): Promise<number> {
  const { rows } = await db.query(
    `UPDATE operator_keys SET revoked_at = $2
      WHERE name = 'bootstrap' AND key_hash <> $1 AND revoked_at IS NULL RETURNING id`,
    [currentHash, now],
  );
  return rows.length;
}
