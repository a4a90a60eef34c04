import type { Clock } from '../core/clock.js';
import { AppError } from '../core/errors.js';
import type { Counters } from '../store/counters.js';

const WINDOW_MS = 60_000;

/**
 * Passkey ceremonies (enrolment and sign-in options and verification) answer anyone: each one
 * stores a challenge and may cost a signature check. Counted per client address per minute, so one
 * address cannot fill the challenge table or burn CPU; a person needs a handful. While Redis is
 * down calls are not counted (as every other limit), and challenges still expire in minutes.
 */
export class CeremonyLimiter {
  constructor(
    private readonly counters: Counters,
    private readonly clock: Clock,
    readonly perMinute: number = 60,
  ) {}

  async assertAllowed(ip: string): Promise<void> {
    const now = this.clock.now().getTime();
    let hit: { count: number; resetAt: number };
    try {
      hit = await this.counters.hit(`webauth:ip:${ip}`, WINDOW_MS, now);
    } catch {
      return;
    }
    if (hit.count <= this.perMinute) return;
    throw new AppError('RATE_LIMITED', 'Too many passkey attempts from this address; wait a minute', {
      retryAfter: Math.max(1, Math.ceil((hit.resetAt - now) / 1000)),
      limit: this.perMinute,
      reset: Math.ceil(hit.resetAt / 1000),
    });
  }
}
