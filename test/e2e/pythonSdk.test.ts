import { spawn, spawnSync } from 'node:child_process';
import { describe, expect, inject, it } from 'vitest';
import { ROOT } from '../helpers/serverProcess.js';

/**
 * Runs the Python SDK's pytest suite (src/python/tests) as part of `npm test`, so it runs wherever
 * the TypeScript tests do: against the built server, on the same Redis and (with
 * TEST_DATABASE_URL) the same Postgres. The suite's measured wait latencies are printed.
 */

/** The first Python 3 with pytest: the PATH's, else Debian's (where `apt-get install python3-pytest` puts it). */
function pythonWithPytest(): string | null {
  for (const candidate of ['python3', '/usr/bin/python3']) {
    const probe = spawnSync(candidate, ['-m', 'pytest', '--version'], { stdio: 'ignore' });
    if (probe.status === 0) return candidate;
  }
  return null;
}

function run(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.once('exit', (code) => resolve({ code: code ?? 1, output }));
  });
}

describe('the Python SDK', () => {
  it('passes its pytest suite against the built server', { timeout: 600_000 }, async () => {
    const python = pythonWithPytest();
    expect(python, 'no python3 with pytest: apt-get install -y python3-pytest (.ci/run does)').not.toBeNull();
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_BINARY: process.execPath,
      TEST_REDIS_URL: inject('redisUrl'),
      PYTHONDONTWRITEBYTECODE: '1',
      ...(process.env.TEST_DATABASE_URL ? { TEST_DATABASE_URL: process.env.TEST_DATABASE_URL } : {}),
    };
    const { code, output } = await run(
      python as string,
      ['-m', 'pytest', 'src/python/tests', '-q', '-p', 'no:cacheprovider'],
      env,
    );
    for (const line of output.split('\n')) if (line.startsWith('agent-otp latency:')) console.log(line);
    expect(code, output).toBe(0);
    expect(output).toMatch(/agent-otp latency: sync wait/);
  });
});
