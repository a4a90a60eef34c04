import { setTimeout as sleep } from 'node:timers/promises';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db, Queryable } from '../../src/store/db.js';
import { createPgliteDb } from '../../src/store/pglite.js';
import { PglitePrepared } from '../../src/store/pglitePrepared.js';

// The embedded default runs its statements as prepared statements, one trip into PGlite each,
// instead of PGlite's query(). These check that nothing a caller sees changes with that.

describe('PGlite prepared statements read and write what PGlite query() does', () => {
  let pglite: PGlite;
  let prepared: PglitePrepared;
  beforeAll(async () => {
    pglite = await PGlite.create();
    prepared = new PglitePrepared(pglite);
    await pglite.exec(`CREATE TABLE typed (
      id int PRIMARY KEY, big bigint, amount numeric, flag boolean, label text, tags text[],
      counts int[], doc jsonb, raw json, at timestamptz, day date, uid uuid, bytes bytea)`);
  }, 60_000);
  afterAll(async () => {
    await pglite.close();
  });

  const insert = `INSERT INTO typed VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
    RETURNING *`;
  const rowsOf = [
    [
      1,
      9_007_199_254_740_993n,
      '12.50',
      true,
      'quote " and \\ backslash, comma',
      ['a', 'b,c', 'd"e', '', null],
      [1, 2, 3],
      { nested: { list: [1, 'two', null] }, emoji: '🔑' },
      ['json', 2],
      new Date('2026-12-07T08:00:00.123Z'),
      '2026-12-07',
      '4b6f0e0a-8f0d-4c1e-9f7a-0b1c2d3e4f50',
      new Uint8Array([0, 1, 254, 255]),
    ],
    [2, null, null, false, null, [], null, '"a JSON string"', null, '2026-01-01T00:00:00Z', null, null, null],
  ];

  it('rows and parameters of every column type match, one statement run many times', async () => {
    for (const params of rowsOf) {
      const ours = await prepared.query(insert, params, { inTransaction: false });
      const id = params[0] as number;
      const theirs = await pglite.query('SELECT * FROM typed WHERE id = $1', [id]);
      expect(ours).toEqual(theirs.rows);
      expect(
        await prepared.query('SELECT * FROM typed WHERE id = $1', [id], { inTransaction: false }),
      ).toEqual(theirs.rows);
    }
    const unnested =
      'SELECT v.n, v.doc::jsonb AS doc FROM unnest($1::int[], $2::text[]) AS v(n, doc) ORDER BY v.n';
    const params = [
      [3, 1, 2],
      [JSON.stringify({ a: 1 }), JSON.stringify(['x']), null],
    ];
    expect(await prepared.query(unnested, params, { inTransaction: false })).toEqual(
      (await pglite.query(unnested, params)).rows,
    );
  });

  it('a statement Postgres refuses fails the same way every time, and others still run', async () => {
    const broken = 'SELEC id FROM typed WHERE id = $1';
    for (let i = 0; i < 2; i += 1) {
      await expect(prepared.query(broken, [1], { inTransaction: false })).rejects.toMatchObject({
        code: '42601',
      });
    }
    const duplicate = 'INSERT INTO typed (id) VALUES ($1)';
    await expect(prepared.query(duplicate, [1], { inTransaction: false })).rejects.toMatchObject({
      code: '23505',
      constraint: 'typed_pkey',
    });
    expect(
      await prepared.query('SELECT count(*)::int AS n FROM typed WHERE id > $1', [0], {
        inTransaction: false,
      }),
    ).toEqual([{ n: 2 }]);
  });
});

describe('the embedded database with prepared statements', () => {
  let db: Db;
  beforeAll(async () => {
    db = await createPgliteDb(null);
    await db.exec('CREATE TABLE items (id int PRIMARY KEY, name text)');
  }, 60_000);
  afterAll(async () => {
    await db.close();
  });

  it('a statement outside a transaction waits for an open one, and is not rolled back with it', async () => {
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let begun = () => {};
    const written = new Promise<void>((resolve) => {
      begun = resolve;
    });
    const rolledBack = db.transaction(async (tx) => {
      await tx.query('INSERT INTO items (id, name) VALUES ($1, $2)', [1, 'inside']);
      begun();
      await gate;
      throw new Error('changed my mind');
    });
    await written;
    const outside = db.query('INSERT INTO items (id, name) VALUES ($1, $2)', [2, 'outside']);
    await sleep(50);
    release();
    await expect(rolledBack).rejects.toThrow('changed my mind');
    await outside;
    expect((await db.query('SELECT id, name FROM items ORDER BY id')).rows).toEqual([
      { id: 2, name: 'outside' },
    ]);
  });

  it('after a migration script, a statement in a transaction is prepared afresh', async () => {
    const read = 'SELECT * FROM items WHERE id = $1';
    expect((await db.query(read, [2])).rows).toEqual([{ id: 2, name: 'outside' }]);
    await db.exec('ALTER TABLE items ADD COLUMN size int');
    // Where a statement Postgres refused could not be run again (see preparedStatements.test.ts
    // for reads outside a transaction, on both databases).
    expect((await db.transaction((tx) => tx.query(read, [2]))).rows).toEqual([
      { id: 2, name: 'outside', size: null },
    ]);
  });

  it('a transaction used after it ended refuses the statement and writes nothing', async () => {
    let kept: Queryable | undefined;
    await db.transaction(async (tx) => {
      kept = tx;
      await tx.query('SELECT $1::int AS n', [1]);
    });
    await expect(kept?.query('INSERT INTO items (id, name) VALUES ($1, $2)', [3, 'late'])).rejects.toThrow(
      'Transaction is closed',
    );
    expect((await db.query('SELECT id FROM items WHERE id = $1', [3])).rows).toEqual([]);
  });

  it('once closed, a statement is refused with a clear error', async () => {
    const closed = await createPgliteDb(null);
    await closed.query('SELECT $1::int AS n', [1]);
    await closed.close();
    await expect(closed.query('SELECT $1::int AS n', [1])).rejects.toThrow('PGlite is closed');
  });

  it('more distinct statements than it keeps prepared all still answer', async () => {
    for (let i = 0; i < 520; i += 1) {
      const { rows } = await db.query(`SELECT $1::int + ${i} AS n`, [1]);
      expect(rows).toEqual([{ n: 1 + i }]);
    }
  });
});
