import { describe, expect, it } from 'vitest';
import { jsonNeedle, redactText, redactValue } from '../../../src/core/erasure.js';

describe('redactValue', () => {
  it('redacts every string and every object key naming the subject, at any depth, without case', () => {
    const { value, changed } = redactValue(
      {
        to: ['x@acme.com', 'ADA@example.com'],
        'note:ada@example.com': { deep: 'by ada@example.com', keep: 7 },
        'Ada@Example.com': true,
        amount: 12,
      },
      'ada@example.com',
    );
    expect(changed).toBe(true);
    expect(value).toEqual({
      to: ['x@acme.com', '[redacted]'],
      '[redacted]': { deep: '[redacted]', keep: 7 },
      '[redacted] 2': true,
      amount: 12,
    });
  });

  it('changes nothing that does not name the subject', () => {
    const input = { a: ['b', { c: 'd' }], n: null, t: true };
    expect(redactValue(input, 'ada@example.com')).toEqual({ value: input, changed: false });
  });
});

describe('redactText and jsonNeedle', () => {
  it('redact a text column and find the subject inside stored JSON', () => {
    expect(redactText('mailto:Ada@example.com', 'ada@example.com')).toBe('[redacted]');
    expect(redactText(null, 'ada@example.com')).toBeNull();
    expect(redactText('mailto:bob@example.com', 'ada@example.com')).toBe('mailto:bob@example.com');
    expect(jsonNeedle('a "quoted" \\ name')).toBe('a \\"quoted\\" \\\\ name');
  });
});
