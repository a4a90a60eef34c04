import { Redis, type RedisOptions } from 'ioredis';

export type { Redis } from 'ioredis';

/**
 * Redis holds only what can be rebuilt (queues, counters, wake-ups), so an outage must degrade
 * the service, never stall it. Each connection is made for one use:
 *
 * - `commands`: the request path (rate limits, failed-auth counts, pub/sub publish, /readyz). No
 *   offline queue: while disconnected a command fails at once instead of waiting for a reconnect;
 *   against a Redis that accepts the connection but does not answer, it fails after
 *   COMMAND_TIMEOUT_MS. Callers treat a failure as "Redis unavailable" and go on.
 * - `producer`: the queue producers, the same but with a longer timeout. Nothing on the request
 *   path awaits them (jobs are queued after the answer); the timeout only bounds what a hung
 *   Redis can hold in memory, and a longer one is not tripped by an event loop busy for a moment
 *   (PGlite runs in-process), which would drop a job for the reconciler to repair later.
 * - `subscriber`: a subscription made while disconnected waits for the connection, and ioredis
 *   subscribes again after every reconnect.
 * - `worker`: BullMQ workers wait for Redis as long as it takes (BullMQ requires
 *   `maxRetriesPerRequest: null`); nothing on the request path uses this connection.
 *
 * All of them reconnect quickly and then once a second, so a Redis that comes back is used again
 * within about a second, without a restart.
 */
export type RedisUse = 'commands' | 'producer' | 'subscriber' | 'worker';

/** Longest a request-path command may take: well inside the 1 s an endpoint may take in all. */
const COMMAND_TIMEOUT_MS = 500;
const PRODUCER_TIMEOUT_MS = 2000;
const CONNECT_TIMEOUT_MS = 2000;
const MAX_RECONNECT_DELAY_MS = 1000;

/** 50, 100, 200, 400, 800 ms, then every second. */
const reconnectDelay = (attempt: number): number =>
  Math.min(50 * 2 ** Math.max(0, attempt - 1), MAX_RECONNECT_DELAY_MS);

const USES: Record<RedisUse, RedisOptions> = {
  commands: {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: COMMAND_TIMEOUT_MS,
    enableAutoPipelining: true,
  },
  producer: { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: PRODUCER_TIMEOUT_MS },
  subscriber: { enableOfflineQueue: true, maxRetriesPerRequest: null, autoResubscribe: true },
  worker: { enableOfflineQueue: true, maxRetriesPerRequest: null },
};

/** A connection for one use (see RedisUse); it starts connecting at once. */
export function createRedis(url: string, use: RedisUse = 'commands'): Redis {
  return new Redis(url, { connectTimeout: CONNECT_TIMEOUT_MS, retryStrategy: reconnectDelay, ...USES[use] });
}

/** True once `redis` is connected, false if it is not within `timeoutMs` (it keeps trying). */
export function whenReady(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ready: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      resolve(ready);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    redis.once('ready', onReady);
  });
}

/** Is anything answering PING at this URL? Used before deciding to start an embedded Redis. */
export async function redisAnswers(url: string, timeoutMs = 1000): Promise<boolean> {
  const probe = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: timeoutMs,
    enableOfflineQueue: false,
  });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

const CONNECTION_FAILURE =
  /Command timed out|Connection is closed|Stream isn't writeable|MaxRetriesPerRequest|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EPIPE/;

/** Did `err` come from Redis being unreachable (rather than from a bug or a bad command)? */
export function isUnavailable(err: unknown, redis?: Redis): boolean {
  if (redis && redis.status !== 'ready') return true;
  return (
    err instanceof Error && (err.name === 'QueueUnavailableError' || CONNECTION_FAILURE.test(err.message))
  );
}
