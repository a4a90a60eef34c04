import { spawnSync } from 'node:child_process';
import type { Config } from '../../config.js';
import { type CheckResult, maskUrl, reason, TIMEOUT_MS, withDeadline } from './result.js';

/** Where the server looks for a Redis when REDIS_URL is unset (src/store/embeddedRedis.ts). */
const LOCAL_REDIS = 'redis://127.0.0.1:6379';

/** `INFO` answers as `key:value` lines, grouped under `# Section` headers. */
function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return out;
}

type Probe =
  | { ok: true; version: string; policy: string; aof: boolean; rdb: boolean | null }
  | { ok: false; reason: string };

/** Connects once (no retries), reads INFO and the RDB save schedule, disconnects. */
async function probeRedis(url: string): Promise<Probe> {
  const { Redis } = await import('ioredis');
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  // ioredis reports the socket's error here and rejects connect() with "Connection is closed.":
  // keep the former, it is the one that says what happened.
  let lastError: unknown;
  redis.on('error', (err) => {
    lastError = err;
  });
  try {
    await withDeadline(() => redis.connect());
    const info = parseInfo(await withDeadline(() => redis.info()));
    // CONFIG is often disabled on managed Redis: then RDB persistence is unknown, not absent.
    let rdb: boolean | null = null;
    try {
      const [, save] = (await withDeadline(() => redis.config('GET', 'save'))) as string[];
      rdb = Boolean(save?.trim());
    } catch {
      rdb = null;
    }
    return {
      ok: true,
      version: info.get('redis_version') ?? '?',
      policy: info.get('maxmemory_policy') ?? '?',
      aof: info.get('aof_enabled') === '1',
      rdb,
    };
  } catch (err) {
    return { ok: false, reason: reason(lastError ?? err) };
  } finally {
    redis.disconnect();
  }
}

function rowsFor(url: string, probe: Probe & { ok: true }, how: string): CheckResult[] {
  const where = maskUrl(url);
  const rows: CheckResult[] = [
    { check: 'redis', status: 'pass', detail: `Redis ${probe.version} at ${where}${how}` },
  ];
  rows.push(
    probe.policy === 'noeviction'
      ? { check: 'redis maxmemory-policy', status: 'pass', detail: 'noeviction' }
      : {
          check: 'redis maxmemory-policy',
          status: 'fail',
          detail: `${probe.policy}: BullMQ needs noeviction (Redis may drop queued jobs); set maxmemory-policy noeviction`,
        },
  );
  const kinds = [probe.aof && 'AOF', probe.rdb && 'RDB snapshots'].filter(Boolean);
  rows.push(
    kinds.length
      ? { check: 'redis persistence', status: 'pass', detail: kinds.join(' and ') }
      : probe.rdb === null
        ? {
            check: 'redis persistence',
            status: 'skip',
            detail: 'AOF is off and CONFIG GET save is not allowed here: RDB snapshots unknown',
          }
        : {
            check: 'redis persistence',
            status: 'warn',
            detail:
              'none (no AOF, no RDB snapshots): a restart empties the queues; the reconciler rebuilds them from the database within RECONCILE_INTERVAL_MS',
          },
  );
  return rows;
}

/**
 * The Redis the configuration names. Without REDIS_URL the server uses whatever answers on
 * 127.0.0.1:6379 (the system Redis, or the redis-server it started there), so that one is checked.
 */
export async function redisChecks(
  config: Config,
  readiness: Record<string, string> | null,
): Promise<CheckResult[]> {
  if (config.REDIS_URL) {
    const probe = await probeRedis(config.REDIS_URL);
    if (!probe.ok) {
      return [
        {
          check: 'redis',
          status: 'fail',
          detail: `cannot connect to ${maskUrl(config.REDIS_URL)}: ${probe.reason}`,
        },
      ];
    }
    return rowsFor(config.REDIS_URL, probe, '');
  }
  const probe = await probeRedis(LOCAL_REDIS);
  if (probe.ok)
    return rowsFor(LOCAL_REDIS, probe, ' (REDIS_URL unset: the server uses the Redis on this address)');
  const serverSays = readiness?.redis ? `; the running server's /readyz says redis ${readiness.redis}` : '';
  const installed = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  if (installed.error || installed.status !== 0) {
    return [
      {
        check: 'redis',
        status: 'fail',
        detail: `REDIS_URL unset, nothing answers on ${LOCAL_REDIS} (${probe.reason}) and no redis-server is installed: install one or set REDIS_URL${serverSays}`,
      },
    ];
  }
  return [
    {
      check: 'redis',
      status: readiness?.redis === 'unavailable' ? 'fail' : 'skip',
      detail: `REDIS_URL unset and nothing answers on ${LOCAL_REDIS} (${probe.reason}): the server starts the embedded redis-server (append-only, noeviction) there${serverSays}`,
    },
  ];
}
