import type { Clock } from '../core/clock.js';
import { AppError } from '../core/errors.js';
import { printable } from '../core/storable.js';
import {
  type AlertChange,
  alertWebhookPayload,
  DEFAULT_RETRY_WINDOW_MS,
  isDeliveryId,
  type NewWebhookDelivery,
  newDelivery,
  nextRetry,
  signWebhook,
  webhookBody,
} from '../core/webhook.js';
import { type Logger, OutageLog } from '../logger.js';
import type { Db, Queryable } from '../store/db.js';
import {
  type DeliveryFilter,
  findDelivery,
  insertDelivery,
  listDeliveries,
  overdueDeliveries,
  recordAttempt,
  resetForReplay,
  type WebhookDelivery,
} from '../store/webhookRepository.js';
import type { RequestOrigin } from './agents.js';
import type { AuditService } from './audit.js';
import type { WebhookSecrets } from './webhookSecrets.js';
import { postToAddress, type Resolver, resolveTarget, systemResolver } from './webhookTransport.js';

/** Where deliveries are queued: BullMQ's `webhook` queue in production (JobQueue). */
export interface WebhookQueue {
  webhook(deliveryId: string): Promise<void>;
}

export interface WebhookSettings {
  allowPrivate: boolean;
  timeoutMs?: number;
  retryWindowMs?: number;
  /** DNS resolution at delivery; injectable for tests. */
  resolve?: Resolver;
  /** ALERT_WEBHOOK_URL: where alert deliveries go (none are recorded without it). */
  alertUrl?: string;
  /** ALERT_WEBHOOK_SECRET: signs alert deliveries (they have no agent, so no agent secret). */
  alertSecret?: string;
}

export type DeliveryOutcome =
  | { outcome: 'delivered'; delivery: WebhookDelivery }
  | { outcome: 'retry'; delayMs: number; error: string; delivery: WebhookDelivery }
  | { outcome: 'dead'; error: string; delivery: WebhookDelivery }
  /** Not pending (delivered, dead, replaced) or unknown: nothing to do. */
  | { outcome: 'skipped' };

const USER_AGENT = 'agent-otp-webhooks/0.1';
/** Pending deliveries this far past due have lost their queue job (a Redis flush). */
const OVERDUE_GRACE_MS = 60_000;
const REPAIR_BATCH = 200;

/**
 * Signed webhooks (DESIGN §9): a delivery row per permission event that has a target (the
 * request's webhookUrl, else the agent's), written by PermissionService in the same statement or
 * transaction as the change (a transactional outbox), then a queue job added after the commit
 * (enqueue) that POSTs it, signed per Standard Webhooks, retried with exponential backoff for a
 * window, then dead (kept, audited, replayable); the reconciler re-queues pending deliveries
 * whose job was lost. Permissions without a target cost nothing: no row, no queue work.
 * Monitoring alerts use the same rows and queue (no permission, no agent), sent to the
 * operator's ALERT_WEBHOOK_URL.
 */
export class WebhookService {
  private readonly timeoutMs: number;
  private readonly retryWindowMs: number;
  private readonly resolve: Resolver;
  private readonly queueOutage: OutageLog;

  constructor(
    private readonly db: Db,
    private readonly audit: AuditService,
    private readonly secrets: WebhookSecrets,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly settings: WebhookSettings,
    private readonly queue: WebhookQueue | null = null,
  ) {
    this.timeoutMs = settings.timeoutMs ?? 10_000;
    this.retryWindowMs = settings.retryWindowMs ?? DEFAULT_RETRY_WINDOW_MS;
    this.resolve = settings.resolve ?? systemResolver;
    this.queueOutage = new OutageLog(logger, 'webhook queue', 'the reconciler will queue deliveries again');
  }

  /**
   * Stores the delivery of an alert (triggered or cleared) to ALERT_WEBHOOK_URL in the caller's
   * transaction, the one that records the alert's new state: each change is recorded exactly
   * once, and the reconciler re-queues it if its queue job is lost. Call enqueue() after commit.
   * Null when no ALERT_WEBHOOK_URL is configured.
   */
  async recordAlert(tx: Queryable, change: AlertChange): Promise<NewWebhookDelivery | null> {
    const url = this.settings.alertUrl;
    if (!url) return null;
    const now = this.clock.now();
    const delivery = newDelivery(
      { permissionId: null, agentId: null },
      url,
      alertWebhookPayload(change, now),
      now,
    );
    await insertDelivery(tx, delivery);
    return delivery;
  }

  /**
   * One attempt of a pending delivery: sign with every active secret of the agent (an alert:
   * with ALERT_WEBHOOK_SECRET), POST to the checked address, record the outcome. A refused
   * target or a missing secret is permanent (dead at once); anything else is retried until the
   * window since the first attempt is over.
   */
  async deliver(id: string): Promise<DeliveryOutcome> {
    const delivery = await findDelivery(this.db, id);
    if (delivery?.status !== 'pending') return { outcome: 'skipped' };
    const now = this.clock.now();
    const attempt = await this.attempt(delivery, now);
    if (attempt.ok) {
      const updated = await recordAttempt(this.db, id, {
        status: 'delivered',
        now,
        lastError: null,
        lastStatus: attempt.status,
        nextAttemptAt: now,
      });
      return updated ? { outcome: 'delivered', delivery: updated } : { outcome: 'skipped' };
    }
    const firstAttemptAt = delivery.firstAttemptAt ?? now;
    const retry = attempt.permanent
      ? ({ dead: true } as const)
      : nextRetry(delivery.attempts + 1, firstAttemptAt, now, this.retryWindowMs);
    if (retry.dead) {
      const reason = attempt.permanent
        ? attempt.error
        : `${attempt.error} (gave up ${Math.round(this.retryWindowMs / 3600_000)} h after the first attempt)`;
      const dead = await this.db.transaction(async (tx) => {
        const updated = await recordAttempt(tx, id, {
          status: 'dead',
          now,
          lastError: reason,
          lastStatus: attempt.status,
          nextAttemptAt: now,
        });
        if (!updated) return null;
        await this.audit.append(tx, {
          type: 'webhook.dead',
          actor: { type: 'system' },
          agentId: updated.agentId,
          permissionId: updated.permissionId,
          details: {
            deliveryId: updated.id,
            eventType: updated.eventType,
            url: displayUrl(updated.url),
            attempts: updated.attempts,
            lastStatus: updated.lastStatus,
            reason,
          },
        });
        return updated;
      });
      if (!dead) return { outcome: 'skipped' };
      this.logger.warn(
        {
          deliveryId: id,
          eventType: dead.eventType,
          permissionId: dead.permissionId,
          attempts: dead.attempts,
          reason,
        },
        'webhook delivery is dead',
      );
      return { outcome: 'dead', error: reason, delivery: dead };
    }
    const updated = await recordAttempt(this.db, id, {
      status: 'pending',
      now,
      lastError: attempt.error,
      lastStatus: attempt.status,
      nextAttemptAt: new Date(now.getTime() + retry.delayMs),
    });
    if (!updated) return { outcome: 'skipped' };
    return { outcome: 'retry', delayMs: retry.delayMs, error: attempt.error, delivery: updated };
  }

  private async attempt(
    delivery: WebhookDelivery,
    now: Date,
  ): Promise<
    { ok: true; status: number } | { ok: false; permanent: boolean; error: string; status: number | null }
  > {
    const signing = await this.signingSecrets(delivery.agentId, now);
    if (!signing.ok) return { ok: false, permanent: signing.permanent, error: signing.error, status: null };
    const { secrets } = signing;
    // An alert goes to the operator's own ALERT_WEBHOOK_URL, often a relay inside their network
    // (an Alertmanager, an on-call bridge). The private-address guard protects against URLs an
    // agent chooses, which an alert never has (its row has no agent), so it does not apply.
    const allowPrivate = delivery.agentId === null || this.settings.allowPrivate;
    const target = await resolveTarget(delivery.url, allowPrivate, this.resolve);
    if (!target.ok) return { ok: false, permanent: target.permanent, error: target.reason, status: null };

    const body = webhookBody(delivery.payload);
    const timestamp = Math.floor(now.getTime() / 1000);
    const headers = {
      'content-type': 'application/json',
      'user-agent': USER_AGENT,
      'webhook-id': delivery.id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signWebhook(secrets, delivery.id, timestamp, body),
    };
    try {
      const res = await postToAddress(target.url, target.address, headers, body, this.timeoutMs);
      if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
      // The receiver chooses these bytes: a NUL, or a character cut in half at 200, would make
      // the attempt impossible to record (text and jsonb refuse them), so they become U+FFFD.
      const snippet = printable(res.bodySnippet.replace(/\s+/g, ' ').trim().slice(0, 200));
      return {
        ok: false,
        permanent: false,
        error: `HTTP ${res.status}${snippet ? `: ${snippet}` : ''}`,
        status: res.status,
      };
    } catch (err) {
      return { ok: false, permanent: false, error: (err as Error).message, status: null };
    }
  }

  /** The secrets a delivery is signed with: the agent's active ones, or, for an alert, ALERT_WEBHOOK_SECRET. */
  private async signingSecrets(
    agentId: string | null,
    now: Date,
  ): Promise<{ ok: true; secrets: string[] } | { ok: false; permanent: boolean; error: string }> {
    if (agentId === null) {
      const secret = this.settings.alertSecret;
      return secret
        ? { ok: true, secrets: [secret] }
        : {
            ok: false,
            permanent: true,
            error: 'ALERT_WEBHOOK_SECRET is not set on this instance, so the alert cannot be signed',
          };
    }
    let secrets: string[];
    try {
      secrets = await this.secrets.active(this.db, agentId, now);
    } catch (err) {
      // A wrong SECRETS_ENCRYPTION_KEY on this instance: another worker may have the right one.
      return {
        ok: false,
        permanent: false,
        error: `cannot decrypt the webhook secret: ${(err as Error).message}`,
      };
    }
    if (secrets.length === 0) {
      return {
        ok: false,
        permanent: true,
        error: 'the agent has no webhook secret (rotate its key to issue one)',
      };
    }
    return { ok: true, secrets };
  }

  async list(filter: DeliveryFilter): Promise<WebhookDelivery[]> {
    return listDeliveries(this.db, filter);
  }

  async get(id: string): Promise<WebhookDelivery> {
    const delivery = isDeliveryId(id) ? await findDelivery(this.db, id) : null;
    if (!delivery) throw notFound(id);
    return delivery;
  }

  /** An operator sends a dead or delivered delivery again: pending, attempts reset, a new window. */
  async replay(id: string, origin: RequestOrigin): Promise<WebhookDelivery> {
    const current = await this.get(id);
    const replayed = await this.db.transaction(async (tx) => {
      const reset = await resetForReplay(tx, current.id, this.clock.now());
      if (!reset) return null;
      await this.audit.append(tx, {
        type: 'webhook.replayed',
        actor: origin.actor,
        agentId: reset.agentId,
        permissionId: reset.permissionId,
        ip: origin.ip ?? null,
        userAgent: origin.userAgent ?? null,
        details: { deliveryId: reset.id, eventType: reset.eventType, previousStatus: current.status },
      });
      return reset;
    });
    if (!replayed) {
      throw new AppError(
        'CONFLICT',
        `Delivery ${current.id} is still pending; only dead or delivered ones can be replayed`,
        {
          status: 'pending',
        },
      );
    }
    await this.enqueue(replayed.id);
    return replayed;
  }

  /** For the reconciler: re-queues pending deliveries whose job was lost (a Redis flush). */
  async requeueOverdue(): Promise<number> {
    if (!this.queue) return 0;
    const before = new Date(this.clock.now().getTime() - OVERDUE_GRACE_MS);
    const ids = await overdueDeliveries(this.db, before, REPAIR_BATCH);
    for (const id of ids) await this.queue.webhook(id);
    return ids.length;
  }

  /**
   * Queues a recorded delivery; a failure is only logged, once per outage (the reconciler
   * re-queues it).
   */
  async enqueue(id: string): Promise<void> {
    if (!this.queue) return;
    try {
      await this.queue.webhook(id);
      this.queueOutage.succeeded();
    } catch (err) {
      this.queueOutage.failed(err, { deliveryId: id });
    }
  }
}

/** The URL without credentials, for the audit trail and logs. */
export function displayUrl(raw: string): string {
  try {
    const url = new URL(raw);
    url.username = '';
    url.password = '';
    return url.toString();
  } catch {
    return '[invalid URL]';
  }
}

const notFound = (id: string) => new AppError('NOT_FOUND', `Webhook delivery ${id.slice(0, 64)} not found`);
