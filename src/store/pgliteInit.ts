import { spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

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

/** The installed PGlite version: a template cluster is only used by the version that made it. */
function pgliteVersion(): string {
  const require = createRequire(import.meta.url);
  const entry = require.resolve('@electric-sql/pglite');
  let dir = path.dirname(entry);
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
}

/** dist/pglite-template, written by `npm run build` (see writeTemplate below). */
const TEMPLATE_DIR = fileURLToPath(new URL('../pglite-template/', import.meta.url));

export function usableTemplate(): string | null {
  try {
    const version = readFileSync(path.join(TEMPLATE_DIR, 'pglite-version'), 'utf8').trim();
    const cluster = path.join(TEMPLATE_DIR, 'cluster');
    return version === pgliteVersion() && existsSync(path.join(cluster, 'PG_VERSION')) ? cluster : null;
  } catch {
    return null;
  }
}

/**
 * Creates a new PGlite database in `dir`. PGlite's initdb runs a second Postgres instance plus the
 * initdb wasm and copies the result through an in-memory tar: ~5 s and ~650–830 MB RSS, and wasm
 * memory is never given back. So the build makes one cluster ahead (dist/pglite-template) and a
 * first start copies it (a fresh cluster is the same for every install; ~40 MB of files). Without
 * a usable template, initdb runs in a short-lived child process, whose memory goes back to the OS
 * when it exits; either way the server only ever opens an existing database (~150 MB).
 * Both write into a sibling directory that is renamed into place only when complete, so a start
 * killed half way leaves no half-made database behind.
 */
export async function initPgliteDir(dir: string, startParams: readonly string[]): Promise<void> {
  const parent = path.dirname(dir);
  const base = path.basename(dir);
  for (const entry of readdirSync(parent)) {
    if (entry.startsWith(base + INIT_PREFIX))
      rmSync(path.join(parent, entry), { recursive: true, force: true });
  }
  const tmp = path.join(parent, `${base}${INIT_PREFIX}${process.pid}`);
  const template = usableTemplate();
  if (template) {
    cpSync(template, tmp, { recursive: true });
  } else {
    mkdirSync(tmp, { mode: 0o700 });
    await initdbInChild(tmp, startParams);
  }
  if (existsSync(dir)) rmSync(dir, { recursive: true }); // empty (needsInit), so nothing is lost
  renameSync(tmp, dir);
}

async function initdbInChild(dir: string, startParams: readonly string[]): Promise<void> {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const args = ['--liftoff-only', '-e', INIT_SCRIPT, entry, dir, JSON.stringify(startParams)];
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
  if (code !== 0 || !existsSync(path.join(dir, 'PG_VERSION'))) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`creating the embedded database in ${dir} failed (exit ${code}): ${stderr.trim()}`);
  }
}

/** `npm run build` runs this file: writes the template cluster into dist/pglite-template. */
export async function writeTemplate(startParams: readonly string[]): Promise<void> {
  rmSync(TEMPLATE_DIR, { recursive: true, force: true });
  mkdirSync(TEMPLATE_DIR, { recursive: true });
  const cluster = path.join(TEMPLATE_DIR, 'cluster');
  mkdirSync(cluster, { mode: 0o700 });
  await initdbInChild(cluster, startParams);
  writeFileSync(path.join(TEMPLATE_DIR, 'pglite-version'), `${pgliteVersion()}\n`);
}
