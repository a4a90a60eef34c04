import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';

const databases = process.env.TEST_DATABASE_URL ? (['pglite', 'postgres'] as const) : (['pglite'] as const);

describe.each(databases)('the built server on %s', (database) => {
  let server: ServerProcess;
  let adminToken: string;
  let cliEnv: NodeJS.ProcessEnv;
  const keysSeen: string[] = [];

  beforeAll(async () => {
    server = await startServer({ database });
    adminToken = readFileSync(path.join(server.dataDir, 'admin-token'), 'utf8').trim();
    keysSeen.push(adminToken);
    cliEnv = { AGENT_OTP_URL: server.url, AGENT_OTP_DATA_DIR: server.dataDir };
  });

  afterAll(async () => {
    await server?.stop();
  });

  const api = (
    method: string,
    url: string,
    key: string | undefined,
    body?: unknown,
    headers: Record<string, string> = {},
  ) =>
    fetch(`${server.url}${url}`, {
      method,
      headers: {
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });

  async function createAgentWithCli(name: string): Promise<{ id: string; apiKey: string }> {
    const result = await runCli(['agent:create', '--name', name, '--json'], cliEnv);
    expect(result.code, result.stderr).toBe(0);
    const agent = JSON.parse(result.stdout) as { id: string; apiKey: string };
    keysSeen.push(agent.apiKey);
    return agent;
  }

  /** An agent-authenticated call: 403 FORBIDDEN here means "authenticated, but not an operator". */
  async function agentAuthCode(key: string): Promise<string> {
    const res = await api('GET', '/api/v1/agents', key);
    const body = (await res.json()) as { error: { code: string } };
    return body.error.code;
  }

  it('answers /healthz and /readyz, and writes the admin token with mode 0600', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ checks: { database: 'ok', redis: 'ok' } });
    expect(statSync(path.join(server.dataDir, 'admin-token')).mode & 0o777).toBe(0o600);
    expect(server.output()).toContain('admin-token');
  });

  it('authenticates an agent created with the CLI, and refuses it after agent:revoke', async () => {
    const agent = await createAgentWithCli('revoke-me');
    expect(agent.apiKey).toMatch(/^ak_live_[A-Za-z0-9]{32,}$/);
    expect(await agentAuthCode(agent.apiKey)).toBe('FORBIDDEN');
    const revoked = await runCli(['agent:revoke', '--id', agent.id], cliEnv);
    expect(revoked.code, revoked.stderr).toBe(0);
    const res = await api('GET', '/api/v1/agents', agent.apiKey);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('EXPIRED_API_KEY');
  });

  it('keeps the old key working through a rotation grace period, then only the new one', async () => {
    const agent = await createAgentWithCli('rotate-me');
    // A grace period long enough for the checks below on a loaded machine (a CLI call can take
    // seconds there); the wait then ends at the expiry the server reported, not a guess.
    const rotated = await runCli(
      ['agent:rotate-key', '--id', agent.id, '--grace-period', '8', '--json'],
      cliEnv,
    );
    expect(rotated.code, rotated.stderr).toBe(0);
    const answer = JSON.parse(rotated.stdout) as { apiKey: string; previousKeysExpireAt: string };
    const newKey = answer.apiKey;
    keysSeen.push(newKey);
    expect(await agentAuthCode(agent.apiKey)).toBe('FORBIDDEN');
    expect(await agentAuthCode(newKey)).toBe('FORBIDDEN');
    const expiresAt = Date.parse(answer.previousKeysExpireAt);
    expect(expiresAt).toBeGreaterThan(Date.now());
    await new Promise((r) => setTimeout(r, expiresAt - Date.now() + 1000));
    expect(await agentAuthCode(agent.apiKey)).toBe('EXPIRED_API_KEY');
    expect(await agentAuthCode(newKey)).toBe('FORBIDDEN');
  });

  it('lists agents as a table and as JSON, and fails clearly on an unknown id or a bad key', async () => {
    await createAgentWithCli('listed');
    const listed = await runCli(['agent:list'], cliEnv);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/ID\s+NAME\s+ENVIRONMENT/);
    expect(listed.stdout).toContain('listed');
    const json = await runCli(['agent:list', '--json'], cliEnv);
    expect((JSON.parse(json.stdout) as { name: string }[]).some((a) => a.name === 'listed')).toBe(true);

    const unknown = await runCli(['agent:revoke', '--id', 'agent_doesnotexist000000000'], cliEnv);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain('NOT_FOUND');

    const badKey = await runCli(['agent:list'], { ...cliEnv, AGENT_OTP_ADMIN_TOKEN: `uk_${'x'.repeat(40)}` });
    expect(badKey.code).not.toBe(0);
    expect(badKey.stderr).toContain('INVALID_API_KEY');

    const unreachable = await runCli(['agent:list'], { ...cliEnv, AGENT_OTP_URL: 'http://127.0.0.1:9' });
    expect(unreachable.code).not.toBe(0);
    expect(unreachable.stderr).toContain('Cannot reach');
  });

  describe('bad input gets a 4xx with a stable code, never a 5xx', () => {
    const cases: [string, () => Promise<Response>, number, string][] = [
      ['malformed JSON', () => api('POST', '/api/v1/agents', adminToken, '{"name": '), 400, 'INVALID_JSON'],
      [
        'a wrong type',
        () => api('POST', '/api/v1/agents', adminToken, { name: 42 }),
        400,
        'VALIDATION_ERROR',
      ],
      [
        'an unknown field',
        () => api('POST', '/api/v1/agents', adminToken, { name: 'a', admin: true }),
        400,
        'VALIDATION_ERROR',
      ],
      [
        'a 2 MiB body',
        () =>
          api('POST', '/api/v1/agents', adminToken, JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) })),
        413,
        'PAYLOAD_TOO_LARGE',
      ],
      [
        'a prototype-poisoning body',
        () => api('POST', '/api/v1/agents', adminToken, '{"__proto__":{"x":1},"name":"a"}'),
        400,
        'INVALID_JSON',
      ],
      [
        'a NUL in a string (Postgres text cannot hold it)',
        () => api('POST', '/api/v1/agents', adminToken, { name: 'a\u0000b' }),
        400,
        'VALIDATION_ERROR',
      ],
      [
        'JSON nested 10 000 levels deep',
        () =>
          api(
            'POST',
            '/api/v1/agents',
            adminToken,
            `{"name":"a","metadata":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`,
          ),
        400,
        'VALIDATION_ERROR',
      ],
      [
        'an audit export with a NUL filter (refused before any 200)',
        () => api('GET', '/api/v1/audit/export?agent_id=%00', adminToken),
        400,
        'VALIDATION_ERROR',
      ],
      [
        'a date JavaScript holds and Postgres does not',
        () => api('GET', '/api/v1/audit?start_date=-271821-04-20', adminToken),
        400,
        'VALIDATION_ERROR',
      ],
      [
        'a path that is not UTF-8',
        () => api('GET', '/api/v1/agents/a%ED%A0%80', adminToken),
        400,
        'VALIDATION_ERROR',
      ],
      [
        'a path parameter over 100 characters',
        () => api('GET', `/api/v1/agents/${'a'.repeat(101)}`, adminToken),
        400,
        'VALIDATION_ERROR',
      ],
      ['no API key', () => api('GET', '/api/v1/agents', undefined), 401, 'MISSING_API_KEY'],
      ['a junk API key', () => api('GET', '/api/v1/agents', 'nonsense'), 401, 'INVALID_API_KEY'],
      ['an unknown route', () => api('GET', '/api/v1/nothing-here', adminToken), 404, 'NOT_FOUND'],
      ['an unknown agent id', () => api('GET', '/api/v1/agents/agent_x', adminToken), 404, 'NOT_FOUND'],
    ];
    it.each(cases)('%s', async (_name, send, status, code) => {
      const res = await send();
      expect(res.status).toBe(status);
      const body = (await res.json()) as { success: boolean; error: { code: string; requestId: string } };
      expect(body.success).toBe(false);
      expect(body.error.code).toBe(code);
      expect(body.error.requestId).toBe(res.headers.get('x-request-id'));
    });
  });

  it('serves an OpenAPI document generated from the schemas', async () => {
    const doc = (await (await fetch(`${server.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { requestBody?: unknown }>>;
    };
    expect(doc.paths['/api/v1/agents']?.post?.requestBody).toBeDefined();
    expect(Object.keys(doc.paths)).toContain('/api/v1/agents/{id}/rotate-key');
  });

  it('never writes an API key or operator key in clear to its logs', async () => {
    // Send keys in every place a careless logger might pick them up.
    for (const key of keysSeen) {
      await api('GET', '/api/v1/agents?x=1', key, undefined, { 'x-api-key': key });
    }
    const log = await server.logsSoFar();
    expect(log.length).toBeGreaterThan(0);
    for (const key of keysSeen) expect(log).not.toContain(key);
    expect(log).not.toMatch(/ak_(live|test)_[A-Za-z0-9]{20,}/);
    expect(log).not.toMatch(/uk_[A-Za-z0-9]{20,}/);
  });
});
