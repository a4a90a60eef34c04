import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  type Actor,
  type AuditEventType,
  chainHash,
  GENESIS_HASH,
  hashDetails,
} from '../../src/core/audit/index.js';
import { AuditService } from '../../src/services/audit.js';
import type { Db } from '../../src/store/db.js';
import { testDatabases } from '../helpers/databases.js';
import { FakeClock } from '../helpers/fakeClock.js';

/** Event types of this test's own: the store takes any, only the service's are typed. */
const testType = (type: string) => type as AuditEventType;

/** Where each test's clock starts. */
const START = '2025-06-01T12:00:00.000Z';

const SYSTEM: Actor = { type: 'system' };
const APPROVER: Actor = {
  type: 'approver',
  platform: 'slack',
  teamId: 'T1',
  userId: 'U42',
  userName: 'Ada',
};

interface Row {
  seq: unknown;
  id: string;
  type: string;
  chain_index: unknown;
  prev_hash: string | null;
  hash: string | null;
}

describe.each(testDatabases().map((d) => [d.name, d] as const))('the audit trail on %s', (name, database) => {
  let db: Db;
  let clock: FakeClock;
  let audit: AuditService;

  // One database per test would cost seconds on PGlite: tests start from an empty table instead.
  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await db?.close();
  });
  beforeEach(async () => {
    await db.query('DELETE FROM audit_events');
    clock = new FakeClock(START);
    audit = new AuditService(db, clock);
  });

  const rows = async () =>
    (
      await db.query<Row>('SELECT seq, id, type, chain_index, prev_hash, hash FROM audit_events ORDER BY seq')
    ).rows.map((r) => ({
      ...r,
      seq: Number(r.seq),
      chain_index: r.chain_index === null ? null : Number(r.chain_index),
    }));

  /** Appends n events, each in its own committed transaction, a second apart. */
  async function appendEvents(n: number, prefix = 'e'): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i += 1) {
      clock.advance(1000);
      const [event] = await db.transaction((tx) =>
        audit.append(tx, {
          type: testType(`test.${prefix}${i}`),
          actor: i % 2 ? APPROVER : SYSTEM,
          agentId: 'agent_0000000000000000000001',
          permissionId: i % 3 ? 'perm_0000000000000000000001' : null,
          details: { n: i, nested: { b: [1, 'two'], a: null } },
          ip: '192.0.2.1',
          userAgent: 'vitest',
        }),
      );
      ids.push(event?.id as string);
    }
    return ids;
  }

  it('stores an event exactly when its transaction commits', async () => {
    await expect(
      db.transaction(async (tx) => {
        await audit.append(tx, { type: testType('test.rolled_back'), actor: SYSTEM });
        throw new Error('the state change failed');
      }),
    ).rejects.toThrow('the state change failed');
    expect(await rows()).toEqual([]);

    const [committed] = await db.transaction((tx) =>
      audit.append(tx, { type: testType('test.committed'), actor: SYSTEM }),
    );
    expect((await rows()).map((r) => r.id)).toEqual([committed?.id]);
  });

  it('stores what was appended, with a hash of its details', async () => {
    clock.advance(1234);
    const details = { amount: 50, recipients: ['a@example.com'] };
    await db.transaction((tx) =>
      audit.append(tx, {
        type: testType('permission.approved'),
        actor: APPROVER,
        details,
        permissionId: 'perm_1',
      }),
    );
    const [event] = await audit.list({ limit: 10 });
    expect(event).toMatchObject({
      type: 'permission.approved',
      actor: APPROVER,
      details,
      permissionId: 'perm_1',
      occurredAt: clock.now(),
      detailsHash: hashDetails(details),
      chainIndex: null,
    });
    expect(event?.id).toMatch(/^evt_/);
  });

  it('sealPending links events in order into a hash chain starting at genesis', async () => {
    const ids = await appendEvents(5);
    expect(await audit.sealPending()).toBe(5);
    const sealed = await rows();
    expect(sealed.map((r) => r.id)).toEqual(ids);
    expect(sealed.map((r) => r.chain_index)).toEqual([1, 2, 3, 4, 5]);
    expect(sealed[0]?.prev_hash).toBe(GENESIS_HASH);
    for (let i = 1; i < sealed.length; i += 1) expect(sealed[i]?.prev_hash).toBe(sealed[i - 1]?.hash);
    expect(new Set(sealed.map((r) => r.hash)).size).toBe(5);
    for (const r of sealed) expect(r.hash).toMatch(/^[0-9a-f]{64}$/);

    // The hash commits to the event: recompute the first link independently.
    const [first] = await audit.list({ limit: 1, beforeSeq: (sealed[1]?.seq as number) ?? 0 });
    expect(first && chainHash(GENESIS_HASH, 1, first)).toBe(sealed[0]?.hash);

    // Nothing left to seal; later events continue the same chain.
    expect(await audit.sealPending()).toBe(0);
    await appendEvents(2, 'later');
    expect(await audit.sealPending()).toBe(2);
    const more = await rows();
    expect(more.map((r) => r.chain_index)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(more[5]?.prev_hash).toBe(more[4]?.hash);
  });

  it('verify() walks a sound chain and counts unsealed rows separately', async () => {
    expect(await audit.verify()).toEqual({ valid: true, checked: 0, unsealed: 0 });
    await appendEvents(6);
    await audit.sealPending();
    await appendEvents(2, 'unsealed');
    expect(await audit.verify()).toEqual({ valid: true, checked: 6, unsealed: 2 });
  });

  describe('verify() names the first row that does not hold', () => {
    let ids: string[];
    beforeEach(async () => {
      ids = await appendEvents(5);
      await audit.sealPending();
      expect((await audit.verify()).valid).toBe(true);
    });

    const tamper: [string, string][] = [
      ['its details', `UPDATE audit_events SET details = '{"n": 999}'::jsonb WHERE id = $1`],
      ['its type', `UPDATE audit_events SET type = 'test.innocent' WHERE id = $1`],
      [
        'its actor',
        `UPDATE audit_events SET actor = '{"type":"approver","userId":"U_EVIL"}'::jsonb WHERE id = $1`,
      ],
      ['its time', `UPDATE audit_events SET occurred_at = occurred_at - interval '1 hour' WHERE id = $1`],
      ['its hash', `UPDATE audit_events SET hash = repeat('a', 64) WHERE id = $1`],
      ['its prev_hash', `UPDATE audit_events SET prev_hash = repeat('b', 64) WHERE id = $1`],
      [
        'its details and details_hash together',
        `UPDATE audit_events SET details = '{"n": 7}'::jsonb,
           details_hash = '${hashDetails({ n: 7 })}' WHERE id = $1`,
      ],
    ];

    it.each(tamper)('a row with changed %s', async (_what, sql) => {
      const victim = ids[2] as string;
      await db.query(sql, [victim]);
      const result = await audit.verify();
      expect(result.valid).toBe(false);
      expect(result.firstBroken).toMatchObject({ id: victim, chainIndex: 3 });
      expect(result.firstBroken?.reason).toEqual(expect.any(String));
      expect(result.checked).toBe(2);
    });

    it('a deleted row: the row after the gap is named', async () => {
      await db.query('DELETE FROM audit_events WHERE id = $1', [ids[1]]);
      const result = await audit.verify();
      expect(result.valid).toBe(false);
      expect(result.firstBroken).toMatchObject({ id: ids[2], chainIndex: 3 });
      expect(result.firstBroken?.reason).toMatch(/missing/i);
    });

    it('the first row, replaced by one re-hashed from genesis with other content', async () => {
      await db.query(
        `UPDATE audit_events SET type = 'test.forged', details = '{}'::jsonb, details_hash = $2 WHERE id = $1`,
        [ids[0], hashDetails({})],
      );
      const [forged] = await audit.list({ limit: 10, eventType: 'test.forged' });
      if (!forged) throw new Error('forged row missing');
      await db.query('UPDATE audit_events SET hash = $2 WHERE id = $1', [
        ids[0],
        chainHash(GENESIS_HASH, 1, forged),
      ]);
      // The forger re-hashed row 1, but row 2 still links to the original.
      expect((await audit.verify()).firstBroken).toMatchObject({ id: ids[1], chainIndex: 2 });
    });

    it('unsealed rows are reported, not checked', async () => {
      await appendEvents(3, 'pending');
      await db.query(`UPDATE audit_events SET details = '{"x": 1}'::jsonb WHERE chain_index IS NULL`);
      expect(await audit.verify()).toEqual({ valid: true, checked: 5, unsealed: 3 });
    });
  });

  it('concurrent sealers never give two rows the same chain index', async () => {
    await appendEvents(20);
    // Events keep arriving while several sealers run at once.
    const [sealedCounts] = await Promise.all([
      Promise.all([audit.sealPending(), audit.sealPending(), audit.sealPending(), audit.sealPending()]),
      appendEvents(10, 'during'),
    ]);
    const rest = await audit.sealPending();
    expect(sealedCounts.reduce((a, b) => a + b, 0) + rest).toBe(30);
    const all = await rows();
    expect(all.map((r) => r.chain_index).sort((a, b) => (a as number) - (b as number))).toEqual(
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    expect(await audit.verify()).toEqual({ valid: true, checked: 30, unsealed: 0 });
  });

  it.runIf(name === 'postgres')(
    'concurrent sealers in separate instances never give two rows the same chain index',
    async () => {
      await appendEvents(10);
      // Separate services, each with its own transactions on the shared pool.
      const sealers = Array.from({ length: 6 }, () => new AuditService(db, clock));
      const counts = await Promise.all(
        sealers.map(async (s, i) => {
          await new Promise((r) => setTimeout(r, i));
          return s.sealPending();
        }),
      );
      const total = counts.reduce((a, b) => a + b, 0) + (await audit.sealPending());
      expect(total).toBe(10);
      const indexes = (await rows()).map((r) => r.chain_index);
      expect(new Set(indexes).size).toBe(10);
      expect(await audit.verify()).toMatchObject({ valid: true, checked: 10 });
    },
  );
});
