import { describe, expect, it } from 'vitest';
import { AppError } from '../../../src/core/errors.js';
import { globCovers, globMatch } from '../../../src/core/scope/glob.js';
import {
  applyModifications,
  assertNarrowing,
  checkActionDetails,
  checkTimeWindow,
  computeTotalIncrements,
  describeScope,
  narrowScope,
  parseScopeKey,
  type Scope,
  validateScope,
} from '../../../src/core/scope/index.js';

// Monday 2024-01-15 12:00 UTC (13:00 in Berlin).
const MONDAY_NOON = new Date('2024-01-15T12:00:00Z');
const check = (scope: Scope, details: Record<string, unknown> | undefined, totals?: Record<string, number>) =>
  checkActionDetails(scope, details, { now: MONDAY_NOON, ...(totals ? { totals } : {}) });
const keys = (scope: Scope, details: Record<string, unknown> | undefined, totals?: Record<string, number>) =>
  check(scope, details, totals).map((v) => v.key);

function thrown(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected an AppError');
}

describe('vocabulary', () => {
  it('parses keys, exact names and longest prefixes first', () => {
    expect(parseScopeKey('max_uses')).toEqual({ kind: 'max_uses' });
    expect(parseScopeKey('max_total_amount')).toEqual({ kind: 'max_total', field: 'amount' });
    expect(parseScopeKey('max_amount')).toEqual({ kind: 'max', field: 'amount' });
    expect(parseScopeKey('allowed_recipients')).toEqual({ kind: 'allowed', field: 'recipients' });
    expect(parseScopeKey('blocked_domains')).toEqual({ kind: 'blocked', field: 'domains' });
    expect(parseScopeKey('subject_pattern')).toEqual({ kind: 'pattern', field: 'subject' });
    expect(parseScopeKey('attachments_allowed')).toEqual({ kind: 'field_allowed', field: 'attachments' });
    expect(parseScopeKey('allowed_hours')).toEqual({ kind: 'allowed_hours' });
    expect(parseScopeKey('allowed_days')).toEqual({ kind: 'allowed_days' });
    expect(parseScopeKey('timezone')).toEqual({ kind: 'timezone' });
    expect(parseScopeKey('region')).toEqual({ kind: 'unknown' });
    expect(parseScopeKey('max_')).toEqual({ kind: 'unknown' });
    expect(parseScopeKey('_pattern')).toEqual({ kind: 'unknown' });
  });
});

describe('globs', () => {
  it('matches * and ?', () => {
    expect(globMatch('*@acme.com', 'bob@acme.com')).toBe(true);
    expect(globMatch('*@acme.com', 'bob@acme.com.evil.io')).toBe(false);
    expect(globMatch('file-?.txt', 'file-1.txt')).toBe(true);
    expect(globMatch('file-?.txt', 'file-12.txt')).toBe(false);
    expect(globMatch('a*b*c', 'axxbyyc')).toBe(true);
    expect(globMatch('*', '')).toBe(true);
    expect(globMatch('A', 'a')).toBe(false);
    expect(globMatch('A', 'a', { caseInsensitive: true })).toBe(true);
  });

  it('decides containment soundly', () => {
    expect(globCovers('*@acme.com', 'bob@acme.com')).toBe(true);
    expect(globCovers('*acme.com', '*@sales.acme.com')).toBe(true);
    expect(globCovers('*@acme.com', '*@sales.acme.com')).toBe(false); // x@sales.acme.com does not end in @acme.com
    expect(globCovers('*@sales.acme.com', '*acme.com')).toBe(false);
    expect(globCovers('*', '*@x.com')).toBe(true);
    expect(globCovers('a?c', 'a*c')).toBe(false);
    expect(globCovers('a*c', 'a?c')).toBe(true);
    expect(globCovers('bob@acme.com', '*@acme.com')).toBe(false);
  });
});

describe('checkActionDetails: max_<f>', () => {
  const scope = { max_amount: 100 };
  it('passes at or under the cap and fails over it', () => {
    expect(check(scope, { amount: 100 })).toEqual([]);
    expect(check(scope, { amount: 99.5 })).toEqual([]);
    const [v] = check(scope, { amount: 150 });
    expect(v).toMatchObject({ key: 'max_amount', field: 'amount', limit: 100, actual: 150 });
    expect(v?.message).toContain('100');
  });
  it('counts the entries of a list', () => {
    expect(check({ max_recipients: 2 }, { recipients: ['a', 'b'] })).toEqual([]);
    expect(keys({ max_recipients: 2 }, { recipients: ['a', 'b', 'c'] })).toEqual(['max_recipients']);
    expect(check({ max_recipients: 0 }, { recipients: [] })).toEqual([]);
  });
  it('reads a plain decimal string as its number, so quoting an amount does not bypass the cap', () => {
    expect(keys(scope, { amount: '1000000' })).toEqual(['max_amount']);
    expect(check(scope, { amount: '99' })).toEqual([]);
    expect(check(scope, { amount: '-5' })).toEqual([]);
    expect(check(scope, { amount: '99.99' })).toEqual([]);
    expect(keys(scope, { amount: '100.01' })).toEqual(['max_amount']);
  });
  it('refuses every other string instead of guessing what it means (defect 9)', () => {
    // Each of these passed max_amount: 100 before: read as its length (≤ 100), or "1e3" as 1000.
    const odd = [
      '1,000',
      '1000 USD',
      '1e3',
      '0x3e8',
      ' 50',
      '50 ',
      '+50',
      '.5',
      '5.',
      'Infinity',
      '',
      'fifty',
    ];
    for (const amount of odd) {
      const [v] = check(scope, { amount });
      expect(v, amount).toMatchObject({ key: 'max_amount', field: 'amount', limit: 100 });
      expect(v?.message, amount).toBe('amount must be a number or a plain decimal string');
    }
    // A string's length no longer counts either: `max_<f>` is a numeric cap.
    expect(keys({ max_subject: 5 }, { subject: 'hi' })).toEqual(['max_subject']);
  });
  it('reads list entries as values too: the larger of the count and the largest entry (defect 9)', () => {
    expect(keys(scope, { amount: [1000] })).toEqual(['max_amount']); // was: one entry ≤ 100
    expect(keys(scope, { amount: ['1000'] })).toEqual(['max_amount']);
    expect(keys(scope, { amount: [5, 101] })).toEqual(['max_amount']);
    expect(check(scope, { amount: [40, '60'] })).toEqual([]);
    expect(check({ max_amount: 3 }, { amount: [1, 1, 1] })).toEqual([]);
    expect(keys({ max_amount: 2 }, { amount: [1, 1, 1] })).toEqual(['max_amount']); // three entries
    // Entries that are not strings or finite numbers cannot be read.
    for (const entry of [{ v: 1 }, [1000], true, null]) {
      expect(keys(scope, { amount: [entry] }), JSON.stringify(entry)).toEqual(['max_amount']);
    }
    // Text that begins like a number is read as one: an amount cannot hide in a list entry.
    for (const entry of ['1,000', '5000 USD', 'USD 5000', '$1_000.50', '1e9', '0x3e8', ' 500', '-500']) {
      const expected = entry === '-500' ? [] : ['max_amount'];
      expect(keys(scope, { amount: [entry] }), entry).toEqual(expected);
    }
    expect(check(scope, { amount: ['50 USD'] })).toEqual([]);
    // Other text counts only as an entry (a list of recipients under max_recipients).
    expect(check({ max_recipients: 3 }, { recipients: ['a@x.io', 'bob2@x.io', 'Zoe 2000'] })).toEqual([]);
  });
  it('refuses values it cannot measure and passes absent ones', () => {
    expect(keys(scope, { amount: { value: 5 } })).toEqual(['max_amount']);
    expect(keys(scope, { amount: true })).toEqual(['max_amount']);
    expect(check(scope, {})).toEqual([]);
    expect(check(scope, { amount: null })).toEqual([]);
    expect(check(scope, undefined)).toEqual([]);
  });
  it('does not treat max_uses as a cap on a field', () => {
    expect(check({ max_uses: 1 }, { uses: 5 })).toEqual([]);
  });
});

describe('checkActionDetails: max_total_<f>', () => {
  const scope = { max_total_amount: 500 };
  it('adds this use to the totals so far', () => {
    expect(check(scope, { amount: 200 }, { amount: 300 })).toEqual([]);
    const [v] = check(scope, { amount: 201 }, { amount: 300 });
    expect(v).toMatchObject({ key: 'max_total_amount', field: 'amount', limit: 500, actual: 501 });
    expect(check(scope, { amount: 500 })).toEqual([]);
  });
  it('tolerates floating point sums and refuses negative contributions', () => {
    expect(check({ max_total_amount: 0.3 }, { amount: 0.2 }, { amount: 0.1 })).toEqual([]);
    expect(keys(scope, { amount: -1000 }, { amount: 0 })).toEqual(['max_total_amount']);
  });
  it('counts a list by the larger of its count and the sum of its entries (defect 9)', () => {
    // Each of these counted 1 (one list) towards the total before.
    expect(keys(scope, { amount: [1000] })).toEqual(['max_total_amount']);
    expect(keys(scope, { amount: [300, 300] })).toEqual(['max_total_amount']);
    expect(check(scope, { amount: [100, '150'] }, { amount: 250 })).toEqual([]);
    expect(keys(scope, { amount: [100, '151'] }, { amount: 250 })).toEqual(['max_total_amount']);
    expect(keys({ max_total_recipients: 2 }, { recipients: ['a', 'b', 'c'] })).toEqual([
      'max_total_recipients',
    ]);
    expect(keys(scope, { amount: [-100, 200] })).toEqual(['max_total_amount']); // negative: refused
    expect(keys(scope, { amount: ['5,000'] })).toEqual(['max_total_amount']);
    expect(keys(scope, { amount: ['300 USD', '$300'] })).toEqual(['max_total_amount']);
    expect(keys(scope, { amount: ['-5,000', '5,000'] })).toEqual(['max_total_amount']); // negative
    const [v] = check(scope, { amount: '1,000' });
    expect(v?.message).toBe(
      'amount must be a number or a plain decimal string, so it cannot be counted towards its cumulative cap',
    );
  });
  it('adds to the totals exactly what the check counted', () => {
    const s = { max_total_amount: 5000, max_total_recipients: 10 };
    expect(computeTotalIncrements(s, { amount: '300', recipients: ['a', 'b', 'c'] })).toEqual({
      amount: 300,
      recipients: 3,
    });
    expect(computeTotalIncrements(s, { amount: [100, '250'], recipients: [] })).toEqual({
      amount: 350,
      recipients: 0,
    });
    expect(computeTotalIncrements(s, { amount: [1, 1, 1] })).toEqual({ amount: 3, recipients: 0 });
    expect(computeTotalIncrements(s, { amount: ['a', 'b', '1'] })).toEqual({ amount: 3, recipients: 0 });
  });
  it('computes per-use increments keyed by field, 0 when absent', () => {
    const s = { max_total_amount: 500, max_total_recipients: 10, max_amount: 100 };
    expect(computeTotalIncrements(s, { amount: 42, recipients: ['a', 'b'] })).toEqual({
      amount: 42,
      recipients: 2,
    });
    expect(computeTotalIncrements(s, {})).toEqual({ amount: 0, recipients: 0 });
    expect(computeTotalIncrements(s, undefined)).toEqual({ amount: 0, recipients: 0 });
  });
});

describe('checkActionDetails: allowed_<f>', () => {
  const scope = { allowed_recipients: ['*@acme.com', 'partner@example.org'] };
  it('accepts listed and glob-matched values, singular and plural fields', () => {
    expect(check(scope, { recipients: ['bob@acme.com', 'partner@example.org'] })).toEqual([]);
    expect(check(scope, { recipient: 'alice@acme.com' })).toEqual([]);
  });
  it('refuses a value outside the list in either form', () => {
    const [v] = check(scope, { recipients: ['bob@acme.com', 'eve@evil.com'] });
    expect(v).toMatchObject({ key: 'allowed_recipients', field: 'recipients', actual: ['eve@evil.com'] });
    expect(v?.message).not.toContain('eve@evil.com');
    expect(check(scope, { recipient: 'eve@evil.com' })[0]).toMatchObject({ field: 'recipient' });
    expect(keys(scope, { recipient: 'bob@acme.com.evil.io' })).toEqual(['allowed_recipients']);
  });
  it('handles -ies, -es and -s plurals', () => {
    expect(keys({ allowed_categories: ['books'] }, { category: 'guns' })).toEqual(['allowed_categories']);
    expect(keys({ allowed_addresses: ['1 Main St'] }, { address: '2 Side St' })).toEqual([
      'allowed_addresses',
    ]);
    expect(keys({ allowed_domains: ['acme.com'] }, { domain: 'evil.com' })).toEqual(['allowed_domains']);
    expect(check({ allowed_domains: ['acme.com'] }, { domain: 'acme.com' })).toEqual([]);
    // a singular key also covers the plural field
    expect(keys({ allowed_recipient: ['a@x.com'] }, { recipients: ['b@x.com'] })).toEqual([
      'allowed_recipient',
    ]);
  });
  it('refuses non-scalar values, passes absent fields, and an empty list allows nothing', () => {
    expect(keys(scope, { recipients: [{ email: 'bob@acme.com' }] })).toEqual(['allowed_recipients']);
    expect(check(scope, { subject: 'hi' })).toEqual([]);
    expect(keys({ allowed_recipients: [] }, { recipient: 'a@x.com' })).toEqual(['allowed_recipients']);
  });
});

describe('checkActionDetails: blocked_<f>', () => {
  const scope = { blocked_domains: ['*.ru', 'evil.com'] };
  it('refuses a blocked value (case-insensitively) and passes others', () => {
    expect(keys(scope, { domain: 'EVIL.com' })).toEqual(['blocked_domains']);
    expect(keys(scope, { domains: ['ok.com', 'mail.ru'] })).toEqual(['blocked_domains']);
    expect(check(scope, { domains: ['ok.com'] })).toEqual([]);
    expect(check(scope, {})).toEqual([]);
  });
  it('compares trimmed, NFKC and lower-case forms, so padding or full-width letters do not dodge it', () => {
    expect(keys(scope, { domain: ' evil.com ' })).toEqual(['blocked_domains']);
    expect(keys(scope, { domain: 'ｅｖｉｌ.com' })).toEqual(['blocked_domains']);
    expect(keys(scope, { domain: 'MAIL.RU\t' })).toEqual(['blocked_domains']);
  });
});

describe('checkActionDetails: <f>_pattern', () => {
  const scope = { subject_pattern: '^Invoice #\\d+$' };
  it('matches anywhere like RegExp#test, so ^…$ anchors the whole value', () => {
    expect(check(scope, { subject: 'Invoice #123' })).toEqual([]);
    expect(keys(scope, { subject: 'Re: Invoice #123' })).toEqual(['subject_pattern']);
    expect(keys(scope, { subject: 'Invoice #123 and more' })).toEqual(['subject_pattern']);
    expect(check({ subject_pattern: 'Invoice' }, { subject: 'Your Invoice #1' })).toEqual([]);
  });
  it('checks every element of an array and every pattern of a list', () => {
    expect(keys(scope, { subjects: ['Invoice #1', 'Hello'] })).toEqual(['subject_pattern']);
    const both = { subject_pattern: ['^Invoice', '\\d$'] };
    expect(check(both, { subject: 'Invoice #1' })).toEqual([]);
    expect(keys(both, { subject: 'Invoice #x' })).toEqual(['subject_pattern']);
  });
  it('passes an absent field and compares numbers as text', () => {
    expect(check(scope, {})).toEqual([]);
    expect(check({ zip_pattern: '^\\d{5}$' }, { zip: 12345 })).toEqual([]);
  });
  it('fails closed on a value longer than 4096 characters (defect 1)', () => {
    expect(check({ body_pattern: '(a+)+!$' }, { body: `${'a'.repeat(4095)}!` })).toEqual([]);
    const [v] = check({ body_pattern: '(a+)+!$' }, { body: `${'a'.repeat(4096)}!` });
    expect(v).toMatchObject({ key: 'body_pattern', field: 'body' });
    expect(v?.message).toBe(
      'body could not be checked against the pattern: longer than 4096 characters, the most a pattern is matched against',
    );
  });
  it('fails closed when many values would take more than the work limit of one call (defect 1)', () => {
    // 1000 instructions × 300 characters fits one call's budget; 50 such values do not.
    const scope = { subject_pattern: '^(?:a|[^z]{995})' };
    expect(check(scope, { subject: 'a'.repeat(300) })).toEqual([]);
    const [v] = check(scope, { subjects: Array.from({ length: 50 }, () => 'a'.repeat(300)) });
    expect(v).toMatchObject({ key: 'subject_pattern', field: 'subjects' });
    expect(v?.message).toContain('work limit of one call');
  });
  it('fails closed on a stored pattern over the bounds (stored before they existed)', () => {
    const attack = `${'.{1000}'.repeat(10)}[^a]`;
    const [v] = check({ subject_pattern: attack }, { subject: 'a'.repeat(60_000) });
    expect(v).toMatchObject({
      key: 'subject_pattern',
      message: 'scope rule subject_pattern is malformed, so it cannot be satisfied',
    });
  });
});

describe('checkActionDetails: <f>_allowed', () => {
  const scope = { attachments_allowed: false };
  it('requires the field to be absent or false', () => {
    expect(check(scope, {})).toEqual([]);
    expect(check(scope, { attachments: false })).toEqual([]);
    expect(keys(scope, { attachments: ['a.pdf'] })).toEqual(['attachments_allowed']);
    expect(keys(scope, { attachment: 'a.pdf' })).toEqual(['attachments_allowed']);
    expect(check({ attachments_allowed: true }, { attachments: ['a.pdf'] })).toEqual([]);
  });
});

describe('checkActionDetails: general', () => {
  it('ignores keys outside the vocabulary and reports several violations in key order', () => {
    expect(check({ region: 'eu' }, { region: 'us' })).toEqual([]);
    const v = check({ max_amount: 10, allowed_currencies: ['EUR'] }, { amount: 11, currency: 'USD' });
    expect(v.map((x) => x.key)).toEqual(['max_amount', 'allowed_currencies']);
  });
  it('never reads inherited members for __proto__ / constructor fields', () => {
    expect(check({ max_constructor: 1 }, {})).toEqual([]);
    expect(check({ allowed_constructor: ['x'] }, {})).toEqual([]);
    const hostile = JSON.parse('{"__proto__": 1000}') as Record<string, unknown>;
    expect(keys({ max___proto__: 5 }, hostile)).toEqual(['max___proto__']);
  });
  it('treats a null scope as no restriction and a non-object scope as corrupt', () => {
    expect(checkActionDetails(null, { amount: 5 }, { now: MONDAY_NOON })).toEqual([]);
    expect(checkActionDetails('x' as unknown as Scope, {}, { now: MONDAY_NOON })[0]?.key).toBe('scope');
  });
  it('fails closed on a malformed rule and on non-object actionDetails', () => {
    expect(keys({ max_amount: 'lots' }, { amount: 1 })).toEqual(['max_amount']);
    expect(keys({ subject_pattern: '(' }, { subject: 'x' })).toEqual(['subject_pattern']);
    expect(
      checkActionDetails({ max_amount: 1 }, [] as unknown as Record<string, unknown>, { now: MONDAY_NOON }),
    ).toHaveLength(1);
  });
});

describe('time windows', () => {
  const at = (iso: string) => new Date(iso);
  it('allows inside and refuses outside the hours (UTC default, end exclusive)', () => {
    const scope = { allowed_hours: { start: 9, end: 17 } };
    expect(checkTimeWindow(scope, at('2024-01-15T09:00:00Z'))).toEqual([]);
    expect(checkTimeWindow(scope, at('2024-01-15T16:59:00Z'))).toEqual([]);
    const [v] = checkTimeWindow(scope, at('2024-01-15T17:00:00Z'));
    expect(v).toMatchObject({ key: 'allowed_hours', field: 'time', actual: '17:00 UTC' });
  });
  it('reads the hours in the scope time zone, HH:MM strings included', () => {
    const scope = { allowed_hours: { start: '09:30', end: '17:00' }, timezone: 'Europe/Berlin' };
    expect(checkTimeWindow(scope, at('2024-01-15T08:30:00Z'))).toEqual([]); // 09:30 Berlin (CET)
    expect(checkTimeWindow(scope, at('2024-01-15T08:29:00Z'))).toHaveLength(1);
    expect(checkTimeWindow(scope, at('2024-07-15T15:30:00Z'))).toHaveLength(1); // 17:30 CEST
    expect(checkTimeWindow(scope, at('2024-07-15T14:30:00Z'))).toEqual([]); // 16:30 CEST
  });
  it('handles a window that wraps midnight', () => {
    const scope = { allowed_hours: { start: '22:00', end: '06:00' }, timezone: 'America/New_York' };
    expect(checkTimeWindow(scope, at('2024-01-16T04:00:00Z'))).toEqual([]); // 23:00 NY
    expect(checkTimeWindow(scope, at('2024-01-16T10:00:00Z'))).toEqual([]); // 05:00 NY
    expect(checkTimeWindow(scope, at('2024-01-16T11:00:00Z'))).toHaveLength(1); // 06:00 NY
    expect(checkTimeWindow(scope, at('2024-01-15T17:00:00Z'))).toHaveLength(1); // 12:00 NY
  });
  it('checks allowed days (names, full names, numbers) in the time zone', () => {
    expect(checkTimeWindow({ allowed_days: ['mon', 'Tue'] }, MONDAY_NOON)).toEqual([]);
    expect(checkTimeWindow({ allowed_days: ['Tuesday'] }, MONDAY_NOON)[0]).toMatchObject({
      key: 'allowed_days',
      actual: 'mon',
    });
    expect(checkTimeWindow({ allowed_days: [1] }, MONDAY_NOON)).toEqual([]);
    // Monday 23:30 UTC is already Tuesday in Tokyo
    const late = at('2024-01-15T23:30:00Z');
    expect(checkTimeWindow({ allowed_days: ['tue'], timezone: 'Asia/Tokyo' }, late)).toEqual([]);
    expect(checkTimeWindow({ allowed_days: ['tue'] }, late)).toHaveLength(1);
  });
  it('is part of checkActionDetails and fails closed on a bad zone', () => {
    expect(keys({ allowed_hours: { start: 0, end: 1 } }, {})).toEqual(['allowed_hours']);
    expect(
      checkTimeWindow({ allowed_hours: { start: 0, end: 24 }, timezone: 'Mars/Base' }, MONDAY_NOON)[0]?.key,
    ).toBe('timezone');
    expect(checkTimeWindow({ timezone: 'Europe/Berlin' }, MONDAY_NOON)).toEqual([]);
  });
});

describe('validateScope', () => {
  const pathOf = (scope: unknown) => {
    const err = thrown(() => validateScope(scope));
    expect(err.code).toBe('VALIDATION_ERROR');
    return (err.details as { path: string }).path;
  };
  it('accepts a well-formed scope', () => {
    expect(() =>
      validateScope({
        max_uses: 3,
        max_amount: 0,
        max_total_amount: 1000.5,
        allowed_recipients: ['*@acme.com'],
        blocked_domains: [],
        subject_pattern: '^Invoice #\\d+$',
        body_pattern: ['a', 'b'],
        attachments_allowed: false,
        allowed_hours: { start: '09:00', end: 24 },
        allowed_days: ['mon', 'Friday', 0],
        timezone: 'Europe/Berlin',
        anything: { nested: true },
      }),
    ).not.toThrow();
  });
  it('rejects malformed vocabulary values with their path', () => {
    expect(pathOf(null)).toBe('');
    expect(pathOf({ max_amount: -1 })).toBe('max_amount');
    expect(pathOf({ max_amount: '100' })).toBe('max_amount');
    expect(pathOf({ max_total_amount: Number.POSITIVE_INFINITY })).toBe('max_total_amount');
    expect(pathOf({ max_uses: 0 })).toBe('max_uses');
    expect(pathOf({ max_uses: 1.5 })).toBe('max_uses');
    // max_uses and uses_remaining are 32-bit integer columns.
    expect(pathOf({ max_uses: 2 ** 31 })).toBe('max_uses');
    expect(pathOf({ max_uses: 2 ** 53 })).toBe('max_uses');
    expect(() => validateScope({ max_uses: 2 ** 31 - 1 })).not.toThrow();
    expect(pathOf({ allowed_recipients: 'a@x.com' })).toBe('allowed_recipients');
    expect(pathOf({ blocked_domains: ['ok', 3] })).toBe('blocked_domains[1]');
    expect(pathOf({ subject_pattern: '(unclosed' })).toBe('subject_pattern');
    expect(pathOf({ subject_pattern: '(?=lookahead)' })).toBe('subject_pattern');
    expect(pathOf({ subject_pattern: ['ok', '['] })).toBe('subject_pattern[1]');
    expect(pathOf({ attachments_allowed: 'no' })).toBe('attachments_allowed');
    expect(pathOf({ allowed_hours: { start: 25, end: 3 } })).toBe('allowed_hours');
    expect(pathOf({ allowed_hours: { start: '9am', end: '17:00' } })).toBe('allowed_hours');
    expect(pathOf({ allowed_days: ['someday'] })).toBe('allowed_days');
    expect(pathOf({ timezone: 'Nowhere/City' })).toBe('timezone');
  });
  it('refuses patterns over the bounds, naming the key (defect 1)', () => {
    const attack = `${'.{1000}'.repeat(10)}[^a]`; // 74 characters, 10 003 instructions: was accepted
    expect(pathOf({ subject_pattern: attack })).toBe('subject_pattern');
    expect(thrown(() => validateScope({ subject_pattern: attack })).message).toContain('too large');
    expect(pathOf({ subject_pattern: '.{600}.{600}' })).toBe('subject_pattern');
    expect(thrown(() => validateScope({ s_pattern: '.{600}.{600}' })).message).toContain(
      'compiles to 1202 instructions (at most 1000)',
    );
    expect(pathOf({ subject_pattern: 'x'.repeat(1001) })).toBe('subject_pattern');
    expect(pathOf({ subject_pattern: ['ok', attack] })).toBe('subject_pattern[1]');
    expect(() => validateScope({ subject_pattern: '.{998}' })).not.toThrow();
    // Together: five patterns of ~900 instructions pass one by one but not as one scope.
    const five = Object.fromEntries([1, 2, 3, 4, 5].map((i) => [`f${i}_pattern`, `[^z]{${890 + i}}`]));
    expect(pathOf(five)).toBe('f5_pattern');
    expect(thrown(() => validateScope(five)).message).toContain('together compile to more than 4000');
  });
});

describe('narrowScope', () => {
  it('takes the minimum of every cap, including max_uses and totals', () => {
    expect(
      narrowScope(
        { max_amount: 100, max_uses: 5, max_total_amount: 1000 },
        { max_amount: 50, max_uses: 10, max_total_amount: 500 },
      ),
    ).toEqual({ max_amount: 50, max_uses: 5, max_total_amount: 500 });
  });
  it('intersects allow-lists, glob-aware', () => {
    const out = narrowScope(
      { allowed_recipients: ['*@acme.com', 'partner@example.org'] },
      { allowed_recipients: ['bob@acme.com', 'eve@evil.com', 'partner@example.org'] },
    );
    expect(out['allowed_recipients']).toEqual(['partner@example.org', 'bob@acme.com']);
    expect(narrowScope({ allowed_x: ['a'] }, { allowed_x: ['b'] })).toEqual({ allowed_x: [] });
    expect(narrowScope({ allowed_x: ['*@sales.acme.com'] }, { allowed_x: ['*acme.com'] })).toEqual({
      allowed_x: ['*@sales.acme.com'],
    });
  });
  it('unions block-lists, keeps both patterns, lets false win for _allowed', () => {
    expect(
      narrowScope(
        {
          blocked_domains: ['a.com'],
          subject_pattern: '^Inv',
          links_allowed: true,
          attachments_allowed: false,
        },
        {
          blocked_domains: ['b.com', 'a.com'],
          subject_pattern: '\\d$',
          links_allowed: false,
          attachments_allowed: true,
        },
      ),
    ).toEqual({
      blocked_domains: ['a.com', 'b.com'],
      subject_pattern: ['^Inv', '\\d$'],
      links_allowed: false,
      attachments_allowed: false,
    });
    expect(narrowScope({ subject_pattern: 'x' }, { subject_pattern: 'x' })).toEqual({ subject_pattern: 'x' });
  });
  it('keeps keys found on one side only, and the narrower side for unknown keys', () => {
    expect(narrowScope({ max_amount: 10, note: 'a' }, { allowed_currencies: ['EUR'], note: 'b' })).toEqual({
      max_amount: 10,
      note: 'b',
      allowed_currencies: ['EUR'],
    });
  });
  it('intersects time windows in the same zone', () => {
    expect(
      narrowScope(
        {
          allowed_hours: { start: 8, end: 18 },
          allowed_days: ['mon', 'tue', 'wed'],
          timezone: 'Europe/Berlin',
        },
        {
          allowed_hours: { start: '09:30', end: 20 },
          allowed_days: ['tue', 'wed', 'thu'],
          timezone: 'europe/berlin',
        },
      ),
    ).toEqual({
      allowed_hours: { start: '09:30', end: '18:00' },
      allowed_days: ['tue', 'wed'],
      timezone: 'Europe/Berlin',
    });
    // keeps the original spelling when one window is inside the other
    expect(
      narrowScope({ allowed_hours: { start: 0, end: 24 } }, { allowed_hours: { start: 9, end: 17 } }),
    ).toEqual({
      allowed_hours: { start: 9, end: 17 },
    });
    // wrapping windows
    expect(
      narrowScope({ allowed_hours: { start: 22, end: 6 } }, { allowed_hours: { start: 23, end: 8 } })[
        'allowed_hours'
      ],
    ).toEqual({ start: '23:00', end: '06:00' });
    // an intersection in two pieces becomes a list of windows, and is enforced as such
    const split = narrowScope(
      { allowed_hours: { start: 22, end: 6 } },
      { allowed_hours: { start: 5, end: 23 } },
    );
    expect(split['allowed_hours']).toEqual([
      { start: '05:00', end: '06:00' },
      { start: '22:00', end: '23:00' },
    ]);
    expect(checkTimeWindow(split, new Date('2024-01-15T05:30:00Z'))).toEqual([]);
    expect(checkTimeWindow(split, new Date('2024-01-15T12:00:00Z'))).toHaveLength(1);
    // disjoint windows: nothing allowed
    const none = narrowScope(
      { allowed_hours: { start: 9, end: 12 } },
      { allowed_hours: { start: 13, end: 17 } },
    );
    expect(none['allowed_hours']).toEqual([]);
    expect(checkTimeWindow(none, new Date('2024-01-15T10:00:00Z'))).toHaveLength(1);
  });
  it('takes the restricted side of the time group, or the narrower one across zones', () => {
    expect(
      narrowScope({ allowed_hours: { start: 9, end: 17 }, timezone: 'Europe/Berlin' }, { timezone: 'UTC' }),
    ).toEqual({ allowed_hours: { start: 9, end: 17 }, timezone: 'Europe/Berlin' });
    expect(
      narrowScope(
        { allowed_hours: { start: 9, end: 17 }, timezone: 'Europe/Berlin' },
        { allowed_days: ['mon'] },
      ),
    ).toEqual({ allowed_days: ['mon'] });
  });
  it('gives a result that is a narrowing of both inputs (same zone)', () => {
    const a: Scope = {
      max_amount: 100,
      max_uses: 3,
      allowed_recipients: ['*@acme.com', 'x@y.org'],
      blocked_domains: ['a.com'],
      subject_pattern: '^Inv',
      allowed_hours: { start: 22, end: 6 },
      allowed_days: ['mon', 'tue'],
    };
    const b: Scope = {
      max_amount: 50,
      max_uses: 5,
      allowed_recipients: ['bob@acme.com', '*@y.org'],
      blocked_domains: ['b.com'],
      subject_pattern: '\\d$',
      links_allowed: false,
      allowed_hours: { start: 5, end: 23 },
      allowed_days: ['tue', 'wed'],
    };
    const out = narrowScope(a, b);
    expect(() => assertNarrowing(a, out)).not.toThrow();
    expect(() => assertNarrowing(b, out)).not.toThrow();
    expect(narrowScope(out, out)).toEqual(out);
  });
  it('validates both inputs and is safe with __proto__ keys', () => {
    expect(thrown(() => narrowScope({ max_amount: -5 }, {})).code).toBe('VALIDATION_ERROR');
    const hostile = JSON.parse('{"__proto__": {"polluted": true}, "max_amount": 5}') as Scope;
    const out = narrowScope({ max_amount: 10 }, hostile);
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(Object.hasOwn(out, '__proto__')).toBe(true);
    expect(out['max_amount']).toBe(5);
  });
});

describe('assertNarrowing / applyModifications', () => {
  const granted: Scope = {
    max_amount: 100,
    max_total_amount: 1000,
    max_uses: 3,
    allowed_recipients: ['*@acme.com', 'partner@example.org'],
    blocked_domains: ['evil.com'],
    subject_pattern: '^Invoice',
    attachments_allowed: false,
    allowed_hours: { start: 9, end: 17 },
    allowed_days: ['mon', 'tue'],
    timezone: 'Europe/Berlin',
    note: 'quarterly',
  };
  const refusal = (proposed: Scope) => {
    const err = thrown(() => assertNarrowing(granted, proposed));
    expect(err.code).toBe('SCOPE_WIDENING');
    const details = err.details as { key: string };
    expect(err.message).toContain(details.key);
    return details;
  };
  const modified = (mods: Record<string, unknown>) => ({ ...granted, ...mods });

  it('accepts identical and narrower scopes', () => {
    expect(() => assertNarrowing(granted, granted)).not.toThrow();
    expect(() =>
      assertNarrowing(
        granted,
        modified({
          max_amount: 50,
          max_uses: 1,
          allowed_recipients: ['bob@acme.com'],
          blocked_domains: ['evil.com', 'bad.com'],
          subject_pattern: ['^Invoice', '\\d$'],
          allowed_hours: { start: '10:00', end: '12:00' },
          allowed_days: ['mon'],
          max_size: 10,
        }),
      ),
    ).not.toThrow();
  });
  it('refuses each kind of widening, naming the key', () => {
    expect(refusal(modified({ max_amount: 101 }))).toEqual({
      key: 'max_amount',
      granted: 100,
      proposed: 101,
    });
    expect(refusal(modified({ max_total_amount: 2000 })).key).toBe('max_total_amount');
    expect(refusal(modified({ max_uses: 4 })).key).toBe('max_uses');
    expect(refusal(modified({ allowed_recipients: ['*@acme.com', 'eve@evil.com'] })).key).toBe(
      'allowed_recipients',
    );
    expect(refusal(modified({ allowed_recipients: ['*'] })).key).toBe('allowed_recipients');
    expect(refusal(modified({ blocked_domains: [] })).key).toBe('blocked_domains');
    expect(refusal(modified({ subject_pattern: '.*' })).key).toBe('subject_pattern');
    expect(refusal(modified({ attachments_allowed: true })).key).toBe('attachments_allowed');
    expect(refusal(modified({ allowed_hours: { start: 8, end: 17 } })).key).toBe('allowed_hours');
    expect(refusal(modified({ allowed_days: ['mon', 'sat'] })).key).toBe('allowed_days');
    expect(refusal(modified({ timezone: 'America/New_York' })).key).toBe('timezone');
    expect(refusal(modified({ note: 'changed' })).key).toBe('note');
  });
  it('refuses removing a restricting key', () => {
    for (const key of [
      'max_amount',
      'allowed_recipients',
      'blocked_domains',
      'subject_pattern',
      'attachments_allowed',
      'allowed_hours',
    ]) {
      const { [key]: _removed, ...rest } = granted;
      expect(refusal(rest).key).toBe(key);
    }
    // an absent max_uses means 1, so adding max_uses: 2 to a scope without it widens
    expect(thrown(() => assertNarrowing({}, { max_uses: 2 })).code).toBe('SCOPE_WIDENING');
  });
  it('applies partial modifications that narrow, equal to narrowScope in effect', () => {
    const mods = { max_amount: 40, allowed_recipients: ['bob@acme.com'], max_size: 10 };
    const out = applyModifications(granted, mods);
    expect(out).toEqual({ ...granted, ...mods });
    expect(out).toEqual(narrowScope(granted, mods));
    expect(Object.keys(out)).toEqual([...Object.keys(granted), 'max_size']);
  });
  it('refuses modifications that widen or remove, and validates them', () => {
    expect(thrown(() => applyModifications(granted, { max_amount: 500 })).code).toBe('SCOPE_WIDENING');
    expect(thrown(() => applyModifications(granted, { max_amount: null })).code).toBe('SCOPE_WIDENING');
    expect(thrown(() => applyModifications(granted, { max_amount: 'ten' })).code).toBe('VALIDATION_ERROR');
    expect(applyModifications(granted, { max_amount: undefined })).toEqual(granted);
  });
});

describe('describeScope', () => {
  it('renders rows for approval cards', () => {
    expect(
      describeScope({
        max_amount: 100,
        max_total_amount: 500,
        allowed_recipients: ['a@x.com', 'b@y.com'],
        subject_pattern: '^Invoice #\\d+$',
        attachments_allowed: false,
        allowed_hours: { start: 9, end: '17:00' },
        allowed_days: ['mon', 'Tuesday'],
        timezone: 'Europe/Berlin',
        cost_center: 'ops',
      }),
    ).toEqual([
      { key: 'max_amount', label: 'Max amount', value: '100' },
      { key: 'max_total_amount', label: 'Max total amount', value: '500' },
      { key: 'allowed_recipients', label: 'Allowed recipients', value: 'a@x.com, b@y.com' },
      { key: 'subject_pattern', label: 'Subject must match', value: '/^Invoice #\\d+$/' },
      { key: 'attachments_allowed', label: 'Attachments allowed', value: 'No' },
      { key: 'allowed_hours', label: 'Allowed hours', value: '09:00–17:00 Europe/Berlin' },
      { key: 'allowed_days', label: 'Allowed days', value: 'Mon, Tue' },
      { key: 'cost_center', label: 'Cost center', value: 'ops' },
    ]);
  });
  it('shows the zone with days alone, wrapping windows, and never throws on odd values', () => {
    expect(describeScope({ allowed_days: [1, 5] })).toEqual([
      { key: 'allowed_days', label: 'Allowed days', value: 'Mon, Fri (UTC)' },
    ]);
    expect(describeScope({ allowed_hours: { start: 22, end: 6 } })[0]?.value).toBe('22:00–06:00 UTC');
    expect(describeScope({ max_uses: 'x', allowed_x: 3, weird: { a: [1] } }).map((r) => r.value)).toEqual([
      'x',
      '3',
      '{"a":[1]}',
    ]);
  });
});

describe('large allow-lists', () => {
  it('narrows and checks a 5000-entry allow-list without comparing every pair', async () => {
    const { applyModifications, narrowScope } = await import('../../../src/core/scope/index.js');
    const list = Array.from({ length: 5000 }, (_, i) => `user${i}@acme.com`);
    const started = performance.now();
    const narrowed = narrowScope(
      { allowed_recipients: list },
      { allowed_recipients: [...list, '*@acme.com'] },
    );
    const trimmed = applyModifications(
      { allowed_recipients: list },
      { allowed_recipients: list.slice(0, 4000) },
    );
    const elapsed = performance.now() - started;
    expect(narrowed.allowed_recipients).toHaveLength(5000);
    expect(trimmed.allowed_recipients).toHaveLength(4000);
    // Pairwise glob comparison took ~15 s for 2000 entries; the indexed check is milliseconds.
    expect(elapsed).toBeLessThan(2000);
  });
});

describe('work limits on per-value matching (defect 1 siblings)', () => {
  it('an allow-list of wildcard entries against many long values fails closed instead of stalling', () => {
    // 700 wildcard entries (~30 KiB scope) × 60 values of 1000 characters: 5.5 s before.
    const entries = Array.from({ length: 700 }, (_, i) => `*${'a'.repeat(40)}b${i}`);
    const values = Array.from({ length: 60 }, () => 'a'.repeat(1000));
    const [v] = check({ allowed_recipients: entries }, { recipients: values });
    expect(v).toMatchObject({ key: 'allowed_recipients', field: 'recipients' });
    expect(v?.message).toContain('work limit of one call');
    const [b] = check({ blocked_recipients: entries }, { recipients: values });
    expect(b).toMatchObject({ key: 'blocked_recipients' });
    expect(b?.message).toContain('work limit of one call');
    // Plain entries are looked up, not compared: a 5000-entry list costs nothing.
    const plain = Array.from({ length: 5000 }, (_, i) => `user${i}@acme.com`);
    expect(check({ allowed_recipients: plain }, { recipients: plain })).toEqual([]);
  });

  it('narrowing two long wildcard allow-lists is refused, naming the key, instead of taking seconds', () => {
    // 800 wildcard entries under a `*` template: 7 s before.
    const requested = {
      allowed_recipients: Array.from(
        { length: 800 },
        (_, i) => `*${String(i).padStart(4, '0')}${'a'.repeat(33)}`,
      ),
    };
    const err = thrown(() => narrowScope(requested, { allowed_recipients: ['*'] }));
    expect(err.code).toBe('VALIDATION_ERROR');
    expect(err.details).toEqual({ path: 'allowed_recipients' });
    expect(err.message).toContain('work limit');
    // A modest list still narrows.
    expect(
      narrowScope({ allowed_recipients: ['*@acme.com', 'bob@x.io'] }, { allowed_recipients: ['*'] }),
    ).toEqual({
      allowed_recipients: ['*@acme.com', 'bob@x.io'],
    });
  });

  it('an approver change to such a list cannot be proven narrower within the limit: SCOPE_WIDENING', () => {
    const granted = {
      allowed_recipients: Array.from(
        { length: 800 },
        (_, i) => `*${String(i).padStart(4, '0')}${'a'.repeat(33)}`,
      ),
    };
    const err = thrown(() =>
      applyModifications(granted, { allowed_recipients: [...granted.allowed_recipients].reverse() }),
    );
    expect(err.code).toBe('SCOPE_WIDENING');
    expect(err.message).toContain('work limit');
  });

  it('an approver cannot add a pattern over the bounds', () => {
    const err = thrown(() =>
      applyModifications({ max_uses: 1 }, { subject_pattern: `${'.{1000}'.repeat(10)}[^a]` }),
    );
    expect(err.code).toBe('VALIDATION_ERROR');
    expect(err.details).toEqual({ path: 'subject_pattern' });
  });
});
