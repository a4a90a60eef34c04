import { Counter, collectDefaultMetrics, Gauge, Histogram, register } from 'prom-client';
import type { Permission } from '../core/permission.js';
import type { PermissionEventType } from './permissions.js';

/** How long a scrape waits for the queue depths before answering with the last ones. */
const DEPTH_DEADLINE_MS = 400;

/**
 * Prometheus metrics (`GET /metrics`), on prom-client's default registry with its process
 * metrics. Created once per process (the default registry refuses a second registration).
 * Everything on the hot path is a synchronous counter increment; queue depth is read from
 * Redis only when Prometheus scrapes.
 */
export interface PromMetrics {
  permissions: Counter<'status' | 'action'>;
  tokenUses: Counter<'result'>;
  decisions: Counter<'by'>;
  approvalDuration: Histogram<string>;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  failedAuth: Counter<string>;
  auditWriteFailures: Counter<'type'>;
  /** Where queue depth comes from; the last one set wins (one JobQueue per process). */
  setQueueDepthSource(source: (() => Promise<Record<string, number>>) | null): void;
}

let instance: PromMetrics | null = null;

export function promMetrics(): PromMetrics {
  if (instance) return instance;
  collectDefaultMetrics({ prefix: 'agent_otp_' });
  let depthSource: (() => Promise<Record<string, number>>) | null = null;
  const queueDepth = new Gauge<'queue'>({
    name: 'agent_otp_queue_depth',
    help: 'Jobs waiting, delayed or active per queue (read from Redis at scrape time)',
    labelNames: ['queue'],
    async collect() {
      if (!depthSource) return;
      // A scrape must answer within a second even when Redis accepts connections but does not
      // answer (the queue connection's own timeout is longer): keep the last values then.
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), DEPTH_DEADLINE_MS);
      });
      try {
        const depths = await Promise.race([depthSource(), deadline]);
        if (depths) for (const [queue, n] of Object.entries(depths)) this.set({ queue }, n);
      } catch {
        // Redis unavailable: keep the last values rather than failing the scrape.
      } finally {
        clearTimeout(timer);
      }
    },
  });
  void queueDepth;
  instance = {
    permissions: new Counter({
      name: 'agent_otp_permissions_total',
      help: 'Permission events by resulting status and requested action',
      labelNames: ['status', 'action'],
    }),
    tokenUses: new Counter({
      name: 'agent_otp_token_uses_total',
      help: 'Token use attempts by result (success, scope_violation, used, expired, revoked, invalid)',
      labelNames: ['result'],
    }),
    decisions: new Counter({
      name: 'agent_otp_decisions_total',
      help: 'Decisions on permission requests by who decided (policy, approver, operator)',
      labelNames: ['by'],
    }),
    approvalDuration: new Histogram({
      name: 'agent_otp_approval_duration_seconds',
      help: 'Time from request to a human decision',
      buckets: [5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600],
    }),
    httpDuration: new Histogram({
      name: 'agent_otp_http_request_duration_seconds',
      help: 'HTTP request duration by method, route pattern and status code',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30],
    }),
    failedAuth: new Counter({
      name: 'agent_otp_failed_auth_total',
      help: 'Failed authentications (invalid, revoked or expired keys)',
    }),
    auditWriteFailures: new Counter({
      name: 'agent_otp_audit_write_failures_total',
      help: 'Audit events that could not be written (their call was answered with a 500) by event type',
      labelNames: ['type'],
    }),
    setQueueDepthSource(source) {
      depthSource = source;
    },
  };
  return instance;
}

export const promRegistry = register;

/**
 * Permission actions are chosen by agents: an unbounded label would let an agent grow the
 * registry without limit. The first MAX_ACTIONS distinct actions get their own series; later
 * ones are counted as `other`.
 */
const MAX_ACTIONS = 200;
const seenActions = new Set<string>();
export function actionLabel(action: string): string {
  if (seenActions.has(action)) return action;
  if (seenActions.size >= MAX_ACTIONS || action.length > 100) return 'other';
  seenActions.add(action);
  return action;
}

/** The listener for PermissionService.onChange: counters only, no I/O. */
export function observePermissionEvent(
  m: PromMetrics,
  type: PermissionEventType,
  permission: Permission,
): void {
  if (type === 'vote') return;
  m.permissions.inc({ status: permission.status, action: actionLabel(permission.action) });
  if ((type === 'approved' || type === 'denied') && permission.decidedBy) {
    const by = permission.decidedBy.type;
    if (by !== 'policy' && by !== 'approver' && by !== 'operator') return;
    m.decisions.inc({ by });
    if (by !== 'policy' && permission.decidedAt) {
      const seconds = (permission.decidedAt.getTime() - permission.createdAt.getTime()) / 1000;
      m.approvalDuration.observe(Math.max(0, seconds));
    }
  }
}

/** Error code of a refused `use` → token_uses_total result. */
export function useResult(code: string | undefined): string | null {
  switch (code) {
    case undefined:
      return 'success';
    case 'SCOPE_VIOLATION':
      return 'scope_violation';
    case 'TOKEN_USED':
      return 'used';
    case 'TOKEN_EXPIRED':
      return 'expired';
    case 'TOKEN_REVOKED':
      return 'revoked';
    case 'INVALID_TOKEN':
      return 'invalid';
    default:
      return null;
  }
}
