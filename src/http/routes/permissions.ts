import { z } from 'zod';
import { REASON_MAX_CHARS } from '../../core/limits.js';
import {
  PERMISSION_STATUSES,
  type Permission,
  TTL_MAX_SECONDS,
  TTL_MIN_SECONDS,
} from '../../core/permission.js';
import { TOKEN_STATES } from '../../core/permissionView.js';
import { isTokenHash } from '../../core/token.js';
import type { AgentService } from '../../services/agents.js';
import type { ApprovalService } from '../../services/approvals/service.js';
import type { Principal } from '../../services/auth.js';
import type { PermissionService } from '../../services/permissions.js';
import { type RateLimiter, rateLimitHeaders } from '../../services/rateLimits.js';
import type { PermissionWaiters } from '../../services/waiters.js';
import type { Agent } from '../../store/agentRepository.js';
import { agentFilterFields, agentFilterOf } from '../agentFilter.js';
import { decodeCursor, nextCursor, pageFields } from '../cursor.js';
import { type Router, requireAgent } from '../route.js';
import { streamPermissionEvents } from './permissionEvents.js';
import { type PendingLinks, type PermissionPresenter, presenterFor } from './permissionLinks.js';

const jsonObject = (maxBytes: number) =>
  z.record(z.string(), z.unknown()).refine((v) => JSON.stringify(v).length <= maxBytes, {
    message: `must be at most ${Math.round(maxBytes / 1024)} KiB as JSON`,
  });

const requestBody = z
  .object({
    action: z.string().trim().min(1).max(200),
    resource: z.string().max(2000).optional(),
    scope: jsonObject(32_768).optional(),
    context: jsonObject(32_768).optional(),
    ttl: z.number().int().min(TTL_MIN_SECONDS).max(TTL_MAX_SECONDS).optional(),
    tokenHash: z
      .string()
      .refine(isTokenHash, { message: 'must be the lowercase hex SHA-256 of the token' })
      .optional(),
    webhookUrl: z
      .url({ protocol: /^https?$/ })
      .max(2048)
      .optional(),
    idempotencyKey: z.string().min(1).max(200).optional(),
  })
  .strict();

const tokenBody = z
  .object({
    token: z.string().min(1).max(200),
    actionDetails: jsonObject(65_536).optional(),
  })
  .strict();

const idParams = z.object({ id: z.string().max(100) }).strict();

export const MAX_WAIT_SECONDS = 60;
/** A waiter set to wake at a deadline wakes this much after it, so its read is past it. */
const DEADLINE_SLACK_MS = 5;
const getQuery = z.object({ wait: z.coerce.number().int().min(0).max(MAX_WAIT_SECONDS).optional() }).strict();

const listQuery = z
  .object({
    status: z.enum(PERMISSION_STATUSES).optional(),
    ...agentFilterFields,
    action: z.string().max(200).optional(),
    ...pageFields,
  })
  .strict();

const decideBody = z
  .object({
    approved: z.boolean(),
    reason: z.string().max(REASON_MAX_CHARS).optional(),
    scopeModifications: jsonObject(32_768).optional(),
  })
  .strict();

const reasonBody = z.object({ reason: z.string().max(REASON_MAX_CHARS).optional() }).strict();

const permissionResponse = z.object({
  id: z.string(),
  agentId: z.string(),
  status: z.enum(PERMISSION_STATUSES),
  action: z.string(),
  resource: z.string().nullable(),
  scope: z.record(z.string(), z.unknown()),
  context: z.record(z.string(), z.unknown()),
  reason: z.string().nullable(),
  policy: z.object({ id: z.string().nullable(), name: z.string().nullable() }).nullable(),
  decidedBy: z.record(z.string(), z.unknown()).nullable(),
  decidedAt: z.string().nullable(),
  expiresAt: z.string(),
  createdAt: z.string(),
  usesRemaining: z.number(),
  maxUses: z.number(),
  /** Pending only: the chat message, else this server's page of the request. */
  approvalUrl: z.string().optional(),
  /** Pending only: the request's Server-Sent Events stream (real-time status updates). */
  eventsUrl: z.string().optional(),
  /** Pending only, for clients without X-Agent-OTP-SDK (SDK 0.1): the same stream as eventsUrl. */
  webhookUrl: z.string().optional(),
  token: z.string().optional(),
});

/** An operator's read adds the approval progress and the token's state (never the token). */
const operatorPermissionResponse = permissionResponse.extend({
  approvals: z
    .object({
      count: z.number(),
      required: z.number(),
      votes: z.array(
        z.object({ approver: z.string(), decision: z.enum(['approve', 'deny']), at: z.string() }),
      ),
    })
    .optional(),
  tokenState: z.enum(TOKEN_STATES).optional(),
});

/** A decision adds how far the quorum got. */
const decisionResponse = permissionResponse.extend({
  approvals: z.object({ count: z.number(), required: z.number() }),
});

const verifyResponse = z.object({
  valid: z.boolean(),
  scope: z.record(z.string(), z.unknown()),
  usesRemaining: z.number(),
  expiresAt: z.string(),
  reason: z.string().optional(),
  /** Which scope rules the actionDetails broke (the values sent are not echoed). */
  violations: z
    .array(
      z.object({ key: z.string(), field: z.string(), message: z.string(), limit: z.unknown().optional() }),
    )
    .optional(),
});

const useResponse = z.object({
  success: z.boolean(),
  usesRemaining: z.number(),
  status: z.enum(PERMISSION_STATUSES),
});

const listResponse = z.object({
  permissions: z.array(permissionResponse),
  nextCursor: z.string().nullable(),
});

/**
 * The links (approvalUrl, eventsUrl; webhookUrl for SDK 0.1) only while pending; the token only
 * in the one answer that hands it over.
 */
export function permissionDto(p: Permission, token?: string, links?: PendingLinks | null) {
  return {
    id: p.id,
    agentId: p.agentId,
    status: p.status,
    action: p.action,
    resource: p.resource,
    scope: p.scope,
    context: p.context,
    reason: p.decisionReason,
    policy: p.policyName || p.policyId ? { id: p.policyId, name: p.policyName } : null,
    decidedBy: p.decidedBy as Record<string, unknown> | null,
    decidedAt: p.decidedAt?.toISOString() ?? null,
    expiresAt: p.expiresAt.toISOString(),
    createdAt: p.createdAt.toISOString(),
    usesRemaining: p.usesRemaining,
    maxUses: p.maxUses,
    ...(p.status === 'pending' && links ? links : {}),
    ...(token ? { token } : {}),
  };
}

/** Who reads a permission: an agent sees only its own, an operator any. */
function readerOf(principal: Principal | null): { agent: Agent } | { operator: true } {
  return principal?.kind === 'agent' ? { agent: principal.agent } : { operator: true };
}

/** The answer for one caller: its view of the status (SDK 0.1 or ours) and the pending links. */
function present(presenter: PermissionPresenter, permission: Permission, token?: string) {
  const shown = presenter.view(permission);
  return permissionDto(shown, token, presenter.links(shown));
}

const STATUS_CODE: Partial<Record<Permission['status'], number>> = { approved: 201, pending: 202 };

export interface PermissionRouteDeps {
  permissions: PermissionService;
  /** Decisions go through the approval core, as every channel's do (DESIGN §13). */
  approvals: Pick<ApprovalService, 'decideAs'>;
  limiters: { requests: RateLimiter; tokenCalls: RateLimiter };
  waiters: PermissionWaiters;
  agents: AgentService;
}

export function registerPermissionRoutes(
  route: Router,
  { permissions, approvals, limiters, waiters, agents }: PermissionRouteDeps,
  /** PUBLIC_URL: the base of the links in pending answers (else the request's own origin). */
  options: { publicUrl?: string; approvalPage?: boolean } = {},
): void {
  route({
    method: 'POST',
    url: '/api/v1/permissions/request',
    auth: 'agent',
    tag: 'permissions',
    summary: 'Ask for a one-time permission: 201 approved, 202 pending, 200 denied',
    body: requestBody,
    response: permissionResponse,
    successStatuses: [201, 202, 200],
    rateLimited: true,
    async handler({ body, principal, origin, request }) {
      const agent = requireAgent(principal);
      const headers = rateLimitHeaders(await limiters.requests.consume(agent));
      const { permission, token } = await permissions.request(agent, body, origin);
      const presenter = presenterFor(request, principal, options.publicUrl, options.approvalPage);
      return {
        status: STATUS_CODE[permission.status] ?? 200,
        headers,
        data: present(presenter, permission, token),
      };
    },
  });

  route({
    method: 'GET',
    url: '/api/v1/permissions/:id',
    auth: 'any',
    tag: 'permissions',
    summary:
      "Read a permission (an agent sees only its own); after a human approval the agent's first read carries the token. " +
      'An operator also gets `approvals` (count, required, votes) and `tokenState` (none, unused, used, exhausted, expired, revoked). ' +
      'With ?wait=N (≤ 60) a pending permission is answered as soon as it is decided, or after N seconds.',
    params: idParams,
    query: getQuery,
    response: operatorPermissionResponse,
    async handler({ params, query, principal, origin, reply, request }) {
      const who = readerOf(principal);
      const presenter = presenterFor(request, principal, options.publicUrl, options.approvalPage);
      const answer = (permission: Permission, token?: string) => ({
        data: {
          ...present(presenter, permission, token),
          ...('operator' in who ? permissions.progress(permission) : {}),
        },
      });
      if (!query.wait) {
        const { permission, token } = await permissions.get(who, params.id, origin);
        return answer(permission, token);
      }
      const deadline = Date.now() + query.wait * 1000;
      const closed = new AbortController();
      reply.raw.once('close', () => closed.abort());
      // Set once the waiter is armed to wake at the request's own approval deadline.
      let atApprovalDeadline = false;
      let armedFor = Math.max(0, deadline - Date.now());
      for (;;) {
        // Arm before reading, so a decision landing between the read and the wait wakes us.
        const armed = waiters.arm(params.id, armedFor, closed.signal);
        const { permission, token } = await permissions.get(who, params.id, origin);
        const stop = closed.signal.aborted || waiters.closing.aborted;
        if (permission.status !== 'pending' || Date.now() >= deadline || stop) {
          armed.cancel();
          return answer(permission, token);
        }
        // The approval deadline comes first: wake then, and the read shows `expired` at once.
        const due = permissions.deadlineIn(permission);
        if (!atApprovalDeadline && due !== null && due < armedFor) {
          armed.cancel();
          atApprovalDeadline = true;
          armedFor = due + DEADLINE_SLACK_MS;
          continue;
        }
        await armed.wait;
        armedFor = Math.max(0, deadline - Date.now());
        atApprovalDeadline = false;
      }
    },
  });

  route({
    method: 'GET',
    url: '/api/v1/permissions/:id/events',
    auth: 'any',
    tag: 'permissions',
    summary: 'Server-Sent Events: the permission now, then every change, until it reaches a final state',
    params: idParams,
    stream: {
      contentTypes: ['text/event-stream'],
      description:
        'Server-Sent Events named `status`, each `data` the permission as it now stands (x-events)',
      events: { status: permissionResponse },
    },
    async handler({ params, principal, origin, reply, request }) {
      const who = readerOf(principal);
      const presenter = presenterFor(request, principal, options.publicUrl, options.approvalPage);
      await streamPermissionEvents({
        read: async () => {
          const read = await permissions.get(who, params.id, origin);
          return { ...read, permission: presenter.view(read.permission) };
        },
        arm: (timeoutMs, signal) => waiters.arm(params.id, timeoutMs, signal),
        dueIn: (permission) => permissions.deadlineIn(permission),
        closing: waiters.closing,
        toEvent: (permission, token) => permissionDto(permission, token, presenter.links(permission)),
        reply,
        requestId: request.id,
      });
      return null;
    },
  });

  route({
    method: 'POST',
    url: '/api/v1/permissions/:id/verify',
    auth: 'agent',
    tag: 'permissions',
    summary: 'Check a token (and actionDetails against the scope) without consuming it',
    params: idParams,
    body: tokenBody,
    response: verifyResponse,
    rateLimited: true,
    async handler({ params, body, principal, origin }) {
      const agent = requireAgent(principal);
      // The limiter's Redis round trip runs beside the permission lookup: no added latency.
      const admitted = limiters.tokenCalls.consume(agent);
      const result = await permissions.verify(
        agent,
        params.id,
        body.token,
        body.actionDetails,
        origin,
        admitted,
      );
      return {
        headers: rateLimitHeaders(await admitted),
        data: {
          valid: result.valid,
          scope: result.permission.scope,
          usesRemaining: result.permission.usesRemaining,
          expiresAt: result.permission.expiresAt.toISOString(),
          ...(result.reason ? { reason: result.reason } : {}),
          ...(result.violations ? { violations: result.violations.map(({ actual: _a, ...v }) => v) } : {}),
        },
      };
    },
  });

  route({
    method: 'POST',
    url: '/api/v1/permissions/:id/use',
    auth: 'agent',
    tag: 'permissions',
    summary: 'Spend one use of the token; actionDetails are checked against the granted scope',
    params: idParams,
    body: tokenBody,
    response: useResponse,
    rateLimited: true,
    async handler({ params, body, principal, origin }) {
      const agent = requireAgent(principal);
      const admitted = limiters.tokenCalls.consume(agent);
      const spent = await permissions.use(agent, params.id, body.token, body.actionDetails, origin, admitted);
      return {
        headers: rateLimitHeaders(await admitted),
        data: { success: true, usesRemaining: spent.usesRemaining, status: spent.status },
      };
    },
  });

  route({
    method: 'POST',
    url: '/api/v1/permissions/:id/revoke',
    auth: 'any',
    tag: 'permissions',
    summary: 'Revoke a permission: its token stops working at once',
    params: idParams,
    body: reasonBody,
    response: permissionResponse,
    async handler({ params, body, principal, origin }) {
      const who = readerOf(principal);
      const revoked = await permissions.revoke(who, params.id, origin, body.reason);
      return { data: permissionDto(revoked) };
    },
  });

  route({
    method: 'POST',
    url: '/api/v1/permissions/:id/cancel',
    auth: 'agent',
    tag: 'permissions',
    summary: 'Withdraw a request that is still pending',
    params: idParams,
    response: permissionResponse,
    async handler({ params, principal, origin }) {
      const agent = requireAgent(principal);
      return { data: permissionDto(await permissions.cancel(agent, params.id, origin)) };
    },
  });

  route({
    method: 'GET',
    url: '/api/v1/permissions',
    auth: 'operator',
    tag: 'permissions',
    summary: 'List permissions, newest first',
    query: listQuery,
    response: listResponse,
    async handler({ query }) {
      const page = await permissions.list({
        status: query.status,
        agentId: await agents.resolveFilter(agentFilterOf(query)),
        action: query.action,
        limit: query.limit,
        before: query.cursor ? decodeCursor(query.cursor) : undefined,
      });
      return {
        data: {
          permissions: page.map((p) => permissionDto(p)),
          nextCursor: nextCursor(page, query.limit),
        },
      };
    },
  });

  route({
    method: 'POST',
    url: '/api/v1/permissions/:id/decide',
    auth: 'operator',
    tag: 'permissions',
    summary: 'Approve (optionally narrowing the scope) or deny a pending request',
    params: idParams,
    body: decideBody,
    response: decisionResponse,
    async handler({ params, body, origin }) {
      // An operator key may decide any request; the self-approval ban, quorum and narrowing
      // still apply. A refusal is answered with the error the decision raised.
      const result = await approvals.decideAs(
        { kind: 'operator', origin },
        {
          permissionId: params.id,
          approved: body.approved,
          reason: body.reason,
          scopeModifications: body.scopeModifications,
        },
      );
      if (result.kind === 'refused') throw result.error;
      return { data: { ...permissionDto(result.permission), approvals: result.approvals } };
    },
  });
}
