import { RE2JS } from 're2js';

/**
 * Every pattern from a policy runs on RE2 (re2js): matching is linear in the input, so a hostile
 * pattern such as `(a+)+$` cannot stall the server the way it would with JavaScript's backtracking
 * RegExp. The price is RE2's syntax: no backreferences and no lookaround.
 */
export const compileRegex = (pattern: string): RE2JS => RE2JS.compile(pattern);

/** The compile error of `pattern`, or undefined when it is a valid RE2 pattern. */
export function regexProblem(pattern: string): string | undefined {
  try {
    compileRegex(pattern);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
