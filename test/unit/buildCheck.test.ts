import { spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { computeStamp, isStale, STAMP_FILE } from '../../src/build.mjs';

const repo = path.resolve(import.meta.dirname, '../..');

// A tiny project laid out like this one (src/, tsconfig.json, package.json, the real node_modules),
// so the check and the build run for real without touching this checkout's dist/.
function makeProject(): string {
  const root = mkdtempSync(path.join(os.tmpdir(), 'build-check-'));
  mkdirSync(path.join(root, 'src', 'cli'), { recursive: true });
  mkdirSync(path.join(root, 'src', 'store', 'migrations'), { recursive: true });
  cpSync(path.join(repo, 'src', 'build.mjs'), path.join(root, 'src', 'build.mjs'));
  writeFileSync(path.join(root, 'src', 'main.ts'), 'export const answer: number = 42;\n');
  writeFileSync(
    path.join(root, 'src', 'cli', 'index.ts'),
    "import { answer } from '../main.js';\nexport const doubled = answer * 2;\n",
  );
  writeFileSync(path.join(root, 'src', 'store', 'migrations', '001_a.sql'), 'SELECT 1;\n');
  // The web pages' own files, which the build copies like the migrations.
  mkdirSync(path.join(root, 'src', 'chat', 'web', 'assets'), { recursive: true });
  writeFileSync(path.join(root, 'src', 'chat', 'web', 'assets', 'web.css'), 'body {}\n');
  writeFileSync(
    path.join(root, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        lib: ['ES2022'],
        types: [],
        skipLibCheck: true,
        strict: true,
        outDir: 'dist',
        rootDir: 'src',
        incremental: true,
        tsBuildInfoFile: 'dist/.tsbuildinfo',
      },
      include: ['src/**/*.ts'],
    }),
  );
  writeFileSync(path.join(root, 'package.json'), JSON.stringify({ name: 'tiny', type: 'module' }));
  symlinkSync(path.join(repo, 'node_modules'), path.join(root, 'node_modules'), 'dir');
  return root;
}

function buildIfStale(root: string) {
  const result = spawnSync(process.execPath, ['src/build.mjs', '--if-stale'], {
    cwd: root,
    encoding: 'utf8',
  });
  expect(result.stderr + result.stdout).toBe('');
  expect(result.status).toBe(0);
}

const mtime = (file: string) => statSync(file).mtimeMs;
// tsc runs for real; on a loaded 2-core machine one tiny build can take tens of seconds.
const TSC_TIMEOUT = 240_000;

describe('build staleness check (npm start / npm test skip tsc when dist is current)', () => {
  let root: string;
  beforeEach(() => {
    root = makeProject();
  });
  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
  });

  it(
    'builds a missing dist, then skips the build until a source changes',
    () => {
      expect(isStale(root)).toBe(true);
      buildIfStale(root);
      const out = path.join(root, 'dist', 'main.js');
      expect(readFileSync(out, 'utf8')).toContain('42');
      expect(readFileSync(path.join(root, 'dist', 'store', 'migrations', '001_a.sql'), 'utf8')).toBe(
        'SELECT 1;\n',
      );
      expect(isStale(root)).toBe(false);

      const stampTime = mtime(path.join(root, 'dist', STAMP_FILE));
      buildIfStale(root);
      expect(mtime(path.join(root, 'dist', STAMP_FILE))).toBe(stampTime); // nothing rebuilt

      writeFileSync(path.join(root, 'src', 'main.ts'), 'export const answer: number = 43;\n');
      expect(isStale(root)).toBe(true);
      buildIfStale(root);
      expect(readFileSync(out, 'utf8')).toContain('43');
      expect(isStale(root)).toBe(false);
    },
    TSC_TIMEOUT,
  );

  it(
    'a removed migration disappears from dist (the copy is fresh, not merged)',
    () => {
      buildIfStale(root);
      rmSync(path.join(root, 'src', 'store', 'migrations', '001_a.sql'));
      writeFileSync(path.join(root, 'src', 'store', 'migrations', '002_b.sql'), 'SELECT 2;\n');
      buildIfStale(root);
      expect(() => statSync(path.join(root, 'dist', 'store', 'migrations', '001_a.sql'))).toThrow();
      expect(readFileSync(path.join(root, 'dist', 'store', 'migrations', '002_b.sql'), 'utf8')).toBe(
        'SELECT 2;\n',
      );
    },
    TSC_TIMEOUT,
  );

  it(
    'a failed build exits non-zero and stays stale, so the next start builds again',
    () => {
      buildIfStale(root);
      writeFileSync(path.join(root, 'src', 'main.ts'), 'export const answer: number = "not a number";\n');
      const result = spawnSync(process.execPath, ['src/build.mjs', '--if-stale'], {
        cwd: root,
        encoding: 'utf8',
      });
      expect(result.status).not.toBe(0);
      expect(result.stdout).toContain('TS2322');
      expect(isStale(root)).toBe(true);
    },
    TSC_TIMEOUT,
  );

  it('is stale after an edit to any input or a deleted output, and fresh again once reverted', () => {
    // A stamp written by hand: this test checks the comparison, not tsc.
    for (const file of ['cli/index.js', 'main.js', 'store/migrations/001_a.sql', 'chat/web/assets/web.css']) {
      mkdirSync(path.dirname(path.join(root, 'dist', file)), { recursive: true });
      writeFileSync(path.join(root, 'dist', file), '');
    }
    writeFileSync(path.join(root, 'dist', STAMP_FILE), `${computeStamp(root)}\n`);
    expect(isStale(root)).toBe(false);

    for (const input of ['src/main.ts', 'src/store/migrations/001_a.sql', 'tsconfig.json', 'package.json']) {
      const file = path.join(root, input);
      const before = readFileSync(file);
      writeFileSync(file, Buffer.concat([before, Buffer.from(' ')]));
      expect(isStale(root), input).toBe(true);
      writeFileSync(file, before);
      expect(isStale(root), input).toBe(false);
    }

    writeFileSync(path.join(root, 'src', 'extra.ts'), '');
    expect(isStale(root)).toBe(true);
    rmSync(path.join(root, 'src', 'extra.ts'));
    expect(isStale(root)).toBe(false);

    rmSync(path.join(root, 'dist', 'cli', 'index.js'));
    expect(isStale(root)).toBe(true);
  });
});
