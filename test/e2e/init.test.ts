import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { CLI, runCli } from '../helpers/serverProcess.js';
import { freePort } from '../setup/redis.js';

const dir = mkdtempSync(path.join(tmpdir(), 'aotp-init-'));
let server: ChildProcess | undefined;

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server?.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

/** The built CLI in `dir`, with no terminal (init then takes its flags only). */
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  runCli(args, { HOME: process.env.HOME, ...env }, { cwd: dir });

describe('agent-otp init', () => {
  it('writes a .env the server starts with and the CLI then uses, in one command', async () => {
    const port = await freePort();
    const init = await cli(['init', '--port', String(port)]);
    expect(init.code).toBe(0);
    const file = path.join(dir, '.env');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    const token = /^ADMIN_TOKEN=(.+)$/m.exec(text)?.[1] as string;
    // Names what it wrote, never the secrets themselves.
    expect(init.stdout).toContain('ADMIN_TOKEN, AGENT_OTP_ADMIN_TOKEN, SECRETS_ENCRYPTION_KEY');
    expect(init.stdout).not.toContain(token);
    expect(init.stdout).toContain('no approval channel (Slack or Discord) is configured');

    // A second init keeps what is there.
    const again = await cli(['init']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('.env exists; pass --force');
    expect(readFileSync(file, 'utf8')).toBe(text);

    // The server, started in that directory with nothing but the .env (and the test's Redis).
    server = spawn(process.execPath, [CLI, 'start'], {
      cwd: dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, REDIS_URL: inject('redisUrl') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    server.stdout?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    server.stderr?.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const url = `http://127.0.0.1:${port}`;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${output}`)), 90_000);
      server?.stdout?.on('data', () => {
        if (output.includes('"msg":"listening"')) {
          clearTimeout(timer);
          resolve();
        }
      });
      server?.once('exit', (code) => reject(new Error(`server exited with ${code}:\n${output}`)));
    });
    expect(output).toContain(`"url":"${url}"`);
    const health = await fetch(`${url}/healthz`);
    expect(health.status).toBe(200);
    // The start log says once why requests would wait, and what to configure.
    expect(output.match(/no approval channel \(Slack or Discord\) is configured/g)).toHaveLength(1);
    expect(output).not.toContain(token);

    // The CLI in the same directory finds the operator key in the .env.
    const agents = await cli(['agent:list', '--json'], { AGENT_OTP_URL: url });
    expect(agents.stderr).toBe('');
    expect(agents.code).toBe(0);
  }, 120_000);
});
