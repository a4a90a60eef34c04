import { describe, expect, it } from 'vitest';
import { AppError } from '../../../src/core/errors.js';
import {
  assertStorable,
  findUnstorable,
  isStorableDate,
  MAX_JSON_DEPTH,
  textProblem,
} from '../../../src/core/storable.js';

/** `levels` objects inside one another, built without recursion. */
function nested(levels: number): unknown {
  let value: unknown = 'leaf';
  for (let i = 0; i < levels; i++) value = { a: value };
  return value;
}

describe('storable text', () => {
  it('refuses NUL and lone surrogates; accepts everything else, surrogate pairs included', () => {
    expect(textProblem('a\u0000b')).toMatch(/NUL/);
    for (const lone of ['\ud800', 'x\udbff', '\udc00y', '\udfff', '\ude00\ud83d']) {
      expect(textProblem(lone), JSON.stringify(lone)).toMatch(/lone surrogate/);
    }
    for (const fine of ['', 'plain', 'é', '😀', '\ud83d\ude00', '\u0001\u001f\u007f', '\ufffd', '\u202e']) {
      expect(textProblem(fine), JSON.stringify(fine)).toBeNull();
    }
  });

  it('finds the first bad value or key and names its path', () => {
    expect(findUnstorable({ a: [1, 'ok', { b: 'x\u0000' }] })).toEqual({
      path: ['a', 2, 'b'],
      problem: expect.stringMatching(/NUL/),
    });
    expect(findUnstorable({ ok: 1, ['k\ud800']: 1 })).toEqual({
      path: ['k\ufffd'],
      problem: expect.stringMatching(/^key .*lone surrogate/),
    });
    expect(findUnstorable({ a: [true, null, 1.5, { b: ['😀'] }] })).toBeNull();
    expect(findUnstorable('top\u0000')?.path).toEqual([]);
  });

  it(`bounds nesting at ${MAX_JSON_DEPTH} levels, and walks 100 000 levels without a stack overflow`, () => {
    expect(findUnstorable(nested(MAX_JSON_DEPTH))).toBeNull();
    expect(findUnstorable(nested(MAX_JSON_DEPTH + 1))?.problem).toMatch(/nested deeper than 32/);
    expect(findUnstorable(nested(100_000))?.path).toHaveLength(MAX_JSON_DEPTH);
  });

  it('assertStorable throws VALIDATION_ERROR with the path, prefixed by the field', () => {
    try {
      assertStorable({ x: ['\u0000'] }, 'context');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('VALIDATION_ERROR');
      expect((err as AppError).details).toMatchObject({ path: 'context.x.0' });
      expect((err as AppError).message).toContain('context.x.0');
    }
    expect(() => assertStorable(undefined, 'reason')).not.toThrow();
  });

  it('dates: years 0001–9999, which both JavaScript and Postgres hold', () => {
    expect(isStorableDate(new Date('0001-01-01T00:00:00.000Z'))).toBe(true);
    expect(isStorableDate(new Date('9999-12-31T23:59:59.999Z'))).toBe(true);
    expect(isStorableDate(new Date('-271821-04-20'))).toBe(false);
    expect(isStorableDate(new Date('+275760-09-13'))).toBe(false);
    expect(isStorableDate(new Date('0000-12-31T23:59:59.999Z'))).toBe(false);
    expect(isStorableDate(new Date('nonsense'))).toBe(false);
  });
});
