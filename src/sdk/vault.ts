/**
 * The tokens this client generated, in this process's memory only (never persisted, never
 * logged). Two things need them after `requestPermission` returns:
 * - a request answered `pending` without waiting: once a human approves, `getPermission` /
 *   `waitForPermission` return the token the request committed to;
 * - a request repeated with the caller's own `idempotencyKey`: the server answers with the first
 *   permission, whose hash is that of the first token, so the repeat must reuse that token.
 * Entries are dropped when the permission reaches a final state, after 24 h (the server's
 * idempotency window), or oldest-first beyond a fixed count.
 */
const MAX_AGE_MS = 24 * 60 * 60 * 1000;
const MAX_ENTRIES = 1000;

interface Entry {
  token: string;
  until: number;
}

class BoundedMap {
  private readonly entries = new Map<string, Entry>();

  get(key: string): string | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.until <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.token;
  }

  set(key: string, token: string): void {
    this.entries.delete(key);
    this.entries.set(key, { token, until: Date.now() + MAX_AGE_MS });
    while (this.entries.size > MAX_ENTRIES) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  delete(key: string): void {
    this.entries.delete(key);
  }
}

export class TokenVault {
  private readonly byPermission = new BoundedMap();
  private readonly byIdempotencyKey = new BoundedMap();

  rememberPermission(id: string, token: string): void {
    this.byPermission.set(id, token);
  }

  tokenFor(id: string): string | undefined {
    return this.byPermission.get(id);
  }

  forget(id: string): void {
    this.byPermission.delete(id);
  }

  rememberKey(key: string, token: string): void {
    this.byIdempotencyKey.set(key, token);
  }

  tokenForKey(key: string): string | undefined {
    return this.byIdempotencyKey.get(key);
  }
}
