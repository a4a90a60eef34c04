#!/usr/bin/env node
// Builds dist/ (tsc, then a fresh copy of the SQL migrations) and stamps it with a hash of
// everything the output depends on. `--if-stale` skips the build when the stamp still matches, so
// `npm start` on an unchanged tree costs a hash of src/ (tens of ms) instead of a tsc run (seconds).
// Plain JavaScript on purpose: it has to run before anything is compiled.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const STAMP_FILE = '.build-stamp';
// Files whose absence means dist/ is not usable, whatever the stamp says.
const REQUIRED_OUTPUTS = ['cli/index.js', 'main.js', 'store/migrations', 'chat/web/assets'];

// Generated or cached in src/ by builds and test runs (the SDK package's dist, Python's caches):
// not inputs, and hashing them would make every build stale the moment it finished.
const NOT_INPUTS = new Set(['dist', 'node_modules', '__pycache__', '.pytest_cache']);

function listFiles(dir, root) {
  const out = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (!NOT_INPUTS.has(entry.name)) out.push(...listFiles(full, root));
    } else if (entry.isFile()) out.push(path.relative(root, full).split(path.sep).join('/'));
  }
  return out;
}

function typescriptVersion(root) {
  const require = createRequire(path.join(root, 'package.json'));
  return JSON.parse(readFileSync(require.resolve('typescript/package.json'), 'utf8')).version;
}

/** Hash of what dist/ is built from: src/**, tsconfig.json, package.json and the compiler version. */
export function computeStamp(root) {
  const hash = createHash('sha256');
  hash.update(`typescript ${typescriptVersion(root)}\n`);
  const files = [...listFiles(path.join(root, 'src'), root), 'tsconfig.json', 'package.json'].sort();
  for (const file of files) {
    const content = readFileSync(path.join(root, file));
    // Name and length framed, so moving bytes between files or renaming one changes the hash.
    hash.update(`${file}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest('hex');
}

/** True when dist/ is missing, incomplete or built from different sources. */
export function isStale(root) {
  const dist = path.join(root, 'dist');
  if (REQUIRED_OUTPUTS.some((file) => !existsSync(path.join(dist, file)))) return true;
  let stamp;
  try {
    stamp = readFileSync(path.join(dist, STAMP_FILE), 'utf8').trim();
  } catch {
    return true;
  }
  return stamp !== computeStamp(root);
}

/** Runs tsc (incremental, see tsconfig.json) and copies the migrations; stamps only on success. */
export function build(root) {
  const dist = path.join(root, 'dist');
  // Hash the inputs first: a source edited while tsc runs leaves a stamp that no longer matches.
  const stamp = computeStamp(root);
  rmSync(path.join(dist, STAMP_FILE), { force: true });
  const require = createRequire(path.join(root, 'package.json'));
  const tsc = path.join(path.dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) return false;
  // The SDK package (a workspace) builds with its own tsconfig: web-standard globals only.
  if (existsSync(path.join(root, 'src', 'sdk', 'tsconfig.json'))) {
    const sdk = spawnSync(process.execPath, [tsc, '-p', 'src/sdk/tsconfig.json'], {
      cwd: root,
      stdio: 'inherit',
    });
    if (sdk.status !== 0) return false;
  }
  const migrations = path.join(dist, 'store', 'migrations');
  rmSync(migrations, { recursive: true, force: true });
  cpSync(path.join(root, 'src', 'store', 'migrations'), migrations, { recursive: true });
  // The web pages' own browser scripts and stylesheet, served as files (src/chat/web/assets.ts).
  const assets = path.join(dist, 'chat', 'web', 'assets');
  rmSync(assets, { recursive: true, force: true });
  cpSync(path.join(root, 'src', 'chat', 'web', 'assets'), assets, { recursive: true });
  // The embedded database's template cluster (see src/store/pgliteInit.ts), when this project has one.
  const template = path.join(dist, 'store', 'pgliteTemplate.js');
  if (existsSync(template)) {
    const made = spawnSync(process.execPath, [template], { cwd: root, stdio: 'inherit' });
    if (made.status !== 0) return false;
  }
  writeFileSync(path.join(dist, STAMP_FILE), `${stamp}\n`);
  return true;
}

const invokedDirectly = process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  if (process.argv.includes('--if-stale') && !isStale(root)) process.exit(0);
  process.exit(build(root) ? 0 : 1);
}
