import { RE2JS } from 're2js';
import { describe, expect, it } from 'vitest';
import { WorkBudget } from '../../../src/core/budget.js';
import {
  compilePattern,
  estimateProgramSize,
  MAX_MATCHED_LENGTH,
  matchPattern,
  patternCost,
  patternError,
} from '../../../src/core/regex.js';

describe('pattern bounds', () => {
  it('estimates a program from its source without undercounting, so huge ones are refused uncompiled', () => {
    const samples = [
      '^Invoice #\\d+$',
      '^[a-z0-9._%+-]{1,64}@[a-z0-9.-]{1,255}\\.[a-z]{2,24}$',
      '.{1000}',
      '(?:(?:x{10}){10}){10}',
      '(a|b|c){100}',
      '(?i)hello\\s+world',
      '\\p{L}{500}',
      '[\\p{L}\\p{N}]{200}',
      '\\Qa.b{1000}\\E{3}',
      '(?P<name>ab)+',
      '(?<n>a){3}',
      'a{2,5}',
      'a{5,}',
      '[]a]{300}',
      '[^]a]{30}',
      '[[:alpha:]]{100}',
      '(?s:.{50}){10}',
      '\\x{263a}{100}',
      'x{,5}',
      '(a?){1000}',
      '(?:ab|cd|ef|gh){250}',
      '(?:a{2}|b{3}){200}',
      `${'.{1000}'.repeat(10)}[^a]`,
    ];
    for (const source of samples) {
      expect(estimateProgramSize(source), source).toBeGreaterThanOrEqual(RE2JS.compile(source).programSize());
    }
    // Within a small factor for ordinary patterns, so the exact limit decides them.
    expect(estimateProgramSize('^[a-z0-9._%+-]{1,64}@[a-z0-9.-]{1,255}\\.[a-z]{2,24}$')).toBe(688);
    expect(patternError(`${'.{1000}'.repeat(10)}[^a]`)).toContain('more than 4000 instructions');
  });

  it('accepts patterns up to 1000 characters and 1000 instructions', () => {
    expect(patternError('.{998}')).toBeNull();
    expect(patternError('.{999}')).toContain('compiles to 1001 instructions (at most 1000)');
    expect(patternError('(?:x)'.repeat(200))).toBeNull(); // 1000 characters, 202 instructions
    expect(patternError('x'.repeat(1001))).toContain('at most 1000 are accepted');
    expect(patternError('(unclosed')).toContain('missing closing )');
  });
});

describe('matchPattern', () => {
  it('matches within the budget, refuses values over the length bound and past the budget', () => {
    const re = compilePattern('^a+$');
    expect(matchPattern(re, 'aaa', new WorkBudget())).toBe(true);
    expect(matchPattern(re, 'aab', new WorkBudget())).toBe(false);
    expect(matchPattern(re, 'a'.repeat(MAX_MATCHED_LENGTH), new WorkBudget())).toBe(true);
    expect(matchPattern(re, 'a'.repeat(MAX_MATCHED_LENGTH + 1), new WorkBudget())).toBe('too_long');
    const small = new WorkBudget(1000);
    expect(matchPattern(re, 'a'.repeat(100), small)).toBe('over_budget');
    expect(small.used).toBe(0); // nothing reserved for a match that did not run
  });
});

describe('patternCost', () => {
  it('charges classes of many ranges more than their size: \\p{L} steps cost about 3× a letter', () => {
    const letters = compilePattern('a[ab]{200}[^ab]').programSize();
    expect(patternCost('a[ab]{200}[^ab]')).toBe(letters);
    expect(patternCost('^[a-z0-9._%+-]+@acme\\.com$')).toBe(
      compilePattern('^[a-z0-9._%+-]+@acme\\.com$').programSize(),
    );
    const unicode = compilePattern('\\p{L}{200}x').programSize();
    expect(patternCost('\\p{L}{200}x')).toBeGreaterThan(3 * unicode);
    // So the same value that fits the budget under a letter pattern does not under \p{L}.
    const value = 'a'.repeat(1500);
    expect(typeof matchPattern(compilePattern('a[ab]{200}[^ab]'), value, new WorkBudget())).toBe('boolean');
    expect(matchPattern(compilePattern('\\p{L}{200}x'), value, new WorkBudget())).toBe('over_budget');
  });
});

describe('re2js internals this module relies on (re2js is pinned; a new version must keep them)', () => {
  it('exposes the lazy DFA accounting, and a hostile match leaves at most 512 KiB of it cached', () => {
    const re = compilePattern('a[ab]{200}[^ab]');
    let seed = 7;
    const value = Array.from({ length: 4000 }, () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % 2 ? 'a' : 'b';
    }).join('');
    expect(matchPattern(re, value, new WorkBudget(Number.MAX_SAFE_INTEGER))).toBe(false);
    const dfa = re.re2().lazyDFA as { stateBudget?: unknown; memBudget?: unknown } | null;
    expect(typeof dfa?.stateBudget).toBe('number');
    expect(typeof dfa?.memBudget).toBe('number');
    expect(Number(dfa?.stateBudget) - Number(dfa?.memBudget)).toBeLessThanOrEqual(512 * 1024);
  });
});
