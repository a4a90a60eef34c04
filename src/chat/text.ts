/**
 * Text helpers shared by the chat renderers (Slack, Discord): cutting text to a platform limit
 * without breaking a character, an entity or a link, escaping Slack mrkdwn, and formatting
 * arbitrary JSON values for display. Pure.
 *
 * Lengths are measured in UTF-16 code units (`String#length`). That is never less than the
 * number of code points, so a result within `max` is within `max` however the platform counts,
 * and a cut never falls inside a surrogate pair.
 */

export const TRUNCATION_MARKER = '…[truncated]';

/** Number of code points (an emoji counts once). */
export function codePointLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** The longest prefix of `text` of at most `units` UTF-16 code units that ends on a whole code point. */
function prefix(text: string, units: number): string {
  if (units <= 0) return '';
  if (text.length <= units) return text;
  let end = units;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end--; // would keep a lone high surrogate
  return text.slice(0, end);
}

/**
 * `text` if it fits in `max`, else a prefix of it followed by `marker`, the whole never longer
 * than `max`. If even the marker does not fit, as much of the marker as fits.
 */
export function truncate(text: string, max: number, marker: string = TRUNCATION_MARKER): string {
  const limit = Math.max(0, Math.floor(max));
  if (text.length <= limit) return text;
  if (marker.length >= limit) return prefix(marker, limit);
  return prefix(text, limit - marker.length) + marker;
}

/**
 * Escapes Slack's three control characters so text is shown literally: `<!channel>`,
 * `<@U123>` and `<https://x|label>` become plain text instead of a mention or a disguised link.
 * As defence in depth, a bare `@channel` / `@here` / `@everyone` also gets a zero-width space
 * after the `@`, so it cannot ping even where Slack links bare names.
 */
export function escapeMrkdwn(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/(^|[^\w.@])@(channel|here|everyone)\b/gi, '$1@\u200b$2');
}

/**
 * Cuts mrkdwn that WE composed (user text already escaped) to `max`, never leaving half of a
 * `<…>` token (mention, date, link) or of an `&…;` entity: a cut inside one moves to before it.
 */
export function truncateMrkdwn(mrkdwn: string, max: number, marker: string = TRUNCATION_MARKER): string {
  const limit = Math.max(0, Math.floor(max));
  if (mrkdwn.length <= limit) return mrkdwn;
  if (marker.length >= limit) return prefix(marker, limit);
  let head = prefix(mrkdwn, limit - marker.length);
  const open = head.lastIndexOf('<');
  if (open > head.lastIndexOf('>')) head = head.slice(0, open);
  const amp = head.lastIndexOf('&');
  if (amp !== -1 && amp > head.lastIndexOf(';')) head = head.slice(0, amp);
  return head + marker;
}

/** escapeMrkdwn, then cut to `max` (after escaping, so the result really fits). */
export function escapeTruncate(text: string, max: number, marker: string = TRUNCATION_MARKER): string {
  return truncateMrkdwn(escapeMrkdwn(text), max, marker);
}

function compactJson(value: unknown): string {
  try {
    const json = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
    return json ?? String(value);
  } catch {
    return '[unserializable]';
  }
}

/** A comma list of values, each formatted with formatValue; `empty` for an empty list. */
export function formatList(values: readonly unknown[], empty = '(none)'): string {
  if (values.length === 0) return empty;
  return values.map((v) => (Array.isArray(v) ? compactJson(v) : formatValue(v))).join(', ');
}

/**
 * Any JSON-ish value as one line of display text: strings as they are, numbers and booleans as
 * written, null/undefined as '—', arrays as comma lists (nested arrays and objects as JSON),
 * objects as compact JSON. Never throws.
 */
export function formatValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return String(value);
  }
  if (value === null || value === undefined) return '—';
  if (Array.isArray(value)) return formatList(value);
  return compactJson(value);
}
