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
      const result = await pool.query(sql, params as unknown[] | undefined);
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
      const result = await client.query(sql, params as unknown[] | undefined);
      return { rows: result.rows };
    },
    async exec(sql) {
      await client.query(sql);
    },
  };
}
