import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, KNOWN_VARIABLES, loadConfig, SECRET_VARIABLES } from '../../src/config.js';
import { classifyKey } from '../../src/core/credentials.js';
import { newWebhookSecret } from '../../src/core/webhook.js';

const dir = mkdtempSync(path.join(tmpdir(), 'aotp-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
function secretFile(contents: string): string {
  fileCount += 1;
  const file = path.join(dir, `secret-${fileCount}`);
  writeFileSync(file, contents, { mode: 0o600 });
  return file;
}

const ADMIN_TOKEN = `uk_${'A1b2C3d4'.repeat(5)}`;

/** The ConfigError thrown for this environment (fails the test if none is thrown). */
function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('applies documented defaults and defaults no secret', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      NODE_ENV: 'production',
      LOG_LEVEL: 'info',
      PORT: 3000,
      HOST: '127.0.0.1',
      TRUST_PROXY: false,
      DATABASE_POOL_SIZE: 20,
      AGENT_OTP_DATA_DIR: './.agent-otp',
      REDIS_KEY_PREFIX: 'aotp',
      AUTH_FAILURES_PER_MIN: 30,
    });
    expect(config.dataDir).toBe(path.resolve('./.agent-otp'));
    for (const name of SECRET_VARIABLES) expect(config[name as keyof typeof config]).toBeUndefined();
  });

  it('parses numbers, booleans and URLs from their string form', () => {
    const config = loadConfig({
      PORT: '8443',
      TRUST_PROXY: 'yes',
      DATABASE_URL: 'postgresql://app:pw@db.internal:5432/otp',
      REDIS_URL: 'rediss://cache.internal:6380',
      AGENT_OTP_DATA_DIR: '/var/lib/agent-otp',
      AUTH_FAILURES_PER_MIN: '5',
    });
    expect(config.PORT).toBe(8443);
    expect(config.TRUST_PROXY).toBe(true);
    expect(config.DATABASE_URL).toBe('postgresql://app:pw@db.internal:5432/otp');
    expect(config.REDIS_URL).toBe('rediss://cache.internal:6380');
    expect(config.dataDir).toBe('/var/lib/agent-otp');
    expect(config.AUTH_FAILURES_PER_MIN).toBe(5);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ PORT: '', DATABASE_URL: '' })).toMatchObject({ PORT: 3000, DATABASE_URL: undefined });
  });

  it('returns a frozen object', () => {
    const config = loadConfig({});
    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      (config as { PORT: number }).PORT = 1;
    }).toThrow(TypeError);
    expect(config.PORT).toBe(3000);
  });

  describe('refuses a bad value with a ConfigError naming the variable', () => {
    it.each([
      ['PORT', 'abc'],
      ['PORT', '70000'],
      ['PORT', '-1'],
      ['LOG_LEVEL', 'loud'],
      ['NODE_ENV', 'staging'],
      ['TRUST_PROXY', 'maybe'],
      ['DATABASE_POOL_SIZE', '0'],
      ['PUBLIC_URL', 'ftp://example.com'],
      ['REDIS_KEY_PREFIX', 'has space'],
      ['AUTH_FAILURES_PER_MIN', '0'],
    ])('%s=%s', (name, value) => {
      const err = configError({ [name]: value });
      expect(err.message).toContain(name);
    });
  });

  describe('never echoes a secret back in the error', () => {
    const cases: [string, string][] = [
      ['ADMIN_TOKEN', 'uk_tooShortSecret9'],
      ['ADMIN_TOKEN', 'not-an-operator-key-but-a-long-secret-value-3141592653'],
      ['ADMIN_TOKEN', `uk_${'x'.repeat(30)}!hunter2`],
      ['DATABASE_URL', 'mysql://app:hunter2-db-password@db.internal/otp'],
      ['DATABASE_URL', 'hunter2-db-password-not-a-url'],
      ['REDIS_URL', 'http://:hunter2-redis-password@cache.internal:6379'],
    ];
    it.each(cases)('%s=%s', (name, value) => {
      const err = configError({ [name]: value });
      expect(err.message).toContain(name);
      expect(err.message).not.toContain(value);
      expect(err.message).not.toContain('hunter2');
      expect(err.message).not.toContain('Secret9');
    });

    it('nor when the secret came from a file', () => {
      const err = configError({ DATABASE_URL_FILE: secretFile('mysql://u:hunter2-file@h/db\n') });
      expect(err.message).toContain('DATABASE_URL');
      expect(err.message).not.toContain('hunter2');
    });
  });

  it('accepts a valid uk_ ADMIN_TOKEN', () => {
    expect(loadConfig({ ADMIN_TOKEN }).ADMIN_TOKEN).toBe(ADMIN_TOKEN);
  });

  // A token the config accepts but the authenticator can never recognise locks the operator out
  // with a bare INVALID_API_KEY; the start should refuse it instead.
  it('accepts only ADMIN_TOKEN values that can authenticate as an operator key', () => {
    for (const length of [32, 64, 131, 132, 200]) {
      const token = `uk_${'a'.repeat(length - 3)}`;
      let accepted: boolean;
      try {
        loadConfig({ ADMIN_TOKEN: token });
        accepted = true;
      } catch (err) {
        expect((err as Error).message).toContain('ADMIN_TOKEN');
        accepted = false;
      }
      expect({ length, accepted }).toEqual({ length, accepted: classifyKey(token)?.kind === 'operator' });
    }
  });

  describe('NAME_FILE variants', () => {
    it('read a secret from a file, without its trailing newline', () => {
      const config = loadConfig({
        ADMIN_TOKEN_FILE: secretFile(`${ADMIN_TOKEN}\n`),
        DATABASE_URL_FILE: secretFile('postgres://app:pw@db/otp\n'),
        REDIS_URL_FILE: secretFile('redis://127.0.0.1:6379'),
      });
      expect(config.ADMIN_TOKEN).toBe(ADMIN_TOKEN);
      expect(config.DATABASE_URL).toBe('postgres://app:pw@db/otp');
      expect(config.REDIS_URL).toBe('redis://127.0.0.1:6379');
    });

    it('cover every variable the documentation says accepts one', () => {
      // .env.example names the secrets that take NAME_FILE; each must really read the file.
      const key = Buffer.alloc(32, 7).toString('base64');
      const config = loadConfig({ SECRETS_ENCRYPTION_KEY_FILE: secretFile(`${key}\n`) });
      expect(config.SECRETS_ENCRYPTION_KEY).toBe(key);
      const header = readFileSync('.env.example', 'utf8').split('\n# ---')[0] ?? '';
      for (const name of header.match(/\b[A-Z][A-Z0-9_]{3,}\b/g) ?? []) {
        if (name.endsWith('_FILE') || !KNOWN_VARIABLES.includes(name)) continue;
        expect(SECRET_VARIABLES as readonly string[]).toContain(name);
      }
    });

    it('exist for every secret variable', () => {
      for (const name of SECRET_VARIABLES) expect(KNOWN_VARIABLES).toContain(`${name}_FILE`);
      expect(KNOWN_VARIABLES).not.toContain('PORT_FILE');
    });

    it('refuse NAME and NAME_FILE set together', () => {
      const err = configError({ ADMIN_TOKEN, ADMIN_TOKEN_FILE: secretFile(ADMIN_TOKEN) });
      expect(err.message).toContain('ADMIN_TOKEN');
      expect(err.message).toContain('ADMIN_TOKEN_FILE');
      expect(err.message).not.toContain(ADMIN_TOKEN);
    });

    it('name the variable when the file cannot be read', () => {
      const err = configError({ DATABASE_URL_FILE: path.join(dir, 'does-not-exist') });
      expect(err.message).toContain('DATABASE_URL_FILE');
      expect(err.message).toContain('ENOENT');
    });

    it('validate the file contents like the variable', () => {
      const err = configError({ ADMIN_TOKEN_FILE: secretFile('uk_short\n') });
      expect(err.message).toContain('ADMIN_TOKEN');
      expect(err.message).not.toContain('uk_short');
    });
  });

  describe('TLS', () => {
    it('refuses TLS_CERT_FILE without TLS_KEY_FILE, and the reverse', () => {
      expect(configError({ TLS_CERT_FILE: '/etc/tls/cert.pem' }).message).toContain('TLS_KEY_FILE');
      expect(configError({ TLS_KEY_FILE: '/etc/tls/key.pem' }).message).toContain('TLS_CERT_FILE');
    });

    it('accepts both together', () => {
      expect(loadConfig({ TLS_CERT_FILE: '/c.pem', TLS_KEY_FILE: '/k.pem' })).toMatchObject({
        TLS_CERT_FILE: '/c.pem',
        TLS_KEY_FILE: '/k.pem',
      });
    });
  });
});

describe('alert webhooks', () => {
  const URL_ = 'https://alerts.example.com/hooks/agent-otp';
  const secret = (bytes: number) => `whsec_${randomBytes(bytes).toString('base64')}`;

  it('accept a URL with a whsec_ secret of 24 bytes or more, also from a file', () => {
    const value = secret(32);
    expect(loadConfig({ ALERT_WEBHOOK_URL: URL_, ALERT_WEBHOOK_SECRET: value })).toMatchObject({
      ALERT_WEBHOOK_URL: URL_,
      ALERT_WEBHOOK_SECRET: value,
    });
    const short = secret(24);
    expect(loadConfig({ ALERT_WEBHOOK_URL: URL_, ALERT_WEBHOOK_SECRET: short }).ALERT_WEBHOOK_SECRET).toBe(
      short,
    );
    // The secrets agents get work too.
    const agentLike = newWebhookSecret();
    expect(loadConfig({ ALERT_WEBHOOK_SECRET: agentLike }).ALERT_WEBHOOK_SECRET).toBe(agentLike);
    const fromFile = loadConfig({
      ALERT_WEBHOOK_URL: URL_,
      ALERT_WEBHOOK_SECRET_FILE: secretFile(`${value}\n`),
    });
    expect(fromFile.ALERT_WEBHOOK_SECRET).toBe(value);
    expect(KNOWN_VARIABLES).toContain('ALERT_WEBHOOK_SECRET_FILE');
  });

  it('refuse a URL without a secret, naming ALERT_WEBHOOK_SECRET', () => {
    const err = configError({ ALERT_WEBHOOK_URL: URL_ });
    expect(err.message).toContain('ALERT_WEBHOOK_SECRET');
    expect(err.message).toContain('required');
  });

  it('refuse a URL that is not http or https', () => {
    expect(configError({ ALERT_WEBHOOK_URL: 'ftp://alerts.example.com/x' }).message).toContain(
      'ALERT_WEBHOOK_URL',
    );
  });

  it.each([
    ['too short (16 bytes)', `whsec_${randomBytes(16).toString('base64')}`],
    ['no whsec_ prefix', randomBytes(32).toString('base64')],
    ['not base64', `whsec_${'hunter2!'.repeat(6)}`],
    [
      'base64url instead of base64',
      `whsec_${Buffer.from('\xfb'.repeat(32), 'latin1').toString('base64url')}`,
    ],
    ['unpadded', `whsec_${randomBytes(32).toString('base64').replace(/=+$/, '')}`],
  ])('refuse a malformed secret (%s) without echoing it', (_case, value) => {
    for (const env of [
      { ALERT_WEBHOOK_URL: URL_, ALERT_WEBHOOK_SECRET: value },
      { ALERT_WEBHOOK_URL: URL_, ALERT_WEBHOOK_SECRET_FILE: secretFile(value) },
    ]) {
      const err = configError(env);
      expect(err.message).toContain('ALERT_WEBHOOK_SECRET');
      expect(err.message).toMatch(/whsec_ followed by the base64 of at least 24/);
      expect(err.message).not.toContain(value);
      expect(err.message).not.toContain(value.replace(/^whsec_/, '').slice(0, 12));
    }
  });
});

describe('.env.example', () => {
  it('documents every variable of the configuration schema', async () => {
    const { readFileSync } = await import('node:fs');
    const { configSchema } = await import('../../src/config.js');
    const example = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
    const missing = Object.keys(configSchema.shape).filter(
      (name) => !new RegExp(`^#? ?${name}=`, 'm').test(example),
    );
    expect(missing).toEqual([]);
  });
});
