import {
  type App,
  type ReceiverEvent,
  SocketModeReceiver,
  type SocketModeReceiverOptions,
} from '@slack/bolt';
import type { Logger } from '../../logger.js';

/**
 * Slack wants every request acknowledged within 3 seconds, or it shows the clicker an error
 * and (Events API, Socket Mode) delivers it again. Bolt leaves the ack to the listener, so a
 * payload no listener handles — an unknown action_id, `view_closed`, `payload={}` — was never
 * answered: the HTTP connection and a promise stayed open, the Socket Mode envelope unacked.
 * Every receiver runs Bolt through dispatchWithAck: when processing ends without an ack it acks
 * at once with an empty body, and a safety timer acks a slow listener just before Slack gives
 * up (its own later ack is then ignored, as Bolt ignores a second ack).
 */
export const ACK_DEADLINE_MS = 2500;

export async function dispatchWithAck(
  app: Pick<App, 'processEvent'>,
  event: ReceiverEvent,
  opts: { logger: Logger; deadlineMs?: number },
): Promise<void> {
  let acked = false;
  const ack = async (response?: unknown): Promise<void> => {
    if (acked) return;
    acked = true;
    clearTimeout(timer);
    await event.ack(response);
  };
  const ackUnanswered = (why: string) =>
    ack().catch((err) => opts.logger.warn({ err: (err as Error).message, why }, 'slack ack failed'));
  const timer = setTimeout(() => {
    opts.logger.warn({ type: (event.body as { type?: unknown }).type }, 'slack listener slow: acked for it');
    void ackUnanswered('deadline');
  }, opts.deadlineMs ?? ACK_DEADLINE_MS);
  try {
    await app.processEvent({ ...event, ack });
  } catch (err) {
    opts.logger.error({ err }, 'slack handler failed');
  } finally {
    await ackUnanswered('unhandled');
  }
}

/**
 * Bolt's Socket Mode receiver with the same guarantee: every envelope is acked, handled or not.
 * (Bolt's own receiver leaves an unhandled envelope unacked, so Slack retries it and shows the
 * clicker an error.)
 */
export class AckingSocketModeReceiver extends SocketModeReceiver {
  constructor(
    options: SocketModeReceiverOptions,
    private readonly ackLogger: Logger,
    private readonly deadlineMs = ACK_DEADLINE_MS,
  ) {
    super(options);
  }

  override init(app: App): void {
    const guarded: Pick<App, 'processEvent'> = {
      processEvent: (event) =>
        dispatchWithAck(app, event, { logger: this.ackLogger, deadlineMs: this.deadlineMs }),
    };
    super.init(guarded as App);
  }
}
