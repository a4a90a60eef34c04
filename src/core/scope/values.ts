/**
 * Reading actionDetails for the rules: which values a field holds, and how big a value is.
 * Every ambiguity resolves to the stricter reading, because these values are chosen by the agent
 * the scope is meant to restrict.
 */
import { getOwn } from './object.js';

export interface FieldValue {
  /** The actionDetails key the value came from (e.g. `recipient` for `allowed_recipients`). */
  readonly field: string;
  readonly value: unknown;
}

const MAX_DEPTH = 8;

function flatten(field: string, value: unknown, depth: number, out: FieldValue[]): void {
  if (Array.isArray(value) && depth < MAX_DEPTH) {
    for (const item of value) flatten(field, item, depth + 1, out);
  } else {
    out.push({ field, value }); // too deep or not an array: judged as a value (and fails if not scalar)
  }
}

/**
 * All values of the named fields, arrays taken element by element. A missing field or a JSON
 * null contributes nothing: rules judge the values supplied, and an absent value cannot break
 * a cap, an allow-list or a pattern.
 */
export function collectValues(details: Record<string, unknown>, fields: readonly string[]): FieldValue[] {
  const out: FieldValue[] = [];
  for (const field of fields) {
    const value = getOwn(details, field);
    if (value === undefined || value === null) continue;
    flatten(field, value, 0, out);
  }
  return out;
}

/** Strings, finite numbers and booleans compare as text; anything else cannot be listed or matched. */
export function scalarText(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean')
    return String(value);
  return null;
}

/** Length in code points, so an emoji counts once as a reader would count it. */
function codePointLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * The sizes of one value for a `max_` cap: a number is itself, a string or array its length.
 * A numeric string ("1000000") is ALSO read as its number, so an agent cannot slip a large amount
 * past `max_amount` by quoting it (its length, 7, would pass). The stricter reading wins, which may
 * refuse a text field that is nothing but a large number — acceptable for a security cap.
 * Returns null when the value cannot be measured (object, boolean, non-finite number).
 */
export function measure(value: unknown): number[] | null {
  if (typeof value === 'number') return Number.isFinite(value) ? [value] : null;
  if (Array.isArray(value)) return [value.length];
  if (typeof value === 'string') {
    const sizes = [codePointLength(value)];
    const trimmed = value.trim();
    if (trimmed !== '') {
      const n = Number(trimmed); // accepts "1e6", "0x10", "Infinity" — all ways a tool might read it
      if (!Number.isNaN(n)) sizes.push(n);
    }
    return sizes;
  }
  return null;
}
