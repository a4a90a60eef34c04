import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

// Runs in the child: create (initdb) the database and close it. CommonJS, as `node -e` runs it.
const INIT_SCRIPT = `
const [entry, dir, params] = process.argv.slice(1);
require(entry).PGlite.create(dir, { startParams: JSON.parse(params) })
  .then((pg) => pg.close())
  .catch((err) => { console.error(err); process.exit(1); });
`;

const INIT_PREFIX = '.init-';

/** True when `dir` holds no database yet (missing or empty), so opening it would run initdb. */
export function needsInit(dir: string): boolean {
  return !existsSync(dir) || readdirSync(dir).length === 0;
}

/**
 * Creates a new PGlite database in `dir` from a short-lived child process. PGlite's initdb runs a
 * second Postgres instance plus the initdb wasm and copies the result through an in-memory tar:
 * ~650–830 MB RSS, and wasm memory is never given back. In a child that memory is returned to the
 * OS when it exits, and the server only ever opens an existing database (~150 MB).
 * The child writes into a sibling directory that is renamed into place only after a clean exit,
 * so a start killed during initdb leaves no half-made database behind.
 */
export async function initPgliteInChild(dir: string, startParams: readonly string[]): Promise<void> {
  const parent = path.dirname(dir);
  const base = path.basename(dir);
  for (const entry of readdirSync(parent)) {
    if (entry.startsWith(base + INIT_PREFIX))
      rmSync(path.join(parent, entry), { recursive: true, force: true });
  }
  const tmp = path.join(parent, `${base}${INIT_PREFIX}${process.pid}`);
  mkdirSync(tmp, { mode: 0o700 });
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const args = ['--liftoff-only', '-e', INIT_SCRIPT, entry, tmp, JSON.stringify(startParams)];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (exitCode, signal) => resolve(signal ? null : exitCode));
  });
  if (code !== 0 || !existsSync(path.join(tmp, 'PG_VERSION'))) {
    rmSync(tmp, { recursive: true, force: true });
    throw new Error(`creating the embedded database in ${dir} failed (exit ${code}): ${stderr.trim()}`);
  }
  if (existsSync(dir)) rmSync(dir, { recursive: true }); // empty (needsInit), so nothing is lost
  renameSync(tmp, dir);
}
