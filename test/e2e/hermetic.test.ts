import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { apiClient } from '../helpers/api.js';
import { runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';
import { freePort } from '../setup/redis.js';

const operatorKey = () => `uk_${randomBytes(24).toString('base64url')}`;
const HOSTILE_TOKEN = operatorKey();

/** Values that would each change what a test sees, were they read. */
const HOSTILE = {
  WEBHOOK_ALLOW_PRIVATE: 'true',
  PORT: '1',
  HOST: '0.0.0.0',
  REDIS_URL: 'redis://127.0.0.1:1',
  DATABASE_URL: 'postgres://nope@127.0.0.1:1/x',
  LOG_LEVEL: 'silent',
  ADMIN_TOKEN: HOSTILE_TOKEN,
  AGENT_OTP_URL: 'http://127.0.0.1:1',
  AGENT_OTP_ADMIN_TOKEN: HOSTILE_TOKEN,
  DEFAULT_POLICY_ACTION: 'deny',
};
const dotEnv = (vars: Record<string, string>) =>
  Object.entries(vars)
    .map(([k, v]) => `${k}=${v}\n`)
    .join('');

describe('a developer’s .env and shell variables', () => {
  const saved = { cwd: process.cwd(), env: { ...process.env } };
  const dir = mkdtempSync(path.join(tmpdir(), 'aotp-hostile-'));
  let server: ServerProcess;

  beforeAll(async () => {
    // The test runs in a directory with a hostile .env, under a hostile shell environment.
    writeFileSync(path.join(dir, '.env'), dotEnv(HOSTILE));
    Object.assign(process.env, HOSTILE);
    process.chdir(dir);
    server = await startServer({ env: { DEFAULT_POLICY_ACTION: 'auto_approve' } });
  });

  afterAll(async () => {
    process.chdir(saved.cwd);
    process.env = saved.env;
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('do not reach the servers and CLI processes the tests start', async () => {
    // Started at all: on its embedded database, logging, on a port of its own.
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.url).not.toBe('http://127.0.0.1:1');
    // No ADMIN_TOKEN: it generated a key into its data dir, and the hostile one is refused.
    const adminToken = readFileSync(path.join(server.dataDir, 'admin-token'), 'utf8').trim();
    expect((await apiClient(server.url, HOSTILE_TOKEN)('GET', '/api/v1/agents')).status).toBe(401);
    const operator = apiClient(server.url, adminToken);
    const created = await operator<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'hermetic' });
    expect(created.status).toBe(201);
    // WEBHOOK_ALLOW_PRIVATE stays off: a loopback webhook is refused.
    const agent = apiClient(server.url, created.body.data.apiKey);
    const hook = await agent('POST', '/api/v1/permissions/request', {
      action: 'file.read',
      webhookUrl: 'http://127.0.0.1:8080/hook',
    });
    expect(hook.status).toBe(400);
    expect(hook.body.error.code).toBe('VALIDATION_ERROR');
    // The test's own DEFAULT_POLICY_ACTION, not the .env's.
    const asked = await agent<{ status: string }>('POST', '/api/v1/permissions/request', {
      action: 'file.read',
    });
    expect(asked.body.data.status).toBe('approved');

    // The CLI uses the URL and data dir the test gives it, not AGENT_OTP_URL/AGENT_OTP_ADMIN_TOKEN.
    const cli = await runCli(['agent:list', '--json'], {
      AGENT_OTP_URL: server.url,
      AGENT_OTP_DATA_DIR: server.dataDir,
    });
    expect(cli.stderr).toBe('');
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.stdout)).toEqual([expect.objectContaining({ name: 'hermetic' })]);
  });
});

describe('the CLI and the server share one configuration', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'aotp-shared-env-'));
  const adminToken = operatorKey();
  let port: number;
  let server: ServerProcess;

  beforeAll(async () => {
    port = await freePort();
    writeFileSync(
      path.join(dir, '.env'),
      dotEnv({ PORT: String(port), HOST: '0.0.0.0', ADMIN_TOKEN: adminToken, REDIS_URL: inject('redisUrl') }),
    );
    // As `npm start` in that directory: everything but the database comes from its .env.
    server = await startServer({
      cwd: dir,
      database: process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite',
      env: { PORT: undefined, HOST: undefined, REDIS_URL: undefined },
    });
    const created = await apiClient(`http://127.0.0.1:${port}`, adminToken)('POST', '/api/v1/agents', {
      name: 'from-env',
    });
    expect(created.status).toBe(201);
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds the server from PORT and HOST and uses ADMIN_TOKEN, from the same .env', async () => {
    expect(new URL(server.url).port).toBe(String(port));
    const listed = await runCli(['agent:list'], {}, { cwd: dir });
    expect(listed.stderr).toBe('');
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('from-env');
  });

  it('takes --url and --token over it, before or after the command', async () => {
    const closed = await freePort();
    const away = await runCli(['agent:list', '--url', `http://127.0.0.1:${closed}`], {}, { cwd: dir });
    expect(away.code).toBe(1);
    expect(away.stderr).toContain(
      `Cannot reach the Agent OTP server at http://127.0.0.1:${closed} (from --url)`,
    );

    const wrongKey = await runCli(['--token', operatorKey(), 'agent:list'], {}, { cwd: dir });
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toContain('INVALID_API_KEY');
    expect(wrongKey.stderr).toContain('(check --token)');

    // From anywhere, with nothing in the environment.
    const flags = ['--url', `http://127.0.0.1:${port}`, '--token', adminToken];
    const anywhere = await runCli(['agent:list', '--json', ...flags], {});
    expect(anywhere.code).toBe(0);
    expect(JSON.parse(anywhere.stdout)).toEqual([expect.objectContaining({ name: 'from-env' })]);
  });

  it('says where an unreachable address came from', async () => {
    const closed = await freePort();
    const other = mkdtempSync(path.join(tmpdir(), 'aotp-closed-env-'));
    try {
      writeFileSync(path.join(other, '.env'), dotEnv({ PORT: String(closed), ADMIN_TOKEN: adminToken }));
      const result = await runCli(['agent:list'], {}, { cwd: other });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `Cannot reach the Agent OTP server at http://127.0.0.1:${closed} (from PORT in .env) (ECONNREFUSED)`,
      );
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});
