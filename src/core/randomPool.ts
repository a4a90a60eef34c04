import { randomBytes } from 'node:crypto';

/**
 * Random bytes for ids and tokens, cut from a pool filled 4 KiB at a time: the hot paths ask
 * for ~50 bytes several times per call (an id for the permission and each audit event, a
 * token), and one call into the CSPRNG per call showed as ~4 % of the server's CPU under load.
 * Same source (crypto.randomBytes), every byte handed out once; Node's randomUUID does the same.
 */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let offset = 0;

export function pooledRandomBytes(size: number): Buffer {
  if (size > POOL_BYTES) return randomBytes(size);
  if (offset + size > pool.length) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  const bytes = pool.subarray(offset, offset + size);
  offset += size;
  return bytes;
}
