/**
 * Byte/text helpers on web standards only (TextEncoder, btoa/atob, Web Crypto), so the SDK runs
 * unchanged in Node 20, Deno, browsers and edge runtimes — no `Buffer`, no `node:crypto`.
 */
import { AgentOTPError } from './errors.js';

const encoder = new TextEncoder();

/**
 * Bytes over a plain ArrayBuffer: what Web Crypto's typings accept (the DOM lib rejects views
 * that may sit on a SharedArrayBuffer).
 */
export type Bytes = Uint8Array<ArrayBuffer>;

export const utf8 = (text: string): Bytes => encoder.encode(text) as Bytes;

export function base64Encode(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function base64UrlEncode(bytes: Uint8Array): string {
  return base64Encode(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Decodes standard or URL-safe base64 (padding optional); throws on anything else. */
export function base64Decode(text: string): Bytes {
  const normalized = text.replace(/-/g, '+').replace(/_/g, '/');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(normalized)) throw new Error('not base64');
  const padded = normalized.padEnd(normalized.length + ((4 - (normalized.length % 4)) % 4), '=');
  const binary = atob(padded);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) out[i] = binary.charCodeAt(i);
  return out;
}

export function hex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

/** Compares without an early exit, so timing does not reveal how much of a signature matched. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i += 1) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

/** The runtime's Web Crypto, or a clear error naming what is missing (e.g. an old runtime). */
type WebCrypto = typeof globalThis.crypto;

export function webCrypto(): WebCrypto {
  const c = (globalThis as { crypto?: WebCrypto }).crypto;
  if (!c || typeof c.getRandomValues !== 'function' || !c.subtle) {
    throw new AgentOTPError(
      'Web Crypto (globalThis.crypto with getRandomValues and subtle) is not available in this runtime',
      { code: 'CRYPTO_UNAVAILABLE' },
    );
  }
  return c;
}

export function randomBytes(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  webCrypto().getRandomValues(bytes);
  return bytes;
}
