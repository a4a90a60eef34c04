import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { base64Decode, base64UrlEncode } from '../../src/sdk/encoding.js';
import { generateToken, hashToken, TOKEN_PATTERN } from '../../src/sdk/index.js';
import { generateIdempotencyKey } from '../../src/sdk/token.js';

describe('tokens', () => {
  it('are otp_v1_ + 43 base64url characters encoding 32 random bytes', () => {
    for (let i = 0; i < 200; i += 1) {
      const token = generateToken();
      expect(token).toMatch(TOKEN_PATTERN);
      expect(token).toMatch(/^otp_v1_[A-Za-z0-9_-]{43}$/);
      expect(base64Decode(token.slice('otp_v1_'.length))).toHaveLength(32);
    }
  });

  it('are all different', () => {
    const tokens = new Set(Array.from({ length: 1000 }, generateToken));
    expect(tokens.size).toBe(1000);
  });

  it('hash to the lowercase hex SHA-256 of the token string, as node:crypto computes it', async () => {
    for (let i = 0; i < 50; i += 1) {
      const token = generateToken();
      const expected = createHash('sha256').update(token).digest('hex');
      expect(await hashToken(token)).toBe(expected);
    }
    expect(await hashToken('otp_v1_')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('encode base64url exactly as Buffer does', () => {
    for (const length of [0, 1, 2, 3, 31, 32, 33]) {
      const bytes = new Uint8Array(length).map((_, i) => (i * 73 + 251) % 256);
      expect(base64UrlEncode(bytes)).toBe(Buffer.from(bytes).toString('base64url'));
    }
  });

  it('come with idempotency keys that fit the server’s limit', () => {
    const key = generateIdempotencyKey();
    expect(key).toMatch(/^sdk_[A-Za-z0-9_-]{24}$/);
    expect(generateIdempotencyKey()).not.toBe(key);
  });
});
