import type { Config } from '../config.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../logger.js';
import { AlertService, type AlertSink, type AlertWebhooks } from '../services/alerts.js';
import type { AuditService } from '../services/audit.js';
import type { AuthService } from '../services/auth.js';
import { AuthFailureRecorder, MetricsService } from '../services/metrics.js';
import type { PermissionService } from '../services/permissions.js';
import { observePermissionEvent, type PromMetrics, promMetrics } from '../services/prometheus.js';
import type { Db } from '../store/db.js';

const FLUSH_INTERVAL_MS = 5_000;
const ALERT_INTERVAL_MS = 60_000;
const ALERT_OFFSET_MS = 2 * FLUSH_INTERVAL_MS;

export interface Monitoring {
  metrics: MetricsService;
  prom: PromMetrics;
  alerts: AlertService;
  stop(): Promise<void>;
}

/**
 * Wires monitoring into a process: Prometheus counters on permission events, failed
 * authentications and audit events that could not be written, the per-minute failed-authentication flush to Postgres (every role that
 * authenticates), and, in the worker role, the alert evaluation every minute.
 */
export function startMonitoring(deps: {
  config: Config;
  db: Db;
  clock: Clock;
  logger: Logger;
  auth: AuthService;
  audit: AuditService;
  permissions: PermissionService;
  sink: AlertSink;
  /** Records and queues alert webhooks (set when ALERT_WEBHOOK_URL is). */
  alertWebhooks: AlertWebhooks | null;
  queueDepth: () => Promise<Record<string, number>>;
  evaluateAlerts: boolean;
}): Monitoring {
  const { config, db, clock, logger } = deps;
  const prom = promMetrics();
  prom.setQueueDepthSource(deps.queueDepth);
  deps.permissions.onChange(({ type, permission }) => observePermissionEvent(prom, type, permission));
  const failures = new AuthFailureRecorder(db, clock);
  deps.auth.onFailure((agentId) => {
    prom.failedAuth.inc();
    failures.record(agentId);
  });
  // Event types are the product's own, a bounded label.
  deps.audit.onWriteFailure((failure) => prom.auditWriteFailures.inc({ type: failure.type }));
  const metrics = new MetricsService(db, clock);
  const alerts = new AlertService(
    db,
    metrics,
    deps.sink,
    clock,
    {
      denialRate: config.ALERT_DENIAL_RATE,
      unusedTokenRate: config.ALERT_UNUSED_TOKEN_RATE,
      failedAuthPerMinute: config.ALERT_FAILED_AUTH_PER_MIN,
      minVolume: config.ALERT_MIN_VOLUME,
    },
    logger,
    deps.alertWebhooks,
  );
  const flush = () =>
    failures
      .flush()
      .catch((err) => logger.warn({ err: (err as Error).message }, 'auth failure flush failed'));
  const flushTimer = setInterval(flush, FLUSH_INTERVAL_MS);
  flushTimer.unref();
  let alertTimer: NodeJS.Timeout | null = null;
  if (deps.evaluateAlerts) {
    const evaluate = () =>
      alerts
        .evaluate()
        .catch((err) => logger.error({ err: (err as Error).message }, 'alert evaluation failed'));
    // Aligned to ALERT_OFFSET_MS past each minute, when every instance has flushed the last one.
    const first = ALERT_INTERVAL_MS - (Date.now() % ALERT_INTERVAL_MS) + ALERT_OFFSET_MS;
    alertTimer = setTimeout(() => {
      evaluate();
      alertTimer = setInterval(evaluate, ALERT_INTERVAL_MS);
      alertTimer.unref();
    }, first);
    alertTimer.unref();
  }
  return {
    metrics,
    prom,
    alerts,
    async stop() {
      clearInterval(flushTimer);
      if (alertTimer) {
        clearTimeout(alertTimer);
        clearInterval(alertTimer);
      }
      await flush();
    },
  };
}
