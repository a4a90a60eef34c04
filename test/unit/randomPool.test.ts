import { describe, expect, it } from 'vitest';
import { isId, newId } from '../../src/core/ids.js';
import { pooledRandomBytes } from '../../src/core/randomPool.js';
import { isTokenShape, newToken } from '../../src/core/token.js';

describe('pooled random bytes', () => {
  it('never hands out the same bytes twice, across pool refills', () => {
    const seen = new Set<string>();
    // 32-byte draws over several 4 KiB pools: a repeated draw would mean reused bytes.
    for (let i = 0; i < 2000; i += 1) seen.add(pooledRandomBytes(32).toString('hex'));
    expect(seen.size).toBe(2000);
  });

  it('gives exactly the size asked for, including more than one pool holds', () => {
    for (const size of [1, 44, 4095, 4096, 5000]) expect(pooledRandomBytes(size).length).toBe(size);
  });

  it('keeps ids and tokens well formed and distinct', () => {
    const ids = Array.from({ length: 5000 }, () => newId('permission'));
    expect(ids.every((id) => isId('permission', id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    const tokens = Array.from({ length: 5000 }, () => newToken());
    expect(tokens.every(isTokenShape)).toBe(true);
    expect(new Set(tokens).size).toBe(tokens.length);
  });
});
