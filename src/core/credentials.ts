import { createHash, timingSafeEqual } from 'node:crypto';
import { type RandomBytes, randomBase62 } from './ids.js';

/**
 * Agent keys (`ak_live_…`, `ak_test_…`) and operator keys (`uk_…`). Only the SHA-256 of a key is
 * stored; a short display prefix lets people tell keys apart without revealing them.
 */
export type AgentEnvironment = 'live' | 'test';

const KEY_RANDOM_LENGTH = 40;
export const DISPLAY_PREFIX_LENGTH = 12;

export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

const HEX = /^(?:[0-9a-f]{2})+$/i;

export function constantTimeEqualHex(a: string, b: string): boolean {
  // Buffer.from(…, 'hex') stops at the first non-hex character, so check the shape first.
  if (!HEX.test(a) || !HEX.test(b)) return false;
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right);
}

export function newAgentKey(environment: AgentEnvironment, random?: RandomBytes): string {
  return `ak_${environment}_${randomBase62(KEY_RANDOM_LENGTH, random)}`;
}

export function newOperatorKey(random?: RandomBytes): string {
  return `uk_${randomBase62(KEY_RANDOM_LENGTH, random)}`;
}

export function displayPrefix(key: string): string {
  return key.slice(0, DISPLAY_PREFIX_LENGTH);
}

export type KeyKind = { kind: 'agent'; environment: AgentEnvironment } | { kind: 'operator' };

/** Classifies a presented key by shape only; whether it exists is the store's question. */
export function classifyKey(key: string): KeyKind | null {
  if (/^ak_(live|test)_[A-Za-z0-9]{32,128}$/.test(key)) {
    return { kind: 'agent', environment: key.startsWith('ak_live_') ? 'live' : 'test' };
  }
  if (/^uk_[A-Za-z0-9_-]{29,128}$/.test(key)) return { kind: 'operator' };
  return null;
}
