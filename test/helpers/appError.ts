import { expect } from 'vitest';
import { AppError } from '../../src/core/errors.js';

/** The AppError a promise rejects with; the test fails if it resolves or rejects with anything else. */
export async function appError<Details = unknown>(
  promise: Promise<unknown>,
): Promise<AppError & { details: Details }> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError & { details: Details };
  }
  throw new Error('expected an AppError rejection');
}
