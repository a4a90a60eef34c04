import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { constantTimeEqualHex, sha256Hex } from '../../core/credentials.js';
import type { AgentService } from '../../services/agents.js';
import { METRIC_PERIODS, type MetricPeriod, type MetricsService } from '../../services/metrics.js';
import { type PromMetrics, promRegistry, useResult } from '../../services/prometheus.js';
import { agentFilterFields, agentFilterOf } from '../agentFilter.js';
import { errorBody } from '../errors.js';
import type { Router } from '../route.js';

const periods = Object.keys(METRIC_PERIODS) as [MetricPeriod, ...MetricPeriod[]];

const metricsQuery = z
  .object({
    period: z.enum(periods).default('24h'),
    ...agentFilterFields,
  })
  .strict();

const metricsResponse = z.object({
  period: z.enum(periods),
  since: z.string(),
  /** The agent the figures are about; null for every agent. */
  agentId: z.string().nullable(),
  requestVolume: z.number(),
  approved: z.number(),
  denied: z.number(),
  expired: z.number(),
  pending: z.number(),
  used: z.number(),
  revoked: z.number(),
  denialRate: z.number(),
  unusedTokenRate: z.number(),
  avgApprovalTimeMs: z.number().nullable(),
  p95ApprovalTimeMs: z.number().nullable(),
  failedAuthentications: z.number(),
  scopeViolations: z.number(),
});

const USE_ROUTE = '/api/v1/permissions/:id/use';
/**
 * `GET /api/v1/metrics` (security metrics from Postgres: an agent key sees its own agent only,
 * an operator key every agent or one) and `GET /metrics` (Prometheus text exposition, behind
 * `METRICS_TOKEN` when it is set), plus the hooks that time every request by route pattern.
 */
export function registerMetricsRoutes(
  route: Router,
  app: FastifyInstance,
  deps: {
    metrics: MetricsService;
    prom: PromMetrics;
    agents: AgentService;
    metricsToken?: string | undefined;
  },
): void {
  route({
    method: 'GET',
    url: '/api/v1/metrics',
    auth: 'any',
    summary: 'Security metrics over a period (denial rate, unused-token rate, approval times, …)',
    tag: 'metrics',
    query: metricsQuery,
    response: metricsResponse,
    async handler({ query, principal }) {
      const filter = agentFilterOf(query);
      if (principal?.kind === 'agent') {
        // An agent key names itself by id or name; nothing about other agents is looked up,
        // so the answer cannot tell an agent which others exist.
        const self = principal.agent;
        const isSelf =
          filter === undefined || filter === self.id || filter.toLowerCase() === self.name.toLowerCase();
        const requested = isSelf ? self.id : filter;
        return { data: await deps.metrics.summaryFor({ agentId: self.id }, query.period, requested) };
      }
      const agentId = (await deps.agents.resolveFilter(filter)) ?? null;
      return { data: await deps.metrics.summaryFor({ operator: true }, query.period, agentId) };
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
