import { type Job, Worker } from 'bullmq';
import { retryDelayMs } from '../core/webhook.js';
import type { Logger, OutageLog } from '../logger.js';
import type { ApprovalMessages } from '../services/approvals/messages.js';
import type { PermissionService } from '../services/permissions.js';
import type { WebhookService } from '../services/webhooks.js';
import { isUnavailable, type Redis } from '../store/redis.js';
import { type JobPayload, QUEUES, type QueueKey, WEBHOOK_BACKOFF } from './catalog.js';
import type { JobQueue } from './jobQueue.js';
import type { Reconciler } from './reconciler.js';

export interface WorkerDeps {
  /** A `worker` connection (src/store/redis.ts): BullMQ workers wait for Redis, as it requires. */
  connection: Redis;
  /** Where connection errors go: an outage is reported once, not by every worker on every retry. */
  connectionErrors: OutageLog;
  prefix: string;
  logger: Logger;
  messages: ApprovalMessages;
  permissions: PermissionService;
  reconciler: Reconciler;
  jobs: JobQueue;
  webhooks: WebhookService;
  reconcileIntervalMs: number;
}

/** A failed webhook attempt that the delivery service wants retried after delayMs. */
export class RetryWebhookLater extends Error {
  constructor(
    readonly delayMs: number,
    message: string,
  ) {
    super(message);
    this.name = 'RetryWebhookLater';
  }
}

/**
 * The custom BullMQ backoff strategy of webhook jobs: the wait the delivery service chose (about
 * 1 s, then doubling, shortened to end at the retry window); the plain doubling otherwise.
 */
export function webhookBackoff(attemptsMade: number, type?: string, err?: Error): number {
  if (type === WEBHOOK_BACKOFF && err instanceof RetryWebhookLater) return err.delayMs;
  return retryDelayMs(attemptsMade);
}

/** One handler per queue, each given its own queue's parsed payload. */
type Handlers = { [K in QueueKey]: (data: JobPayload<K>) => Promise<void> };

export interface RunningWorkers {
  /** Waits for the jobs in flight, unless `force` (Redis is down: they could not finish anyway). */
  close(force?: boolean): Promise<void>;
}

/**
 * Consumer side: one BullMQ worker per queue, each job a call into a service. A job that throws
 * is retried with exponential backoff; a job that keeps failing is dropped and left to the
 * reconciler, which works from Postgres.
 */
export function startWorkers(deps: WorkerDeps): RunningWorkers {
  const handlers: Handlers = {
    notify: ({ permissionId }) => deps.messages.notify(permissionId),
    messageUpdate: ({ permissionId, force }) =>
      deps.messages.syncMessages(permissionId, { force: force === true }),
    expire: async () => void (await deps.permissions.expireDue()),
    remind: ({ permissionId }) => deps.messages.remind(permissionId),
    escalate: ({ permissionId }) => deps.messages.escalate(permissionId),
    reconcile: () => deps.reconciler.run(),
    webhook: async ({ deliveryId }) => {
      const result = await deps.webhooks.deliver(deliveryId);
      if (result.outcome === 'retry') throw new RetryWebhookLater(result.delayMs, result.error);
    },
  };
  const start = <K extends QueueKey>(key: K) => startWorker(deps, key, handlers[key]);
  const workers = (Object.keys(QUEUES) as QueueKey[]).map(start);

  // The reconciler runs on a timer in every worker process; the job id per time bucket makes
  // it run once per interval across all of them, and it survives a Redis flush (a BullMQ
  // scheduler kept in Redis would not).
  const tick = () => {
    const bucket = Math.floor(Date.now() / deps.reconcileIntervalMs);
    deps.jobs.soon('reconcile', deps.jobs.reconcile(bucket));
  };
  tick();
  const timer = setInterval(tick, deps.reconcileIntervalMs);
  timer.unref();

  return {
    async close(force = false) {
      clearInterval(timer);
      await Promise.all(workers.map((w) => w.close(force)));
    },
  };
}

/** The BullMQ worker of one queue: its jobs' payloads parsed by the catalog, typed for its handler. */
function startWorker<K extends QueueKey>(
  deps: WorkerDeps,
  key: K,
  handler: (data: JobPayload<K>) => Promise<void>,
): Worker {
  const { name, payload } = QUEUES[key];
  const worker = new Worker(
    name,
    async (job: Job) => {
      await handler(payload.parse(job.data) as JobPayload<K>);
    },
    {
      connection: deps.connection,
      prefix: deps.prefix,
      // Webhook jobs mostly wait on receivers (up to the timeout each).
      concurrency: key === 'reconcile' ? 1 : key === 'webhook' ? 16 : 8,
      ...(key === 'webhook' ? { settings: { backoffStrategy: webhookBackoff } } : {}),
    },
  );
  worker.on('failed', (job, err) => {
    const fields = { queue: name, jobId: job?.id, attempt: job?.attemptsMade, err: err.message };
    if (err instanceof RetryWebhookLater) {
      deps.logger.info({ ...fields, retryInMs: err.delayMs }, 'webhook attempt failed; will retry');
    } else {
      deps.logger.warn(fields, 'job failed');
    }
  });
  worker.on('error', (err) => {
    if (isUnavailable(err, deps.connection)) deps.connectionErrors.failed(err);
    else deps.logger.error({ queue: name, err: err.message }, 'worker error');
  });
  return worker;
}
