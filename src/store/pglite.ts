import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { Db, Queryable } from './db.js';

/**
 * PGlite runs Postgres in-process on one connection, so statements are serialised here; a
 * transaction holds the connection exclusively (PGlite's own transaction() does the queueing).
 */
export async function createPgliteDb(dataDir: string | null): Promise<Db> {
  let dir: string | undefined;
  if (dataDir) {
    dir = path.join(dataDir, 'pglite');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  const pglite = dir ? await PGlite.create(dir) : await PGlite.create();

  const asQueryable = (q: Pick<PGlite, 'query' | 'exec'>): Queryable => ({
    async query(sql, params) {
      const result = await q.query(sql, params as unknown[] | undefined);
      return { rows: result.rows as never[] };
    },
    async exec(sql) {
      await q.exec(sql);
    },
  });

  return {
    kind: 'pglite',
    ...asQueryable(pglite),
    // PGlite hands over a query's rows at once; callers page their queries to bound that.
    async eachRow(sql, params, onRow) {
      const { rows } = await pglite.query(sql, params as unknown[]);
      for (const row of rows) onRow(row as never);
      return rows.length;
    },
    transaction: (fn) => pglite.transaction((tx) => fn(asQueryable(tx))),
    // One connection in one process: a transaction already excludes every other statement.
    lockedTransaction: (_key, fn) => pglite.transaction((tx) => fn(asQueryable(tx))),
    async ping() {
      await pglite.query('SELECT 1');
    },
    async close() {
      await pglite.close();
    },
  };
}
