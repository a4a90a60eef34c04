import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';

// The server's own logger, writing to a real stdout pipe (the built dist/logger.js, as the server
// runs it). Lines are written in batches; none may be held back for long or lost at an exit.
const LOGGER = path.join(fileURLToPath(new URL('../..', import.meta.url)), 'dist/logger.js');

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
});

function run(script: string): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  if (!existsSync(LOGGER)) throw new Error('dist/ is missing: run `npm run build` (npm test does it)');
  const child = spawn(
    process.execPath,
    ['--input-type=module', '-e', `import { createLogger } from ${JSON.stringify(LOGGER)};\n${script}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, out: () => out, exited };
}

function messages(text: string): string[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { msg: string }).msg);
}

describe('log lines on stdout', () => {
  it('reach stdout while the process keeps running, without waiting for more lines or an exit', async () => {
    const { child, out } = run(
      "const log = createLogger('info', { format: 'json' }); log.info('one line'); setTimeout(() => {}, 30_000);",
    );
    await vi.waitFor(() => expect(messages(out())).toEqual(['one line']), { timeout: 10_000, interval: 20 });
    expect(child.exitCode).toBeNull();
  });

  it('are all written when the process exits at once after logging them', async () => {
    const { out, exited } = run(
      "const log = createLogger('info', { format: 'json' }); for (let i = 0; i < 500; i++) log.info('line ' + i); process.exit(0);",
    );
    expect(await exited).toBe(0);
    expect(messages(out())).toEqual(Array.from({ length: 500 }, (_, i) => `line ${i}`));
  });

  it('are written when the process dies of an uncaught error', async () => {
    const { out, exited } = run(
      "const log = createLogger('info', { format: 'json' }); log.error('about to fail'); setImmediate(() => { throw new Error('boom'); });",
    );
    expect(await exited).toBe(1);
    expect(messages(out())).toEqual(['about to fail']);
  });
});
