import { createHash } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Actor } from '../../src/core/audit/index.js';
import { AuditService } from '../../src/services/audit.js';
import type { Db } from '../../src/store/db.js';
import { testDatabases } from '../helpers/databases.js';
import { FakeClock } from '../helpers/fakeClock.js';

/** Where each test's clock starts. */
const START = '2024-01-01T12:00:00.000Z';

const DAY = 86_400_000;
const OPERATOR: Actor = { type: 'operator', id: 'opk_1', name: 'ops', platform: 'cli' };

describe.each(testDatabases().map((d) => [d.name, d] as const))(
  'audit retention and redaction on %s',
  (_n, database) => {
    let db: Db;
    let clock: FakeClock;
    let audit: AuditService;

    beforeAll(async () => {
      db = await database.open();
    });
    afterAll(async () => {
      await db?.close();
    });
    beforeEach(async () => {
      await db.query('DELETE FROM audit_events');
      await db.query('DELETE FROM audit_checkpoints');
      await db.query('DELETE FROM audit_forward_cursor');
      clock = new FakeClock(START);
      audit = new AuditService(db, clock);
    });

    const write = async (n: number, details: (i: number) => Record<string, unknown> = (i) => ({ i })) => {
      for (let i = 0; i < n; i += 1) {
        await db.transaction((tx) =>
          audit.append(tx, { type: 'request', actor: { type: 'system' }, details: details(i) }),
        );
        clock.advance(1000);
      }
    };
    const count = async () =>
      Number((await db.query<{ n: unknown }>('SELECT count(*) AS n FROM audit_events')).rows[0]?.n);

    it('exports every matching event once, oldest first, page by page, and stops when told to', async () => {
      await write(7);
      await db.transaction((tx) =>
        audit.append(tx, {
          type: 'use',
          actor: { type: 'system' },
          agentId: 'agt_other',
          details: { i: 99 },
        }),
      );
      const all: number[] = [];
      let pauses = 0;
      const between = async () => {
        pauses += 1;
        return true;
      };
      await audit.exportEvents({}, (e) => all.push(JSON.parse(e.detailsJson).i), between, 3);
      expect(all).toEqual([0, 1, 2, 3, 4, 5, 6, 99]);
      expect(pauses).toBe(2); // after the two full pages; the short third page ends it

      const filtered: string[] = [];
      await audit.exportEvents({ agentId: 'agt_other' }, (e) => filtered.push(e.type), between, 3);
      expect(filtered).toEqual(['use']);

      // A client that goes away: the export reads no further page.
      const partial: number[] = [];
      await audit.exportEvents(
        {},
        (e) => partial.push(e.seq),
        async () => false,
        3,
      );
      expect(partial).toHaveLength(3);
    });

    it('with SIEM forwarding on, keeps old events until they have been forwarded', async () => {
      await write(5);
      await audit.sealPending();
      clock.advance(400 * DAY);
      // Nothing forwarded yet: nothing may go.
      expect(await audit.applyRetention(365, { onlyForwarded: true })).toMatchObject({
        ran: true,
        purged: 0,
      });
      await db.query("INSERT INTO audit_forward_cursor (id, chain_index) VALUES ('siem', 3)");
      expect(await audit.applyRetention(365, { onlyForwarded: true })).toMatchObject({
        purged: 3,
        checkpoint: { chainIndex: 3 },
      });
      expect(await count()).toBe(2);
      expect(await audit.verify()).toMatchObject({ valid: true, checked: 2 });
      await db.query("UPDATE audit_forward_cursor SET chain_index = 5 WHERE id = 'siem'");
      expect(await audit.applyRetention(365, { onlyForwarded: true })).toMatchObject({ purged: 2 });
      expect(await count()).toBe(0);
    });

    it('purges sealed events older than the retention period behind a checkpoint; verify still passes', async () => {
      await write(5);
      clock.advance(100 * DAY);
      await write(3);
      await audit.sealPending();
      clock.advance(300 * DAY); // the first five are now > 365 days old, the last three are not
      const result = await audit.applyRetention(365);
      expect(result).toMatchObject({ ran: true, purged: 5, checkpoint: { chainIndex: 5 } });
      expect(await count()).toBe(3);
      const { rows } = await db.query<{ chain_index: unknown; purged_count: unknown; hash: string }>(
        'SELECT chain_index, purged_count, hash FROM audit_checkpoints',
      );
      expect(rows.map((r) => [Number(r.chain_index), Number(r.purged_count)])).toEqual([[5, 5]]);
      expect(await audit.verify()).toMatchObject({ valid: true, checked: 3 });

      // New events chain on from the survivors; a second purge leaves a second checkpoint.
      await write(2);
      await audit.sealPending();
      expect(await audit.verify()).toMatchObject({ valid: true, checked: 5 });
      clock.advance(400 * DAY);
      expect(await audit.applyRetention(365)).toMatchObject({ purged: 5, checkpoint: { chainIndex: 10 } });
      expect(await audit.verify()).toMatchObject({ valid: true, checked: 0 });
      await write(1);
      await audit.sealPending();
      expect(await audit.verify()).toMatchObject({ valid: true, checked: 1 });
      // Nothing due: no checkpoint, no deletion.
      expect(await audit.applyRetention(365)).toMatchObject({ ran: true, purged: 0 });
    });

    it('never purges unsealed events and keeps chain order when times are out of order', async () => {
      await write(3);
      await audit.sealPending();
      await write(2); // unsealed
      clock.advance(400 * DAY);
      expect(await audit.applyRetention(365)).toMatchObject({ purged: 3 });
      expect(await count()).toBe(2);
      await audit.sealPending();
      expect(await audit.verify()).toMatchObject({ valid: true, checked: 2 });
    });

    it('still finds a tampered row after a purge', async () => {
      await write(4);
      clock.advance(400 * DAY);
      await write(3);
      await audit.sealPending();
      await audit.applyRetention(365);
      await db.query(`UPDATE audit_events SET details = '{"i": 99}' WHERE chain_index = 6`);
      expect(await audit.verify()).toMatchObject({
        valid: false,
        firstBroken: { chainIndex: 6, reason: 'details do not match details_hash' },
      });
    });

    it("redacts a person's data deep in details, keeps the chain verifiable and records the redaction", async () => {
      await write(4, (i) =>
        i % 2 === 0
          ? {
              approver: { email: 'Ada@Example.com', note: `by ada@example.com #${i}` },
              list: ['x', 'ada@example.com'],
            }
          : { approver: { email: 'bob@example.com' } },
      );
      await audit.sealPending();
      const before = await db.query('SELECT * FROM audit_events ORDER BY seq');
      const dryRun = await audit.redact('ada@example.com', OPERATOR, { dryRun: true });
      expect(dryRun).toMatchObject({ dryRun: true, events: 2, eventId: null });
      expect((await db.query('SELECT * FROM audit_events ORDER BY seq')).rows).toEqual(before.rows);
      const result = await audit.redact('ada@example.com', OPERATOR);
      expect(result).toMatchObject({ dryRun: false, events: 2 });
      const { rows } = await db.query<{
        details: Record<string, unknown>;
        redacted_at: Date | null;
        type: string;
      }>('SELECT details, redacted_at, type FROM audit_events ORDER BY seq');
      expect(rows[0]?.details).toEqual({
        approver: { email: '[redacted]', note: '[redacted]' },
        list: ['x', '[redacted]'],
      });
      expect(rows[0]?.redacted_at).not.toBeNull();
      expect(rows[1]).toMatchObject({
        details: { approver: { email: 'bob@example.com' } },
        redacted_at: null,
      });
      expect(JSON.stringify(rows)).not.toContain('ada@example.com');
      const last = rows[rows.length - 1];
      expect(last?.type).toBe('audit.redacted');
      expect(last?.details).toEqual({
        subjectHash: createHash('sha256').update('ada@example.com').digest('hex'),
        events: 2,
        eventOrigins: 0,
        eventActorsKept: 0,
      });
      await audit.sealPending();
      expect(await audit.verify()).toMatchObject({ valid: true, checked: 5 });
    });

    it('still finds a tampered row after a redaction, and a row marked redacted without a redaction event', async () => {
      await write(4, (i) => ({ user: i === 0 ? 'U123 carol' : `other ${i}` }));
      await audit.redact('carol', OPERATOR);
      await audit.sealPending();
      expect(await audit.verify()).toMatchObject({ valid: true });
      await db.query(`UPDATE audit_events SET details = '{"user": "forged"}' WHERE chain_index = 3`);
      expect(await audit.verify()).toMatchObject({
        valid: false,
        firstBroken: { chainIndex: 3, reason: 'details do not match details_hash' },
      });
      // Hiding the tampering behind redacted_at does not help: no redaction event covers it.
      await db.query('UPDATE audit_events SET redacted_at = now() WHERE chain_index = 3');
      expect(await audit.verify()).toMatchObject({
        valid: false,
        firstBroken: { chainIndex: 3, reason: 'redacted_at is set but no audit.redacted event covers it' },
      });
    });
  },
);
