import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  AgentOTPClient,
  type AgentOTPClientConfig,
  AgentOTPError,
  AuthenticationError,
  ConflictError,
  ForbiddenError,
  generateToken,
  InvalidTokenError,
  isAgentOTPError,
  NetworkError,
  NotFoundError,
  PermissionDeniedError,
  PermissionExpiredError,
  RateLimitError,
  ScopeViolationError,
  ServerError,
  TimeoutError,
  TOKEN_PATTERN,
  TokenExpiredError,
  TokenRevokedError,
  TokenUsedError,
  ValidationError,
} from '../../src/sdk/index.js';
import { type Api, apiClient } from '../helpers/api.js';
import { ROOT, type ServerProcess, startServer } from '../helpers/serverProcess.js';
import { freePort } from '../setup/redis.js';

const DB_URL = process.env.TEST_DATABASE_URL;
const ADMIN = `uk_${randomBytes(24).toString('hex')}`;

const POLICIES = {
  policies: [
    {
      name: 'no-deletes',
      priority: 20,
      conditions: { action: 'db.delete' },
      action: 'deny',
      reason: 'Deletes are never allowed',
    },
    {
      name: 'payments-auto',
      priority: 10,
      conditions: { action: { equals: 'payment.*' } },
      action: 'auto_approve',
    },
    {
      name: 'files-auto',
      priority: 10,
      conditions: { action: { equals: 'file.*' } },
      action: 'auto_approve',
    },
    { name: 'email-needs-human', priority: 5, conditions: { action: 'email.*' }, action: 'require_approval' },
  ],
};

const SERVER_ENV = {
  ADMIN_TOKEN: ADMIN,
  RATE_LIMIT_PER_MIN: '100000',
  RATE_LIMIT_PER_HOUR: '1000000',
  TOKEN_RATE_LIMIT_PER_MIN: '100000',
  TOKEN_RATE_LIMIT_PER_HOUR: '1000000',
  AUTH_FAILURES_PER_MIN: '1000',
};

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<AgentOTPError> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.value)}`);
  expect(outcome.error).toBeInstanceOf(AgentOTPError);
  return outcome.error as AgentOTPError;
}

async function setUp(server: ServerProcess): Promise<{ operator: Api; agentKey: string }> {
  const operator = apiClient(server.url, ADMIN);
  const put = await operator('PUT', '/api/v1/policies', POLICIES);
  expect(put.status, JSON.stringify(put.body)).toBe(200);
  const created = await operator<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'sdk-agent' });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return { operator, agentKey: created.body.data.apiKey };
}

/**
 * The SDK against the built server as a process: every outcome an agent meets — auto-approval,
 * denial, a human decision arriving during a long-poll, timeouts, cancellation — and every
 * error class, each produced by a real server answer rather than a scripted one.
 */
describe('the SDK against the built server', () => {
  let server: ServerProcess;
  let operator: Api;
  let agentKey: string;
  let otp: AgentOTPClient;
  const tokensSeen: string[] = [];
  const client = (config: Partial<AgentOTPClientConfig> = {}) =>
    new AgentOTPClient({ apiKey: agentKey, baseUrl: server.url, retryDelay: 50, ...config });
  const decide = (id: string, body: Record<string, unknown>) =>
    operator('POST', `/api/v1/permissions/${id}/decide`, body).then((res) => {
      expect(res.status, JSON.stringify(res.body)).toBe(200);
    });

  beforeAll(async () => {
    server = await startServer({ env: SERVER_ENV });
    ({ operator, agentKey } = await setUp(server));
    otp = client();
  });

  afterAll(async () => {
    await server?.stop();
  });

  async function approvedPayment(scope: Record<string, unknown> = {}) {
    const permission = await otp.requestPermission({ action: 'payment.transfer', scope });
    if (permission.status !== 'approved') throw new Error(`expected approved, got ${permission.status}`);
    tokensSeen.push(permission.token);
    return permission;
  }

  it('auto-approved request → verify → use, with the client’s own token', async () => {
    const permission = await otp.requestPermission({
      action: 'payment.transfer',
      resource: 'account:acme',
      scope: { max_amount: 100 },
      context: { reason: 'Monthly subscription payment', triggered_by: 'user_request' },
    });
    expect(permission.status).toBe('approved');
    if (permission.status !== 'approved') return;
    tokensSeen.push(permission.token);
    expect(permission.token).toMatch(TOKEN_PATTERN);
    expect(permission.scope).toEqual({ max_amount: 100 });
    expect(permission.usesRemaining).toBe(1);
    expect(Date.parse(permission.expiresAt)).toBeGreaterThan(Date.now());

    const check = await otp.verifyToken(permission.id, permission.token, { actionDetails: { amount: 60 } });
    expect(check).toMatchObject({ valid: true, usesRemaining: 1, scope: { max_amount: 100 } });
    const tooMuch = await otp.verifyToken(permission.id, permission.token, {
      actionDetails: { amount: 600 },
    });
    expect(tooMuch).toMatchObject({ valid: false, reason: 'SCOPE_VIOLATION' });
    expect(tooMuch.violations?.[0]?.key).toBe('max_amount');

    expect(
      await otp.useToken(permission.id, permission.token, { actionDetails: { amount: 60 } }),
    ).toMatchObject({
      success: true,
      usesRemaining: 0,
    });
    expect(await otp.getPermission(permission.id)).toMatchObject({ status: 'used', usesRemaining: 0 });
  });

  it('identifies itself to the server: the audit trail records the SDK as user agent', async () => {
    const { id } = await approvedPayment();
    const audit = await operator<{ events: { type: string; userAgent: string | null }[] }>(
      'GET',
      `/api/v1/audit?permission_id=${id}&event_type=request`,
    );
    expect(audit.body.data.events[0]?.userAgent).toMatch(/^agent-otp-sdk\//);
  });

  it('returns the same permission and token when the caller repeats an idempotencyKey', async () => {
    const key = `order-${randomBytes(4).toString('hex')}`;
    const first = await otp.requestPermission({ action: 'payment.refund', idempotencyKey: key });
    const again = await otp.requestPermission({ action: 'payment.refund', idempotencyKey: key });
    expect(again.id).toBe(first.id);
    expect(again.token).toBe(first.token);
    if (first.status !== 'approved') throw new Error('expected approved');
    tokensSeen.push(first.token);
    await otp.useToken(first.id, first.token);
    expect((await rejection(otp.useToken(again.id, first.token))).code).toBe('TOKEN_USED');
  });

  describe('executeWithPermission', () => {
    it('requests, verifies, runs the operation with {id, token, scope}, then spends the token', async () => {
      let seen: { id: string; token: string; scope: Record<string, unknown> } | undefined;
      const result = await otp.executeWithPermission(
        { action: 'payment.transfer', scope: { max_amount: 50 }, actionDetails: { amount: 20 } },
        async (ctx) => {
          seen = ctx;
          tokensSeen.push(ctx.token);
          return 'sent';
        },
      );
      expect(result).toBe('sent');
      expect(seen?.token).toMatch(TOKEN_PATTERN);
      expect(seen?.scope).toEqual({ max_amount: 50 });
      expect(await otp.getPermission(seen?.id as string)).toMatchObject({ status: 'used' });
    });

    it('does not spend the token when the operation throws, and rethrows its error', async () => {
      let id = '';
      const boom = new Error('smtp down');
      const err = await otp
        .executeWithPermission({ action: 'payment.transfer' }, (ctx) => {
          id = ctx.id;
          tokensSeen.push(ctx.token);
          throw boom;
        })
        .catch((e: unknown) => e);
      expect(err).toBe(boom);
      expect(await otp.getPermission(id)).toMatchObject({ status: 'approved', usesRemaining: 1 });
    });

    it('does not run the operation when the actionDetails break the granted scope', async () => {
      let ran = false;
      const err = await rejection(
        otp.executeWithPermission(
          { action: 'payment.transfer', scope: { max_amount: 50 }, actionDetails: { amount: 500 } },
          () => {
            ran = true;
          },
        ),
      );
      expect(err).toBeInstanceOf(ScopeViolationError);
      expect((err as ScopeViolationError).key).toBe('max_amount');
      expect(ran).toBe(false);
    });

    it('waits for a human and throws PermissionDeniedError when denied', async () => {
      const err = await rejection(
        otp.executeWithPermission(
          {
            action: 'email.send',
            onPendingApproval: ({ id }) => void decide(id, { approved: false, reason: 'not today' }),
          },
          () => 'never',
        ),
      );
      expect(err).toBeInstanceOf(PermissionDeniedError);
      expect((err as PermissionDeniedError).reason).toBe('not today');
    });
  });

  describe('denials', () => {
    it('returns {status: denied, reason} without waitForApproval', async () => {
      const permission = await otp.requestPermission({ action: 'db.delete', resource: 'table:users' });
      expect(permission).toMatchObject({ status: 'denied', reason: 'Deletes are never allowed' });
      expect(permission.token).toBeUndefined();
    });

    it('throws PermissionDeniedError with the reason and permissionId with waitForApproval', async () => {
      const err = await rejection(otp.requestPermission({ action: 'db.delete', waitForApproval: true }));
      expect(err).toBeInstanceOf(PermissionDeniedError);
      expect(err).toMatchObject({ code: 'PERMISSION_DENIED', reason: 'Deletes are never allowed' });
      expect(err.permissionId).toMatch(/^perm_/);
    });
  });

  describe('waiting for a human (long-poll)', () => {
    it('resolves approved with the client’s token when an operator approves during the wait', async () => {
      const pendingInfo: { id: string; expiresAt: string }[] = [];
      const permission = await otp.requestPermission({
        action: 'email.send',
        scope: { max_emails: 5, allowed_recipients: ['*@acme.com'] },
        waitForApproval: true,
        timeout: 20_000,
        onPendingApproval: (info) => {
          pendingInfo.push(info);
          setTimeout(
            () => void decide(info.id, { approved: true, scopeModifications: { max_emails: 1 } }),
            300,
          );
        },
      });
      expect(pendingInfo).toHaveLength(1);
      expect(permission.status).toBe('approved');
      if (permission.status !== 'approved') return;
      tokensSeen.push(permission.token);
      expect(permission.id).toBe(pendingInfo[0]?.id);
      expect(permission.token).toMatch(TOKEN_PATTERN);
      expect(permission.scope).toMatchObject({ max_emails: 1 }); // narrowed by the approver
      await expect(
        otp.useToken(permission.id, permission.token, { actionDetails: { recipient: 'bob@acme.com' } }),
      ).resolves.toMatchObject({ success: true, usesRemaining: 0 });
    });

    it('throws PermissionDeniedError when the human denies during the wait', async () => {
      const err = await rejection(
        otp.requestPermission({
          action: 'email.send',
          waitForApproval: true,
          onPendingApproval: ({ id }) => {
            setTimeout(() => void decide(id, { approved: false, reason: 'wrong recipient' }), 200);
          },
        }),
      );
      expect(err).toBeInstanceOf(PermissionDeniedError);
      expect(err).toMatchObject({ reason: 'wrong recipient' });
    });

    it('throws TimeoutError with the permissionId after `timeout`; the token arrives with a later approval', async () => {
      const started = Date.now();
      const err = await rejection(
        otp.requestPermission({ action: 'email.send', waitForApproval: true, timeout: 1500 }),
      );
      const elapsed = Date.now() - started;
      expect(err).toBeInstanceOf(TimeoutError);
      expect(err.code).toBe('TIMEOUT');
      expect(elapsed).toBeGreaterThanOrEqual(1400);
      expect(elapsed).toBeLessThan(10_000);
      const id = err.permissionId as string;
      expect(await otp.getPermission(id)).toMatchObject({ status: 'pending' });
      expect((await otp.getPermission(id)).token).toBeUndefined();

      // Still pending on the server: approved later, the same client gets the token it committed to.
      setTimeout(() => void decide(id, { approved: true }), 200);
      const approved = await otp.waitForPermission(id, { timeout: 20_000 });
      expect(approved.status).toBe('approved');
      expect(approved.token).toMatch(TOKEN_PATTERN);
      tokensSeen.push(approved.token as string);
      await expect(otp.useToken(id, approved.token as string)).resolves.toMatchObject({ success: true });
    });

    it('throws PermissionExpiredError when the request is cancelled while another call waits', async () => {
      const err = await rejection(
        otp.requestPermission({
          action: 'email.send',
          waitForApproval: true,
          onPendingApproval: ({ id }) => {
            setTimeout(() => void otp.cancel(id), 300);
          },
        }),
      );
      expect(err).toBeInstanceOf(PermissionExpiredError);
      expect(err).toMatchObject({ code: 'PERMISSION_EXPIRED', details: { status: 'cancelled' } });
      expect(await otp.getPermission(err.permissionId as string)).toMatchObject({ status: 'cancelled' });
    });
  });

  describe('every error class from a real server answer', () => {
    it('AuthenticationError for an unknown key (401 INVALID_API_KEY) and a revoked agent (EXPIRED_API_KEY)', async () => {
      const bad = client({ apiKey: `ak_live_${randomBytes(24).toString('base64url')}` });
      const err = await rejection(bad.requestPermission({ action: 'payment.transfer' }));
      expect(err).toBeInstanceOf(AuthenticationError);
      expect(err).toMatchObject({ code: 'INVALID_API_KEY', status: 401 });
      expect(err.requestId).toBeTruthy();

      const created = await operator<{ id: string; apiKey: string }>('POST', '/api/v1/agents', {
        name: 'doomed',
      });
      await operator('POST', `/api/v1/agents/${created.body.data.id}/revoke`, {});
      const revoked = await rejection(client({ apiKey: created.body.data.apiKey }).getPermission('perm_x'));
      expect(revoked).toBeInstanceOf(AuthenticationError);
      expect(revoked.code).toBe('EXPIRED_API_KEY');
    });

    it('ValidationError for a ttl out of bounds (400 VALIDATION_ERROR)', async () => {
      const err = await rejection(otp.requestPermission({ action: 'payment.transfer', ttl: 5 }));
      expect(err).toBeInstanceOf(ValidationError);
      expect(err).toMatchObject({ code: 'VALIDATION_ERROR', status: 400 });
      expect(err.message).toContain('ttl');
    });

    it('RateLimitError with retryAfter for an agent limited to 1 request a minute', async () => {
      const limited = await operator<{ id: string; apiKey: string }>('POST', '/api/v1/agents', {
        name: 'limited',
      });
      const patch = await operator('PATCH', `/api/v1/agents/${limited.body.data.id}`, { rateLimitPerMin: 1 });
      expect(patch.status).toBe(200);
      const slow = client({ apiKey: limited.body.data.apiKey, retryAttempts: 0 });
      await slow.requestPermission({ action: 'payment.transfer' });
      const err = await rejection(slow.requestPermission({ action: 'payment.transfer' }));
      expect(err).toBeInstanceOf(RateLimitError);
      expect(err).toMatchObject({ code: 'RATE_LIMITED', status: 429 });
      expect((err as RateLimitError).retryAfter).toBeGreaterThan(0);
      expect((err as RateLimitError).retryAfter).toBeLessThanOrEqual(60);
    });

    it('ScopeViolationError (403) naming the key, consuming nothing', async () => {
      const { id, token } = await approvedPayment({ max_amount: 100 });
      const err = await rejection(otp.useToken(id, token, { actionDetails: { amount: 150 } }));
      expect(err).toBeInstanceOf(ScopeViolationError);
      expect(err).toMatchObject({
        code: 'SCOPE_VIOLATION',
        status: 403,
        key: 'max_amount',
        permissionId: id,
      });
      expect((err as ScopeViolationError).violations[0]).toMatchObject({ key: 'max_amount', limit: 100 });
      await expect(otp.useToken(id, token, { actionDetails: { amount: 99 } })).resolves.toMatchObject({
        success: true,
      });
    });

    it('TokenUsedError (410 TOKEN_USED) for a second use', async () => {
      const { id, token } = await approvedPayment();
      await otp.useToken(id, token);
      const err = await rejection(otp.useToken(id, token));
      expect(err).toBeInstanceOf(TokenUsedError);
      expect(err).toMatchObject({ code: 'TOKEN_USED', status: 410 });
    });

    it('TokenRevokedError (410 TOKEN_REVOKED) after revokeToken', async () => {
      const { id, token } = await approvedPayment();
      expect(await otp.revokeToken(id, { reason: 'task abandoned' })).toMatchObject({ status: 'revoked' });
      const err = await rejection(otp.useToken(id, token));
      expect(err).toBeInstanceOf(TokenRevokedError);
      expect(err).toMatchObject({ code: 'TOKEN_REVOKED', status: 410 });
      // The 0.1 documentation's form, revokeToken(id, token), is accepted too.
      const other = await approvedPayment();
      await expect(otp.revokeToken(other.id, other.token)).resolves.toMatchObject({ status: 'revoked' });
    });

    it('InvalidTokenError (403 INVALID_TOKEN, not 401) for a token that is not this permission’s', async () => {
      const { id } = await approvedPayment();
      const err = await rejection(otp.useToken(id, generateToken()));
      expect(err).toBeInstanceOf(InvalidTokenError);
      expect(err).not.toBeInstanceOf(AuthenticationError);
      expect(err).toMatchObject({ code: 'INVALID_TOKEN', status: 403 });
    });

    it('ForbiddenError (403) for an operator key used as an agent key', async () => {
      const err = await rejection(
        client({ apiKey: ADMIN }).requestPermission({ action: 'payment.transfer' }),
      );
      expect(err).toBeInstanceOf(ForbiddenError);
      expect(err).toMatchObject({ code: 'FORBIDDEN', status: 403 });
      expect(err.message).not.toContain(ADMIN);
    });

    it('NotFoundError (404) for another agent’s permission; ConflictError (409) cancelling a decided one', async () => {
      const { id } = await approvedPayment();
      const other = await operator<{ apiKey: string }>('POST', '/api/v1/agents', { name: 'nosy' });
      const err = await rejection(client({ apiKey: other.body.data.apiKey }).getPermission(id));
      expect(err).toBeInstanceOf(NotFoundError);
      expect(err).toMatchObject({ code: 'NOT_FOUND', status: 404, permissionId: id });
      const conflict = await rejection(otp.cancel(id));
      expect(conflict).toBeInstanceOf(ConflictError);
      expect(conflict).toMatchObject({ code: 'ALREADY_DECIDED', status: 409 });
    });

    it('NetworkError for a port nothing listens on', async () => {
      const port = await freePort();
      const down = client({ baseUrl: `http://127.0.0.1:${port}`, retryAttempts: 1, retryDelay: 10 });
      const err = await rejection(down.requestPermission({ action: 'payment.transfer' }));
      expect(err).toBeInstanceOf(NetworkError);
      expect(err.code).toBe('NETWORK_ERROR');
    });

    it('getMetrics: the period’s rates, or NOT_FOUND while the server has no metrics endpoint', async () => {
      try {
        const metrics = await otp.getMetrics({ period: '1h' });
        expect(typeof metrics.denialRate).toBe('number');
        expect(typeof metrics.unusedTokenRate).toBe('number');
      } catch (err) {
        expect(err).toBeInstanceOf(NotFoundError);
        expect(err).toMatchObject({ code: 'NOT_FOUND', status: 404 });
      }
    });
  });

  describe('the security guide’s examples', () => {
    it('scope validation: the granted scope is typed from the request and checked', async () => {
      const requiredSize = 1024;
      const permission = await otp.requestPermission({ action: 'file.write', scope: { max_size: 10485760 } });
      if (permission.scope.max_size < requiredSize) throw new Error('Insufficient scope granted');
      if (permission.status === 'approved') {
        tokensSeen.push(permission.token);
        await otp.useToken(permission.id, permission.token, { actionDetails: { size: requiredSize } });
      }
      expect(await otp.getPermission(permission.id)).toMatchObject({ status: 'used' });
    });

    it('secure error handling: code and permissionId are there to log, no token or key in them', async () => {
      const { id, token } = await approvedPayment();
      await otp.useToken(id, token);
      const logged: Record<string, unknown>[] = [];
      try {
        await otp.useToken(id, token);
      } catch (error) {
        if (!isAgentOTPError(error)) throw error;
        logged.push({ code: error.code, permissionId: error.permissionId, requestId: error.requestId });
        logged.push(JSON.parse(JSON.stringify(error)) as Record<string, unknown>);
      }
      expect(logged[0]).toMatchObject({ code: 'TOKEN_USED', permissionId: id });
      const text = JSON.stringify(logged);
      expect(text).not.toContain(token);
      expect(text).not.toContain(agentKey);
    });
  });

  it('exports the client from the built package entry (agent-otp/sdk → dist/sdk/index.js)', async () => {
    const built = (await import(pathToFileURL(path.join(ROOT, 'dist/sdk/index.js')).href)) as Record<
      string,
      unknown
    >;
    expect(typeof built.AgentOTPClient).toBe('function');
    expect(typeof built.verifyWebhook).toBe('function');
    expect(typeof built.PermissionDeniedError).toBe('function');
  });

  it('never let the server see a token: none in its logs', async () => {
    expect(tokensSeen.length).toBeGreaterThan(10);
    const logs = await server.logsSoFar();
    for (const token of tokensSeen) expect(logs).not.toContain(token);
    expect(logs).not.toMatch(/otp_v1_[A-Za-z0-9_-]{20,}/);
  });
});

/**
 * Answers only Postgres can be made to give on cue: the test reaches into the server's schema to
 * age a token past its TTL (the minimum TTL is 30 s; a real wait would be a 31 s test) and to
 * break a table so that requests fail with a real 500.
 */
describe.runIf(DB_URL)('the SDK against the built server on Postgres', () => {
  let server: ServerProcess;
  let agentKey: string;
  let db: pg.Client;

  beforeAll(async () => {
    server = await startServer({ database: 'postgres', env: SERVER_ENV });
    ({ agentKey } = await setUp(server));
    db = new pg.Client({ connectionString: DB_URL });
    await db.connect();
    await db.query(`SET search_path TO ${server.schema}`);
  });

  afterAll(async () => {
    await db?.end();
    await server?.stop();
  });

  it('TokenExpiredError (410 TOKEN_EXPIRED) for a token past its TTL', async () => {
    const otp = new AgentOTPClient({ apiKey: agentKey, baseUrl: server.url });
    const permission = await otp.requestPermission({ action: 'payment.transfer', ttl: 30 });
    if (permission.status !== 'approved') throw new Error('expected approved');
    await db.query(`UPDATE permissions SET expires_at = now() - interval '1 second' WHERE id = $1`, [
      permission.id,
    ]);
    const err = await rejection(otp.useToken(permission.id, permission.token));
    expect(err).toBeInstanceOf(TokenExpiredError);
    expect(err).toMatchObject({ code: 'TOKEN_EXPIRED', status: 410, permissionId: permission.id });
    const check = await otp.verifyToken(permission.id, permission.token);
    expect(check).toMatchObject({ valid: false, reason: 'TOKEN_EXPIRED' });
  });

  it('ServerError (500, generic message, requestId) when the database breaks, after retrying', async () => {
    await db.query('DROP TABLE permissions CASCADE');
    const otp = new AgentOTPClient({
      apiKey: agentKey,
      baseUrl: server.url,
      retryAttempts: 2,
      retryDelay: 20,
    });
    const started = Date.now();
    const err = await rejection(otp.requestPermission({ action: 'payment.transfer' }));
    expect(err).toBeInstanceOf(ServerError);
    expect(err).toMatchObject({ code: 'INTERNAL_ERROR', status: 500, message: 'Internal server error' });
    expect(err.requestId).toBeTruthy();
    expect(Date.now() - started).toBeGreaterThanOrEqual(20); // at least one backoff happened
    // Three attempts reached the server (its request log is written asynchronously, after the answer).
    await vi.waitFor(() => {
      const attempts = server.output().match(/"url":"\/api\/v1\/permissions\/request","statusCode":500/g);
      expect(attempts).toHaveLength(3);
    });
  });
});
