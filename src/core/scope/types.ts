/**
 * A scope is a flat JSON object. Keys follow the vocabulary in vocabulary.ts; any other key is
 * kept and shown but never enforced, so the type stays open.
 */
export type Scope = Record<string, unknown>;

/** One failed rule. `message` never echoes the agent's values; they go in `actual` for the caller to decide. */
export interface ScopeViolation {
  /** The scope key that failed, e.g. 'max_amount'. */
  readonly key: string;
  /** The actionDetails field the rule looked at ('time' for time-window rules). */
  readonly field: string;
  readonly message: string;
  readonly limit?: unknown;
  readonly actual?: unknown;
}

export interface CheckOptions {
  /** The moment of use; core never reads the clock itself. */
  readonly now: Date;
  /** Sums of earlier uses keyed by field name (not by scope key), for `max_total_<f>`. */
  readonly totals?: Readonly<Record<string, number>>;
}

/** One human-readable row of an approval card. */
export interface ScopeRow {
  readonly key: string;
  readonly label: string;
  readonly value: string;
}
