import { z } from 'zod';
import { AUDIT_EVENT_TYPES, isAuditEventType } from '../core/audit/index.js';
import { AppError } from '../core/errors.js';

/**
 * The agent filter of every list route: `agent` (an id or a name), with `agent_id` kept as an
 * alias that takes a name too, since callers used it before names were accepted. The value is
 * resolved by AgentService.resolve: an unknown agent is a 404 listing agents, never an empty page.
 */
export const agentFilterFields = {
  agent: z.string().min(1).max(200).optional().describe('An agent id (agent_…) or name'),
  agent_id: z.string().min(1).max(200).optional().describe('Same as agent (an id or a name)'),
};

export function agentFilterOf(query: { agent?: string | undefined; agent_id?: string | undefined }) {
  if (query.agent !== undefined && query.agent_id !== undefined && query.agent !== query.agent_id) {
    throw new AppError('VALIDATION_ERROR', 'Give the agent once: agent and agent_id differ', {
      issues: [{ path: 'agent_id', message: 'differs from agent' }],
    });
  }
  return query.agent ?? query.agent_id;
}

/** An event type filter must name a type the service writes: a typo is a 400 listing them. */
export function checkEventType(eventType: string | undefined): void {
  if (eventType === undefined || isAuditEventType(eventType)) return;
  throw new AppError(
    'VALIDATION_ERROR',
    `Unknown event type "${eventType}"; known types: ${AUDIT_EVENT_TYPES.join(', ')}`,
    {
      issues: [{ path: 'event_type', message: 'is not an audit event type' }],
      known: AUDIT_EVENT_TYPES,
    },
  );
}
