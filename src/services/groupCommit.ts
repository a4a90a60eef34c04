/**
 * Group commit: each caller hands in one item and waits until the statement that holds it has
 * committed, while one statement carries the items of many callers. An idle writer writes at
 * once, or with `gatherTurn` at the end of the current event-loop turn (no timer); while
 * `maxInFlight` writes are running, new items gather for the next one. So a lone caller pays one
 * round trip, and under load the number of commits per second stays bounded while every caller
 * still waits for its own item to be durable. Reads by key can be grouped the same way.
 *
 * A write that failed because of its data is split in two and each half retried, one after the
 * other (bisection), so an item the database refuses fails alone, after about 2·log2(n) extra
 * statements, and never takes the others with it. A failure that no item caused (the database is
 * unreachable) fails the whole batch at once: retrying halves would only multiply the statements
 * sent to a database that is down.
 */
export interface GroupCommitOptions<T, R> {
  /**
   * Writes the items in one statement (one commit); rejects if none was written. May answer each
   * item, in order (what the statement said of it: inserted or not, its new row).
   */
  write: (items: readonly T[]) => Promise<[R] extends [undefined] ? void : readonly R[]>;
  /** Writes running at once; more items wait and go together in the next one. */
  maxInFlight: number;
  /** The most items in one write. */
  maxBatch: number;
  /** An item that could not be written even on its own: its caller's promise rejects too. */
  onItemFailed?: (item: T, err: unknown) => void;
  /**
   * Start a write on the next turn of the event loop rather than at once, so that every item
   * submitted during this turn (the requests whose bytes arrived together) goes in one write.
   * Costs a lone caller one turn (no timer); saves a statement per item under load.
   */
  gatherTurn?: boolean;
  /** Whether a failed write may be one item's fault, so that splitting it can help (default: yes). */
  causedByData?: (err: unknown) => boolean;
}

interface Entry<T, R> {
  item: T;
  resolve: (result: R) => void;
  reject: (err: unknown) => void;
}

export class GroupCommit<T, R = undefined> {
  private waiting: Entry<T, R>[] = [];
  private inFlight = 0;
  private idle: (() => void)[] = [];
  private gathering = false;

  constructor(private readonly options: GroupCommitOptions<T, R>) {}

  /** Resolves with the item's answer once it is committed; rejects if it could not be written. */
  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.options.gatherTurn) return this.pump();
      if (this.gathering) return;
      this.gathering = true;
      setImmediate(() => {
        this.gathering = false;
        this.pump();
      });
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
  private async commit(batch: Entry<T, R>[]): Promise<void> {
    let results: unknown;
    try {
      results = await this.options.write(batch.map((e) => e.item));
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
    for (const [i, entry] of batch.entries()) entry.resolve((results as readonly R[] | undefined)?.[i] as R);
  }

  private fail(entry: Entry<T, R>, err: unknown): void {
    try {
      this.options.onItemFailed?.(entry.item, err);
    } catch {
      // A failing reporter must not leave the caller waiting for an answer.
    }
    entry.reject(err);
  }
}

/**
 * Whether a failed write may be one item's fault: SQLSTATE classes 22 (data exception: a NUL, an
 * invalid escape), 23 (integrity constraint) and 54 (program limit exceeded: too large). Anything
 * else (a lost connection, a database shutting down) is no item's fault.
 */
export function isDataError(err: unknown): boolean {
  const code = sqlState(err);
  return typeof code === 'string' && /^(22|23|54)[0-9A-Z]{3}$/.test(code);
}

/** The SQLSTATE a database error carries (pg and PGlite put it in `code`), if any. */
export const sqlState = (err: unknown): unknown => (err as { code?: unknown } | null)?.code;
