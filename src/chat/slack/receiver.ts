import type { App, Receiver, ReceiverEvent } from '@slack/bolt';
import { isValidSlackRequest } from '@slack/bolt';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../logger.js';

/**
 * Bolt's HTTP mode on the API's own Fastify server: POST /slack/events. Every request must carry
 * a valid Slack signature made within the last 5 minutes; anything else is a 401 and reaches no
 * handler. The raw body is kept for the signature check, so this route parses its own body.
 */
export class FastifySlackReceiver implements Receiver {
  private app: App | null = null;

  constructor(
    private readonly signingSecret: string,
    private readonly logger: Logger,
  ) {}

  init(app: App): void {
    this.app = app;
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  register(server: FastifyInstance): void {
    server.register(async (scope) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: 1024 * 1024 }, (_req, body, done) =>
        done(null, body),
      );
      scope.post('/slack/events', async (request, reply) => {
        const raw = typeof request.body === 'string' ? request.body : '';
        const signature = request.headers['x-slack-signature'];
        const timestamp = Number(request.headers['x-slack-request-timestamp']);
        const valid =
          typeof signature === 'string' &&
          Number.isFinite(timestamp) &&
          isValidSlackRequest({
            signingSecret: this.signingSecret,
            body: raw,
            headers: { 'x-slack-signature': signature, 'x-slack-request-timestamp': timestamp },
          });
        if (!valid) {
          this.logger.warn(
            { ip: request.ip },
            'refused a Slack request with a missing, forged or stale signature',
          );
          return reply.status(401).send({ ok: false, error: 'invalid_signature' });
        }
        let body: Record<string, unknown>;
        try {
          body = parseSlackBody(raw, String(request.headers['content-type'] ?? ''));
        } catch {
          return reply.status(400).send({ ok: false, error: 'invalid_body' });
        }
        if (body.type === 'url_verification') return reply.send({ challenge: body.challenge });
        if (!this.app) return reply.status(503).send({ ok: false, error: 'not_ready' });

        let acked = false;
        const answered = new Promise<unknown>((resolve) => {
          const event: ReceiverEvent = {
            body,
            ack: async (response?: unknown) => {
              if (acked) return;
              acked = true;
              resolve(response);
            },
          };
          this.app?.processEvent(event).catch((err) => {
            this.logger.error({ err }, 'slack handler failed');
            resolve(undefined);
          });
        });
        const response = await answered;
        if (response === undefined || response === '') return reply.status(200).send('');
        return reply.status(200).send(response);
      });
    });
  }
}

function parseSlackBody(raw: string, contentType: string): Record<string, unknown> {
  if (contentType.includes('application/x-www-form-urlencoded')) {
    const form = new URLSearchParams(raw);
    const payload = form.get('payload');
    if (payload) return JSON.parse(payload) as Record<string, unknown>;
    return Object.fromEntries(form.entries());
  }
  return JSON.parse(raw) as Record<string, unknown>;
}
