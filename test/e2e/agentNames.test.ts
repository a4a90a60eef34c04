import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, apiClient } from '../helpers/api.js';
import { runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';

const ADMIN = `uk_${randomBytes(24).toString('hex')}`;

/**
 * The reports, through the built CLI: `--agent <name>` used to print "(none)" or zeros
 * and `--type usee` "(none)". Now a name filters like the id, and a wrong agent or event type
 * is an error that says what exists.
 */
describe('agent names and ids through the CLI', () => {
  let server: ServerProcess;
  let operator: Api;
  let billingId: string;
  let supportId: string;
  let permissionId: string;
  const cli = (...args: string[]) =>
    runCli(args, { AGENT_OTP_URL: server.url, AGENT_OTP_ADMIN_TOKEN: ADMIN });

  beforeAll(async () => {
    server = await startServer({
      database: process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite',
      command: 'api',
      env: { ADMIN_TOKEN: ADMIN },
    });
    operator = apiClient(server.url, ADMIN);
    const policies = {
      policies: [
        {
          name: 'billing-payments',
          agent: 'billing-bot',
          conditions: { action: 'payment.*' },
          action: 'auto_approve',
        },
      ],
    };
    expect((await operator('PUT', '/api/v1/policies', policies)).status).toBe(200);
    const billing = await operator<{ id: string; apiKey: string }>('POST', '/api/v1/agents', {
      name: 'billing-bot',
    });
    const support = await operator<{ id: string }>('POST', '/api/v1/agents', { name: 'support-bot' });
    billingId = billing.body.data.id;
    supportId = support.body.data.id;
    const granted = await apiClient(server.url, billing.body.data.apiKey)<{ id: string }>(
      'POST',
      '/api/v1/permissions/request',
      { action: 'payment.send' },
    );
    expect(granted.status).toBe(201);
    permissionId = granted.body.data.id;
  }, 60_000);

  afterAll(async () => {
    await server?.stop();
  });

  it('permission:list, audit:list and metrics take --agent by name (any case) as by id', async () => {
    for (const agent of ['billing-bot', 'Billing-Bot', billingId]) {
      const permissions = await cli('permission:list', '--agent', agent, '--json');
      expect(permissions.code, permissions.stderr).toBe(0);
      expect(JSON.parse(permissions.stdout).map((p: { id: string }) => p.id)).toEqual([permissionId]);

      const events = await cli('audit:list', '--agent', agent, '--json');
      expect(events.code, events.stderr).toBe(0);
      const parsed = JSON.parse(events.stdout) as { agentId: string; type: string }[];
      expect(parsed.map((e) => e.type)).toEqual(
        expect.arrayContaining(['agent.created', 'request', 'approve']),
      );
      expect(parsed.every((e) => e.agentId === billingId)).toBe(true);

      const metrics = await cli('metrics', '--agent', agent, '--json');
      expect(metrics.code, metrics.stderr).toBe(0);
      expect(JSON.parse(metrics.stdout)).toMatchObject({ agentId: billingId, requestVolume: 1, approved: 1 });
    }
  }, 60_000);

  it('policy:test --agent by name applies the policies naming that agent', async () => {
    const result = await cli('policy:test', '--agent', 'BILLING-BOT', '--action', 'payment.send', '--json');
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      decision: 'auto_approve',
      policy: { name: 'billing-payments' },
      agent: { id: billingId, name: 'billing-bot' },
    });
  });

  it('an unknown --agent is an error listing the agents, on every command that filters', async () => {
    for (const args of [
      ['permission:list'],
      ['audit:list'],
      ['audit:export'],
      ['metrics'],
      ['policy:test', '--action', 'payment.send'],
    ]) {
      const result = await cli(...args, '--agent', 'billing-bott');
      expect(result.code, args[0]).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toContain('UNKNOWN_AGENT');
      expect(result.stderr).toContain(`billing-bot (${billingId})`);
      expect(result.stderr).toContain(`support-bot (${supportId})`);
    }
  }, 60_000);

  it('audit:list --type with a typo is an error listing the event types', async () => {
    const result = await cli('audit:list', '--type', 'usee');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('VALIDATION_ERROR');
    expect(result.stderr).toContain('Unknown event type "usee"');
    expect(result.stderr).toMatch(/\buse\b.*\buse_rejected\b/);
    const known = await cli('audit:list', '--type', 'use', '--json');
    expect(known.code, known.stderr).toBe(0);
  });

  it('agent:create refuses a name another agent has in any case', async () => {
    const result = await cli('agent:create', '--name', 'Support-Bot');
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('AGENT_NAME_TAKEN');
    expect(result.stderr).toContain(supportId);
  });
});
