import type { Clock } from '../core/clock.js';
import { AppError } from '../core/errors.js';
import { type Queryable, toNumber } from '../store/db.js';

/** The periods `GET /api/v1/metrics` accepts, in milliseconds. */
export const METRIC_PERIODS = {
  '1h': 3_600_000,
  '24h': 86_400_000,
  '7d': 7 * 86_400_000,
  '30d': 30 * 86_400_000,
} as const;
export type MetricPeriod = keyof typeof METRIC_PERIODS;

export function isMetricPeriod(value: string): value is MetricPeriod {
  return Object.hasOwn(METRIC_PERIODS, value);
}

/**
 * Security metrics over a period [since, now] (security guide, "Monitoring and Alerting").
 * Three populations, each named where it is used:
 * - REQUESTS: permissions created in the period, counted by their CURRENT status.
 * - FINISHED TOKENS: approved tokens whose life ended in the period, by being used up (their
 *   last use, `last_used_at`) or by expiring (`expires_at`, the moment the token stopped working).
 * - EVENTS: audit rows (scope violations) and aggregated failed authentications in the period.
 */
export interface MetricsSummary {
  period: MetricPeriod;
  /** ISO time the period starts; it runs up to and including now. */
  since: string;
  /** REQUESTS: every permission created in the period, whatever its status (cancelled too). */
  requestVolume: number;
  /** REQUESTS by current status: approved (token live), denied, expired (pending that timed out
   * AND approved tokens that expired), pending, used, revoked. */
  approved: number;
  denied: number;
  expired: number;
  pending: number;
  used: number;
  revoked: number;
  /**
   * REQUESTS: denied ÷ decided, where decided = every request with a decision (decided_at set):
   * denied, plus approved ones whatever happened next (still approved, used, expired, revoked).
   * Pending, timed-out-pending, cancelled and revoked-while-pending requests were never decided.
   * 0 when nothing was decided.
   */
  denialRate: number;
  /**
   * FINISHED TOKENS: approved tokens that expired with no use spent (uses_remaining = max_uses)
   * ÷ approved tokens that expired (used or not) or were used up, in the period. Revoked tokens
   * are left out (an operator ended them). 0 when none finished.
   */
  unusedTokenRate: number;
  /**
   * REQUESTS decided by a human (decidedBy.type approver or operator): decided_at − created_at,
   * mean and 95th percentile (nearest rank: the smallest time ≥ 95 % of the times). Null when
   * no human decided any request of the period.
   */
  avgApprovalTimeMs: number | null;
  p95ApprovalTimeMs: number | null;
  /** EVENTS: failed authentications (aggregated per minute, see AuthFailureRecorder) in the
   * minutes starting in the period; for one agent, those presenting a known key of that agent. */
  failedAuthentications: number;
  /** EVENTS: `use_rejected` audit rows with code SCOPE_VIOLATION in the period. */
  scopeViolations: number;
}

/** Populations an alert needs to judge whether a rate is meaningful. */
export interface MetricsDetail extends MetricsSummary {
  decided: number;
  finishedTokens: number;
  expiredUnused: number;
}

const ratio = (numerator: number, denominator: number) => (denominator > 0 ? numerator / denominator : 0);
const numOrNull = (v: unknown) => (v === null || v === undefined ? null : toNumber(v));

/**
 * A 30-day summary over a large table takes a while: answers are shared for a few seconds per
 * (period, agent), and concurrent identical requests share one computation, so callers hammering
 * the endpoint cost the database one query set per period, agent and interval.
 */
const SUMMARY_CACHE_MS = 5_000;
const SUMMARY_CACHE_MAX = 1_000;

/** Reads the metrics: four indexed queries, run concurrently, none scanning outside its period. */
export class MetricsService {
  private readonly cache = new Map<string, { until: number; value: Promise<MetricsSummary> }>();

  constructor(
    private readonly db: Queryable,
    private readonly clock: Clock,
  ) {}

  /**
   * The summary a caller may read: an agent key sees its own agent only (asking for another is
   * FORBIDDEN), an operator every agent or one. Shared for a few seconds (SUMMARY_CACHE_MS).
   */
  async summaryFor(
    caller: { agentId: string } | { operator: true },
    period: MetricPeriod,
    requestedAgentId: string | null,
  ): Promise<MetricsSummary & { agentId: string | null }> {
    let agentId = requestedAgentId;
    if ('agentId' in caller) {
      if (agentId && agentId !== caller.agentId) {
        throw new AppError('FORBIDDEN', 'An agent key can read only its own metrics');
      }
      agentId = caller.agentId;
    }
    const key = `${period}|${agentId ?? ''}`;
    const now = this.clock.now().getTime();
    let entry = this.cache.get(key);
    if (!entry || entry.until <= now) {
      if (this.cache.size >= SUMMARY_CACHE_MAX) this.cache.clear();
      const value = this.summary(period, agentId);
      entry = { until: now + SUMMARY_CACHE_MS, value };
      this.cache.set(key, entry);
      value.catch(() => this.cache.delete(key));
    }
    return { ...(await entry.value), agentId };
  }

  async summary(period: MetricPeriod, agentId?: string | null): Promise<MetricsSummary> {
    const {
      decided: _d,
      finishedTokens: _f,
      expiredUnused: _e,
      ...summary
    } = await this.detail(period, agentId);
    return summary;
  }

  async detail(period: MetricPeriod, agentId?: string | null): Promise<MetricsDetail> {
    const now = this.clock.now();
    const since = new Date(now.getTime() - METRIC_PERIODS[period]);
    // Two spellings of each query (all agents, one agent) so each plan uses its own index.
    const params: unknown[] = agentId ? [since, now, agentId] : [since, now];
    const byAgent = agentId ? 'AND agent_id = $3' : '';
    const [requests, tokens, violations, failures] = await Promise.all([
      // REQUESTS: permissions_list_idx (created_at) or permissions_agent_idx (agent_id, created_at).
      this.db.query<Record<string, unknown>>(
        `SELECT count(*) AS volume,
                count(*) FILTER (WHERE status = 'approved') AS approved,
                count(*) FILTER (WHERE status = 'denied') AS denied,
                count(*) FILTER (WHERE status = 'expired') AS expired,
                count(*) FILTER (WHERE status = 'pending') AS pending,
                count(*) FILTER (WHERE status = 'used') AS used,
                count(*) FILTER (WHERE status = 'revoked') AS revoked,
                count(*) FILTER (WHERE decided_at IS NOT NULL) AS decided,
                avg(EXTRACT(EPOCH FROM (decided_at - created_at)) * 1000)
                  FILTER (WHERE decided_at IS NOT NULL AND decided_by->>'type' IN ('approver', 'operator')) AS avg_ms,
                percentile_disc(0.95) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM (decided_at - created_at)) * 1000)
                  FILTER (WHERE decided_at IS NOT NULL AND decided_by->>'type' IN ('approver', 'operator')) AS p95_ms
           FROM permissions
          WHERE created_at >= $1 AND created_at <= $2 ${byAgent}`,
        params,
      ),
      // FINISHED TOKENS: permissions_used(_agent)_idx and permissions_expired(_agent)_idx (partial).
      // An expired permission was an approved token exactly when it had been decided.
      this.db.query<Record<string, unknown>>(
        `SELECT
           (SELECT count(*) FROM permissions
             WHERE status = 'used' AND last_used_at >= $1 AND last_used_at <= $2 ${byAgent}) AS used_up,
           e.expired_tokens, e.expired_unused
           FROM (SELECT count(*) AS expired_tokens,
                        count(*) FILTER (WHERE uses_remaining = max_uses) AS expired_unused
                   FROM permissions
                  WHERE status = 'expired' AND expires_at >= $1 AND expires_at <= $2
                    AND decided_at IS NOT NULL ${byAgent}) e`,
        params,
      ),
      // EVENTS: audit_events_scope_violation_idx / _agent_idx (partial, by time).
      this.db.query<Record<string, unknown>>(
        `SELECT count(*) AS n FROM audit_events
          WHERE type = 'use_rejected' AND details->>'code' = 'SCOPE_VIOLATION'
            AND occurred_at >= $1 AND occurred_at <= $2 ${byAgent}`,
        params,
      ),
      // EVENTS: the overall row (agent_id NULL) or the agent's rows, by minute.
      this.db.query<Record<string, unknown>>(
        `SELECT COALESCE(sum(count), 0) AS n FROM auth_failures
          WHERE minute >= $1 AND minute <= $2
            AND ${agentId ? 'agent_id = $3' : 'agent_id IS NULL'}`,
        params,
      ),
    ]);
    const r = requests.rows[0] ?? {};
    const t = tokens.rows[0] ?? {};
    const n = (v: unknown) => toNumber(v ?? 0);
    const denied = n(r.denied);
    const decided = n(r.decided);
    const expiredTokens = n(t.expired_tokens);
    const expiredUnused = n(t.expired_unused);
    const finishedTokens = n(t.used_up) + expiredTokens;
    const avg = numOrNull(r.avg_ms);
    const p95 = numOrNull(r.p95_ms);
    return {
      period,
      since: since.toISOString(),
      requestVolume: n(r.volume),
      approved: n(r.approved),
      denied,
      expired: n(r.expired),
      pending: n(r.pending),
      used: n(r.used),
      revoked: n(r.revoked),
      denialRate: ratio(denied, decided),
      unusedTokenRate: ratio(expiredUnused, finishedTokens),
      avgApprovalTimeMs: avg === null ? null : Math.round(avg),
      p95ApprovalTimeMs: p95 === null ? null : Math.round(p95),
      failedAuthentications: n(failures.rows[0]?.n),
      scopeViolations: n(violations.rows[0]?.n),
      decided,
      finishedTokens,
      expiredUnused,
    };
  }

  /** Failed authentications in the minute starting at `minute` (overall). */
  async failuresInMinute(minute: Date): Promise<number> {
    const { rows } = await this.db.query<{ n: unknown }>(
      'SELECT COALESCE(sum(count), 0) AS n FROM auth_failures WHERE minute = $1 AND agent_id IS NULL',
      [minute],
    );
    return toNumber(rows[0]?.n ?? 0);
  }
}

export function parsePeriod(value: string | undefined): MetricPeriod {
  const period = value ?? '24h';
  if (!isMetricPeriod(period)) {
    throw new AppError('VALIDATION_ERROR', `period must be one of ${Object.keys(METRIC_PERIODS).join(', ')}`);
  }
  return period;
}

const MINUTE_MS = 60_000;

/**
 * Failed authentications, aggregated: each instance counts them per minute in memory (overall
 * and per known agent) and adds its counts to `auth_failures` on every flush, so several
 * instances sum up and nothing is counted twice. A crash loses at most one flush interval; the
 * per-minute Redis counters (throttling) are not read, as they expire a second after their
 * minute. A failed flush keeps its counts for the next one.
 */
export class AuthFailureRecorder {
  private pending = new Map<string, { minute: number; agentId: string | null; count: number }>();

  constructor(
    private readonly db: Queryable,
    private readonly clock: Clock,
  ) {}

  /** Synchronous and allocation-light: called on the failure path of authentication. */
  record(agentId: string | null): void {
    const minute = Math.floor(this.clock.now().getTime() / MINUTE_MS) * MINUTE_MS;
    this.add(minute, null, 1);
    if (agentId) this.add(minute, agentId, 1);
  }

  private add(minute: number, agentId: string | null, count: number): void {
    const key = `${minute}|${agentId ?? ''}`;
    const entry = this.pending.get(key);
    if (entry) entry.count += count;
    else this.pending.set(key, { minute, agentId, count });
  }

  async flush(): Promise<number> {
    if (this.pending.size === 0) return 0;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    try {
      await this.db.query(
        `INSERT INTO auth_failures (minute, agent_id, count)
         SELECT to_timestamp(m / 1000.0), NULLIF(a, ''), c
           FROM unnest($1::float8[], $2::text[], $3::bigint[]) AS u(m, a, c)
         ON CONFLICT (minute, (COALESCE(agent_id, ''))) DO UPDATE SET count = auth_failures.count + EXCLUDED.count`,
        [batch.map((b) => b.minute), batch.map((b) => b.agentId ?? ''), batch.map((b) => b.count)],
      );
    } catch (err) {
      for (const b of batch) this.add(b.minute, b.agentId, b.count);
      throw err;
    }
    return batch.reduce((sum, b) => sum + (b.agentId ? 0 : b.count), 0);
  }
}
