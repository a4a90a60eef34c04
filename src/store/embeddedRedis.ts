import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logger.js';
import { redisAnswers } from './redis.js';

export class RedisUnavailableError extends Error {}

export interface EmbeddedRedis {
  url: string;
  stop(): Promise<void>;
}

const installHint = (port: number) =>
  `No Redis answers on redis://127.0.0.1:${port} and no redis-server is installed. ` +
  'Install one (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) ' +
  'or set REDIS_URL to a Redis you run.';

/**
 * For `npm start` with no REDIS_URL: use a Redis on the default address if one answers, else run
 * redis-server from PATH as a child process with its data (append-only file) in the data dir.
 */
export async function ensureLocalRedis(
  dataDir: string,
  logger: Logger,
  port = 6379,
): Promise<EmbeddedRedis | null> {
  const url = `redis://127.0.0.1:${port}`;
  if (await redisAnswers(url)) return null;
  const found = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  if (found.error || found.status !== 0) throw new RedisUnavailableError(installHint(port));

  const dir = path.join(dataDir, 'redis');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      // BullMQ needs keys never to be evicted.
      '--maxmemory-policy',
      'noeviction',
      '--save',
      '',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  for (let i = 0; i < 50 && !exited; i += 1) {
    if (await redisAnswers(url, 200)) {
      logger.info({ dir, port }, 'started embedded redis-server');
      return { url, stop: () => stopChild(child) };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new RedisUnavailableError(
    `redis-server did not start on port ${port}; set REDIS_URL to a running Redis.`,
  );
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
