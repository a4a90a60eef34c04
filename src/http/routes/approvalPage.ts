import type { FastifyInstance } from 'fastify';
import { isAppError } from '../../core/errors.js';
import type { PermissionService } from '../../services/permissions.js';

/**
 * GET /approve/:id — the page a pending answer's `approvalUrl` points to when no chat message was
 * posted. Read-only, no key needed (a browser has none): it shows only the request's status and
 * deadline and how an operator decides it (chat or the CLI); never the action, scope, context or
 * token. Deciding on this page (with passkeys) is a later feature.
 */
export function registerApprovalPage(app: FastifyInstance, permissions: PermissionService): void {
  app.get<{ Params: { id: string } }>('/approve/:id', async (request, reply) => {
    const id = request.params.id;
    reply.header('content-type', 'text/html; charset=utf-8');
    reply.header('cache-control', 'no-store');
    reply.header('x-robots-tag', 'noindex');
    try {
      const { permission } = await permissions.get({ operator: true }, id, {
        actor: { type: 'system' },
      });
      const pending = permission.status === 'pending';
      const body = pending
        ? `<p>Waiting for a decision until <time>${escapeHtml(permission.expiresAt.toISOString())}</time>.</p>
<p>Decide it in the chat message that asked for it, or with the CLI:</p>
<pre>agent-otp approve ${escapeHtml(permission.id)}
agent-otp deny ${escapeHtml(permission.id)}</pre>`
        : '<p>This request is no longer waiting for a decision.</p>';
      return reply.status(200).send(page(permission.id, permission.status, body));
    } catch (err) {
      if (isAppError(err) && err.code === 'NOT_FOUND') {
        return reply.status(404).send(page(id.slice(0, 64), 'not found', '<p>No such request.</p>'));
      }
      throw err;
    }
  });
}

function page(id: string, status: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Agent OTP request ${escapeHtml(id)}</title></head>
<body><h1>Permission request <code>${escapeHtml(id)}</code></h1>
<p>Status: <strong data-status="${escapeHtml(status)}">${escapeHtml(status)}</strong></p>
${body}
</body></html>
`;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
