import type { Clock } from '../core/clock.js';
import { AppError } from '../core/errors.js';
import { type Logger, OutageLog } from '../logger.js';
import type { Agent } from '../store/agentRepository.js';
import type { Counters } from '../store/counters.js';

export interface RateLimitState {
  limit: number;
  remaining: number;
  /** Epoch seconds when the tightest window resets. */
  reset: number;
}

export interface Limits {
  perMinute: number;
  perHour: number;
}

/** What one limiter counts: its own counters, its defaults, and an agent's own limits if set. */
export interface RateLimitKind {
  /** Counter name prefix in Redis: 'rl' for permission requests, 'tl' for token calls. */
  readonly counter: string;
  /** For the 429 message: 'permission requests'. */
  readonly what: string;
  readonly defaults: Limits;
  /** The agent's own limits, null where the default applies. */
  readonly override: (agent: Agent) => { perMinute: number | null; perHour: number | null };
}

const MINUTE = 60_000;
const HOUR = 3_600_000;

/** Permission requests: RATE_LIMIT_PER_MIN/_PER_HOUR, per agent `rateLimitPerMin/PerHour`. */
export const requestLimits = (defaults: Limits): RateLimitKind => ({
  counter: 'rl',
  what: 'permission requests',
  defaults,
  override: (agent) => ({ perMinute: agent.rateLimitPerMin, perHour: agent.rateLimitPerHour }),
});

/**
 * Token calls — verify and use together: both run the same scope check on the same token, so
 * separate limits would only let an agent alternate between them for twice the work. An honest
 * agent verifies then uses, so the defaults (TOKEN_RATE_LIMIT_PER_MIN/_PER_HOUR) are set at
 * several times the request limits. Per agent `tokenRateLimitPerMin/PerHour`.
 */
export const tokenCallLimits = (defaults: Limits): RateLimitKind => ({
  counter: 'tl',
  what: 'verify and use calls',
  defaults,
  override: (agent) => ({ perMinute: agent.tokenRateLimitPerMin, perHour: agent.tokenRateLimitPerHour }),
});

/**
 * Per-agent limits (a minute and an hour window in Redis, one round trip). Settable per agent;
 * the environment gives the defaults. When Redis is unreachable the limit fails open: refusing
 * every agent would turn a cache outage into a full outage. The outage is logged once when it
 * starts and once when it ends, not once per call.
 */
export const rateLimiterOutage = (logger: Logger): OutageLog =>
  new OutageLog(logger, 'rate limiter', 'allowing calls without counting them');

export class RateLimiter {
  private readonly outage: OutageLog;

  /** Limiters sharing one Redis may share `outage`, so one outage is one pair of log lines. */
  constructor(
    private readonly counters: Counters,
    private readonly clock: Clock,
    private readonly kind: RateLimitKind,
    logger: Logger,
    outage?: OutageLog,
  ) {
    this.outage = outage ?? rateLimiterOutage(logger);
  }

  async consume(agent: Agent): Promise<RateLimitState | null> {
    const own = this.kind.override(agent);
    const perMinute = own.perMinute ?? this.kind.defaults.perMinute;
    const perHour = own.perHour ?? this.kind.defaults.perHour;
    const now = this.clock.now().getTime();
    let minute: { count: number; resetAt: number };
    let hour: { count: number; resetAt: number };
    try {
      [minute, hour] = (await this.counters.hitWindows(
        `${this.kind.counter}:${agent.id}`,
        [MINUTE, HOUR],
        now,
      )) as [typeof minute, typeof hour];
    } catch (err) {
      this.outage.failed(err, { agentId: agent.id, limit: this.kind.counter });
      return null;
    }
    this.outage.succeeded();
    const minuteLeft = perMinute - minute.count;
    const hourLeft = perHour - hour.count;
    const tight =
      minuteLeft <= hourLeft
        ? { limit: perMinute, left: minuteLeft, reset: minute.resetAt }
        : { limit: perHour, left: hourLeft, reset: hour.resetAt };
    const state = {
      limit: tight.limit,
      remaining: Math.max(0, tight.left),
      reset: Math.ceil(tight.reset / 1000),
    };
    if (minuteLeft < 0 || hourLeft < 0) {
      const resetAt = minuteLeft < 0 ? minute.resetAt : hour.resetAt;
      throw new AppError('RATE_LIMITED', `Too many ${this.kind.what}; slow down`, {
        retryAfter: Math.max(1, Math.ceil((resetAt - now) / 1000)),
        limit: state.limit,
        reset: Math.ceil(resetAt / 1000),
      });
    }
    return state;
  }
}

/** The X-RateLimit-* headers for an answer counted by a limiter (none when Redis was down). */
export const rateLimitHeaders = (state: RateLimitState | null): Record<string, string> =>
  state
    ? {
        'x-ratelimit-limit': String(state.limit),
        'x-ratelimit-remaining': String(state.remaining),
        'x-ratelimit-reset': String(state.reset),
      }
    : {};
