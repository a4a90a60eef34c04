import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';

const ROWS = 10_000;

/** Shell-quotes one argument for `script -c`. */
const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;

/**
 * Runs the CLI with a terminal on stdin, stdout and stderr (util-linux `script` allocates a pseudo
 * terminal), as a person at a shell would; returns what the terminal showed.
 */
async function runCliOnTerminal(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  const command = [process.execPath, CLI, ...args].map(quote).join(' ');
  const { stdout } = await promisify(execFile)('script', ['-qec', command, '/dev/null'], {
    env: { PATH: process.env.PATH, TERM: 'xterm', ...env },
    timeout: 60_000,
  });
  return stdout;
}

describe.runIf(process.env.TEST_DATABASE_URL)('audit:export progress on a terminal', () => {
  let server: ServerProcess;
  let env: NodeJS.ProcessEnv;
  let token: string;
  const dir = mkdtempSync(path.join(tmpdir(), 'aotp-export-progress-'));

  beforeAll(async () => {
    server = await startServer({ database: 'postgres', command: 'api' });
    token = readFileSync(path.join(server.dataDir, 'admin-token'), 'utf8').trim();
    env = { AGENT_OTP_URL: server.url, AGENT_OTP_ADMIN_TOKEN: token };
    const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await client.connect();
    try {
      await client.query(`SET search_path = ${server.schema}`);
      // Sealed-looking rows of type 'use' (the exports below filter on it, so their own
      // audit.exported events do not change what the next export holds).
      await client.query(
        `INSERT INTO audit_events (id, occurred_at, type, permission_id, agent_id, actor_type, actor, details,
           ip, user_agent, details_hash, chain_index, prev_hash, hash)
         SELECT 'evt_bulk' || g, timestamptz '2025-01-01' + g * interval '1 second', 'use', 'perm_' || (g % 50),
                'agt_bulk', 'agent', jsonb_build_object('type', 'agent', 'id', 'agt_bulk'),
                jsonb_build_object('n', g, 'note', 'a,b "c"'), '10.0.0.1', 'bench/1.0',
                md5(g::text) || md5((g + 1)::text), 10000000 + g, md5((g - 1)::text) || md5(g::text),
                md5(g::text) || md5((g * 7)::text)
           FROM generate_series(1, $1::int) AS g`,
        [ROWS],
      );
    } finally {
      await client.end();
    }
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the export answers X-Total-Count only when asked, and it is the number of rows sent', async () => {
    const get = (query: string) =>
      fetch(`${server.url}/api/v1/audit/export?format=jsonl&event_type=use${query}`, {
        headers: { authorization: `Bearer ${token}` },
      });
    const counted = await get('&count=true');
    expect(counted.status).toBe(200);
    expect(counted.headers.get('x-total-count')).toBe(String(ROWS));
    expect((await counted.text()).trimEnd().split('\n')).toHaveLength(ROWS);
    const plain = await get('');
    expect(plain.headers.get('x-total-count')).toBeNull();
    await plain.arrayBuffer();
    // The same filters apply to the count.
    const filtered = await get('&start_date=2025-01-01T00:00:10Z&end_date=2025-01-01T00:00:19Z&count=true');
    expect(filtered.headers.get('x-total-count')).toBe('10');
    expect((await filtered.text()).trimEnd().split('\n')).toHaveLength(10);
    expect((await get('&count=maybe')).status).toBe(400);
  }, 60_000);

  for (const format of ['csv', 'jsonl'] as const) {
    it(`${format}: a bar with the total on a terminal, nothing on a pipe, and the same file either way`, async () => {
      const args = ['audit:export', '--format', format, '--type', 'use', '-o'];
      const piped = path.join(dir, `piped.${format}`);
      const result = await runCli([...args, piped], env);
      expect(result.code).toBe(0);
      expect(result.stderr).toBe('');
      expect(result.stdout).toBe('');

      const onTerminal = path.join(dir, `terminal.${format}`);
      const screen = await runCliOnTerminal([...args, onTerminal], env);
      // The last state of the line, as the terminal shows it after the carriage returns.
      const finalLine =
        screen
          .split(/\r\n|\n/)
          .filter(Boolean)
          .at(-1)
          ?.split('\r')
          .at(-1) ?? '';
      expect(finalLine.replace('\x1b[K', '')).toMatch(
        /^\[#{20}\] 100% 10 000\/10 000 rows · \d+ (s|min \d\d s)$/,
      );

      const expected = readFileSync(piped);
      expect(readFileSync(onTerminal).equals(expected)).toBe(true);
      const lines = expected
        .toString('utf8')
        .trimEnd()
        .split(format === 'csv' ? '\r\n' : '\n');
      expect(lines).toHaveLength(format === 'csv' ? ROWS + 1 : ROWS);
    }, 60_000);
  }

  it('to a pipe: the rows on stdout and nothing on stderr', async () => {
    const result = await runCli(['audit:export', '--type', 'use', '--until', '2025-01-01T00:00:03Z'], env);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(
      result.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l).id),
    ).toEqual(['evt_bulk1', 'evt_bulk2', 'evt_bulk3']);
  });
});
