import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../../config.js';
import type { Queryable } from '../../store/db.js';
import { loadMigrations } from '../../store/migrate.js';
import { type CheckResult, maskUrl, reason, TIMEOUT_MS, withDeadline } from './result.js';

/** PGlite boots a WebAssembly Postgres: seconds on a busy machine, not milliseconds. */
const PGLITE_OPEN_MS = 30_000;

/** The server version and how far the schema is from this build's migrations. */
async function describe(q: Queryable): Promise<{ version: string; migrations: CheckResult }> {
  const { rows } = await q.query<{ version: string }>('SELECT version()');
  const version = /^(PostgreSQL [\d.]+)/.exec(rows[0]?.version ?? '')?.[1] ?? 'PostgreSQL';
  const known = loadMigrations().map((m) => m.version);
  const table = await q.query<{ name: string | null }>(
    "SELECT to_regclass('schema_migrations')::text AS name",
  );
  const applied = table.rows[0]?.name
    ? new Set(
        (await q.query<{ version: string }>('SELECT version FROM schema_migrations')).rows.map(
          (r) => r.version,
        ),
      )
    : new Set<string>();
  const pending = known.filter((v) => !applied.has(v));
  const unknown = [...applied].filter((v) => !known.includes(v));
  let migrations: CheckResult;
  if (unknown.length) {
    migrations = {
      check: 'migrations',
      status: 'warn',
      detail: `${unknown.length} applied migration(s) this build does not know (${unknown.join(', ')}): is the CLI older than the server?`,
    };
  } else if (pending.length) {
    migrations = {
      check: 'migrations',
      status: 'warn',
      detail: `${pending.length} of ${known.length} pending (${pending[0]}…): applied at the next start or by \`agent-otp migrate\``,
    };
  } else migrations = { check: 'migrations', status: 'pass', detail: `all ${known.length} applied` };
  return { version, migrations };
}

async function checkPostgres(url: string): Promise<CheckResult[]> {
  const { default: pg } = await import('pg');
  const where = maskUrl(url);
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: TIMEOUT_MS });
  client.on('error', () => undefined);
  try {
    await withDeadline(() => client.connect());
  } catch (err) {
    await client.end().catch(() => undefined);
    return [{ check: 'database', status: 'fail', detail: `cannot connect to ${where}: ${reason(err)}` }];
  }
  try {
    const { version, migrations } = await withDeadline(() =>
      describe({
        query: async (sql, params) => ({ rows: (await client.query(sql, params as unknown[])).rows }),
        exec: async (sql) => void (await client.query(sql)),
      }),
    );
    return [{ check: 'database', status: 'pass', detail: `${version} at ${where}` }, migrations];
  } catch (err) {
    return [{ check: 'database', status: 'fail', detail: `${where}: ${reason(err)}` }];
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * PGlite is one process's database: opening it while a server has it open would corrupt it. An
 * open PGlite keeps `postmaster.pid` in its directory (removed on a clean close), so its presence
 * means "in use" — or a server that was killed, which the next start recovers from.
 */
async function checkPglite(dataDir: string, serverReachable: boolean): Promise<CheckResult[]> {
  const dir = path.join(dataDir, 'pglite');
  if (!existsSync(path.join(dir, 'PG_VERSION'))) {
    return [
      {
        check: 'database',
        status: 'skip',
        detail: `embedded PGlite: no database at ${dir} yet (the first start creates it)`,
      },
    ];
  }
  if (existsSync(path.join(dir, 'postmaster.pid'))) {
    return [
      {
        check: 'database',
        status: 'skip',
        detail: serverReachable
          ? `embedded PGlite at ${dir} is open in another process (a running server; PGlite allows one): see the server row`
          : `embedded PGlite at ${dir} is open in another process (PGlite allows one), or was left open by a server that stopped abruptly (its next start recovers it)`,
      },
    ];
  }
  const { PGlite } = await import('@electric-sql/pglite');
  let db: InstanceType<typeof PGlite> | undefined;
  try {
    const { version, migrations } = await withDeadline(async () => {
      db = await PGlite.create(dir);
      const open = db;
      return describe({
        query: async (sql, params) => ({
          rows: (await open.query(sql, params as unknown[])).rows as never[],
        }),
        exec: async (sql) => void (await open.exec(sql)),
      });
    }, PGLITE_OPEN_MS);
    return [
      { check: 'database', status: 'pass', detail: `embedded PGlite (${version}) at ${dir}` },
      migrations,
    ];
  } catch (err) {
    return [{ check: 'database', status: 'fail', detail: `embedded PGlite at ${dir}: ${reason(err)}` }];
  } finally {
    await db?.close().catch(() => undefined);
  }
}

/** The database the configuration names: DATABASE_URL, or the embedded PGlite in the data dir. */
export function databaseChecks(config: Config, serverReachable: boolean): Promise<CheckResult[]> {
  return config.DATABASE_URL
    ? checkPostgres(config.DATABASE_URL)
    : checkPglite(config.dataDir, serverReachable);
}
