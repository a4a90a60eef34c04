import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Db } from '../store/db.js';
import type { AuditService } from './audit.js';
import { AuditForwarder } from './auditForwarder.js';

const DAY_MS = 86_400_000;
/** The first retention run waits a little after start, so a restart storm does not purge at once. */
const FIRST_RETENTION_DELAY_MS = 60_000;

/**
 * The worker role's audit jobs: the daily retention purge (one instance at a time through its
 * advisory lock) and, when AUDIT_FORWARD_URL is set, forwarding to a SIEM.
 */
export function startAuditJobs(deps: {
  db: Db;
  audit: AuditService;
  config: Pick<
    Config,
    'AUDIT_RETENTION_DAYS' | 'AUDIT_FORWARD_URL' | 'AUDIT_FORWARD_BATCH_SIZE' | 'AUDIT_FORWARD_INTERVAL_MS'
  >;
  logger: Logger;
}): { stop(): Promise<void> } {
  const { audit, config, logger } = deps;
  const runRetention = () => {
    audit
      .applyRetention(config.AUDIT_RETENTION_DAYS, { onlyForwarded: Boolean(config.AUDIT_FORWARD_URL) })
      .then((r) => {
        if (r.purged > 0) {
          logger.info({ purged: r.purged, checkpoint: r.checkpoint }, 'audit retention purged old events');
        }
      })
      .catch((err) => logger.error({ err }, 'audit retention failed'));
  };
  let daily: NodeJS.Timeout | null = null;
  const first = setTimeout(() => {
    runRetention();
    daily = setInterval(runRetention, DAY_MS);
    daily.unref();
  }, FIRST_RETENTION_DELAY_MS);
  first.unref();

  let forwarder: AuditForwarder | null = null;
  if (config.AUDIT_FORWARD_URL) {
    forwarder = new AuditForwarder(deps.db, {
      url: config.AUDIT_FORWARD_URL,
      batchSize: config.AUDIT_FORWARD_BATCH_SIZE,
      intervalMs: config.AUDIT_FORWARD_INTERVAL_MS,
      onError: (err, attempt) =>
        logger.warn({ err: (err as Error).message, attempt }, 'audit forwarding failed; will retry'),
    });
    forwarder.start();
  }
  return {
    async stop() {
      clearTimeout(first);
      if (daily) clearInterval(daily);
      await forwarder?.stop();
    },
  };
}
