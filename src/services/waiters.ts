/**
 * Wakes requests that wait for a permission to change (long-poll GET ?wait=N and SSE). A change
 * made on any instance is published on Redis; every instance calls notify() for it, so a waiter
 * here wakes within a pub/sub hop of a decision made there.
 */
export class PermissionWaiters {
  private readonly waiting = new Map<string, Set<() => void>>();
  private readonly shutdown = new AbortController();

  /**
   * Aborted when the server shuts down: a waiting request then answers at once with the state it
   * has (a long poll) or ends (a stream), instead of holding the shutdown up to its deadline.
   */
  get closing(): AbortSignal {
    return this.shutdown.signal;
  }

  /** Wakes every waiter for the last time; later waits end at once. */
  close(): void {
    this.shutdown.abort();
    this.notifyAll();
  }

  /** Number of requests currently waiting (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const set of this.waiting.values()) n += set.size;
    return n;
  }

  notify(permissionId: string): void {
    const set = this.waiting.get(permissionId);
    if (!set) return;
    this.waiting.delete(permissionId);
    for (const wake of set) wake();
  }

  /**
   * Wakes every waiter: each re-reads its permission and waits again if nothing changed. For
   * when wake-ups may have been lost (pub/sub reconnected after an outage).
   */
  notifyAll(): void {
    for (const id of [...this.waiting.keys()]) this.notify(id);
  }

  /**
   * Registers interest before the caller reads the current state, so a change landing between
   * the read and the wait is not missed: call `arm()` first, read, then `await armed.wait`.
   */
  arm(
    permissionId: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): { wait: Promise<'changed' | 'timeout'>; cancel(): void } {
    if (this.closing.aborted) return { wait: Promise.resolve('timeout'), cancel: () => undefined };
    let settle: (how: 'changed' | 'timeout') => void = () => undefined;
    const wait = new Promise<'changed' | 'timeout'>((resolve) => {
      settle = resolve;
    });
    const wake = () => finish('changed');
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    const onAbort = () => finish('timeout');
    signal?.addEventListener('abort', onAbort, { once: true });
    let set = this.waiting.get(permissionId);
    if (!set) {
      set = new Set();
      this.waiting.set(permissionId, set);
    }
    set.add(wake);
    const finish = (how: 'changed' | 'timeout') => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const current = this.waiting.get(permissionId);
      current?.delete(wake);
      if (current?.size === 0) this.waiting.delete(permissionId);
      settle(how);
    };
    return { wait, cancel: () => finish('timeout') };
  }
}
