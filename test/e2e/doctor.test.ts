import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startFakeDiscord } from '../fakes/discordApi.js';
import { startFakeSlack } from '../fakes/slackApi.js';
import { apiClient } from '../helpers/api.js';
import { startRedis, stopRedis } from '../helpers/privateRedis.js';
import { CLI, type ServerProcess, startServer } from '../helpers/serverProcess.js';

/** A TCP port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const dir = mkdtempSync(path.join(tmpdir(), 'aotp-doctor-'));
const policies = path.join(dir, 'policies.yaml');
writeFileSync(
  policies,
  `policies:
  - name: deny destructive
    action: deny
    priority: 100
    conditions:
      action: { in: ["exec"] }
  - name: deny deletes
    action: deny
    priority: 100
    conditions:
      action: "*.delete"
`,
);

const STRONG_TOKEN = 'uk_h7Kq2Vx9Lm4Rt8Wz1Np5Bc3Fd6Gj0Sy2Ue7Ao9Ik4';

interface Row {
  check: string;
  status: string;
  detail: string;
}

/**
 * `agent-otp doctor` in an empty working directory (so no checkout `.env` or `.agent-otp` leaks
 * in), with only the environment given: the table, its rows parsed, and the exit code.
 */
async function doctor(env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; rows: Row[] }> {
  const cwd = mkdtempSync(path.join(dir, 'cwd-'));
  const run = (args: string[]) =>
    new Promise<{ code: number; stdout: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, ...args], {
        cwd,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.once('exit', (code) => resolve({ code: code ?? 1, stdout }));
    });
  // One after the other: two doctors would open an embedded PGlite at once.
  const table = await run(['doctor']);
  const json = await run(['doctor', '--json']);
  expect(json.code).toBe(table.code);
  return { code: table.code, stdout: table.stdout, rows: JSON.parse(json.stdout) as Row[] };
}

const row = (rows: Row[], check: string) => rows.find((r) => r.check === check);

/** The summary line agrees with the rows it counts. */
function expectSummary(stdout: string, rows: Row[]): void {
  const n = (s: string) => rows.filter((r) => r.status === s).length;
  expect(stdout).toContain(
    `${n('pass')} passed, ${n('warn')} warnings, ${n('fail')} failed, ${n('skip')} skipped`,
  );
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('agent-otp doctor: all up on Postgres, and no operator key', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServer({ database: 'postgres', env: { ADMIN_TOKEN: STRONG_TOKEN } });
  }, 120_000);
  afterAll(() => server?.stop());

  it('passes every row against the running server, its Postgres and its Redis', async () => {
    const { code, stdout, rows } = await doctor({
      AGENT_OTP_URL: server.url,
      AGENT_OTP_ADMIN_TOKEN: STRONG_TOKEN,
      ADMIN_TOKEN: STRONG_TOKEN,
      DATABASE_URL: server.env.DATABASE_URL,
      REDIS_URL: server.env.REDIS_URL,
      SLACK_APPROVERS: 'U01ABCDEF',
      SLACK_BOT_TOKEN: undefined,
      POLICIES_FILE: policies,
    });
    expect(row(rows, 'server')).toMatchObject({
      status: 'pass',
      detail: `ready at ${server.url} (database ok, redis ok)`,
    });
    expect(row(rows, 'operator key')).toMatchObject({ status: 'pass', detail: `accepted by ${server.url}` });
    expect(row(rows, 'agent names')).toEqual({ check: 'agent names', status: 'pass', detail: 'unique' });
    // Read from the server (which has no deny policies), not from POLICIES_FILE.
    expect(row(rows, 'deny *.delete')).toMatchObject({ status: 'warn' });
    expect(row(rows, 'deny *.delete')?.detail).toContain(`server ${server.url}`);
    expect(row(rows, 'database')?.status).toBe('pass');
    expect(row(rows, 'database')?.detail).toMatch(/^PostgreSQL \d+(\.\d+)* at postgres:\/\//);
    expect(row(rows, 'migrations')).toMatchObject({ status: 'pass' });
    expect(row(rows, 'redis')).toMatchObject({
      status: 'pass',
      detail: expect.stringMatching(new RegExp(`^Redis [\\d.]+ at ${server.env.REDIS_URL}$`)),
    });
    expect(row(rows, 'redis maxmemory-policy')).toMatchObject({ status: 'pass', detail: 'noeviction' });
    // The test Redis runs without --appendonly and with --save "".
    expect(row(rows, 'redis persistence')).toMatchObject({ status: 'warn' });
    expect(rows.filter((r) => r.status === 'fail')).toEqual([]);
    expectSummary(stdout, rows);
    expect(stdout).toMatch(/ 0 failed, 0 skipped\n/);
    expect(code).toBe(0);
  });

  it('warns about agents that still share a name from before names were unique', async () => {
    const api = apiClient(server.url, STRONG_TOKEN);
    const older = await api('POST', '/api/v1/agents', { name: 'ledger-bot' });
    const newer = await api('POST', '/api/v1/agents', { name: 'ledger-bot-2' });
    expect(newer.status).toBe(201);
    const newerId = String(newer.body.data.id);
    expect(older.status).toBe(201);
    // What migration 012 leaves for duplicates created before it: the newer one flagged.
    const db = new pg.Client({ connectionString: server.env.DATABASE_URL });
    await db.connect();
    await db.query("UPDATE agents SET name = 'Ledger-Bot', name_duplicate = true WHERE id = $1", [newerId]);
    await db.end();

    const { rows } = await doctor({
      AGENT_OTP_URL: server.url,
      AGENT_OTP_ADMIN_TOKEN: STRONG_TOKEN,
      DATABASE_URL: server.env.DATABASE_URL,
      REDIS_URL: server.env.REDIS_URL,
    });
    expect(row(rows, 'agent names')?.status).toBe('warn');
    expect(row(rows, 'agent names')?.detail).toContain(`Ledger-Bot (${newerId})`);
  });

  it('without an operator key says how to give one, and still checks the server', async () => {
    const { stdout, rows } = await doctor({
      AGENT_OTP_URL: server.url,
      DATABASE_URL: server.env.DATABASE_URL,
      REDIS_URL: server.env.REDIS_URL,
    });
    expect(row(rows, 'server')?.status).toBe('pass');
    expect(row(rows, 'operator key')).toEqual({
      check: 'operator key',
      status: 'warn',
      detail: "no operator key: set AGENT_OTP_ADMIN_TOKEN or run in the server's directory",
    });
    expect(stdout).not.toMatch(/not reachable/);
    expect(row(rows, 'policies')?.status).toBe('skip');
    expectSummary(stdout, rows);
  });

  it('fails a wrong operator key, naming the server’s code', async () => {
    const { code, rows } = await doctor({
      AGENT_OTP_URL: server.url,
      AGENT_OTP_ADMIN_TOKEN: `uk_${'x'.repeat(40)}`,
      DATABASE_URL: server.env.DATABASE_URL,
      REDIS_URL: server.env.REDIS_URL,
    });
    expect(row(rows, 'operator key')?.status).toBe('fail');
    expect(row(rows, 'operator key')?.detail).toMatch(/^rejected by .* \(INVALID_API_KEY\)/);
    expect(code).toBe(1);
  });
});

describe('agent-otp doctor: embedded PGlite', () => {
  const dataDir = mkdtempSync(path.join(dir, 'data-'));
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServer({ dataDir });
  }, 120_000);
  afterAll(() => server?.stop());

  it('leaves the database to the server that has it open, then opens it once the server is gone', async () => {
    // The operator key comes from the data dir the server wrote it to.
    const env = { AGENT_OTP_URL: server.url, AGENT_OTP_DATA_DIR: dataDir, REDIS_URL: server.env.REDIS_URL };
    const running = await doctor(env);
    expect(row(running.rows, 'server')?.status).toBe('pass');
    expect(row(running.rows, 'operator key')?.status).toBe('pass');
    expect(row(running.rows, 'database')).toMatchObject({
      status: 'skip',
      detail: expect.stringContaining('is open in another process (a running server'),
    });
    expectSummary(running.stdout, running.rows);

    await server.stop();
    const stopped = await doctor(env);
    expect(row(stopped.rows, 'server')).toMatchObject({
      status: 'fail',
      detail: `server not reachable at ${server.url}: ECONNREFUSED`,
    });
    expect(row(stopped.rows, 'operator key')?.status).toBe('skip');
    expect(row(stopped.rows, 'database')?.detail).toMatch(/^embedded PGlite \(PostgreSQL [\d.]+\) at /);
    expect(row(stopped.rows, 'database')?.status).toBe('pass');
    expect(row(stopped.rows, 'migrations')?.status).toBe('pass');
    expectSummary(stopped.stdout, stopped.rows);
    expect(stopped.code).toBe(1);
  }, 90_000);
});

describe('agent-otp doctor: Redis', () => {
  it('names the refused address (password masked), fails, and counts it', async () => {
    const port = await closedPort();
    const { code, stdout, rows } = await doctor({
      AGENT_OTP_URL: `http://127.0.0.1:${await closedPort()}`,
      REDIS_URL: `redis://:hunter2hunter2@127.0.0.1:${port}`,
      POLICIES_FILE: policies,
    });
    expect(row(rows, 'redis')).toEqual({
      check: 'redis',
      status: 'fail',
      detail: `cannot connect to redis://:***@127.0.0.1:${port}: ECONNREFUSED`,
    });
    expect(stdout).not.toContain('hunter2');
    expect(stdout).not.toContain('Connection is closed');
    expect(row(rows, 'server')?.detail).toMatch(
      /^server not reachable at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED$/,
    );
    // POLICIES_FILE stands in for the unreachable server's policies.
    expect(row(rows, 'deny *.delete')).toMatchObject({ status: 'pass' });
    expect(row(rows, 'deny payment.*')).toMatchObject({ status: 'warn' });
    expectSummary(stdout, rows);
    expect(stdout).toMatch(/ 2 failed, /);
    expect(code).toBe(1);
  });

  it('fails a Redis that may evict keys', async () => {
    const port = await closedPort();
    const redisDir = mkdtempSync(path.join(dir, 'redis-'));
    const child = await startRedis(port, redisDir);
    const client = new Redis(port, '127.0.0.1');
    try {
      await client.config('SET', 'maxmemory-policy', 'allkeys-lru');
      await client.config('SET', 'appendonly', 'yes');
      const { code, rows } = await doctor({
        AGENT_OTP_URL: `http://127.0.0.1:${await closedPort()}`,
        REDIS_URL: `redis://127.0.0.1:${port}`,
      });
      expect(row(rows, 'redis')?.status).toBe('pass');
      expect(row(rows, 'redis maxmemory-policy')).toMatchObject({
        status: 'fail',
        detail: expect.stringMatching(/^allkeys-lru: BullMQ needs noeviction/),
      });
      expect(row(rows, 'redis persistence')).toMatchObject({ status: 'pass', detail: 'AOF' });
      expect(code).toBe(1);
    } finally {
      client.disconnect();
      await stopRedis(child);
    }
  });
});

describe('agent-otp doctor: configuration', () => {
  const env = (extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({
    AGENT_OTP_URL: 'http://127.0.0.1:9',
    REDIS_URL: inject('redisUrl'),
    ...extra,
  });

  it('fails a weak or short ADMIN_TOKEN and warns on a plain-HTTP PUBLIC_URL', async () => {
    const weak = await doctor(env({ ADMIN_TOKEN: `uk_${'a'.repeat(40)}` }));
    expect(row(weak.rows, 'ADMIN_TOKEN')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('low entropy'),
    });
    const short = await doctor(
      env({ ADMIN_TOKEN: 'uk_Zx8Qp2Lm9Rt4Vw7Yb1Nc3Df6Hj5Ks0P', PUBLIC_URL: 'http://otp.example.com' }),
    );
    expect(row(short.rows, 'ADMIN_TOKEN')?.status).toBe('fail');
    expect(row(short.rows, 'PUBLIC_URL')?.status).toBe('warn');
  });

  it('warns that nothing can decide require_approval requests, as the server logs at start', async () => {
    const { rows } = await doctor(env({ APPROVAL_TIMEOUT_SECONDS: '600' }));
    expect(row(rows, 'approvers')?.status).toBe('warn');
    expect(row(rows, 'approvers')?.detail).toContain(
      'no approval channel (Slack or Discord) is configured, so nobody is asked: they wait 600 s',
    );
  });

  it('reaches Slack (auth.test) and Discord (/users/@me), and fails on a rejected token', async () => {
    const slack = await startFakeSlack();
    const discord = await startFakeDiscord();
    try {
      const chat = {
        SLACK_BOT_TOKEN: slack.botToken,
        SLACK_SIGNING_SECRET: 'k3J9x2LmQ8vR4tW7yB1nC5dF6gH0',
        SLACK_API_URL: slack.apiUrl,
        DISCORD_BOT_TOKEN: discord.botToken,
        DISCORD_API_URL: discord.apiUrl,
      };
      const ok = await doctor(env(chat));
      expect(row(ok.rows, 'slack')).toMatchObject({ status: 'pass' });
      expect(row(ok.rows, 'discord')?.status).toBe('pass');
      const bad = await doctor(
        env({ ...chat, SLACK_BOT_TOKEN: 'xoxb-wrong', DISCORD_BOT_TOKEN: 'wrong-token-wrong-token-wrong' }),
      );
      expect(row(bad.rows, 'slack')?.status).toBe('fail');
      expect(row(bad.rows, 'discord')?.status).toBe('fail');
      expect(bad.code).toBe(1);
    } finally {
      await slack.close();
      await discord.close();
    }
  }, 60_000);
});
