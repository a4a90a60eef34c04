import { describe, expect, it } from 'vitest';
import {
  codePointLength,
  escapeMrkdwn,
  escapeTruncate,
  formatList,
  formatValue,
  TRUNCATION_MARKER,
  truncate,
  truncateMrkdwn,
} from '../../../src/chat/text.js';

describe('truncate', () => {
  it('keeps text that fits', () => {
    expect(truncate('hello', 5)).toBe('hello');
    expect(truncate('', 0)).toBe('');
  });

  it('cuts with the marker, never exceeding max', () => {
    const out = truncate('x'.repeat(100), 20);
    expect(out).toBe('x'.repeat(20 - TRUNCATION_MARKER.length) + TRUNCATION_MARKER);
    expect(out.length).toBe(20);
    expect(truncate('abcdef', 4, '…')).toBe('abc…');
    expect(truncate('abcdef', 3, '')).toBe('abc');
  });

  it('returns a cut marker when even the marker does not fit', () => {
    expect(truncate('abcdefghijklmnopqrstuvwxyz', 5)).toBe(TRUNCATION_MARKER.slice(0, 5));
    expect(truncate('abc', 0)).toBe('');
  });

  it('never splits a surrogate pair', () => {
    const text = '😀'.repeat(20);
    for (let max = 0; max < 45; max++) {
      const out = truncate(text, max, '…');
      expect(out.length).toBeLessThanOrEqual(max);
      expect(out).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/);
    }
    expect(truncate('a😀b', 2, '')).toBe('a');
  });
});

describe('escapeMrkdwn', () => {
  it('escapes &, < and >', () => {
    expect(escapeMrkdwn('a & b <c> d')).toBe('a &amp; b &lt;c&gt; d');
    expect(escapeMrkdwn('&amp;')).toBe('&amp;amp;');
  });

  it('turns mentions and links into plain text', () => {
    for (const s of ['<!channel>', '<!here>', '<@U123>', '<#C123>', '<https://evil.example|bank.com>']) {
      const out = escapeMrkdwn(s);
      expect(out).not.toContain('<');
      expect(out).not.toContain('>');
    }
  });

  it('defuses bare @channel/@here/@everyone but leaves e-mail addresses alone', () => {
    expect(escapeMrkdwn('hey @channel and @Here')).toBe('hey @\u200bchannel and @\u200bHere');
    expect(escapeMrkdwn('@everyone')).toBe('@\u200beveryone');
    expect(escapeMrkdwn('ops@here.com')).toBe('ops@here.com');
  });
});

describe('truncateMrkdwn / escapeTruncate', () => {
  it('never leaves half an entity', () => {
    const out = escapeTruncate('<'.repeat(100), 20, '…');
    expect(out.length).toBeLessThanOrEqual(20);
    expect(out).toMatch(/^(&lt;)+…$/);
  });

  it('never leaves half a mention or date token', () => {
    const text = `${'a'.repeat(10)} <@U12345678> <!date^1700000000^{date}|2023-11-14>`;
    for (let max = 1; max < text.length; max++) {
      const out = truncateMrkdwn(text, max, '…');
      expect(out.length).toBeLessThanOrEqual(max);
      const body = out.replace(/…$/, '');
      expect((body.match(/</g) ?? []).length).toBe((body.match(/>/g) ?? []).length);
    }
  });
});

describe('formatValue', () => {
  it('formats scalars, arrays and objects', () => {
    expect(formatValue('x')).toBe('x');
    expect(formatValue(12.5)).toBe('12.5');
    expect(formatValue(true)).toBe('true');
    expect(formatValue(null)).toBe('—');
    expect(formatValue(undefined)).toBe('—');
    expect(formatValue(['a', 'b', 3])).toBe('a, b, 3');
    expect(formatValue([])).toBe('(none)');
    expect(formatValue([['x'], { a: 1 }])).toBe('["x"], {"a":1}');
    expect(formatValue({ a: 1, b: [1, 2] })).toBe('{"a":1,"b":[1,2]}');
    expect(formatValue(10n)).toBe('10');
    expect(formatList([], 'nothing')).toBe('nothing');
  });

  it('never throws on circular values', () => {
    const a: Record<string, unknown> = {};
    a['self'] = a;
    expect(formatValue(a)).toBe('[unserializable]');
  });

  it('counts code points', () => {
    expect(codePointLength('a😀b')).toBe(3);
  });
});
