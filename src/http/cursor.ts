import { AppError } from '../core/errors.js';

/**
 * Opaque keyset cursors over (createdAt, id), shared by every list endpoint: stable under
 * concurrent inserts, and a tampered cursor is a clean 400, never a query error.
 */
export function encodeCursor(row: { createdAt: Date; id: string }): string {
  return Buffer.from(JSON.stringify([row.createdAt.toISOString(), row.id])).toString('base64url');
}

export function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [string, string];
    const date = new Date(createdAt);
    if (typeof id !== 'string' || Number.isNaN(date.getTime())) throw new Error('bad cursor');
    return { createdAt: date, id };
  } catch {
    throw new AppError('VALIDATION_ERROR', 'Invalid cursor');
  }
}

/** The cursor for the page after `page`: null when this page was not full (nothing follows). */
export function nextCursor(page: readonly { createdAt: Date; id: string }[], limit: number): string | null {
  const last = page[page.length - 1];
  return page.length === limit && last ? encodeCursor(last) : null;
}
