import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { redisAnswers } from '../../src/store/redis.js';
import { freePort } from '../setup/redis.js';

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

/** A private redis-server on a free port, with its own data dir, to kill and start again. */
export class PrivateRedis {
  private child: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  /** Started unless `running: false` (a Redis that is down from the start). */
  static async start(opts: { running?: boolean } = {}): Promise<PrivateRedis> {
    const redis = new PrivateRedis(await freePort(), mkdtempSync(path.join(tmpdir(), 'aotp-private-redis-')));
    if (opts.running !== false) await redis.restart();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The process, e.g. to SIGSTOP it (a Redis that accepts connections but does not answer). */
  get process(): ChildProcess | undefined {
    return this.child;
  }

  /** An outage: SIGKILL, as a crash or a lost host. */
  stop(): Promise<void> {
    return stopRedis(this.child);
  }

  /** (Back) on its port, empty. */
  async restart(): Promise<void> {
    this.child = await startRedis(this.port, this.dir);
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
