/**
 * Reading actionDetails for the rules: which values a field holds, and how big a value is.
 * Every ambiguity resolves to the stricter reading, because these values are chosen by the agent
 * the scope is meant to restrict.
 */
import { lenientNumber, readNumber } from '../numbers.js';
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

/** How a value counts against `max_<f>` (per use) and `max_total_<f>` (added to the total). */
export type CapReading =
  | { readonly perUse: number; readonly total: number; readonly negative: boolean }
  | { readonly problem: string };

/**
 * The one reading of a value under a numeric cap (`max_<f>`, `max_total_<f>`):
 * 1. a finite number is its value;
 * 2. a string must be a plain decimal ("1000", "-2.5") and is its value; "1,000", "1000 USD",
 *    "1e3", "0x10" are refused rather than guessed at;
 * 3. a list counts its entries (`max_recipients: 3`), and each entry that is a number, or text
 *    that begins like one ("5,000", "5000 USD", "1e9": lenientNumber), is also read as that
 *    value — per use the larger of the count and the largest entry, toward a total the larger of
 *    the count and the sum — so `[1000]` or `["5,000"]` cannot pass `max_amount: 50` as "one
 *    entry", while `["bob2@example.com"]` is one recipient; an entry that is not a string or a
 *    finite number (object, nested list, boolean, null) is refused;
 * 4. anything else (object, boolean, non-finite number) is refused.
 * A string's length no longer counts: it was how "1,000" passed `max_amount: 50`.
 */
export function readCapped(value: unknown): CapReading {
  const n = readNumber(value);
  if (n !== null) return { perUse: n, total: n, negative: n < 0 };
  if (typeof value === 'string') return { problem: 'must be a number or a plain decimal string' };
  if (!Array.isArray(value)) {
    return { problem: 'must be a number, a plain decimal string or a list' };
  }
  let largest = Number.NEGATIVE_INFINITY;
  let sum = 0;
  let negative = false;
  for (let i = 0; i < value.length; i += 1) {
    const entry = value[i];
    const read = readNumber(entry) ?? (typeof entry === 'string' ? lenientNumber(entry) : null);
    if (read !== null) {
      largest = Math.max(largest, read);
      sum += read;
      negative ||= read < 0;
    } else if (typeof entry !== 'string') {
      return { problem: `has an entry (index ${i}) that is not a string or a finite number` };
    }
  }
  return { perUse: Math.max(value.length, largest), total: Math.max(value.length, sum), negative };
}
