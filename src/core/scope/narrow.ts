/**
 * narrowScope: the most restrictive combination of two scopes, e.g. an agent's requested scope
 * and a policy's scope_template. Every enforced key of either side stays at least as strict in
 * the result (with one documented exception for time windows in different time zones).
 */

import { WorkBudget, WorkLimitExceeded } from '../budget.js';
import { AppError } from '../errors.js';
import { patternSources } from '../regex.js';
import { intersectAllowLists, unionLists } from './lists.js';
import { getOwn, hasOwn } from './object.js';
import {
  canonicalTimeZone,
  DEFAULT_TIMEZONE,
  intersectIntervals,
  intervalsEqual,
  intervalsToHoursValue,
  parseDay,
  parseDays,
  parseHours,
} from './time.js';
import type { Scope } from './types.js';
import { validateScope } from './validate.js';
import { isTimeKey, parseScopeKey, type ScopeRule } from './vocabulary.js';

/** Time zone a scope's windows are read in. Assumes a validated scope. */
export const effectiveTimeZone = (scope: Scope): string =>
  canonicalTimeZone(getOwn(scope, 'timezone') ?? DEFAULT_TIMEZONE) ?? DEFAULT_TIMEZONE;

export const hasTimeRestriction = (scope: Scope): boolean =>
  hasOwn(scope, 'allowed_hours') || hasOwn(scope, 'allowed_days');

function pick(scope: Scope, keys: readonly string[]): [string, unknown][] {
  return keys.filter((k) => hasOwn(scope, k)).map((k) => [k, scope[k]]);
}

function narrowHours(a: unknown, b: unknown): unknown {
  const sa = parseHours(a) ?? [];
  const sb = parseHours(b) ?? [];
  const both = intersectIntervals(sa, sb);
  // Keep an input's own spelling ({start: 9, end: 17}) when it already is the intersection.
  if (intervalsEqual(both, sa)) return a;
  if (intervalsEqual(both, sb)) return b;
  // An intersection can fall apart into pieces (22–06 ∩ 05–23): written as a list of windows.
  return intervalsToHoursValue(both);
}

function narrowDays(a: unknown, b: unknown): unknown {
  const db = parseDays(b) ?? new Set<number>();
  // Base's spelling, filtered to the days both allow.
  return (Array.isArray(a) ? a : []).filter((d) => {
    const day = parseDay(d);
    return day !== null && db.has(day);
  });
}

/**
 * `allowed_hours`, `allowed_days` and `timezone` only mean something together, so they merge as
 * a group. Same zone: intersect hours and days. Only one side restricted: take that side's
 * group (a lone `timezone` restricts nothing). Both restricted in different zones: the two
 * windows cannot be intersected exactly (offsets move with DST), so the narrower side's group is
 * taken as is — the one case where the result is not guaranteed inside `base`; assertNarrowing
 * refuses such a zone change outright.
 */
function narrowTimeGroup(base: Scope, narrower: Scope): [string, unknown][] {
  const restrictedA = hasTimeRestriction(base);
  const restrictedB = hasTimeRestriction(narrower);
  if (!restrictedA && !restrictedB) {
    return pick(hasOwn(narrower, 'timezone') ? narrower : base, ['timezone']);
  }
  if (!restrictedB) return pick(base, ['allowed_hours', 'allowed_days', 'timezone']);
  if (!restrictedA) return pick(narrower, ['allowed_hours', 'allowed_days', 'timezone']);
  if (effectiveTimeZone(base) !== effectiveTimeZone(narrower)) {
    return pick(narrower, ['allowed_hours', 'allowed_days', 'timezone']);
  }
  const out: [string, unknown][] = [];
  const ha = getOwn(base, 'allowed_hours');
  const hb = getOwn(narrower, 'allowed_hours');
  if (ha !== undefined || hb !== undefined) {
    out.push(['allowed_hours', ha === undefined ? hb : hb === undefined ? ha : narrowHours(ha, hb)]);
  }
  const da = getOwn(base, 'allowed_days');
  const db = getOwn(narrower, 'allowed_days');
  if (da !== undefined || db !== undefined) {
    out.push(['allowed_days', da === undefined ? db : db === undefined ? da : narrowDays(da, db)]);
  }
  out.push(...pick(hasOwn(base, 'timezone') ? base : narrower, ['timezone']));
  return out;
}

/** The stricter of two values of the same (non-time) key; both sides validated. */
function narrowValue(rule: ScopeRule, a: unknown, b: unknown, budget: WorkBudget): unknown {
  switch (rule.kind) {
    case 'max_uses':
    case 'max':
    case 'max_total':
      return Math.min(a as number, b as number);
    case 'allowed':
      return intersectAllowLists(a as string[], b as string[], budget);
    case 'blocked':
      return unionLists(a as string[], b as string[]);
    case 'pattern': {
      // RE2 cannot intersect two regexes, so keep both and require every one to match.
      const all = unionLists(patternSources(a) ?? [], patternSources(b) ?? []);
      return all.length === 1 ? all[0] : all;
    }
    case 'field_allowed':
      return a === true && b === true; // false wins
    default:
      // Keys outside the vocabulary are not enforced; the narrower side (e.g. the policy
      // template) has the last word on what is shown and returned.
      return b;
  }
}

function narrowKey(key: string, a: unknown, b: unknown, budget: WorkBudget): unknown {
  try {
    return narrowValue(parseScopeKey(key), a, b, budget);
  } catch (err) {
    if (!(err instanceof WorkLimitExceeded)) throw err;
    throw new AppError(
      'VALIDATION_ERROR',
      `Invalid scope key '${key}': too many wildcard entries to intersect with the other list within the work limit`,
      { path: key },
    );
  }
}

/**
 * The most restrictive scope satisfying both inputs: min of every `max_*` (including max_uses and
 * max_total_*), intersection of `allowed_*`, union of `blocked_*`, all patterns, `_allowed` false
 * wins, intersected time windows; keys on one side only are kept. Throws VALIDATION_ERROR when
 * either scope is malformed, or when two allow-lists hold more wildcard entries than can be
 * intersected within `budget` (naming the key).
 */
export function narrowScope(base: Scope, narrower: Scope, budget: WorkBudget = new WorkBudget()): Scope {
  validateScope(base);
  validateScope(narrower);
  const keys = [...new Set([...Object.keys(base), ...Object.keys(narrower)])];
  const out: [string, unknown][] = [];
  let timeDone = false;
  for (const key of keys) {
    if (isTimeKey(key)) {
      // The whole group goes where its first key appeared.
      if (!timeDone) out.push(...narrowTimeGroup(base, narrower));
      timeDone = true;
      continue;
    }
    const inA = hasOwn(base, key);
    const inB = hasOwn(narrower, key);
    if (inA && inB) out.push([key, narrowKey(key, base[key], narrower[key], budget)]);
    else out.push([key, inA ? base[key] : narrower[key]]);
  }
  return Object.fromEntries(out);
}
