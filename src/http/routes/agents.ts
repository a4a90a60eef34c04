import { z } from 'zod';
import type { AgentService } from '../../services/agents.js';
import type { Agent } from '../../store/agentRepository.js';
import { decodeCursor, nextCursor, pageFields } from '../cursor.js';
import type { Router } from '../route.js';

const agentId = z.object({ id: z.string().max(64) }).strict();
const agentIdOrName = z.object({ id: z.string().min(1).max(200) }).strict();
const metadata = z.record(z.string(), z.unknown()).refine((m) => JSON.stringify(m).length <= 16_384, {
  message: 'must be at most 16 KiB as JSON',
});

const createBody = z
  .object({
    name: z.string().trim().min(1).max(200),
    description: z.string().max(2000).optional(),
    metadata: metadata.optional(),
    environment: z.enum(['live', 'test']).optional(),
  })
  .strict();

const updateBody = z
  .object({
    name: z.string().trim().min(1).max(200).optional(),
    description: z.string().max(2000).nullable().optional(),
    metadata: metadata.optional(),
    rateLimitPerMin: z.number().int().min(1).max(1_000_000).nullable().optional(),
    rateLimitPerHour: z.number().int().min(1).max(100_000_000).nullable().optional(),
    tokenRateLimitPerMin: z.number().int().min(1).max(1_000_000).nullable().optional(),
    tokenRateLimitPerHour: z.number().int().min(1).max(100_000_000).nullable().optional(),
    webhookUrl: z
      .url({ protocol: /^https?$/ })
      .max(2048)
      .nullable()
      .optional(),
  })
  .strict();

const rotateBody = z
  .object({
    gracePeriod: z
      .number()
      .int()
      .min(0)
      .max(30 * 86400)
      .default(86400),
    revokeImmediately: z.boolean().default(false),
  })
  .strict();

const listQuery = z
  .object({
    ...pageFields,
  })
  .strict();

const agentResponse = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  metadata: z.record(z.string(), z.unknown()),
  environment: z.enum(['live', 'test']),
  status: z.enum(['active', 'revoked', 'deleted']),
  rateLimitPerMin: z.number().nullable(),
  rateLimitPerHour: z.number().nullable(),
  tokenRateLimitPerMin: z.number().nullable(),
  tokenRateLimitPerHour: z.number().nullable(),
  webhookUrl: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  revokedAt: z.string().nullable(),
  /** Shares its name with an older agent (created before names were unique): rename it. */
  nameDuplicate: z.boolean(),
});

export function agentDto(agent: Agent) {
  return {
    id: agent.id,
    name: agent.name,
    description: agent.description,
    metadata: agent.metadata,
    environment: agent.environment,
    status: agent.status,
    rateLimitPerMin: agent.rateLimitPerMin,
    rateLimitPerHour: agent.rateLimitPerHour,
    tokenRateLimitPerMin: agent.tokenRateLimitPerMin,
    tokenRateLimitPerHour: agent.tokenRateLimitPerHour,
    webhookUrl: agent.webhookUrl,
    createdAt: agent.createdAt.toISOString(),
    updatedAt: agent.updatedAt.toISOString(),
    revokedAt: agent.revokedAt?.toISOString() ?? null,
    nameDuplicate: agent.nameDuplicate,
  };
}

export function registerAgentRoutes(route: Router, agents: AgentService): void {
  route({
    method: 'POST',
    url: '/api/v1/agents',
    auth: 'operator',
    tag: 'agents',
    summary: 'Create an agent; its API key and webhook signing secret are returned once',
    body: createBody,
    successStatus: 201,
    response: agentResponse.extend({
      apiKey: z.string(),
      apiKeyPrefix: z.string(),
      webhookSecret: z.string().nullable(),
    }),
    async handler({ body, origin }) {
      const created = await agents.create(body, origin);
      return {
        data: {
          ...agentDto(created.agent),
          apiKey: created.apiKey,
          apiKeyPrefix: created.apiKeyPrefix,
          webhookSecret: created.webhookSecret,
        },
      };
    },
  });

  route({
    method: 'GET',
    url: '/api/v1/agents',
    auth: 'operator',
    tag: 'agents',
    summary: 'List agents',
    query: listQuery,
    response: z.object({ agents: z.array(agentResponse), nextCursor: z.string().nullable() }),
    async handler({ query }) {
      const page = await agents.list({
        limit: query.limit,
        after: query.cursor ? decodeCursor(query.cursor) : undefined,
      });
      return {
        data: {
          agents: page.map(agentDto),
          nextCursor: nextCursor(page, query.limit),
        },
      };
    },
  });

  route({
    method: 'GET',
    url: '/api/v1/agents/name-duplicates',
    auth: 'operator',
    tag: 'agents',
    summary:
      'Agents that share a name (case-insensitively) with an older agent, created before names were unique: rename them',
    response: z.object({
      duplicates: z.array(
        z.object({ id: z.string(), name: z.string(), sharesNameWith: z.array(z.string()) }),
      ),
    }),
    async handler() {
      return { data: { duplicates: await agents.nameDuplicates() } };
    },
  });

  route({
    method: 'GET',
    url: '/api/v1/agents/:id',
    auth: 'operator',
    tag: 'agents',
    summary: 'Get an agent and its keys (prefixes only), by id or by name',
    params: agentIdOrName,
    response: agentResponse.extend({
      keys: z.array(
        z.object({
          prefix: z.string(),
          createdAt: z.string(),
          expiresAt: z.string().nullable(),
          revokedAt: z.string().nullable(),
          lastUsedAt: z.string().nullable(),
        }),
      ),
    }),
    async handler({ params }) {
      // `agent_…` is looked up as an id (404 NOT_FOUND, as always); anything else is a name,
      // resolved as every agent filter resolves it (unknown: 404 UNKNOWN_AGENT listing agents).
      const id = params.id.startsWith('agent_') ? params.id : (await agents.resolve(params.id)).id;
      const agent = await agents.get(id);
      return {
        data: {
          ...agentDto(agent),
          keys: agent.keys.map((k) => ({
            prefix: k.prefix,
            createdAt: k.createdAt.toISOString(),
            expiresAt: k.expiresAt?.toISOString() ?? null,
            revokedAt: k.revokedAt?.toISOString() ?? null,
            lastUsedAt: k.lastUsedAt?.toISOString() ?? null,
          })),
        },
      };
    },
  });

  route({
    method: 'PATCH',
    url: '/api/v1/agents/:id',
    auth: 'operator',
    tag: 'agents',
    summary: 'Update an agent',
    params: agentId,
    body: updateBody,
    response: agentResponse,
    async handler({ params, body, origin }) {
      return { data: agentDto(await agents.update(params.id, body, origin)) };
    },
  });

  route({
    method: 'DELETE',
    url: '/api/v1/agents/:id',
    auth: 'operator',
    tag: 'agents',
    summary: 'Delete an agent (its keys stop working; its history stays in the audit trail)',
    params: agentId,
    response: agentResponse,
    async handler({ params, origin }) {
      return { data: agentDto(await agents.delete(params.id, origin)) };
    },
  });

  route({
    method: 'POST',
    url: '/api/v1/agents/:id/rotate-key',
    auth: 'operator',
    tag: 'agents',
    summary:
      'Issue a new key and webhook secret; the old key works, and the old secret signs too, until the grace period ends',
    params: agentId,
    body: rotateBody,
    response: z.object({
      id: z.string(),
      apiKey: z.string(),
      apiKeyPrefix: z.string(),
      previousKeysExpireAt: z.string(),
      webhookSecret: z.string().nullable(),
    }),
    async handler({ params, body, origin }) {
      const rotated = await agents.rotateKey(
        params.id,
        { gracePeriodSeconds: body.gracePeriod, revokeImmediately: body.revokeImmediately },
        origin,
      );
      return {
        data: {
          id: rotated.agent.id,
          apiKey: rotated.apiKey,
          apiKeyPrefix: rotated.apiKeyPrefix,
          previousKeysExpireAt: rotated.previousKeysExpireAt.toISOString(),
          webhookSecret: rotated.webhookSecret,
        },
      };
    },
  });

  route({
    method: 'POST',
    url: '/api/v1/agents/:id/revoke',
    auth: 'operator',
    tag: 'agents',
    summary: 'Revoke an agent: every key it has is refused from now on',
    params: agentId,
    response: agentResponse,
    async handler({ params, origin }) {
      return { data: agentDto(await agents.revoke(params.id, origin)) };
    },
  });
}
