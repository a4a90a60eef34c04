import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import { apiClient } from './api.js';
import type { ServerProcess } from './serverProcess.js';

/** Shared by the chat e2e suites (Slack, Discord): waiting, and the API calls every scenario makes. */

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `fn` returns something truthy. */
export async function waitUntil<T>(
  what: string,
  fn: () => T | Promise<T>,
  timeoutMs = 5000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/**
 * The approvalUrl once it links to the chat message: before the message is posted, a pending
 * answer links to the server's own page of the request (`/approve/<id>`).
 */
export function chatLink(url: string | undefined): string | undefined {
  return url && !/\/approve\/perm_/.test(url) ? url : undefined;
}

export interface Permission {
  id: string;
  status: string;
  scope: Record<string, unknown>;
  approvalUrl?: string;
  token?: string;
  decidedBy: Record<string, unknown> | null;
}

export interface AuditEvent {
  type: string;
  actor: Record<string, unknown>;
  details: Record<string, unknown>;
}

/**
 * A new agent, an operator, and the few calls every scenario needs. `policies` are put first when
 * given; `requestStatus`, when given, is the status every request must come back with.
 */
export async function chatApi(
  server: ServerProcess,
  adminToken: string,
  opts: { policies?: unknown; requestStatus?: string } = {},
) {
  const operator = apiClient(server.url, adminToken);
  const created = await operator<{ apiKey: string }>('POST', '/api/v1/agents', {
    name: `agent-${randomBytes(3).toString('hex')}`,
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const agent = apiClient(server.url, created.body.data.apiKey);
  if (opts.policies !== undefined) {
    const put = await operator('PUT', '/api/v1/policies', opts.policies);
    expect(put.status, JSON.stringify(put.body)).toBe(200);
  }
  return {
    operator,
    agent,
    async request(body: Record<string, unknown>) {
      const res = await agent<Permission>('POST', '/api/v1/permissions/request', body);
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      if (opts.requestStatus !== undefined) expect(res.body.data.status).toBe(opts.requestStatus);
      return res.body.data;
    },
    async get(id: string, wait?: number) {
      const res = await agent<Permission>('GET', `/api/v1/permissions/${id}${wait ? `?wait=${wait}` : ''}`);
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.data;
    },
    async use(id: string, token: string | undefined, actionDetails?: Record<string, unknown>) {
      return agent<{ success: boolean; status: string }>('POST', `/api/v1/permissions/${id}/use`, {
        token,
        ...(actionDetails ? { actionDetails } : {}),
      });
    },
    async audit(id: string, type: string) {
      const res = await operator<{ events: AuditEvent[] }>(
        'GET',
        `/api/v1/audit?permission_id=${id}&event_type=${type}`,
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body.data.events;
    },
  };
}

export type ChatApi = Awaited<ReturnType<typeof chatApi>>;
