import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CeremonyLimiter } from '../../src/services/ceremonyLimit.js';
import { Counters } from '../../src/store/counters.js';
import { createRedis, type Redis, whenReady } from '../../src/store/redis.js';
import { appError } from '../helpers/appError.js';

/**
 * Passkey ceremonies answer anyone, and each stores a challenge: one address gets a bounded
 * number per minute (real Redis), others are not affected, and the next minute starts afresh.
 */
describe('passkey ceremony limit per client address', () => {
  let redis: Redis;
  let counters: Counters;
  let now = new Date('2026-12-06T12:00:05.000Z').getTime();
  const clock = { now: () => new Date(now) };

  beforeAll(async () => {
    redis = createRedis(inject('redisUrl'));
    await whenReady(redis, 5000);
    counters = new Counters(redis, `t${randomBytes(4).toString('hex')}`);
  });
  afterAll(() => redis?.disconnect());

  it('refuses the call after the limit with RATE_LIMITED and when to retry, per address', async () => {
    const limiter = new CeremonyLimiter(counters, clock, 5);
    for (let i = 0; i < 5; i++) await limiter.assertAllowed('198.51.100.7');
    const refused = await appError(limiter.assertAllowed('198.51.100.7'));
    expect(refused.code).toBe('RATE_LIMITED');
    expect(refused.details).toMatchObject({ retryAfter: 55, limit: 5 });
    // Another address has its own count.
    await expect(limiter.assertAllowed('198.51.100.8')).resolves.toBeUndefined();
    // The next minute starts afresh.
    now += 60_000;
    await expect(limiter.assertAllowed('198.51.100.7')).resolves.toBeUndefined();
  });

  it('does not count, and so does not refuse, while Redis is down', async () => {
    const down = createRedis('redis://127.0.0.1:1');
    down.on('error', () => undefined);
    const limiter = new CeremonyLimiter(new Counters(down, 'down'), clock, 1);
    for (let i = 0; i < 3; i++) await expect(limiter.assertAllowed('198.51.100.9')).resolves.toBeUndefined();
    down.disconnect();
  });
});
