import type { Redis } from 'ioredis';

/**
 * Fixed-window counters in Redis (rate limits, failed-authentication counts). One round trip:
 * INCR and set the expiry on first hit, in one script so a crash cannot leave a key without TTL.
 */
const HIT_SCRIPT = `
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
if n == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

export interface WindowCount {
  count: number;
  /** Epoch ms at which the window ends. */
  resetAt: number;
}

export class Counters {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async hit(name: string, windowMs: number, now: number, by = 1): Promise<WindowCount> {
    const windowStart = Math.floor(now / windowMs) * windowMs;
    const key = `${this.prefix}:c:${name}:${windowStart}`;
    const count = Number(await this.redis.eval(HIT_SCRIPT, 1, key, String(windowMs + 1000), String(by)));
    return { count, resetAt: windowStart + windowMs };
  }
}
