/** One row of the doctor's table. `skip`: the check could not run here; the detail says why. */
export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';
export interface CheckResult {
  check: string;
  status: CheckStatus;
  detail: string;
}

/** How long one network check may take before it counts as failed. */
export const TIMEOUT_MS = 3000;

/** A URL fit to print: its password (and a token given as the user name) replaced by `***`. */
export function maskUrl(raw: string): string {
  try {
    const url = new URL(raw);
    if (url.password) url.password = '***';
    else if (url.username && url.protocol.startsWith('redis')) url.username = '***';
    // The query may carry credentials too (e.g. `?password=`): keep only the location.
    url.search = '';
    return url.toString().replace(/\/$/, '');
  } catch {
    return '<unparseable URL>';
  }
}

/**
 * The plain reason an operation failed: the system error code (ECONNREFUSED, ENOTFOUND…) when
 * there is one, otherwise the message. Looks through `cause` and AggregateError (fetch and pg
 * wrap the socket's error) so the reader sees what the network said, not a library's wording.
 */
export function reason(err: unknown): string {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (e && typeof e === 'object' && !seen.has(e)) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    const errors = (e as { errors?: unknown[] }).errors;
    if (Array.isArray(errors) && errors.length) e = errors[0];
    else e = (e as { cause?: unknown }).cause;
  }
  return (err as Error)?.message || String(err);
}

/** Runs `fn`, rejecting when it has not settled within `ms` (a hung peer fails the check). */
export async function withDeadline<T>(fn: () => Promise<T>, ms = TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
