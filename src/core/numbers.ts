/**
 * How a value chosen by an agent is read as a number, shared by scope caps and policy
 * comparisons. Only two shapes are numbers: a finite JSON number, and a plain decimal string
 * (optional '-', digits, optional '.digits'). Everything a person or a downstream tool might
 * also read as a number — "1,000", "1000 USD", "1e3", "0x3e8", " 1000", "Infinity" — is not
 * readable here, so a caller can refuse it instead of guessing what it means: a guess that
 * differs from the downstream reading is exactly how a cap gets dodged.
 */

const PLAIN_DECIMAL = /^-?\d+(?:\.\d+)?$/;

export const isPlainDecimal = (text: string): boolean => PLAIN_DECIMAL.test(text);

/** The value as a finite number, or null when it is not one of the two readable shapes. */
export function readNumber(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (typeof value === 'string' && isPlainDecimal(value)) {
    const n = Number(value);
    return Number.isFinite(n) ? n : null; // 400 digits read as Infinity: not a usable amount
  }
  return null;
}
