/**
 * Scopes and actionDetails arrive as parsed JSON from agents, so a key may be literally
 * `__proto__` or `constructor`. Reads go through Object.hasOwn so inherited members are never
 * mistaken for values, and objects are built with Object.fromEntries (which defines own
 * properties) so such a key can never replace a prototype.
 */

export const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

export function getOwn(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

export const hasOwn = (obj: Record<string, unknown>, key: string): boolean => Object.hasOwn(obj, key);

/** Structural equality for JSON values (used to tell whether an unenforced key was changed). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => jsonEqual(item, b[i]));
  }
  if (isRecord(a) && isRecord(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    return ka.every((k) => hasOwn(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}
