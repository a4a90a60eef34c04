import type { FetchLike } from '../../src/sdk/index.js';

/** One recorded call to the fake fetch: what the SDK sent. */
export interface RecordedCall {
  url: URL;
  method: string;
  headers: Headers;
  body: Record<string, unknown> | undefined;
  signal: AbortSignal | undefined;
}

export type Reply = (call: RecordedCall) => Response | Promise<Response>;

/**
 * A fetch that answers from a script, one reply per call (the last one repeats), for the
 * transport behaviour a real server cannot be made to show on cue: lost answers, 503s, 429s with
 * chosen Retry-After values, servers that never answer.
 */
export function scriptedFetch(...replies: Reply[]): { fetch: FetchLike; calls: RecordedCall[] } {
  const calls: RecordedCall[] = [];
  const fetch: FetchLike = async (input, init) => {
    const call: RecordedCall = {
      url: new URL(input),
      method: init.method ?? 'GET',
      headers: new Headers(init.headers),
      body: typeof init.body === 'string' ? (JSON.parse(init.body) as Record<string, unknown>) : undefined,
      signal: init.signal ?? undefined,
    };
    calls.push(call);
    const reply = replies[Math.min(calls.length - 1, replies.length - 1)];
    if (!reply) throw new Error('no reply scripted');
    return reply(call);
  };
  return { fetch, calls };
}

export const json = (status: number, body: unknown, headers: Record<string, string> = {}): Response =>
  new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'x-request-id': 'req-test', ...headers },
  });

export const ok =
  (data: unknown, status = 200): Reply =>
  () =>
    json(status, { success: true, data });

export const fail =
  (status: number, code: string, headers: Record<string, string> = {}, message = 'scripted failure'): Reply =>
  () =>
    json(status, { success: false, error: { code, message, requestId: 'req-err' } }, headers);

export const networkDown: Reply = () => {
  throw new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:9') });
};

/** Never answers; rejects like fetch does when the request's signal aborts. */
export const hang: Reply = (call) =>
  new Promise<Response>((_, reject) => {
    call.signal?.addEventListener('abort', () => reject(call.signal?.reason), { once: true });
  });

export function permission(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'perm_test1',
    agentId: 'agent_1',
    status: 'approved',
    action: 'payment.transfer',
    resource: null,
    scope: {},
    context: {},
    reason: null,
    policy: null,
    decidedBy: null,
    decidedAt: null,
    expiresAt: new Date(Date.now() + 300_000).toISOString(),
    createdAt: new Date().toISOString(),
    usesRemaining: 1,
    maxUses: 1,
    ...overrides,
  };
}
