import { existsSync, mkdtempSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import {
  type EmbeddedRedis,
  ensureLocalRedis,
  RedisUnavailableError,
} from '../../src/store/embeddedRedis.js';
import { redisAnswers } from '../../src/store/redis.js';
import { memoryLogger } from '../helpers/memoryLogger.js';
import { freePort } from '../setup/redis.js';

describe('ensureLocalRedis', () => {
  let dataDir: string;
  let started: EmbeddedRedis | null = null;

  beforeEach(() => {
    dataDir = realpathSync(mkdtempSync(path.join(tmpdir(), 'aotp-embedded-redis-')));
  });
  afterEach(async () => {
    await started?.stop();
    started = null;
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('starts redis-server with append-only data in <data dir>/redis, and stops it', async () => {
    const port = await freePort();
    const { logger, text } = memoryLogger();
    started = await ensureLocalRedis(dataDir, logger, port);
    expect(started?.url).toBe(`redis://127.0.0.1:${port}`);

    const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      expect(await client.ping()).toBe('PONG');
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
      expect(await client.config('GET', 'dir')).toEqual(['dir', path.join(dataDir, 'redis')]);
      expect(await client.config('GET', 'maxmemory-policy')).toEqual(['maxmemory-policy', 'noeviction']);
      await client.set('k', 'v');
    } finally {
      client.disconnect();
    }
    expect(text()).toContain('started embedded redis-server');
    // The append-only file lives in the data dir.
    expect(readdirSync(path.join(dataDir, 'redis')).length).toBeGreaterThan(0);

    const instance = started;
    started = null;
    await instance?.stop();
    expect(await redisAnswers(`redis://127.0.0.1:${port}`, 300)).toBe(false);
  });

  it('returns null and starts nothing when a Redis already answers on the port', async () => {
    const port = Number(new URL(inject('redisUrl')).port);
    started = await ensureLocalRedis(dataDir, memoryLogger().logger, port);
    expect(started).toBeNull();
    expect(existsSync(path.join(dataDir, 'redis'))).toBe(false);
  });

  it('says how to install redis-server or set REDIS_URL when none is on PATH', async () => {
    const port = await freePort();
    const emptyBin = mkdtempSync(path.join(tmpdir(), 'aotp-empty-path-'));
    const savedPath = process.env.PATH;
    process.env.PATH = emptyBin;
    let error: unknown;
    try {
      started = await ensureLocalRedis(dataDir, memoryLogger().logger, port);
    } catch (err) {
      error = err;
    } finally {
      process.env.PATH = savedPath;
      rmSync(emptyBin, { recursive: true, force: true });
    }
    expect(error).toBeInstanceOf(RedisUnavailableError);
    const message = (error as Error).message;
    expect(message).toMatch(/install/i);
    expect(message).toContain('redis-server');
    expect(message).toContain('REDIS_URL');
    expect(await redisAnswers(`redis://127.0.0.1:${port}`, 300)).toBe(false);
  });
});
