/**
 * Scope as rows for approval cards (Slack, Discord, CLI). Never throws: a card must render even
 * for a malformed or unusual scope, so unexpected values fall back to their JSON text.
 */

import { patternSources } from '../regex.js';
import { getOwn, hasOwn } from './object.js';
import {
  canonicalTimeZone,
  DAY_SHORT,
  DEFAULT_TIMEZONE,
  formatWindows,
  parseDays,
  parseHours,
} from './time.js';
import type { Scope, ScopeRow } from './types.js';
import { isStringList } from './validate.js';
import { parseScopeKey } from './vocabulary.js';

const MAX_VALUE_CHARS = 200;

const capitalize = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
const humanize = (name: string): string => capitalize(name.replace(/_+/g, ' ').trim());

function plain(value: unknown): string {
  let text: string;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean') text = String(value);
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = String(value);
    }
  }
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 1)}…` : text;
}

const list = (value: unknown): string => {
  if (!isStringList(value)) return plain(value);
  return value.length === 0 ? '(none)' : value.join(', ');
};

function days(value: unknown): string {
  const set = parseDays(value);
  if (set === null) return plain(value);
  const names = [1, 2, 3, 4, 5, 6, 0].filter((d) => set.has(d)).map((d) => capitalize(DAY_SHORT[d] ?? ''));
  return names.length === 0 ? 'none' : names.join(', ');
}

/**
 * e.g. `max_amount: 100` → {label: 'Max amount', value: '100'}; `subject_pattern` →
 * 'Subject must match', '/^Invoice #\d+$/'; `allowed_hours` → '09:00–17:00 Europe/Berlin'. The
 * time zone is folded into the hours row (or the days row when there are no hours).
 */
export function describeScope(scope: Scope): ScopeRow[] {
  const rawTz = getOwn(scope, 'timezone');
  const tz = rawTz === undefined ? DEFAULT_TIMEZONE : (canonicalTimeZone(rawTz) ?? plain(rawTz));
  const hasHours = hasOwn(scope, 'allowed_hours');
  const hasDays = hasOwn(scope, 'allowed_days');
  const rows: ScopeRow[] = [];
  for (const key of Object.keys(scope)) {
    const value = scope[key];
    const rule = parseScopeKey(key);
    const row = (label: string, text: string) => rows.push({ key, label, value: text });
    switch (rule.kind) {
      case 'max_uses':
        row('Max uses', plain(value));
        break;
      case 'max':
        row(`Max ${humanize(rule.field).toLowerCase()}`, plain(value));
        break;
      case 'max_total':
        row(`Max total ${humanize(rule.field).toLowerCase()}`, plain(value));
        break;
      case 'allowed':
        row(`Allowed ${humanize(rule.field).toLowerCase()}`, list(value));
        break;
      case 'blocked':
        row(`Blocked ${humanize(rule.field).toLowerCase()}`, list(value));
        break;
      case 'pattern': {
        const sources = patternSources(value);
        row(
          `${humanize(rule.field)} must match`,
          sources ? sources.map((s) => `/${s}/`).join(' and ') : plain(value),
        );
        break;
      }
      case 'field_allowed':
        row(
          `${humanize(rule.field)} allowed`,
          value === false ? 'No' : value === true ? 'Yes' : plain(value),
        );
        break;
      case 'allowed_hours': {
        const set = parseHours(value);
        row(
          'Allowed hours',
          set === null ? plain(value) : set.length === 0 ? 'never' : `${formatWindows(set)} ${tz}`,
        );
        break;
      }
      case 'allowed_days':
        row('Allowed days', hasHours ? days(value) : `${days(value)} (${tz})`);
        break;
      case 'timezone':
        if (!hasHours && !hasDays) row('Time zone', plain(value));
        break;
      case 'unknown':
        row(humanize(key) || key, plain(value));
        break;
    }
  }
  return rows;
}
