import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../src/core/clock.js';
import { AuditService } from '../../src/services/audit.js';
import { AuditForwarder } from '../../src/services/auditForwarder.js';
import type { Db } from '../../src/store/db.js';
import { testDatabases } from '../helpers/databases.js';

/** A SIEM stand-in that answers 503 to the first `failures` requests, then 200. */
async function startReceiver(failures: number) {
  const bodies: { status: number; body: string }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = bodies.length < failures ? 503 : 200;
      bodies.push({ status, body: Buffer.concat(chunks).toString('utf8') });
      res.statusCode = status;
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`,
    bodies,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe.each(testDatabases().map((d) => [d.name, d] as const))('audit forwarding on %s', (_n, database) => {
  let db: Db;
  let audit: AuditService;
  beforeAll(async () => {
    db = await database.open();
    audit = new AuditService(db, systemClock);
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    await db.query('DELETE FROM audit_events');
    await db.query('DELETE FROM audit_forward_cursor');
  });

  it('delivers sealed events in chain order, at least once, retrying failures', async () => {
    const receiver = await startReceiver(3);
    for (let i = 0; i < 25; i += 1) {
      await db.transaction((tx) =>
        audit.append(tx, { type: 'request', actor: { type: 'system' }, details: { i } }),
      );
    }
    await audit.sealPending();
    const errors: number[] = [];
    const forwarder = new AuditForwarder(db, {
      url: receiver.url,
      batchSize: 10,
      intervalMs: 50,
      backoffMs: 20,
      onError: (_err, attempt) => errors.push(attempt),
    });
    forwarder.start();
    const deadline = Date.now() + 15_000;
    const delivered = () =>
      receiver.bodies
        .filter((b) => b.status === 200)
        .flatMap((b) => b.body.trimEnd().split('\n'))
        .map((l) => JSON.parse(l) as { chainIndex: number; details: { i: number } });
    while (delivered().length < 25 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // Events written later are forwarded too.
    await db.transaction((tx) =>
      audit.append(tx, { type: 'use', actor: { type: 'system' }, details: { i: 25 } }),
    );
    await audit.sealPending();
    while (delivered().length < 26 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await forwarder.stop();
    await receiver.close();

    expect(errors).toEqual([1, 2, 3]);
    const events = delivered();
    expect(events.map((e) => e.chainIndex)).toEqual(Array.from({ length: 26 }, (_, i) => i + 1));
    expect(events.map((e) => e.details.i)).toEqual(Array.from({ length: 26 }, (_, i) => i));
    // The failed attempts carried the first batch, which was then sent again (at least once).
    expect(receiver.bodies.slice(0, 4).map((b) => b.body)).toEqual(Array(4).fill(receiver.bodies[0]?.body));
    const { rows } = await db.query<{ chain_index: unknown }>('SELECT chain_index FROM audit_forward_cursor');
    expect(Number(rows[0]?.chain_index)).toBe(26);
  });

  it('one instance sends at a time', async () => {
    const receiver = await startReceiver(0);
    for (let i = 0; i < 5; i += 1) {
      await db.transaction((tx) =>
        audit.append(tx, { type: 'request', actor: { type: 'system' }, details: { i } }),
      );
    }
    await audit.sealPending();
    const a = new AuditForwarder(db, { url: receiver.url, batchSize: 100, intervalMs: 1000 });
    const b = new AuditForwarder(db, { url: receiver.url, batchSize: 100, intervalMs: 1000 });
    const results = await Promise.all([a.forwardOnce(), b.forwardOnce()]);
    await receiver.close();
    // The other found the lease taken.
    expect(results.filter((r) => r === 5)).toHaveLength(1);
    expect(results.filter((r) => r === -1)).toHaveLength(1);
    expect(receiver.bodies).toHaveLength(1);
  });

  const writeSealed = async (n: number) => {
    for (let i = 0; i < n; i += 1) {
      await db.transaction((tx) =>
        audit.append(tx, { type: 'request', actor: { type: 'system' }, details: { i } }),
      );
    }
    await audit.sealPending();
  };

  it('does not hold the database while the SIEM is slow to answer', async () => {
    let release: () => void = () => undefined;
    let arrived: () => void = () => undefined;
    const requestArrived = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const server: Server = createServer((req, res) => {
      req.resume();
      arrived();
      release = () => res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    await writeSealed(3);
    const forwarder = new AuditForwarder(db, {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/ingest`,
      batchSize: 100,
      intervalMs: 1000,
    });
    const sending = forwarder.forwardOnce();
    await requestArrived;
    // The SIEM has the batch and has not answered: the database still serves everyone else
    // (PGlite has one connection; a transaction held across the POST would block this).
    const answered = await Promise.race([
      db.query<{ ok: number }>('SELECT 1 AS ok').then((r) => r.rows[0]?.ok),
      new Promise((resolve) => setTimeout(() => resolve('blocked'), 5000)),
    ]);
    release();
    expect(answered).toBe(1);
    expect(await sending).toBe(3);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('hands over when the sender stops or its lease runs out, and a stale sender cannot move the cursor', async () => {
    const receiver = await startReceiver(0);
    await writeSealed(2);
    const a = new AuditForwarder(db, { url: receiver.url, batchSize: 100, intervalMs: 1000 });
    const b = new AuditForwarder(db, { url: receiver.url, batchSize: 100, intervalMs: 1000 });
    expect(await a.forwardOnce()).toBe(2);
    expect(await b.forwardOnce()).toBe(-1);
    // a stops: the lease is given up, b takes over at once.
    await a.stop();
    await writeSealed(1);
    expect(await b.forwardOnce()).toBe(1);
    expect(await a.forwardOnce()).toBe(-1);

    // b dies without stopping: once its lease has run out, c takes over from the cursor.
    await db.query("UPDATE audit_forward_cursor SET lease_until = now() - interval '1 second'");
    await writeSealed(1);
    const c = new AuditForwarder(db, { url: receiver.url, batchSize: 100, intervalMs: 1000 });
    expect(await c.forwardOnce()).toBe(1);
    // b comes back: the lease is c's now.
    expect(await b.forwardOnce()).toBe(-1);
    await receiver.close();
    const { rows } = await db.query<{ chain_index: unknown; lease_owner: string | null }>(
      'SELECT chain_index, lease_owner FROM audit_forward_cursor',
    );
    expect(Number(rows[0]?.chain_index)).toBe(4);
    expect(receiver.bodies.flatMap((r) => r.body.trimEnd().split('\n'))).toHaveLength(4);
  });
});
