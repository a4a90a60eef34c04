import type { PolicyDefinition } from '../core/policy/index.js';
import { type Queryable, toNumber } from './db.js';

/** A stored policy: the normalised definition (carrying its id) and where it sits in the set. */
export interface PolicyRecord {
  id: string;
  name: string;
  /** Normalised camelCase definition as the engine reads it; `definition.id === id`. */
  definition: PolicyDefinition & { id: string };
  /** Order in the set (ascending); breaks priority ties the way the authored file did. */
  position: number;
  createdAt: Date;
  updatedAt: Date;
}

interface PolicyRow {
  id: string;
  name: string;
  definition: PolicyDefinition | string;
  position: unknown;
  created_at: Date | string;
  updated_at: Date | string;
}

const fromRow = (r: PolicyRow): PolicyRecord => {
  const definition = (typeof r.definition === 'string' ? JSON.parse(r.definition) : r.definition) as
    | PolicyDefinition
    | undefined;
  return {
    id: r.id,
    name: r.name,
    // The row's id is the truth; the copy inside the definition follows it.
    definition: { ...(definition as PolicyDefinition), id: r.id },
    position: toNumber(r.position),
    createdAt: new Date(r.created_at),
    updatedAt: new Date(r.updated_at),
  };
};

const COLUMNS = 'id, name, definition, position, created_at, updated_at';

/**
 * Serialises writers of the policy set (across instances) while leaving readers alone: every
 * change validates the whole resulting set, so two changes must not validate against the same
 * old set. SHARE ROW EXCLUSIVE conflicts with itself and with row writes, not with SELECT.
 */
export async function lockPolicies(tx: Queryable): Promise<void> {
  await tx.query('LOCK TABLE policies IN SHARE ROW EXCLUSIVE MODE');
}

export async function listPolicies(db: Queryable): Promise<PolicyRecord[]> {
  const { rows } = await db.query<PolicyRow>(
    `SELECT ${COLUMNS} FROM policies ORDER BY position, created_at, id`,
  );
  return rows.map(fromRow);
}

export async function findPolicy(db: Queryable, id: string): Promise<PolicyRecord | null> {
  const { rows } = await db.query<PolicyRow>(`SELECT ${COLUMNS} FROM policies WHERE id = $1`, [id]);
  return rows[0] ? fromRow(rows[0]) : null;
}

export async function insertPolicy(tx: Queryable, policy: PolicyRecord): Promise<void> {
  await tx.query(
    `INSERT INTO policies (id, name, definition, position, created_at, updated_at)
     VALUES ($1, $2, $3::jsonb, $4, $5, $6)`,
    [
      policy.id,
      policy.name,
      JSON.stringify(policy.definition),
      policy.position,
      policy.createdAt,
      policy.updatedAt,
    ],
  );
}

/** Replaces name and definition (position and createdAt stay); null when the id is unknown. */
export async function updatePolicy(
  tx: Queryable,
  id: string,
  definition: PolicyDefinition & { id: string },
  now: Date,
): Promise<PolicyRecord | null> {
  const { rows } = await tx.query<PolicyRow>(
    `UPDATE policies SET name = $2, definition = $3::jsonb, updated_at = $4
      WHERE id = $1 RETURNING ${COLUMNS}`,
    [id, definition.name, JSON.stringify(definition), now],
  );
  return rows[0] ? fromRow(rows[0]) : null;
}

export async function deletePolicy(tx: Queryable, id: string): Promise<PolicyRecord | null> {
  const { rows } = await tx.query<PolicyRow>(`DELETE FROM policies WHERE id = $1 RETURNING ${COLUMNS}`, [id]);
  return rows[0] ? fromRow(rows[0]) : null;
}

/** Deletes every policy and inserts the given ones, in the caller's transaction. */
export async function replaceAllPolicies(tx: Queryable, policies: readonly PolicyRecord[]): Promise<void> {
  await tx.query('DELETE FROM policies');
  for (const policy of policies) await insertPolicy(tx, policy);
}

/** The agent a dry run names, by id or by name (only when the name is unambiguous). */
export async function findAgentIdentity(
  db: Queryable,
  by: { id?: string; name?: string },
): Promise<{ id: string; name: string } | null> {
  if (by.id !== undefined) {
    const { rows } = await db.query<{ id: string; name: string }>(
      `SELECT id, name FROM agents WHERE id = $1 AND status <> 'deleted'`,
      [by.id],
    );
    return rows[0] ?? null;
  }
  if (by.name === undefined) return null;
  const { rows } = await db.query<{ id: string; name: string }>(
    `SELECT id, name FROM agents WHERE name = $1 AND status <> 'deleted' LIMIT 2`,
    [by.name],
  );
  return rows.length === 1 ? (rows[0] ?? null) : null;
}

/** Which of `refs` name an agent that exists (not deleted), by id or by name. */
export async function existingAgentReferences(db: Queryable, refs: readonly string[]): Promise<Set<string>> {
  if (refs.length === 0) return new Set();
  const { rows } = await db.query<{ id: string; name: string }>(
    `SELECT id, name FROM agents WHERE status <> 'deleted' AND (id = ANY($1::text[]) OR name = ANY($1::text[]))`,
    [refs],
  );
  const found = new Set<string>();
  for (const row of rows) {
    found.add(row.id);
    found.add(row.name);
  }
  return new Set(refs.filter((ref) => found.has(ref)));
}
