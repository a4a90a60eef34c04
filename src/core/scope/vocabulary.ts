/**
 * The scope vocabulary (DESIGN §6): how a key name maps to a rule. Parsing is purely by name so
 * the same interpretation is shared by validation, enforcement, narrowing and display.
 */

export type ScopeRule =
  | { readonly kind: 'max_uses' }
  | { readonly kind: 'max'; readonly field: string }
  | { readonly kind: 'max_total'; readonly field: string }
  | { readonly kind: 'allowed'; readonly field: string }
  | { readonly kind: 'blocked'; readonly field: string }
  | { readonly kind: 'pattern'; readonly field: string }
  | { readonly kind: 'field_allowed'; readonly field: string }
  | { readonly kind: 'allowed_hours' }
  | { readonly kind: 'allowed_days' }
  | { readonly kind: 'timezone' }
  | { readonly kind: 'unknown' };

export type TimeKey = 'allowed_hours' | 'allowed_days' | 'timezone';
export const TIME_KEYS: readonly TimeKey[] = ['allowed_hours', 'allowed_days', 'timezone'];
export const isTimeKey = (key: string): key is TimeKey => (TIME_KEYS as readonly string[]).includes(key);

/** Tokens uses when max_uses is absent (DESIGN §4). */
export const DEFAULT_MAX_USES = 1;

const PREFIXES = [
  // Longest first: `max_total_amount` is a cumulative cap, not a per-use cap on `total_amount`.
  ['max_total_', 'max_total'],
  ['max_', 'max'],
  ['allowed_', 'allowed'],
  ['blocked_', 'blocked'],
] as const;

const SUFFIXES = [
  ['_pattern', 'pattern'],
  ['_allowed', 'field_allowed'],
] as const;

export function parseScopeKey(key: string): ScopeRule {
  // Exact names first: they would otherwise read as e.g. an allow-list of a field called `hours`.
  if (key === 'max_uses') return { kind: 'max_uses' };
  if (key === 'allowed_hours') return { kind: 'allowed_hours' };
  if (key === 'allowed_days') return { kind: 'allowed_days' };
  if (key === 'timezone') return { kind: 'timezone' };
  // Prefixes win over suffixes, so `allowed_x_pattern` is an allow-list of field `x_pattern`.
  for (const [prefix, kind] of PREFIXES) {
    if (key.startsWith(prefix) && key.length > prefix.length) {
      return { kind, field: key.slice(prefix.length) };
    }
  }
  for (const [suffix, kind] of SUFFIXES) {
    if (key.endsWith(suffix) && key.length > suffix.length) {
      return { kind, field: key.slice(0, -suffix.length) };
    }
  }
  return { kind: 'unknown' };
}

/**
 * Field names whose values a value rule (allowed/blocked/pattern/_allowed) also covers:
 * `allowed_recipients` must see `recipient` too, or an agent could put a forbidden address in the
 * singular field. English plurals are guessed loosely (ies→y, es, s) and plural forms are added
 * for singular keys; a guess that names no real field is harmless, because every extra field only
 * adds values to check — it can make a rule stricter, never looser.
 */
export function fieldAliases(field: string): string[] {
  const names = [field];
  if (field.endsWith('ies') && field.length > 3) names.push(`${field.slice(0, -3)}y`);
  if (field.endsWith('es') && field.length > 2) names.push(field.slice(0, -2));
  if (field.endsWith('s') && !field.endsWith('ss') && field.length > 1) names.push(field.slice(0, -1));
  if (field.endsWith('y') && field.length > 1) names.push(`${field.slice(0, -1)}ies`);
  names.push(`${field}s`, `${field}es`);
  return [...new Set(names)];
}
