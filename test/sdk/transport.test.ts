import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AgentOTPClient,
  type AgentOTPClientConfig,
  NetworkError,
  RateLimitError,
  ServerError,
  TimeoutError,
} from '../../src/sdk/index.js';
import { fail, hang, json, networkDown, ok, permission, type Reply, scriptedFetch } from './fakeFetch.js';

const API_KEY = 'ak_live_transportTestKey0123456789';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function client(replies: Reply[], config: Partial<AgentOTPClientConfig> = {}) {
  const { fetch, calls } = scriptedFetch(...replies);
  return { otp: new AgentOTPClient({ apiKey: API_KEY, fetch, ...config }), calls };
}

/**
 * Waits, on real macrotasks, until the fake fetch saw `n` calls: requestPermission hashes its
 * token with Web Crypto first, which completes on a real thread that fake timers do not drive.
 * The bound is real time (performance.now is not faked), not a count of turns: on a loaded CI
 * machine the thread pool can take longer than a thousand event-loop turns to answer.
 */
async function untilCalls(calls: unknown[], n: number): Promise<void> {
  const deadline = performance.now() + 10_000;
  while (calls.length < n && performance.now() < deadline) await new Promise((r) => setImmediate(r));
  expect(calls).toHaveLength(n);
}

/** Settles a promise's rejection handler now, so fake-timer advances do not report it unhandled. */
function settled<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  return promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
}

describe('retries with exponential backoff (fake timers)', () => {
  beforeEach(() => {
    // setImmediate stays real: untilCalls() uses it to let Web Crypto finish.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('retries a GET after 503s, waiting retryDelay × 2^n with jitter between attempts', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0); // jitter at its floor: half the exponential delay
    const { otp, calls } = client([fail(503, 'NOT_READY'), fail(503, 'NOT_READY'), ok(permission())]);
    const result = settled(otp.getPermission('perm_test1'));

    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(499);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2); // 1000 × 2^0 × 0.5
    await vi.advanceTimersByTimeAsync(999);
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(3); // 1000 × 2^1 × 0.5
    expect((await result).value).toMatchObject({ id: 'perm_test1', status: 'approved' });
  });

  it('uses the full delay at the top of the jitter and caps it at 30 s', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999999);
    const { otp, calls } = client([fail(500, 'INTERNAL_ERROR')], { retryDelay: 20_000, retryAttempts: 3 });
    const result = settled(otp.getPermission('perm_test1'));
    await vi.advanceTimersByTimeAsync(0);
    const times: number[] = [];
    let last = calls.length;
    for (let t = 0; t < 100_000 && calls.length < 4; t += 100) {
      await vi.advanceTimersByTimeAsync(100);
      if (calls.length !== last) {
        times.push(t + 100);
        last = calls.length;
      }
    }
    // Attempts at ≈20 s, then +30 s (40 s capped), then +30 s.
    expect(times).toEqual([20_000, 50_000, 80_000]);
    const { error } = await result;
    expect(error).toBeInstanceOf(ServerError);
    expect(error).toMatchObject({ status: 500, code: 'INTERNAL_ERROR', requestId: 'req-err' });
  });

  it('gives up after retryAttempts + 1 attempts', async () => {
    const { otp, calls } = client([fail(502, 'BAD_GATEWAY')], { retryAttempts: 2, retryDelay: 10 });
    const result = settled(otp.getPermission('perm_test1'));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toHaveLength(3);
    expect((await result).error).toBeInstanceOf(ServerError);
  });

  it('honours a 429 Retry-After longer than the backoff', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const { otp, calls } = client([fail(429, 'RATE_LIMITED', { 'retry-after': '7' }), ok(permission())]);
    const result = settled(otp.getPermission('perm_test1'));
    await vi.advanceTimersByTimeAsync(6_999);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(2);
    expect((await result).value).toMatchObject({ status: 'approved' });
  });

  it('does not sit out a Retry-After over a minute inside the call: RateLimitError with retryAfter', async () => {
    const { otp, calls } = client([fail(429, 'RATE_LIMITED', { 'retry-after': '120' })]);
    const { error } = await settled(otp.getPermission('perm_test1'));
    expect(calls).toHaveLength(1);
    expect(error).toBeInstanceOf(RateLimitError);
    expect((error as RateLimitError).retryAfter).toBe(120);
  });

  it('reads Retry-After given as an HTTP date', async () => {
    const at = new Date(Date.now() + 90_000).toUTCString();
    const { otp } = client([fail(429, 'RATE_LIMITED', { 'retry-after': at })]);
    const { error } = await settled(otp.getPermission('perm_test1'));
    expect((error as RateLimitError).retryAfter).toBeGreaterThanOrEqual(89);
  });

  it('retries requestPermission with the same idempotencyKey and tokenHash on every attempt', async () => {
    const { otp, calls } = client([
      fail(503, 'NOT_READY'),
      networkDown,
      ok(permission({ status: 'approved' }), 201),
    ]);
    const result = settled(otp.requestPermission({ action: 'payment.transfer', scope: { max_amount: 5 } }));
    await untilCalls(calls, 1);
    await vi.advanceTimersByTimeAsync(10_000);
    const { value } = await result;
    expect(calls).toHaveLength(3);
    const [first, ...rest] = calls.map((c) => c.body);
    expect(first?.idempotencyKey).toMatch(/^sdk_[A-Za-z0-9_-]{24}$/);
    for (const body of rest) {
      expect(body?.idempotencyKey).toBe(first?.idempotencyKey);
      expect(body?.tokenHash).toBe(first?.tokenHash);
    }
    expect(value?.status).toBe('approved');
    expect(first?.tokenHash).toBe(sha256(value?.token as string));
    expect(JSON.stringify(calls.map((c) => c.body))).not.toContain('otp_v1_');
  });

  it('keeps the caller’s idempotencyKey, and the same token when the key is used again', async () => {
    const { otp, calls } = client([ok(permission({ status: 'approved' }), 201)]);
    const first = await otp.requestPermission({ action: 'payment.transfer', idempotencyKey: 'order-42' });
    const again = await otp.requestPermission({ action: 'payment.transfer', idempotencyKey: 'order-42' });
    expect(calls.map((c) => c.body?.idempotencyKey)).toEqual(['order-42', 'order-42']);
    expect(calls[1]?.body?.tokenHash).toBe(calls[0]?.body?.tokenHash);
    expect(again.token).toBe(first.token);
  });

  it.each<[string, (otp: AgentOTPClient) => Promise<unknown>]>([
    ['useToken', (otp: AgentOTPClient) => otp.useToken('perm_test1', `otp_v1_${'a'.repeat(43)}`)],
    ['revokeToken', (otp: AgentOTPClient) => otp.revokeToken('perm_test1')],
    ['cancel', (otp: AgentOTPClient) => otp.cancel('perm_test1')],
  ])('never retries %s, after a 503 or a network error', async (_name, call) => {
    for (const reply of [fail(503, 'NOT_READY'), networkDown]) {
      const { otp, calls } = client([reply, ok({ success: true, usesRemaining: 0 })]);
      const result = settled(call(otp));
      await vi.advanceTimersByTimeAsync(60_000);
      expect(calls).toHaveLength(1);
      const { error } = await result;
      expect(error).toBeInstanceOf(reply === networkDown ? NetworkError : ServerError);
    }
  });

  it('says the outcome of a failed use is unknown', async () => {
    const { otp } = client([networkDown]);
    const { error } = await settled(otp.useToken('perm_test1', `otp_v1_${'a'.repeat(43)}`));
    expect((error as Error).message).toMatch(/may have acted/);
    expect(error).toMatchObject({ code: 'NETWORK_ERROR', permissionId: 'perm_test1' });
  });

  it('retries verifyToken, which consumes nothing', async () => {
    const { otp, calls } = client([
      fail(503, 'NOT_READY'),
      ok({ valid: true, scope: {}, usesRemaining: 1, expiresAt: '' }),
    ]);
    const result = settled(otp.verifyToken('perm_test1', `otp_v1_${'a'.repeat(43)}`));
    await vi.advanceTimersByTimeAsync(10_000);
    expect(calls).toHaveLength(2);
    expect((await result).value).toMatchObject({ valid: true });
  });
});

describe('network failures and timeouts (real timers)', () => {
  it('maps a refused connection to NetworkError after the retries, keeping the cause', async () => {
    const { otp, calls } = client([networkDown], { retryAttempts: 2, retryDelay: 1 });
    const error = await otp.getPermission('perm_x').catch((e: unknown) => e);
    expect(calls).toHaveLength(3);
    expect(error).toBeInstanceOf(NetworkError);
    expect(error).toMatchObject({ code: 'NETWORK_ERROR', permissionId: 'perm_x' });
    expect((error as Error).message).toContain('ECONNREFUSED');
  });

  it('aborts an attempt after `timeout` ms (AbortSignal.timeout) and reports TimeoutError', async () => {
    const { otp, calls } = client([hang], { timeout: 50, retryAttempts: 1, retryDelay: 1 });
    const started = Date.now();
    const error = await otp.getPermission('perm_x').catch((e: unknown) => e);
    expect(calls).toHaveLength(2);
    expect(calls[0]?.signal?.aborted).toBe(true);
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ code: 'REQUEST_TIMEOUT' });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('maps a proxy’s non-JSON 502 to ServerError', async () => {
    const proxy: Reply = () => new Response('<html>Bad Gateway</html>', { status: 502 });
    const { otp } = client([proxy], { retryAttempts: 0 });
    const error = await otp.getPermission('perm_x').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServerError);
    expect(error).toMatchObject({ status: 502 });
  });

  it('keeps keys and tokens out of error messages, even when the failure text contains them', async () => {
    const token = `otp_v1_${'Z'.repeat(43)}`;
    const leaky: Reply = () => {
      throw new TypeError(`failed with Bearer ${API_KEY} and ${token}`);
    };
    const { otp } = client([leaky], { retryAttempts: 0 });
    const error = await otp.useToken('perm_x', token).catch((e: unknown) => e);
    const { inspect } = await import('node:util');
    const seen = `${(error as Error).message} ${JSON.stringify(error)} ${String(error)} ${inspect(error)}`;
    expect(seen).not.toContain(API_KEY);
    expect(seen).not.toContain(token);
    expect(seen).toContain('[redacted]');
  });

  it('sends the key as a Bearer token, a JSON body on POST, and identifies the SDK', async () => {
    const { otp, calls } = client([ok({ success: true, usesRemaining: 0 })]);
    await otp.useToken('perm_x', `otp_v1_${'a'.repeat(43)}`, { actionDetails: { amount: 1 } });
    await otp.cancel('perm_x');
    const [use, cancel] = calls;
    expect(use?.headers.get('authorization')).toBe(`Bearer ${API_KEY}`);
    expect(use?.headers.get('user-agent')).toMatch(/^agent-otp-sdk\/\d+\.\d+\.\d+/);
    expect(use?.headers.get('x-agent-otp-sdk')).toMatch(/^typescript\/\d+\.\d+\.\d+/);
    expect(use?.headers.get('content-type')).toBe('application/json');
    expect(use?.url.pathname).toBe('/api/v1/permissions/perm_x/use');
    expect(use?.body).toEqual({ token: `otp_v1_${'a'.repeat(43)}`, actionDetails: { amount: 1 } });
    // A body-less POST still sends `{}`: the server refuses an empty body declared as JSON.
    expect(cancel?.body).toEqual({});
  });

  it('keeps the API key out of what inspecting the client shows', async () => {
    const { otp } = client([ok({})]);
    const { inspect } = await import('node:util');
    expect(inspect(otp, { depth: 5 })).not.toContain(API_KEY);
    expect(JSON.stringify(otp)).not.toContain(API_KEY);
  });
});

describe('waiting for a decision by long-poll', () => {
  beforeEach(() => {
    // setImmediate stays real: untilCalls() uses it to let Web Crypto finish.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A GET that holds the request for `?wait` seconds like the server, then answers pending. */
  const heldPending: Reply = (call) =>
    new Promise((resolve) => {
      setTimeout(
        () => resolve(json(200, { success: true, data: permission({ status: 'pending' }) })),
        Number(call.url.searchParams.get('wait')) * 1000,
      );
    });

  it('polls again at once after a held pending answer, with wait ≤ 30 s, until the decision', async () => {
    const onPending = vi.fn();
    const { otp, calls } = client([
      ok(permission({ status: 'pending' }), 202),
      heldPending,
      heldPending,
      ok(permission({ status: 'approved', reason: 'ok' })),
    ]);
    const result = settled(
      otp.requestPermission({ action: 'email.send', waitForApproval: true, onPendingApproval: onPending }),
    );
    await untilCalls(calls, 2);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(calls).toHaveLength(3); // no pause after an answer that was held for the full wait
    await vi.advanceTimersByTimeAsync(30_000);
    const { value } = await result;
    expect(calls).toHaveLength(4);
    for (const call of calls.slice(1)) {
      expect(call.method).toBe('GET');
      expect(call.url.pathname).toBe('/api/v1/permissions/perm_test1');
      const wait = Number(call.url.searchParams.get('wait'));
      expect(wait).toBeGreaterThan(0);
      expect(wait).toBeLessThanOrEqual(30);
    }
    expect(onPending).toHaveBeenCalledTimes(1);
    expect(onPending).toHaveBeenCalledWith(
      expect.objectContaining({ id: 'perm_test1', permissionId: 'perm_test1' }),
    );
    expect(value?.status).toBe('approved');
    expect(calls[0]?.body?.tokenHash).toBe(sha256(value?.token as string));
  });

  it('asks for no longer than the time left before the timeout', async () => {
    const { otp, calls } = client([ok(permission({ status: 'pending' }), 202), heldPending]);
    const result = settled(
      otp.requestPermission({ action: 'email.send', waitForApproval: true, timeout: 4_500 }),
    );
    await untilCalls(calls, 2);
    await vi.advanceTimersByTimeAsync(4_500);
    const { error } = await result;
    expect(Number(calls[1]?.url.searchParams.get('wait'))).toBe(5);
    expect(calls[1]?.signal?.aborted).toBe(true); // the held request is abandoned at the deadline
    expect(error).toBeInstanceOf(TimeoutError);
    expect(error).toMatchObject({ code: 'TIMEOUT', permissionId: 'perm_test1' });
  });

  it('backs off, instead of hammering, a server that answers pending without holding', async () => {
    const { otp, calls } = client([
      ok(permission({ status: 'pending' }), 202),
      ok(permission({ status: 'pending' })),
      ok(permission({ status: 'pending' })),
      ok(permission({ status: 'pending' })),
      ok(permission({ status: 'approved' })),
    ]);
    const result = settled(otp.requestPermission({ action: 'email.send', waitForApproval: true }));
    await untilCalls(calls, 2);
    await vi.advanceTimersByTimeAsync(249);
    expect(calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(500);
    expect(calls).toHaveLength(4);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(calls).toHaveLength(5);
    expect((await result).value?.status).toBe('approved');
  });

  it('stops waiting when the caller’s signal aborts, with its reason', async () => {
    const controller = new AbortController();
    const { otp, calls } = client([ok(permission({ status: 'pending' }), 202), heldPending]);
    const result = settled(
      otp.requestPermission({ action: 'email.send', waitForApproval: true, signal: controller.signal }),
    );
    await untilCalls(calls, 2);
    await vi.advanceTimersByTimeAsync(1_000);
    const reason = new Error('shutting down');
    controller.abort(reason);
    expect((await result).error).toBe(reason);
  });
});
