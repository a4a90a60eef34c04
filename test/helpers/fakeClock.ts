import type { Clock } from '../../src/core/clock.js';

/** Time that moves only when a test moves it. */
export class FakeClock implements Clock {
  private t: number;

  constructor(start: string) {
    this.t = Date.parse(start);
  }

  now(): Date {
    return new Date(this.t);
  }

  advance(ms: number): void {
    this.t += ms;
  }
}
