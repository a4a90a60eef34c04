import pg from 'pg';
import type { Logger } from '../logger.js';
import { type Db, LOCK_SQL, preparedAfresh, type Queryable } from './db.js';

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
let namesGiven = 0;

function toQuery(sql: string, params: readonly unknown[] | undefined): pg.QueryConfig {
  if (!params || params.length === 0) return { text: sql };
  let name = statementNames.get(sql);
  if (!name && statementNames.size < MAX_NAMED_STATEMENTS) {
    namesGiven += 1;
    name = `aotp_${namesGiven}`;
    statementNames.set(sql, name);
  }
  return { text: sql, values: params as unknown[], ...(name ? { name } : {}) };
}

/** A query as a named prepared statement, given a new name when Postgres refuses it as stale. */
function runQuery(
  client: pg.Pool | pg.PoolClient,
  sql: string,
  params: readonly unknown[] | undefined,
  inTransaction: boolean,
) {
  return preparedAfresh(
    () => client.query(toQuery(sql, params)),
    // A new name, so every connection prepares it afresh (each still holds the old one).
    () => statementNames.delete(sql),
    inTransaction,
  );
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
      const result = await runQuery(pool, sql, params, false);
      return { rows: result.rows };
    },
    async exec(sql) {
      await pool.query(sql);
    },
    // Postgres refuses a stale statement when binding it, before any row, so going once more
    // cannot hand a row over twice.
    eachRow: (sql, params, onRow) =>
      preparedAfresh(
        () => eachRow(pool, toQuery(sql, params), onRow),
        () => statementNames.delete(sql),
        false,
      ),
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

/**
 * A query whose rows are passed on one by one as pg parses them, never collected into a result
 * (pg keeps no rows for a Query that has a 'row' listener and no callback). Collecting a page of
 * rows keeps them alive across young-generation GCs, and V8 then allocates pg's row objects
 * straight into the old generation (allocation-site pretenuring), where only a full GC frees
 * them: exporting 1M events peaked at ~280 MB of RSS that way, against ~175 MB streamed.
 */
async function eachRow<T>(pool: pg.Pool, query: pg.QueryConfig, onRow: (row: T) => void): Promise<number> {
  const client = await pool.connect();
  let failed: unknown = null;
  try {
    return await new Promise<number>((resolve, reject) => {
      let count = 0;
      const submitted = new pg.Query(query);
      submitted.on('row', (row: T) => {
        if (failed) return;
        try {
          onRow(row);
          count += 1;
        } catch (err) {
          // Not thrown into pg's parser: the rest of the rows are read and dropped, then we fail.
          failed = err;
        }
      });
      submitted.on('error', reject);
      submitted.on('end', () => (failed ? reject(failed) : resolve(count)));
      client.query(submitted);
    });
  } finally {
    client.release();
  }
}

async function inTransaction<T>(
  pool: pg.Pool,
  lockKey: number | null,
  fn: (tx: Queryable) => Promise<T>,
): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    if (lockKey !== null) await client.query(LOCK_SQL, [lockKey]);
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
      const result = await runQuery(client, sql, params, true);
      return { rows: result.rows };
    },
    async exec(sql) {
      await client.query(sql);
    },
  };
}
