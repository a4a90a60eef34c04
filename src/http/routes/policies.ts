import { z } from 'zod';
import { AppError } from '../../core/errors.js';
import { TTL_MAX_SECONDS, TTL_MIN_SECONDS } from '../../core/permission.js';
import { POLICY_ACTIONS } from '../../core/policy/index.js';
import type { AgentService } from '../../services/agents.js';
import type { PolicyRecord, PolicyService } from '../../services/policies.js';
import type { Router } from '../route.js';

const policyId = z.object({ id: z.string().max(64) }).strict();

/**
 * Policy definitions are validated by the policy engine, not by a second zod schema here: its
 * errors (422 INVALID_POLICY) name the offending field path, e.g. `conditions.scope.amount.lessthan`.
 */
const definitionBody = z
  .unknown()
  .describe('A policy (snake_case or camelCase fields), validated by the policy engine');
const setBody = z
  .unknown()
  .describe(
    'The whole policy set: { policies: [...] } or a list of policies, validated by the policy engine',
  );
const patchBody = z
  .unknown()
  .describe('Policy fields to change (snake_case or camelCase); null clears an optional field');

const jsonObject = z.record(z.string(), z.unknown());

/** The body is the set itself (possibly a bare list), so the dry-run switch is a query parameter. */
const replaceQuery = z.object({ dry_run: z.enum(['true', 'false']).optional() }).strict();

const namedPolicy = z.object({ id: z.string(), name: z.string() });
const planResponse = z.object({
  added: z.array(z.object({ name: z.string(), id: z.string().optional() })),
  changed: z.array(namedPolicy.extend({ previousName: z.string().optional(), fields: z.array(z.string()) })),
  removed: z.array(namedPolicy),
  unchanged: z.array(namedPolicy),
  reordered: z.boolean(),
});

const testBody = z
  .object({
    agent: z.string().min(1).max(200).optional().describe('An existing agent, by id or name (404 if none)'),
    agentId: z.string().min(1).max(64).optional(),
    agentName: z.string().min(1).max(200).optional(),
    action: z.string().min(1).max(200),
    resource: z.string().max(2000).nullable().optional(),
    scope: jsonObject.optional(),
    context: jsonObject.optional(),
    ttl: z.number().int().min(TTL_MIN_SECONDS).max(TTL_MAX_SECONDS).optional(),
  })
  .strict();

const policyResponse = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string().optional(),
  priority: z.number(),
  agent: z.string().optional(),
  enabled: z.boolean(),
  conditions: z.record(z.string(), jsonObject),
  action: z.enum(POLICY_ACTIONS),
  scopeTemplate: jsonObject.optional(),
  ttl: z.number().optional(),
  reason: z.string().optional(),
  approval: jsonObject.optional(),
  position: z.number(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

const testResponse = z.object({
  decision: z.enum(POLICY_ACTIONS),
  policy: z.object({ id: z.string().optional(), name: z.string() }).nullable(),
  reason: z.string(),
  scope: jsonObject.nullable(),
  ttl: z.number().nullable(),
  agent: z.object({ id: z.string().nullable(), name: z.string().nullable() }),
  approval: jsonObject.optional(),
});

/** The normalised camelCase definition in a stable field order (jsonb does not keep it), then storage facts. */
export function policyDto(record: PolicyRecord) {
  const d = record.definition;
  return {
    id: record.id,
    name: d.name,
    ...(d.description !== undefined && { description: d.description }),
    priority: d.priority,
    ...(d.agent !== undefined && { agent: d.agent }),
    enabled: d.enabled,
    conditions: d.conditions as Record<string, Record<string, unknown>>,
    action: d.action,
    ...(d.scopeTemplate !== undefined && { scopeTemplate: d.scopeTemplate }),
    ...(d.ttl !== undefined && { ttl: d.ttl }),
    ...(d.reason !== undefined && { reason: d.reason }),
    ...(d.approval !== undefined && { approval: { ...d.approval } }),
    position: record.position,
    createdAt: record.createdAt.toISOString(),
    updatedAt: record.updatedAt.toISOString(),
  };
}

export function registerPolicyRoutes(route: Router, policies: PolicyService, agents: AgentService): void {
  route({
    method: 'GET',
    url: '/api/v1/policies',
    auth: 'operator',
    tag: 'policies',
    summary: 'List the policy set in stored order (evaluation goes by priority, highest first)',
    response: z.object({ policies: z.array(policyResponse) }),
    async handler() {
      return { data: { policies: (await policies.list()).map(policyDto) } };
    },
  });

  route({
    method: 'POST',
    url: '/api/v1/policies',
    auth: 'operator',
    tag: 'policies',
    summary: 'Add one policy to the set',
    body: definitionBody,
    successStatus: 201,
    response: policyResponse,
    async handler({ body, origin }) {
      return { data: policyDto(await policies.create(body, origin)) };
    },
  });

  route({
    method: 'PUT',
    url: '/api/v1/policies',
    auth: 'operator',
    tag: 'policies',
    summary:
      'Replace the whole policy set (validated as a whole; all or nothing) and say what changed; `dry_run=true` only says it',
    body: setBody,
    query: replaceQuery,
    response: z.object({
      dryRun: z.boolean(),
      count: z.number(),
      plan: planResponse,
      unknownAgents: z.array(z.object({ policy: z.string(), agents: z.array(z.string()) })),
      policies: z.array(policyResponse).optional(),
    }),
    async handler({ body, query, origin }) {
      const dryRun = query.dry_run === 'true';
      const result = await policies.replaceAll(body, origin, { dryRun });
      return {
        data: {
          dryRun,
          count: result.count,
          plan: result.plan,
          unknownAgents: result.unknownAgents,
          // On a dry run nothing was stored: there is no new set (nor new ids) to show.
          ...(!dryRun && { policies: result.policies.map(policyDto) }),
        },
      };
    },
  });

  route({
    method: 'POST',
    url: '/api/v1/policies/test',
    auth: 'operator',
    tag: 'policies',
    summary: 'Dry run: the decision, matching policy, resulting scope and TTL a request would get',
    body: testBody,
    response: testResponse,
    async handler({ body }) {
      const { agent, ...request } = body;
      if (agent !== undefined) {
        if (request.agentId !== undefined || request.agentName !== undefined) {
          throw new AppError('VALIDATION_ERROR', 'Give agent, or agentId/agentName, not both', {
            issues: [{ path: 'agent', message: 'given with agentId or agentName' }],
          });
        }
        const found = await agents.resolve(agent);
        request.agentId = found.id;
        request.agentName = found.name;
      }
      const result = await policies.test(request);
      return {
        data: {
          ...result,
          ...(result.approval !== undefined && { approval: { ...result.approval } }),
        },
      };
    },
  });

  route({
    method: 'GET',
    url: '/api/v1/policies/:id',
    auth: 'operator',
    tag: 'policies',
    summary: 'Get one policy',
    params: policyId,
    response: policyResponse,
    async handler({ params }) {
      return { data: policyDto(await policies.get(params.id)) };
    },
  });

  route({
    method: 'PATCH',
    url: '/api/v1/policies/:id',
    auth: 'operator',
    tag: 'policies',
    summary: 'Change fields of one policy (the whole set is validated again)',
    params: policyId,
    body: patchBody,
    response: policyResponse,
    async handler({ params, body, origin }) {
      return { data: policyDto(await policies.update(params.id, body, origin)) };
    },
  });

  route({
    method: 'DELETE',
    url: '/api/v1/policies/:id',
    auth: 'operator',
    tag: 'policies',
    summary: 'Delete one policy',
    params: policyId,
    response: policyResponse,
    async handler({ params, origin }) {
      return { data: policyDto(await policies.remove(params.id, origin)) };
    },
  });
}
