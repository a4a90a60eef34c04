// compose.yaml's `secrets-init`: writes the secrets nobody has to choose into the `secrets` volume,
// once (an existing file is kept, so restarts and `up` again change nothing). Mode 0444: the
// volume is mounted only into this deployment's containers, and Postgres (uid 999) and the service
// (uid 10001) both read from it.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

const dir = process.argv[2] ?? '/run/agent-otp';
const put = (name, make) => {
  const file = path.join(dir, name);
  if (!existsSync(file)) writeFileSync(file, `${make()}\n`, { mode: 0o444 });
  return readFileSync(file, 'utf8').trim();
};

put('admin_token', () => `uk_${randomBytes(36).toString('base64url')}`);
put('secrets_encryption_key', () => randomBytes(32).toString('base64'));
const password = put('postgres_password', () => randomBytes(24).toString('hex'));
put('database_url', () => `postgres://agent_otp:${password}@postgres:5432/agent_otp`);
process.stdout.write(`secrets in ${dir}\n`);
