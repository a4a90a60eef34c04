import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logger.js';

/**
 * Encryption at rest for secrets the service must be able to use again (webhook signing secrets
 * cannot be hashed: they key an HMAC). AES-256-GCM with a random 96-bit IV per value and the
 * owner's identity as additional data, so a ciphertext moved to another row does not decrypt.
 *
 * Stored form: `v1:<key id>:<iv>:<tag>:<ciphertext>` (base64url parts); the key id (a short hash
 * of the key) lets a wrong key be told apart from tampering.
 */
export class SecretBox {
  readonly keyId: string;

  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('The secrets encryption key must be 32 bytes');
    this.keyId = createHash('sha256').update(key).digest('hex').slice(0, 8);
  }

  seal(plaintext: string, associatedData: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(associatedData, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [
      'v1',
      this.keyId,
      iv.toString('base64url'),
      tag.toString('base64url'),
      ciphertext.toString('base64url'),
    ].join(':');
  }

  /** Throws SecretBoxError when the value was sealed under another key, or altered. */
  open(sealed: string, associatedData: string): string {
    const [version, keyId, iv, tag, ciphertext] = sealed.split(':');
    if (version !== 'v1' || !keyId || !iv || !tag || ciphertext === undefined) {
      throw new SecretBoxError('unreadable encrypted secret');
    }
    if (keyId !== this.keyId) {
      throw new SecretBoxError(
        'the secret was encrypted with another SECRETS_ENCRYPTION_KEY (every instance must use the same key)',
      );
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(associatedData, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([
        decipher.update(Buffer.from(ciphertext, 'base64url')),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      throw new SecretBoxError('the encrypted secret failed its integrity check');
    }
  }
}

export class SecretBoxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretBoxError';
  }
}

export const SECRETS_KEY_FILE = 'secrets-key';

/** Decodes SECRETS_ENCRYPTION_KEY (base64 of 32 bytes); null when it is not one. */
export function decodeSecretsKey(value: string): Buffer | null {
  const trimmed = value.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) return null;
  const key = Buffer.from(trimmed, trimmed.includes('-') || trimmed.includes('_') ? 'base64url' : 'base64');
  return key.length === 32 ? key : null;
}

/**
 * The key that encrypts stored secrets: SECRETS_ENCRYPTION_KEY when set, otherwise one generated
 * on first start into <data dir>/secrets-key (mode 0600) — like the admin token. Every instance
 * sharing a database must use the same key; the file is only right for a single instance.
 * The key itself is never logged.
 */
export function loadSecretsKey(
  opts: { configured?: string; dataDir: string; sharedDatabase: boolean },
  logger: Logger,
): Buffer {
  if (opts.configured) {
    const key = decodeSecretsKey(opts.configured);
    if (!key) throw new Error('SECRETS_ENCRYPTION_KEY must be the base64 encoding of 32 bytes');
    return key;
  }
  const file = path.join(opts.dataDir, SECRETS_KEY_FILE);
  if (!existsSync(file)) {
    mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    try {
      writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600);
      logger.info({ file }, 'generated the secrets encryption key; it is in this file (mode 0600)');
    } catch (err) {
      // Another process on the same data dir wrote it first: use theirs.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  const key = decodeSecretsKey(readFileSync(file, 'utf8'));
  if (!key)
    throw new Error(`${file} does not hold a base64 32-byte key; restore it (or set SECRETS_ENCRYPTION_KEY)`);
  if (opts.sharedDatabase) {
    logger.warn(
      { file },
      'SECRETS_ENCRYPTION_KEY is not set: using the key file in the data dir. Every instance sharing this database must use the same key; set SECRETS_ENCRYPTION_KEY on all of them',
    );
  }
  return key;
}
