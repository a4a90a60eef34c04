/**
 * One-time tokens (DESIGN §4). The SDK makes the token itself and sends only its SHA-256, so the
 * server — its database, its logs, anyone reading its traffic — never holds a usable token.
 */
import { base64UrlEncode, hex, randomBytes, utf8, webCrypto } from './encoding.js';

export const TOKEN_PREFIX = 'otp_v1_';
/** `otp_v1_` + 43 base64url characters: 32 random bytes, unpadded. */
export const TOKEN_PATTERN = /^otp_v1_[A-Za-z0-9_-]{43}$/;

/** A new token from 32 bytes of the runtime's CSPRNG (`crypto.getRandomValues`). */
export function generateToken(): string {
  return TOKEN_PREFIX + base64UrlEncode(randomBytes(32));
}

/** Lowercase hex SHA-256 of the token string: the `tokenHash` commitment the server stores. */
export async function hashToken(token: string): Promise<string> {
  const digest = await webCrypto().subtle.digest('SHA-256', utf8(token));
  return hex(new Uint8Array(digest));
}

/**
 * A random idempotency key for a request the caller gave none for: retrying the same request
 * after a lost answer then returns the first permission instead of creating a second one.
 */
export function generateIdempotencyKey(): string {
  return `sdk_${base64UrlEncode(randomBytes(18))}`;
}
