/**
 * Erasure of a person's data (GDPR): the pure part. A value "names the subject" when any string
 * in it — a value or an object key, at any depth — contains the subject, compared without case.
 * Such strings become "[redacted]"; everything else is kept, so what the row still says (an
 * amount, a status) stays true.
 */

export const REDACTED = '[redacted]';

/** A subject shorter than this would erase far more than one person (`a`, `@x`). */
export const MIN_SUBJECT_LENGTH = 3;

/** The subject as a search needle inside stored JSON text (quotes and backslashes escaped). */
export function jsonNeedle(subject: string): string {
  return JSON.stringify(subject).slice(1, -1);
}

export function namesSubject(text: string, subject: string): boolean {
  return text.toLowerCase().includes(subject.toLowerCase());
}

/** Replaces every string (deep) and every object key that contains `subject` with "[redacted]". */
export function redactValue(value: unknown, subject: string): { value: unknown; changed: boolean } {
  let changed = false;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') {
      if (namesSubject(v, subject)) {
        changed = true;
        return REDACTED;
      }
      return v;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, inner] of Object.entries(v as Record<string, unknown>)) {
        let key = k;
        if (namesSubject(k, subject)) {
          changed = true;
          // Two erased keys in one object stay two entries: `[redacted]`, `[redacted] 2`, …
          key = REDACTED;
          for (let n = 2; Object.hasOwn(out, key); n += 1) key = `${REDACTED} ${n}`;
        }
        out[key] = walk(inner);
      }
      return out;
    }
    return v;
  };
  const result = walk(value);
  return { value: result, changed };
}

/** A nullable text column: "[redacted]" when it names the subject. */
export function redactText(value: string | null, subject: string): string | null {
  return value !== null && namesSubject(value, subject) ? REDACTED : value;
}
