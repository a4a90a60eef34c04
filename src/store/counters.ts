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

/** The hits of one set of counters asked for during one event-loop turn. */
interface Gathered {
  keys: string[];
  ttls: string[];
  resetAts: number[];
  waiters: { resolve: (counts: WindowCount[]) => void; reject: (err: unknown) => void }[];
}

export class Counters {
  /** Hits asked for this turn, by their counters' keys (see hitWindows). */
  private gathered = new Map<string, Gathered>();
  private flushScheduled = false;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  /**
   * Counts one hit in each window (e.g. a minute and an hour) in a single round trip. Hits of the
   * same counters asked for during one event-loop turn (one busy agent's calls that arrived
   * together) go as one script call that adds their number, and each caller gets its own count
   * from the total, in the order they asked: the counts a sequence of single hits would have
   * given, for one Redis command instead of many.
   */
  hitWindows(name: string, windowsMs: readonly number[], now: number): Promise<WindowCount[]> {
    const starts = windowsMs.map((w) => Math.floor(now / w) * w);
    const keys = windowsMs.map((w, i) => `${this.prefix}:c:${name}:${w}:${starts[i]}`);
    const id = keys.join(' ');
    let batch = this.gathered.get(id);
    if (!batch) {
      batch = {
        keys,
        ttls: windowsMs.map((w) => String(w + 1000)),
        resetAts: windowsMs.map((w, i) => (starts[i] ?? 0) + w),
        waiters: [],
      };
      this.gathered.set(id, batch);
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    const gathered = batch;
    return new Promise((resolve, reject) => gathered.waiters.push({ resolve, reject }));
  }

  async hit(name: string, windowMs: number, now: number, by = 1): Promise<WindowCount> {
    const windowStart = Math.floor(now / windowMs) * windowMs;
    const key = `${this.prefix}:c:${name}:${windowStart}`;
    const count = Number(
      await runScript(this.redis, HIT_SCRIPT, [key], [String(windowMs + 1000), String(by)]),
    );
    return { count, resetAt: windowStart + windowMs };
  }

  private flush(): void {
    this.flushScheduled = false;
    const batches = [...this.gathered.values()];
    this.gathered.clear();
    for (const batch of batches) void this.send(batch);
  }

  /** Never rejects: every waiter is settled. */
  private async send({ keys, ttls, resetAts, waiters }: Gathered): Promise<void> {
    let totals: number[];
    try {
      totals = (await runScript(this.redis, HIT_MANY_SCRIPT, keys, [
        ...ttls,
        String(waiters.length),
      ])) as number[];
    } catch (err) {
      for (const waiter of waiters) waiter.reject(err);
      return;
    }
    const first = waiters.length - 1;
    waiters.forEach((waiter, j) => {
      waiter.resolve(
        keys.map((_, i) => ({ count: Number(totals[i]) - first + j, resetAt: resetAts[i] ?? 0 })),
      );
    });
  }
}

/**
 * Adds ARGV[#KEYS + 1] hits to each window's counter; a counter just created gets its expiry
 * (ARGV[i]) in the same script, so a crash cannot leave a key without TTL.
 */
const HIT_MANY_SCRIPT = `
local by = tonumber(ARGV[#KEYS + 1])
local out = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCRBY', key, by)
  if n == by then redis.call('PEXPIRE', key, ARGV[i]) end
  out[i] = n
end
return out`;
