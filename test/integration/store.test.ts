import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it, vi } from 'vitest';
import type { Actor, AuditEvent, AuditEventInput } from '../../src/core/audit/index.js';
import { newOperatorKey, sha256Hex } from '../../src/core/credentials.js';
import { AgentService, type RequestOrigin } from '../../src/services/agents.js';
import { AuditService } from '../../src/services/audit.js';
import { AuthService, type Principal } from '../../src/services/auth.js';
import { adminTokenPath, ensureBootstrapOperatorKey } from '../../src/services/operators.js';
import { Counters } from '../../src/store/counters.js';
import type { Db, Queryable } from '../../src/store/db.js';
import { loadMigrations, migrate } from '../../src/store/migrate.js';
import { createPostgresDb } from '../../src/store/postgres.js';
import { createRedis, type Redis, whenReady } from '../../src/store/redis.js';
import { appError } from '../helpers/appError.js';
import {
  createSchema,
  dropSchema,
  type TestDatabase,
  testDatabases,
  uniqueSchema,
} from '../helpers/databases.js';
import { FakeClock } from '../helpers/fakeClock.js';
import { memoryLogger } from '../helpers/memoryLogger.js';

/** Where each test's clock starts. */
const START = '2025-03-10T09:00:00.000Z';

const OPERATOR: Actor = { type: 'operator', id: 'opk_test', name: 'ops', platform: 'api' };
const ORIGIN: RequestOrigin = { actor: OPERATOR, ip: '198.51.100.4', userAgent: 'vitest' };

interface AuditRow {
  type: string;
  agent_id: string | null;
  actor: Actor;
  details: Record<string, unknown>;
  ip: string | null;
  user_agent: string | null;
}

const auditRows = async (db: Queryable, agentId?: string) =>
  (
    await db.query<AuditRow>(
      `SELECT type, agent_id, actor, details, ip, user_agent FROM audit_events
        ${agentId ? 'WHERE agent_id = $1' : ''} ORDER BY seq`,
      agentId ? [agentId] : [],
    )
  ).rows;

const countRows = async (db: Queryable, table: string) =>
  Number((await db.query<{ n: unknown }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n);

/**
 * An empty database with no migrations applied, and how to dispose of it. On PGlite (seconds to
 * open) it is a new schema of an open database; on Postgres a new schema seen through two pools,
 * as two instances starting at once would.
 */
async function freshDb(
  database: TestDatabase['name'],
  pglite: Db,
): Promise<{ dbs: Db[]; dispose(): Promise<void> }> {
  const schema = uniqueSchema();
  if (database === 'pglite') {
    await pglite.exec(`CREATE SCHEMA ${schema}; SET search_path TO ${schema}`);
    return {
      dbs: [pglite],
      dispose: () => pglite.exec(`SET search_path TO public; DROP SCHEMA ${schema} CASCADE`),
    };
  }
  const url = process.env.TEST_DATABASE_URL as string;
  await createSchema(url, schema);
  const dbs = [1, 2].map(() => createPostgresDb({ connectionString: url, poolSize: 3, schema }));
  return {
    dbs,
    async dispose() {
      await Promise.all(dbs.map((d) => d.close()));
      await dropSchema(url, schema);
    },
  };
}

describe.each(testDatabases().map((d) => [d.name, d] as const))('storage on %s', (name, database) => {
  // One migrated database for the services (opening one is the slow part): tests look only at
  // their own rows.
  let db: Db;
  beforeAll(async () => {
    db = await database.open();
  });
  afterAll(async () => {
    await db?.close();
  });

  describe('eachRow', () => {
    it('hands over every row in order without collecting them, and counts them', async () => {
      const seen: number[] = [];
      const count = await db.eachRow<{ n: unknown }>(
        'SELECT g AS n FROM generate_series(1, $1::int) AS g ORDER BY g',
        [2500],
        (row) => seen.push(Number(row.n)),
      );
      expect(count).toBe(2500);
      expect(seen).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
      expect(await db.eachRow('SELECT 1 WHERE false AND $1::int = 1', [1], () => undefined)).toBe(0);
    });

    it("rejects with the callback's error and leaves the database usable", async () => {
      let calls = 0;
      const failing = db.eachRow('SELECT g FROM generate_series(1, $1::int) AS g', [100], () => {
        calls += 1;
        if (calls === 3) throw new Error('client went away');
      });
      await expect(failing).rejects.toThrow('client went away');
      expect(calls).toBe(3);
      // A bad statement is an error too, not a hang.
      await expect(
        db.eachRow('SELECT nope FROM nowhere WHERE $1::int = 1', [1], () => undefined),
      ).rejects.toThrow();
      const { rows } = await db.query<{ ok: number }>('SELECT 1 AS ok');
      expect(rows[0]?.ok).toBe(1);
    });
  });

  // One empty database for the block; its tests run in order on it.
  describe('migrations', () => {
    let fresh: { dbs: Db[]; dispose(): Promise<void> };
    let empty: Db;
    const versions = loadMigrations().map((m) => m.version);
    beforeAll(async () => {
      fresh = await freshDb(name, db);
      empty = fresh.dbs[0] as Db;
    });
    afterAll(async () => {
      await fresh?.dispose();
    });

    it('a failing migration leaves nothing behind', async () => {
      const bad = [
        ...loadMigrations(),
        { version: '999_broken', sql: 'CREATE TABLE half_done (x int); SELECT nope;' },
      ];
      await expect(migrate(empty, bad)).rejects.toThrow();
      for (const table of ['agents', 'half_done', 'schema_migrations']) {
        const exists = await empty.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [table]);
        expect(exists.rows[0]?.t).toBeNull();
      }
    });

    it('two instances migrating at once both succeed and apply each migration once', async () => {
      expect(versions).toContain('001_foundation');
      const targets = fresh.dbs.length > 1 ? fresh.dbs : [empty, empty];
      const results = await Promise.all(targets.map((d) => migrate(d)));
      expect(results.flat().sort()).toEqual(versions);
      expect(results.some((r) => r.length === 0)).toBe(true);
      const tables = await empty.query<{ n: unknown }>(
        `SELECT count(*) AS n FROM information_schema.tables
          WHERE table_schema = current_schema() AND table_name = 'agents'`,
      );
      expect(Number(tables.rows[0]?.n)).toBe(1);
      const applied = await empty.query<{ version: string }>('SELECT version FROM schema_migrations');
      expect(applied.rows.map((r) => r.version).sort()).toEqual(versions);
    });

    it('a later run applies nothing and keeps the data', async () => {
      await empty.query(
        `INSERT INTO agents (id, name, environment) VALUES ('agent_0000000000000000000001', 'kept', 'live')`,
      );
      for (const d of fresh.dbs) expect(await migrate(d)).toEqual([]);
      expect(await countRows(empty, 'agents')).toBe(1);
      expect(await countRows(empty, 'schema_migrations')).toBe(versions.length);
    });
  });

  describe('AgentService', () => {
    let clock: FakeClock;
    let audit: AuditService;
    let agents: AgentService;

    beforeEach(() => {
      clock = new FakeClock(START);
      audit = new AuditService(db, clock);
      agents = new AgentService(db, audit, clock);
    });

    it('creates an agent with a key shown once and stored only as a hash, audited', async () => {
      const created = await agents.create(
        { name: 'mailer', description: 'sends mail', metadata: { team: 'growth' }, environment: 'test' },
        ORIGIN,
      );
      expect(created.agent).toMatchObject({
        name: 'mailer',
        description: 'sends mail',
        metadata: { team: 'growth' },
        environment: 'test',
        status: 'active',
        createdAt: clock.now(),
      });
      expect(created.agent.id).toMatch(/^agent_[A-Za-z0-9]{22}$/);
      expect(created.apiKey).toMatch(/^ak_test_[A-Za-z0-9]{32,}$/);
      expect(created.apiKeyPrefix).toBe(created.apiKey.slice(0, 12));

      const stored = await db.query<{ key_hash: string; key_prefix: string }>(
        'SELECT key_hash, key_prefix FROM api_keys WHERE agent_id = $1',
        [created.agent.id],
      );
      expect(stored.rows).toEqual([
        { key_hash: sha256Hex(created.apiKey), key_prefix: created.apiKeyPrefix },
      ]);
      const everything = JSON.stringify(
        (await db.query('SELECT * FROM api_keys')).rows.concat(
          (await db.query('SELECT * FROM audit_events')).rows,
        ),
      );
      expect(everything).not.toContain(created.apiKey);

      expect(await auditRows(db, created.agent.id)).toEqual([
        {
          type: 'agent.created',
          agent_id: created.agent.id,
          actor: OPERATOR,
          details: { name: 'mailer', environment: 'test', keyPrefix: created.apiKeyPrefix },
          ip: '198.51.100.4',
          user_agent: 'vitest',
        },
      ]);
    });

    it('defaults to a live agent', async () => {
      const created = await agents.create({ name: 'live-one' }, ORIGIN);
      expect(created.agent.environment).toBe('live');
      expect(created.apiKey.startsWith('ak_live_')).toBe(true);
    });

    it('writes nothing when the audit write fails (same transaction)', async () => {
      class FailingAudit extends AuditService {
        override async append(tx: Queryable, ...inputs: AuditEventInput[]): Promise<AuditEvent[]> {
          await super.append(tx, ...inputs);
          throw new Error('audit store unavailable');
        }
      }
      const failing = new AgentService(db, new FailingAudit(db, clock), clock);
      const before = await Promise.all(['agents', 'api_keys', 'audit_events'].map((t) => countRows(db, t)));
      await expect(failing.create({ name: 'ghost' }, ORIGIN)).rejects.toThrow('audit store unavailable');
      expect(await Promise.all(['agents', 'api_keys', 'audit_events'].map((t) => countRows(db, t)))).toEqual(
        before,
      );
    });

    it('gets an agent with its keys (prefixes only)', async () => {
      const created = await agents.create({ name: 'getter' }, ORIGIN);
      const got = await agents.get(created.agent.id);
      expect(got).toMatchObject({ id: created.agent.id, name: 'getter', status: 'active' });
      expect(got.keys).toEqual([
        {
          prefix: created.apiKeyPrefix,
          createdAt: clock.now(),
          expiresAt: null,
          revokedAt: null,
          lastUsedAt: null,
        },
      ]);
      expect(JSON.stringify(got)).not.toContain(created.apiKey);
    });

    it.each([
      ['an unknown id', 'agent_0000000000000000000000'],
      ['a malformed id', "agent_'; DROP TABLE agents; --"],
      ['another kind of id', 'perm_0000000000000000000000'],
    ])('get with %s is NOT_FOUND', async (_what, id) => {
      expect((await appError(agents.get(id))).code).toBe('NOT_FOUND');
    });

    it('lists agents in creation order, a page at a time with a keyset cursor', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 7; i += 1) {
        // Pairs share a creation time: the cursor must break ties by id.
        if (i % 2 === 0) clock.advance(1000);
        ids.push((await agents.create({ name: `agent-${i}` }, ORIGIN)).agent.id);
      }
      // Other tests' agents share the table: walk every page and keep ours.
      const all: string[] = [];
      let after: { createdAt: Date; id: string } | undefined;
      for (;;) {
        const page = await agents.list({ limit: 3, after });
        expect(page.length).toBeLessThanOrEqual(3);
        all.push(...page.map((a) => a.id));
        const last = page[page.length - 1];
        if (page.length < 3 || !last) break;
        after = { createdAt: last.createdAt, id: last.id };
      }
      expect(new Set(all).size).toBe(all.length);
      const seen = all.filter((id) => ids.includes(id));
      expect(seen).toHaveLength(7);
      const expectedOrder = [...ids].sort((a, b) => {
        const ia = ids.indexOf(a);
        const ib = ids.indexOf(b);
        const ta = Math.floor(ia / 2);
        const tb = Math.floor(ib / 2);
        return ta !== tb ? ta - tb : a < b ? -1 : 1;
      });
      expect(seen).toEqual(expectedOrder);
    });

    it('updates fields, moves updatedAt, and audits which fields changed', async () => {
      const created = await agents.create({ name: 'before' }, ORIGIN);
      clock.advance(5000);
      const updated = await agents.update(
        created.agent.id,
        {
          name: 'after',
          metadata: { tier: 2 },
          rateLimitPerMin: 10,
          webhookUrl: 'https://hooks.example.com/x',
        },
        ORIGIN,
      );
      expect(updated).toMatchObject({
        name: 'after',
        metadata: { tier: 2 },
        rateLimitPerMin: 10,
        webhookUrl: 'https://hooks.example.com/x',
        description: null,
        updatedAt: clock.now(),
        createdAt: created.agent.createdAt,
      });
      expect(await agents.get(created.agent.id)).toMatchObject({ name: 'after', metadata: { tier: 2 } });
      const events = await auditRows(db, created.agent.id);
      expect(events.map((e) => e.type)).toEqual(['agent.created', 'agent.updated']);
      expect(events[1]).toMatchObject({
        actor: OPERATOR,
        details: { fields: ['metadata', 'name', 'rateLimitPerMin', 'webhookUrl'] },
      });
    });

    it('a failing update of an unknown agent changes nothing and writes no event', async () => {
      await agents.create({ name: 'bystander' }, ORIGIN);
      const before = await countRows(db, 'audit_events');
      const err = await appError(agents.update('agent_0000000000000000000000', { name: 'x' }, ORIGIN));
      expect(err.code).toBe('NOT_FOUND');
      expect((await appError(agents.update('not-an-id', { name: 'x' }, ORIGIN))).code).toBe('NOT_FOUND');
      expect(await countRows(db, 'audit_events')).toBe(before);
    });

    it('rotates with a grace period: the old key gets an end of life, the new one none', async () => {
      const created = await agents.create({ name: 'rotating' }, ORIGIN);
      clock.advance(60_000);
      const rotated = await agents.rotateKey(
        created.agent.id,
        { gracePeriodSeconds: 3600, revokeImmediately: false },
        ORIGIN,
      );
      const expected = new Date(clock.now().getTime() + 3600_000);
      expect(rotated.previousKeysExpireAt).toEqual(expected);
      expect(rotated.apiKey).not.toBe(created.apiKey);
      expect(rotated.apiKey.startsWith('ak_live_')).toBe(true);
      const keys = (await agents.get(created.agent.id)).keys;
      expect(keys).toEqual([
        expect.objectContaining({ prefix: created.apiKeyPrefix, expiresAt: expected, revokedAt: null }),
        expect.objectContaining({ prefix: rotated.apiKeyPrefix, expiresAt: null, revokedAt: null }),
      ]);
      const event = (await auditRows(db, created.agent.id)).at(-1);
      expect(event).toMatchObject({
        type: 'agent.key_rotated',
        actor: OPERATOR,
        details: { keyPrefix: rotated.apiKeyPrefix, gracePeriodSeconds: 3600, revokeImmediately: false },
      });
    });

    it('a second rotation never extends the first one’s grace period', async () => {
      const created = await agents.create({ name: 'twice' }, ORIGIN);
      await agents.rotateKey(created.agent.id, { gracePeriodSeconds: 60, revokeImmediately: false }, ORIGIN);
      const firstEnd = new Date(clock.now().getTime() + 60_000);
      await agents.rotateKey(
        created.agent.id,
        { gracePeriodSeconds: 86_400, revokeImmediately: false },
        ORIGIN,
      );
      const keys = (await agents.get(created.agent.id)).keys;
      expect(keys[0]?.expiresAt).toEqual(firstEnd);
    });

    it('rotates with revokeImmediately: the old key is revoked now', async () => {
      const created = await agents.create({ name: 'compromised' }, ORIGIN);
      clock.advance(1000);
      const rotated = await agents.rotateKey(
        created.agent.id,
        { gracePeriodSeconds: 3600, revokeImmediately: true },
        ORIGIN,
      );
      expect(rotated.previousKeysExpireAt).toEqual(clock.now());
      const keys = (await agents.get(created.agent.id)).keys;
      expect(keys[0]).toMatchObject({ prefix: created.apiKeyPrefix, revokedAt: clock.now() });
      expect(keys[1]).toMatchObject({ prefix: rotated.apiKeyPrefix, revokedAt: null, expiresAt: null });
      expect((await auditRows(db, created.agent.id)).at(-1)).toMatchObject({
        type: 'agent.key_rotated',
        details: { gracePeriodSeconds: 0, revokeImmediately: true },
      });
    });

    it('revokes an agent and all its keys, audited; a revoked agent gets no new key', async () => {
      const created = await agents.create({ name: 'to-revoke' }, ORIGIN);
      await agents.rotateKey(created.agent.id, { gracePeriodSeconds: 600, revokeImmediately: false }, ORIGIN);
      clock.advance(1000);
      const revoked = await agents.revoke(created.agent.id, ORIGIN);
      expect(revoked).toMatchObject({ status: 'revoked', revokedAt: clock.now() });
      const got = await agents.get(created.agent.id);
      expect(got.status).toBe('revoked');
      expect(got.keys.every((k) => k.revokedAt?.getTime() === clock.now().getTime())).toBe(true);
      expect((await auditRows(db, created.agent.id)).at(-1)).toMatchObject({
        type: 'agent.revoked',
        actor: OPERATOR,
        details: { keysRevoked: 2 },
      });
      const before = await countRows(db, 'audit_events');
      const err = await appError(
        agents.rotateKey(created.agent.id, { gracePeriodSeconds: 0, revokeImmediately: false }, ORIGIN),
      );
      expect(err.code).toBe('CONFLICT');
      expect((await agents.get(created.agent.id)).keys).toHaveLength(2);
      expect(await countRows(db, 'audit_events')).toBe(before);
    });

    it('deletes an agent: gone from get and list, its history kept in the audit trail', async () => {
      const keep = await agents.create({ name: 'keep' }, ORIGIN);
      const gone = await agents.create({ name: 'gone' }, ORIGIN);
      const deleted = await agents.delete(gone.agent.id, ORIGIN);
      expect(deleted.status).toBe('deleted');
      expect((await appError(agents.get(gone.agent.id))).code).toBe('NOT_FOUND');
      const listed = (await agents.list({ limit: 200 })).map((a) => a.id);
      expect(listed).toContain(keep.agent.id);
      expect(listed).not.toContain(gone.agent.id);
      expect((await auditRows(db, gone.agent.id)).map((e) => e.type)).toEqual([
        'agent.created',
        'agent.deleted',
      ]);
      // Deleting twice is a clean NOT_FOUND with no second event.
      expect((await appError(agents.delete(gone.agent.id, ORIGIN))).code).toBe('NOT_FOUND');
      expect((await auditRows(db, gone.agent.id)).length).toBe(2);
    });

    it('tells listeners which agent changed', async () => {
      const changed: string[] = [];
      agents.onChange((id) => changed.push(id));
      const created = await agents.create({ name: 'watched' }, ORIGIN);
      await agents.update(created.agent.id, { description: 'x' }, ORIGIN);
      await agents.rotateKey(created.agent.id, { gracePeriodSeconds: 1, revokeImmediately: false }, ORIGIN);
      await agents.revoke(created.agent.id, ORIGIN);
      expect(changed).toEqual([created.agent.id, created.agent.id, created.agent.id]);
    });
  });

  describe('AuthService', () => {
    let redis: Redis;
    let clock: FakeClock;
    let agents: AgentService;
    let auth: AuthService;

    beforeAll(async () => {
      redis = createRedis(inject('redisUrl'));
      await whenReady(redis, 5000);
    });
    afterAll(() => {
      redis?.disconnect();
    });

    beforeEach(() => {
      clock = new FakeClock(START);
      agents = new AgentService(db, new AuditService(db, clock), clock);
      // A key prefix of its own, so counters never leak between tests, files or databases.
      const counters = new Counters(redis, `test:store:${randomBytes(6).toString('hex')}`);
      auth = new AuthService(db, clock, counters, 3);
      // As main.ts wires it: a changed agent drops its cached keys.
      agents.onChange((id) => auth.invalidateAgent(id));
    });

    const authError = async (key: string | undefined, ip = '192.0.2.1') =>
      appError(auth.authenticate(key, ip));

    it('turns a valid agent key into the agent principal', async () => {
      const created = await agents.create({ name: 'caller', environment: 'test' }, ORIGIN);
      const principal = await auth.authenticate(created.apiKey, '192.0.2.1');
      expect(principal).toMatchObject({
        kind: 'agent',
        environment: 'test',
        agent: { id: created.agent.id, name: 'caller', status: 'active' },
      });
    });

    it('refuses a missing, malformed or unknown key', async () => {
      expect((await authError(undefined)).code).toBe('MISSING_API_KEY');
      expect((await authError('nonsense')).code).toBe('INVALID_API_KEY');
      expect((await authError(`ak_live_${'a'.repeat(40)}`)).code).toBe('INVALID_API_KEY');
      expect((await authError(newOperatorKey())).code).toBe('INVALID_API_KEY');
    });

    it('refuses the keys of a revoked agent with EXPIRED_API_KEY, even if just used', async () => {
      const created = await agents.create({ name: 'revoked' }, ORIGIN);
      await auth.authenticate(created.apiKey, '192.0.2.1');
      await agents.revoke(created.agent.id, ORIGIN);
      const err = await authError(created.apiKey);
      expect(err.code).toBe('EXPIRED_API_KEY');
      expect(err.message).not.toContain(created.apiKey);
    });

    it('refuses the keys of a deleted agent', async () => {
      const created = await agents.create({ name: 'deleted' }, ORIGIN);
      await agents.delete(created.agent.id, ORIGIN);
      expect((await authError(created.apiKey)).code).toBe('EXPIRED_API_KEY');
    });

    it('honours the rotation grace period, then accepts only the new key', async () => {
      const created = await agents.create({ name: 'grace' }, ORIGIN);
      await auth.authenticate(created.apiKey, '192.0.2.1');
      const rotated = await agents.rotateKey(
        created.agent.id,
        { gracePeriodSeconds: 120, revokeImmediately: false },
        ORIGIN,
      );
      clock.advance(119_000);
      expect((await auth.authenticate(created.apiKey, '192.0.2.1')).kind).toBe('agent');
      expect((await auth.authenticate(rotated.apiKey, '192.0.2.1')).kind).toBe('agent');
      clock.advance(1000);
      expect((await authError(created.apiKey)).code).toBe('EXPIRED_API_KEY');
      const principal = (await auth.authenticate(rotated.apiKey, '192.0.2.1')) as Extract<
        Principal,
        { kind: 'agent' }
      >;
      expect(principal.agent.id).toBe(created.agent.id);
    });

    it('refuses the old key at once after a rotation with revokeImmediately', async () => {
      const created = await agents.create({ name: 'leaked' }, ORIGIN);
      await auth.authenticate(created.apiKey, '192.0.2.1');
      const rotated = await agents.rotateKey(
        created.agent.id,
        { gracePeriodSeconds: 3600, revokeImmediately: true },
        ORIGIN,
      );
      expect((await authError(created.apiKey)).code).toBe('EXPIRED_API_KEY');
      expect((await auth.authenticate(rotated.apiKey, '192.0.2.1')).kind).toBe('agent');
    });

    it('rate-limits an address after N failures a minute, and only that address', async () => {
      const created = await agents.create({ name: 'victim' }, ORIGIN);
      const attacker = '203.0.113.9';
      for (let i = 0; i < 3; i += 1) {
        expect((await authError(`ak_live_${randomBytes(20).toString('hex')}`, attacker)).code).toBe(
          'INVALID_API_KEY',
        );
      }
      // Even a valid key is refused from that address now.
      const limited = await authError(created.apiKey, attacker);
      expect(limited.code).toBe('RATE_LIMITED');
      const retryAfter = (limited.details as { retryAfter: number }).retryAfter;
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(60);
      expect((await authError('nonsense', attacker)).code).toBe('RATE_LIMITED');

      expect((await auth.authenticate(created.apiKey, '203.0.113.10')).kind).toBe('agent');

      clock.advance(retryAfter * 1000);
      expect((await auth.authenticate(created.apiKey, attacker)).kind).toBe('agent');
    });

    describe('key lookups', () => {
      /** The real database, with its key lookups counted; `hold` keeps the next lookup's rows back. */
      function lookupsOf(inner: Db) {
        let count = 0;
        let held: { release: () => void; done: Promise<void> } | null = null;
        const counted: Db = {
          ...inner,
          async query(sql, params) {
            const result = await inner.query(sql, params);
            if (!sql.includes('FROM api_keys')) return result;
            count += 1;
            const holding = held;
            held = null;
            if (holding) await holding.done;
            return result;
          },
        } as Db;
        return {
          db: counted,
          count: () => count,
          /** The next lookup reads its rows now but answers only when released. */
          hold() {
            let release = () => {};
            const done = new Promise<void>((r) => {
              release = r;
            });
            held = { release, done };
            return () => release();
          },
        };
      }

      it('calls in flight when the cached key runs out share one lookup', async () => {
        const created = await agents.create({ name: 'busy' }, ORIGIN);
        const lookups = lookupsOf(db);
        const counters = new Counters(redis, `test:store:${randomBytes(6).toString('hex')}`);
        const shared = new AuthService(lookups.db, clock, counters, 3);
        const burst = () =>
          Promise.all(Array.from({ length: 20 }, () => shared.authenticate(created.apiKey, '192.0.2.1')));
        for (const principal of await burst()) expect(principal).toMatchObject({ kind: 'agent' });
        expect(lookups.count()).toBe(1);
        await burst();
        expect(lookups.count()).toBe(1); // cached
        clock.advance(5000);
        for (const principal of await burst()) expect(principal).toMatchObject({ kind: 'agent' });
        expect(lookups.count()).toBe(2);
        // An unknown key is refused to every caller of its one lookup.
        const unknown = `ak_live_${randomBytes(20).toString('hex')}`;
        const refused = await Promise.all(
          Array.from({ length: 5 }, (_, i) => appError(shared.authenticate(unknown, `192.0.2.${10 + i}`))),
        );
        expect(refused.map((e) => e.code)).toEqual(Array(5).fill('INVALID_API_KEY'));
        expect(lookups.count()).toBe(3);
      });

      it('a lookup that read the key before its agent was revoked is neither kept nor joined', async () => {
        const created = await agents.create({ name: 'revoked mid-lookup' }, ORIGIN);
        const lookups = lookupsOf(db);
        const counters = new Counters(redis, `test:store:${randomBytes(6).toString('hex')}`);
        const racing = new AuthService(lookups.db, clock, counters, 3);
        agents.onChange((id) => racing.invalidateAgent(id));
        const release = lookups.hold();
        const before = racing.authenticate(created.apiKey, '192.0.2.1');
        await vi.waitFor(() => expect(lookups.count()).toBe(1)); // read, answer held back
        await agents.revoke(created.agent.id, ORIGIN);
        // Asked after the revoke while the stale lookup is still in flight: a lookup of its own.
        const after = appError(racing.authenticate(created.apiKey, '192.0.2.1'));
        expect((await after).code).toBe('EXPIRED_API_KEY');
        release();
        // The call that was in flight at the revoke gets what its lookup read, as before...
        expect((await before).kind).toBe('agent');
        // ...but that entry, answered last, did not replace the revoked one in the cache.
        expect((await appError(racing.authenticate(created.apiKey, '192.0.2.1'))).code).toBe(
          'EXPIRED_API_KEY',
        );
        expect(lookups.count()).toBe(2);
      });
    });

    it('counts failures across instances through Redis', async () => {
      const counters = new Counters(redis, `test:store:${randomBytes(6).toString('hex')}`);
      const a = new AuthService(db, clock, counters, 3);
      const b = new AuthService(db, clock, counters, 3);
      const ip = '203.0.113.50';
      await appError(a.authenticate('nonsense', ip));
      await appError(b.authenticate('nonsense', ip));
      await appError(a.authenticate('nonsense', ip));
      expect((await appError(a.authenticate('nonsense', ip))).code).toBe('RATE_LIMITED');
    });

    describe('the bootstrap operator key', () => {
      let dataDir: string;
      beforeEach(() => {
        dataDir = mkdtempSync(path.join(tmpdir(), 'aotp-store-'));
      });
      afterEach(() => {
        rmSync(dataDir, { recursive: true, force: true });
      });

      it('is generated into <data dir>/admin-token (0600), logged by path, never by value', async () => {
        const { logger, text } = memoryLogger();
        await ensureBootstrapOperatorKey(db, { dataDir }, clock, logger);
        const file = adminTokenPath(dataDir);
        expect(file).toBe(path.join(dataDir, 'admin-token'));
        expect(statSync(file).mode & 0o777).toBe(0o600);
        const key = readFileSync(file, 'utf8').trim();
        expect(key).toMatch(/^uk_[A-Za-z0-9]{32,}$/);
        expect(text()).toContain(file);
        expect(text()).not.toContain(key);
        expect(text()).not.toContain(key.slice(3, 20));
        expect(await auth.authenticate(key, '192.0.2.1')).toMatchObject({
          kind: 'operator',
          name: 'bootstrap',
        });
      });

      it('is reused on the next start, not replaced', async () => {
        await ensureBootstrapOperatorKey(db, { dataDir }, clock, memoryLogger().logger);
        const key = readFileSync(adminTokenPath(dataDir), 'utf8');
        const before = await countRows(db, 'operator_keys');
        const second = memoryLogger();
        await ensureBootstrapOperatorKey(db, { dataDir }, clock, second.logger);
        expect(readFileSync(adminTokenPath(dataDir), 'utf8')).toBe(key);
        expect(await countRows(db, 'operator_keys')).toBe(before);
        expect(second.text()).not.toContain('generated');
      });

      it('is ADMIN_TOKEN when given, and then no file is written', async () => {
        const { logger, text } = memoryLogger();
        const token = newOperatorKey();
        await ensureBootstrapOperatorKey(db, { dataDir, adminToken: token }, clock, logger);
        expect(existsSync(adminTokenPath(dataDir))).toBe(false);
        expect(await auth.authenticate(token, '192.0.2.1')).toMatchObject({ kind: 'operator' });
        expect(text()).not.toContain(token);
        const stored = await db.query<{ name: string }>(
          'SELECT name FROM operator_keys WHERE key_hash = $1',
          [sha256Hex(token)],
        );
        expect(stored.rows).toEqual([{ name: 'bootstrap' }]);
      });

      it('refuses an admin-token file that does not hold an operator key', async () => {
        writeFileSync(adminTokenPath(dataDir), 'garbage\n');
        const before = await countRows(db, 'operator_keys');
        await expect(
          ensureBootstrapOperatorKey(db, { dataDir }, clock, memoryLogger().logger),
        ).rejects.toThrow('admin-token');
        expect(await countRows(db, 'operator_keys')).toBe(before);
      });

      // Changing ADMIN_TOKEN is how an operator retires a leaked one: the old one must stop working.
      it('stops accepting the previous ADMIN_TOKEN once it is changed', async () => {
        const old = newOperatorKey();
        const next = newOperatorKey();
        await ensureBootstrapOperatorKey(db, { dataDir, adminToken: old }, clock, memoryLogger().logger);
        await ensureBootstrapOperatorKey(db, { dataDir, adminToken: next }, clock, memoryLogger().logger);
        expect(await auth.authenticate(next, '192.0.2.1')).toMatchObject({ kind: 'operator' });
        clock.advance(10_000); // past the auth cache
        const err = await appError(auth.authenticate(old, '192.0.2.2'));
        expect(['INVALID_API_KEY', 'EXPIRED_API_KEY']).toContain(err.code);
      });
    });
  });
});
