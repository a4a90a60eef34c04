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
  if (!UNSTORABLE_CHAR.test(text)) return null;
  return text.includes('\u0000')
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
 * `maxDepth`, in a parsed JSON-like value; null when it is all storable. Iterative (only
 * containers go on the stack, strings are checked where they are met), so a value nested any
 * depth cannot overflow the stack here; it stops at the first problem.
 */
export function findUnstorable(value: unknown, maxDepth: number = MAX_JSON_DEPTH): UnstorableValue | null {
  const stack: Frame[] = [];
  const atRoot = visit(value, null, null, stack, maxDepth);
  if (atRoot !== null) return atRoot;
  for (let frame = stack.pop(); frame !== undefined; frame = stack.pop()) {
    const v = frame.value;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const found = visit(v[i], i, frame, stack, maxDepth);
        if (found !== null) return found;
      }
      continue;
    }
    const record = v as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const problem = textProblem(key);
      if (problem !== null) return { path: [...pathOf(frame), printable(key)], problem: `key ${problem}` };
      const found = visit(record[key], key, frame, stack, maxDepth);
      if (found !== null) return found;
    }
  }
  return null;
}

/** Checks a string where it is met; queues a container, unless it is one level too deep. */
function visit(
  value: unknown,
  key: string | number | null,
  parent: Frame | null,
  stack: Frame[],
  maxDepth: number,
): UnstorableValue | null {
  if (typeof value === 'string') {
    const problem = textProblem(value);
    return problem === null ? null : { path: childPath(parent, key), problem };
  }
  if (value === null || typeof value !== 'object') return null;
  const depth = (parent?.depth ?? 0) + 1;
  if (depth > maxDepth) {
    return { path: childPath(parent, key), problem: `must not be nested deeper than ${maxDepth} levels` };
  }
  stack.push({ value, depth, parent, key });
  return null;
}

const childPath = (parent: Frame | null, key: string | number | null): (string | number)[] =>
  parent === null || key === null ? [] : [...pathOf(parent), key];

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
