import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config.js';
import type { Clock } from '../../src/core/clock.js';
import { buildServer, type HttpDeps } from '../../src/http/server.js';
import { createLogger } from '../../src/logger.js';
import type { AgentService } from '../../src/services/agents.js';
import { ChannelRegistry } from '../../src/services/approvals/channel.js';
import { ApprovalService } from '../../src/services/approvals/service.js';
import type { AuditService } from '../../src/services/audit.js';
import { AuthService } from '../../src/services/auth.js';
import { ensureBootstrapOperatorKey } from '../../src/services/operators.js';
import type { PermissionService } from '../../src/services/permissions.js';
import { RateLimiter, requestLimits, tokenCallLimits } from '../../src/services/rateLimits.js';
import { Counters } from '../../src/store/counters.js';
import type { Db } from '../../src/store/db.js';
import type { Redis } from '../../src/store/redis.js';

export interface RouteTestApp {
  app: FastifyInstance;
  /** Closes the app and removes its data directory. */
  close(): Promise<void>;
}

/**
 * An in-process app for a route test (call it with `app.inject`): buildServer with the agent routes and
 * the routes under test, `operatorKey` registered as the ADMIN_TOKEN, failed-auth counters in `redis`
 * under a key prefix of its own.
 */
export async function startRouteTestApp(opts: {
  db: Db;
  redis: Redis;
  clock: Clock;
  agents: AgentService;
  operatorKey: string;
  routes: NonNullable<HttpDeps['extraRoutes']>;
  /** Failed authentications per address per minute before 429 (default 1000: never in a test). */
  authFailuresPerMin?: number;
}): Promise<RouteTestApp> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'aotp-route-app-'));
  try {
    const config = loadConfig({
      LOG_LEVEL: 'silent',
      AGENT_OTP_DATA_DIR: dataDir,
      ADMIN_TOKEN: opts.operatorKey,
    });
    const logger = createLogger('silent');
    await ensureBootstrapOperatorKey(opts.db, { adminToken: opts.operatorKey, dataDir }, opts.clock, logger);
    const counters = new Counters(opts.redis, `troute${randomBytes(4).toString('hex')}`);
    const app = buildServer({
      config,
      logger,
      auth: new AuthService(opts.db, opts.clock, counters, opts.authFailuresPerMin ?? 1000),
      agents: opts.agents,
      readiness: [],
      extraRoutes: opts.routes,
    });
    await app.ready();
    return {
      app,
      async close() {
        await app.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The route tests' rate limiters: generous request and token-call budgets (a test names the one
 * it exercises) counted in `redis` under a key prefix of their own.
 */
export function testLimiters(
  redis: Redis,
  clock: Clock,
  opts: { tokenCallsPerMin?: number } = {},
): { requests: RateLimiter; tokenCalls: RateLimiter } {
  const counters = new Counters(redis, `tlimit${randomBytes(4).toString('hex')}`);
  const logger = createLogger('silent');
  return {
    requests: new RateLimiter(counters, clock, requestLimits({ perMinute: 1000, perHour: 10_000 }), logger),
    tokenCalls: new RateLimiter(
      counters,
      clock,
      tokenCallLimits({ perMinute: opts.tokenCallsPerMin ?? 1000, perHour: 10_000 }),
      logger,
    ),
  };
}

/**
 * The approval core as route tests need it: no channel configured, so only operator decisions
 * (the API's decide route) reach it, under the same rules as in the server.
 */
export function operatorApprovals(
  db: Db,
  permissions: PermissionService,
  audit: AuditService,
): ApprovalService {
  return new ApprovalService(db, permissions, audit, new ChannelRegistry(), createLogger('silent'));
}
