import type { FastifyInstance } from 'fastify';
// Each channel loads its SDK (discord.js, Bolt: seconds of start) only when it is configured.
import { CHANNELS, channelIdentityShapes } from './chat/channels.js';
import { approvalGuidance } from './chat/guidance.js';
import { ChatInteractions } from './chat/interactions.js';
import type { ChannelPlugin, RunningChannel } from './chat/plugin.js';
import { registerWebAssets } from './chat/web/assets.js';
import { registerWebAuthRoutes, WEB_AUTH_ASSETS } from './chat/web/auth.js';
import { WEB_PAGE_ASSETS } from './chat/web/channel.js';
import { type Config, loadConfig } from './config.js';
import { IdentitySyntax, NO_LINKS } from './core/approvers.js';
import { systemClock } from './core/clock.js';
import { registerApproverRoutes } from './http/routes/approvers.js';
import { registerApproverWebAuthRoutes } from './http/routes/approverWebAuth.js';
import { registerAuditRoutes } from './http/routes/audit.js';
import { registerMetricsRoutes } from './http/routes/metrics.js';
import { registerPermissionRoutes } from './http/routes/permissions.js';
import { registerPolicyRoutes } from './http/routes/policies.js';
import { registerWebhookRoutes } from './http/routes/webhooks.js';
import { buildServer } from './http/server.js';
import { createLogger, flushLogger, type Logger, OutageLog } from './logger.js';
import { JobQueue } from './queue/jobQueue.js';
import { startMonitoring } from './queue/monitoring.js';
import { Reconciler } from './queue/reconciler.js';
import { type RunningWorkers, startWorkers } from './queue/workers.js';
import { reportNameDuplicates } from './services/agentNames.js';
import { AgentService } from './services/agents.js';
import { ChannelRegistry } from './services/approvals/channel.js';
import { ApprovalMessages } from './services/approvals/messages.js';
import { ApprovalScheduler } from './services/approvals/scheduler.js';
import { ApprovalService, WEB_CHANNEL } from './services/approvals/service.js';
import { WebApprovals } from './services/approvals/web.js';
import { ApproverService } from './services/approvers.js';
import { AuditService } from './services/audit.js';
import { startAuditJobs } from './services/auditJobs.js';
import { AuthService } from './services/auth.js';
import { CeremonyLimiter } from './services/ceremonyLimit.js';
import { ErasureService } from './services/erasure.js';
import { ensureBootstrapOperatorKey } from './services/operators.js';
import { PermissionService } from './services/permissions.js';
import { PersonDirectory } from './services/persons.js';
import { PolicyService } from './services/policies.js';
import { RateLimiter, rateLimiterOutage, requestLimits, tokenCallLimits } from './services/rateLimits.js';
import { loadSecretsKey, SecretBox } from './services/secretBox.js';
import { PermissionWaiters } from './services/waiters.js';
import { WebAuthService } from './services/webAuth.js';
import { WebhookSecrets } from './services/webhookSecrets.js';
import { WebhookService } from './services/webhooks.js';
import type { WebSessions } from './services/webSessions.js';
import { Counters } from './store/counters.js';
import type { Db } from './store/db.js';
import { type EmbeddedRedis, ensureLocalRedis } from './store/embeddedRedis.js';
import { openDatabase } from './store/index.js';
import { migrate } from './store/migrate.js';
import { Bus } from './store/pubsub.js';
import { createRedis, isUnavailable, type Redis, whenReady } from './store/redis.js';

/**
 * Composition root: builds every dependency once and wires the roles. No business rule lives
 * here. Roles: `api` (HTTP, and Slack's HTTP mode), `worker` (queues, reconciler, expiry),
 * `bot` (Slack Socket Mode); `start` runs all three in one process.
 */
export type Role = 'api' | 'worker' | 'bot';
export const ALL_ROLES: readonly Role[] = ['api', 'worker', 'bot'];

export interface Running {
  config: Config;
  logger: Logger;
  /** The system of record, for in-process tests that check what was stored. */
  db: Db;
  app: FastifyInstance | null;
  url: string | null;
  stop(): Promise<void>;
}

const AUDIT_SEAL_INTERVAL_MS = 500;
/** How long a start waits for Redis before going on without it (/readyz says 503 meanwhile). */
const REDIS_START_WAIT_MS = 2000;
/** While pub/sub is down, how often an instance re-reads what it would have been told. */
const CATCH_UP_INTERVAL_MS = 5000;
/** Longest a shutdown waits for the queues before closing their connections. */
const QUEUE_CLOSE_DEADLINE_MS = 3000;

/** Waits for `work`, but no longer than `ms`; its failure is ignored (shutdown goes on). */
const settleWithin = (work: Promise<unknown>, ms: number): Promise<void> =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref();
    work.then(
      () => resolve(),
      () => resolve(),
    );
  });

export async function openStorage(config: Config, logger: Logger): Promise<Db> {
  const db = await openDatabase(config, logger);
  const applied = await migrate(db);
  if (applied.length) logger.info({ applied }, 'applied database migrations');
  await reportNameDuplicates(db, logger);
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

export interface ServiceOptions {
  /** The approval channels to offer (src/chat/channels.ts); each starts when configured. */
  channels?: readonly ChannelPlugin[];
  /** Who is signed in on the web pages: passkey sessions (WebAuthService) unless a test says otherwise. */
  webSessions?: WebSessions;
}

export async function startService(
  config: Config,
  logger: Logger,
  roles: readonly Role[] = ALL_ROLES,
  { channels: plugins = CHANNELS, webSessions }: ServiceOptions = {},
): Promise<Running> {
  const clock = systemClock;
  const db = await openStorage(config, logger);
  const { url: redisUrl, embedded } = await connectRedis(config, logger);
  // One connection per use (src/store/redis.ts): the request path and the queue producers fail
  // at once while Redis is down; only the workers' connection waits for it.
  const redis: Redis = createRedis(redisUrl, 'commands');
  const producer: Redis = createRedis(redisUrl, 'producer');
  const subscriber: Redis = createRedis(redisUrl, 'subscriber');
  const workerConnection: Redis | null = roles.includes('worker') ? createRedis(redisUrl, 'worker') : null;
  const connections = [redis, producer, subscriber, ...(workerConnection ? [workerConnection] : [])];
  const redisOutage = new OutageLog(
    logger,
    'redis',
    'rate limits are not counted, chat and webhook jobs wait for the reconciler, /readyz answers 503',
  );
  let closing = false;
  for (const conn of connections) {
    conn.on('error', (err) => redisOutage.failed(err));
    conn.on('close', () => {
      if (!closing) redisOutage.failed(new Error('connection lost'));
    });
    conn.on('ready', () => {
      if (connections.every((c) => c.status === 'ready')) redisOutage.succeeded();
    });
  }
  // Serve without Redis rather than not at all: it holds nothing that cannot be rebuilt.
  await Promise.all(connections.map((c) => whenReady(c, REDIS_START_WAIT_MS)));

  await ensureBootstrapOperatorKey(
    db,
    { adminToken: config.ADMIN_TOKEN, dataDir: config.dataDir },
    clock,
    logger,
  );

  const prefix = config.REDIS_KEY_PREFIX;
  const bus = new Bus(redis, subscriber, prefix);
  const counters = new Counters(redis, prefix);
  const audit = new AuditService(db, clock);
  // The event's id and type, never its details (they may hold what the caller sent).
  audit.onWriteFailure((failure) => logger.error(failure, 'an audit event could not be written'));
  const auth = new AuthService(db, clock, counters, config.AUTH_FAILURES_PER_MIN);
  // Webhooks: signing secrets are stored encrypted under SECRETS_ENCRYPTION_KEY (or the key file).
  const webhookSecrets = new WebhookSecrets(
    new SecretBox(
      loadSecretsKey(
        {
          configured: config.SECRETS_ENCRYPTION_KEY,
          dataDir: config.dataDir,
          sharedDatabase: Boolean(config.DATABASE_URL),
        },
        logger,
      ),
    ),
  );
  const agents = new AgentService(db, audit, clock, {
    webhookSecrets,
    allowPrivateWebhooks: config.WEBHOOK_ALLOW_PRIVATE,
  });
  const policies = new PolicyService(db, audit, clock, config.DEFAULT_POLICY_ACTION, logger);
  await policies.load();
  if (config.POLICIES_FILE) await policies.loadFile(config.POLICIES_FILE);
  // The persons who decide: APPROVER_LINKS and the approver accounts, held in memory.
  const persons = new PersonDirectory(db, logger, config.APPROVER_LINKS ?? NO_LINKS);
  await persons.load();
  const approverAccounts = new ApproverService(
    db,
    audit,
    clock,
    new IdentitySyntax(channelIdentityShapes(plugins)),
    persons.configured,
  );
  // Web sign-in with passkeys: its relying party is PUBLIC_URL (off, with a reason, without one).
  const webAuth = new WebAuthService(db, audit, clock, approverAccounts, config.PUBLIC_URL);
  const permissions = new PermissionService(db, audit, policies, clock, {
    approvalTimeoutSeconds: config.APPROVAL_TIMEOUT_SECONDS,
    requireActionDetails: config.REQUIRE_ACTION_DETAILS,
    allowPrivateWebhooks: config.WEBHOOK_ALLOW_PRIVATE,
    approverLinks: persons.links,
  });
  const limiterOutage = rateLimiterOutage(logger);
  const rateLimiter = new RateLimiter(
    counters,
    clock,
    requestLimits({ perMinute: config.RATE_LIMIT_PER_MIN, perHour: config.RATE_LIMIT_PER_HOUR }),
    logger,
    limiterOutage,
  );
  const tokenCallLimiter = new RateLimiter(
    counters,
    clock,
    tokenCallLimits({
      perMinute: config.TOKEN_RATE_LIMIT_PER_MIN,
      perHour: config.TOKEN_RATE_LIMIT_PER_HOUR,
    }),
    logger,
    limiterOutage,
  );
  const jobs = new JobQueue(producer, `${prefix}:bull`, logger);
  const channels = new ChannelRegistry(plugins.map((c) => c.name));
  const publicUrl = config.PUBLIC_URL?.replace(/\/+$/, '');
  const approvals = new ApprovalService(db, permissions, audit, channels, logger, persons.links, {
    // Step-up hands a chat click over to the web page: its link needs PUBLIC_URL.
    pageUrl: (id) => (publicUrl ? `${publicUrl}/approve/${encodeURIComponent(id)}` : null),
    clock,
  });
  const messages = new ApprovalMessages(db, channels, clock, logger);
  const scheduler = new ApprovalScheduler(jobs, clock, () => channels.enabled);
  const erasure = new ErasureService(db, audit, permissions);
  const webhooks = new WebhookService(
    db,
    audit,
    webhookSecrets,
    clock,
    logger,
    {
      allowPrivate: config.WEBHOOK_ALLOW_PRIVATE,
      timeoutMs: config.WEBHOOK_TIMEOUT_MS,
      retryWindowMs: config.WEBHOOK_RETRY_WINDOW_SECONDS * 1000,
      alertUrl: config.ALERT_WEBHOOK_URL,
      alertSecret: config.ALERT_WEBHOOK_SECRET,
    },
    jobs,
  );

  // Approval channels (src/chat/channels.ts): each one that is configured posts and edits cards,
  // and receives its clicks in the role that owns its connection.
  const interactions = new ChatInteractions(approvals, messages);
  const running: { name: string; channel: RunningChannel }[] = [];
  for (const plugin of plugins) {
    const channel = await plugin.create({
      config,
      roles,
      logger,
      interactions,
      web: {
        approvals,
        requests: new WebApprovals(db, approvals, persons.links, clock, audit),
        sessions: webSessions ?? webAuth,
      },
    });
    if (!channel) continue;
    channels.register(channel.adapter);
    running.push({ name: plugin.name, channel });
  }

  // After every committed change: wake waiters everywhere, and queue the chat work.
  const waiters = new PermissionWaiters();
  const reloadPolicies = () =>
    policies.load().catch((err) => logger.error({ err }, 'policy reload failed; keeping the previous set'));
  bus.subscribe('permission-changed', (id) => waiters.notify(id));
  bus.subscribe('agent-changed', (agentId) => auth.invalidateAgent(agentId));
  bus.subscribe('policies-changed', reloadPolicies);
  bus.subscribe('approvers-changed', () => void persons.load());
  // Messages published while this instance was cut off from Redis are lost: catch up on
  // reconnecting, and meanwhile re-read every few seconds what other instances may have changed.
  const catchUp = () => {
    waiters.notifyAll();
    reloadPolicies();
    void persons.load();
  };
  bus.onResubscribed(catchUp);
  const catchUpTimer = setInterval(() => {
    if (subscriber.status !== 'ready') catchUp();
  }, CATCH_UP_INTERVAL_MS);
  catchUpTimer.unref();
  const publishOutage = new OutageLog(logger, 'pub/sub', 'other instances catch up when it is back');
  const publish = (channel: string, message: string) =>
    bus.publish(channel, message).then(
      () => publishOutage.succeeded(),
      (err) => {
        if (isUnavailable(err, redis)) publishOutage.failed(err, { channel });
        else logger.warn({ err: (err as Error).message, channel }, 'publish failed');
      },
    );
  agents.onChange((agentId) => {
    auth.invalidateAgent(agentId);
    publish('agent-changed', agentId);
  });
  policies.onChange(() => publish('policies-changed', '1'));
  // This instance reloads before the operator's call answers; the others when told.
  approverAccounts.onChange((approverId) => webAuth.approverChanged(approverId));
  approverAccounts.onChange(async () => {
    await persons.load();
    publish('approvers-changed', '1');
  });
  permissions.onChange(({ type, permission }) => {
    // A policy decides only at creation, when nobody can be waiting yet: skip the publish then
    // (it would cost every auto-approved request a Redis round trip for nothing).
    const decidedAtCreation =
      permission.decidedBy?.type === 'policy' && (type === 'approved' || type === 'denied');
    if (type !== 'requested' && !decidedAtCreation) {
      // Waiters here wake without Redis; the others through it.
      waiters.notify(permission.id);
      publish('permission-changed', permission.id);
    }
  });
  // Posting, message edits, reminders, escalation and expiry: ApprovalScheduler decides which.
  permissions.onChange((change) => scheduler.onPermissionEvent(change));
  erasure.onErased((erased) => scheduler.onErased(erased));

  // Webhooks: the delivery row was written with the change; queue it now that it is committed
  // (a lost job is re-queued by the reconciler).
  permissions.onChange(({ deliveryId }) => {
    if (deliveryId) void webhooks.enqueue(deliveryId);
  });

  // Monitoring: Prometheus counters, failed-authentication aggregation, alerts (worker role).
  const monitoring = startMonitoring({
    config,
    db,
    clock,
    logger,
    auth,
    audit,
    permissions,
    sink: messages,
    alertWebhooks: config.ALERT_WEBHOOK_URL ? webhooks : null,
    queueDepth: () => jobs.depth(),
    evaluateAlerts: roles.includes('worker'),
  });

  const sealer = setInterval(() => {
    audit.sealPending().catch((err) => logger.error({ err }, 'audit sealing failed'));
  }, AUDIT_SEAL_INTERVAL_MS);
  sealer.unref();

  // Audit retention (daily) and SIEM forwarding run in the worker role.
  const auditJobs = roles.includes('worker') ? startAuditJobs({ db, audit, config, logger }) : null;

  let workers: RunningWorkers | null = null;
  if (roles.includes('worker')) {
    const reconciler = new Reconciler(db, messages, permissions, jobs, clock, logger, webhooks);
    workers = startWorkers({
      connection: workerConnection as Redis,
      connectionErrors: redisOutage,
      prefix: `${prefix}:bull`,
      logger,
      messages,
      permissions,
      reconciler,
      jobs,
      webhooks,
      reconcileIntervalMs: config.RECONCILE_INTERVAL_MS,
    });
  }

  let app: FastifyInstance | null = null;
  let url: string | null = null;
  if (roles.includes('api')) {
    app = buildServer({
      config,
      logger,
      auth,
      agents,
      readiness: [
        { name: 'database', check: () => db.ping() },
        {
          name: 'redis',
          // Both fail at once while disconnected; a hung Redis fails the PING after 500 ms.
          check: async () => {
            if (subscriber.status !== 'ready') throw new Error('subscriber disconnected');
            await redis.ping();
          },
        },
      ],
      extraRoutes: [
        (route) =>
          registerPermissionRoutes(
            route,
            {
              permissions,
              approvals,
              limiters: { requests: rateLimiter, tokenCalls: tokenCallLimiter },
              waiters,
              agents,
            },
            { publicUrl: config.PUBLIC_URL, approvalPage: channels.get(WEB_CHANNEL) !== undefined },
          ),
        (route) => registerPolicyRoutes(route, policies, agents),
        (route) => registerApproverRoutes(route, approverAccounts),
        (route) => registerApproverWebAuthRoutes(route, webAuth),
        (_route, server) => {
          registerWebAssets(server, ['web.css', 'web.js', ...WEB_AUTH_ASSETS, ...WEB_PAGE_ASSETS]);
          registerWebAuthRoutes(server, webAuth, new CeremonyLimiter(counters, clock));
        },
        (route) => registerAuditRoutes(route, audit, erasure, agents),
        (route) => registerWebhookRoutes(route, webhooks, agents),
        (route, server) =>
          registerMetricsRoutes(route, server, {
            metrics: monitoring.metrics,
            prom: monitoring.prom,
            agents,
            metricsToken: config.METRICS_TOKEN,
          }),
        (_route, server) => {
          for (const { channel } of running) channel.mount?.(server);
        },
      ],
    });
    url = await app.listen({ port: config.PORT, host: config.HOST });
  }
  for (const { channel } of running) await channel.start?.();
  // The url stays the last field: scripts and tests read it from this line.
  logger.info(
    {
      roles,
      // How each channel receives its interactions here: `slack: 'http'`, `discord: 'off'`, …
      ...Object.fromEntries(
        plugins.map((p) => [p.name, running.find((r) => r.name === p.name)?.channel.inbound ?? 'off']),
      ),
      url,
    },
    'listening',
  );
  // Once per start: why requests would wait unanswered, and what to configure (null: someone can decide).
  const guidance = approvalGuidance(config);
  if (guidance) logger.warn({ approvers: 'none' }, guidance);

  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      // Which step a slow shutdown is waiting for, said every 2 s until it is done (the process
      // is killed at 10 s: this is what tells an operator, or a test, where the time went). Not
      // unref'd, on purpose: while a step waits on something that holds no handle (a queue close
      // with Redis down, bounded by an unref'd deadline), the process must not run out of work
      // and exit before the audit is drained and the database closed.
      let step = 'timers';
      const watchdog = setInterval(() => logger.warn({ step }, 'shutdown is still waiting'), 2000);
      const at = <T>(name: string, work: Promise<T>): Promise<T> => {
        step = name;
        return work;
      };
      try {
        clearInterval(sealer);
        clearInterval(catchUpTimer);
        await at('audit jobs', auditJobs?.stop() ?? Promise.resolve());
        // Waiting requests answer now rather than hold the shutdown until their deadline.
        waiters.close();
        await at('http server', app?.close() ?? Promise.resolve());
        for (const { name, channel } of running)
          await at(`channel ${name}`, channel.stop?.() ?? Promise.resolve());
        // With Redis down a graceful close would wait for it: close at once instead (a job cut
        // short is retried by BullMQ or repaired by the reconciler), and never wait past a deadline.
        if (workers) {
          const force = workerConnection?.status !== 'ready';
          await at('queue workers', settleWithin(workers.close(force), QUEUE_CLOSE_DEADLINE_MS));
        }
        await at('monitoring', monitoring.stop());
        await at('queue producers', settleWithin(jobs.close(), QUEUE_CLOSE_DEADLINE_MS));
        await at('audit drain', audit.drain());
        await at(
          'audit seal',
          audit.sealPending().catch(() => undefined),
        );
        closing = true;
        for (const conn of connections) conn.disconnect();
        await at('database', db.close());
        await at('embedded redis', embedded?.stop() ?? Promise.resolve());
      } finally {
        clearInterval(watchdog);
      }
    })();
    return stopping;
  };
  return { config, logger, db, app, url, stop };
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

export async function runUntilSignal(roles: readonly Role[] = ALL_ROLES): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config.LOG_LEVEL, { format: config.LOG_FORMAT });
  let running: Running;
  try {
    running = await startService(config, logger, roles);
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
