import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AgentOTPClient } from '../../src/sdk/index.js';
import { CLI, ROOT, runCli } from '../helpers/serverProcess.js';
import { freePort } from '../setup/redis.js';

/**
 * The newcomer's first hour, as the README tells it: a fresh copy of the repository, a `.env`
 * with a non-default PORT, `npm start`, then the CLI run in that directory with no AGENT_OTP_URL
 * and no operator key in the environment: it must find the server and the key on its own.
 */
describe('a newcomer on a fresh copy', () => {
  let dir: string;
  let server: ChildProcess;
  let port: number;
  let output = '';

  // Only PATH and HOME: nothing of the developer's environment reaches the copy.
  const cleanEnv = () => ({ PATH: process.env.PATH, HOME: process.env.HOME });

  const cli = (args: string[]) =>
    runCli(args, cleanEnv(), { cwd: dir, cli: path.join(dir, 'dist/cli/index.js') });

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'aotp-newcomer-'));
    // The repository as a clone has it (tracked and new files, nothing ignored), after `npm ci`:
    // its node_modules and the dist/ that `npm ci` built.
    const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: ROOT })
      .toString()
      .split('\0')
      .filter(Boolean);
    for (const file of files) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      try {
        cpSync(path.join(ROOT, file), path.join(dir, file));
      } catch {
        // a file deleted in the working tree but still tracked
      }
    }
    symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    cpSync(path.dirname(path.dirname(CLI)), path.join(dir, 'dist'), { recursive: true });

    port = await freePort();
    writeFileSync(
      path.join(dir, '.env'),
      [
        `PORT=${port}`,
        `REDIS_URL=${inject('redisUrl')}`,
        `REDIS_KEY_PREFIX=nc${randomBytes(4).toString('hex')}`,
        '',
      ].join('\n'),
    );
    server = spawn('npm', ['start'], {
      cwd: dir,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    server.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    server.stderr?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    // Generous: on a loaded 2-core machine a first start (copying the template database) is slow.
    const deadline = Date.now() + 240_000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline || server.exitCode !== null) {
        throw new Error(`npm start did not answer on port ${port}:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }, 300_000);

  afterAll(async () => {
    if (server?.pid && server.exitCode === null) {
      const exited = new Promise((r) => server.once('exit', r));
      process.kill(-server.pid, 'SIGTERM');
      const timer = setTimeout(() => process.kill(-(server.pid as number), 'SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('creates an agent, applies a policy, approves a request and verifies the audit trail from the CLI', async () => {
    const created = await cli(['agent:create', '--name', 'newcomer-bot', '--json']);
    expect(created.code, created.stderr).toBe(0);
    const agent = JSON.parse(created.stdout) as { id: string; apiKey: string };
    expect(agent.apiKey).toMatch(/^ak_/);

    writeFileSync(
      path.join(dir, 'policies.yaml'),
      [
        'policies:',
        '  - name: refunds-need-a-human',
        '    priority: 10',
        '    conditions:',
        '      action: payment.refund',
        '    action: require_approval',
        '',
      ].join('\n'),
    );
    const applied = await cli(['policy:apply', '-f', 'policies.yaml']);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('refunds-need-a-human');

    const sdk = new AgentOTPClient({ apiKey: agent.apiKey, baseUrl: `http://127.0.0.1:${port}` });
    const requested = await sdk.requestPermission({
      action: 'payment.refund',
      resource: 'order:1042',
      scope: { max_amount: 50 },
      context: { reason: 'damaged item' },
    });
    expect(requested.status).toBe('pending');

    const shown = await cli(['permission:get', requested.id]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('payment.refund');
    expect(shown.stdout).toContain('pending');
    expect(shown.stdout).toContain('newcomer-bot');
    expect(shown.stdout).toMatch(/Max amount: 50/);

    const approved = await cli(['approve', requested.id, '--yes']);
    expect(approved.code, approved.stderr).toBe(0);
    expect((await sdk.getPermission(requested.id)).status).toBe('approved');

    const verified = await cli(['audit:verify']);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toContain('intact');
  });
});
