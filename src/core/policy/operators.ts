import { substringWork, type WorkBudget } from '../budget.js';
import { readNumber } from '../numbers.js';
import { compilePattern, matchPattern, uncheckedReason } from '../regex.js';
import { compileGlob, isGlob } from './glob.js';
import { invalidPolicyAt } from './invalid.js';
import type { ConditionOperators, Scalar } from './types.js';
import { not, someOf, undecidable, type Verdict } from './verdict.js';

/**
 * One operator applied to a field's value. `undefined` means the field is missing: only
 * `exists: false`, `not_equals` and `not_in` hold then; everything else fails.
 *
 * How a present value is read (the same rule for every operator, so its shape cannot dodge one):
 * - compared with a number (`less_than` …, or `equals`/`in` with a numeric operand), the value
 *   must be a number or a plain decimal string ("5000" is 5000); anything else ("5,000",
 *   "5000 USD", true, a list) is undecidable;
 * - compared as text (`equals`/`in` with a string operand, `starts_with`, `ends_with`,
 *   `contains` on a string, `matches`), strings are themselves and numbers and booleans their
 *   JSON text; a list or an object is undecidable (`contains` reads a list by its elements);
 * - JSON null is a value that equals only null and has no text or number: those operators fail.
 * Undecidable answers are settled on the strict side in evaluate.ts.
 */
export type ValuePredicate = (value: unknown, budget: WorkBudget) => Verdict;

const NOT_SINGLE = 'is a list or an object, not a single value';
const NOT_NUMBER = 'is not a number or a plain decimal string';

/**
 * The value as text for string operators: null when it has none (missing, or JSON null),
 * undecidable for a list or an object.
 */
function textOf(v: unknown): string | null | Verdict {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null || v === undefined) return null;
  return undecidable(NOT_SINGLE);
}

/**
 * Builds the predicates for one condition. `globs` enables glob operands in equality operators,
 * which the format allows for the `action` field only. `path` names the condition in errors.
 */
export function compileOperators(ops: ConditionOperators, globs: boolean, path: string): ValuePredicate[] {
  const predicates: ValuePredicate[] = [];
  for (const [name, operand] of Object.entries(ops)) {
    if (operand === undefined) continue;
    predicates.push(compileOperator(name, operand, globs, `${path}.${name}`));
  }
  return predicates;
}

function compileOperator(name: string, operand: unknown, globs: boolean, path: string): ValuePredicate {
  // Operands were validated by the schema, but stored policies may reach here without it, so a
  // wrong operand type is refused here too rather than producing a predicate that never holds.
  const bad = (expected: string) => invalidPolicyAt(path, `expected ${expected}`);
  const scalar = (): Scalar => {
    if (!isScalar(operand)) throw bad('a string, number, boolean or null');
    return operand;
  };
  const string = (): string => {
    if (typeof operand !== 'string') throw bad('a string');
    return operand;
  };
  const number = (): number => {
    if (typeof operand !== 'number' || !Number.isFinite(operand)) throw bad('a number');
    return operand;
  };
  const list = (): Scalar[] => {
    if (!Array.isArray(operand) || !operand.every(isScalar)) throw bad('a list of scalars');
    return operand;
  };

  switch (name) {
    case 'equals': {
      const eq = scalarMatcher(scalar(), globs, path);
      return (v, budget) => v !== undefined && eq(v, budget);
    }
    case 'notEquals': {
      const eq = scalarMatcher(scalar(), globs, path);
      return (v, budget) => v === undefined || not(eq(v, budget));
    }
    case 'startsWith': {
      const prefix = string();
      return textPredicate((text) => text.startsWith(prefix));
    }
    case 'endsWith': {
      const suffix = string();
      return textPredicate((text) => text.endsWith(suffix));
    }
    case 'contains': {
      const needle = scalar();
      const element = scalarMatcher(needle, false, path);
      const inText = needle === null ? null : String(needle);
      return (v, budget) => {
        if (Array.isArray(v)) return someOf(v, (item) => element(item, budget));
        const text = textOf(v);
        if (typeof text !== 'string') return text === null ? false : text;
        if (inText === null) return false;
        if (!budget.spend(substringWork(text.length, inText.length))) {
          return undecidable(uncheckedReason('over_budget'));
        }
        return text.includes(inText);
      };
    }
    case 'matches': {
      const re = compiledAt(compilePattern, string(), path, 'invalid regular expression');
      return (v, budget) => {
        const text = textOf(v);
        if (typeof text !== 'string') return text === null ? false : text;
        const matched = matchPattern(re, text, budget);
        return typeof matched === 'boolean' ? matched : undecidable(uncheckedReason(matched));
      };
    }
    case 'lessThan': {
      const n = number();
      return numberPredicate((x) => x < n);
    }
    case 'greaterThan': {
      const n = number();
      return numberPredicate((x) => x > n);
    }
    case 'lessThanOrEqual': {
      const n = number();
      return numberPredicate((x) => x <= n);
    }
    case 'greaterThanOrEqual': {
      const n = number();
      return numberPredicate((x) => x >= n);
    }
    case 'in': {
      const matchers = list().map((item) => scalarMatcher(item, globs, path));
      return (v, budget) => v !== undefined && someOf(matchers, (eq) => eq(v, budget));
    }
    case 'notIn': {
      const matchers = list().map((item) => scalarMatcher(item, globs, path));
      return (v, budget) => v === undefined || not(someOf(matchers, (eq) => eq(v, budget)));
    }
    case 'exists': {
      if (typeof operand !== 'boolean') throw bad('true or false');
      const wanted = operand;
      return (v) => (v !== undefined && v !== null) === wanted;
    }
    default:
      throw invalidPolicyAt(path, `unknown operator "${name}"`);
  }
}

/** A string operator: fails on a missing field or null, undecidable on a list or object. */
function textPredicate(test: (text: string) => boolean): ValuePredicate {
  return (v) => {
    if (v === undefined) return false;
    const text = textOf(v);
    if (typeof text !== 'string') return text === null ? false : text;
    return test(text);
  };
}

/** A numeric comparison: fails on a missing field or null, undecidable on anything not a number. */
function numberPredicate(test: (n: number) => boolean): ValuePredicate {
  return (v) => {
    if (v === undefined || v === null) return false;
    const n = readNumber(v);
    return n === null ? undecidable(NOT_NUMBER) : test(n);
  };
}

const isScalar = (value: unknown): value is Scalar =>
  value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';

/**
 * Equality with one operand, read as the header says: a numeric operand compares numbers, a
 * string operand text (a whole-value glob match when globs apply and the operand is one), null
 * only null. Callers handle a missing field.
 */
function scalarMatcher(expected: Scalar, globs: boolean, path: string): ValuePredicate {
  if (expected === null) return (v) => v === null;
  if (typeof expected === 'number') {
    return (v) => {
      if (v === null) return false;
      const n = readNumber(v);
      if (n !== null) return n === expected;
      return undecidable(typeof v === 'object' ? NOT_SINGLE : NOT_NUMBER);
    };
  }
  const wanted = String(expected);
  if (globs && typeof expected === 'string' && isGlob(expected)) {
    const glob = compiledAt(compileGlob, expected, path, 'glob not accepted');
    return (v, budget) => {
      const text = textOf(v);
      if (typeof text !== 'string') return text === null ? false : text;
      const matched = glob(text, budget);
      return typeof matched === 'boolean' ? matched : undecidable(uncheckedReason(matched));
    };
  }
  return (v) => {
    const text = textOf(v);
    if (typeof text !== 'string') return text === null ? false : text;
    return text === wanted;
  };
}

/** Compiles a glob or pattern operand; one over the bounds or invalid is INVALID_POLICY at `path`. */
function compiledAt<T>(compile: (source: string) => T, source: string, path: string, what: string): T {
  try {
    return compile(source);
  } catch (error) {
    throw invalidPolicyAt(path, `${what}: ${error instanceof Error ? error.message : String(error)}`);
  }
}
