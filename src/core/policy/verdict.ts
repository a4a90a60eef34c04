/**
 * Conditions answer in three values. Besides holds / fails, a condition may be undecidable from
 * the value the agent sent: `less_than: 1000` on "5,000", `ends_with: "@evil.com"` on a list,
 * `matches` on a string too long to match within the work limit. Answering "fails" there would
 * let the shape of a value dodge a deny policy; answering "holds" would let it satisfy an
 * auto-approve policy. So it is carried up as Undecidable, and evaluate.ts settles the decision
 * on the strict side (see there).
 */

export interface Undecidable {
  /** What could not be read, without the agent's value, e.g. "is not a number or a plain decimal string". */
  readonly undecidable: string;
}

export type Verdict = boolean | Undecidable;

export const undecidable = (reason: string): Undecidable => ({ undecidable: reason });

/** Some item's verdict holds: true wins over undecidable, which wins over false. Stops at the first true. */
export function someOf<T>(items: readonly T[], verdictOf: (item: T) => Verdict): Verdict {
  let open: Undecidable | null = null;
  for (const item of items) {
    const v = verdictOf(item);
    if (v === true) return true;
    if (v !== false) open ??= v;
  }
  return open ?? false;
}

export const not = (v: Verdict): Verdict => (typeof v === 'boolean' ? !v : v);
