/**
 * AgentOTPClient: what an agent calls before a sensitive action. The method names, paths and
 * envelope are those of the Agent OTP SDK 0.1; what differs is underneath: the client makes its
 * own token and sends only its hash, waits for humans by long-polling instead of polling on a
 * timer, retries only what is safe to repeat, and refuses to send its key over plain HTTP.
 */
import {
  AgentOTPError,
  AuthenticationError,
  errorForCode,
  PermissionDeniedError,
  PermissionExpiredError,
  redactSecrets,
  TimeoutError,
  TokenUsedError,
  ValidationError,
} from './errors.js';
import { anySignal, HttpTransport, sleep } from './http.js';
import { generateIdempotencyKey, generateToken, hashToken } from './token.js';
import type {
  AgentMetrics,
  AgentOTPClientConfig,
  ExecuteContext,
  ExecuteWithPermissionOptions,
  FetchLike,
  MetricsOptions,
  PendingApprovalInfo,
  PermissionInfo,
  PermissionResult,
  PermissionStatus,
  RequestPermissionOptions,
  RevokeOptions,
  Scope,
  TokenUsageResult,
  TokenVerificationResult,
  UseTokenInput,
  VerifyTokenInput,
  WaitOptions,
} from './types.js';
import { TokenVault } from './vault.js';

export const DEFAULT_BASE_URL = 'http://127.0.0.1:3000';
const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_RETRY_ATTEMPTS = 3;
const DEFAULT_RETRY_DELAY_MS = 1_000;
const DEFAULT_WAIT_TIMEOUT_MS = 300_000;
/** Seconds per long-poll: below the usual 60 s idle timeout of proxies and load balancers. */
const MAX_WAIT_SECONDS = 30;
/** Backoff bounds for a server that answers `pending` at once instead of holding the long-poll. */
const EARLY_ANSWER_DELAY_MIN_MS = 250;
const EARLY_ANSWER_DELAY_MAX_MS = 5_000;

const PATH = '/api/v1/permissions';

/** The JSON shape of a permission on the wire (nulls included). */
interface WirePermission {
  id: string;
  status: PermissionStatus;
  scope?: Scope;
  expiresAt: string;
  token?: string;
  reason?: string | null;
  approvalUrl?: string | null;
  eventsUrl?: string | null;
  [key: string]: unknown;
}

export class AgentOTPClient {
  readonly #http: HttpTransport;
  readonly #vault = new TokenVault();
  readonly #timeout: number;
  readonly baseUrl: string;

  constructor(config: AgentOTPClientConfig) {
    if (!config || typeof config.apiKey !== 'string' || config.apiKey.trim() === '') {
      throw new AuthenticationError('An API key is required (apiKey)', { code: 'MISSING_API_KEY' });
    }
    if (/\s/.test(config.apiKey)) {
      throw new ValidationError('The API key contains whitespace; check how it is read from the environment');
    }
    this.baseUrl = checkBaseUrl(config.baseUrl ?? DEFAULT_BASE_URL, config.allowInsecureHttp === true);
    const fetchFn = config.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (typeof fetchFn !== 'function') {
      throw new ValidationError('No fetch implementation: pass one as `fetch`');
    }
    this.#timeout = positive('timeout', config.timeout, DEFAULT_TIMEOUT_MS);
    this.#http = new HttpTransport({
      baseUrl: this.baseUrl,
      apiKey: config.apiKey,
      timeout: this.#timeout,
      retryAttempts: nonNegativeInt(
        'retryAttempts',
        config.retryAttempts ?? config.retries,
        DEFAULT_RETRY_ATTEMPTS,
      ),
      retryDelay: nonNegative('retryDelay', config.retryDelay, DEFAULT_RETRY_DELAY_MS),
      // Called unbound: some runtimes' fetch throws "Illegal invocation" when called as a method.
      fetch: (input, init) => fetchFn(input, init),
    });
  }

  /**
   * Asks for a permission. Approved → `{status: 'approved', token}` (the token this client
   * generated; the server only ever saw its hash). Denied → `{status: 'denied', reason}`, or
   * PermissionDeniedError when `waitForApproval` is set. Pending → returned as is, or with
   * `waitForApproval` the call waits for the decision (see RequestPermissionOptions).
   */
  async requestPermission<S extends Scope = Scope>(
    options: RequestPermissionOptions<S>,
  ): Promise<PermissionResult<S>> {
    if (!options || typeof options.action !== 'string' || options.action.trim() === '') {
      throw new ValidationError('action is required');
    }
    // A repeated caller key must commit to the same token as the first request it created.
    const callerKey = options.idempotencyKey;
    const token = (callerKey && this.#vault.tokenForKey(callerKey)) || generateToken();
    if (callerKey) this.#vault.rememberKey(callerKey, token);
    const body = {
      action: options.action,
      ...(options.resource !== undefined ? { resource: options.resource } : {}),
      scope: options.scope ?? {},
      context: options.context ?? {},
      ...(options.ttl !== undefined ? { ttl: options.ttl } : {}),
      tokenHash: await hashToken(token),
      // Always present, so the automatic retry of a lost answer cannot create a second permission.
      idempotencyKey: callerKey ?? generateIdempotencyKey(),
      ...(options.webhookUrl !== undefined ? { webhookUrl: options.webhookUrl } : {}),
    };
    const data = await this.#http.call<WirePermission>({
      method: 'POST',
      path: `${PATH}/request`,
      body,
      retry: true,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (data.status === 'pending' || data.status === 'approved')
      this.#vault.rememberPermission(data.id, token);

    if (data.status === 'pending' && options.waitForApproval) {
      options.onPendingApproval?.(pendingInfo(data));
      return (await this.wait(data.id, options)) as PermissionResult<S>;
    }
    if (options.waitForApproval && data.status !== 'pending') {
      return this.settle(data) as PermissionResult<S>;
    }
    return toResult(data, this.#vault.tokenFor(data.id)) as PermissionResult<S>;
  }

  /**
   * Waits for the decision on a pending permission (e.g. one requested without
   * `waitForApproval`): resolves when approved — with the token, if this client made the request —
   * and throws PermissionDeniedError, PermissionExpiredError or TimeoutError otherwise.
   */
  async waitForPermission(id: string, options: WaitOptions = {}): Promise<PermissionInfo> {
    checkId(id);
    return this.wait(id, options);
  }

  /** Reads a permission; carries the token when approved and this client generated it. */
  async getPermission(id: string): Promise<PermissionInfo> {
    checkId(id);
    const data = await this.#http.call<WirePermission>({
      method: 'GET',
      path: `${PATH}/${encodeURIComponent(id)}`,
      retry: true,
      permissionId: id,
    });
    return toResult(data, this.#vault.tokenFor(id));
  }

  /** The 0.1 SDK's name for `getPermission`. */
  getPermissionStatus(id: string): Promise<PermissionInfo> {
    return this.getPermission(id);
  }

  /**
   * Checks a token — and, with `actionDetails`, the action — against the granted scope without
   * consuming anything. Problems come back as `{valid: false, reason}`, not as errors: call it
   * before high-risk actions.
   */
  async verifyToken(
    id: string,
    token: string,
    input: VerifyTokenInput = {},
  ): Promise<TokenVerificationResult> {
    checkId(id);
    checkToken(token);
    const data = await this.#http.call<TokenVerificationResult>({
      method: 'POST',
      path: `${PATH}/${encodeURIComponent(id)}/verify`,
      body: { token, ...(input.actionDetails !== undefined ? { actionDetails: input.actionDetails } : {}) },
      retry: true, // consumes nothing, so safe to repeat
      permissionId: id,
    });
    return data;
  }

  /**
   * Spends one use of the token; `actionDetails` are checked against the scope first
   * (ScopeViolationError consumes nothing). Never retried: if the answer is lost, the use may
   * have happened — `getPermission` tells.
   */
  async useToken(id: string, token: string, input: UseTokenInput = {}): Promise<TokenUsageResult> {
    checkId(id);
    checkToken(token);
    const data = await this.#http.call<TokenUsageResult>({
      method: 'POST',
      path: `${PATH}/${encodeURIComponent(id)}/use`,
      body: { token, ...(input.actionDetails !== undefined ? { actionDetails: input.actionDetails } : {}) },
      retry: false,
      permissionId: id,
    });
    if (data.usesRemaining <= 0) this.#vault.forget(id);
    return data;
  }

  /**
   * Revokes a permission: its token stops working at once. The second argument may be the
   * token, as in the 0.1 documentation (the server does not need it), or `{reason}`.
   */
  async revokeToken(id: string, options: RevokeOptions | string = {}): Promise<PermissionInfo> {
    checkId(id);
    const reason = typeof options === 'string' ? undefined : options.reason;
    const data = await this.#http.call<WirePermission>({
      method: 'POST',
      path: `${PATH}/${encodeURIComponent(id)}/revoke`,
      body: reason !== undefined ? { reason } : {},
      retry: false,
      permissionId: id,
    });
    this.#vault.forget(id);
    return toResult(data, undefined);
  }

  /** Withdraws a request that is still pending (a waiting `requestPermission` then throws PermissionExpiredError). */
  async cancel(id: string): Promise<PermissionInfo> {
    checkId(id);
    const data = await this.#http.call<WirePermission>({
      method: 'POST',
      path: `${PATH}/${encodeURIComponent(id)}/cancel`,
      retry: false,
      permissionId: id,
    });
    this.#vault.forget(id);
    return toResult(data, undefined);
  }

  /**
   * Request (waiting for a human if needed) → verify (with `actionDetails`) → run `operation` →
   * use. If the operation throws, the token is not spent and the error is rethrown; the token
   * then simply expires. Resolves to what the operation returned.
   */
  async executeWithPermission<T, S extends Scope = Scope>(
    options: ExecuteWithPermissionOptions<S>,
    operation: (context: ExecuteContext<S>) => Promise<T> | T,
  ): Promise<T> {
    const { actionDetails, ...request } = options;
    const permission = await this.requestPermission<S>({ ...request, waitForApproval: true });
    if (permission.status !== 'approved') {
      // Unreachable with waitForApproval, kept so a server anomaly cannot run the operation.
      throw new PermissionDeniedError(`Permission ${permission.id} is ${permission.status}`, {
        permissionId: permission.id,
        ...(permission.reason ? { reason: permission.reason } : {}),
      });
    }
    const { id, token } = permission;
    const details = actionDetails !== undefined ? { actionDetails } : {};
    const check = await this.verifyToken(id, token, details);
    if (!check.valid) throw verificationError(id, check);
    const result = await operation({ id, token, scope: permission.scope });
    await this.useToken(id, token, details);
    return result;
  }

  /** Request, decision and token-use rates of this agent, e.g. to alert on a rising denial rate. */
  async getMetrics(options: MetricsOptions = {}): Promise<AgentMetrics> {
    return this.#http.call<AgentMetrics>({
      method: 'GET',
      path: '/api/v1/metrics',
      query: { period: options.period },
      retry: true,
    });
  }

  /**
   * Long-polls until the permission leaves `pending` or the timeout passes. The server holds each
   * `GET …?wait=N` until a decision (answering at once) or N seconds; a `pending` answer is
   * followed by the next poll immediately. A server that ignores `wait` (answers at once) is
   * polled with a growing pause instead, so it is not hammered.
   */
  private async wait(id: string, options: WaitOptions): Promise<PermissionInfo> {
    const timeout = positive('timeout', options.timeout, DEFAULT_WAIT_TIMEOUT_MS);
    const deadline = Date.now() + timeout;
    const expired = new AbortController();
    const timer = setTimeout(
      () =>
        expired.abort(
          new TimeoutError(
            `No decision on permission ${id} within ${timeout} ms; it may still be approved later`,
            {
              permissionId: id,
            },
          ),
        ),
      timeout,
    );
    const signal = options.signal ? anySignal([options.signal, expired.signal]) : expired.signal;
    try {
      let earlyAnswers = 0;
      for (;;) {
        const waitSeconds = Math.min(
          MAX_WAIT_SECONDS,
          Math.max(1, Math.ceil((deadline - Date.now()) / 1000)),
        );
        const started = Date.now();
        const data = await this.#http.call<WirePermission>({
          method: 'GET',
          path: `${PATH}/${encodeURIComponent(id)}`,
          query: { wait: waitSeconds },
          retry: true,
          timeout: waitSeconds * 1000 + this.#timeout,
          signal,
          permissionId: id,
        });
        if (data.status !== 'pending') return this.settle(data);
        if (Date.now() - started < (waitSeconds * 1000) / 2) {
          const pause = Math.min(EARLY_ANSWER_DELAY_MAX_MS, EARLY_ANSWER_DELAY_MIN_MS * 2 ** earlyAnswers);
          earlyAnswers += 1;
          await sleep(pause, signal);
        } else {
          earlyAnswers = 0;
        }
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** A decided permission seen while waiting: approved is returned, anything else thrown. */
  private settle(data: WirePermission): PermissionInfo {
    switch (data.status) {
      case 'approved':
        return toResult(data, this.#vault.tokenFor(data.id));
      case 'denied':
      case 'revoked':
        this.#vault.forget(data.id);
        throw new PermissionDeniedError(
          `Permission ${data.id} was ${data.status}${data.reason ? `: ${redactSecrets(data.reason)}` : ''}`,
          { permissionId: data.id, ...(data.reason ? { reason: data.reason } : {}) },
        );
      case 'expired':
      case 'cancelled':
        this.#vault.forget(data.id);
        throw new PermissionExpiredError(
          `Permission request ${data.id} was ${data.status} before a decision`,
          {
            permissionId: data.id,
            details: { status: data.status },
          },
        );
      case 'used':
        this.#vault.forget(data.id);
        throw new TokenUsedError(`Permission ${data.id} has already been used`, { permissionId: data.id });
      default:
        throw new AgentOTPError(`Permission ${data.id} is ${String(data.status)}`, {
          code: 'INVALID_RESPONSE',
          permissionId: data.id,
        });
    }
  }
}

function toResult(data: WirePermission, clientToken: string | undefined): PermissionResult {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    if (value !== null && value !== undefined) out[key] = value;
  }
  out.scope = data.scope ?? {};
  // The client's own token; a server that minted one for this read (no commitment was sent) wins.
  const token = data.token ?? clientToken;
  if (data.status === 'approved' && token) out.token = token;
  else delete out.token;
  return out as unknown as PermissionResult;
}

function pendingInfo(data: WirePermission): PendingApprovalInfo {
  return {
    id: data.id,
    permissionId: data.id,
    expiresAt: data.expiresAt,
    ...(typeof data.approvalUrl === 'string' ? { approvalUrl: data.approvalUrl } : {}),
    ...(typeof data.eventsUrl === 'string' ? { eventsUrl: data.eventsUrl } : {}),
  };
}

/** The error `executeWithPermission` throws when the pre-flight verify says no. */
function verificationError(id: string, check: TokenVerificationResult): AgentOTPError {
  const code = check.reason ?? 'INVALID_TOKEN';
  const message = `Token for permission ${id} failed verification: ${code}`;
  const init = { code, permissionId: id };
  return (
    errorForCode(code, message, init, { details: { violations: check.violations ?? [] } }) ??
    new AgentOTPError(message, init)
  );
}

/**
 * The key and every token travel in each request, so the transport must be encrypted — except
 * to this machine itself, where there is no network to read them on.
 */
function checkBaseUrl(raw: string, allowInsecureHttp: boolean): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ValidationError(`baseUrl is not a valid URL: ${redactSecrets(String(raw))}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ValidationError(`baseUrl must be an https:// URL (got ${url.protocol})`);
  }
  if (url.username || url.password) {
    throw new ValidationError('baseUrl must not contain credentials; pass the key as apiKey');
  }
  if (url.search || url.hash) throw new ValidationError('baseUrl must not contain a query or fragment');
  if (url.protocol === 'http:' && !allowInsecureHttp && !isLoopback(url.hostname)) {
    throw new ValidationError(
      `Refusing to send the API key over plain HTTP to ${url.host}: use https://, ` +
        'or set allowInsecureHttp for a network you trust',
    );
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

export function isLoopback(hostname: string): boolean {
  const host = hostname.toLowerCase();
  if (host === 'localhost' || host === '[::1]') return true;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return v4 !== null && Number(v4[1]) === 127 && v4.slice(2).every((o) => Number(o) <= 255);
}

function checkId(id: string): void {
  if (typeof id !== 'string' || id.length === 0) throw new ValidationError('A permission id is required');
}

function checkToken(token: string): void {
  if (typeof token !== 'string' || token.length === 0) throw new ValidationError('A token is required');
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0)
    throw new ValidationError(`${name} must be a positive number of ms`);
  return value;
}

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value < 0) throw new ValidationError(`${name} must be zero or more`);
  return value;
}

function nonNegativeInt(name: string, value: number | undefined, fallback: number): number {
  const n = nonNegative(name, value, fallback);
  if (!Number.isInteger(n)) throw new ValidationError(`${name} must be a whole number`);
  return n;
}
