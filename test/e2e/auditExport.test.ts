import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { get, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';

const ROWS = 1_000_000;
/** One event in 100 000 is this agent's: a real agent, since filters name agents that exist. */
const RARE_AGENT_ID = `agent_${'rare'.padEnd(22, '0')}`;

/** The process's peak resident set size in MB (VmHWM), from /proc. */
function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
  return kb / 1024;
}

describe.runIf(process.env.TEST_DATABASE_URL)(
  'audit export of 1 000 000 events from the built server',
  () => {
    let server: ServerProcess;
    let token: string;
    let client: pg.Client;
    const dir = mkdtempSync(path.join(tmpdir(), 'aotp-export-'));

    beforeAll(async () => {
      // Default V8 settings: no heap cap, so the figure is what `npm start` would use.
      server = await startServer({ database: 'postgres', command: 'api' });
      token = readFileSync(path.join(server.dataDir, 'admin-token'), 'utf8').trim();
      client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
      await client.connect();
      await client.query(`SET search_path = ${server.schema}`);
      const ctx = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
        const c = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
        await c.connect();
        try {
          await c.query(`SET search_path = ${server.schema}`);
          return await fn(c);
        } finally {
          await c.end();
        }
      };
      await client.query(`INSERT INTO agents (id, name, environment) VALUES ($1, 'rare-bot', 'live')`, [
        RARE_AGENT_ID,
      ]);
      // Valid, sealed rows (chain indexes far above the server's own), one statement.
      const insert = (from: number, to: number) =>
        ctx(async (c) =>
          c.query(
            `INSERT INTO audit_events (id, occurred_at, type, permission_id, agent_id, actor_type, actor, details,
         ip, user_agent, details_hash, chain_index, prev_hash, hash)
       SELECT 'evt_bulk' || g, timestamptz '2025-01-01' + g * interval '1 second', 'use',
              'perm_' || (g % 5000), CASE WHEN g % 100000 = 0 THEN $3 ELSE 'agt_bulk' END,
              'agent', jsonb_build_object('type', 'agent', 'id', 'agt_bulk', 'name', 'bulk agent'),
              jsonb_build_object('action', 'email.send', 'n', g, 'note', '=HYPERLINK("x")', 'to', 'a,b "c"'),
              '10.0.0.1', 'bench/1.0', md5(g::text) || md5((g + 1)::text), 10000000 + g,
              md5((g - 1)::text) || md5(g::text), md5(g::text) || md5((g * 7)::text)
         FROM generate_series($1::int, $2::int) AS g`,
            [from, to, RARE_AGENT_ID],
          ),
        );
      // Two connections insert the two halves at once.
      await Promise.all([insert(1, ROWS / 2), insert(ROWS / 2 + 1, ROWS)]);
    }, 120_000);

    afterAll(async () => {
      await client?.end();
      await server?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    /** Exports everything as JSON lines through `target` and returns what the server used. */
    async function exportAll(target: ServerProcess) {
      const pid = target.pid as number;
      const before = peakRssMb(pid);
      const started = Date.now();
      // node:http rather than fetch: a plain socket reader, as curl or a SIEM collector would be.
      const response = await new Promise<IncomingMessage>((resolve, reject) =>
        get(
          `${target.url}/api/v1/audit/export?format=jsonl`,
          { headers: { authorization: `Bearer ${token}` } },
          resolve,
        ).on('error', reject),
      );
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toContain('application/x-ndjson');
      let lines = 0;
      let bytes = 0;
      let first = '';
      let tail: Buffer = Buffer.alloc(0);
      for await (const chunk of response as AsyncIterable<Buffer>) {
        bytes += chunk.length;
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines += 1;
        if (first.length < 4000) first += chunk.subarray(0, 4000).toString('utf8');
        tail = chunk;
      }
      const seconds = (Date.now() - started) / 1000;
      const peak = peakRssMb(pid);
      const lastLine = tail.toString('utf8').trimEnd().split('\n').pop() ?? '';
      const firstBulk =
        first
          .split('\n')
          .slice(0, -1)
          .find((l) => l.includes('"evt_bulk')) ?? '{}';
      expect(JSON.parse(firstBulk).details).toMatchObject({ action: 'email.send', to: 'a,b "c"' });
      expect(JSON.parse(lastLine).id).toMatch(/^evt_/);
      return { lines, bytes, seconds, peak, before };
    }

    it('streams every row as JSON lines in constant memory (server peak RSS < 200 MB)', async () => {
      const result = await exportAll(server);
      console.log(
        `audit export: ${result.lines} lines, ${(result.bytes / 1e6).toFixed(0)} MB in ${result.seconds.toFixed(1)} s; ` +
          `server peak RSS (VmHWM) ${result.peak.toFixed(1)} MB (${result.before.toFixed(1)} MB before the export)`,
      );
      expect(result.lines).toBeGreaterThanOrEqual(ROWS);
      expect(result.peak).toBeLessThan(200);
    }, 120_000);

    it('filters and writes CSV with quoting and formula guards, through the CLI to a file', async () => {
      const file = path.join(dir, 'rare.csv');
      const result = await runCli(
        [
          'audit:export',
          '--format',
          'csv',
          '--agent',
          'rare-bot',
          '--since',
          '2025-01-01T00:00:00Z',
          '-o',
          file,
        ],
        { AGENT_OTP_URL: server.url, AGENT_OTP_ADMIN_TOKEN: token },
      );
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      const text = readFileSync(file, 'utf8');
      const lines = text.trimEnd().split('\r\n');
      expect(lines[0]).toBe(
        'seq,id,occurred_at,type,actor_type,actor,agent_id,permission_id,details,ip,user_agent,details_hash,chain_index,prev_hash,hash,redacted_at',
      );
      expect(lines).toHaveLength(1 + ROWS / 100_000);
      // details is one JSON cell; quotes doubled; the = inside JSON is not at a cell start.
      const detailsCell = lines[1]?.split(',perm_0,')[1] ?? '';
      expect(detailsCell).toMatch(/^"\{""n"": \d+, ""to"": ""a,b \\""c\\"""", ""note"": ""=HYPERLINK/);
      // A cell that starts with a formula character is neutralised with a leading quote.
      expect(lines.slice(1).every((l) => l.split(',')[0]?.match(/^\d+$/))).toBe(true);
    }, 60_000);

    it('rejects agents and bad filters', async () => {
      const bad = await fetch(`${server.url}/api/v1/audit/export?format=xml`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(bad.status).toBe(400);
      const anonymous = await fetch(`${server.url}/api/v1/audit/export`);
      expect(anonymous.status).toBe(401);
    });
  },
);
