import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Db } from '../../src/store/db.js';
import { type Migration, migrate } from '../../src/store/migrate.js';
import { createPgliteDb } from '../../src/store/pglite.js';
import { createPostgresDb } from '../../src/store/postgres.js';

export interface TestDatabase {
  name: 'pglite' | 'postgres';
  /**
   * A fresh, migrated database (a new PGlite, or a new schema on TEST_DATABASE_URL); with
   * `migrations`, only those are applied (to test a migration over data written before it).
   */
  open(opts?: { migrations?: Migration[] }): Promise<Db>;
}

/** A schema no other test file uses, so files never share tables. */
export function uniqueSchema(): string {
  return `t_${randomBytes(6).toString('hex')}`;
}

export async function createSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await client.end();
  }
}

export async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}

/** Storage tests run on PGlite always, and on Postgres too when TEST_DATABASE_URL is set. */
export function testDatabases(): TestDatabase[] {
  const list: TestDatabase[] = [
    {
      name: 'pglite',
      async open(opts) {
        const db = await createPgliteDb(null);
        await migrate(db, opts?.migrations);
        return db;
      },
    },
  ];
  const url = process.env.TEST_DATABASE_URL;
  if (url) {
    list.push({
      name: 'postgres',
      async open(opts) {
        const schema = uniqueSchema();
        await createSchema(url, schema);
        const db = createPostgresDb({ connectionString: url, poolSize: 10, schema });
        await migrate(db, opts?.migrations);
        const close = db.close.bind(db);
        return {
          ...db,
          async close() {
            await close();
            await dropSchema(url, schema);
          },
        };
      },
    });
  }
  return list;
}
