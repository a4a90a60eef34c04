import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Clock } from '../core/clock.js';
import { classifyKey, displayPrefix, newOperatorKey, sha256Hex } from '../core/credentials.js';
import { newId } from '../core/ids.js';
import type { Logger } from '../logger.js';
import type { Db } from '../store/db.js';
import { ensureOperatorKey, revokeOtherBootstrapKeys } from '../store/operatorKeyRepository.js';

export const ADMIN_TOKEN_FILE = 'admin-token';

export function adminTokenPath(dataDir: string): string {
  return path.join(dataDir, ADMIN_TOKEN_FILE);
}

/**
 * Makes sure an operator can get in on a fresh install. ADMIN_TOKEN, when set, is the bootstrap
 * key. Otherwise the first start writes a generated key to <data dir>/admin-token (mode 0600)
 * and logs that file's path — never the key itself.
 */
export async function ensureBootstrapOperatorKey(
  db: Db,
  opts: { adminToken?: string; dataDir: string },
  clock: Clock,
  logger: Logger,
): Promise<void> {
  let key = opts.adminToken;
  let source = 'ADMIN_TOKEN';
  if (!key) {
    const file = adminTokenPath(opts.dataDir);
    source = file;
    if (existsSync(file)) {
      key = readFileSync(file, 'utf8').trim();
      if (classifyKey(key)?.kind !== 'operator') {
        throw new Error(`${file} does not hold a uk_ operator key; remove it to generate a new one`);
      }
    } else {
      key = newOperatorKey();
      mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
      writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600);
      logger.info({ file }, 'generated the bootstrap operator key; it is in this file (mode 0600)');
    }
  }
  const keyHash = sha256Hex(key);
  const { created, retired } = await db.transaction(async (tx) => ({
    created: await ensureOperatorKey(tx, {
      id: newId('operatorKey'),
      name: 'bootstrap',
      keyHash,
      keyPrefix: displayPrefix(key),
      createdAt: clock.now(),
    }),
    // A changed ADMIN_TOKEN is a rotation: the previous bootstrap key stops working.
    retired: await revokeOtherBootstrapKeys(tx, keyHash, clock.now()),
  }));
  if (created) logger.info({ source }, 'registered the bootstrap operator key');
  if (retired) logger.info({ retired }, 'revoked the previous bootstrap operator key');
}
