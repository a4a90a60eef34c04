import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PrivateRedis } from '../helpers/privateRedis.js';
import { type ServerProcess, startServer } from '../helpers/serverProcess.js';

interface ReadyBody {
  status?: string;
  checks?: Record<string, string>;
  success?: boolean;
  error?: { code: string; requestId: string; details?: { checks: Record<string, string> } };
}

/** Polls /readyz until it answers `status`, or the deadline passes; returns the last answer. */
async function readyzUntil(url: string, status: number, deadlineMs: number) {
  const until = Date.now() + deadlineMs;
  for (;;) {
    const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) });
    const body = (await res.json()) as ReadyBody;
    if (res.status === status || Date.now() > until) return { status: res.status, body, res };
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('readiness follows Redis', () => {
  let redis: PrivateRedis;
  let server: ServerProcess;

  beforeAll(async () => {
    redis = await PrivateRedis.start();
    server = await startServer({
      database: process.env.TEST_DATABASE_URL ? 'postgres' : 'pglite',
      env: { REDIS_URL: redis.url },
    });
  });

  afterAll(async () => {
    await server?.stop();
    await redis?.close();
  });

  it('is ready while its Redis answers', async () => {
    const { status, body } = await readyzUntil(server.url, 200, 0);
    expect(status).toBe(200);
    expect(body).toEqual({ status: 'ready', checks: { database: 'ok', redis: 'ok' } });
  });

  it('answers 503 NOT_READY naming Redis within seconds of losing it, while /healthz stays 200', async () => {
    await redis.stop();
    const started = Date.now();
    const { status, body, res } = await readyzUntil(server.url, 503, 5000);
    expect(status).toBe(503);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(body.success).toBe(false);
    expect(body.error?.code).toBe('NOT_READY');
    expect(body.error?.details?.checks).toEqual({ database: 'ok', redis: 'unavailable' });
    expect(body.error?.requestId).toBe(res.headers.get('x-request-id'));

    const health = await fetch(`${server.url}/healthz`);
    expect(health.status).toBe(200);
  });

  it('is ready again once Redis is back', async () => {
    await redis.restart();
    const { status, body } = await readyzUntil(server.url, 200, 10_000);
    expect(status).toBe(200);
    expect(body.checks).toEqual({ database: 'ok', redis: 'ok' });
  });
});
