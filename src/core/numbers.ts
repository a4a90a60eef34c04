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

/**
 * The number a lenient reader (a payment tool, a spreadsheet, a person) would take from text that
 * begins like one, after an optional sign, currency symbol or upper-case currency code: "5,000",
 * "5000 USD", "USD 5000", "$1_000.50", "1e9", "0x3e8". Null when the text does not begin like a
 * number ("bob2@example.com"). For list entries under a cap, where text is allowed (a list of
 * recipients is counted) but must not hide an amount: the stricter of the readings counts.
 */
const LEADING_HEX = /^\s*([+-]?)0x([0-9a-f]+)/i;
const LEADING_NUMBER = /^\s*(?:[A-Z]{3}\s+)?[^\p{L}\d+-]*([+-]?\d[\d,_' ]*(?:\.\d+)?(?:[eE][+-]?\d+)?)/u;

export function lenientNumber(text: string): number | null {
  const hex = LEADING_HEX.exec(text);
  if (hex) {
    const n = Number.parseInt(hex[2] ?? '', 16);
    return Number.isFinite(n) ? (hex[1] === '-' ? -n : n) : null;
  }
  const match = LEADING_NUMBER.exec(text);
  if (!match?.[1]) return null;
  const n = Number(match[1].replace(/[,_' ]/g, ''));
  return Number.isFinite(n) ? n : null;
}
