import { mkdirSync } from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import type { Db, Queryable } from './db.js';
import { initPgliteDir, needsInit } from './pgliteInit.js';
import { PglitePrepared } from './pglitePrepared.js';

/**
 * PGlite's own start parameters plus a smaller buffer pool. The data dir's postgresql.conf (from
 * initdb) says shared_buffers=128MB, and PGlite's wasm memory only grows: that alone was ~150 MB
 * of idle RSS. One connection on a small database needs far less; 16 MB is a few thousand pages.
 */
export const PGLITE_START_PARAMS: readonly string[] = [
  ...PGlite.defaultStartParams,
  '-c',
  'shared_buffers=16MB',
];

/**
 * Compile PGlite's ~9 MB Postgres wasm with V8's baseline compiler only. By default V8 also
 * recompiles hot functions with TurboFan, which costs 30–65 MB of RSS for the compiler's memory and
 * code; an insert/select loop measured here ran no slower without it. Must run before PGlite
 * compiles its module (at create); it only changes how wasm is compiled in this process.
 */
function preferBaselineWasm(): void {
  v8.setFlagsFromString('--liftoff-only');
}

/**
 * PGlite runs Postgres in-process on one connection, so statements are serialised here; a
 * transaction holds the connection exclusively (PGlite's own transaction() does the queueing).
 */
export async function createPgliteDb(dataDir: string | null): Promise<Db> {
  preferBaselineWasm();
  let pglite: PGlite;
  if (dataDir) {
    const dir = path.join(dataDir, 'pglite');
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    if (needsInit(dir)) await initPgliteDir(dir, PGLITE_START_PARAMS);
    pglite = await PGlite.create(dir, { startParams: [...PGLITE_START_PARAMS] });
  } else {
    pglite = await PGlite.create({ startParams: [...PGLITE_START_PARAMS] });
  }

  const statements = new PglitePrepared(pglite);
  /**
   * `q` is PGlite itself or one of its transactions. Prepared statements take the locks PGlite's
   * own query() would: outside a transaction both, so a statement never lands inside another
   * caller's open transaction; inside one the query lock only.
   */
  const asQueryable = (q: PGlite | Transaction, inTransaction: boolean): Queryable => ({
    async query(sql, params) {
      if (!statements.accepts(sql)) {
        const result = await q.query(sql, params as unknown[] | undefined);
        return { rows: result.rows as never[] };
      }
      const run = async () => {
        // As PGlite's own transaction object refuses: a statement after its transaction ended
        // would otherwise run outside it, without the lock that keeps other transactions out.
        if (inTransaction && (q as Transaction).closed) throw new Error('Transaction is closed');
        return statements.query(sql, params ?? [], { inTransaction });
      };
      const rows = await (inTransaction
        ? pglite._runExclusiveQuery(run)
        : pglite._runExclusiveTransaction(() => pglite._runExclusiveQuery(run)));
      return { rows: rows as never[] };
    },
    async exec(sql) {
      await q.exec(sql);
      // Scripts are migrations: DDL that can change the columns a prepared statement returns.
      statements.forget();
    },
  });
  const inTx = <T>(fn: (tx: Queryable) => Promise<T>) =>
    pglite.transaction((tx) => fn(asQueryable(tx, true)));
  const top = asQueryable(pglite, false);

  return {
    kind: 'pglite',
    ...top,
    // PGlite hands over a query's rows at once; callers page their queries to bound that.
    async eachRow(sql, params, onRow) {
      const { rows } = await top.query(sql, params);
      for (const row of rows) onRow(row as never);
      return rows.length;
    },
    transaction: inTx,
    // One connection in one process: a transaction already excludes every other statement.
    lockedTransaction: (_key, fn) => inTx(fn),
    async ping() {
      await pglite.query('SELECT 1');
    },
    async close() {
      await pglite.close();
    },
  };
}
