/**
 * Generators of hostile HTTP input for property-based tests (fast-check), driven by the OpenAPI
 * document so that every route the server registers is covered without listing it here.
 *
 * JSON that a JavaScript value cannot hold as such (a `__proto__` key, 10 000 levels of nesting,
 * a number literal that parses to Infinity) is written as a marker string and substituted into
 * the serialised body: see {@link toJsonText}.
 */
import fc from 'fast-check';

export interface OpenApiParameter {
  name: string;
  in: 'path' | 'query';
  required?: boolean;
  schema: JsonSchema;
}

export interface JsonSchema {
  type?: string;
  enum?: unknown[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  maxLength?: number;
  nullable?: boolean;
  anyOf?: JsonSchema[];
}

export interface RouteShape {
  method: string;
  /** `/api/v1/permissions/{id}` as in the OpenAPI document. */
  path: string;
  pathParams: string[];
  query: Record<string, JsonSchema>;
  /** Null when the route reads no body; `{}` for a body the route validates itself (policies). */
  body: JsonSchema | null;
}

/** Every operation of an OpenAPI 3.0 document, with what it reads. */
export function routesOf(doc: { paths: Record<string, Record<string, unknown>> }): RouteShape[] {
  const routes: RouteShape[] = [];
  for (const [path, operations] of Object.entries(doc.paths)) {
    for (const [method, raw] of Object.entries(operations)) {
      const op = raw as {
        parameters?: OpenApiParameter[];
        requestBody?: { content: { 'application/json': { schema: JsonSchema } } };
      };
      const params = op.parameters ?? [];
      routes.push({
        method: method.toUpperCase(),
        path,
        pathParams: params.filter((p) => p.in === 'path').map((p) => p.name),
        query: Object.fromEntries(params.filter((p) => p.in === 'query').map((p) => [p.name, p.schema])),
        body: op.requestBody?.content['application/json'].schema ?? null,
      });
    }
  }
  return routes;
}

// ---- markers substituted into the JSON text ----

const deepMarker = (levels: number, kind: 'array' | 'object') => `@@deep:${kind}:${levels}@@`;
const PROTO_KEY_MARKER = '@@proto@@';
const rawNumberMarker = (literal: string) => `@@num:${literal}@@`;

function deepJson(kind: string, levels: number): string {
  return kind === 'array'
    ? `${'['.repeat(levels)}${']'.repeat(levels)}`
    : `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
}

/** JSON text of a generated value, markers replaced by what they stand for. */
export function toJsonText(value: unknown): string {
  return JSON.stringify(value)
    .replace(/"@@deep:(array|object):(\d+)@@"/g, (_m, kind: string, n: string) => deepJson(kind, Number(n)))
    .replaceAll(`"${PROTO_KEY_MARKER}"`, '"__proto__"')
    .replace(/"@@num:([^@"]+)@@"/g, (_m, literal: string) => literal);
}

// ---- scalars ----

const NUL = '\u0000';
const LONE_SURROGATES = ['\ud800', '\udbff', '\udc00', '\udfff'];

/** A string no database column can hold: a NUL or a lone surrogate, somewhere in it. */
export const unstorableString: fc.Arbitrary<string> = fc
  .tuple(fc.string({ maxLength: 20 }), fc.constantFrom(NUL, ...LONE_SURROGATES), fc.string({ maxLength: 20 }))
  .map(([before, bad, after]) => `${before}${bad}${after}`);

const ODD_DATES = [
  '-271821-04-20',
  '+275760-09-13T00:00:00.000Z',
  '0000-01-01',
  '0001-01-01T00:00:00Z',
  '9999-12-31T23:59:59.999Z',
  '10000-01-01',
  '2024-02-30',
  '1970-01-01T00:00:00+99:99',
  'yesterday',
  '1e309',
  '',
];

const ODD_STRINGS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'null',
  '-1',
  '99999999999999999999',
  '1e400',
  'NaN',
  '../../etc/passwd',
  "'; DROP TABLE agents; --",
  '%00',
  '\\u0000',
  '😀',
  '\u202e',
  '\ufeff',
  ' ',
];

export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom(...ODD_STRINGS, ...ODD_DATES),
  unstorableString,
  fc.integer({ min: 201, max: 120_000 }).map((n) => 'x'.repeat(n)),
);

const HUGE_NUMBERS = [
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 63,
  Number.MAX_SAFE_INTEGER + 2,
  Number.MAX_VALUE,
  -Number.MAX_VALUE,
  Number.MIN_VALUE,
  -1,
  0,
  -0,
  0.5,
  1e21,
  8.64e15,
  8.64e15 + 1,
];

export const hostileNumber: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(...HUGE_NUMBERS),
  // Literals JSON allows but a double does not hold: Infinity, a 30-digit integer.
  fc.constantFrom('1e400', '-1e400', '123456789012345678901234567890', '1e-400').map(rawNumberMarker),
);

const key: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom(
    'max_uses',
    'max_amount',
    'max_total_amount',
    'allowed_recipients',
    'blocked_domains',
    'amount',
    'recipient',
    'name',
    'id',
    'constructor',
    'toString',
  ),
);

/** Any JSON value, a few levels deep, made of hostile scalars. */
export const hostileJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    hostileString,
    hostileNumber,
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 4 }),
  ),
})).value;

const plainJson: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ maxLength: 12 }),
    fc.integer({ min: -10, max: 5000 }),
    fc.boolean(),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(key, tie('value'), { maxKeys: 3 }),
  ),
})).value;

/** Values some fields need to be valid at all, by field name. */
const PLAUSIBLE_BY_NAME: Record<string, fc.Arbitrary<unknown>> = {
  start_date: fc
    .date({ min: new Date('2000-01-01'), max: new Date('2030-01-01'), noInvalidDate: true })
    .map((d) => d.toISOString()),
  end_date: fc
    .date({ min: new Date('2030-01-01'), max: new Date('2040-01-01'), noInvalidDate: true })
    .map((d) => d.toISOString()),
  cursor: fc.constantFrom(
    '5',
    Buffer.from(JSON.stringify(['2024-01-01T00:00:00.000Z', 'perm_x'])).toString('base64url'),
  ),
  webhookUrl: fc.constant('https://example.com/hook'),
  tokenHash: fc.stringMatching(/^[0-9a-f]{64}$/),
  token: fc.stringMatching(/^otp_v1_[A-Za-z0-9_-]{43}$/),
  scope: fc.record({
    max_amount: fc.integer({ min: 0, max: 1000 }),
    max_uses: fc.integer({ min: 1, max: 5 }),
  }),
  subject: fc.stringMatching(/^[a-z]{3,12}@example\.com$/),
};

/** A value a route may well accept, so that requests also get past validation into handlers. */
function plausibleFor(schema: JsonSchema | undefined, name?: string): fc.Arbitrary<unknown> {
  const byName = name === undefined ? undefined : PLAUSIBLE_BY_NAME[name];
  if (byName) return byName;
  if (schema?.enum) return fc.constantFrom(...schema.enum);
  switch (schema?.type) {
    case 'string':
      return fc.oneof(
        fc.stringMatching(/^[a-z][a-z0-9._:-]{2,15}$/),
        fc.constantFrom('payment.send', 'email:bob@example.com', 'https://example.com/hook', '2024-01-01'),
      );
    case 'integer':
    case 'number':
      // Small for limits and counts, or in the range of TTLs and grace periods.
      return fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 30, max: 3600 }));
    case 'boolean':
      return fc.boolean();
    case 'object':
      return fc.dictionary(key, plainJson, { maxKeys: 4 });
    default:
      return plainJson;
  }
}

/** A value of the schema's type, hostile. */
function hostileFor(schema: JsonSchema | undefined): fc.Arbitrary<unknown> {
  switch (schema?.type) {
    case 'string':
      return hostileString;
    case 'integer':
    case 'number':
      return hostileNumber;
    case 'object':
      return fc.dictionary(key, hostileJson, { maxKeys: 5 });
    default:
      return hostileJson;
  }
}

/** A policy as the policy routes read it (they validate their bodies themselves). */
const plausiblePolicy: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    name: fc.stringMatching(/^[a-z][a-z0-9-]{2,15}$/),
    conditions: fc.constantFrom({ action: 'payment.*' }, { 'scope.amount': { less_than: 100 } }),
    action: fc.constantFrom('auto_approve', 'require_approval', 'deny'),
    priority: fc.integer({ min: 0, max: 100 }),
    scope_template: fc.constant({ max_amount: 50 }),
    ttl: fc.integer({ min: 30, max: 3600 }),
    approval: fc.constant({ quorum: 2, remind_after: 60 }),
  },
  { requiredKeys: ['name', 'conditions', 'action'] },
);

/** A body shaped like the route's schema with plausible values (required fields present). */
function plausibleBody(schema: JsonSchema): fc.Arbitrary<Record<string, unknown>> {
  const props = schema.properties;
  if (!props)
    return fc.oneof(
      plausiblePolicy,
      plausiblePolicy.map((p) => ({ policies: [p] })),
    );
  return fc.record(
    Object.fromEntries(Object.entries(props).map(([name, s]) => [name, plausibleFor(s, name)])),
    {
      requiredKeys: (schema.required ?? []).filter((name) => name in props),
    },
  );
}

/** A hostile value for a field: of its type (huge, odd, long) or of any type. */
const hostileValueFor = (schema: JsonSchema | undefined): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 3, arbitrary: hostileFor(schema) }, { weight: 1, arbitrary: hostileJson });

export type Mutation =
  | { where: 'body'; field: string; value: unknown }
  | { where: 'query'; field: string; value: string }
  | { where: 'param'; field: string; value: string };

/**
 * One hostile change to otherwise plausible input: a field of the body, query or path given a
 * hostile value (a field the route does not know, now and then), so that the rest of the request
 * gets past validation and the hostile part reaches as deep as the server lets it.
 */
export function mutationFor(route: RouteShape): fc.Arbitrary<Mutation> {
  const choices: fc.Arbitrary<Mutation>[] = [];
  const bodyFields = Object.entries(route.body?.properties ?? {});
  if (route.body) {
    const fields = bodyFields.length > 0 ? bodyFields : FREE_FORM_FIELDS.map((f) => [f, undefined] as const);
    choices.push(
      fc.tuple(fc.constantFrom(...fields), fc.boolean(), key).chain(([[field, schema], unknown, extra]) =>
        hostileValueFor(schema).map((value) => ({
          where: 'body' as const,
          field: unknown ? extra : field,
          value,
        })),
      ),
    );
  }
  const queryFields = Object.entries(route.query);
  if (queryFields.length > 0) {
    choices.push(
      fc
        .tuple(fc.constantFrom(...queryFields), fc.nat(5), key)
        .chain(([[field, schema], n, extra]) =>
          fc
            .oneof(hostileValueFor(schema).map(asText), fc.constantFrom(...ODD_DATES))
            .map((value) => ({ where: 'query' as const, field: n === 0 ? extra : field, value })),
        ),
    );
  }
  if (route.pathParams.length > 0) {
    choices.push(
      fc
        .tuple(fc.constantFrom(...route.pathParams), hostileString)
        .map(([field, value]) => ({ where: 'param' as const, field, value })),
    );
  }
  return fc.oneof(...choices);
}

/** Applies a mutation to a copy of the body or query. */
export function applyMutation(
  mutation: Mutation | null,
  input: {
    body: Record<string, unknown> | null;
    query: Record<string, string>;
    params: Record<string, string>;
  },
) {
  const body = input.body === null ? null : { ...input.body };
  const query = { ...input.query };
  const params = { ...input.params };
  if (mutation?.where === 'body' && body !== null) body[mutation.field] = mutation.value;
  if (mutation?.where === 'query') query[mutation.field] = mutation.value;
  if (mutation?.where === 'param') params[mutation.field] = mutation.value;
  return { body, query, params };
}

/** Fields a route that validates its own body (policies) may read. */
const FREE_FORM_FIELDS = [
  'name',
  'action',
  'conditions',
  'scope_template',
  'priority',
  'policies',
  'reason',
  'ttl',
  'agent',
  'approval',
  'description',
];

/** A plausible body for the route, or null when it reads none. */
export const bodyFor = (route: RouteShape): fc.Arbitrary<Record<string, unknown> | null> =>
  route.body ? plausibleBody(route.body) : fc.constant(null);

/** A generated value as query text (String() throws on an object with a `toString` key). */
const asText = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));

/** Plausible values for some of the route's query parameters. */
export function queryFor(query: Record<string, JsonSchema>): fc.Arbitrary<Record<string, string>> {
  return fc.record(
    Object.fromEntries(Object.entries(query).map(([n, schema]) => [n, plausibleFor(schema, n).map(asText)])),
    { requiredKeys: [] },
  ) as fc.Arbitrary<Record<string, string>>;
}

// ---- poison: one element no server may accept, placed anywhere in the input ----

export type Poison =
  | { kind: 'string'; value: string }
  | { kind: 'key'; key: string }
  | { kind: 'deep'; levels: number; shape: 'array' | 'object' }
  | { kind: 'proto' }
  | { kind: 'constructor' };

export const bodyPoison: fc.Arbitrary<Poison> = fc.oneof(
  unstorableString.map((value) => ({ kind: 'string', value }) as const),
  unstorableString.map((k) => ({ kind: 'key', key: k }) as const),
  fc
    .record({
      levels: fc.oneof(fc.integer({ min: 33, max: 200 }), fc.constantFrom(10_000, 100_000)),
      shape: fc.constantFrom('array' as const, 'object' as const),
    })
    .map(({ levels, shape }) => ({ kind: 'deep', levels, shape }) as const),
  fc.constant({ kind: 'proto' } as const),
  fc.constant({ kind: 'constructor' } as const),
);

function containersOf(value: unknown, out: (unknown[] | Record<string, unknown>)[] = []) {
  if (value !== null && typeof value === 'object') {
    out.push(value as unknown[] | Record<string, unknown>);
    for (const v of Object.values(value)) containersOf(v, out);
  }
  return out;
}

/** The body with the poison put into one of its objects or arrays (chosen by `where`). */
export function poisonBody(
  body: Record<string, unknown>,
  poison: Poison,
  where: number,
  name: string,
): unknown {
  const copy = structuredClone(body);
  const containers = containersOf(copy);
  const target = containers[where % containers.length] as unknown[] | Record<string, unknown>;
  const payload: unknown =
    poison.kind === 'string'
      ? poison.value
      : poison.kind === 'deep'
        ? deepMarker(poison.levels, poison.shape)
        : poison.kind === 'constructor'
          ? { prototype: { polluted: true } }
          : { polluted: true };
  if (Array.isArray(target)) {
    if (poison.kind === 'key' || poison.kind === 'proto' || poison.kind === 'constructor') {
      target.push({ [keyOf(poison, name)]: payload });
    } else target.push(payload);
  } else {
    target[keyOf(poison, name)] = payload;
  }
  return copy;
}

function keyOf(poison: Poison, name: string): string {
  if (poison.kind === 'key') return poison.key;
  if (poison.kind === 'proto') return PROTO_KEY_MARKER;
  if (poison.kind === 'constructor') return 'constructor';
  return name;
}

/** `?a=b&c=d`, every key and value percent-encoded (a NUL becomes %00). */
export function queryString(query: Record<string, string>): string {
  const parts = Object.entries(query).map(([k, v]) => `${encode(k)}=${encode(v)}`);
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

/** encodeURIComponent, except that a lone surrogate (which it refuses) is sent as its CESU-8 bytes. */
export function encode(text: string): string {
  return [...text]
    .map((ch) => {
      const code = ch.charCodeAt(0);
      if (ch.length === 1 && code >= 0xd800 && code <= 0xdfff) {
        return [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)]
          .map((b) => `%${b.toString(16).toUpperCase()}`)
          .join('');
      }
      return encodeURIComponent(ch);
    })
    .join('');
}
