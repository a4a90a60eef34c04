/**
 * What the database can hold, checked once where input enters (every HTTP route, the policy
 * parser that POLICIES_FILE also goes through, the decide entry chat uses) so that no input
 * reaches Postgres only to be refused there with a 500:
 * - Postgres `text` and `jsonb` refuse the NUL character (U+0000);
 * - a lone UTF-16 surrogate (`"\ud800"` in JSON) is not Unicode and has no UTF-8 encoding;
 * - JSON nesting is bounded: JSON.stringify, zod and the driver recurse, and ten thousand levels
 *   (well under the 1 MiB body limit) overflow the stack;
 * - integers fit their 32-bit columns, dates the range both JavaScript and Postgres can hold.
 */
import { AppError } from './errors.js';

/** Containers (objects, arrays) inside one another, the outermost counting as 1. */
export const MAX_JSON_DEPTH = 32;
/** The largest value of a Postgres `integer` column (max_uses, rate limits, ttl). */
export const MAX_INT32 = 2_147_483_647;
/** Dates are accepted between these (ISO years 0001–9999): every one round-trips through Postgres. */
export const EARLIEST_DATE = new Date('0001-01-01T00:00:00.000Z');
export const LATEST_DATE = new Date('9999-12-31T23:59:59.999Z');

// With the `u` flag a surrogate class matches only unpaired halves: pairs are one code point.
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is the character looked for.
const UNSTORABLE_CHAR = /[\u0000\ud800-\udfff]/u;

/** Why this string cannot be stored, or null when it can. */
export function textProblem(text: string): string | null {
  const match = UNSTORABLE_CHAR.exec(text);
  if (match === null) return null;
  return match[0] === '\u0000'
    ? 'must not contain the NUL character (\\u0000)'
    : 'must be valid Unicode (it contains a lone surrogate such as \\ud800)';
}

/** The string with what cannot be stored replaced by U+FFFD, for naming a bad key in a message. */
export const printable = (text: string): string =>
  // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL is the character replaced.
  text.replace(/[\u0000\ud800-\udfff]/gu, '\ufffd');

export interface UnstorableValue {
  /** Keys and indexes from the root; a bad key is named by its own path. */
  path: (string | number)[];
  problem: string;
}

interface Frame {
  value: unknown;
  depth: number;
  parent: Frame | null;
  key: string | number | null;
}

function pathOf(frame: Frame): (string | number)[] {
  const path: (string | number)[] = [];
  for (let f: Frame | null = frame; f !== null && f.key !== null; f = f.parent) path.push(f.key);
  return path.reverse();
}

/**
 * The first string (value or object key) that cannot be stored, or container nested deeper than
 * `maxDepth`, in a parsed JSON-like value; null when it is all storable. Iterative, so a value
 * nested any depth cannot overflow the stack here; it stops at the first problem.
 */
export function findUnstorable(value: unknown, maxDepth: number = MAX_JSON_DEPTH): UnstorableValue | null {
  const stack: Frame[] = [{ value, depth: 0, parent: null, key: null }];
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    const v = frame.value;
    if (typeof v === 'string') {
      const problem = textProblem(v);
      if (problem !== null) return { path: pathOf(frame), problem };
      continue;
    }
    if (v === null || typeof v !== 'object') continue;
    const depth = frame.depth + 1;
    if (depth > maxDepth) {
      return { path: pathOf(frame), problem: `must not be nested deeper than ${maxDepth} levels` };
    }
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push({ value: v[i], depth, parent: frame, key: i });
      continue;
    }
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i] as string;
      const problem = textProblem(key);
      if (problem !== null) {
        return { path: [...pathOf(frame), printable(key)], problem: `key ${problem}` };
      }
      stack.push({ value: (v as Record<string, unknown>)[key], depth, parent: frame, key });
    }
  }
  return null;
}

/** `context.items[2].name`: how request paths read in messages (the same as zod issue paths joined). */
export function formatValuePath(path: readonly (string | number)[]): string {
  return path.map(String).join('.');
}

/**
 * Throws VALIDATION_ERROR naming the path when `value` holds something that cannot be stored;
 * `field` prefixes the path (e.g. 'reason'), the details carry `{path, issues}` like zod errors.
 */
export function assertStorable(value: unknown, field?: string): void {
  const found = findUnstorable(value);
  if (found === null) return;
  const path = formatValuePath(field === undefined ? found.path : [field, ...found.path]);
  const where = path === '' ? '' : `${path}: `;
  throw new AppError('VALIDATION_ERROR', `Invalid request: ${where}${found.problem}`, {
    path,
    issues: [{ path, message: found.problem }],
  });
}

/** A date both JavaScript and Postgres hold exactly (years 0001–9999). */
export const isStorableDate = (date: Date): boolean => {
  const time = date.getTime();
  return time >= EARLIEST_DATE.getTime() && time <= LATEST_DATE.getTime();
};
