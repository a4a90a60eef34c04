import { type Config, loadConfig } from '../../config.js';
import type { TargetFlags } from '../target.js';
import { chatChecks } from './chat.js';
import { configChecks } from './configChecks.js';
import { databaseChecks } from './database.js';
import { policyChecks } from './policies.js';
import { redisChecks } from './redis.js';
import type { CheckResult, CheckStatus } from './result.js';
import { probeServer } from './server.js';

export type { CheckResult, CheckStatus } from './result.js';

/**
 * Every check, in display order. Each row checks what it names against the configuration in
 * force (the same environment and `.env` the server reads), or says `skip` and why it could not.
 */
export async function runDoctor(
  env: NodeJS.ProcessEnv = process.env,
  flags: TargetFlags = {},
): Promise<CheckResult[]> {
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    return [
      { check: 'configuration', status: 'fail', detail: (err as Error).message.replace(/\n\s*/g, ' ') },
    ];
  }
  const results: CheckResult[] = [{ check: 'configuration', status: 'pass', detail: 'parsed' }];
  results.push(...configChecks(config));
  // The server first: its /readyz tells whether it holds the embedded database and which Redis
  // state it sees, and its policies (read with the operator key) feed the deny checks.
  const server = await probeServer(env, flags);
  results.push(...server.rows);
  results.push(...policyChecks(config, server.policies, server.url));
  const [database, redis, ...chat] = await Promise.all([
    databaseChecks(config, server.reachable),
    redisChecks(config, server.readiness),
    ...chatChecks(config),
  ]);
  results.push(...database, ...redis, ...chat);
  return results;
}

export function summary(results: readonly CheckResult[]): string {
  const count = (s: CheckStatus) => results.filter((r) => r.status === s).length;
  return `${count('pass')} passed, ${count('warn')} warnings, ${count('fail')} failed, ${count('skip')} skipped`;
}
