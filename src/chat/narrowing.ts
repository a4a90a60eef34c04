/**
 * "Approve with changes…", platform-neutral (Slack and Discord modals both use it): which parts
 * of a scope an approver can narrow (lower a numeric cap, untick allow-list entries), and turning
 * what they submitted into scope modifications — refusing anything that would widen.
 *
 * Field keys: the error map of modificationsFromForm is keyed by the scope key of the input
 * (`max_amount`, `allowed_recipients`), `reason` for the reason, and `_form` for a problem that
 * belongs to no input. A chat adapter maps those keys back to its own inputs.
 */
import { sha256Hex } from '../core/credentials.js';
import { AppError } from '../core/errors.js';
import { REASON_MAX_CHARS } from '../core/limits.js';
import { applyModifications, describeScope, parseScopeKey, type Scope } from '../core/scope/index.js';
import { textProblem } from '../core/storable.js';
import type { NarrowingForm } from './card.js';
import { truncate } from './text.js';

/** Error key of the reason input. (Never a cap or list key: `reason` is outside the vocabulary.) */
export const REASON_FIELD = 'reason';
/** Error key for problems that belong to no single input. */
export const FORM_FIELD = '_form';
/** Longest reason an approver may give (the same bound as the API's). */
export { REASON_MAX_CHARS };

/** What a modal submitted. A key left out means "unchanged" (e.g. a modal that could not show it). */
export interface NarrowingInput {
  /** Cap key → the text typed, e.g. {max_amount: '50'}. */
  caps: Record<string, string>;
  /** Allow-list key → the entries left selected (a subset of the granted entries). */
  lists: Record<string, string[]>;
  reason?: string | null;
}

export type NarrowingResult =
  | {
      ok: true;
      /** Only the changed keys, for applyModifications / the approve-with-changes call. */
      scopeModifications: Record<string, unknown>;
      /** The trimmed reason, null when none was given. */
      reason: string | null;
      /** The scope that results (already checked to be a narrowing). */
      scope: Scope;
    }
  | { ok: false; errors: Record<string, string> };

type CapKind = 'max_uses' | 'max' | 'max_total';

const isCapKind = (kind: string): kind is CapKind =>
  kind === 'max_uses' || kind === 'max' || kind === 'max_total';

const isNumberCap = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value) && value >= 0;

/** Is `key` a numeric cap key of the vocabulary (`max_uses`, `max_<f>`, `max_total_<f>`)? */
export const isCapKey = (key: string): boolean => isCapKind(parseScopeKey(key).kind);

/** Is `key` an allow-list key (`allowed_<f>`, not allowed_hours/allowed_days)? */
export const isListKey = (key: string): boolean => parseScopeKey(key).kind === 'allowed';

/**
 * The narrowable parts of a scope, in scope order: every numeric cap with its granted value and
 * every allow-list with its entries (duplicates removed). Malformed values and empty allow-lists
 * (nothing left to remove) are left out. Labels come from describeScope, as on the card.
 */
export function narrowingForm(scope: Scope): NarrowingForm {
  const labels = new Map(describeScope(scope).map((row) => [row.key, row.label]));
  const form: NarrowingForm = { caps: [], lists: [] };
  for (const key of Object.keys(scope)) {
    const value = scope[key];
    const kind = parseScopeKey(key).kind;
    const label = labels.get(key) ?? key;
    if (isCapKind(kind)) {
      const valid = kind === 'max_uses' ? Number.isSafeInteger(value) && (value as number) >= 1 : true;
      if (isNumberCap(value) && valid) form.caps.push({ key, label, current: value });
    } else if (kind === 'allowed') {
      if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string')) {
        form.lists.push({ key, label, values: [...new Set(value as string[])] });
      }
    }
  }
  return form;
}

/**
 * The id of a cap's or allow-list's input: `<prefix>:<key>`, or `<prefix>#<sha256 of key>` when
 * that would be longer than `maxLength` (the platform's limit on such ids).
 */
export function inputIdOf(prefix: 'cap' | 'list', key: string, maxLength: number): string {
  const plain = `${prefix}:${key}`;
  return plain.length <= maxLength ? plain : `${prefix}#${sha256Hex(key)}`;
}

/** Which caps and lists of a form get an input in a modal, and which stay as granted. */
export interface FormLayout {
  caps: NarrowingForm['caps'];
  lists: NarrowingForm['lists'];
  keptCaps: NarrowingForm['caps'];
  keptLists: NarrowingForm['lists'];
}

/**
 * Hands out a modal's `rows` inputs: caps first, in order, then the lists `listFits` accepts;
 * whatever gets no row is kept. Decided from the scope alone, so rendering and parsing agree.
 */
export function layoutForm(
  scope: Scope,
  rows: number,
  listFits: (values: readonly string[]) => boolean,
): FormLayout {
  const form = narrowingForm(scope);
  let room = rows;
  const out: FormLayout = { caps: [], lists: [], keptCaps: [], keptLists: [] };
  for (const cap of form.caps) {
    if (room > 0) {
      out.caps.push(cap);
      room--;
    } else out.keptCaps.push(cap);
  }
  for (const list of form.lists) {
    if (room > 0 && listFits(list.values)) {
      out.lists.push(list);
      room--;
    } else out.keptLists.push(list);
  }
  return out;
}

const DECIMAL = /^(?:\d+(?:\.\d*)?|\.\d+)$/;

/** The error for one cap input, or the parsed number. */
function parseCap(kind: CapKind, raw: string, current: number): number | string {
  const granted = `(granted: ${current})`;
  const text = raw.trim();
  if (text === '') return `Enter a number ${granted}`;
  if (/^-\s*\d/.test(text)) {
    return kind === 'max_uses'
      ? `Must be a whole number of at least 1 ${granted}`
      : `Must be 0 or more ${granted}`;
  }
  if (!DECIMAL.test(text)) return `Enter a number, digits only ${granted}`;
  const n = Number(text);
  if (!Number.isFinite(n)) return `Enter a number, digits only ${granted}`;
  if (kind === 'max_uses' && (!Number.isSafeInteger(n) || n < 1)) {
    return `Must be a whole number of at least 1 ${granted}`;
  }
  if (n > current) return `Can only be lowered ${granted}`;
  return n;
}

/** Scope key (or validation path `key[3]`) → the field key it belongs to. */
function fieldKeyOf(path: unknown, form: NarrowingForm): string {
  if (typeof path !== 'string') return FORM_FIELD;
  const key = path.replace(/\[\d+\]$/, '');
  const known = form.caps.some((c) => c.key === key) || form.lists.some((l) => l.key === key);
  return known ? key : FORM_FIELD;
}

function addError(errors: Record<string, string>, key: string, message: string): void {
  errors[key] = errors[key] === undefined ? message : `${errors[key]} · ${message}`;
}

/**
 * Validates an approver's changes and turns them into scope modifications: a cap must be a plain
 * non-negative number (a whole number ≥ 1 for max_uses) not above the granted value; a list may
 * only keep granted entries (an empty selection means nothing is allowed); unchanged fields are
 * omitted. The result is then run through applyModifications as a second check. On failure,
 * `errors` maps field keys (see the module comment) to messages meant for the approver.
 */
export function modificationsFromForm(scope: Scope, input: NarrowingInput): NarrowingResult {
  const form = narrowingForm(scope);
  const errors: Record<string, string> = Object.create(null) as Record<string, string>;
  const mods: [string, unknown][] = [];

  const capKeys = new Set(form.caps.map((c) => c.key));
  const listKeys = new Set(form.lists.map((l) => l.key));
  for (const key of Object.keys(input.caps)) {
    if (!capKeys.has(key)) addError(errors, key, 'Not a limit of this permission');
  }
  for (const key of Object.keys(input.lists)) {
    if (!listKeys.has(key)) addError(errors, key, 'Not a list of this permission');
  }

  for (const cap of form.caps) {
    if (!Object.hasOwn(input.caps, cap.key)) continue;
    const raw = input.caps[cap.key];
    if (raw === undefined) continue;
    const kind = parseScopeKey(cap.key).kind as CapKind;
    const parsed = parseCap(kind, String(raw), cap.current);
    if (typeof parsed === 'string') addError(errors, cap.key, parsed);
    else if (parsed !== cap.current) mods.push([cap.key, parsed]);
  }

  for (const list of form.lists) {
    if (!Object.hasOwn(input.lists, list.key)) continue;
    const selected = input.lists[list.key];
    if (selected === undefined) continue;
    if (!Array.isArray(selected)) {
      addError(errors, list.key, 'Expected a list of entries');
      continue;
    }
    const granted = new Set(list.values);
    const unknown = selected.filter((v) => typeof v !== 'string' || !granted.has(v));
    if (unknown.length > 0) {
      const shown = unknown.slice(0, 3).map((v) => truncate(String(v), 60));
      const more = unknown.length > 3 ? ` and ${unknown.length - 3} more` : '';
      addError(errors, list.key, `Not in the granted list: ${shown.join(', ')}${more}`);
      continue;
    }
    const keep = new Set(selected);
    const kept = list.values.filter((v) => keep.has(v));
    if (kept.length !== list.values.length) mods.push([list.key, kept]);
  }

  let reason: string | null = null;
  if (input.reason !== undefined && input.reason !== null) {
    const text = String(input.reason).trim();
    if (text.length > REASON_MAX_CHARS) {
      addError(errors, REASON_FIELD, `At most ${REASON_MAX_CHARS} characters (got ${text.length})`);
    } else if (textProblem(text) !== null) {
      addError(errors, REASON_FIELD, 'Remove the control or invalid characters');
    } else if (text !== '') reason = text;
  }

  if (Object.keys(errors).length > 0) return { ok: false, errors: { ...errors } };

  const scopeModifications: Record<string, unknown> = Object.fromEntries(mods);
  try {
    const result = applyModifications(scope, scopeModifications);
    return { ok: true, scopeModifications, reason, scope: result };
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    const details = (err.details ?? {}) as { key?: unknown; path?: unknown };
    const field = fieldKeyOf(err.code === 'SCOPE_WIDENING' ? details.key : details.path, form);
    return { ok: false, errors: { [field]: err.message } };
  }
}

/**
 * A number as plain decimal digits (`1e-7` → `0.0000001`, `1e+21` → `1000000000000000000000`),
 * the same value, so an untouched cap passes modificationsFromForm (which accepts digits only).
 */
export function decimalString(n: number): string {
  const s = String(n);
  const m = /^(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s;
  const int = m[1] ?? '';
  const digits = int + (m[2] ?? '');
  const point = int.length + Number(m[3]);
  if (point <= 0) return `0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return digits + '0'.repeat(point - digits.length);
  return `${digits.slice(0, point)}.${digits.slice(point)}`;
}
