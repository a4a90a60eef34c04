import { describeScope } from '../core/scope/index.js';

/**
 * Cells for people, kept short so a table fits a terminal; `--json` keeps the full values.
 */

export function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** `45s`, `12m`, `3h`, `2d` since `iso` (a date in the future reads as `in 5m`). */
export function age(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) return '-';
  const ms = now.getTime() - new Date(iso).getTime();
  if (Number.isNaN(ms)) return '-';
  const s = Math.round(Math.abs(ms) / 1000);
  const text =
    s < 60
      ? `${s}s`
      : s < 3600
        ? `${Math.floor(s / 60)}m`
        : s < 86400
          ? `${Math.floor(s / 3600)}h`
          : `${Math.floor(s / 86400)}d`;
  return ms < 0 ? `in ${text}` : text;
}

/** The scope as the approval card words it, one line: `Max amount 50; Allowed recipients a, b`. */
export function scopeSummary(scope: Record<string, unknown>, max = 48): string {
  const rows = describeScope(scope);
  if (rows.length === 0) return '(any)';
  return truncate(rows.map((r) => `${r.label} ${r.value}`).join('; '), max);
}

/** The scope as label/value lines, for a detail view. */
export function scopeLines(scope: Record<string, unknown>): string[] {
  return describeScope(scope).map((r) => `${r.label}: ${r.value}`);
}
