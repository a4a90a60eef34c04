/**
 * Enforcement of a granted scope against the actionDetails an agent reports at use/verify time.
 * Pure: the time and the cumulative totals so far are arguments; the store adds the increments
 * (computeTotalIncrements) in the same atomic statement that spends the use.
 *
 * Absent fields: `max_<f>`, `max_total_<f>`, `allowed_<f>`, `blocked_<f>`, `<f>_pattern` and
 * `<f>_allowed` judge the values supplied; a field that is absent (or JSON null) has no value to
 * judge and passes. Whether actionDetails may be omitted altogether is the service's decision
 * (REQUIRE_ACTION_DETAILS), not this module's.
 *
 * Malformed rules (which validateScope keeps out) fail closed with a violation rather than being
 * skipped, so a corrupted scope can never allow more than it says.
 */

import { globWork, WorkBudget } from '../budget.js';
import { compilePattern, matchPattern, patternSources, type Unchecked, uncheckedReason } from '../regex.js';
import { blockForm, globMatch, hasWildcard } from './glob.js';
import { getOwn, hasOwn, isRecord } from './object.js';
import {
  canonicalTimeZone,
  containsMinute,
  DAY_SHORT,
  DEFAULT_TIMEZONE,
  formatMinute,
  formatWindows,
  localClock,
  parseDays,
  parseHours,
} from './time.js';
import type { CheckOptions, Scope, ScopeViolation } from './types.js';
import { isCap, isStringList } from './validate.js';
import { collectValues, type FieldValue, readCapped, scalarText } from './values.js';
import { fieldAliases, parseScopeKey } from './vocabulary.js';

/**
 * Cumulative sums are floating point: 0.1 + 0.2 must not exceed a cap of 0.3. The slack is far
 * below any meaningful unit (a billionth of the cap).
 */
const sumTolerance = (cap: number): number => Math.max(1, Math.abs(cap)) * 1e-9;

const malformed = (key: string, field: string, limit: unknown): ScopeViolation => ({
  key,
  field,
  message: `scope rule ${key} is malformed, so it cannot be satisfied`,
  limit,
});

const dayList = (days: ReadonlySet<number>): string =>
  [1, 2, 3, 4, 5, 6, 0]
    .filter((d) => days.has(d))
    .map((d) => {
      const name = DAY_SHORT[d] ?? '';
      return name.charAt(0).toUpperCase() + name.slice(1);
    })
    .join(', ') || 'none';

/** Tokens outside `allowed_hours` / `allowed_days` (in `timezone`, default UTC) may not be used. */
export function checkTimeWindow(scope: Scope | null | undefined, now: Date): ScopeViolation[] {
  if (scope === null || scope === undefined) return [];
  if (!isRecord(scope)) return [{ key: 'scope', field: '', message: 'the granted scope is malformed' }];
  const hasHours = hasOwn(scope, 'allowed_hours');
  const hasDays = hasOwn(scope, 'allowed_days');
  if (!hasHours && !hasDays) return [];
  const firstKey = hasHours ? 'allowed_hours' : 'allowed_days';
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) {
    return [{ key: firstKey, field: 'time', message: 'the time of use is not a valid date' }];
  }
  const tzValue = getOwn(scope, 'timezone');
  const tz = tzValue === undefined ? DEFAULT_TIMEZONE : canonicalTimeZone(tzValue);
  if (tz === null) return [malformed('timezone', 'time', tzValue)];

  const local = localClock(now, tz);
  const out: ScopeViolation[] = [];
  if (hasHours) {
    const value = getOwn(scope, 'allowed_hours');
    const set = parseHours(value);
    if (set === null) out.push(malformed('allowed_hours', 'time', value));
    else if (!containsMinute(set, local.minute)) {
      out.push({
        key: 'allowed_hours',
        field: 'time',
        message: `outside the allowed hours (${formatWindows(set)} ${tz})`,
        limit: value,
        actual: `${formatMinute(local.minute)} ${tz}`,
      });
    }
  }
  if (hasDays) {
    const value = getOwn(scope, 'allowed_days');
    const days = parseDays(value);
    if (days === null) out.push(malformed('allowed_days', 'time', value));
    else if (!days.has(local.day)) {
      out.push({
        key: 'allowed_days',
        field: 'time',
        message: `not an allowed day (${dayList(days)} in ${tz})`,
        limit: value,
        actual: DAY_SHORT[local.day],
      });
    }
  }
  return out;
}

function checkMax(key: string, field: string, cap: unknown, details: Record<string, unknown>) {
  if (!isCap(cap)) return malformed(key, field, cap);
  const value = getOwn(details, field);
  if (value === undefined || value === null) return null;
  const reading = readCapped(value);
  if ('problem' in reading) return { key, field, message: `${field} ${reading.problem}`, limit: cap };
  if (reading.perUse <= cap) return null;
  const what = Array.isArray(value) ? `${field} (its entries, or its largest entry)` : field;
  return {
    key,
    field,
    message: `${what} exceeds the per-use cap of ${cap}`,
    limit: cap,
    actual: reading.perUse,
  };
}

/** What one use adds to a cumulative total, or the reason it cannot be counted. */
function increment(value: unknown): number | { problem: string } {
  if (value === undefined || value === null) return 0;
  const reading = readCapped(value);
  if ('problem' in reading) return reading;
  // Negative contributions would let an agent "refund" its budget and then overspend.
  if (reading.negative) return { problem: 'must not be negative' };
  return reading.total;
}

function checkMaxTotal(
  key: string,
  field: string,
  cap: unknown,
  details: Record<string, unknown>,
  totals: Readonly<Record<string, number>>,
) {
  if (!isCap(cap)) return malformed(key, field, cap);
  const inc = increment(getOwn(details, field));
  if (typeof inc !== 'number') {
    return {
      key,
      field,
      message: `${field} ${inc.problem}, so it cannot be counted towards its cumulative cap`,
      limit: cap,
    };
  }
  const prior = getOwn(totals, field) ?? 0;
  if (typeof prior !== 'number' || !Number.isFinite(prior)) return malformed(key, field, cap);
  const total = prior + inc;
  if (total <= cap + sumTolerance(cap)) return null;
  return {
    key,
    field,
    message: `cumulative ${field} would exceed the cap of ${cap}`,
    limit: cap,
    actual: total,
  };
}

/** One violation per rule, naming the first offending field and listing every offending value. */
function listViolation(
  key: string,
  offending: FieldValue[],
  message: (field: string) => string,
  limit: unknown,
) {
  const first = offending[0];
  if (!first) return null;
  return {
    key,
    field: first.field,
    message: message(first.field),
    limit,
    actual: offending.map((o) => o.value),
  };
}

/**
 * An allow/block list as a matcher: plain entries in a Set (one lookup per value), wildcard
 * entries by glob, each glob comparison charged to the budget first. 'over_budget' means the
 * value could not be checked: callers treat it as offending.
 */
function listMatcher(list: readonly string[], budget: WorkBudget, form: (s: string) => string = (s) => s) {
  const exact = new Set<string>();
  const globs: string[] = [];
  for (const entry of list) {
    const normal = form(entry);
    if (hasWildcard(normal)) globs.push(normal);
    else exact.add(normal);
  }
  return (text: string): boolean | 'over_budget' => {
    const value = form(text);
    if (exact.has(value)) return true;
    for (const glob of globs) {
      if (!budget.spend(globWork(glob.length, value.length))) return 'over_budget';
      if (globMatch(glob, value)) return true;
    }
    return false;
  };
}

const OVER_BUDGET = 'could not be checked within the work limit of one call (too many or too long values)';

/**
 * `allowed_<f>` (every value in the list) and `blocked_<f>` (no value in the list, compared in
 * blockForm). A value that is not a scalar, or that the budget could not check, offends either
 * way: it might be outside the allow-list or hide a blocked value.
 */
function checkList(
  key: string,
  field: string,
  list: unknown,
  details: Record<string, unknown>,
  budget: WorkBudget,
  kind: 'allowed' | 'blocked',
) {
  if (!isStringList(list)) return malformed(key, field, list);
  const inList = kind === 'allowed' ? listMatcher(list, budget) : listMatcher(list, budget, blockForm);
  const offendingWhenFound = kind === 'blocked';
  let unchecked = false;
  const offending = collectValues(details, fieldAliases(field)).filter(({ value }) => {
    const text = scalarText(value);
    if (text === null) return true;
    const found = inList(text);
    if (found === 'over_budget') unchecked = true;
    return found === 'over_budget' || found === offendingWhenFound;
  });
  const broken = kind === 'allowed' ? 'has a value outside the allowed list' : 'has a blocked value';
  return listViolation(key, offending, (f) => `${f} ${unchecked ? OVER_BUDGET : broken}`, list);
}

function checkPattern(
  key: string,
  field: string,
  rule: unknown,
  details: Record<string, unknown>,
  budget: WorkBudget,
) {
  const sources = patternSources(rule);
  if (sources === null) return malformed(key, field, rule);
  let compiled: ReturnType<typeof compilePattern>[];
  try {
    compiled = sources.map(compilePattern);
  } catch {
    return malformed(key, field, rule); // does not compile, or over the bounds (a scope stored before them)
  }
  let unchecked: Unchecked | null = null;
  const offending = collectValues(details, fieldAliases(field)).filter(({ value }) => {
    const text = scalarText(value);
    if (text === null) return true;
    for (const re of compiled) {
      const matched = matchPattern(re, text, budget);
      if (matched === true) continue;
      if (matched !== false) unchecked ??= matched;
      return true;
    }
    return false;
  });
  return listViolation(
    key,
    offending,
    (f) =>
      unchecked
        ? `${f} could not be checked against the pattern: ${uncheckedReason(unchecked)}`
        : `${f} does not match the required pattern`,
    rule,
  );
}

function checkFieldAllowed(key: string, field: string, allowed: unknown, details: Record<string, unknown>) {
  if (typeof allowed !== 'boolean') return malformed(key, field, allowed);
  if (allowed) return null;
  const present = collectValues(details, fieldAliases(field)).filter(({ value }) => value !== false);
  return listViolation(key, present, (f) => `${f} is not allowed`, false);
}

/**
 * Every violation of `scope` by one use with `actionDetails`; empty means allowed. `max_uses` is
 * not judged here: the store's atomic use statement counts uses.
 */
export function checkActionDetails(
  scope: Scope | null | undefined,
  actionDetails: Record<string, unknown> | null | undefined,
  options: CheckOptions,
): ScopeViolation[] {
  // A stored scope that is not an object is corrupt: refuse rather than guess (null = no scope).
  if (scope !== null && scope !== undefined && !isRecord(scope)) {
    return [{ key: 'scope', field: '', message: 'the granted scope is malformed' }];
  }
  if (actionDetails !== undefined && actionDetails !== null && !isRecord(actionDetails)) {
    return [{ key: 'actionDetails', field: '', message: 'actionDetails must be an object' }];
  }
  const details = actionDetails ?? {};
  const totals = options.totals ?? {};
  // One budget for the whole call: many pattern keys × many values cannot add up past it.
  const budget = new WorkBudget();
  const rules: Scope = scope ?? {};
  const out: ScopeViolation[] = [];
  for (const key of Object.keys(rules)) {
    const value = rules[key];
    const rule = parseScopeKey(key);
    let violation: ScopeViolation | null = null;
    switch (rule.kind) {
      case 'max':
        violation = checkMax(key, rule.field, value, details);
        break;
      case 'max_total':
        violation = checkMaxTotal(key, rule.field, value, details, totals);
        break;
      case 'allowed':
        violation = checkList(key, rule.field, value, details, budget, 'allowed');
        break;
      case 'blocked':
        violation = checkList(key, rule.field, value, details, budget, 'blocked');
        break;
      case 'pattern':
        violation = checkPattern(key, rule.field, value, details, budget);
        break;
      case 'field_allowed':
        violation = checkFieldAllowed(key, rule.field, value, details);
        break;
      default:
        break; // time keys below; max_uses in the store; unknown keys are not enforced
    }
    if (violation) out.push(violation);
  }
  out.push(...checkTimeWindow(rules, options.now));
  return out;
}

/**
 * What this use adds to each cumulative total, keyed by field (`max_total_amount` → `amount`),
 * with 0 for absent fields so the store can add every key unconditionally. Call after
 * checkActionDetails passed; values it would refuse count as 0 here.
 */
export function computeTotalIncrements(
  scope: Scope,
  actionDetails: Record<string, unknown> | null | undefined,
): Record<string, number> {
  const details = isRecord(actionDetails) ? actionDetails : {};
  const entries: [string, number][] = [];
  for (const key of Object.keys(scope)) {
    const rule = parseScopeKey(key);
    if (rule.kind !== 'max_total') continue;
    const inc = increment(getOwn(details, rule.field));
    entries.push([rule.field, typeof inc === 'number' ? inc : 0]);
  }
  return Object.fromEntries(entries);
}
