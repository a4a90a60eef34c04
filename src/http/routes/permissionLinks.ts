import type { FastifyRequest } from 'fastify';
import { legacyPermissionView } from '../../core/legacyClient.js';
import type { Permission } from '../../core/permission.js';
import type { Principal } from '../../services/auth.js';

/**
 * Our SDKs name themselves in this header (`typescript/<version>`, `python/<version>`). A call
 * without it is from another client — the original SDK 0.1 or raw HTTP — and is answered in the
 * shape that client reads (see legacyPermissionView and pendingLinks).
 */
export const SDK_HEADER = 'x-agent-otp-sdk';

export function isOurSdk(request: FastifyRequest): boolean {
  const value = request.headers[SDK_HEADER];
  return typeof value === 'string' && value.trim().length > 0;
}

/**
 * The SDK 0.1 view applies to agent calls without our SDK header: that client only ever holds
 * an agent key, and operator tools (the CLI, dashboards) must see the real status.
 */
export function isLegacyAgentClient(request: FastifyRequest, principal: Principal | null): boolean {
  return principal?.kind === 'agent' && !isOurSdk(request);
}

/** Where this server is reached: PUBLIC_URL when set, else the request's own origin. */
export function baseUrlOf(request: FastifyRequest, publicUrl: string | undefined): string {
  if (publicUrl) return publicUrl.replace(/\/+$/, '');
  return `${request.protocol}://${request.host}`;
}

export interface PendingLinks {
  /**
   * Where a human decides: the approval page (`/approve/<id>`) when PUBLIC_URL is set and the web
   * channel serves it; otherwise the chat message when one was posted, else the page.
   */
  approvalUrl: string;
  /** The request's Server-Sent Events stream: real-time status updates. */
  eventsUrl: string;
  /**
   * The same stream under the name SDK 0.1 reads in a pending answer (it calls
   * onPendingApproval only when approvalUrl and webhookUrl are both there). Never sent to our
   * SDKs, whose `webhookUrl` is the request's own callback target.
   */
  webhookUrl?: string;
}

/**
 * The links of a pending answer; nothing once the request is no longer pending. `pageFirst`: the
 * approval page is every pending request's approvalUrl (the chat permalink stays on the chat card).
 */
export function pendingLinks(
  p: Permission,
  base: string,
  legacy: boolean,
  pageFirst = false,
): PendingLinks | null {
  if (p.status !== 'pending') return null;
  const id = encodeURIComponent(p.id);
  const eventsUrl = `${base}/api/v1/permissions/${id}/events`;
  const page = `${base}/approve/${id}`;
  return {
    approvalUrl: pageFirst ? page : (p.approvalUrl ?? page),
    eventsUrl,
    ...(legacy ? { webhookUrl: eventsUrl } : {}),
  };
}

/** What one caller is shown of a permission: SDK 0.1's statuses, and the pending links. */
export interface PermissionPresenter {
  view(p: Permission): Permission;
  links(p: Permission): PendingLinks | null;
}

export function presenterFor(
  request: FastifyRequest,
  principal: Principal | null,
  publicUrl: string | undefined,
  /** The web channel serves /approve/<id> with decisions (not only a status page). */
  approvalPage = false,
): PermissionPresenter {
  const legacy = isLegacyAgentClient(request, principal);
  const base = baseUrlOf(request, publicUrl);
  // Without PUBLIC_URL (a local try-out) the page's links would name whatever host was asked.
  const pageFirst = approvalPage && publicUrl !== undefined;
  return {
    view: (p) => (legacy ? legacyPermissionView(p) : p),
    links: (p) => pendingLinks(p, base, legacy, pageFirst),
  };
}
