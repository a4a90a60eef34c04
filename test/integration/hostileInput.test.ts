import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { newOperatorKey } from '../../src/core/credentials.js';
import { createLogger } from '../../src/logger.js';
import { type Running, startService } from '../../src/main.js';
import { createSchema, dropSchema, uniqueSchema } from '../helpers/databases.js';
import {
  applyMutation,
  bodyFor,
  bodyPoison,
  encode,
  hostileString,
  mutationFor,
  type Poison,
  poisonBody,
  queryFor,
  queryString,
  type RouteShape,
  routesOf,
  toJsonText,
  unstorableString,
} from '../helpers/hostileInput.js';

/**
 * Issue 11, defects 6 and 11, against the whole API (startService, the composition production
 * runs, on PGlite and on Postgres):
 * - each input that answered 500 before, one by one: a 4xx with a stable code and the path;
 * - the maximum of every stored string: one character more is a 4xx naming the field;
 * - property-based (fast-check), over every route of the OpenAPI document, so that a new route is
 *   covered without being listed here: plausible input with one element no column can hold (a
 *   NUL or lone surrogate in a value or a key, nesting past the limit, a prototype key, an
 *   over-long id) anywhere in body, query or path is a 4xx and changes nothing stored (every
 *   table's rows, counted and hashed); plausible input with one hostile change (wrong type, huge
 *   or odd number, odd date, unknown field, long string; verify and use with a good token) is
 *   never a 5xx.
 * TEST_HOSTILE_RUNS sets the number of generated requests per property (default 200).
 */
const RUNS = Number(process.env.TEST_HOSTILE_RUNS ?? 200);
/** About 30 ms a request on a loaded machine, with room to spare. */
const TIMEOUT_MS = Math.max(60_000, RUNS * 150);

const databases = process.env.TEST_DATABASE_URL ? (['pglite', 'postgres'] as const) : (['pglite'] as const);

/** Columns a rejected request may still change: key use times, and the sealer linking audit rows. */
const VOLATILE_COLUMNS = ['last_used_at', 'chain_index', 'prev_hash', 'hash'];

interface Sent {
  method: string;
  url: string;
  body: string | undefined;
}

/** A generated request for `route`, printed short in a counterexample (bodies can be 1 MiB). */
function labelled(route: RouteShape, request: Sent) {
  const short = (text: string) =>
    text.length > 300 ? `${text.slice(0, 300)}… (${text.length} chars)` : text;
  return {
    route,
    request,
    [fc.toStringMethod]: () => `${request.method} ${short(request.url)} ${short(request.body ?? '')}`,
  };
}

describe.each(databases)('hostile input on %s', (database) => {
  let running: Running;
  let dataDir: string;
  let schema: string | undefined;
  const operatorKey = newOperatorKey();
  let agentKey: string;
  let routes: RouteShape[];
  const keyFor = new Map<RouteShape, string>();
  /** Real ids, so hostile input also reaches handlers that find what they look for. */
  const realIds: string[] = [];
  /** An approved permission of a test-key agent, so verify and use are reached with a good token. */
  const granted = { id: '', token: '', key: '' };
  let snapshotSql: string;

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'aotp-hostile-'));
    const env: NodeJS.ProcessEnv = {
      LOG_LEVEL: 'silent',
      PORT: '0',
      HOST: '127.0.0.1',
      AGENT_OTP_DATA_DIR: dataDir,
      ADMIN_TOKEN: operatorKey,
      REDIS_URL: inject('redisUrl'),
      REDIS_KEY_PREFIX: `th${Math.random().toString(36).slice(2, 10)}`,
      RATE_LIMIT_PER_MIN: '100000',
      RATE_LIMIT_PER_HOUR: '1000000',
    };
    if (database === 'postgres') {
      const url = process.env.TEST_DATABASE_URL as string;
      schema = uniqueSchema();
      await createSchema(url, schema);
      const sep = url.includes('?') ? '&' : '?';
      env.DATABASE_URL = `${url}${sep}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    }
    running = await startService(loadConfig(env), createLogger('silent'), ['api']);
    const app = running.app!;

    const call = async (method: string, url: string, key: string, body?: unknown) => {
      const res = await app.inject({
        method: method as 'GET',
        url,
        headers: { authorization: `Bearer ${key}` },
        ...(body === undefined ? {} : { payload: body as object }),
      });
      return { status: res.statusCode, body: res.json() as { data: Record<string, string> } };
    };
    const agent = await call('POST', '/api/v1/agents', operatorKey, { name: 'hostile-target' });
    agentKey = agent.body.data.apiKey as string;
    const policy = await call('POST', '/api/v1/policies', operatorKey, {
      name: 'payments-need-a-human',
      conditions: { action: 'payment.*' },
      action: 'require_approval',
    });
    const pending = await call('POST', '/api/v1/permissions/request', agentKey, {
      action: 'payment.send',
      resource: 'acct:1',
      scope: { max_amount: 100, max_uses: 2 },
    });
    expect([agent.status, policy.status, pending.status]).toEqual([201, 201, 202]);
    realIds.push(agent.body.data.id as string, policy.body.data.id as string, pending.body.data.id as string);
    const tester = await call('POST', '/api/v1/agents', operatorKey, {
      name: 'hostile-user',
      environment: 'test',
    });
    granted.key = tester.body.data.apiKey as string;
    const approved = await call('POST', '/api/v1/permissions/request', granted.key, {
      action: 'email.send',
      scope: {
        max_uses: 1_000_000,
        max_amount: 100,
        max_total_amount: 1e9,
        max_recipients: 3,
        allowed_recipients: ['*@example.com'],
        subject_pattern: '^Invoice',
        attachments_allowed: false,
      },
    });
    expect(approved.status).toBe(201);
    granted.id = approved.body.data.id as string;
    granted.token = approved.body.data.token as string;

    const doc = (await app.inject({ method: 'GET', url: '/openapi.json' })).json();
    // The API's routes: the probes, /metrics and the document itself read no input.
    routes = routesOf(doc).filter((r) => r.path.startsWith('/api/'));
    expect(routes.length).toBeGreaterThanOrEqual(25);

    const { rows } = await running.db.query<{ tablename: string }>(
      'SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename',
    );
    expect(rows.map((r) => r.tablename)).toContain('permissions');
    const volatile = `'{${VOLATILE_COLUMNS.join(',')}}'::text[]`;
    snapshotSql = rows
      .map(
        ({ tablename }) =>
          `SELECT '${tablename}' AS t, count(*)::int AS n, md5(coalesce(string_agg(r, '|' ORDER BY r), '')) AS h
             FROM (SELECT (to_jsonb(x) - ${volatile})::text AS r FROM ${tablename} x) s`,
      )
      .join(' UNION ALL ');

    // Which key each route wants: an operator key answers 403 FORBIDDEN on agent-only routes.
    for (const route of routes) {
      const probe = await send(poisonedProbe(route), operatorKey);
      keyFor.set(route, probe.status === 403 ? agentKey : operatorKey);
    }
    for (const route of routes.filter(usesToken)) keyFor.set(route, granted.key);
  });

  afterAll(async () => {
    await running?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    if (schema) await dropSchema(process.env.TEST_DATABASE_URL as string, schema);
  });

  /** Every table's row count and a hash of its rows (volatile columns aside). */
  async function snapshot(): Promise<string> {
    const { rows } = await running.db.query<{ t: string; n: number; h: string }>(snapshotSql);
    return rows.map((r) => `${r.t}:${r.n}:${r.h}`).join('\n');
  }

  async function send(request: Sent, key: string) {
    const res = await running.app!.inject({
      method: request.method as 'GET',
      url: request.url,
      headers: {
        authorization: `Bearer ${key}`,
        ...(request.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(request.body === undefined ? {} : { payload: request.body }),
    });
    return { status: res.statusCode, body: res.body };
  }

  function urlOf(route: RouteShape, params: Record<string, string>, query: Record<string, string>): string {
    const pathPart = route.path.replace(/\{(\w+)\}/g, (_m, name: string) => encode(params[name] ?? 'x'));
    return `${pathPart}${queryString(query)}`;
  }

  /** A request to `route` with every input it reads poisoned (NUL), to probe which key it needs. */
  function poisonedProbe(route: RouteShape): Sent {
    const params = Object.fromEntries(route.pathParams.map((p) => [p, 'x\u0000']));
    const query: Record<string, string> = Object.keys(route.query).length > 0 ? { 'x\u0000': '1' } : {};
    const body = route.body ? toJsonText({ ['x\u0000']: 1 }) : undefined;
    return { method: route.method, url: urlOf(route, params, query), body };
  }

  const usesToken = (r: RouteShape) => /\/(verify|use)$/.test(r.path);
  const takesInput = (r: RouteShape) => r.pathParams.length > 0 || Object.keys(r.query).length > 0 || r.body;

  function sent(route: RouteShape, input: ReturnType<typeof applyMutation>): Sent {
    return {
      method: route.method,
      url: urlOf(route, input.params, input.query),
      body: input.body === null ? undefined : toJsonText(input.body),
    };
  }

  /**
   * Plausible input with one element no server may accept, in the body, the query or a path
   * parameter. Path parameters are often the real ids, so handlers that find something are reached.
   */
  function poisonedRequest(route: RouteShape): fc.Arbitrary<Sent> {
    const param = fc.oneof(fc.constantFrom(...realIds), hostileString);
    const params = fc.record(Object.fromEntries(route.pathParams.map((p) => [p, param])));
    const locations = [
      ...(route.body ? ['body' as const] : []),
      ...(Object.keys(route.query).length > 0 ? ['query' as const] : []),
      ...(route.pathParams.length > 0 ? ['params' as const] : []),
    ];
    const poison = fc.record({
      where: fc.constantFrom(...locations),
      body: bodyPoison,
      at: fc.nat(),
      name: fc.constantFrom('action', 'name', 'reason', 'x'),
      queryKey: fc.boolean(),
      text: fc.oneof(
        unstorableString,
        fc.integer({ min: 101, max: 3000 }).map((n) => 'p'.repeat(n)),
      ),
    });
    return fc.tuple(params, queryFor(route.query), bodyFor(route), poison).map(([p, q, b, x]) => {
      const input = applyMutation(null, { body: b, query: q, params: p });
      let body: unknown = input.body;
      if (x.where === 'body')
        body = poisonBody(input.body as Record<string, unknown>, x.body as Poison, x.at, x.name);
      if (x.where === 'query') {
        // A NUL in a key (no route knows it) or in the value of a parameter the route reads.
        const names = Object.keys(route.query);
        const name = names[x.at % names.length] as string;
        if (x.queryKey) input.query[`${name}\u0000`] = '1';
        else input.query[name] = `v\u0000${input.query[name] ?? ''}`;
      }
      if (x.where === 'params') {
        const name = route.pathParams[x.at % route.pathParams.length] as string;
        // A NUL, or an id longer than any id.
        input.params[name] = x.text.includes('\u0000') || x.text.length > 100 ? x.text : `${x.text}\u0000`;
      }
      return {
        method: route.method,
        url: urlOf(route, input.params, input.query),
        body: body === null ? undefined : toJsonText(body),
      };
    });
  }

  /**
   * Plausible input with one hostile change. Path parameters are never the real ids here: a
   * valid `?wait=` on the pending permission, or its event stream, would hold the request open.
   */
  function mutatedRequest(route: RouteShape): fc.Arbitrary<Sent> {
    const params = fc.record(
      Object.fromEntries(
        route.pathParams.map((p) => [p, fc.stringMatching(/^(perm|agent|pol)_[A-Za-z0-9]{22}$/)]),
      ),
    );
    const mutation = takesInput(route) ? mutationFor(route) : fc.constant(null);
    return fc.tuple(params, queryFor(route.query), bodyFor(route), mutation).map(([p, q, b, m]) => {
      // verify and use: the granted permission and its token, so actionDetails meet the scope checks.
      const input = usesToken(route)
        ? { body: { ...b, token: granted.token }, query: q, params: { ...p, id: granted.id } }
        : { body: b, query: q, params: p };
      return sent(route, applyMutation(m, input));
    });
  }

  interface ErrorAnswer {
    status: number;
    code: string | undefined;
    /** The field the error names: `details.path`, or the first zod issue's path. */
    field: string | undefined;
    requestId: string | undefined;
    header: string | undefined;
  }

  async function answer(
    method: string,
    url: string,
    body: unknown,
    key: string,
    headers: Record<string, string> = {},
  ): Promise<ErrorAnswer> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : toJsonText(body);
    const res = await running.app!.inject({
      method: method as 'GET',
      url,
      headers: {
        authorization: `Bearer ${key}`,
        ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(payload === undefined ? {} : { payload }),
    });
    const json = String(res.headers['content-type'] ?? '').includes('json')
      ? (res.json() as { error?: { code: string; requestId: string; details?: Record<string, unknown> } })
      : {};
    const details = json.error?.details as { path?: string; issues?: { path: string }[] } | undefined;
    return {
      status: res.statusCode,
      code: json.error?.code,
      field: details?.path ?? details?.issues?.[0]?.path,
      requestId: json.error?.requestId,
      header: res.headers['x-request-id'] as string | undefined,
    };
  }

  const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

  it('answers each input that got a 500 before with a 4xx, a stable code and the path, storing nothing', async () => {
    const [, , permissionId] = realIds;
    const request = '/api/v1/permissions/request';
    const deep = `{"action":"x","context":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`;
    // biome-ignore format: one case a line reads as a table
    const cases: [string, string, string, unknown, 'agent' | 'operator', string, string | undefined][] = [
      // [what, method, url, body, key, code, field]
      ['NUL in action', 'POST', request, { action: 'pay\u0000' }, 'agent', 'VALIDATION_ERROR', 'action'],
      ['lone surrogate in action', 'POST', request, '{"action":"pay\\ud800"}', 'agent', 'VALIDATION_ERROR', 'action'],
      ['NUL in resource', 'POST', request, { action: 'x', resource: '\u0000' }, 'agent', 'VALIDATION_ERROR', 'resource'],
      ['NUL in a context value', 'POST', request, { action: 'x', context: { a: 'b\u0000' } }, 'agent', 'VALIDATION_ERROR', 'context.a'],
      ['NUL in a context key', 'POST', request, { action: 'x', context: { 'k\u0000': 1 } }, 'agent', 'VALIDATION_ERROR', 'context.k\ufffd'],
      ['lone surrogate in scope', 'POST', request, '{"action":"x","scope":{"note":"\\udc00"}}', 'agent', 'VALIDATION_ERROR', 'scope.note'],
      ['NUL in idempotencyKey', 'POST', request, { action: 'x', idempotencyKey: 'k\u0000' }, 'agent', 'VALIDATION_ERROR', 'idempotencyKey'],
      ['max_uses 2^31', 'POST', request, { action: 'x', scope: { max_uses: 2 ** 31 } }, 'agent', 'VALIDATION_ERROR', 'scope.max_uses'],
      ['JSON nested 10 000 levels', 'POST', request, deep, 'agent', 'VALIDATION_ERROR', `context${'.a'.repeat(31)}`],
      ['NUL in a decide reason', 'POST', `/api/v1/permissions/${permissionId}/decide`, { approved: true, reason: '\u0000' }, 'operator', 'VALIDATION_ERROR', 'reason'],
      ['NUL in a revoke reason', 'POST', `/api/v1/permissions/${permissionId}/revoke`, { reason: '\u0000' }, 'operator', 'VALIDATION_ERROR', 'reason'],
      ['NUL in an agent name', 'POST', '/api/v1/agents', { name: 'a\u0000' }, 'operator', 'VALIDATION_ERROR', 'name'],
      ['NUL in agent metadata', 'POST', '/api/v1/agents', { name: 'a', metadata: { x: '\u0000' } }, 'operator', 'VALIDATION_ERROR', 'metadata.x'],
      ['NUL in a policy name', 'POST', '/api/v1/policies', { name: 'p\u0000', conditions: { action: 'x' }, action: 'deny' }, 'operator', 'VALIDATION_ERROR', 'name'],
      ['NUL in an audit filter', 'GET', '/api/v1/audit?agent_id=%00', undefined, 'operator', 'VALIDATION_ERROR', 'agent_id'],
      ['NUL in a permissions filter', 'GET', '/api/v1/permissions?action=a%00', undefined, 'operator', 'VALIDATION_ERROR', 'action'],
      ['NUL in a deliveries filter', 'GET', '/api/v1/webhooks/deliveries?agent_id=%00', undefined, 'operator', 'VALIDATION_ERROR', 'agent_id'],
      ['NUL in a metrics filter', 'GET', '/api/v1/metrics?agent_id=%00', undefined, 'operator', 'VALIDATION_ERROR', 'agent_id'],
      ['NUL in an export filter (no 200 first)', 'GET', '/api/v1/audit/export?event_type=%00', undefined, 'operator', 'VALIDATION_ERROR', 'event_type'],
      ['audit cursor 99999999999999999999', 'GET', '/api/v1/audit?cursor=99999999999999999999', undefined, 'operator', 'VALIDATION_ERROR', 'cursor'],
      ['start_date -271821-04-20', 'GET', '/api/v1/audit?start_date=-271821-04-20', undefined, 'operator', 'VALIDATION_ERROR', 'start_date'],
      ['end_date +275760-09-13 on export', 'GET', '/api/v1/audit/export?end_date=%2B275760-09-13', undefined, 'operator', 'VALIDATION_ERROR', 'end_date'],
      ['a cursor with an out-of-range date', 'GET', `/api/v1/permissions?cursor=${cursorOf(['-271821-04-20T00:00:00.000Z', 'perm_x'])}`, undefined, 'operator', 'VALIDATION_ERROR', 'cursor'],
      ['a cursor with a NUL id', 'GET', `/api/v1/webhooks/deliveries?cursor=${cursorOf(['2025-01-01T00:00:00.000Z', '\u0000'])}`, undefined, 'operator', 'VALIDATION_ERROR', 'cursor'],
      ['a cursor past year 9999', 'GET', `/api/v1/agents?cursor=${cursorOf(['+275760-09-13T00:00:00.000Z', 'agent_x'])}`, undefined, 'operator', 'VALIDATION_ERROR', 'cursor'],
      ['NUL in a path parameter', 'GET', '/api/v1/permissions/perm_%00', undefined, 'operator', 'VALIDATION_ERROR', 'id'],
      ['a lone surrogate (CESU-8) in a path', 'GET', '/api/v1/agents/a%ED%A0%80', undefined, 'operator', 'VALIDATION_ERROR', undefined],
      ['a path parameter of 101 characters', 'GET', `/api/v1/agents/${'a'.repeat(101)}`, undefined, 'operator', 'VALIDATION_ERROR', undefined],
    ];
    const before = await snapshot();
    for (const [what, method, url, body, who, code, field] of cases) {
      const got = await answer(method, url, body, who === 'agent' ? agentKey : operatorKey);
      expect({ what, status: got.status, code: got.code, field: got.field }).toEqual({
        what,
        status: 400,
        code,
        field,
      });
      expect(got.requestId, what).toBe(got.header);
    }
    expect(await snapshot()).toBe(before);
  });

  it('every stored string has a maximum: one character more is a 4xx naming the field', async () => {
    const [agentId, policyId, permissionId] = realIds;
    const text = (n: number) => 'x'.repeat(n);
    const json = (n: number) => ({ note: text(n) });
    const token = `otp_v1_${'A'.repeat(43)}`;
    const policy = { name: 'limits', conditions: { action: 'x' }, action: 'deny' };
    // biome-ignore format: one case a line reads as a table
    const cases: [string, string, unknown, 'agent' | 'operator', number, string][] = [
      // [method, url, body, key, status, field]
      ['POST', '/api/v1/agents', { name: text(201) }, 'operator', 400, 'name'],
      ['POST', '/api/v1/agents', { name: 'a', description: text(2001) }, 'operator', 400, 'description'],
      ['POST', '/api/v1/agents', { name: 'a', metadata: json(16_384) }, 'operator', 400, 'metadata'],
      ['PATCH', `/api/v1/agents/${agentId}`, { webhookUrl: `https://example.com/${text(2030)}` }, 'operator', 400, 'webhookUrl'],
      ['POST', '/api/v1/permissions/request', { action: text(201) }, 'agent', 400, 'action'],
      ['POST', '/api/v1/permissions/request', { action: 'x', resource: text(2001) }, 'agent', 400, 'resource'],
      ['POST', '/api/v1/permissions/request', { action: 'x', scope: json(32_768) }, 'agent', 400, 'scope'],
      ['POST', '/api/v1/permissions/request', { action: 'x', context: json(32_768) }, 'agent', 400, 'context'],
      ['POST', '/api/v1/permissions/request', { action: 'x', idempotencyKey: text(201) }, 'agent', 400, 'idempotencyKey'],
      ['POST', '/api/v1/permissions/request', { action: 'x', webhookUrl: `https://example.com/${text(2030)}` }, 'agent', 400, 'webhookUrl'],
      ['POST', `/api/v1/permissions/${permissionId}/use`, { token, actionDetails: json(65_536) }, 'agent', 400, 'actionDetails'],
      ['POST', `/api/v1/permissions/${permissionId}/decide`, { approved: true, reason: text(2001) }, 'operator', 400, 'reason'],
      ['POST', `/api/v1/permissions/${permissionId}/revoke`, { reason: text(2001) }, 'operator', 400, 'reason'],
      ['POST', '/api/v1/audit/redact', { subject: text(501) }, 'operator', 400, 'subject'],
      ['POST', '/api/v1/policies', { ...policy, name: text(201) }, 'operator', 422, 'name'],
      ['POST', '/api/v1/policies', { ...policy, description: text(2001) }, 'operator', 422, 'description'],
      ['POST', '/api/v1/policies', { ...policy, reason: text(2001) }, 'operator', 422, 'reason'],
      ['POST', '/api/v1/policies', { ...policy, conditions: { 'context.a': text(32_768) } }, 'operator', 422, 'conditions'],
      ['POST', '/api/v1/policies', { ...policy, scope_template: json(32_768) }, 'operator', 422, 'scope_template'],
      ['PATCH', `/api/v1/policies/${policyId}`, { description: text(2001) }, 'operator', 422, 'description'],
      ['PUT', '/api/v1/policies', { policies: [{ ...policy, name: text(201) }] }, 'operator', 422, 'policies[0].name'],
    ];
    const before = await snapshot();
    for (const [method, url, body, who, status, field] of cases) {
      const got = await answer(method, url, body, who === 'agent' ? agentKey : operatorKey);
      expect({ url, status: got.status, field: got.field }).toEqual({ url, status, field });
    }
    expect(await snapshot()).toBe(before);
  });

  it('keeps at most 512 characters of a User-Agent in audit rows', async () => {
    const created = await answer('POST', '/api/v1/agents', { name: 'long-user-agent' }, operatorKey, {
      'user-agent': 'u'.repeat(10_000),
    });
    expect(created.status).toBe(201);
    const { rows } = await running.db.query<{ ua: number }>(
      `SELECT length(user_agent) AS ua FROM audit_events WHERE type = 'agent.created' ORDER BY seq DESC LIMIT 1`,
    );
    expect(Number(rows[0]?.ua)).toBe(512);
  });

  it(
    'answers input no column can hold with a 4xx, anywhere in any route, and stores nothing',
    async () => {
      const poisonable = routes.filter(takesInput);
      const before = await snapshot();
      await fc.assert(
        fc.asyncProperty(
          fc
            .constantFrom(...poisonable)
            .chain((route) => poisonedRequest(route).map((r) => labelled(route, r))),
          async ({ route, request }) => {
            const res = await send(request, keyFor.get(route) as string);
            expect(res.status >= 400 && res.status < 500, `${res.status} ${res.body}`).toBe(true);
            expect(await snapshot()).toBe(before);
          },
        ),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );

  it(
    'never answers hostile input with a 5xx',
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...routes).chain((route) => mutatedRequest(route).map((r) => labelled(route, r))),
          async ({ route, request }) => {
            const res = await send(request, keyFor.get(route) as string);
            expect(res.status, res.body).toBeLessThan(500);
          },
        ),
        { numRuns: RUNS },
      );
    },
    TIMEOUT_MS,
  );
});
