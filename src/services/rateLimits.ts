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

const MINUTE = 60_000;
const HOUR = 3_600_000;

/**
 * Per-agent limits on permission requests (a minute and an hour window in Redis, one round
 * trip). Settable per agent; the environment gives the defaults. When Redis is unreachable the
 * limit fails open: refusing every agent would turn a cache outage into a full outage. The
 * outage is logged once when it starts and once when it ends, not once per request.
 */
export class RateLimiter {
  private readonly outage: OutageLog;

  constructor(
    private readonly counters: Counters,
    private readonly clock: Clock,
    private readonly defaults: { perMinute: number; perHour: number },
    logger: Logger,
  ) {
    this.outage = new OutageLog(logger, 'rate limiter', 'allowing requests without counting them');
  }

  async consume(agent: Agent): Promise<RateLimitState | null> {
    const perMinute = agent.rateLimitPerMin ?? this.defaults.perMinute;
    const perHour = agent.rateLimitPerHour ?? this.defaults.perHour;
    const now = this.clock.now().getTime();
    let minute: { count: number; resetAt: number };
    let hour: { count: number; resetAt: number };
    try {
      [minute, hour] = (await this.counters.hitWindows(`rl:${agent.id}`, [MINUTE, HOUR], now)) as [
        typeof minute,
        typeof hour,
      ];
    } catch (err) {
      this.outage.failed(err, { agentId: agent.id });
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
      throw new AppError('RATE_LIMITED', 'Too many permission requests; slow down', {
        retryAfter: Math.max(1, Math.ceil((resetAt - now) / 1000)),
        limit: state.limit,
        reset: Math.ceil(resetAt / 1000),
      });
    }
    return state;
  }
}
