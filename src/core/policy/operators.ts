import { compilePattern } from '../regex.js';
import { compileGlob, isGlob } from './glob.js';
import { invalidPolicyAt } from './invalid.js';
import type { ConditionOperators, Scalar } from './types.js';

/**
 * One operator applied to a field's value. `undefined` means the field is missing: only
 * `exists: false`, `not_equals` and `not_in` hold then; everything else fails closed.
 */
export type ValuePredicate = (value: unknown) => boolean;

type ScalarMatcher = (value: unknown) => boolean;

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
      const eq = scalarMatcher(scalar(), globs);
      return (v) => v !== undefined && eq(v);
    }
    case 'notEquals': {
      const eq = scalarMatcher(scalar(), globs);
      return (v) => v === undefined || !eq(v);
    }
    case 'startsWith': {
      const prefix = string();
      return (v) => typeof v === 'string' && v.startsWith(prefix);
    }
    case 'endsWith': {
      const suffix = string();
      return (v) => typeof v === 'string' && v.endsWith(suffix);
    }
    case 'contains': {
      const needle = scalar();
      return (v) => {
        if (typeof v === 'string') return typeof needle === 'string' && v.includes(needle);
        return Array.isArray(v) && v.some((element) => element === needle);
      };
    }
    case 'matches': {
      const re = compileAt(string(), path);
      return (v) => typeof v === 'string' && re.test(v);
    }
    // Numbers on both sides, no coercion: "100" is not less than 1000, it is not a number at all.
    case 'lessThan': {
      const n = number();
      return (v) => typeof v === 'number' && v < n;
    }
    case 'greaterThan': {
      const n = number();
      return (v) => typeof v === 'number' && v > n;
    }
    case 'lessThanOrEqual': {
      const n = number();
      return (v) => typeof v === 'number' && v <= n;
    }
    case 'greaterThanOrEqual': {
      const n = number();
      return (v) => typeof v === 'number' && v >= n;
    }
    case 'in': {
      const matchers = list().map((item) => scalarMatcher(item, globs));
      return (v) => v !== undefined && matchers.some((eq) => eq(v));
    }
    case 'notIn': {
      const matchers = list().map((item) => scalarMatcher(item, globs));
      return (v) => v === undefined || !matchers.some((eq) => eq(v));
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

const isScalar = (value: unknown): value is Scalar =>
  value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';

/** Strict equality, or a whole-value glob match when globs apply and the operand is one. */
function scalarMatcher(expected: Scalar, globs: boolean): ScalarMatcher {
  if (globs && typeof expected === 'string' && isGlob(expected)) {
    const glob = compileGlob(expected);
    return (v) => typeof v === 'string' && glob(v);
  }
  return (v) => v === expected;
}

function compileAt(pattern: string, path: string) {
  try {
    return compilePattern(pattern);
  } catch (error) {
    throw invalidPolicyAt(
      path,
      `invalid regular expression: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}
