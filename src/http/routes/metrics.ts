import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { constantTimeEqualHex, sha256Hex } from '../../core/credentials.js';
import { AppError } from '../../core/errors.js';
import {
  METRIC_PERIODS,
  type MetricPeriod,
  type MetricsService,
  type MetricsSummary,
} from '../../services/metrics.js';
import { type PromMetrics, promRegistry, useResult } from '../../services/prometheus.js';
import { errorBody } from '../errors.js';
import type { Router } from '../route.js';

const periods = Object.keys(METRIC_PERIODS) as [MetricPeriod, ...MetricPeriod[]];

const metricsQuery = z
  .object({
    period: z.enum(periods).default('24h'),
    agent_id: z.string().min(1).max(100).optional(),
  })
  .strict();

const USE_ROUTE = '/api/v1/permissions/:id/use';
/**
 * A 30-day summary over a large table takes a while: answers are shared for a few seconds per
 * (period, agent), and concurrent identical requests share one computation, so callers hammering
 * the endpoint cost the database one query set per period, agent and interval.
 */
const SUMMARY_CACHE_MS = 5_000;
const SUMMARY_CACHE_MAX = 1_000;

/**
 * `GET /api/v1/metrics` (security metrics from Postgres: an agent key sees its own agent only,
 * an operator key every agent or one) and `GET /metrics` (Prometheus text exposition, behind
 * `METRICS_TOKEN` when it is set), plus the hooks that time every request by route pattern.
 */
export function registerMetricsRoutes(
  route: Router,
  app: FastifyInstance,
  deps: { metrics: MetricsService; prom: PromMetrics; metricsToken?: string | undefined },
): void {
  const cache = new Map<string, { until: number; value: Promise<MetricsSummary> }>();
  route({
    method: 'GET',
    url: '/api/v1/metrics',
    auth: 'any',
    summary: 'Security metrics over a period (denial rate, unused-token rate, approval times, …)',
    tag: 'metrics',
    query: metricsQuery,
    async handler({ query, principal }) {
      let agentId = query.agent_id ?? null;
      if (principal?.kind === 'agent') {
        if (agentId && agentId !== principal.agent.id) {
          throw new AppError('FORBIDDEN', 'An agent key can read only its own metrics');
        }
        agentId = principal.agent.id;
      }
      const key = `${query.period}|${agentId ?? ''}`;
      const now = Date.now();
      let entry = cache.get(key);
      if (!entry || entry.until <= now) {
        if (cache.size >= SUMMARY_CACHE_MAX) cache.clear();
        const value = deps.metrics.summary(query.period, agentId);
        entry = { until: now + SUMMARY_CACHE_MS, value };
        cache.set(key, entry);
        value.catch(() => cache.delete(key));
      }
      const summary = await entry.value;
      return { data: { ...summary, agentId } };
    },
  });

  const tokenHash = deps.metricsToken ? sha256Hex(deps.metricsToken) : null;
  app.get('/metrics', async (request, reply) => {
    if (tokenHash) {
      const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
      if (!match?.[1] || !constantTimeEqualHex(sha256Hex(match[1]), tokenHash)) {
        return reply
          .status(401)
          .header('www-authenticate', 'Bearer')
          .send(errorBody('INVALID_API_KEY', 'A valid METRICS_TOKEN bearer token is required', request.id));
      }
    }
    const text = await promRegistry.metrics();
    return reply.header('content-type', promRegistry.contentType).send(text);
  });

  // The code of the error a request ended with (for token_uses_total).
  const errorCodes = new WeakMap<FastifyRequest, string>();
  app.addHook('onError', async (request, _reply, err) => {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string') errorCodes.set(request, code);
  });
  app.addHook('onResponse', async (request, reply) => {
    // The route pattern, never the raw URL (ids would make a series per request).
    const pattern = request.routeOptions.url ?? 'unmatched';
    deps.prom.httpDuration.observe(
      { method: request.method, route: pattern, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    if (pattern === USE_ROUTE && request.method === 'POST') {
      const result = reply.statusCode < 400 ? 'success' : useResult(errorCodes.get(request) ?? 'unknown');
      if (result) deps.prom.tokenUses.inc({ result });
    }
  });
}
