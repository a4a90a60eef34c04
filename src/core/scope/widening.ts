/**
 * Approvers (and anything else holding a granted scope) may only narrow it. assertNarrowing
 * proves, key by key, that a proposed scope allows nothing the granted one refuses; whatever it
 * cannot prove (a replaced regex, a moved time zone, an edited unknown key) counts as widening.
 */
import { WorkBudget, WorkLimitExceeded } from '../budget.js';
import { AppError } from '../errors.js';
import { patternSources } from '../regex.js';
import { uncovered } from './lists.js';
import { effectiveTimeZone, hasTimeRestriction } from './narrow.js';
import { getOwn, hasOwn, isRecord, jsonEqual } from './object.js';
import { isSubset, parseDays, parseHours } from './time.js';
import type { Scope } from './types.js';
import { validateScope } from './validate.js';
import { DEFAULT_MAX_USES, isTimeKey, parseScopeKey } from './vocabulary.js';

const widening = (key: string, reason: string, granted: Scope, proposed: Scope): AppError =>
  new AppError('SCOPE_WIDENING', `Scope change would widen '${key}': ${reason}`, {
    key,
    granted: getOwn(granted, key),
    proposed: getOwn(proposed, key),
  });

function checkTimeGroup(granted: Scope, proposed: Scope): void {
  // A lone timezone restricts nothing, so it may change freely.
  if (!hasTimeRestriction(granted)) return;
  if (effectiveTimeZone(granted) !== effectiveTimeZone(proposed)) {
    throw widening(
      'timezone',
      'moving the time window to another time zone is not a narrowing',
      granted,
      proposed,
    );
  }
  const gh = getOwn(granted, 'allowed_hours');
  if (gh !== undefined) {
    const ph = getOwn(proposed, 'allowed_hours');
    if (ph === undefined)
      throw widening('allowed_hours', 'the hours restriction was removed', granted, proposed);
    if (!isSubset(parseHours(ph) ?? [], parseHours(gh) ?? [])) {
      throw widening('allowed_hours', 'the window allows times outside the granted hours', granted, proposed);
    }
  }
  const gd = getOwn(granted, 'allowed_days');
  if (gd !== undefined) {
    const pd = getOwn(proposed, 'allowed_days');
    if (pd === undefined)
      throw widening('allowed_days', 'the days restriction was removed', granted, proposed);
    const grantedDays = parseDays(gd) ?? new Set<number>();
    if (![...(parseDays(pd) ?? [])].every((d) => grantedDays.has(d))) {
      throw widening('allowed_days', 'a day was added', granted, proposed);
    }
  }
}

function checkKey(key: string, granted: Scope, proposed: Scope, budget: WorkBudget): void {
  const rule = parseScopeKey(key);
  const g = granted[key];
  const inP = hasOwn(proposed, key);
  const p = proposed[key];
  switch (rule.kind) {
    case 'max_uses':
      return; // handled with its default in assertNarrowing
    case 'max':
    case 'max_total':
      if (!inP) throw widening(key, 'the cap was removed', granted, proposed);
      if ((p as number) > (g as number))
        throw widening(key, `the cap was raised from ${g} to ${p}`, granted, proposed);
      return;
    case 'allowed': {
      if (!inP) throw widening(key, 'the allow-list was removed', granted, proposed);
      const extra = uncovered(p as string[], g as string[], budget);
      if (extra.length > 0) {
        throw widening(
          key,
          `entries not covered by the granted list were added: ${extra.join(', ')}`,
          granted,
          proposed,
        );
      }
      return;
    }
    case 'blocked': {
      if (!inP) throw widening(key, 'the block-list was removed', granted, proposed);
      const removed = uncovered(g as string[], p as string[], budget, true);
      if (removed.length > 0) {
        throw widening(key, `blocked entries were removed: ${removed.join(', ')}`, granted, proposed);
      }
      return;
    }
    case 'pattern': {
      // Adding patterns narrows (all must match); replacing one cannot be proven narrower.
      const kept = inP ? (patternSources(p) ?? []) : [];
      if (!(patternSources(g) ?? []).every((source) => kept.includes(source))) {
        throw widening(key, 'a required pattern was removed or replaced', granted, proposed);
      }
      return;
    }
    case 'field_allowed':
      if (g === false && p !== false)
        throw widening(key, `${rule.field} was forbidden and would be allowed`, granted, proposed);
      return;
    case 'allowed_hours':
    case 'allowed_days':
    case 'timezone':
      return; // checked as a group
    case 'unknown':
      // Not enforced, hence not comparable: only an unchanged value is known not to widen.
      if (!inP || !jsonEqual(g, p))
        throw widening(key, 'a key outside the scope vocabulary was changed', granted, proposed);
      return;
  }
}

/**
 * Throws AppError('SCOPE_WIDENING', message naming the key, {key, granted, proposed}) if
 * `proposed` allows anything `granted` does not: a raised or removed cap (an absent max_uses is
 * 1), an allow-list entry outside the granted entries, a removed block-list entry, a removed or
 * replaced pattern, `_allowed` false → true, a longer time window or more days, a time zone
 * change, a changed unknown key. Keys only in `proposed` are new restrictions and always fine.
 * Throws VALIDATION_ERROR first if either scope is malformed.
 */
export function assertNarrowing(granted: Scope, proposed: Scope): void {
  validateScope(granted);
  validateScope(proposed);
  const grantedUses = getOwn(granted, 'max_uses') ?? DEFAULT_MAX_USES;
  const proposedUses = getOwn(proposed, 'max_uses') ?? DEFAULT_MAX_USES;
  if ((proposedUses as number) > (grantedUses as number)) {
    throw widening('max_uses', `uses were raised from ${grantedUses} to ${proposedUses}`, granted, proposed);
  }
  // Glob comparisons are charged to one budget; what cannot be compared within it is unproven.
  const budget = new WorkBudget();
  for (const key of Object.keys(granted)) {
    if (isTimeKey(key)) continue;
    try {
      checkKey(key, granted, proposed, budget);
    } catch (err) {
      if (!(err instanceof WorkLimitExceeded)) throw err;
      throw widening(key, 'too many wildcard entries to compare within the work limit', granted, proposed);
    }
  }
  checkTimeGroup(granted, proposed);
}

/**
 * An approver's "approve with changes": `modifications` is a partial scope whose keys replace the
 * granted ones (undefined = leave as is, null = remove the key, which is refused if the key
 * restricted anything). Throws SCOPE_WIDENING unless the result is a narrowing, so the result is,
 * in effect, narrowScope(granted, modifications).
 */
export function applyModifications(granted: Scope, modifications: Record<string, unknown>): Scope {
  if (!isRecord(modifications)) {
    throw new AppError('VALIDATION_ERROR', 'Scope modifications must be an object', { path: '' });
  }
  const present = (key: string) => hasOwn(modifications, key) && modifications[key] !== undefined;
  const entries: [string, unknown][] = [];
  for (const key of Object.keys(granted)) {
    if (!present(key)) entries.push([key, granted[key]]);
    else if (modifications[key] !== null) entries.push([key, modifications[key]]);
  }
  for (const key of Object.keys(modifications)) {
    if (!hasOwn(granted, key) && present(key) && modifications[key] !== null)
      entries.push([key, modifications[key]]);
  }
  const result: Scope = Object.fromEntries(entries);
  assertNarrowing(granted, result);
  return result;
}
