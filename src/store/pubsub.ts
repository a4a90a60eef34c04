import type { Redis } from 'ioredis';

type Handler = (message: string) => void;

/**
 * Cross-instance notifications over Redis pub/sub (cache invalidation, policy reloads, wake-ups).
 * One subscriber connection per process; handlers run on every instance including the sender's.
 *
 * Pub/sub is best effort: a message published while Redis is down, or while this instance is
 * disconnected, is lost. So every change is also applied locally by its sender, and each time
 * the subscriber connects again the `onResubscribed` listeners re-read what they may have missed.
 */
export class Bus {
  private readonly handlers = new Map<string, Handler[]>();
  private readonly resubscribed: (() => void)[] = [];

  constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    private readonly prefix: string,
  ) {
    subscriber.on('message', (channel: string, message: string) => {
      for (const handler of this.handlers.get(channel) ?? []) handler(message);
    });
    // ioredis subscribes again on its own after a reconnect (autoResubscribe); what was published
    // in between is gone, so the listeners catch up. Also after a first connection made late
    // (Redis was down at start): state may have changed since the process read it.
    subscriber.on('ready', () => {
      for (const listener of this.resubscribed) listener();
    });
  }

  /**
   * Registers a handler. The SUBSCRIBE is not awaited: while Redis is down it waits in the
   * subscriber's queue and is sent on connection, and startup does not wait for Redis.
   */
  subscribe(channel: string, handler: Handler): void {
    const full = `${this.prefix}:bus:${channel}`;
    const list = this.handlers.get(full);
    if (list) {
      list.push(handler);
      return;
    }
    this.handlers.set(full, [handler]);
    this.subscriber.subscribe(full).catch(() => undefined);
  }

  /** Called each time the subscriber (re)connects after the Bus was made. */
  onResubscribed(listener: () => void): void {
    this.resubscribed.push(listener);
  }

  /** Fails at once while Redis is down (a `commands` connection); callers decide what to log. */
  async publish(channel: string, message: string): Promise<void> {
    await this.publisher.publish(`${this.prefix}:bus:${channel}`, message);
  }
}
