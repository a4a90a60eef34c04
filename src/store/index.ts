import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { Db } from './db.js';
import { createPgliteDb } from './pglite.js';
import { createPostgresDb } from './postgres.js';

export type { Db, Queryable } from './db.js';

/** Postgres when DATABASE_URL is set, otherwise PGlite in the data dir: one dialect either way. */
export async function openDatabase(config: Config, logger: Logger): Promise<Db> {
  if (config.DATABASE_URL) {
    return createPostgresDb({
      connectionString: config.DATABASE_URL,
      poolSize: config.DATABASE_POOL_SIZE,
      logger,
    });
  }
  return createPgliteDb(config.dataDir);
}
