/**
 * The transport: one authenticated JSON call over fetch, the `{success, data}` envelope
 * unpacked, errors typed, and retries with exponential backoff for the calls that are safe to
 * repeat. Which calls those are is the caller's decision (`retry`), made per method in client.ts:
 * a retried `use` could spend a token twice, so it is never retried.
 */
import {
  AgentOTPError,
  errorFromResponse,
  NetworkError,
  RateLimitError,
  redactSecrets,
  ServerError,
  TimeoutError,
} from './errors.js';
import type { FetchLike } from './types.js';
import { SDK_VERSION } from './version.js';

/** Backoff never waits longer than this between two attempts. */
export const MAX_RETRY_DELAY_MS = 30_000;
/** A Retry-After longer than this is not waited out inside a call: the RateLimitError is thrown. */
export const MAX_RETRY_AFTER_MS = 60_000;

export interface TransportConfig {
  baseUrl: string;
  apiKey: string;
  timeout: number;
  retryAttempts: number;
  retryDelay: number;
  fetch: FetchLike;
}

export interface CallOptions {
  method: 'GET' | 'POST';
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** Only for calls that are safe to repeat (GET, verify, requests carrying an idempotencyKey). */
  retry: boolean;
  /** This call's per-attempt timeout in ms, instead of the client's. */
  timeout?: number;
  /** Aborting it stops the call (and its retries) and rejects with its reason. */
  signal?: AbortSignal;
  /** Put on errors, so callers can log which permission failed. */
  permissionId?: string;
}

interface Envelope {
  success?: unknown;
  data?: unknown;
  error?: { code?: unknown; message?: unknown; details?: unknown; requestId?: unknown };
}

export class HttpTransport {
  readonly #config: TransportConfig;

  constructor(config: TransportConfig) {
    this.#config = config;
  }

  async call<T>(opts: CallOptions): Promise<T> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        return (await this.attempt(opts)) as T;
      } catch (err) {
        throwIfAborted(opts.signal);
        if (!opts.retry || attempt >= this.#config.retryAttempts || !isRetryable(err)) throw err;
        const delay = this.retryDelay(attempt, err);
        if (delay === null) throw err;
        await sleep(delay, opts.signal);
      }
    }
  }

  /**
   * `retryDelay × 2^attempt`, capped, with "equal jitter" (between half and all of it) so many
   * clients failing together do not retry in lockstep. A 429's Retry-After is honoured as a
   * floor; one longer than MAX_RETRY_AFTER_MS is returned to the caller instead (null).
   */
  private retryDelay(attempt: number, err: unknown): number | null {
    const exponential = Math.min(MAX_RETRY_DELAY_MS, this.#config.retryDelay * 2 ** attempt);
    const jittered = exponential / 2 + Math.random() * (exponential / 2);
    if (err instanceof RateLimitError && err.retryAfter !== undefined) {
      const floor = err.retryAfter * 1000;
      if (floor > MAX_RETRY_AFTER_MS) return null;
      return Math.max(floor, jittered);
    }
    return jittered;
  }

  private async attempt(opts: CallOptions): Promise<unknown> {
    throwIfAborted(opts.signal);
    const timeoutMs = opts.timeout ?? this.#config.timeout;
    const timeout = timeoutSignal(timeoutMs);
    const signal = opts.signal ? anySignal([opts.signal, timeout]) : timeout;
    const headers: Record<string, string> = {
      accept: 'application/json',
      authorization: `Bearer ${this.#config.apiKey}`,
      'user-agent': `agent-otp-sdk/${SDK_VERSION}`,
      'x-agent-otp-sdk': `typescript/${SDK_VERSION}`,
    };
    // Every POST carries a JSON body (at least `{}`): the server refuses an empty body declared as JSON.
    let body: string | undefined;
    if (opts.method === 'POST') {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.body ?? {});
    }
    const where = { ...(opts.permissionId ? { permissionId: opts.permissionId } : {}) };

    let response: Response;
    let text: string;
    // Raced against the signal as well as passed to fetch: a fetch that ignores its signal (some
    // polyfills and custom wrappers do) must not hold a call past its timeout.
    let onAbort = () => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
    aborted.catch(() => undefined); // observed through the races below; never an unhandled rejection
    try {
      response = await Promise.race([
        this.#config.fetch(this.url(opts), { method: opts.method, headers, body, signal }),
        aborted,
      ]);
      text = await Promise.race([response.text(), aborted]);
    } catch (err) {
      throwIfAborted(opts.signal);
      const unknownOutcome =
        opts.method === 'POST' && !opts.retry
          ? '; the server may have acted on it: check the permission before trying again'
          : '';
      if (timeout.aborted) {
        throw new TimeoutError(
          `${opts.method} ${opts.path} got no answer within ${timeoutMs} ms${unknownOutcome}`,
          { ...where, code: 'REQUEST_TIMEOUT' },
        );
      }
      // The failure is described (redacted) in the message and not attached as `cause`: a custom
      // fetch's error could carry the request, headers included, into whatever logs the error.
      throw new NetworkError(`${opts.method} ${opts.path} failed: ${describe(err)}${unknownOutcome}`, where);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }

    let envelope: Envelope | undefined;
    try {
      envelope = text ? (JSON.parse(text) as Envelope) : undefined;
    } catch {
      envelope = undefined;
    }
    const requestId = response.headers.get('x-request-id') ?? undefined;
    if (response.ok && envelope && envelope.success === true) return envelope.data;
    if (response.ok) {
      throw new AgentOTPError(`Unexpected answer to ${opts.method} ${opts.path} (HTTP ${response.status})`, {
        code: 'INVALID_RESPONSE',
        status: response.status,
        ...where,
        ...(requestId ? { requestId } : {}),
      });
    }
    const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
    throw errorFromResponse(response.status, envelope, {
      ...where,
      ...(requestId ? { requestId } : {}),
      ...(retryAfter !== undefined ? { retryAfter } : {}),
    });
  }

  private url(opts: CallOptions): string {
    let url = this.#config.baseUrl + opts.path;
    const params = Object.entries(opts.query ?? {}).filter(
      (e): e is [string, string | number] => e[1] !== undefined,
    );
    if (params.length) {
      url += `?${params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&')}`;
    }
    return url;
  }
}

function isRetryable(err: unknown): boolean {
  return (
    err instanceof NetworkError ||
    (err instanceof TimeoutError && err.code === 'REQUEST_TIMEOUT') ||
    err instanceof RateLimitError ||
    err instanceof ServerError
  );
}

/** Seconds from a Retry-After header: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return 'network error';
  // Node's fetch says "fetch failed" and puts the reason (ECONNREFUSED, ENOTFOUND…) in `cause`.
  const cause = (err as { cause?: unknown }).cause;
  const detail = cause instanceof Error ? `${err.message} (${cause.message})` : err.message;
  return redactSecrets(detail);
}

/** Throws the abort reason of a caller's signal (a TimeoutError from a wait, a user's reason…). */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  const reason: unknown = signal.reason;
  if (reason instanceof Error) throw reason;
  throw new AgentOTPError('The operation was aborted', { code: 'ABORTED', cause: reason });
}

/** `AbortSignal.timeout`, or its equivalent where a runtime lacks it. */
function timeoutSignal(ms: number): AbortSignal {
  if (typeof AbortSignal.timeout === 'function') return AbortSignal.timeout(ms);
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error(`timed out after ${ms} ms`)), ms);
  return controller.signal;
}

/** `AbortSignal.any`, which not every runtime has yet. */
export function anySignal(signals: AbortSignal[]): AbortSignal {
  const any = (AbortSignal as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (typeof any === 'function') return any.call(AbortSignal, signals);
  const controller = new AbortController();
  for (const s of signals) {
    if (s.aborted) {
      controller.abort(s.reason);
      return controller.signal;
    }
  }
  const onAbort = (event: Event) => {
    controller.abort((event.target as AbortSignal).reason);
    for (const s of signals) s.removeEventListener('abort', onAbort);
  };
  for (const s of signals) s.addEventListener('abort', onAbort);
  return controller.signal;
}

/** A delay that ends early, rejecting with the signal's reason, when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      try {
        throwIfAborted(signal);
      } catch (err) {
        reject(err);
      }
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      try {
        throwIfAborted(signal);
      } catch (err) {
        reject(err);
      }
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
