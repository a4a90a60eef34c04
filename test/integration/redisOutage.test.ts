import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { JobQueue, QueueUnavailableError } from '../../src/queue/jobQueue.js';
import { RateLimiter, requestLimits } from '../../src/services/rateLimits.js';
import type { Agent } from '../../src/store/agentRepository.js';
import { Counters } from '../../src/store/counters.js';
import { Bus } from '../../src/store/pubsub.js';
import { createRedis, type Redis, type RedisUse, whenReady } from '../../src/store/redis.js';
import { waitUntil } from '../helpers/chatE2e.js';
import { FakeClock } from '../helpers/fakeClock.js';
import { memoryLogger } from '../helpers/memoryLogger.js';
import { PrivateRedis } from '../helpers/privateRedis.js';

/**
 * The Redis clients' failure modes against a real redis-server of this file's own, stopped and
 * started again on the same port: nothing on the request path waits for a Redis that is down,
 * an outage is logged once, and everything works again when Redis is back.
 */

const agent = (id: string): Agent => ({
  id,
  name: id,
  description: null,
  metadata: {},
  environment: 'live',
  status: 'active',
  rateLimitPerMin: 2,
  rateLimitPerHour: null,
  tokenRateLimitPerMin: null,
  tokenRateLimitPerHour: null,
  webhookUrl: null,
  createdAt: new Date(),
  updatedAt: new Date(),
  revokedAt: null,
  nameDuplicate: false,
});

async function elapsed<T>(work: () => Promise<T>): Promise<{ ms: number; result: T | Error }> {
  const started = performance.now();
  const result = await work().catch((err: Error) => err);
  return { ms: performance.now() - started, result };
}

describe('Redis clients during an outage', () => {
  let server: PrivateRedis;
  const open: Redis[] = [];
  const connect = (use: RedisUse = 'commands') => {
    const redis = createRedis(server.url, use);
    redis.on('error', () => undefined);
    open.push(redis);
    return redis;
  };

  beforeAll(async () => {
    server = await PrivateRedis.start({ running: false });
  });

  afterEach(async () => {
    for (const redis of open.splice(0)) redis.disconnect();
    await server.stop();
  });

  afterAll(async () => {
    await server?.close();
  });

  it('rate limits fail open at once, warn once per outage, and count again when Redis is back', async () => {
    const redis = connect();
    const log = memoryLogger();
    const limiter = new RateLimiter(
      new Counters(redis, 'rl'),
      new FakeClock('2026-01-01T00:00:00Z'),
      requestLimits({ perMinute: 100, perHour: 1000 }),
      log.logger,
    );
    for (let i = 0; i < 20; i += 1) {
      const { ms, result } = await elapsed(() => limiter.consume(agent('agent_a')));
      expect(result).toBeNull();
      expect(ms).toBeLessThan(100);
    }
    expect(log.text().match(/rate limiter unavailable/g)).toHaveLength(1);

    await server.restart();
    expect(await whenReady(redis, 5000)).toBe(true);
    expect(await limiter.consume(agent('agent_a'))).toMatchObject({ limit: 2, remaining: 1 });
    expect(log.text()).toContain('"failedCalls":20,"msg":"rate limiter available again"');
    await limiter.consume(agent('agent_a'));
    await expect(limiter.consume(agent('agent_a'))).rejects.toMatchObject({ code: 'RATE_LIMITED' });
  });

  it('settles every enqueue at once while Redis is down (nothing waits in memory) and enqueues once it is back', async () => {
    const producer = connect('producer');
    const log = memoryLogger();
    const jobs = new JobQueue(producer, 'q', log.logger);
    for (let i = 0; i < 20; i += 1) {
      const { ms, result } = await elapsed(() => jobs.notify(`perm_${i}`));
      expect(result).toBeInstanceOf(QueueUnavailableError);
      expect(ms).toBeLessThan(100);
      jobs.soon('notify', jobs.notify(`perm_${i}`));
    }
    await expect(jobs.depth()).rejects.toBeInstanceOf(QueueUnavailableError);
    await waitUntil('the outage logged', () => log.text().includes('job queue unavailable'));
    expect(log.text().match(/job queue unavailable/g)).toHaveLength(1);

    await server.restart();
    expect(await whenReady(producer, 5000)).toBe(true);
    await jobs.notify('perm_after');
    expect((await jobs.depth()).notify).toBe(1);
    await jobs.close();
  });

  it('publishes fail at once while down; subscriptions made while down work, and catch-up runs, once Redis is back', async () => {
    const publisher = connect();
    const subscriber = connect('subscriber');
    const bus = new Bus(publisher, subscriber, 'bus');
    const received: string[] = [];
    let resubscribed = 0;
    bus.subscribe('changed', (m) => received.push(m));
    bus.onResubscribed(() => {
      resubscribed += 1;
    });
    const { ms, result } = await elapsed(() => bus.publish('changed', 'lost'));
    expect(result).toBeInstanceOf(Error);
    expect(ms).toBeLessThan(100);

    /** Redis comes back: the Bus catches up, and a message published now reaches the handler. */
    const afterRestart = async (times: number, message: string) => {
      await server.restart();
      await waitUntil(`resubscribed ${times}x`, () => resubscribed === times, 5000);
      await whenReady(publisher, 5000);
      await waitUntil(
        `"${message}" delivered`,
        async () => {
          await bus.publish('changed', message);
          return received.includes(message);
        },
        5000,
      );
    };
    // First the subscription made while Redis was down; then, down and up again, the one that
    // ioredis makes again by itself.
    await afterRestart(1, 'after');
    await server.stop();
    await afterRestart(2, 'again');
  });

  it('answers a command to a Redis that accepts connections but does not reply within 500 ms', async () => {
    await server.restart();
    const redis = connect();
    expect(await whenReady(redis, 5000)).toBe(true);
    server.process?.kill('SIGSTOP');
    try {
      const { ms, result } = await elapsed(() => redis.ping());
      expect((result as Error).message).toMatch(/timed out/);
      expect(ms).toBeLessThan(1000);
    } finally {
      server.process?.kill('SIGCONT');
    }
  });
});
