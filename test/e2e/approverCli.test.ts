import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, apiClient } from '../helpers/api.js';
import { runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';

const ADMIN = `uk_${randomBytes(24).toString('hex')}`;

interface ApproverJson {
  id: string;
  name: string;
  email: string | null;
  status: string;
  identities: string[];
}

/**
 * Approver accounts through the operator CLI against the built server: the whole lifecycle, the
 * refusals an operator meets, and that the running server counts persons by the accounts at once
 * (the self-approval ban of a stored person holds, and lifts when the account is deleted).
 */
describe('approver accounts from the CLI', () => {
  let server: ServerProcess;
  let operator: Api;
  let agent: Api;
  let cli: (args: string[]) => ReturnType<typeof runCli>;

  beforeAll(async () => {
    server = await startServer({
      database: process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite',
      env: { ADMIN_TOKEN: ADMIN },
    });
    operator = apiClient(server.url, ADMIN);
    cli = (args) => runCli(args, { AGENT_OTP_URL: server.url, AGENT_OTP_ADMIN_TOKEN: ADMIN });
    const policies = await operator('PUT', '/api/v1/policies', {
      policies: [
        { name: 'deploys-need-a-human', conditions: { action: 'deploy.*' }, action: 'require_approval' },
      ],
    });
    expect(policies.status).toBe(200);
    const created = await operator<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'deployer' });
    agent = apiClient(server.url, created.body.data.apiKey);
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
  });

  it('create, list, get, update, disable, enable and delete an approver', async () => {
    const created = await cli([
      'approver:create',
      '--name',
      'alice',
      '--email',
      'alice@example.com',
      '--slack',
      'U0ALICE',
      '--discord',
      '111111111111111111',
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/identities\s+discord:111111111111111111 slack:U0ALICE/);
    const id = /^id\s+(apr_\w+)$/m.exec(created.stdout)?.[1];
    expect(id).toBeDefined();

    const listed = await cli(['approver:list']);
    expect(listed.code, listed.stderr).toBe(0);
    const [header, ...rows] = listed.stdout.trim().split('\n');
    expect(header?.split(/\s+/)).toEqual(['ID', 'NAME', 'STATUS', 'IDENTITIES', 'EMAIL']);
    expect(rows.find((r) => r.startsWith(id as string))).toMatch(
      /alice\s+active\s+discord:111111111111111111 slack:U0ALICE\s+alice@example\.com/,
    );

    const got = JSON.parse((await cli(['approver:get', 'ALICE', '--json'])).stdout) as ApproverJson;
    expect(got).toMatchObject({ id, name: 'alice', status: 'active' });

    const updated = await cli([
      'approver:update',
      'alice',
      '--add',
      'slack:U0ALICE2',
      '--remove',
      'discord:111111111111111111',
      '--clear-email',
      '--json',
    ]);
    expect(updated.code, updated.stderr).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({
      email: null,
      identities: ['slack:U0ALICE', 'slack:U0ALICE2'],
    });
    const nothing = await cli(['approver:update', 'alice']);
    expect([nothing.code, nothing.stderr]).toEqual([1, expect.stringContaining('Nothing to change')]);

    expect((await cli(['approver:disable', 'alice'])).stdout).toContain(
      `Disabled approver alice (${id}, disabled).`,
    );
    expect((await cli(['approver:enable', id as string])).stdout).toContain(
      `Enabled approver alice (${id}).`,
    );

    // Deleting asks first; a script must say --yes.
    const unconfirmed = await cli(['approver:delete', 'alice']);
    expect(unconfirmed.code).not.toBe(0);
    expect(unconfirmed.stderr).toContain('CONFIRMATION_REQUIRED');
    expect((await cli(['approver:get', 'alice'])).code).toBe(0);
    const deleted = await cli(['approver:delete', 'alice', '--yes']);
    expect(deleted.code, deleted.stderr).toBe(0);
    const gone = await cli(['approver:get', 'alice']);
    expect([gone.code, gone.stderr]).toEqual([1, expect.stringContaining('NOT_FOUND')]);

    const audit = await operator<{ events: { type: string }[] }>('GET', '/api/v1/audit?limit=200');
    const types = audit.body.data.events.map((e) => e.type).filter((t) => t.startsWith('approver.'));
    expect(types.sort()).toEqual(
      [
        'approver.created',
        'approver.updated',
        'approver.disabled',
        'approver.enabled',
        'approver.deleted',
      ].sort(),
    );
  });

  it('a taken identity, a taken name and a malformed identity are refused with their codes', async () => {
    expect((await cli(['approver:create', '--name', 'bob', '--slack', 'U0BOB'])).code).toBe(0);
    const sameIdentity = await cli(['approver:create', '--name', 'bobby', '--identity', 'slack:U0BOB']);
    expect([sameIdentity.code, sameIdentity.stderr]).toEqual([
      1,
      expect.stringContaining('APPROVER_IDENTITY_TAKEN'),
    ]);
    expect(sameIdentity.stderr).toContain('"bob"');
    const sameName = await cli(['approver:create', '--name', 'BOB']);
    expect([sameName.code, sameName.stderr]).toEqual([1, expect.stringContaining('APPROVER_NAME_TAKEN')]);
    const malformed = await cli(['approver:create', '--name', 'dave', '--slack', 'dave']);
    expect(malformed.stderr).toContain('VALIDATION_ERROR');
    expect(malformed.stderr).toContain('expected slack:U…/W…, discord:<user id> or operator:opk_…');
  });

  it('the running server counts by the accounts at once: a stored person may not approve for themself', async () => {
    // The admin key is an identity too (operator:opk_…): link it to a person.
    const events = await operator<{ events: { type: string; actor: { id: string } }[] }>(
      'GET',
      '/api/v1/audit?event_type=agent.created&limit=1',
    );
    const operatorKeyId = events.body.data.events[0]?.actor.id as string;
    expect(operatorKeyId).toMatch(/^opk_/);
    const linked = await cli([
      'approver:create',
      '--name',
      'olga',
      '--operator',
      operatorKeyId,
      '--slack',
      'U0OLGA',
    ]);
    expect(linked.code, linked.stderr).toBe(0);

    const request = await agent<{ id: string }>('POST', '/api/v1/permissions/request', {
      action: 'deploy.production',
      context: { user_id: 'U0OLGA' },
    });
    expect(request.status).toBe(202);
    const id = request.body.data.id;
    const refused = await cli(['approve', id, '--yes']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('FORBIDDEN');

    expect((await cli(['approver:delete', 'olga', '--yes'])).code).toBe(0);
    const approved = await cli(['approve', id, '--yes']);
    expect(approved.code, approved.stderr).toBe(0);
    expect((await operator<{ status: string }>('GET', `/api/v1/permissions/${id}`)).body.data.status).toBe(
      'approved',
    );
  });
});

/**
 * Two API instances on one database and one Redis: an account created through one is counted
 * by the other as soon as the `approvers-changed` message arrives, without a restart.
 */
describe.runIf(process.env.TEST_DATABASE_URL)('approver accounts across instances', () => {
  let first: ServerProcess;
  let second: ServerProcess;

  beforeAll(async () => {
    const env = {
      ADMIN_TOKEN: ADMIN,
      LOG_LEVEL: 'debug',
      REDIS_KEY_PREFIX: `ta${randomBytes(4).toString('hex')}`,
    };
    first = await startServer({ database: 'postgres', command: 'api', env });
    second = await startServer({ database: 'postgres', command: 'api', env, schema: first.schema });
  }, 180_000);

  afterAll(async () => {
    await second?.stop();
    await first?.stop();
  });

  it('the other instance reloads on approvers-changed and applies the account', async () => {
    const operator = apiClient(first.url, ADMIN);
    const deployer = await operator<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'deployer-2' });
    expect(
      (
        await operator('PUT', '/api/v1/policies', {
          policies: [{ name: 'deploys', conditions: { action: 'deploy.*' }, action: 'require_approval' }],
        })
      ).status,
    ).toBe(200);
    const created = await operator<{ events: { actor: { id: string } }[] }>(
      'GET',
      '/api/v1/audit?event_type=agent.created&limit=1',
    );
    const operatorKeyId = created.body.data.events[0]?.actor.id as string;
    const loads = () =>
      second
        .output()
        .split('\n')
        .filter((l) => l.includes('approver accounts loaded')).length;
    await second.logsSoFar();
    const before = loads();

    const made = await runCli(['approver:create', '--name', 'olga', '--operator', operatorKeyId], {
      AGENT_OTP_URL: first.url,
      AGENT_OTP_ADMIN_TOKEN: ADMIN,
    });
    expect(made.code, made.stderr).toBe(0);
    await expect.poll(loads, { timeout: 5000, interval: 50 }).toBeGreaterThan(before);

    // The request waits on the second instance, whose operator is now the stored person olga.
    const agent = apiClient(second.url, deployer.body.data.apiKey);
    let id = '';
    await expect
      .poll(
        async () => {
          const asked = await agent<{ id: string }>('POST', '/api/v1/permissions/request', {
            action: 'deploy.staging',
            context: { user_id: 'olga' },
          });
          if (asked.status === 202) id = asked.body.data.id;
          return asked.status;
        },
        { timeout: 5000, interval: 100 },
      )
      .toBe(202);
    const decided = await apiClient(second.url, ADMIN)<unknown>('POST', `/api/v1/permissions/${id}/decide`, {
      approved: true,
    });
    expect([decided.status, decided.body.error?.code]).toEqual([403, 'FORBIDDEN']);
  });
});
