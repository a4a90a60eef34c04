import { pooledRandomBytes } from './randomPool.js';

/** Source of randomness; injectable so tests can be deterministic. */
export type RandomBytes = (size: number) => Buffer;

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Unbiased base62 string (rejection sampling: 248 = 62 * 4). */
export function randomBase62(length: number, random: RandomBytes = pooledRandomBytes): string {
  let out = '';
  while (out.length < length) {
    for (const byte of random(length * 2)) {
      if (byte < 248) out += BASE62[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

export const ID_PREFIXES = {
  permission: 'perm_',
  agent: 'agent_',
  event: 'evt_',
  apiKey: 'key_',
  policy: 'pol_',
  operatorKey: 'opk_',
  approver: 'apr_',
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

export function newId(kind: IdKind, random: RandomBytes = pooledRandomBytes): string {
  return ID_PREFIXES[kind] + randomBase62(22, random);
}

/** Ids from URLs are checked for shape before they reach SQL, so junk is a clean 404. */
export function isId(kind: IdKind, value: string): boolean {
  const prefix = ID_PREFIXES[kind];
  return value.startsWith(prefix) && /^[A-Za-z0-9]{22}$/.test(value.slice(prefix.length));
}
