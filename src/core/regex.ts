/**
 * Regexes come from policies (`matches`) and agents (`<f>_pattern` scopes), so they all run on
 * RE2 (re2js): matching is linear in the input and a hostile pattern such as `(a+)+$` cannot
 * stall the server. The price is RE2's syntax: no backreferences and no lookaround.
 * Compiled programs are memoised in a small bounded map: pure in effect (same input, same
 * answer), and it spares recompiling the same few patterns on every use/verify.
 */
import { RE2JS } from 're2js';

const MAX_CACHED = 256;
const cache = new Map<string, RE2JS>();

/** Compiles with RE2 syntax; throws re2js' syntax error for an invalid pattern. */
export function compilePattern(source: string): RE2JS {
  const hit = cache.get(source);
  if (hit) return hit;
  const compiled = RE2JS.compile(source);
  if (cache.size >= MAX_CACHED) {
    const oldest = cache.keys().next();
    if (!oldest.done) cache.delete(oldest.value);
  }
  cache.set(source, compiled);
  return compiled;
}

/** The error text for an invalid pattern, or null when it compiles. */
export function patternError(source: string): string | null {
  try {
    compilePattern(source);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : 'invalid regular expression';
  }
}

/** Found anywhere in the value, like JavaScript's RegExp#test: authors anchor with ^…$. */
export const patternMatches = (source: string, value: string): boolean => compilePattern(source).test(value);

/**
 * A `_pattern` value is one regex or, after narrowing two different ones (RE2 has no
 * intersection), a list that must all match. Returns null when the shape is wrong.
 */
export function patternSources(value: unknown): string[] | null {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string')) {
    return value as string[];
  }
  return null;
}
