import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Runs a Lua script by its SHA (EVALSHA) so the hot path sends a digest, not the script text,
 * on every rate-limit check; the script is loaded once on NOSCRIPT (a new or flushed Redis).
 */
const shaOf = new Map<string, string>();
async function runScript(
  redis: Redis,
  script: string,
  keys: readonly string[],
  args: readonly string[],
): Promise<unknown> {
  let sha = shaOf.get(script);
  if (!sha) {
    sha = createHash('sha1').update(script).digest('hex');
    shaOf.set(script, sha);
  }
  try {
    return await redis.evalsha(sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!String((err as Error).message).includes('NOSCRIPT')) throw err;
    return redis.eval(script, keys.length, ...keys, ...args);
  }
}

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

  /** Counts one hit in each window (e.g. a minute and an hour) in a single round trip. */
  hitWindows(name: string, windowsMs: readonly number[], now: number): Promise<WindowCount[]> {
    return hitWindows(this.redis, this.prefix, name, windowsMs, now);
  }

  async hit(name: string, windowMs: number, now: number, by = 1): Promise<WindowCount> {
    const windowStart = Math.floor(now / windowMs) * windowMs;
    const key = `${this.prefix}:c:${name}:${windowStart}`;
    const count = Number(
      await runScript(this.redis, HIT_SCRIPT, [key], [String(windowMs + 1000), String(by)]),
    );
    return { count, resetAt: windowStart + windowMs };
  }
}

/** Several windows in one round trip (a per-minute and a per-hour limit, say). */
const HIT_MANY_SCRIPT = `
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, ARGV[i]) end
  out[i] = n
end
return out`;

export async function hitWindows(
  redis: Redis,
  prefix: string,
  name: string,
  windowsMs: readonly number[],
  now: number,
): Promise<WindowCount[]> {
  const starts = windowsMs.map((w) => Math.floor(now / w) * w);
  const keys = windowsMs.map((w, i) => `${prefix}:c:${name}:${w}:${starts[i]}`);
  const counts = (await runScript(
    redis,
    HIT_MANY_SCRIPT,
    keys,
    windowsMs.map((w) => String(w + 1000)),
  )) as number[];
  return windowsMs.map((w, i) => ({ count: Number(counts[i]), resetAt: (starts[i] ?? 0) + w }));
}
