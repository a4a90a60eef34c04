import { sha256Hex } from './credentials.js';
import type { RandomBytes } from './ids.js';
import { pooledRandomBytes } from './randomPool.js';

/**
 * One-time tokens (DESIGN §4): `otp_v1_` + 43 base64url characters (32 random bytes). Only
 * SHA-256 hashes are stored; the SDK sends a hash commitment so the server never holds a token.
 */
export const TOKEN_PREFIX = 'otp_v1_';
const TOKEN_SHAPE = /^otp_v1_[A-Za-z0-9_-]{43}$/;
const HASH_SHAPE = /^[0-9a-f]{64}$/;

export function newToken(random: RandomBytes = pooledRandomBytes): string {
  return TOKEN_PREFIX + random(32).toString('base64url');
}

export const isTokenShape = (value: string): boolean => TOKEN_SHAPE.test(value);
export const isTokenHash = (value: string): boolean => HASH_SHAPE.test(value);

/** Lowercase hex SHA-256 of the token string: what the SDK sends as `tokenHash`. */
export const hashToken = (token: string): string => sha256Hex(token);
