import type { Queryable } from './db.js';

export type ApproverStatus = 'active' | 'disabled';

/** A stored approver: one person, named, with the channel identities that are theirs. */
export interface ApproverAccount {
  id: string;
  name: string;
  email: string | null;
  status: ApproverStatus;
  /** `slack:U…`, `discord:…`, `operator:opk_…`, sorted. */
  identities: string[];
  createdAt: Date;
  updatedAt: Date;
}

interface ApproverRow {
  id: string;
  name: string;
  email: string | null;
  status: ApproverStatus;
  created_at: Date;
  updated_at: Date;
  identities: string[] | null;
}

const fromRow = (r: ApproverRow): ApproverAccount => ({
  id: r.id,
  name: r.name,
  email: r.email,
  status: r.status,
  identities: [...(r.identities ?? [])].sort(),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

/** Each approver with its identities in one row (ARRAY() yields `{}` for none, on both engines). */
const SELECT = `SELECT a.*, ARRAY(SELECT i.identity FROM approver_identities i
                                   WHERE i.approver_id = a.id ORDER BY i.identity) AS identities
                  FROM approvers a`;

export async function insertApprover(tx: Queryable, a: ApproverAccount): Promise<void> {
  await tx.query(
    `INSERT INTO approvers (id, name, email, status, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $5)`,
    [a.id, a.name, a.email, a.status, a.createdAt],
  );
}

export async function insertIdentities(
  tx: Queryable,
  approverId: string,
  identities: readonly string[],
  now: Date,
): Promise<void> {
  if (identities.length === 0) return;
  await tx.query(
    `INSERT INTO approver_identities (identity, approver_id, created_at)
     SELECT unnest($1::text[]), $2, $3`,
    [identities, approverId, now],
  );
}

export async function deleteIdentities(
  tx: Queryable,
  approverId: string,
  identities: readonly string[],
): Promise<void> {
  if (identities.length === 0) return;
  await tx.query('DELETE FROM approver_identities WHERE approver_id = $1 AND identity = ANY($2::text[])', [
    approverId,
    identities,
  ]);
}

export async function findApprover(
  db: Queryable,
  id: string,
  forUpdate = false,
): Promise<ApproverAccount | null> {
  if (forUpdate) await db.query('SELECT 1 FROM approvers WHERE id = $1 FOR UPDATE', [id]);
  const { rows } = await db.query<ApproverRow>(`${SELECT} WHERE a.id = $1`, [id]);
  return rows[0] ? fromRow(rows[0]) : null;
}

export async function findApproverByName(db: Queryable, name: string): Promise<ApproverAccount | null> {
  const { rows } = await db.query<ApproverRow>(`${SELECT} WHERE lower(a.name) = lower($1)`, [name]);
  return rows[0] ? fromRow(rows[0]) : null;
}

export async function listApprovers(
  db: Queryable,
  opts: { limit: number; after?: { createdAt: Date; id: string } },
): Promise<ApproverAccount[]> {
  const params: unknown[] = [opts.limit];
  let cursor = '';
  if (opts.after) {
    params.push(opts.after.createdAt, opts.after.id);
    cursor = 'WHERE (a.created_at, a.id) > ($2, $3)';
  }
  const { rows } = await db.query<ApproverRow>(
    `${SELECT} ${cursor} ORDER BY a.created_at, a.id LIMIT $1`,
    params,
  );
  return rows.map(fromRow);
}

/** Every approver, disabled ones included (they are still one person each), oldest first. */
export async function allApprovers(db: Queryable): Promise<ApproverAccount[]> {
  const { rows } = await db.query<ApproverRow>(`${SELECT} ORDER BY a.created_at, a.id`);
  return rows.map(fromRow);
}

/** Which of these identities are already some approver's, and whose. */
export async function identityOwners(
  db: Queryable,
  identities: readonly string[],
): Promise<{ identity: string; approverId: string; name: string }[]> {
  if (identities.length === 0) return [];
  const { rows } = await db.query<{ identity: string; approver_id: string; name: string }>(
    `SELECT i.identity, i.approver_id, a.name FROM approver_identities i JOIN approvers a ON a.id = i.approver_id
      WHERE i.identity = ANY($1::text[]) ORDER BY i.identity`,
    [identities],
  );
  return rows.map((r) => ({ identity: r.identity, approverId: r.approver_id, name: r.name }));
}

export async function updateApprover(
  tx: Queryable,
  id: string,
  changes: { name?: string; email?: string | null; status?: ApproverStatus },
  now: Date,
): Promise<boolean> {
  const sets: string[] = [];
  const params: unknown[] = [id, now];
  for (const field of ['name', 'email', 'status'] as const) {
    if (!(field in changes)) continue;
    params.push(changes[field]);
    sets.push(`${field} = $${params.length}`);
  }
  const { rows } = await tx.query(
    `UPDATE approvers SET ${[...sets, 'updated_at = $2'].join(', ')} WHERE id = $1 RETURNING id`,
    params,
  );
  return rows.length > 0;
}

/** Its identities go with it (ON DELETE CASCADE); the audit trail keeps what it did. */
export async function deleteApprover(tx: Queryable, id: string): Promise<boolean> {
  const { rows } = await tx.query('DELETE FROM approvers WHERE id = $1 RETURNING id', [id]);
  return rows.length > 0;
}

/** The unique index on lower(name), and the identities' primary key: 409s, not 500s. */
export const APPROVER_NAME_INDEX = 'approvers_name_unique_idx';
export const APPROVER_IDENTITY_KEY = 'approver_identities_pkey';

/** Which unique constraint a failed write hit, if it was one of the approvers'. */
export function approverConflict(err: unknown): 'name' | 'identity' | null {
  const e = err as { code?: unknown; constraint?: unknown; message?: unknown } | null;
  if (e?.code !== '23505') return null;
  // PGlite does not always fill in `constraint`; its message names the index.
  const names = `${String(e.constraint ?? '')} ${String(e.message ?? '')}`;
  if (names.includes(APPROVER_NAME_INDEX)) return 'name';
  if (names.includes(APPROVER_IDENTITY_KEY)) return 'identity';
  return null;
}
