import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createPgliteDb } from '../../src/store/pglite.js';

// Run from src/, so there is no dist/pglite-template: this is the initdb-in-a-child path (the e2e
// tests start the built server, which copies the template).
describe('embedded database in a data dir', () => {
  let dataDir: string;
  afterEach(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('creates the database on first open, keeps rows across a reopen, and cleans up an interrupted init', async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'pglite-dir-'));
    // What a start killed during initdb leaves behind: a half-made sibling directory.
    mkdirSync(path.join(dataDir, 'pglite.init-999999', 'base'), { recursive: true });

    const db = await createPgliteDb(dataDir);
    await db.exec('CREATE TABLE kept (id int PRIMARY KEY)');
    await db.query('INSERT INTO kept VALUES ($1)', [7]);
    expect((await db.query<{ shared_buffers: string }>('SHOW shared_buffers')).rows[0]?.shared_buffers).toBe(
      '16MB',
    );
    await db.close();

    expect(readdirSync(dataDir)).toEqual(['pglite']);
    expect(existsSync(path.join(dataDir, 'pglite', 'PG_VERSION'))).toBe(true);
    expect(statSync(path.join(dataDir, 'pglite')).mode & 0o777).toBe(0o700);

    const reopened = await createPgliteDb(dataDir);
    expect((await reopened.query<{ id: number }>('SELECT id FROM kept')).rows).toEqual([{ id: 7 }]);
    await reopened.close();
  }, 180_000);
});
