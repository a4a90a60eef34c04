/**
 * Group commit: each caller hands in one item and waits until the statement that holds it has
 * committed, while one statement carries the items of many callers. An idle writer writes at
 * once (no timer); while `maxInFlight` writes are running, new items gather for the next one.
 * So a lone caller pays one round trip, and under load the number of commits per second stays
 * bounded while every caller still waits for its own item to be durable.
 *
 * A write that failed because of its data is split in two and each half retried, one after the
 * other (bisection), so an item the database refuses fails alone, after about 2·log2(n) extra
 * statements, and never takes the others with it. A failure that no item caused (the database is
 * unreachable) fails the whole batch at once: retrying halves would only multiply the statements
 * sent to a database that is down.
 */
export interface GroupCommitOptions<T> {
  /** Writes the items in one statement (one commit); rejects if none was written. */
  write: (items: readonly T[]) => Promise<void>;
  /** Writes running at once; more items wait and go together in the next one. */
  maxInFlight: number;
  /** The most items in one write. */
  maxBatch: number;
  /** An item that could not be written even on its own: its caller's promise rejects too. */
  onItemFailed?: (item: T, err: unknown) => void;
  /** Whether a failed write may be one item's fault, so that splitting it can help (default: yes). */
  causedByData?: (err: unknown) => boolean;
}

interface Entry<T> {
  item: T;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class GroupCommit<T> {
  private waiting: Entry<T>[] = [];
  private inFlight = 0;
  private idle: (() => void)[] = [];

  constructor(private readonly options: GroupCommitOptions<T>) {}

  /** Resolves once the item is committed; rejects if it could not be written. */
  submit(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.pump();
    });
  }

  /** Resolves when nothing is waiting or being written (shutdown). */
  drain(): Promise<void> {
    if (this.inFlight === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.options.maxBatch);
      this.inFlight += 1;
      void this.commit(batch).finally(() => {
        this.inFlight -= 1;
        this.pump();
        if (this.inFlight === 0 && this.waiting.length === 0) {
          for (const resolve of this.idle.splice(0)) resolve();
        }
      });
    }
  }

  /** Never rejects: every entry is settled, resolved or rejected on its own. */
  private async commit(batch: Entry<T>[]): Promise<void> {
    try {
      await this.options.write(batch.map((e) => e.item));
    } catch (err) {
      const split = batch.length > 1 && (this.options.causedByData?.(err) ?? true);
      if (!split) {
        for (const entry of batch) this.fail(entry, err);
        return;
      }
      const half = Math.ceil(batch.length / 2);
      await this.commit(batch.slice(0, half));
      await this.commit(batch.slice(half));
      return;
    }
    for (const entry of batch) entry.resolve();
  }

  private fail(entry: Entry<T>, err: unknown): void {
    try {
      this.options.onItemFailed?.(entry.item, err);
    } catch {
      // A failing reporter must not leave the caller waiting for an answer.
    }
    entry.reject(err);
  }
}
