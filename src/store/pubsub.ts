import type { Redis } from 'ioredis';

type Handler = (message: string) => void;

/**
 * Cross-instance notifications over Redis pub/sub (cache invalidation, policy reloads, wake-ups).
 * One subscriber connection per process; handlers run on every instance including the sender's.
 */
export class Bus {
  private readonly handlers = new Map<string, Handler[]>();

  constructor(
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
    private readonly prefix: string,
  ) {
    subscriber.on('message', (channel: string, message: string) => {
      for (const handler of this.handlers.get(channel) ?? []) handler(message);
    });
  }

  async subscribe(channel: string, handler: Handler): Promise<void> {
    const full = `${this.prefix}:bus:${channel}`;
    const list = this.handlers.get(full);
    if (list) {
      list.push(handler);
      return;
    }
    this.handlers.set(full, [handler]);
    await this.subscriber.subscribe(full);
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.publisher.publish(`${this.prefix}:bus:${channel}`, message);
  }
}
