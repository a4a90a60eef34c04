import { describe, expect, it } from 'vitest';
import {
  classifyKey,
  constantTimeEqualHex,
  DISPLAY_PREFIX_LENGTH,
  displayPrefix,
  newAgentKey,
  newOperatorKey,
  sha256Hex,
} from '../../src/core/credentials.js';
import { ID_PREFIXES, type IdKind, isId, newId, randomBase62 } from '../../src/core/ids.js';

/** A deterministic byte source cycling through `bytes`. */
function cycling(bytes: number[]) {
  let i = 0;
  return (size: number) => {
    const out = Buffer.alloc(size);
    for (let j = 0; j < size; j += 1) {
      out[j] = bytes[i % bytes.length] ?? 0;
      i += 1;
    }
    return out;
  };
}

describe('agent and operator keys', () => {
  it('agent keys are ak_live_/ak_test_ followed by at least 32 base62 characters', () => {
    expect(newAgentKey('live')).toMatch(/^ak_live_[A-Za-z0-9]{32,}$/);
    expect(newAgentKey('test')).toMatch(/^ak_test_[A-Za-z0-9]{32,}$/);
  });

  it('operator keys are uk_ followed by at least 32 base62 characters', () => {
    expect(newOperatorKey()).toMatch(/^uk_[A-Za-z0-9]{32,}$/);
  });

  it('are different every time', () => {
    const keys = new Set(Array.from({ length: 200 }, () => newAgentKey('live')));
    expect(keys.size).toBe(200);
    expect(newOperatorKey()).not.toBe(newOperatorKey());
  });

  it('come from the injected randomness', () => {
    const a = newAgentKey('live', cycling([1, 2, 3]));
    const b = newAgentKey('live', cycling([1, 2, 3]));
    expect(a).toBe(b);
    expect(a.startsWith('ak_live_123123')).toBe(true);
  });

  it('are recognised by classifyKey', () => {
    expect(classifyKey(newAgentKey('live'))).toEqual({ kind: 'agent', environment: 'live' });
    expect(classifyKey(newAgentKey('test'))).toEqual({ kind: 'agent', environment: 'test' });
    expect(classifyKey(newOperatorKey())).toEqual({ kind: 'operator' });
  });

  it('show only a short display prefix', () => {
    const key = newAgentKey('live');
    expect(displayPrefix(key)).toBe(key.slice(0, DISPLAY_PREFIX_LENGTH));
    expect(displayPrefix(key).startsWith('ak_live_')).toBe(true);
    expect(displayPrefix(key).length).toBeLessThan(key.length / 2);
  });
});

describe('classifyKey', () => {
  const base62 = (n: number) => 'aB3'.repeat(Math.ceil(n / 3)).slice(0, n);

  it.each([
    [`ak_live_${base62(32)}`, { kind: 'agent', environment: 'live' }],
    [`ak_test_${base62(40)}`, { kind: 'agent', environment: 'test' }],
    [`ak_live_${base62(128)}`, { kind: 'agent', environment: 'live' }],
    [`uk_${base62(29)}`, { kind: 'operator' }],
    [`uk_${base62(30)}-_x`, { kind: 'operator' }],
  ])('%s is %o', (key, expected) => {
    expect(classifyKey(key)).toEqual(expected);
  });

  it.each([
    ['empty', ''],
    ['an unknown environment', `ak_prod_${base62(40)}`],
    ['too short an agent key', `ak_live_${base62(31)}`],
    ['too long an agent key', `ak_live_${base62(129)}`],
    ['a non-base62 character', `ak_live_${base62(39)}-`],
    ['leading whitespace', ` ak_live_${base62(40)}`],
    ['trailing newline', `ak_live_${base62(40)}\n`],
    ['a Bearer prefix', `Bearer ak_live_${base62(40)}`],
    ['too short an operator key', `uk_${base62(28)}`],
    ['an operator key with a space', `uk_${base62(30)} x`],
    ['an OTP token', `otp_v1_${base62(43)}`],
    ['upper-case prefix', `AK_LIVE_${base62(40)}`],
  ])('refuses %s', (_name, key) => {
    expect(classifyKey(key)).toBeNull();
  });
});

describe('sha256Hex', () => {
  it('is lowercase hex SHA-256 of the UTF-8 string', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex('')).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    // UTF-8 bytes c3 a9, as `printf 'é' | sha256sum` computes it.
    expect(sha256Hex('é')).toBe('4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c');
    expect(sha256Hex('é')).not.toBe(sha256Hex('e\u0301'));
  });
});

describe('constantTimeEqualHex', () => {
  const a = sha256Hex('one');
  const b = sha256Hex('two');

  it('is true only for the same digest', () => {
    expect(constantTimeEqualHex(a, a)).toBe(true);
    expect(constantTimeEqualHex(a, `${a}`)).toBe(true);
    expect(constantTimeEqualHex(a, b)).toBe(false);
  });

  it('is false for a digest differing in its last byte', () => {
    const last = a.slice(-2) === '00' ? '01' : '00';
    expect(constantTimeEqualHex(a, a.slice(0, -2) + last)).toBe(false);
  });

  it('is false for different lengths and for empty input, without throwing', () => {
    expect(constantTimeEqualHex(a, a.slice(0, 32))).toBe(false);
    expect(constantTimeEqualHex('', '')).toBe(false);
    expect(constantTimeEqualHex(a, '')).toBe(false);
  });
});

describe('ids', () => {
  it.each(Object.entries(ID_PREFIXES) as [IdKind, string][])('%s ids start with %s', (kind, prefix) => {
    const id = newId(kind);
    expect(id).toMatch(new RegExp(`^${prefix}[A-Za-z0-9]{22}$`));
    expect(isId(kind, id)).toBe(true);
  });

  it('uses the documented prefixes', () => {
    expect(ID_PREFIXES).toMatchObject({ permission: 'perm_', agent: 'agent_', event: 'evt_' });
  });

  it('are unique', () => {
    expect(new Set(Array.from({ length: 1000 }, () => newId('event'))).size).toBe(1000);
  });

  it.each([
    ['another kind', 'perm_0123456789ABCDEFGHIJKL'],
    ['too short', 'agent_0123456789ABCDEFGHIJK'],
    ['too long', 'agent_0123456789ABCDEFGHIJKLM'],
    ['a non-base62 character', 'agent_0123456789ABCDEFGHIJ-L'],
    ['SQL', "agent_' OR 1=1 --xxxxxxxxxxx"],
    ['no prefix', '0123456789ABCDEFGHIJKL'],
    ['empty', ''],
  ])('isId refuses %s', (_name, value) => {
    expect(isId('agent', value)).toBe(false);
  });

  it('randomBase62 skips bytes that would bias the alphabet (248..255)', () => {
    // 248..255 would map onto 0..7 a second time if taken modulo 62.
    expect(randomBase62(4, cycling([248, 255, 61, 0, 250, 10]))).toBe('z0Az');
  });

  it('randomBase62 has the requested length and only base62 characters', () => {
    for (const length of [1, 22, 40, 100])
      expect(randomBase62(length)).toMatch(new RegExp(`^[A-Za-z0-9]{${length}}$`));
  });
});
