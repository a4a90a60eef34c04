/**
 * The one database interface the repositories use. Two implementations speak the same SQL:
 * Postgres through `pg` (production) and PGlite in-process (the embedded default, `npm start`).
 */
export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<{ rows: T[] }>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs fn in one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Runs a query and hands each row to onRow as it arrives, keeping none: for results too large
   * to hold (the audit export). Resolves with the number of rows; a throwing onRow rejects it.
   */
  eachRow<T = Record<string, unknown>>(
    sql: string,
    params: readonly unknown[],
    onRow: (row: T) => void,
  ): Promise<number>;
  /** Like transaction(), holding a transaction-scoped advisory lock (waits until granted). */
  lockedTransaction<T>(key: number, fn: (tx: Queryable) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Advisory locks are database-wide; the second key scopes them to the current schema, so
 * deployments (and test files) sharing one database in separate schemas never block each other.
 */
export const TRY_LOCK_SQL = 'SELECT pg_try_advisory_xact_lock($1, hashtext(current_schema())) AS locked';
export const LOCK_SQL = 'SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))';

/** Advisory lock keys (the first key of TRY_LOCK_SQL / LOCK_SQL), one per purpose. */
export const LOCKS = {
  migrations: 7_201_001,
  auditSealer: 7_201_002,
  auditRetention: 7_201_003,
} as const;

/** feature_not_supported: what Postgres answers when a prepared statement's result columns changed. */
const STALE_PLAN = '0A000';

/**
 * Both databases run statements as named prepared statements. A migration that changes a table's
 * columns (this instance's, or another's during a rolling upgrade) makes Postgres refuse a
 * prepared `SELECT *` on it ("cached plan must not change result type") for as long as the
 * statement lives. On that refusal `forget` drops the statement so its next use prepares it
 * afresh, and outside a transaction `run` goes once more: the refused statement never ran.
 * Inside one the transaction has already failed, so the error stands.
 */
export async function preparedAfresh<T>(
  run: () => Promise<T>,
  forget: () => void,
  inTransaction: boolean,
): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if ((err as { code?: unknown }).code !== STALE_PLAN) throw err;
    forget();
    if (inTransaction) throw err;
    return run();
  }
}

/** pg returns int8 as string, PGlite as number: repositories normalise through this. */
export function toNumber(value: unknown): number {
  return typeof value === 'number' ? value : Number(value);
}
