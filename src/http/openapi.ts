import { z } from 'zod';
import { STATUS_BY_CODE } from './errors.js';
import type { RouteRegistry } from './route.js';

const toSchema = (schema: z.ZodType, io: 'input' | 'output') =>
  z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'openapi-3.0' });

const header = (name: string) => ({ $ref: `#/components/headers/${name}` });
const RATE_LIMIT_HEADERS = {
  'X-RateLimit-Limit': header('RateLimitLimit'),
  'X-RateLimit-Remaining': header('RateLimitRemaining'),
  'X-RateLimit-Reset': header('RateLimitReset'),
};

/**
 * Headers of an answer: the request id on every one; the rate limit on the answers of a route
 * that counts calls, and on the 429 of any route with a key (failed authentications are
 * throttled per address).
 */
function answerHeaders(def: RouteRegistry[number], error: boolean): Record<string, unknown> {
  const limited = def.rateLimited || (error && def.auth !== 'none');
  return {
    'X-Request-Id': header('RequestId'),
    ...(limited && RATE_LIMIT_HEADERS),
    ...(limited && error && { 'Retry-After': header('RetryAfter') }),
  };
}

/** Each success status a route answers with, and what it sends (the envelope, or a stream). */
function successResponses(def: RouteRegistry[number]): Record<string, unknown> {
  const statuses = def.successStatuses ?? [def.successStatus ?? 200];
  let response: Record<string, unknown>;
  if (def.stream) {
    const { contentTypes, description, headers, events } = def.stream;
    const eventSchemas =
      events &&
      Object.fromEntries(Object.entries(events).map(([name, schema]) => [name, toSchema(schema, 'output')]));
    response = {
      description,
      headers: {
        ...answerHeaders(def, false),
        ...Object.fromEntries(
          Object.entries(headers ?? {}).map(([name, text]) => [
            name,
            { description: text, schema: { type: 'string' } },
          ]),
        ),
      },
      content: Object.fromEntries(
        contentTypes.map((type) => [
          type,
          { schema: { type: 'string' }, ...(eventSchemas && { 'x-events': eventSchemas }) },
        ]),
      ),
    };
  } else {
    response = {
      description: 'Success',
      headers: answerHeaders(def, false),
      content: {
        'application/json': {
          schema: {
            type: 'object',
            required: ['success', 'data'],
            properties: {
              success: { type: 'boolean', enum: [true] },
              data: def.response ? toSchema(def.response, 'output') : {},
            },
            additionalProperties: false,
          },
        },
      },
    };
  }
  return Object.fromEntries(statuses.map((status) => [String(status), response]));
}

const json = (description: string, schema: unknown) => ({
  description,
  headers: { 'X-Request-Id': header('RequestId') },
  content: { 'application/json': { schema } },
});
const errorAnswer = json('Error', { $ref: '#/components/schemas/Error' });

/**
 * Probes, metrics and this document: plain Fastify routes outside the envelope (probes and
 * Prometheus read them as they are), described here by hand; the contract test holds them to it.
 */
const OPERATIONAL_PATHS = {
  '/healthz': {
    get: {
      summary: 'Liveness: the process is up',
      tags: ['operations'],
      security: [],
      responses: {
        200: json('Up', {
          type: 'object',
          required: ['status'],
          properties: { status: { type: 'string', enum: ['ok'] } },
          additionalProperties: false,
        }),
      },
    },
  },
  '/readyz': {
    get: {
      summary:
        'Readiness: every dependency answers (503 NOT_READY names those that do not in details.checks)',
      tags: ['operations'],
      security: [],
      responses: {
        200: json('Ready', {
          type: 'object',
          required: ['status', 'checks'],
          properties: {
            status: { type: 'string', enum: ['ready'] },
            checks: { type: 'object', additionalProperties: { type: 'string', enum: ['ok', 'unavailable'] } },
          },
          additionalProperties: false,
        }),
        503: errorAnswer,
      },
    },
  },
  '/metrics': {
    get: {
      summary: 'Prometheus text exposition (a METRICS_TOKEN bearer token when one is set)',
      tags: ['operations'],
      security: [{ bearer: [] }, {}],
      responses: {
        200: {
          description: 'Prometheus metrics',
          headers: { 'X-Request-Id': header('RequestId') },
          content: { 'text/plain': { schema: { type: 'string' } } },
        },
        401: errorAnswer,
      },
    },
  },
  '/openapi.json': {
    get: {
      summary: 'This document',
      tags: ['operations'],
      security: [],
      responses: { 200: json('The OpenAPI document', { type: 'object', additionalProperties: true }) },
    },
  },
};

/** The OpenAPI document, generated from the same zod schemas that validate requests. */
export function buildOpenApi(registry: RouteRegistry, version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const def of registry) {
    const url = def.url.replace(/:([A-Za-z_]+)/g, '{$1}');
    const parameters: unknown[] = [];
    for (const [where, schema] of [
      ['path', def.params],
      ['query', def.query],
    ] as const) {
      if (!schema) continue;
      const json = toSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, s] of Object.entries(json.properties ?? {})) {
        parameters.push({
          name,
          in: where,
          required: where === 'path' || json.required?.includes(name),
          schema: s,
        });
      }
    }
    paths[url] ??= {};
    paths[url][def.method.toLowerCase()] = {
      summary: def.summary,
      tags: [def.tag],
      security: def.auth === 'none' ? [] : [{ bearer: [] }, { apiKey: [] }],
      parameters,
      ...(def.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: toSchema(def.body, 'input') } },
            },
          }
        : {}),
      responses: {
        ...successResponses(def),
        default: {
          description: 'Error',
          headers: answerHeaders(def, true),
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
      },
    };
  }
  return {
    openapi: '3.0.3',
    info: { title: 'Agent OTP', version },
    paths: { ...paths, ...OPERATIONAL_PATHS },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
      headers: {
        RequestId: {
          description: "The request's id (the caller's own X-Request-Id when well formed), as logged",
          schema: { type: 'string' },
        },
        RateLimitLimit: { description: 'Calls allowed in the current window', schema: { type: 'integer' } },
        RateLimitRemaining: { description: 'Calls left in the current window', schema: { type: 'integer' } },
        RateLimitReset: {
          description: 'Unix time (seconds) the current window ends',
          schema: { type: 'integer' },
        },
        RetryAfter: {
          description: 'Seconds to wait before calling again (on 429)',
          schema: { type: 'integer' },
        },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['success', 'error'],
          additionalProperties: false,
          properties: {
            success: { type: 'boolean', enum: [false] },
            error: {
              type: 'object',
              required: ['code', 'message', 'requestId'],
              properties: {
                // Stable codes a client can branch on (DESIGN §11).
                code: { type: 'string', enum: Object.keys(STATUS_BY_CODE) },
                message: { type: 'string' },
                details: {},
                requestId: { type: 'string' },
              },
              additionalProperties: false,
            },
          },
        },
      },
    },
  };
}
