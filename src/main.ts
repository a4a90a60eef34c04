import type { FastifyInstance } from 'fastify';
import { type Config, loadConfig } from './config.js';
import { systemClock } from './core/clock.js';
import { registerAuditRoutes } from './http/routes/audit.js';
import { registerPermissionRoutes } from './http/routes/permissions.js';
import { registerPolicyRoutes } from './http/routes/policies.js';
import { buildServer } from './http/server.js';
import { createLogger, flushLogger, type Logger } from './logger.js';
import { AgentService } from './services/agents.js';
import { AuditService } from './services/audit.js';
import { AuthService } from './services/auth.js';
import { ensureBootstrapOperatorKey } from './services/operators.js';
import { PermissionService } from './services/permissions.js';
import { PolicyService } from './services/policies.js';
import { RateLimiter } from './services/rateLimits.js';
import { PermissionWaiters } from './services/waiters.js';
import { Counters } from './store/counters.js';
import type { Db } from './store/db.js';
import { type EmbeddedRedis, ensureLocalRedis } from './store/embeddedRedis.js';
import { openDatabase } from './store/index.js';
import { migrate } from './store/migrate.js';
import { Bus } from './store/pubsub.js';
import { createRedis, type Redis } from './store/redis.js';

/**
 * Composition root: builds every dependency once and wires them. No business rule lives here.
 */
export interface Running {
  config: Config;
  logger: Logger;
  app: FastifyInstance;
  url: string;
  stop(): Promise<void>;
}

const AUDIT_SEAL_INTERVAL_MS = 500;
/** Expired tokens are marked within this delay; `use` checks expires_at itself meanwhile. */
const EXPIRY_SWEEP_INTERVAL_MS = 5000;

export async function openStorage(config: Config, logger: Logger): Promise<Db> {
  const db = await openDatabase(config, logger);
  const applied = await migrate(db);
  if (applied.length) logger.info({ applied }, 'applied database migrations');
  return db;
}

async function connectRedis(
  config: Config,
  logger: Logger,
): Promise<{ url: string; embedded: EmbeddedRedis | null }> {
  if (config.REDIS_URL) return { url: config.REDIS_URL, embedded: null };
  const embedded = await ensureLocalRedis(config.dataDir, logger);
  return { url: embedded?.url ?? 'redis://127.0.0.1:6379', embedded };
}

export async function startService(config: Config, logger: Logger): Promise<Running> {
  const clock = systemClock;
  const db = await openStorage(config, logger);
  const { url: redisUrl, embedded } = await connectRedis(config, logger);
  const redis: Redis = createRedis(redisUrl);
  const subscriber: Redis = createRedis(redisUrl);
  for (const conn of [redis, subscriber])
    conn.on('error', (err) => logger.warn({ err: err.message }, 'redis error'));
  await Promise.all([redis.connect(), subscriber.connect()]);

  await ensureBootstrapOperatorKey(
    db,
    { adminToken: config.ADMIN_TOKEN, dataDir: config.dataDir },
    clock,
    logger,
  );

  const bus = new Bus(redis, subscriber, config.REDIS_KEY_PREFIX);
  const counters = new Counters(redis, config.REDIS_KEY_PREFIX);
  const audit = new AuditService(db, clock, (err) =>
    logger.error({ err }, 'writing buffered audit events failed'),
  );
  const auth = new AuthService(db, clock, counters, config.AUTH_FAILURES_PER_MIN);
  const agents = new AgentService(db, audit, clock);
  const policies = new PolicyService(db, audit, clock, config.DEFAULT_POLICY_ACTION);
  await policies.load();
  if (config.POLICIES_FILE) await policies.loadFile(config.POLICIES_FILE);
  const permissions = new PermissionService(db, audit, policies, clock, {
    approvalTimeoutSeconds: config.APPROVAL_TIMEOUT_SECONDS,
    requireActionDetails: config.REQUIRE_ACTION_DETAILS,
  });
  const rateLimiter = new RateLimiter(
    counters,
    clock,
    { perMinute: config.RATE_LIMIT_PER_MIN, perHour: config.RATE_LIMIT_PER_HOUR },
    logger,
  );

  // A changed agent (revoked, rotated) drops cached keys on every instance at once.
  await bus.subscribe('agent-changed', (agentId) => auth.invalidateAgent(agentId));
  agents.onChange((agentId) => {
    auth.invalidateAgent(agentId);
    bus.publish('agent-changed', agentId).catch((err) => logger.warn({ err: err.message }, 'publish failed'));
  });

  // Every instance uses a changed policy set at once: the changer publishes, all reload.
  await bus.subscribe('policies-changed', () => {
    policies.load().catch((err) => logger.error({ err }, 'policy reload failed; keeping the previous set'));
  });
  policies.onChange(() => {
    bus.publish('policies-changed', '1').catch((err) => logger.warn({ err: err.message }, 'publish failed'));
  });

  // Waiters (long-poll, SSE) on every instance wake when a permission changes on any instance.
  const waiters = new PermissionWaiters();
  await bus.subscribe('permission-changed', (id) => waiters.notify(id));
  permissions.onChange(({ type, permission }) => {
    if (type === 'requested') return;
    bus
      .publish('permission-changed', permission.id)
      .catch((err) => logger.warn({ err: err.message }, 'publish failed'));
  });

  const sealer = setInterval(() => {
    audit.sealPending().catch((err) => logger.error({ err }, 'audit sealing failed'));
  }, AUDIT_SEAL_INTERVAL_MS);
  sealer.unref();
  const expirer = setInterval(() => {
    permissions.expireDue().catch((err) => logger.error({ err }, 'expiry sweep failed'));
  }, EXPIRY_SWEEP_INTERVAL_MS);
  expirer.unref();

  const app = buildServer({
    config,
    logger,
    auth,
    agents,
    readiness: [
      { name: 'database', check: () => db.ping() },
      { name: 'redis', check: async () => void (await redis.ping()) },
    ],
    extraRoutes: [
      (route) => registerPermissionRoutes(route, permissions, rateLimiter, waiters),
      (route) => registerPolicyRoutes(route, policies),
      (route) => registerAuditRoutes(route, audit),
    ],
  });
  const address = await app.listen({ port: config.PORT, host: config.HOST });
  logger.info({ url: address }, 'listening');

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      clearInterval(sealer);
      clearInterval(expirer);
      await app.close();
      await audit.flush();
      await audit.sealPending().catch(() => undefined);
      redis.disconnect();
      subscriber.disconnect();
      await db.close();
      await embedded?.stop();
    })();
    return stopping;
  };
  return { config, logger, app, url: address, stop };
}

/** Loads the configuration, or prints what is wrong with it and exits. */
export function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  }
}

export async function runUntilSignal(): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config.LOG_LEVEL);
  let running: Running;
  try {
    running = await startService(config, logger);
  } catch (err) {
    logger.fatal({ err }, 'failed to start');
    flushLogger(logger);
    process.stderr.write(`agent-otp: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const shutdown = (signal: string) => {
    logger.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    running.stop().then(
      () => {
        logger.info('stopped');
        flushLogger(logger);
        process.exit(0);
      },
      (err) => {
        logger.error({ err }, 'shutdown failed');
        flushLogger(logger);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
