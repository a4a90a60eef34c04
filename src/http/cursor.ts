import { z } from 'zod';
import { AppError } from '../core/errors.js';
import { isStorableDate, textProblem } from '../core/storable.js';

/** Ids are short (`perm_` + 22 characters); a longer one in a cursor was not made by us. */
const CURSOR_ID_MAX_CHARS = 100;

/**
 * Opaque keyset cursors over (createdAt, id), shared by every list endpoint: stable under
 * concurrent inserts, and a tampered cursor is a clean 400, never a query error: the date must
 * be one Postgres holds, the id a short storable string.
 */
export function encodeCursor(row: { createdAt: Date; id: string }): string {
  return Buffer.from(JSON.stringify([row.createdAt.toISOString(), row.id])).toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [
      unknown,
      unknown,
    ];
    if (typeof createdAt !== 'string' || typeof id !== 'string') throw new Error('bad cursor');
    const date = new Date(createdAt);
    if (!isStorableDate(date)) throw new Error('bad cursor date');
    if (id.length > CURSOR_ID_MAX_CHARS || textProblem(id) !== null) throw new Error('bad cursor id');
    return { createdAt: date, id };
  } catch {
    const message = 'must be the nextCursor of an earlier page';
    throw new AppError('VALIDATION_ERROR', `Invalid request: cursor: ${message}`, {
      path: 'cursor',
      issues: [{ path: 'cursor', message }],
    });
  }
}

/** The cursor for the page after `page`: null when this page was not full (nothing follows). */
export function nextCursor(page: readonly { createdAt: Date; id: string }[], limit: number): string | null {
  const last = page[page.length - 1];
  return page.length === limit && last ? encodeCursor(last) : null;
}

/** The query fields of every paged list: `limit` (1–200, 50 by default) and the opaque `cursor`. */
export const pageFields = {
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(300).optional(),
};
