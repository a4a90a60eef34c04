/**
 * A deterministic bound on the main-thread work of one check. Agents choose both the patterns
 * and globs of a scope and the values checked against them, and each comparison costs the
 * product of the two sizes, so many keys × many values × long strings could hold the event loop
 * for seconds. Every comparison's worst-case cost is estimated from sizes alone — never timed,
 * so a busy machine cannot turn an accepted call into a refused one — and charged here first;
 * a comparison that would exceed the budget is not run and the caller fails closed.
 *
 * Units are roughly nanoseconds of the worst case measured on the reference 2-core machine
 * (README "Limits"); one budget is about 25 ms of main-thread time.
 */

/** The work one verify/use check, one policy evaluation or one narrowing may do. */
export const WORK_BUDGET = 25_000_000;

/**
 * A regex over a string: RE2 (re2js) steps every character through at most `programSize`
 * instructions, and in its worst case (a fresh DFA state per character) each character also
 * costs a fixed overhead worth about 100 instructions. Measured worst ≈ 50 units per
 * instruction × character.
 */
export const patternWork = (programSize: number, length: number): number =>
  50 * (programSize + 100) * (length + 1);

/** A glob against a string (or against another glob): the dynamic programme is pattern × value cells. */
export const globWork = (globLength: number, valueLength: number): number =>
  5 * (globLength + 4) * (valueLength + 4);

/**
 * A substring search (`contains`): V8's String#includes is not linear in the worst case — a
 * 1001-character needle that breaks a run of one letter took 28 ms over 32 000 characters.
 */
export const substringWork = (haystackLength: number, needleLength: number): number =>
  haystackLength * needleLength;

export class WorkBudget {
  private spent = 0;

  constructor(private readonly limit: number = WORK_BUDGET) {}

  /** Reserves `units`; false (and nothing reserved) when they do not fit, so the caller fails closed. */
  spend(units: number): boolean {
    if (!(units >= 0) || this.spent + units > this.limit) return false;
    this.spent += units;
    return true;
  }

  /** As spend, but throws WorkLimitExceeded, for deep helpers whose caller turns it into an error. */
  require(units: number): void {
    if (!this.spend(units)) throw new WorkLimitExceeded();
  }

  get used(): number {
    return this.spent;
  }
}

export class WorkLimitExceeded extends Error {
  constructor() {
    super('work limit exceeded');
    this.name = 'WorkLimitExceeded';
  }
}
