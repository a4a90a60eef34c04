import pg from 'pg';
import type { Logger } from '../logger.js';
import type { Db, Queryable } from './db.js';

export interface PostgresOptions {
  connectionString: string;
  poolSize: number;
  /** Tests give each file its own schema; production leaves it unset. */
  schema?: string;
  logger?: Logger;
}

/**
 * Statements with parameters run as named prepared statements, so Postgres parses and plans each
 * distinct SQL text once per connection instead of on every call (the hot paths are a handful of
 * fixed statements). The name is derived from the text; the map is bounded so generated SQL
 * cannot grow it without limit.
 */
const statementNames = new Map<string, string>();
const MAX_NAMED_STATEMENTS = 500;

function toQuery(sql: string, params: readonly unknown[] | undefined): pg.QueryConfig {
  if (!params || params.length === 0) return { text: sql };
  let name = statementNames.get(sql);
  if (!name && statementNames.size < MAX_NAMED_STATEMENTS) {
    name = `aotp_${statementNames.size}`;
    statementNames.set(sql, name);
  }
  return { text: sql, values: params as unknown[], ...(name ? { name } : {}) };
}

export function createPostgresDb(options: PostgresOptions): Db {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.poolSize,
    options: options.schema ? `-c search_path=${options.schema}` : undefined,
  });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', (err) => options.logger?.warn({ err: err.message }, 'postgres idle client error'));

  const db: Db = {
    kind: 'postgres',
    async query(sql, params) {
      const result = await pool.query(toQuery(sql, params));
      return { rows: result.rows };
    },
    async exec(sql) {
      await pool.query(sql);
    },
    transaction: (fn) => inTransaction(pool, null, fn),
    lockedTransaction: (key, fn) => inTransaction(pool, key, fn),
    async ping() {
      await pool.query('SELECT 1');
    },
    async close() {
      await pool.end();
    },
  };
  return db;
}

async function inTransaction<T>(
  pool: pg.Pool,
  lockKey: number | null,
  fn: (tx: Queryable) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    if (lockKey !== null) await client.query('SELECT pg_advisory_xact_lock($1)', [lockKey]);
    const value = await fn(wrap(client));
    await client.query('COMMIT');
    return value;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

function wrap(client: pg.PoolClient): Queryable {
  return {
    async query(sql, params) {
      const result = await client.query(toQuery(sql, params));
      return { rows: result.rows };
    },
    async exec(sql) {
      await client.query(sql);
    },
  };
}
