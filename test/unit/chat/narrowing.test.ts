import { describe, expect, it } from 'vitest';
import {
  FORM_FIELD,
  modificationsFromForm,
  type NarrowingInput,
  narrowingForm,
  REASON_FIELD,
} from '../../../src/chat/narrowing.js';

const SCOPE = {
  max_amount: 100,
  max_total_amount: 500,
  max_uses: 3,
  allowed_recipients: ['a@acme.com', 'b@acme.com', '*@partner.com'],
  allowed_currencies: ['EUR', 'EUR', 'USD'],
  blocked_domains: ['evil.com'],
  subject_pattern: '^Invoice',
  allowed_hours: { start: 9, end: 17 },
  allowed_days: ['mon', 'tue'],
  note: 'free text',
};

const input = (partial: Partial<NarrowingInput> = {}): NarrowingInput => ({
  caps: {},
  lists: {},
  ...partial,
});

function errorsOf(scope: Record<string, unknown>, i: NarrowingInput): Record<string, string> {
  const result = modificationsFromForm(scope, i);
  if (result.ok) throw new Error(`expected errors, got ${JSON.stringify(result)}`);
  return result.errors;
}

describe('narrowingForm', () => {
  it('lists every numeric cap with its value and every allow-list with its values', () => {
    const form = narrowingForm(SCOPE);
    expect(form.caps).toEqual([
      { key: 'max_amount', label: 'Max amount', current: 100 },
      { key: 'max_total_amount', label: 'Max total amount', current: 500 },
      { key: 'max_uses', label: 'Max uses', current: 3 },
    ]);
    expect(form.lists).toEqual([
      {
        key: 'allowed_recipients',
        label: 'Allowed recipients',
        values: ['a@acme.com', 'b@acme.com', '*@partner.com'],
      },
      { key: 'allowed_currencies', label: 'Allowed currencies', values: ['EUR', 'USD'] },
    ]);
  });

  it('leaves out malformed values, empty lists and time keys', () => {
    const form = narrowingForm({
      max_amount: 'lots',
      max_uses: 1.5,
      max_size: -1,
      allowed_x: [],
      allowed_y: [1, 2],
      allowed_days: ['mon'],
      allowed_hours: { start: 1, end: 2 },
    });
    expect(form).toEqual({ caps: [], lists: [] });
  });
});

describe('modificationsFromForm', () => {
  it('accepts lowering a cap and omits unchanged fields', () => {
    const result = modificationsFromForm(
      SCOPE,
      input({
        caps: { max_amount: '50', max_total_amount: '500', max_uses: ' 2 ' },
        lists: { allowed_currencies: ['EUR', 'USD'] },
        reason: '  only half  ',
      }),
    );
    expect(result).toMatchObject({
      ok: true,
      scopeModifications: { max_amount: 50, max_uses: 2 },
      reason: 'only half',
    });
    if (!result.ok) return;
    expect(Object.keys(result.scopeModifications)).toEqual(['max_amount', 'max_uses']);
    expect(result.scope['max_amount']).toBe(50);
    expect(result.scope['max_total_amount']).toBe(500);
    expect(result.scope['allowed_days']).toEqual(['mon', 'tue']);
  });

  it('accepts decimals and zero for ordinary caps', () => {
    const result = modificationsFromForm(
      SCOPE,
      input({ caps: { max_amount: '99.5', max_total_amount: '0' } }),
    );
    expect(result).toMatchObject({ ok: true, scopeModifications: { max_amount: 99.5, max_total_amount: 0 } });
  });

  it('treats no changes as an empty modification and an empty reason as none', () => {
    expect(modificationsFromForm(SCOPE, input({ reason: '   ' }))).toMatchObject({
      ok: true,
      scopeModifications: {},
      reason: null,
    });
  });

  it('refuses raising a cap, naming the granted limit', () => {
    expect(errorsOf(SCOPE, input({ caps: { max_amount: '150' } }))).toEqual({
      max_amount: 'Can only be lowered (granted: 100)',
    });
    expect(errorsOf(SCOPE, input({ caps: { max_uses: '4' } }))['max_uses']).toBe(
      'Can only be lowered (granted: 3)',
    );
  });

  it('refuses anything that is not a plain non-negative number', () => {
    for (const raw of ['abc', '', '  ', '1e2', '0x10', 'Infinity', 'NaN', '1,5', '10 EUR']) {
      const errors = errorsOf(SCOPE, input({ caps: { max_amount: raw } }));
      expect(errors['max_amount'], raw).toMatch(/number.*\(granted: 100\)/);
    }
    expect(errorsOf(SCOPE, input({ caps: { max_amount: '-5' } }))['max_amount']).toBe(
      'Must be 0 or more (granted: 100)',
    );
  });

  it('requires max_uses to be a whole number of at least 1', () => {
    for (const raw of ['0', '1.5', '-1']) {
      expect(errorsOf(SCOPE, input({ caps: { max_uses: raw } }))['max_uses'], raw).toBe(
        'Must be a whole number of at least 1 (granted: 3)',
      );
    }
    expect(modificationsFromForm(SCOPE, input({ caps: { max_uses: '1' } }))).toMatchObject({
      ok: true,
      scopeModifications: { max_uses: 1 },
    });
  });

  it('trims an allow-list, keeping granted order', () => {
    const result = modificationsFromForm(
      SCOPE,
      input({ lists: { allowed_recipients: ['*@partner.com', 'a@acme.com', 'a@acme.com'] } }),
    );
    expect(result).toMatchObject({
      ok: true,
      scopeModifications: { allowed_recipients: ['a@acme.com', '*@partner.com'] },
    });
  });

  it('allows an empty selection, meaning nothing is allowed', () => {
    const result = modificationsFromForm(SCOPE, input({ lists: { allowed_recipients: [] } }));
    expect(result).toMatchObject({ ok: true, scopeModifications: { allowed_recipients: [] } });
  });

  it('refuses entries that were not in the granted list (even ones a glob covers)', () => {
    const errors = errorsOf(
      SCOPE,
      input({ lists: { allowed_recipients: ['a@acme.com', 'x@partner.com', 'eve@evil.com'] } }),
    );
    expect(errors['allowed_recipients']).toBe('Not in the granted list: x@partner.com, eve@evil.com');
  });

  it('refuses keys that are not caps or lists of this scope', () => {
    const errors = errorsOf(
      SCOPE,
      input({
        caps: { max_weight: '1', blocked_domains: '1' },
        lists: { allowed_days: ['mon'], blocked_domains: [] },
      }),
    );
    expect(errors['max_weight']).toBe('Not a limit of this permission');
    expect(errors['allowed_days']).toBe('Not a list of this permission');
    expect(errors['blocked_domains']).toBe('Not a limit of this permission · Not a list of this permission');
  });

  it('reports every field error at once, and a too-long reason', () => {
    const errors = errorsOf(
      SCOPE,
      input({
        caps: { max_amount: '101', max_uses: 'x' },
        lists: { allowed_currencies: ['GBP'] },
        reason: 'r'.repeat(2001),
      }),
    );
    expect(Object.keys(errors).sort()).toEqual(
      ['allowed_currencies', 'max_amount', 'max_uses', REASON_FIELD].sort(),
    );
  });

  it('refuses a reason the database cannot store (NUL, lone surrogate) on the form', () => {
    for (const reason of ['ok\u0000', 'half \ud83d']) {
      expect(Object.keys(errorsOf(SCOPE, input({ reason })))).toEqual([REASON_FIELD]);
    }
    expect(modificationsFromForm(SCOPE, input({ reason: 'fine 😀' }))).toMatchObject({ ok: true });
  });

  it('is safe with prototype-named keys', () => {
    const caps = JSON.parse('{"__proto__": "1"}') as Record<string, string>;
    const errors = errorsOf(SCOPE, input({ caps }));
    expect(Object.keys(errors)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('maps an applyModifications failure to a field (malformed granted scope → form error)', () => {
    // A granted scope that fails validation: the double check refuses, on the form as a whole.
    const errors = errorsOf({ max_amount: 10, subject_pattern: '(' }, input({ caps: { max_amount: '5' } }));
    expect(Object.keys(errors)).toEqual([FORM_FIELD]);
    expect(errors[FORM_FIELD]).toMatch(/subject_pattern/);
  });
});
