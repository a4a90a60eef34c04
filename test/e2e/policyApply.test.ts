import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Api, apiClient } from '../helpers/api.js';
import { cleanupDir, runCli, type ServerProcess, startServer } from '../helpers/serverProcess.js';

const ADMIN = `uk_${randomBytes(24).toString('hex')}`;

const START_FILE = [
  'policies:',
  '  - name: big-refunds',
  '    priority: 10',
  '    conditions: { action: refund.*, scope.amount: { greater_than: 100 } }',
  '    action: require_approval',
  '  - name: old',
  '    agent: legacy-bot',
  '    conditions: { action: legacy.* }',
  '    action: deny',
  '  - name: reads',
  '    conditions: { action: read.* }',
  '    action: auto_approve',
].join('\n');

const NEXT_FILE = [
  'policies:',
  '  - name: big-refunds',
  '    priority: 20',
  '    conditions: { action: refund.*, scope.amount: { greater_than: 500 } }',
  '    action: require_approval',
  '  - name: refund-small',
  '    agent: refund-bot',
  '    conditions: { action: refund.*, agent: { not_in: [refnud-bot] } }',
  '    action: auto_approve',
  '  - name: reads',
  '    conditions: { action: read.* }',
  '    action: auto_approve',
].join('\n');

/** The built server started with POLICIES_FILE, then `policy:apply` from the CLI against it. */
describe('policy:apply and POLICIES_FILE show what they change', () => {
  let server: ServerProcess;
  let operator: Api;
  let dir: string;
  let cliEnv: NodeJS.ProcessEnv;
  let nextFile: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'aotp-policy-apply-'));
    const startFile = path.join(dir, 'start.yaml');
    writeFileSync(startFile, START_FILE);
    nextFile = path.join(dir, 'next.yaml');
    writeFileSync(nextFile, NEXT_FILE);
    server = await startServer({
      database: process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite',
      env: { ADMIN_TOKEN: ADMIN, POLICIES_FILE: startFile },
    });
    operator = apiClient(server.url, ADMIN);
    cliEnv = { AGENT_OTP_URL: server.url, AGENT_OTP_ADMIN_TOKEN: ADMIN };
  });

  afterAll(async () => {
    await server?.stop();
    if (dir) cleanupDir(dir);
  });

  it('logs at start, once, which policies the file added and that one names an agent that does not exist', () => {
    const lines = server
      .output()
      .split('\n')
      .filter((l) => l.includes('POLICIES_FILE'));
    expect(lines).toHaveLength(2);
    const [applied, warning] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(applied).toMatchObject({
      msg: 'POLICIES_FILE applied: 3 added, 0 changed, 0 removed, 0 unchanged',
      added: ['big-refunds', 'old', 'reads'],
    });
    expect(warning).toMatchObject({
      level: 40,
      msg: 'POLICIES_FILE: policies name agents that do not exist: old (legacy-bot)',
    });
  });

  it('--dry-run prints the diff by name and applies nothing; the apply prints it and keeps unchanged ids', async () => {
    expect((await operator('POST', '/api/v1/agents', { name: 'refund-bot' })).status).toBe(201);
    const before = await operator<{ policies: { id: string; name: string; priority: number }[] }>(
      'GET',
      '/api/v1/policies',
    );
    const ids = new Map(before.body.data.policies.map((p) => [p.name, p.id]));

    const expectedDiff = [
      '+ added      refund-small',
      '~ changed    big-refunds (conditions, priority)',
      '- removed    old',
      '= unchanged  reads',
      'Warning: refund-small names an agent that does not exist: refnud-bot',
    ];
    const dry = await runCli(['policy:apply', '-f', nextFile, '--dry-run'], cliEnv);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout.trim().split('\n')).toEqual([
      ...expectedDiff,
      'Dry run: nothing applied (1 added, 1 changed, 1 removed, 1 unchanged).',
    ]);
    const unchanged = await operator('GET', '/api/v1/policies');
    expect(unchanged.body.data).toEqual(before.body.data);

    const json = await runCli(['policy:apply', '-f', nextFile, '--dry-run', '--json'], cliEnv);
    expect(JSON.parse(json.stdout)).toMatchObject({
      dryRun: true,
      count: 3,
      plan: {
        changed: [{ id: ids.get('big-refunds'), name: 'big-refunds', fields: ['conditions', 'priority'] }],
      },
    });

    const applied = await runCli(['policy:apply', '-f', nextFile], cliEnv);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout.trim().split('\n')).toEqual([
      ...expectedDiff,
      'Applied: 1 added, 1 changed, 1 removed, 1 unchanged.',
    ]);
    const after = await operator<{ policies: { id: string; name: string; priority: number }[] }>(
      'GET',
      '/api/v1/policies',
    );
    expect(after.body.data.policies.map((p) => p.name)).toEqual(['big-refunds', 'refund-small', 'reads']);
    expect(after.body.data.policies[0]).toMatchObject({ id: ids.get('big-refunds'), priority: 20 });
    expect(after.body.data.policies[2]?.id).toBe(ids.get('reads'));

    // Applying the same file again: everything unchanged, nothing else said.
    const again = await runCli(['policy:apply', '-f', nextFile], cliEnv);
    expect(again.stdout).toContain('Applied: 0 added, 0 changed, 0 removed, 3 unchanged.');
  });
});
