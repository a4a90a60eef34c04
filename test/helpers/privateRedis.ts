import { type ChildProcess, spawn } from 'node:child_process';
import { redisAnswers } from '../../src/store/redis.js';

/**
 * A redis-server of a test's own on `port`, so the test can kill and restart it without
 * disturbing the Redis other test files share. No persistence: a restart comes back empty,
 * like a Redis that lost its data.
 */
export async function startRedis(port: number, dir: string): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  for (let i = 0; i < 100; i += 1) {
    if (await redisAnswers(`redis://127.0.0.1:${port}`, 200)) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error('private redis-server did not start');
}

/** Kills it (SIGKILL: an outage, not a clean shutdown) and waits until it is gone. */
export function stopRedis(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}
