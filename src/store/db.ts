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

/** pg returns int8 as string, PGlite as number: repositories normalise through this. */
export function toNumber(value: unknown): number {
  return typeof value === 'number' ? value : Number(value);
}
