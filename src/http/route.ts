import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { Actor } from '../core/audit/index.js';
import { AppError } from '../core/errors.js';
import { IP_MAX_CHARS, USER_AGENT_MAX_CHARS } from '../core/limits.js';
import { assertStorable } from '../core/storable.js';
import type { RequestOrigin } from '../services/agents.js';
import type { AuthService, Principal } from '../services/auth.js';
import type { Agent } from '../store/agentRepository.js';
import { zodToAppError } from './errors.js';

export type AuthMode = 'agent' | 'operator' | 'any' | 'none';

type Schema = z.ZodType;
type Out<S> = S extends Schema ? z.output<S> : undefined;

export interface RouteContext<B, Q, P> {
  body: B;
  query: Q;
  params: P;
  principal: Principal | null;
  request: FastifyRequest;
  reply: FastifyReply;
  origin: RequestOrigin;
}

export interface RouteResult<D = unknown> {
  status?: number;
  data: D;
  headers?: Record<string, string>;
}

/** A route that answers with a stream instead of the JSON envelope, as /openapi.json shows it. */
export interface StreamResponse {
  contentTypes: string[];
  description: string;
  /** Response headers worth documenting (name → description). */
  headers?: Record<string, string>;
  /** Server-Sent Events: the JSON `data` of each event, by event name (documented as `x-events`). */
  events?: Record<string, Schema>;
}

/**
 * T with every property that Shape does not declare typed `never`, at any depth: TypeScript
 * checks excess properties only in object literals written in place, not in spreads or in
 * values built elsewhere (a DTO function), so the route helper asks for this explicitly.
 */
type Declared<T, Shape> = T extends readonly (infer E)[]
  ? [NonNullable<Shape>] extends [readonly (infer SE)[]]
    ? readonly Declared<E, SE>[]
    : T
  : T extends object
    ? [NonNullable<Shape>] extends [object]
      ? { [K in keyof T]: K extends keyof NonNullable<Shape> ? Declared<T[K], NonNullable<Shape>[K]> : never }
      : T
    : T;

/**
 * What a handler may return: exactly the `data` its response schema declares (a field sent but
 * not declared, or declared but not sent, is a type error), or null when it wrote a stream itself.
 */
type Answer<R, D> = [R] extends [Schema]
  ? RouteResult<D & z.input<R> & Declared<D, z.input<R>>> | null
  : null;

export interface RouteDefinition<
  B extends Schema | undefined,
  Q extends Schema | undefined,
  P extends Schema | undefined,
  R extends Schema | undefined = undefined,
  D = unknown,
> {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  auth: AuthMode;
  summary: string;
  tag: string;
  body?: B;
  query?: Q;
  params?: P;
  /**
   * The shape of `data` in the success envelope: the contract (/openapi.json) and the type the
   * handler must return. A route without one answers with a `stream`.
   */
  response?: R;
  stream?: StreamResponse;
  successStatus?: number;
  /** Counts calls per agent: answers carry X-RateLimit-* headers, a 429 also Retry-After. */
  rateLimited?: boolean;
  /** Every success status the handler answers with, when it is more than `successStatus`. */
  successStatuses?: number[];
  /** Resolves to null when the handler wrote the response itself (a hijacked stream). */
  handler(ctx: RouteContext<Out<B>, Out<Q>, Out<P>>): Promise<Answer<R, D>>;
}

/** Collected as routes are registered; /openapi.json is generated from it. */
export type RouteRegistry = RouteDefinition<
  Schema | undefined,
  Schema | undefined,
  Schema | undefined,
  Schema | undefined,
  unknown
>[];

/**
 * The one boundary check every route gets: before its schema, input that no column can hold (a
 * NUL, a lone surrogate, in a value or a key, or JSON nested too deep for the recursive code
 * after it) is a 400 naming the path, never a query error. Input a route declares no schema for
 * is not read, so it is not checked either.
 */
function parse<S extends Schema | undefined>(schema: S | undefined, value: unknown): Out<S> {
  if (!schema) return undefined as Out<S>;
  assertStorable(value);
  const result = schema.safeParse(value ?? {});
  if (!result.success) throw zodToAppError(result.error);
  return result.data as Out<S>;
}

export function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    return match?.[1] ?? header;
  }
  const apiKey = request.headers['x-api-key'];
  return typeof apiKey === 'string' && apiKey.length > 0 ? apiKey : undefined;
}

export function actorFor(principal: Principal | null): Actor {
  if (!principal) return { type: 'system' };
  if (principal.kind === 'agent')
    return { type: 'agent', id: principal.agent.id, name: principal.agent.name };
  return { type: 'operator', id: principal.operatorKeyId, name: principal.name, platform: 'api' };
}

export function requireAgent(principal: Principal | null): Agent {
  if (principal?.kind !== 'agent') throw new AppError('FORBIDDEN', 'This endpoint needs an agent API key');
  return principal.agent;
}

export function makeRouter(app: FastifyInstance, auth: AuthService, registry: RouteRegistry) {
  return function route<
    B extends Schema | undefined,
    Q extends Schema | undefined,
    P extends Schema | undefined,
    R extends Schema | undefined = undefined,
    D = unknown,
  >(def: RouteDefinition<B, Q, P, R, D>): void {
    if (!def.response === !def.stream) {
      // Caught at startup (every test builds the server): the contract documents every answer.
      throw new Error(`${def.method} ${def.url} must declare exactly one of response or stream`);
    }
    registry.push(def as unknown as RouteRegistry[number]);
    app.route({
      method: def.method,
      url: def.url,
      handler: async (request, reply) => {
        let principal: Principal | null = null;
        if (def.auth !== 'none') {
          principal = await auth.authenticate(presentedKey(request), request.ip);
          if (def.auth === 'operator' && principal.kind !== 'operator') {
            throw new AppError('FORBIDDEN', 'This endpoint needs an operator (uk_) key');
          }
          if (def.auth === 'agent' && principal.kind !== 'agent') {
            throw new AppError('FORBIDDEN', 'This endpoint needs an agent API key');
          }
        }
        const params = parse<P>(def.params, request.params);
        const query = parse<Q>(def.query, request.query);
        const body = parse<B>(def.body, request.body);
        const origin: RequestOrigin = {
          actor: actorFor(principal),
          // Kept in audit rows: cut to a documented size (a trusted proxy passes on any X-Forwarded-For).
          ip: request.ip.slice(0, IP_MAX_CHARS),
          userAgent: request.headers['user-agent']?.slice(0, USER_AGENT_MAX_CHARS) ?? null,
        };
        const result = await def.handler({ body, query, params, principal, request, reply, origin });
        if (result === null) return reply;
        if (result.headers) reply.headers(result.headers);
        return reply
          .status(result.status ?? def.successStatus ?? 200)
          .send({ success: true, data: result.data });
      },
    });
  };
}

export type Router = ReturnType<typeof makeRouter>;
