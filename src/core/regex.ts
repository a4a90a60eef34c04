/**
 * Regexes come from policies (`matches`) and agents (`<f>_pattern` scopes), so they all run on
 * RE2 (re2js): no backtracking, so `(a+)+$` cannot stall the server. The price is RE2's syntax:
 * no backreferences and no lookaround.
 *
 * Linear is not cheap enough on its own: the cost of a match is about the compiled program's
 * size × the input's length, and a 74-character pattern of counted repetitions compiles to ten
 * thousand instructions. So every accepted pattern is bounded (source length and compiled
 * program size, refused at validation), every checked string is bounded, and each match is
 * charged to a WorkBudget before it runs (budget.ts). The bounds and the measurements behind
 * them are in README "Limits".
 *
 * Compiled programs are memoised in a small bounded map: pure in effect (same input, same
 * answer), and it spares recompiling the same few patterns on every use/verify.
 */
import { RE2JS } from 're2js';
import { patternWork, type WorkBudget } from './budget.js';

/** Longest accepted pattern source, in UTF-16 code units. */
export const MAX_PATTERN_LENGTH = 1000;
/** Most instructions an accepted pattern may compile to (`RE2JS#programSize`). */
export const MAX_PATTERN_PROGRAM = 1000;
/** Most instructions all the patterns of one scope may compile to together. */
export const MAX_SCOPE_PATTERN_PROGRAM = 4 * MAX_PATTERN_PROGRAM;
/** Longest string a pattern is matched against; a longer one is not checked (fail closed). */
export const MAX_MATCHED_LENGTH = 4096;

/**
 * Patterns whose estimated size is this far over the limit are refused without compiling:
 * compiling costs a few microseconds per instruction, and a 1000-character source could ask for
 * a hundred thousand of them. The estimate errs high, so the exact limit decides the rest.
 */
const PRECHECK_PROGRAM = 4 * MAX_PATTERN_PROGRAM;

const MAX_CACHED = 128;
/**
 * re2js grows a lazy DFA per compiled pattern, up to 8 MB each; hostile inputs can fill it.
 * Past this many (accounted) bytes the DFA's cache is dropped after the match, so the pattern
 * cache cannot be turned into gigabytes of heap.
 */
const DFA_KEEP_BYTES = 512 * 1024;

const cache = new Map<string, RE2JS>();
/** The matching cost of each compiled program (matchCost), computed once when it is compiled. */
const costs = new WeakMap<RE2JS, number>();

/**
 * The program size as the work estimate counts it: an instruction matching a character class
 * of many ranges costs more per character than one matching a letter (re2js searches the ranges),
 * measured about 3× for `\p{L}` (684 ranges) against a few ranges. Classes of up to 8 ranges
 * count once; a larger one adds half an instruction per doubling beyond that, so the work limit
 * stays a bound on main-thread time whatever the classes.
 */
function matchCost(compiled: RE2JS): number {
  // re2js' program (typed `any` by re2js): instructions whose runes, an array or a typed array,
  // hold the class ranges as pairs.
  const inst = (compiled.re2() as { prog?: { inst?: { runes?: { length?: unknown } }[] } }).prog?.inst;
  if (!Array.isArray(inst)) return compiled.programSize();
  let cost = 0;
  for (const i of inst) {
    const length = i.runes?.length;
    const ranges = typeof length === 'number' ? length / 2 : 0;
    cost += 1 + (ranges > 8 ? Math.log2(ranges / 8) / 2 : 0);
  }
  return Math.max(cost, compiled.programSize());
}

/**
 * An upper estimate of the program a pattern compiles to, read from the source without
 * compiling it: each literal, class or escape is one instruction, a group adds two, `|` one,
 * and a counted repetition `{n,m}` multiplies what it repeats by m (RE2 refuses nested counts
 * whose product passes 1000, so the estimate stays finite). Mirrors re2js' own size estimate.
 */
export function estimateProgramSize(source: string): number {
  interface Frame {
    done: number; // alternatives closed so far, with their `|`
    current: number; // the alternative being read
    last: number; // the last item, which a quantifier would repeat
    overhead: number; // 2 for a capturing group (its two CAPTURE instructions)
  }
  const stack: Frame[] = [{ done: 0, current: 0, last: 0, overhead: 2 }];
  let top = stack[0] as Frame;
  const atom = (size: number) => {
    top.current += size;
    top.last = size;
  };
  let i = 0;
  const n = source.length;
  /** Skips a `{…}` argument (as in `\p{Greek}` or `\x{263a}`) when one starts at i. */
  const skipBraces = () => {
    if (source[i] === '{') {
      const close = source.indexOf('}', i);
      i = close === -1 ? n : close + 1;
    }
  };
  while (i < n) {
    const c = source[i] as string;
    if (c === '\\') {
      const e = source[i + 1];
      i += 2;
      if (e === 'Q') {
        const end = source.indexOf('\\E', i);
        const literal = end === -1 ? n - i : end - i;
        top.current += literal;
        top.last = literal > 0 ? 1 : top.last;
        i = end === -1 ? n : end + 2;
        continue;
      }
      if (e === 'p' || e === 'P' || e === 'x') skipBraces();
      atom(1);
    } else if (c === '[') {
      i += 1;
      if (source[i] === '^') i += 1;
      if (source[i] === ']') i += 1; // a leading ] is literal
      while (i < n && source[i] !== ']') {
        if (source[i] === '\\') {
          const e = source[i + 1];
          i += 2;
          if (e === 'p' || e === 'P' || e === 'x') skipBraces();
        } else if (source[i] === '[' && source[i + 1] === ':') {
          const close = source.indexOf(':]', i + 2);
          i = close === -1 ? i + 1 : close + 2;
        } else {
          i += 1;
        }
      }
      i += 1;
      atom(1);
    } else if (c === '(') {
      i += 1;
      let overhead = 2;
      if (source[i] === '?') {
        // Flags alone, `(?i)`, open no group; `(?i:…)` and `(?:…)` open one that captures nothing.
        const flags = /^\?[a-zA-Z-]*([:)])/.exec(source.slice(i, i + 16));
        if (flags) i += flags[0].length;
        if (flags?.[1] === ')') continue;
        if (flags) overhead = 0;
        else if (source[i + 1] === 'P' || source[i + 1] === '<') {
          const close = source.indexOf('>', i); // a named group: (?P<name>…) or (?<name>…)
          i = close === -1 ? n : close + 1;
        }
      }
      top = { done: 0, current: 0, last: 0, overhead };
      stack.push(top);
    } else if (c === ')') {
      i += 1;
      if (stack.length > 1) {
        const group = stack.pop() as Frame;
        top = stack[stack.length - 1] as Frame;
        atom(group.done + group.current + group.overhead);
      }
    } else if (c === '|') {
      i += 1;
      top.done += top.current + 1;
      top.current = 0;
      top.last = 0;
    } else if (c === '*' || c === '+' || c === '?') {
      i += 1;
      if (source[i] === '?') i += 1; // lazy
      top.current += 2;
      top.last += 2;
    } else if (c === '{') {
      const repeat = /^\{(\d{1,4})(,(\d{0,4}))?\}\??/.exec(source.slice(i, i + 12));
      if (repeat) {
        i += repeat[0].length;
        const min = Number(repeat[1]);
        const max = repeat[2] === undefined ? min : repeat[3] === '' ? -1 : Number(repeat[3]);
        const grown = max === -1 ? top.last * Math.max(min, 1) + 1 : top.last * max + (max - min);
        top.current += grown - top.last;
        top.last = grown;
      } else {
        i += 1;
        atom(1);
      }
    } else {
      i += 1;
      atom(1);
    }
    if (top.current > 1e9) return Number.POSITIVE_INFINITY;
  }
  let size = 0;
  for (const frame of stack) size += frame.done + frame.current + 2;
  return size;
}

/** Why `source` is not an acceptable pattern (too long, too large, bad syntax), or null. */
function boundsProblem(source: string): string | null {
  if (source.length > MAX_PATTERN_LENGTH) {
    return `pattern is ${source.length} characters long; at most ${MAX_PATTERN_LENGTH} are accepted`;
  }
  const estimate = estimateProgramSize(source);
  if (estimate > PRECHECK_PROGRAM) {
    return `pattern is too large: it would compile to more than ${PRECHECK_PROGRAM} instructions (at most ${MAX_PATTERN_PROGRAM}); use fewer or smaller counted repetitions`;
  }
  return null;
}

/**
 * Compiles with RE2 syntax within the bounds; throws an Error whose message says what is wrong
 * (syntax, length or size) for a pattern that is not accepted.
 */
export function compilePattern(source: string): RE2JS {
  const hit = cache.get(source);
  if (hit) return hit;
  const problem = boundsProblem(source);
  if (problem !== null) throw new Error(problem);
  const compiled = RE2JS.compile(source);
  const size = compiled.programSize();
  if (size > MAX_PATTERN_PROGRAM) {
    throw new Error(
      `pattern is too large: it compiles to ${size} instructions (at most ${MAX_PATTERN_PROGRAM}); use fewer or smaller counted repetitions`,
    );
  }
  if (cache.size >= MAX_CACHED) {
    const oldest = cache.keys().next();
    if (!oldest.done) cache.delete(oldest.value);
  }
  cache.set(source, compiled);
  costs.set(compiled, matchCost(compiled));
  return compiled;
}

/** The error text for a pattern that is invalid or over the bounds, or null when it is accepted. */
export function patternError(source: string): string | null {
  try {
    compilePattern(source);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : 'invalid regular expression';
  }
}

/** The compiled program size of an accepted pattern (throws as compilePattern does). */
export const programSize = (source: string): number => compilePattern(source).programSize();

/** The size the work limit charges per character for an accepted pattern (matchCost). */
export function patternCost(source: string): number {
  const compiled = compilePattern(source);
  return costs.get(compiled) ?? matchCost(compiled);
}

/** A match that did not run: the value is too long, or the call's work budget is spent. */
export type Unchecked = 'too_long' | 'over_budget';

/**
 * Found anywhere in the value, like JavaScript's RegExp#test: authors anchor with ^…$. Charged
 * to `budget` first; a value over MAX_MATCHED_LENGTH or past the budget is not matched and the
 * caller must fail closed.
 */
export function matchPattern(compiled: RE2JS, value: string, budget: WorkBudget): boolean | Unchecked {
  if (value.length > MAX_MATCHED_LENGTH) return 'too_long';
  const cost = costs.get(compiled) ?? matchCost(compiled);
  if (!budget.spend(patternWork(cost, value.length))) return 'over_budget';
  const matched = compiled.test(value);
  trimDfa(compiled);
  return matched;
}

function trimDfa(compiled: RE2JS): void {
  // Typed (public) fields of re2js' DFA; the DFA is created lazily, so it may still be null.
  const dfa = compiled.re2().lazyDFA as ReturnType<RE2JS['re2']>['lazyDFA'] | null;
  if (dfa && dfa.stateBudget - dfa.memBudget > DFA_KEEP_BYTES) dfa.clearCache();
}

/** Why a value cannot be matched, in words for violations and policy reasons. */
export const uncheckedReason = (why: Unchecked): string =>
  why === 'too_long'
    ? `longer than ${MAX_MATCHED_LENGTH} characters, the most a pattern is matched against`
    : 'too much to match within the work limit of one call';

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
