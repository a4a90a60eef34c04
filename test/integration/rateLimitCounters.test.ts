import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AppError } from '../../src/core/errors.js';
import { createLogger } from '../../src/logger.js';
import { RateLimiter, tokenCallLimits } from '../../src/services/rateLimits.js';
import type { Agent } from '../../src/store/agentRepository.js';
import { Counters } from '../../src/store/counters.js';
import { createRedis, type Redis, whenReady } from '../../src/store/redis.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
/** Noon and five seconds: the minute window has 55 s left, the hour window 59 min 55 s. */
const NOW = new Date('2026-12-07T12:00:05.000Z').getTime();

/**
 * A busy agent's calls that arrive together are counted with one Redis command (real Redis):
 * each caller still gets the count a single hit would have given, in the order it asked, so a
 * limit admits exactly as many calls as before.
 */
describe('rate-limit counters hit in the same turn', () => {
  let redis: Redis;
  /** Script calls this test's Counters sent to Redis. */
  let sent = 0;
  let counted: Redis;

  beforeAll(async () => {
    redis = createRedis(inject('redisUrl'));
    await whenReady(redis, 5000);
    // Counts the calls that reach Redis, and passes each on unchanged.
    counted = new Proxy(redis, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver);
        if ((key === 'evalsha' || key === 'eval') && typeof value === 'function') {
          return (...args: unknown[]) => {
            sent += 1;
            return value.apply(target, args);
          };
        }
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  });
  afterAll(() => redis?.disconnect());

  const fresh = () => new Counters(counted, `t${randomBytes(4).toString('hex')}`);

  it('gives each of five callers its own consecutive count, for one command', async () => {
    const counters = fresh();
    await counters.hitWindows('warm', [MINUTE], NOW); // loads the script, so the next is one call
    sent = 0;
    const together = await Promise.all(
      Array.from({ length: 5 }, () => counters.hitWindows('agent_a', [MINUTE, HOUR], NOW)),
    );
    expect(sent).toBe(1);
    expect(together.map(([minute, hour]) => [minute?.count, hour?.count])).toEqual([
      [1, 1],
      [2, 2],
      [3, 3],
      [4, 4],
      [5, 5],
    ]);
    expect(together[0]).toEqual([
      { count: 1, resetAt: NOW - 5_000 + MINUTE },
      { count: 1, resetAt: NOW - 5_000 + HOUR },
    ]);
    // A later hit continues from the total, and other counters are counted apart.
    const [next, other] = await Promise.all([
      counters.hitWindows('agent_a', [MINUTE, HOUR], NOW),
      counters.hitWindows('agent_b', [MINUTE, HOUR], NOW),
    ]);
    expect(next?.map((w) => w.count)).toEqual([6, 6]);
    expect(other?.map((w) => w.count)).toEqual([1, 1]);
  });

  it('sets the expiry on a counter it creates, whatever number of hits created it', async () => {
    const counters = fresh();
    await Promise.all(Array.from({ length: 3 }, () => counters.hitWindows('agent_ttl', [MINUTE], NOW)));
    const keys = await redis.keys(`${(counters as unknown as { prefix: string }).prefix}:c:agent_ttl:*`);
    expect(keys).toHaveLength(1);
    const ttl = await redis.pttl(keys[0] as string);
    expect(ttl).toBeGreaterThan(MINUTE);
    expect(ttl).toBeLessThanOrEqual(MINUTE + 1000);
  });

  it('admits exactly the limit of calls that arrive together, and refuses the rest with RATE_LIMITED', async () => {
    const limiter = new RateLimiter(
      fresh(),
      { now: () => new Date(NOW) },
      tokenCallLimits({ perMinute: 3, perHour: 100 }),
      createLogger('silent'),
    );
    const agent = { id: 'agent_burst', tokenRateLimitPerMin: null, tokenRateLimitPerHour: null } as Agent;
    const outcomes = await Promise.allSettled(Array.from({ length: 5 }, () => limiter.consume(agent)));
    expect(
      outcomes.map((o) => (o.status === 'fulfilled' ? o.value?.remaining : (o.reason as AppError).code)),
    ).toEqual([2, 1, 0, 'RATE_LIMITED', 'RATE_LIMITED']);
  });

  it('rejects every caller of a batch Redis could not count, so each limiter fails open on its own', async () => {
    const down = createRedis('redis://127.0.0.1:1');
    down.on('error', () => undefined);
    try {
      const counters = new Counters(down, 'down');
      const outcomes = await Promise.allSettled([
        counters.hitWindows('agent_a', [MINUTE], NOW),
        counters.hitWindows('agent_a', [MINUTE], NOW),
      ]);
      expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected']);
    } finally {
      down.disconnect();
    }
  });
});
