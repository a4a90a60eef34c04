import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/core/errors.js';
import { decodeCursor, encodeCursor } from '../../src/http/cursor.js';

const raw = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function refused(cursor: string): AppError {
  try {
    decodeCursor(cursor);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error(`cursor accepted: ${cursor}`);
}

describe('list cursors', () => {
  it('round-trips what the server issued', () => {
    const row = { createdAt: new Date('2025-03-03T12:00:00.123Z'), id: 'perm_abc' };
    expect(decodeCursor(encodeCursor(row))).toEqual(row);
  });

  it('a tampered cursor is VALIDATION_ERROR naming cursor, never a value Postgres would refuse', () => {
    for (const cursor of [
      raw(['-271821-04-20T00:00:00.000Z', 'perm_x']), // a JavaScript date before Postgres' range
      raw(['+275760-09-13T00:00:00.000Z', 'perm_x']),
      raw(['2025-01-01T00:00:00.000Z', 'perm_\u0000']),
      raw(['2025-01-01T00:00:00.000Z', '\ud800']),
      raw(['2025-01-01T00:00:00.000Z', 'p'.repeat(101)]),
      raw([1735689600000, 'perm_x']),
      raw(['2025-01-01T00:00:00.000Z', 7]),
      raw({}),
      'not-base64-json',
    ]) {
      const err = refused(cursor);
      expect(err.code).toBe('VALIDATION_ERROR');
      expect(err.details).toMatchObject({ path: 'cursor' });
    }
  });
});
