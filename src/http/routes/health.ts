import type { FastifyInstance } from 'fastify';
import { errorBody } from '../errors.js';

export interface ReadinessCheck {
  name: string;
  check(): Promise<void>;
}

/**
 * Under the 1 s a Kubernetes probe waits by default, so a hung dependency reads as "not ready"
 * rather than as a probe timeout.
 */
const CHECK_TIMEOUT_MS = 900;

function withTimeout(p: Promise<void>): Promise<void> {
  return Promise.race([
    p,
    new Promise<void>((_, reject) =>
      setTimeout(() => reject(new Error('timeout')), CHECK_TIMEOUT_MS).unref(),
    ),
  ]);
}

/** /healthz: the process is up. /readyz: its dependencies answer (503 with which ones do not). */
export function registerHealthRoutes(app: FastifyInstance, checks: ReadinessCheck[]): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (request, reply) => {
    const results = await Promise.all(
      checks.map(async (c) => {
        try {
          await withTimeout(c.check());
          return [c.name, 'ok'] as const;
        } catch {
          return [c.name, 'unavailable'] as const;
        }
      }),
    );
    const status = Object.fromEntries(results);
    if (results.every(([, s]) => s === 'ok')) return { status: 'ready', checks: status };
    return reply
      .status(503)
      .send(errorBody('NOT_READY', 'A dependency is unavailable', request.id, { checks: status }));
  });
}
