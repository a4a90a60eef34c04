import { z } from 'zod';
import type { AgentService } from '../../services/agents.js';
import { displayUrl, type WebhookService } from '../../services/webhooks.js';
import { DELIVERY_STATUSES, type WebhookDelivery } from '../../store/webhookRepository.js';
import { agentFilterFields, agentFilterOf } from '../agentFilter.js';
import { decodeCursor, nextCursor, pageFields } from '../cursor.js';
import type { Router } from '../route.js';

const listQuery = z
  .object({
    status: z.enum(DELIVERY_STATUSES).optional(),
    ...agentFilterFields,
    ...pageFields,
  })
  .strict();

const idParams = z.object({ id: z.string().max(100) }).strict();

const deliveryResponse = z.object({
  id: z.string(),
  /** Both null for a monitoring alert (alert.triggered, alert.cleared), sent to ALERT_WEBHOOK_URL. */
  permissionId: z.string().nullable(),
  agentId: z.string().nullable(),
  url: z.string(),
  eventType: z.string(),
  status: z.enum(DELIVERY_STATUSES),
  attempts: z.number(),
  lastError: z.string().nullable(),
  lastStatus: z.number().nullable(),
  payload: z.record(z.string(), z.unknown()),
  createdAt: z.string(),
  nextAttemptAt: z.string().nullable(),
  deliveredAt: z.string().nullable(),
});

export function deliveryDto(d: WebhookDelivery) {
  return {
    id: d.id,
    permissionId: d.permissionId,
    agentId: d.agentId,
    // Credentials in a URL are for the receiver, not for whoever reads the list.
    url: displayUrl(d.url),
    eventType: d.eventType,
    status: d.status,
    attempts: d.attempts,
    lastError: d.lastError,
    lastStatus: d.lastStatus,
    payload: d.payload as unknown as Record<string, unknown>,
    createdAt: d.createdAt.toISOString(),
    nextAttemptAt: d.status === 'pending' ? d.nextAttemptAt.toISOString() : null,
    deliveredAt: d.deliveredAt?.toISOString() ?? null,
  };
}

export function registerWebhookRoutes(route: Router, webhooks: WebhookService, agents: AgentService): void {
  route({
    method: 'GET',
    url: '/api/v1/webhooks/deliveries',
    auth: 'operator',
    tag: 'webhooks',
    summary:
      'List webhook deliveries, newest first (status=dead for the dead letters); alert deliveries have no agent',
    query: listQuery,
    response: z.object({ deliveries: z.array(deliveryResponse), nextCursor: z.string().nullable() }),
    async handler({ query }) {
      const page = await webhooks.list({
        status: query.status,
        agentId: await agents.resolveFilter(agentFilterOf(query)),
        limit: query.limit,
        before: query.cursor ? decodeCursor(query.cursor) : undefined,
      });
      return {
        data: {
          deliveries: page.map(deliveryDto),
          nextCursor: nextCursor(page, query.limit),
        },
      };
    },
  });

  route({
    method: 'POST',
    url: '/api/v1/webhooks/deliveries/:id/replay',
    auth: 'operator',
    tag: 'webhooks',
    summary: 'Send a dead or delivered webhook again (attempts reset, a new retry window)',
    params: idParams,
    response: deliveryResponse,
    async handler({ params, origin }) {
      return { data: deliveryDto(await webhooks.replay(params.id, origin)) };
    },
  });
}
