import { z } from 'zod';

/**
 * Every queue and the payload its jobs carry (DESIGN §8). Job ids derive from the permission,
 * so a job enqueued twice (a retry, the reconciler) collapses into one while it is waiting.
 */
const permissionJob = z.object({ permissionId: z.string().min(1).max(100) }).strict();
/**
 * A message update; `force` edits every posted message even if it already shows the current
 * state (an erasure changed what the state is rendered from, not the state).
 */
const messageUpdateJob = z
  .object({ permissionId: z.string().min(1).max(100), force: z.boolean().optional() })
  .strict();
/** Webhook jobs are per delivery (`msg_…`): the id is stable across retries and replays. */
const deliveryJob = z.object({ deliveryId: z.string().min(1).max(100) }).strict();

export const QUEUES = {
  notify: { name: 'notify', payload: permissionJob },
  messageUpdate: { name: 'message-update', payload: messageUpdateJob },
  expire: { name: 'expire', payload: permissionJob },
  remind: { name: 'remind', payload: permissionJob },
  escalate: { name: 'escalate', payload: permissionJob },
  reconcile: { name: 'reconcile', payload: z.object({}).strict() },
  webhook: { name: 'webhook', payload: deliveryJob },
} as const;

export type QueueKey = keyof typeof QUEUES;
export type JobPayload<K extends QueueKey> = z.infer<(typeof QUEUES)[K]['payload']>;

/** BullMQ forbids ':' in custom ids; these stay readable in Redis and in logs. */
export const jobIds = {
  notify: (permissionId: string) => `notify-${permissionId}`,
  messageUpdate: (permissionId: string, signature: string) =>
    `update-${permissionId}-${signature.replace(/:/g, '-')}`,
  /** One per erasure (its audit event): never collapsed into an update already queued. */
  messageRedraw: (permissionId: string, eventId: string) => `redraw-${permissionId}-${eventId}`,
  expire: (permissionId: string, at: Date) => `expire-${permissionId}-${at.getTime()}`,
  remind: (permissionId: string) => `remind-${permissionId}`,
  escalate: (permissionId: string) => `escalate-${permissionId}`,
  reconcile: (bucket: number) => `reconcile-${bucket}`,
  webhook: (deliveryId: string) => deliveryId,
};

/** The name of the custom BullMQ backoff strategy webhook jobs use (see workers.ts). */
export const WEBHOOK_BACKOFF = 'webhook';
/**
 * BullMQ never gives up on a webhook job by itself: the delivery service decides when a
 * delivery is dead (a time window, not an attempt count).
 */
export const WEBHOOK_JOB_ATTEMPTS = 100_000;
