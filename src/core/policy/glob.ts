import { RE2JS } from 're2js';
import { WorkBudget } from '../budget.js';
import { compilePattern, matchPattern, type Unchecked } from '../regex.js';

/**
 * Action globs: `*` matches any run of characters (dots included, so `email.*` covers
 * `email.send` and `email.send.bulk`), `?` exactly one character; everything else is literal.
 * There is no escape for a literal `*` or `?`: action names do not contain them.
 */
export const isGlob = (value: string): boolean => value.includes('*') || value.includes('?');

/** The RE2 source matching exactly the values the glob describes (anchor with testExact). */
export function globToRegexSource(glob: string): string {
  let source = '';
  let literal = '';
  const flush = () => {
    if (literal !== '') source += RE2JS.quote(literal);
    literal = '';
  };
  for (const char of glob) {
    if (char === '*' || char === '?') {
      flush();
      source += char === '*' ? '.*' : '.';
    } else {
      literal += char;
    }
  }
  flush();
  return source;
}

/**
 * A whole-value matcher for the glob, compiled once within the pattern bounds (throws when the
 * glob is over them). Each match is charged to the caller's work budget like any pattern.
 */
export function compileGlob(glob: string): (value: string, budget?: WorkBudget) => boolean | Unchecked {
  // (?s) so `*` also spans newlines: a value cannot dodge a glob by containing one. ^…$ are the
  // ends of the text (RE2 without (?m)), so the glob matches whole values.
  const re = compilePattern(`(?s)^(?:${globToRegexSource(glob)})$`);
  return (value, budget = new WorkBudget()) => matchPattern(re, value, budget);
}
