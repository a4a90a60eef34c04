import { Queue } from 'bullmq';
import { renderSignature } from '../core/approval/card.js';
import type { Permission } from '../core/permission.js';
import { type Logger, OutageLog } from '../logger.js';
import type { ApprovalJobs } from '../services/approvals/scheduler.js';
import { isUnavailable, type Redis } from '../store/redis.js';
import {
  type JobPayload,
  jobIds,
  QUEUES,
  type QueueKey,
  WEBHOOK_BACKOFF,
  WEBHOOK_JOB_ATTEMPTS,
} from './catalog.js';

const DEFAULT_JOB_OPTIONS = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 1000 },
  // Finished and failed jobs are dropped, so the reconciler can enqueue the same id again;
  // the database, not Redis, is the record of what was done.
  removeOnComplete: true,
  removeOnFail: true,
} as const;

/** Thrown at once, without a round trip, while the producer's connection is down. */
export class QueueUnavailableError extends Error {
  constructor() {
    super('Redis is unavailable: job not enqueued');
    this.name = 'QueueUnavailableError';
  }
}

/**
 * Producer side of the queues: what the API and services enqueue after a commit. Give it a
 * `producer` connection (src/store/redis.ts), not the workers' one: an add must fail at once while
 * Redis is down, not wait for it, so that nothing piles up in memory during a long outage. The
 * database is the record; the reconciler enqueues again what an outage dropped.
 */
export class JobQueue implements ApprovalJobs {
  private readonly queues = new Map<QueueKey, Queue>();
  private readonly outage: OutageLog;

  constructor(
    private readonly connection: Redis,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {
    this.outage = new OutageLog(logger, 'job queue', 'jobs are dropped and the reconciler will repair them');
    for (const key of Object.keys(QUEUES) as QueueKey[]) {
      const queue = new Queue(QUEUES[key].name, { connection, prefix: this.prefix });
      // Connection errors surface here too; the connection's own handler reports the outage.
      queue.on('error', () => undefined);
      this.queues.set(key, queue);
    }
  }

  /**
   * The queue to use, or a QueueUnavailableError while disconnected: BullMQ would otherwise wait
   * for a connection that was down when the process started.
   */
  private queue(key: QueueKey): Queue | undefined {
    if (this.connection.status !== 'ready') throw new QueueUnavailableError();
    return this.queues.get(key);
  }

  private async add<K extends QueueKey>(
    key: K,
    jobId: string,
    data: JobPayload<K>,
    delayMs = 0,
    options: { attempts?: number; backoff?: { type: string } } = {},
  ): Promise<void> {
    const payload = QUEUES[key].payload.parse(data);
    await this.queue(key)?.add(QUEUES[key].name, payload, {
      ...DEFAULT_JOB_OPTIONS,
      ...options,
      jobId,
      delay: Math.max(0, Math.round(delayMs)),
    });
  }

  notify(permissionId: string): Promise<void> {
    return this.add('notify', jobIds.notify(permissionId), { permissionId });
  }

  messageUpdate(permission: Pick<Permission, 'id' | 'status' | 'approvals'>): Promise<void> {
    return this.add('messageUpdate', jobIds.messageUpdate(permission.id, renderSignature(permission)), {
      permissionId: permission.id,
    });
  }

  /**
   * Re-renders every message of a permission whatever state it shows: after an erasure, the
   * update queued by the last state change (same state, same id) would not edit them.
   */
  messageRedraw(permissionId: string, eventId: string): Promise<void> {
    return this.add('messageUpdate', jobIds.messageRedraw(permissionId, eventId), {
      permissionId,
      force: true,
    });
  }

  expireAt(permission: Pick<Permission, 'id' | 'expiresAt'>, now: Date): Promise<void> {
    return this.add(
      'expire',
      jobIds.expire(permission.id, permission.expiresAt),
      { permissionId: permission.id },
      permission.expiresAt.getTime() - now.getTime() + 250,
    );
  }

  remindIn(permissionId: string, seconds: number): Promise<void> {
    return this.add('remind', jobIds.remind(permissionId), { permissionId }, seconds * 1000);
  }

  escalateIn(permissionId: string, seconds: number): Promise<void> {
    return this.add('escalate', jobIds.escalate(permissionId), { permissionId }, seconds * 1000);
  }

  reconcile(bucket: number): Promise<void> {
    return this.add('reconcile', jobIds.reconcile(bucket), {});
  }

  /**
   * One job per delivery, its id the delivery id (so the reconciler's re-queue of a job that
   * still exists is a no-op). Retries follow the custom `webhook` backoff strategy.
   */
  webhook(deliveryId: string): Promise<void> {
    return this.add('webhook', jobIds.webhook(deliveryId), { deliveryId }, 0, {
      attempts: WEBHOOK_JOB_ATTEMPTS,
      backoff: { type: WEBHOOK_BACKOFF },
    });
  }

  /**
   * Enqueue without failing the caller: the reconciler repairs what a Redis outage drops. An
   * outage is logged when it starts and when it ends, not once per job.
   */
  soon(what: string, work: Promise<void>): void {
    work.then(
      () => this.outage.succeeded(),
      (err) => {
        if (isUnavailable(err, this.connection)) this.outage.failed(err, { what });
        else
          this.logger.warn(
            { err: (err as Error).message, what },
            'enqueue failed; the reconciler will repair it',
          );
      },
    );
  }

  /** Jobs waiting, delayed or active per queue; throws at once while Redis is down. */
  async depth(): Promise<Record<string, number>> {
    const names = Object.keys(QUEUES) as QueueKey[];
    const counts = await Promise.all(names.map((key) => this.queue(key)?.count() ?? 0));
    return Object.fromEntries(names.map((key, i) => [QUEUES[key].name, counts[i] ?? 0]));
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
