import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../src/store/db.js';
import { testDatabases } from '../helpers/databases.js';

// Both databases run statements as named prepared statements, which Postgres refuses once a
// migration changes the columns they return ("cached plan must not change result type"), on
// every connection that prepared them. A rolling upgrade does exactly that to the instances
// still running: none of them may be left failing every read of the changed table.

describe.each(testDatabases())('prepared statements after a migration on $name', (database) => {
  let db: Db;
  beforeAll(async () => {
    db = await database.open();
    await db.exec('CREATE TABLE widgets (id int PRIMARY KEY, name text)');
    await db.query('INSERT INTO widgets (id, name) VALUES ($1, $2)', [1, 'first']);
  }, 60_000);
  afterAll(async () => {
    await db.close();
  });

  const read = 'SELECT * FROM widgets WHERE id = $1';
  // Several at once, so a pool prepares the statement on several connections.
  const readMany = () => Promise.all(Array.from({ length: 10 }, () => db.query(read, [1])));

  it('a table given a new column is read by its new columns, on every connection', async () => {
    for (const { rows } of await readMany()) expect(rows).toEqual([{ id: 1, name: 'first' }]);
    await db.exec('ALTER TABLE widgets ADD COLUMN size int');
    for (const { rows } of await readMany()) expect(rows).toEqual([{ id: 1, name: 'first', size: null }]);
  });

  it('and again after a second change, made as a single statement', async () => {
    await db.query('ALTER TABLE widgets ADD COLUMN colour text');
    for (const { rows } of await readMany()) {
      expect(rows).toEqual([{ id: 1, name: 'first', size: null, colour: null }]);
    }
  });

  it('a streamed read (an export) is read by its new columns too', async () => {
    const streamMany = () =>
      Promise.all(
        Array.from({ length: 10 }, async () => {
          const rows: unknown[] = [];
          await db.eachRow(read, [1], (row) => rows.push(row));
          return rows;
        }),
      );
    await streamMany();
    await db.exec('ALTER TABLE widgets ADD COLUMN weight int');
    for (const rows of await streamMany()) {
      expect(rows).toEqual([{ id: 1, name: 'first', size: null, colour: null, weight: null }]);
    }
  });
});
