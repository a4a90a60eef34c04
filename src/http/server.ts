import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import type { Config } from '../config.js';
import type { Logger } from '../logger.js';
import type { AgentService } from '../services/agents.js';
import type { AuthService } from '../services/auth.js';
import { errorBody, sendError } from './errors.js';
import { buildOpenApi } from './openapi.js';
import { makeRouter, type RouteRegistry, type Router } from './route.js';
import { registerAgentRoutes } from './routes/agents.js';
import { type ReadinessCheck, registerHealthRoutes } from './routes/health.js';

export const BODY_LIMIT_BYTES = 1024 * 1024;
const VERSION = '0.1.0';

export interface HttpDeps {
  config: Config;
  logger: Logger;
  auth: AuthService;
  agents: AgentService;
  readiness: ReadinessCheck[];
  /** Later capabilities (permissions, policies, chat) add their routes here. */
  extraRoutes?: ((route: Router, app: FastifyInstance) => void)[];
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const IDLE_REAP_INTERVAL_MS = 100;

export function buildServer(deps: HttpDeps): FastifyInstance {
  const { config } = deps;
  const https =
    config.TLS_CERT_FILE && config.TLS_KEY_FILE
      ? {
          cert: readFileSync(config.TLS_CERT_FILE),
          key: readFileSync(config.TLS_KEY_FILE),
          minVersion: 'TLSv1.2' as const,
        }
      : null;

  const app = Fastify({
    loggerInstance: deps.logger,
    // One line per request, written in onResponse below, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    trustProxy: config.TRUST_PROXY,
    requestIdHeader: false,
    // A caller's own X-Request-Id is kept when it is well formed, so traces line up.
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : `req_${randomUUID()}`;
    },
    ...(https ? { https } : {}),
    // A path that cannot be decoded or routed gets the same error envelope as every other 4xx.
    frameworkErrors: (err, request, reply) => {
      reply.header('x-request-id', request.id);
      return sendError(request, reply, err);
    },
  }) as unknown as FastifyInstance;

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        url: request.routeOptions.url ?? request.url.split('?')[0],
        statusCode: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
      },
      'request completed',
    );
  });

  // Closing waits for every connection. Fastify closes the idle ones once, when it starts; a
  // request still in flight then leaves its keep-alive connection idle afterwards, open until the
  // client drops it. Close those too as they finish, so a shutdown takes as long as its slowest
  // request, not the clients' keep-alive timeout.
  //
  // Node's own idea of an idle connection was seen to miss keep-alive connections whose last
  // request had been answered (three of them held a shutdown until the 10 s kill, every run on one
  // machine), so the reaper also counts responses itself: with none open, every connection left
  // is idle whatever Node thinks, and all are closed.
  let reaper: NodeJS.Timeout | null = null;
  let openResponses = 0;
  app.server.on('request', (_req, res) => {
    openResponses += 1;
    res.once('close', () => {
      openResponses -= 1;
    });
  });
  app.addHook('preClose', (done) => {
    reaper = setInterval(() => {
      if (openResponses === 0) app.server.closeAllConnections();
      else app.server.closeIdleConnections();
    }, IDLE_REAP_INTERVAL_MS);
    reaper.unref();
    done();
  });
  app.addHook('onClose', (_instance, done) => {
    if (reaper) clearInterval(reaper);
    done();
  });

  app.setErrorHandler((err, request, reply) => sendError(request, reply, err));
  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      .send(
        errorBody('NOT_FOUND', `No route for ${request.method} ${request.url.split('?')[0]}`, request.id),
      ),
  );

  const registry: RouteRegistry = [];
  const route = makeRouter(app, deps.auth, registry);
  registerHealthRoutes(app, deps.readiness);
  registerAgentRoutes(route, deps.agents);
  for (const extra of deps.extraRoutes ?? []) extra(route, app);

  const openapi = () => buildOpenApi(registry, VERSION);
  let cached: Record<string, unknown> | null = null;
  app.get('/openapi.json', async () => {
    cached ??= openapi();
    return cached;
  });
  return app;
}
