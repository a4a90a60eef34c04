/**
 * Time windows: `allowed_hours`, `allowed_days`, `timezone`. Hours are handled as sets of
 * minutes-of-day ([start, end) intervals in 0..1440) so a window that wraps midnight, the
 * intersection of two windows, and "is this window inside that one" are all plain interval maths.
 * Days and hours are judged independently on the local clock: with days [mon] and hours
 * 22:00–02:00, Tuesday 01:00 is refused because it is not Monday.
 */
import { isRecord } from './object.js';

export const MINUTES_PER_DAY = 24 * 60;
export const DEFAULT_TIMEZONE = 'UTC';

/** Half-open interval of minutes of the day. */
export type Interval = readonly [start: number, end: number];

const TIME_RE = /^(\d{1,2}):(\d{2})$/;

/**
 * Hour 0–23 or "HH:MM". An end may also be 24 / "24:00" (end of day), since the end is
 * exclusive and "until midnight" must be expressible. Returns null when malformed.
 */
export function parseTimeOfDay(value: unknown, isEnd: boolean): number | null {
  const maxHour = isEnd ? 24 : 23;
  if (typeof value === 'number') {
    return Number.isInteger(value) && value >= 0 && value <= maxHour ? value * 60 : null;
  }
  if (typeof value !== 'string') return null;
  const m = TIME_RE.exec(value.trim());
  if (!m) return null;
  const hour = Number(m[1]);
  const minute = Number(m[2]);
  if (hour > maxHour || minute > 59 || (hour === 24 && minute !== 0)) return null;
  return hour * 60 + minute;
}

export const formatMinute = (minute: number): string =>
  `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;

/** Sort and merge touching/overlapping intervals so equal sets have equal representations. */
export function normalizeIntervals(intervals: readonly Interval[]): Interval[] {
  const sorted = intervals.filter(([s, e]) => e > s).sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/**
 * One `{start, end}` window as minutes. start > end wraps midnight (22:00–06:00); start === end
 * is an empty window (the end is exclusive), which is how an empty intersection is written.
 */
function windowIntervals(window: unknown): Interval[] | null {
  if (!isRecord(window)) return null;
  const start = parseTimeOfDay(window['start'], false);
  const end = parseTimeOfDay(window['end'], true);
  if (start === null || end === null) return null;
  if (start <= end) return [[start, end]];
  return [
    [start, MINUTES_PER_DAY],
    [0, end],
  ];
}

/**
 * `allowed_hours` is `{start, end}`; narrowing may also produce a list of windows (any of them
 * admits) when an intersection falls apart into pieces, e.g. 22–06 ∩ 05–23. Null when malformed.
 */
export function parseHours(value: unknown): Interval[] | null {
  const windows = Array.isArray(value) ? value : [value];
  const all: Interval[] = [];
  for (const w of windows) {
    const intervals = windowIntervals(w);
    if (intervals === null) return null;
    all.push(...intervals);
  }
  return normalizeIntervals(all);
}

export function intersectIntervals(a: readonly Interval[], b: readonly Interval[]): Interval[] {
  const out: Interval[] = [];
  for (const [as, ae] of a) {
    for (const [bs, be] of b) {
      const s = Math.max(as, bs);
      const e = Math.min(ae, be);
      if (e > s) out.push([s, e]);
    }
  }
  return normalizeIntervals(out);
}

export const intervalsEqual = (a: readonly Interval[], b: readonly Interval[]): boolean =>
  a.length === b.length && a.every(([s, e], i) => b[i]?.[0] === s && b[i]?.[1] === e);

export const isSubset = (inner: readonly Interval[], outer: readonly Interval[]): boolean =>
  intervalsEqual(intersectIntervals(inner, outer), normalizeIntervals(inner));

export const containsMinute = (set: readonly Interval[], minute: number): boolean =>
  set.some(([s, e]) => minute >= s && minute < e);

/** Windows as `{start, end}` "HH:MM" objects, re-joining the pieces that meet at midnight. */
export function intervalsToWindows(set: readonly Interval[]): { start: string; end: string }[] {
  const pieces = normalizeIntervals(set).map(([s, e]) => [s, e] as [number, number]);
  const first = pieces[0];
  const last = pieces[pieces.length - 1];
  if (first && last && pieces.length > 1 && first[0] === 0 && last[1] === MINUTES_PER_DAY) {
    pieces.pop();
    first[0] = last[0]; // a wrapping window: start later in the day than its end
  }
  return pieces.map(([s, e]) => ({ start: formatMinute(s), end: formatMinute(e) }));
}

/** '09:00–17:00', '22:00–06:00', or 'never' for an empty set. */
export function formatWindows(set: readonly Interval[]): string {
  const windows = intervalsToWindows(set);
  return windows.length === 0 ? 'never' : windows.map((w) => `${w.start}–${w.end}`).join(', ');
}

/** The `allowed_hours` value for a set: one window as an object, several as a list, none as []. */
export function intervalsToHoursValue(set: readonly Interval[]): unknown {
  const windows = intervalsToWindows(set);
  return windows.length === 1 ? windows[0] : windows;
}

const DAY_NAMES = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'] as const;
export const DAY_SHORT = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;

/** 'mon', 'Monday', 'MON' or 1 → 1 (0 = Sunday). Null when not a day. */
export function parseDay(value: unknown): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 && value <= 6 ? value : null;
  if (typeof value !== 'string') return null;
  const v = value.trim().toLowerCase();
  const i = DAY_NAMES.findIndex((name) => name === v || name.slice(0, 3) === v);
  return i === -1 ? null : i;
}

export function parseDays(value: unknown): Set<number> | null {
  if (!Array.isArray(value)) return null;
  const days = new Set<number>();
  for (const v of value) {
    const d = parseDay(v);
    if (d === null) return null;
    days.add(d);
  }
  return days;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    // h23 so midnight is 00, never 24 (some ICU versions print 24 with hour12: false).
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    if (formatters.size > 512) formatters.clear();
    formatters.set(timeZone, f);
  }
  return f;
}

/**
 * The canonical IANA name (so 'utc', 'Etc/UTC' and 'UTC' compare equal), or null when Intl does
 * not know the zone.
 */
export function canonicalTimeZone(value: unknown): string | null {
  if (typeof value !== 'string' || value.trim() === '') return null;
  try {
    return formatterFor(value).resolvedOptions().timeZone;
  } catch {
    return null;
  }
}

const WEEKDAY_INDEX: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/** Local minute-of-day and weekday (0 = Sunday) of `now` in `timeZone` (already validated). */
export function localClock(now: Date, timeZone: string): { minute: number; day: number } {
  let hour = 0;
  let minute = 0;
  let day = 0;
  for (const part of formatterFor(timeZone).formatToParts(now)) {
    if (part.type === 'hour') hour = Number(part.value) % 24;
    else if (part.type === 'minute') minute = Number(part.value);
    else if (part.type === 'weekday') day = WEEKDAY_INDEX[part.value] ?? 0;
  }
  return { minute: hour * 60 + minute, day };
}
