import type { Clock } from '../core/clock.js';
import type { AlertChange, AlertName } from '../core/webhook.js';
import type { Logger } from '../logger.js';
import { type Db, type Queryable, TRY_LOCK_SQL } from '../store/db.js';
import type { MetricsService } from './metrics.js';

/** Advisory lock held while one instance evaluates alerts (try-lock: others skip that minute). */
export const ALERTS_LOCK = 7_201_010;
const MINUTE_MS = 60_000;

export interface AlertThresholds {
  /** ALERT_DENIAL_RATE: denial rate over the last hour above this fires. */
  denialRate: number;
  /** ALERT_UNUSED_TOKEN_RATE: unused-token rate over the last hour above this fires. */
  unusedTokenRate: number;
  /** ALERT_FAILED_AUTH_PER_MIN: failed authentications in the last complete minute above this fires. */
  failedAuthPerMinute: number;
  /** ALERT_MIN_VOLUME: the rates are judged only on at least this many decisions / finished tokens. */
  minVolume: number;
}

export type { AlertName } from '../core/webhook.js';

export interface AlertTransition extends AlertChange {
  /** The chat note: the summary with an emoji. */
  text: string;
}

/** Where alert notes go: ApprovalService.broadcast (each chat platform's approval channel). */
export interface AlertSink {
  broadcast(text: string): Promise<string[]>;
}

/** Where alert webhooks go: WebhookService, when ALERT_WEBHOOK_URL is set. */
export interface AlertWebhooks {
  /** Records the delivery of one change inside the transaction that records the new state. */
  recordAlert(tx: Queryable, change: AlertChange): Promise<{ id: string } | null>;
  /** Queues a recorded delivery after the commit; never throws (the reconciler re-queues lost jobs). */
  enqueue(deliveryId: string): Promise<void>;
}

interface Reading {
  name: AlertName;
  value: number;
  threshold: number;
  crossed: boolean;
  describe: string;
}

const pct = (v: number) => `${(v * 100).toFixed(1)}%`;

/**
 * Evaluates the monitoring thresholds (security guide, "Monitoring and Alerting") once a minute.
 * An alert is announced once when its threshold is crossed and once more when it clears; the
 * state lives in `alert_state`, so restarts and several instances do not repeat it. One
 * instance evaluates at a time (a transaction-scoped advisory try-lock); chat notes are sent
 * after the state change commits (at most once). An alert webhook is recorded in the same
 * transaction as the state change and queued after it commits, so it is sent at least once
 * (retried, repaired by the reconciler) and recorded exactly once.
 */
export class AlertService {
  constructor(
    private readonly db: Db,
    private readonly metrics: MetricsService,
    private readonly sink: AlertSink,
    private readonly clock: Clock,
    private readonly thresholds: AlertThresholds,
    private readonly logger?: Logger,
    private readonly webhooks: AlertWebhooks | null = null,
  ) {}

  private async readings(): Promise<Reading[]> {
    const t = this.thresholds;
    const now = this.clock.now().getTime();
    const lastMinute = new Date(Math.floor(now / MINUTE_MS) * MINUTE_MS - MINUTE_MS);
    const [hour, failures] = await Promise.all([
      this.metrics.detail('1h'),
      this.metrics.failuresInMinute(lastMinute),
    ]);
    return [
      {
        name: 'denial_rate',
        value: hour.denialRate,
        threshold: t.denialRate,
        crossed: hour.decided >= t.minVolume && hour.denialRate > t.denialRate,
        describe: `denial rate ${pct(hour.denialRate)} over the last hour (${hour.denied} of ${hour.decided} decisions denied; threshold ${pct(t.denialRate)})`,
      },
      {
        name: 'unused_token_rate',
        value: hour.unusedTokenRate,
        threshold: t.unusedTokenRate,
        crossed: hour.finishedTokens >= t.minVolume && hour.unusedTokenRate > t.unusedTokenRate,
        describe: `unused-token rate ${pct(hour.unusedTokenRate)} over the last hour (${hour.expiredUnused} of ${hour.finishedTokens} finished tokens expired unused; threshold ${pct(t.unusedTokenRate)})`,
      },
      {
        name: 'failed_auth_per_min',
        value: failures,
        threshold: t.failedAuthPerMinute,
        crossed: failures > t.failedAuthPerMinute,
        describe: `${failures} failed authentications in the minute from ${lastMinute.toISOString()} (threshold ${t.failedAuthPerMinute}/min)`,
      },
    ];
  }

  /** One evaluation: returns the transitions it announced ([] when another instance holds the lock). */
  async evaluate(): Promise<AlertTransition[]> {
    // Read before the transaction: PGlite has one connection, which the transaction holds.
    const readings = await this.readings();
    const deliveries: string[] = [];
    const transitions = await this.db.transaction(async (tx) => {
      const { rows: lock } = await tx.query<{ locked: boolean }>(TRY_LOCK_SQL, [ALERTS_LOCK]);
      if (!lock[0]?.locked) return [];
      const { rows } = await tx.query<{ name: string; active: boolean }>(
        'SELECT name, active FROM alert_state FOR UPDATE',
      );
      const active = new Map(rows.map((r) => [r.name, r.active]));
      const now = this.clock.now();
      const out: AlertTransition[] = [];
      for (const r of readings) {
        const was = active.get(r.name) ?? false;
        const changed = was !== r.crossed;
        await tx.query(
          `INSERT INTO alert_state (name, active, since, last_value, updated_at)
           VALUES ($1, $2, $3, $4, $3)
           ON CONFLICT (name) DO UPDATE SET active = EXCLUDED.active, last_value = EXCLUDED.last_value,
             updated_at = EXCLUDED.updated_at,
             since = CASE WHEN alert_state.active = EXCLUDED.active THEN alert_state.since ELSE EXCLUDED.since END`,
          [r.name, r.crossed, now, r.value],
        );
        if (!changed) continue;
        const change: AlertChange = {
          name: r.name,
          kind: r.crossed ? 'triggered' : 'cleared',
          value: r.value,
          threshold: r.threshold,
          summary: r.crossed ? `Agent OTP alert: ${r.describe}.` : `Agent OTP alert cleared: ${r.describe}.`,
        };
        const delivery = await this.webhooks?.recordAlert(tx, change);
        if (delivery) deliveries.push(delivery.id);
        out.push({
          ...change,
          text: `${r.crossed ? ':rotating_light:' : ':white_check_mark:'} ${change.summary}`,
        });
      }
      return out;
    });
    for (const id of deliveries) await this.webhooks?.enqueue(id);
    for (const t of transitions) {
      this.logger?.warn({ alert: t.name, kind: t.kind, value: t.value, threshold: t.threshold }, t.text);
      await this.sink
        .broadcast(t.text)
        .catch((err) =>
          this.logger?.error({ err: (err as Error).message, alert: t.name }, 'alert note failed'),
        );
    }
    return transitions;
  }
}
