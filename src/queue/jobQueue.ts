import { Queue } from 'bullmq';
import type { Permission } from '../core/permission.js';
import type { Logger } from '../logger.js';
import { renderSignature } from '../services/approvals.js';
import type { Redis } from '../store/redis.js';
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

/** Producer side of the queues: what the API and services enqueue after a commit. */
export class JobQueue {
  private readonly queues = new Map<QueueKey, Queue>();

  constructor(
    connection: Redis,
    private readonly prefix: string,
    private readonly logger: Logger,
  ) {
    for (const key of Object.keys(QUEUES) as QueueKey[]) {
      this.queues.set(key, new Queue(QUEUES[key].name, { connection, prefix: this.prefix }));
    }
  }

  private async add<K extends QueueKey>(
    key: K,
    jobId: string,
    data: JobPayload<K>,
    delayMs = 0,
    options: { attempts?: number; backoff?: { type: string } } = {},
  ): Promise<void> {
    const payload = QUEUES[key].payload.parse(data);
    await this.queues.get(key)?.add(QUEUES[key].name, payload, {
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

  /** Enqueue without failing the caller: the reconciler repairs what a Redis outage drops. */
  soon(what: string, work: Promise<void>): void {
    work.catch((err) =>
      this.logger.warn(
        { err: (err as Error).message, what },
        'enqueue failed; the reconciler will repair it',
      ),
    );
  }

  async depth(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const [key, queue] of this.queues) {
      out[QUEUES[key].name] = await queue.count();
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
