/**
 * The MCP tools of `agent-otp mcp`: a model asks for a permission, reads its state and spends its
 * token, all through the SDK (src/sdk) — the same client any agent uses, so the token is the one
 * this process generated and committed to (the server only ever sees its hash).
 *
 * Outcomes a model should reason about (approved, denied, no decision in time) are ordinary
 * results; only failures (a spent token, a scope violation, a bad key, the server unreachable) are
 * tool errors (`isError: true`), their text starting with the server's error code.
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { AgentOTPClient } from '../sdk/client.js';
import {
  type AgentOTPError,
  isAgentOTPError,
  PermissionDeniedError,
  PermissionExpiredError,
  RateLimitError,
  redactSecrets,
  ScopeViolationError,
  TimeoutError,
} from '../sdk/errors.js';
import type { PermissionInfo } from '../sdk/types.js';

export const DEFAULT_WAIT_SECONDS = 300;
export const MAX_WAIT_SECONDS = 3600;
/** How often a waiting `request_permission` reports progress (when the client asked for it). */
const PROGRESS_INTERVAL_MS = 15_000;

/** What the process logs: ids, tools, statuses and error codes — never a token or a key. */
export type McpLog = (msg: string, fields?: Record<string, unknown>) => void;

export interface ToolOptions {
  log?: McpLog;
  /** Progress notification interval while waiting for a human (tests shorten it). */
  progressIntervalMs?: number;
}

const SCOPE_VOCABULARY =
  'Scope vocabulary: max_<field> (per-use cap on action_details.<field>), max_total_<field> (sum over uses), ' +
  'allowed_<field> (list, globs like *@acme.com), blocked_<field>, <field>_pattern (regex), ' +
  '<field>_allowed: false, max_uses (default 1), allowed_hours/allowed_days/timezone; other keys are informational.';

const scopeSchema = z.record(z.string(), z.unknown());

const requestInput = {
  action: z
    .string()
    .min(1)
    .max(200)
    .describe('What you want to do, dotted: e.g. "email.send", "payment.refund", "file.write", "db.delete".'),
  resource: z
    .string()
    .min(1)
    .max(1000)
    .optional()
    .describe('The specific target, e.g. "email:client@example.com" or "invoice:INV-1042".'),
  scope: scopeSchema
    .optional()
    .describe(
      `The narrowest limits that still let you do the job, e.g. {"max_amount": 50, "max_uses": 1}. ${SCOPE_VOCABULARY}`,
    ),
  context: z
    .record(z.string(), z.unknown())
    .optional()
    .describe(
      'Why and for whom, shown to the approver and kept in the audit trail: e.g. {"reason": "Refund for duplicate charge", "user_id": "u_42", "order_id": "1042"}.',
    ),
  ttl: z
    .number()
    .int()
    .min(30)
    .max(3600)
    .optional()
    .describe('Token lifetime in seconds once approved (30-3600, server default 300). Ask for the minimum.'),
  timeout_seconds: z
    .number()
    .int()
    .min(1)
    .max(MAX_WAIT_SECONDS)
    .default(DEFAULT_WAIT_SECONDS)
    .describe(
      `How long to wait for a human decision, in seconds (default ${DEFAULT_WAIT_SECONDS}, max ${MAX_WAIT_SECONDS}).`,
    ),
};

const requestOutput = {
  status: z.enum(['approved', 'denied', 'timeout', 'expired']),
  id: z.string().optional(),
  token: z.string().optional(),
  scope: scopeSchema.optional(),
  expiresAt: z.string().optional(),
  reason: z.string().optional(),
};

const permissionOutput = {
  id: z.string(),
  status: z.string(),
  action: z.string().optional(),
  resource: z.string().optional(),
  scope: scopeSchema,
  expiresAt: z.string(),
  reason: z.string().optional(),
  usesRemaining: z.number().optional(),
  maxUses: z.number().optional(),
  approvalUrl: z.string().optional(),
  decidedBy: z.record(z.string(), z.unknown()).optional(),
  decidedAt: z.string().optional(),
  createdAt: z.string().optional(),
  token: z.string().optional(),
};

const useOutput = {
  success: z.boolean(),
  usesRemaining: z.number(),
  status: z.string().optional(),
};

const REQUEST_DESCRIPTION = [
  'Ask Agent OTP for a one-time, scoped permission BEFORE doing something sensitive (sending email, moving money, writing or deleting data).',
  'A policy approves or denies at once, or a human decides: this call then waits (up to timeout_seconds) for the decision.',
  'Returns {status: "approved", id, token, scope, expiresAt}: do the action within the granted scope (it may be narrower than asked - check it), then call use_token with id and token.',
  'The token is your own secret credential: use it immediately, only for this action, and never log, store, print or repeat it anywhere else.',
  '{status: "denied", reason}: do not do the action; tell the user why. {status: "timeout", id}: no decision yet, the request is still pending - call get_permission with the id later.',
  '{status: "expired", id}: nobody decided in time or the request was withdrawn; ask again only if still needed.',
  'Request the minimum scope and give a clear context.reason.',
  SCOPE_VOCABULARY,
].join(' ');

const GET_DESCRIPTION =
  'Read the current state of a permission you requested: status (pending, approved, denied, expired, used, revoked, cancelled), ' +
  'granted scope, expiry, uses remaining and who decided. Call it after request_permission returned "timeout", or to check a token is still usable. ' +
  'When an approved permission was requested by this server, the result carries its token: use it immediately with use_token and never log or repeat it.';

const USE_DESCRIPTION =
  'Spend one use of an approved permission, right after doing the action it covers. Pass the id and token from request_permission, and ' +
  'action_details describing what you actually did (e.g. {"amount": 20, "recipient": "bob@acme.com"}): they are checked against the granted scope. ' +
  'Returns {success, usesRemaining}. On failure the result is an error whose text starts with the code: SCOPE_VIOLATION (names the scope key broken; nothing was spent), ' +
  'TOKEN_USED, TOKEN_EXPIRED, TOKEN_REVOKED, INVALID_TOKEN - then request a new permission instead of retrying. ' +
  SCOPE_VOCABULARY;

export function registerAgentOtpTools(
  server: McpServer,
  otp: AgentOTPClient,
  options: ToolOptions = {},
): void {
  const log: McpLog = options.log ?? (() => {});
  const progressInterval = options.progressIntervalMs ?? PROGRESS_INTERVAL_MS;

  server.registerTool(
    'request_permission',
    {
      title: 'Request a one-time permission',
      description: REQUEST_DESCRIPTION,
      inputSchema: requestInput,
      outputSchema: requestOutput,
      annotations: {
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: true,
      },
    },
    async (args, extra) => {
      const timeoutSeconds = args.timeout_seconds;
      let pendingId: string | undefined;
      let progressTimer: NodeJS.Timeout | undefined;
      const progressToken = extra._meta?.progressToken;
      const started = Date.now();
      const sendProgress = (message: string) => {
        if (progressToken === undefined) return;
        const elapsed = Math.floor((Date.now() - started) / 1000);
        extra
          .sendNotification({
            method: 'notifications/progress',
            params: { progressToken, progress: elapsed, total: timeoutSeconds, message },
          })
          .catch(() => undefined);
      };
      try {
        const permission = await otp.requestPermission({
          action: args.action,
          ...(args.resource !== undefined ? { resource: args.resource } : {}),
          ...(args.scope !== undefined ? { scope: args.scope } : {}),
          ...(args.context !== undefined ? { context: args.context } : {}),
          ...(args.ttl !== undefined ? { ttl: args.ttl } : {}),
          waitForApproval: true,
          timeout: timeoutSeconds * 1000,
          signal: extra.signal,
          onPendingApproval: (info) => {
            pendingId = info.id;
            log('permission pending, waiting for a decision', { permissionId: info.id, timeoutSeconds });
            const message = `Waiting for a human to decide on ${info.id}${info.approvalUrl ? ` (${info.approvalUrl})` : ''}`;
            sendProgress(message);
            progressTimer = setInterval(() => sendProgress(message), progressInterval);
            progressTimer.unref();
          },
        });
        if (permission.status !== 'approved') {
          // Unreachable with waitForApproval (the SDK throws for every other outcome).
          return errorResult(`UNEXPECTED_STATUS: permission ${permission.id} is ${permission.status}`);
        }
        log('permission approved', { permissionId: permission.id });
        const result = {
          status: 'approved' as const,
          id: permission.id,
          token: permission.token,
          scope: permission.scope,
          expiresAt: permission.expiresAt,
        };
        return {
          content: [
            {
              type: 'text',
              text:
                `Approved: permission ${permission.id}, token ${permission.token} (secret: use it now, never log or repeat it). ` +
                `Granted scope ${JSON.stringify(permission.scope)}, valid until ${permission.expiresAt}. ` +
                'Check the granted scope covers what you will do, act within it, then call use_token with this id and token.',
            },
          ],
          structuredContent: result,
        };
      } catch (err) {
        if (err instanceof PermissionDeniedError) {
          const reason = err.reason ? redactSecrets(err.reason) : 'No reason given';
          log('permission denied', { permissionId: err.permissionId });
          return outcome(
            { status: 'denied', ...(err.permissionId ? { id: err.permissionId } : {}), reason },
            `Denied${err.permissionId ? ` (permission ${err.permissionId})` : ''}: ${reason}. Do not perform the action.`,
          );
        }
        if (err instanceof PermissionExpiredError) {
          log('permission expired before a decision', { permissionId: err.permissionId });
          return outcome(
            { status: 'expired', ...(err.permissionId ? { id: err.permissionId } : {}) },
            `Expired: the request${err.permissionId ? ` ${err.permissionId}` : ''} ended without a decision (it timed out or was withdrawn). Do not perform the action; request again only if it is still needed.`,
          );
        }
        if (err instanceof TimeoutError && err.code === 'TIMEOUT' && !extra.signal.aborted) {
          const id = err.permissionId ?? pendingId;
          log('no decision within the wait', { permissionId: id, timeoutSeconds });
          return outcome(
            { status: 'timeout', ...(id ? { id } : {}) },
            `Timeout: no decision within ${timeoutSeconds} s. The request${id ? ` ${id}` : ''} is still pending; do not perform the action now. ` +
              `Call get_permission${id ? ` with id "${id}"` : ''} later to see whether it was approved (the token arrives with the approval).`,
          );
        }
        if (extra.signal.aborted && pendingId) {
          // The client gave up on the call: nobody will learn of this request, so withdraw it
          // rather than leave an approver to grant a token no one will use.
          const id = pendingId;
          await otp.cancel(id).then(
            () => log('client cancelled the wait; pending request withdrawn', { permissionId: id }),
            () => log('client cancelled the wait; the request could not be withdrawn', { permissionId: id }),
          );
        }
        return failure(err, log, 'request_permission');
      } finally {
        if (progressTimer) clearInterval(progressTimer);
      }
    },
  );

  server.registerTool(
    'get_permission',
    {
      title: 'Read a permission',
      description: GET_DESCRIPTION,
      inputSchema: {
        id: z.string().min(1).max(200).describe('The permission id (perm_…) returned by request_permission.'),
      },
      outputSchema: permissionOutput,
      annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: true },
    },
    async ({ id }) => {
      try {
        const info = await otp.getPermission(id);
        const state = permissionState(info);
        log('permission read', { permissionId: info.id, status: info.status });
        const { token, ...shown } = state;
        const text =
          `Permission ${info.id} is ${info.status}: ${JSON.stringify(shown)}` +
          (token
            ? `. Token ${token} (secret: use it now with use_token, never log or repeat it).`
            : info.status === 'approved'
              ? '. This server does not hold its token (it was requested elsewhere).'
              : '.');
        return { content: [{ type: 'text', text }], structuredContent: state };
      } catch (err) {
        return failure(err, log, 'get_permission');
      }
    },
  );

  server.registerTool(
    'use_token',
    {
      title: 'Spend a permission token',
      description: USE_DESCRIPTION,
      inputSchema: {
        id: z.string().min(1).max(200).describe('The permission id (perm_…).'),
        token: z.string().min(1).max(200).describe('The token returned with the approval (otp_v1_…).'),
        action_details: z
          .record(z.string(), z.unknown())
          .optional()
          .describe(
            'What you actually did, checked against the granted scope: e.g. {"amount": 20} against max_amount, {"recipient": "bob@acme.com"} against allowed_recipients.',
          ),
      },
      outputSchema: useOutput,
      annotations: {
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: false,
        openWorldHint: true,
      },
    },
    async ({ id, token, action_details }) => {
      try {
        const used = await otp.useToken(id, token, {
          ...(action_details !== undefined ? { actionDetails: action_details } : {}),
        });
        log('token used', { permissionId: id, usesRemaining: used.usesRemaining });
        const result = {
          success: used.success,
          usesRemaining: used.usesRemaining,
          ...(used.status !== undefined ? { status: used.status } : {}),
        };
        return {
          content: [
            {
              type: 'text',
              text: `Used permission ${id}: ${used.usesRemaining} use(s) remaining.${used.usesRemaining <= 0 ? ' The token is now spent; forget it.' : ''}`,
            },
          ],
          structuredContent: result,
        };
      } catch (err) {
        return failure(err, log, 'use_token', id);
      }
    },
  );
}

/** A decided-but-not-approved outcome: a normal result, for the model to reason about. */
function outcome(result: Record<string, unknown>, text: string): CallToolResult {
  return { content: [{ type: 'text', text }], structuredContent: result };
}

function errorResult(text: string): CallToolResult {
  return { content: [{ type: 'text', text }], isError: true };
}

const NEXT_STEP: Record<string, string> = {
  SCOPE_VIOLATION:
    'Nothing was spent. Do not do what the details describe; stay within the granted scope or request a new permission.',
  TOKEN_USED: 'The token has no uses left: request a new permission if you need to act again.',
  TOKEN_EXPIRED: 'The token expired: request a new permission if you still need to act.',
  TOKEN_REVOKED: 'The permission was revoked: do not perform the action.',
  INVALID_TOKEN:
    'That token does not belong to this permission: pass the exact token returned with the approval.',
  NOT_FOUND: 'No such permission for this agent: check the id.',
  RATE_LIMITED: 'Too many requests: wait before asking again.',
  INVALID_API_KEY: 'The MCP server is configured with a wrong AGENT_OTP_API_KEY: ask the operator.',
  EXPIRED_API_KEY: 'The agent key was revoked or rotated: ask the operator for a new AGENT_OTP_API_KEY.',
  NETWORK_ERROR:
    'The Agent OTP server could not be reached: try again later, and do not act without a permission.',
};

/**
 * A failure as a tool error: `CODE: message`, the scope key for a violation, and what to do next.
 * The SDK's messages are already free of tokens and keys; they are scrubbed once more anyway.
 */
function failure(err: unknown, log: McpLog, tool: string, permissionId?: string): CallToolResult {
  if (!isAgentOTPError(err)) {
    log('tool failed', { tool, permissionId, error: err instanceof Error ? err.name : 'unknown' });
    return errorResult(`INTERNAL_ERROR: ${redactSecrets(err instanceof Error ? err.message : String(err))}`);
  }
  const e: AgentOTPError = err;
  log('tool failed', { tool, permissionId: e.permissionId ?? permissionId, code: e.code, status: e.status });
  let text = `${e.code}: ${redactSecrets(e.message)}`;
  if (e instanceof ScopeViolationError) {
    if (e.key) text += ` (scope key: ${e.key})`;
    const violations = e.violations.map((v) => `${v.key}: ${redactSecrets(v.message)}`);
    if (violations.length) text += `. Violations: ${violations.join('; ')}`;
  }
  if (e instanceof RateLimitError && e.retryAfter !== undefined) text += ` (retry after ${e.retryAfter} s)`;
  const next = NEXT_STEP[e.code] ?? (e instanceof TimeoutError ? NEXT_STEP.NETWORK_ERROR : undefined);
  if (next) text += `\n${next}`;
  return errorResult(text);
}

/** The permission's state as the model sees it, null/absent fields left out. */
function permissionState(info: PermissionInfo): Record<string, unknown> {
  const state: Record<string, unknown> = {
    id: info.id,
    status: info.status,
    scope: info.scope ?? {},
    expiresAt: info.expiresAt,
  };
  const copy = <K extends keyof PermissionInfo>(key: K, type: 'string' | 'number' | 'object') => {
    const value = info[key];
    if (value !== undefined && value !== null && typeof value === type) state[key] = value;
  };
  copy('action', 'string');
  copy('resource', 'string');
  copy('reason', 'string');
  copy('usesRemaining', 'number');
  copy('maxUses', 'number');
  copy('approvalUrl', 'string');
  copy('decidedBy', 'object');
  copy('decidedAt', 'string');
  copy('createdAt', 'string');
  if (info.status === 'approved' && typeof info.token === 'string') state.token = info.token;
  return state;
}
