import type { Clock } from '../core/clock.js';
import { type AgentEnvironment, classifyKey, constantTimeEqualHex, sha256Hex } from '../core/credentials.js';
import { AppError } from '../core/errors.js';
import type { Agent } from '../store/agentRepository.js';
import { findKeyByHash, touchApiKey } from '../store/agentRepository.js';
import type { Counters } from '../store/counters.js';
import type { Db } from '../store/db.js';
import { findOperatorKeyByHash } from '../store/operatorKeyRepository.js';

export type Principal =
  | { kind: 'agent'; agent: Agent; keyId: string; environment: AgentEnvironment }
  | { kind: 'operator'; operatorKeyId: string; name: string };

interface CachedKey {
  principal: Principal;
  keyHash: string;
  expiresAt: Date | null;
  revoked: boolean;
  cachedUntil: number;
}

const CACHE_TTL_MS = 5000;
const CACHE_MAX = 10_000;
/** lastUsedAt is informational: writing it once a minute per key keeps writes off the hot path. */
const TOUCH_EVERY_MS = 60_000;
const AUTH_FAILURE_WINDOW_MS = 60_000;

/**
 * Turns a presented key into a principal. Keys are looked up by their SHA-256 (only hashes are
 * stored) and compared in constant time; lookups are cached for a few seconds and dropped at
 * once when an agent changes (revoke, rotate), on this instance and, through pub/sub, on others.
 */
export class AuthService {
  private readonly cache = new Map<string, CachedKey>();
  /**
   * Lookups in flight, by key hash. When a busy agent's cached key runs out, every call it has in
   * flight misses at once: they share one lookup instead of each sending its own. 32 calls did 32
   * lookups every 5 s, enough to grow the database pool by a dozen new connections (each forking
   * a Postgres backend and parsing its statements anew): 25–90 ms statements in the Postgres log,
   * a stall every few seconds that set the p99 of every path.
   */
  private readonly loading = new Map<string, Promise<CachedKey>>();
  /** Bumped when an agent changes: a lookup begun before the change is neither cached nor joined. */
  private generation = 0;
  private readonly lastTouched = new Map<string, number>();
  private readonly blockedUntil = new Map<string, number>();
  private readonly failureListeners: ((agentId: string | null) => void)[] = [];

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly counters: Counters,
    private readonly failuresPerMinute: number,
  ) {}

  /** Throws 429 when this client address has failed to authenticate too often this minute. */
  assertNotThrottled(ip: string): void {
    const until = this.blockedUntil.get(ip);
    if (until === undefined) return;
    const now = this.clock.now().getTime();
    if (until <= now) {
      this.blockedUntil.delete(ip);
      return;
    }
    // limit and reset become the X-RateLimit-* headers, as on the per-agent limiters' 429s.
    throw new AppError('RATE_LIMITED', 'Too many failed authentications from this address', {
      retryAfter: Math.ceil((until - now) / 1000),
      limit: this.failuresPerMinute,
      reset: Math.ceil(until / 1000),
    });
  }

  async authenticate(presented: string | undefined, ip: string): Promise<Principal> {
    this.assertNotThrottled(ip);
    if (!presented)
      throw new AppError(
        'MISSING_API_KEY',
        'An API key is required (Authorization: Bearer <key> or X-API-Key)',
      );
    try {
      return await this.resolve(presented);
    } catch (err) {
      if (err instanceof AppError) await this.recordFailure(ip, this.knownAgentId(presented));
      throw err;
    }
  }

  /** Told synchronously of every counted failure (metrics): the agent when the key was known. */
  onFailure(listener: (agentId: string | null) => void): void {
    this.failureListeners.push(listener);
  }

  invalidateAgent(agentId: string): void {
    for (const [hash, entry] of this.cache) {
      if (entry.principal.kind === 'agent' && entry.principal.agent.id === agentId) this.cache.delete(hash);
    }
    // Which agent a lookup in flight is for is not known yet: none of them may be kept or joined.
    this.generation += 1;
    this.loading.clear();
  }

  private async resolve(presented: string): Promise<Principal> {
    const shape = classifyKey(presented);
    if (!shape) throw invalidKey();
    const hash = sha256Hex(presented);
    const now = this.clock.now();
    let entry = this.cache.get(hash);
    if (!entry || entry.cachedUntil <= now.getTime()) entry = await this.load(hash, shape.kind);
    if (!constantTimeEqualHex(entry.keyHash, hash)) throw invalidKey();
    if (entry.revoked || (entry.expiresAt && entry.expiresAt <= now)) {
      throw new AppError('EXPIRED_API_KEY', 'This API key has been revoked or has expired');
    }
    if (entry.principal.kind === 'agent') this.touch(entry.principal.keyId, now);
    return entry.principal;
  }

  /** The key's entry from the database, through the lookup already in flight for it if any. */
  private load(hash: string, kind: 'agent' | 'operator'): Promise<CachedKey> {
    const inFlight = this.loading.get(hash);
    if (inFlight) return inFlight;
    const generation = this.generation;
    const lookup = (kind === 'agent' ? this.loadAgentKey(hash) : this.loadOperatorKey(hash))
      .then((entry) => {
        if (generation === this.generation) this.remember(hash, entry);
        return entry;
      })
      .finally(() => {
        if (this.loading.get(hash) === lookup) this.loading.delete(hash);
      });
    this.loading.set(hash, lookup);
    return lookup;
  }

  private async loadAgentKey(hash: string): Promise<CachedKey> {
    const found = await findKeyByHash(this.db, hash);
    if (!found) throw invalidKey();
    const { key, agent } = found;
    return {
      principal: { kind: 'agent', agent, keyId: key.id, environment: key.environment },
      keyHash: key.keyHash,
      expiresAt: key.expiresAt,
      revoked: key.revokedAt !== null || agent.status !== 'active',
      cachedUntil: this.clock.now().getTime() + CACHE_TTL_MS,
    };
  }

  private async loadOperatorKey(hash: string): Promise<CachedKey> {
    const found = await findOperatorKeyByHash(this.db, hash);
    if (!found) throw invalidKey();
    return {
      principal: { kind: 'operator', operatorKeyId: found.id, name: found.name },
      keyHash: found.keyHash,
      expiresAt: null,
      revoked: found.revokedAt !== null,
      cachedUntil: this.clock.now().getTime() + CACHE_TTL_MS,
    };
  }

  private remember(hash: string, entry: CachedKey): void {
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(hash, entry);
  }

  private touch(keyId: string, now: Date): void {
    const last = this.lastTouched.get(keyId) ?? 0;
    if (now.getTime() - last < TOUCH_EVERY_MS) return;
    this.lastTouched.set(keyId, now.getTime());
    // Best effort and off the request's critical path.
    touchApiKey(this.db, keyId, now).catch(() => undefined);
  }

  /** The agent a refused key belonged to (revoked or past its grace period), when known. */
  private knownAgentId(presented: string): string | null {
    const entry = this.cache.get(sha256Hex(presented));
    return entry?.principal.kind === 'agent' ? entry.principal.agent.id : null;
  }

  /** Counts the failure per address (throttled), per agent when known, and overall (metrics). */
  private async recordFailure(ip: string, agentId: string | null): Promise<void> {
    for (const listener of this.failureListeners) listener(agentId);
    const now = this.clock.now().getTime();
    const [byIp] = await Promise.all([
      this.counters.hit(`authfail:ip:${ip}`, AUTH_FAILURE_WINDOW_MS, now),
      this.counters.hit('authfail:all', AUTH_FAILURE_WINDOW_MS, now),
      ...(agentId ? [this.counters.hit(`authfail:agent:${agentId}`, AUTH_FAILURE_WINDOW_MS, now)] : []),
    ]).catch(() => [null]);
    if (byIp && byIp.count >= this.failuresPerMinute) this.blockedUntil.set(ip, byIp.resetAt);
  }
}

const invalidKey = () => new AppError('INVALID_API_KEY', 'Invalid API key');
