import type { App, Receiver } from '@slack/bolt';
import { isValidSlackRequest } from '@slack/bolt';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../logger.js';
import { ACK_DEADLINE_MS, dispatchWithAck } from './ack.js';

/**
 * How far a signed request's timestamp may be from our clock, in either direction. Bolt's check
 * only refuses the past, so a request signed for next week (a leaked signature, a replay saved
 * for later) would have passed; a clock five minutes ahead is as suspect as one behind.
 */
export const SIGNATURE_WINDOW_SECONDS = 300;

/** Is a Slack `x-slack-request-timestamp` (unix seconds) within the window around now? */
export function withinSignatureWindow(timestamp: string, nowMs: number): boolean {
  if (!/^\d{1,12}$/.test(timestamp)) return false;
  return Math.abs(nowMs / 1000 - Number(timestamp)) <= SIGNATURE_WINDOW_SECONDS;
}

/**
 * Bolt's HTTP mode on the API's own Fastify server: POST /slack/events. Every request must carry
 * a valid Slack signature made within 5 minutes of now (either way); anything else is a 401 and
 * reaches no handler. Every signed request is answered within Slack's 3 seconds, handled or not.
 * The raw body is kept for the signature check, so this route parses its own body.
 */
export class FastifySlackReceiver implements Receiver {
  private app: App | null = null;

  constructor(
    private readonly signingSecret: string,
    private readonly logger: Logger,
    private readonly ackDeadlineMs = ACK_DEADLINE_MS,
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
        const timestamp = request.headers['x-slack-request-timestamp'];
        const valid =
          typeof signature === 'string' &&
          typeof timestamp === 'string' &&
          withinSignatureWindow(timestamp, Date.now()) &&
          isValidSlackRequest({
            signingSecret: this.signingSecret,
            body: raw,
            headers: { 'x-slack-signature': signature, 'x-slack-request-timestamp': Number(timestamp) },
          });
        if (!valid) {
          this.logger.warn(
            { ip: request.ip },
            'refused a Slack request with a missing, forged, stale or future signature',
          );
          return reply.status(401).send({ ok: false, error: 'invalid_signature' });
        }
        let body: Record<string, unknown>;
        try {
          body = parseSlackBody(raw, String(request.headers['content-type'] ?? ''));
        } catch {
          return reply.status(400).send({ ok: false, error: 'invalid_body' });
        }
        // Slack checks the certificate of a newly configured URL this way: it only wants a 200.
        if (body.ssl_check !== undefined) return reply.status(200).send('');
        if (body.type === 'url_verification') return reply.send({ challenge: body.challenge });
        const app = this.app;
        if (!app) return reply.status(503).send({ ok: false, error: 'not_ready' });

        const response = await new Promise<unknown>((resolve) => {
          void dispatchWithAck(
            app,
            { body, ack: async (answer?: unknown) => resolve(answer) },
            { logger: this.logger, deadlineMs: this.ackDeadlineMs },
          );
        });
        if (response === undefined || response === '') return reply.status(200).send('');
        return reply.status(200).send(response);
      });
    });
  }
}

/** A form post (`payload=<JSON>` or plain fields) or a JSON object; anything else throws. */
function parseSlackBody(raw: string, contentType: string): Record<string, unknown> {
  let body: unknown;
  if (contentType.includes('application/x-www-form-urlencoded')) {
    const form = new URLSearchParams(raw);
    const payload = form.get('payload');
    body = payload === null ? Object.fromEntries(form.entries()) : JSON.parse(payload);
  } else {
    body = JSON.parse(raw);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object');
  return body as Record<string, unknown>;
}
