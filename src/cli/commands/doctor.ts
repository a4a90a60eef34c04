import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { type Config, loadConfig } from '../../config.js';
import { WorkBudget } from '../../core/budget.js';
import { compilePolicies, parsePolicyDocument, parsePolicySet } from '../../core/policy/index.js';
import type { PolicyDefinition } from '../../core/policy/types.js';
import { resolveClientOptions } from '../client.js';
import { table } from '../format.js';
import type { TargetFlags } from '../target.js';

export type CheckStatus = 'pass' | 'warn' | 'fail';
export interface CheckResult {
  check: string;
  status: CheckStatus;
  detail: string;
}

const TIMEOUT_MS = 3000;

/** Bits of entropy per character (Shannon), and the share of the most frequent character. */
function entropyStats(text: string): { bitsPerChar: number; topShare: number; distinct: number } {
  const counts = new Map<string, number>();
  for (const c of text) counts.set(c, (counts.get(c) ?? 0) + 1);
  let bits = 0;
  let top = 0;
  for (const n of counts.values()) {
    const p = n / text.length;
    bits -= p * Math.log2(p);
    top = Math.max(top, n);
  }
  return { bitsPerChar: bits, topShare: top / Math.max(1, text.length), distinct: counts.size };
}

/** True when a secret looks guessable: few distinct characters, one dominating, or low entropy. */
export function lowEntropy(secret: string): boolean {
  const s = entropyStats(secret);
  return s.distinct < 10 || s.topShare > 0.25 || s.bitsPerChar < 3;
}

export function checkAdminToken(token: string | undefined): CheckResult {
  if (!token) {
    return {
      check: 'ADMIN_TOKEN',
      status: 'pass',
      detail: 'not set: the server generates a random operator key in its data dir',
    };
  }
  const body = token.replace(/^uk_/, '');
  if (token.length < 40) {
    return {
      check: 'ADMIN_TOKEN',
      status: 'fail',
      detail: `only ${token.length} characters (use 40 or more)`,
    };
  }
  if (lowEntropy(body)) {
    return {
      check: 'ADMIN_TOKEN',
      status: 'fail',
      detail:
        'low entropy (repeated or few distinct characters): generate one with `openssl rand -base64 32`',
    };
  }
  return { check: 'ADMIN_TOKEN', status: 'pass', detail: `${token.length} characters` };
}

function checkSecrets(config: Config): CheckResult[] {
  const out: CheckResult[] = [];
  if (config.SLACK_SIGNING_SECRET && lowEntropy(config.SLACK_SIGNING_SECRET)) {
    out.push({ check: 'SLACK_SIGNING_SECRET', status: 'warn', detail: 'looks low-entropy (a placeholder?)' });
  }
  if (config.SECRETS_ENCRYPTION_KEY) {
    const bytes = Buffer.from(config.SECRETS_ENCRYPTION_KEY.trim(), 'base64');
    if (new Set(bytes).size < 16) {
      out.push({ check: 'SECRETS_ENCRYPTION_KEY', status: 'fail', detail: 'low entropy: not a random key' });
    } else out.push({ check: 'SECRETS_ENCRYPTION_KEY', status: 'pass', detail: '32 random-looking bytes' });
  }
  return out;
}

function checkPublicUrl(config: Config): CheckResult {
  if (!config.PUBLIC_URL)
    return { check: 'PUBLIC_URL', status: 'warn', detail: 'not set (links in chat and webhooks)' };
  if (new URL(config.PUBLIC_URL).protocol !== 'https:') {
    return { check: 'PUBLIC_URL', status: 'warn', detail: `${config.PUBLIC_URL} is not HTTPS` };
  }
  return { check: 'PUBLIC_URL', status: 'pass', detail: config.PUBLIC_URL };
}

/** Alerts carry operational details, and their signature is only as good as the channel's secrecy. */
function checkAlertWebhook(config: Config): CheckResult[] {
  if (!config.ALERT_WEBHOOK_URL) return [];
  const url = new URL(config.ALERT_WEBHOOK_URL);
  // The host only: a URL may carry credentials or a token in its path or query.
  return url.protocol === 'https:'
    ? [{ check: 'ALERT_WEBHOOK_URL', status: 'pass', detail: `HTTPS to ${url.host}` }]
    : [
        {
          check: 'ALERT_WEBHOOK_URL',
          status: 'warn',
          detail: `not HTTPS (${url.host}): alerts travel in clear`,
        },
      ];
}

function checkApprovers(config: Config): CheckResult {
  const n =
    (config.SLACK_APPROVERS?.length ?? 0) +
    (config.DISCORD_APPROVERS?.length ?? 0) +
    (config.DISCORD_APPROVER_ROLES?.length ?? 0);
  return n > 0
    ? { check: 'approvers', status: 'pass', detail: `${n} approver ids/roles configured` }
    : {
        check: 'approvers',
        status: 'warn',
        detail: 'none configured (SLACK_APPROVERS, DISCORD_APPROVERS, DISCORD_APPROVER_ROLES)',
      };
}

/** Dangerous actions that should meet an explicit deny policy, with a sample action name each. */
export const DANGEROUS_ACTIONS: readonly { pattern: string; sample: string }[] = [
  { pattern: '*.delete', sample: 'records.delete' },
  { pattern: 'payment.*', sample: 'payment.transfer' },
  { pattern: 'db.*', sample: 'db.drop' },
  { pattern: 'shell.* / exec', sample: 'shell.exec' },
];

export function checkDenyPolicies(definitions: readonly PolicyDefinition[], source: string): CheckResult[] {
  const denies = compilePolicies(definitions).policies.filter((p) => p.action === 'deny' && !p.agent);
  return DANGEROUS_ACTIONS.map(({ pattern, sample }) => {
    const samples = pattern.includes('exec') ? [sample, 'exec'] : [sample];
    const covered = samples.some((action) =>
      denies.some(
        (p) =>
          p.matches({ action, resource: undefined, agent: '', scope: {}, context: {} }, new WorkBudget()) ===
          true,
      ),
    );
    return covered
      ? { check: `deny ${pattern}`, status: 'pass' as const, detail: `a deny policy matches (${source})` }
      : {
          check: `deny ${pattern}`,
          status: 'warn' as const,
          detail: `no deny policy matches ${samples.join(', ')} (${source})`,
        };
  });
}

async function loadPolicies(
  config: Config,
  env: NodeJS.ProcessEnv,
  flags: TargetFlags,
): Promise<{ defs: PolicyDefinition[]; source: string } | null> {
  try {
    const client = resolveClientOptions(env, flags);
    const response = await fetch(`${client.url}/api/v1/policies`, {
      headers: { authorization: `Bearer ${client.token}` },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (response.ok) {
      const body = (await response.json()) as { data: { policies: Record<string, unknown>[] } };
      const defs: PolicyDefinition[] = [];
      for (const p of body.data.policies) {
        // The API's shape differs from the file's: keep what decides a match.
        if (p.action !== 'deny' || p.enabled === false || (p.agent as { id?: unknown } | null)?.id) continue;
        try {
          defs.push(
            ...parsePolicySet(
              [{ name: p.name, priority: p.priority, action: 'deny', conditions: p.conditions }],
              'stored',
            ),
          );
        } catch {
          // A policy this version cannot read does not count as a deny.
        }
      }
      return { defs, source: `server ${client.url}` };
    }
  } catch {
    // Not reachable: fall back to POLICIES_FILE.
  }
  if (config.POLICIES_FILE) {
    return {
      defs: parsePolicyDocument(readFileSync(config.POLICIES_FILE, 'utf8')),
      source: config.POLICIES_FILE,
    };
  }
  return null;
}

async function timed(check: string, fn: () => Promise<string>): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const detail = await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer in ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
      }),
    ]);
    return { check, status: 'pass', detail };
  } catch (err) {
    return { check, status: 'fail', detail: (err as Error).message || String(err) };
  } finally {
    clearTimeout(timer);
  }
}

async function checkConnections(config: Config): Promise<CheckResult[]> {
  // Loaded here, not at the top: other CLI commands should not pay for these clients.
  const { default: pg } = await import('pg');
  const { Redis } = await import('ioredis');
  const checks: Promise<CheckResult>[] = [];
  if (config.DATABASE_URL) {
    const url = config.DATABASE_URL;
    checks.push(
      timed('database', async () => {
        const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: TIMEOUT_MS });
        try {
          await client.connect();
          await client.query('SELECT 1');
          return 'Postgres answers SELECT 1';
        } finally {
          await client.end().catch(() => undefined);
        }
      }),
    );
  } else checks.push(Promise.resolve({ check: 'database', status: 'pass', detail: 'embedded PGlite' }));
  if (config.REDIS_URL) {
    const url = config.REDIS_URL;
    checks.push(
      timed('redis', async () => {
        const redis = new Redis(url, {
          lazyConnect: true,
          connectTimeout: TIMEOUT_MS,
          maxRetriesPerRequest: 0,
          retryStrategy: () => null,
          enableOfflineQueue: false,
        });
        redis.on('error', () => undefined);
        try {
          await redis.connect();
          return `PING: ${await redis.ping()}`;
        } finally {
          redis.disconnect();
        }
      }),
    );
  } else checks.push(Promise.resolve({ check: 'redis', status: 'pass', detail: 'embedded Redis' }));
  if (config.SLACK_BOT_TOKEN) {
    const token = config.SLACK_BOT_TOKEN;
    checks.push(
      timed('slack', async () => {
        const { WebClient } = await import('@slack/web-api');
        const client = new WebClient(token, {
          ...(config.SLACK_API_URL ? { slackApiUrl: config.SLACK_API_URL } : {}),
          retryConfig: { retries: 0 },
          timeout: TIMEOUT_MS,
        });
        const auth = await client.auth.test();
        return `auth.test ok (team ${auth.team ?? auth.team_id ?? '?'}, bot ${auth.user ?? '?'})`;
      }),
    );
  }
  if (config.DISCORD_BOT_TOKEN) {
    const token = config.DISCORD_BOT_TOKEN;
    checks.push(
      timed('discord', async () => {
        const { REST, Routes } = await import('discord.js');
        const rest = new REST({
          ...(config.DISCORD_API_URL ? { api: config.DISCORD_API_URL } : {}),
          retries: 0,
          timeout: TIMEOUT_MS,
        }).setToken(token);
        const me = (await rest.get(Routes.user())) as { username?: string };
        return `GET /users/@me ok (${me.username ?? '?'})`;
      }),
    );
  }
  return Promise.all(checks);
}

/** Every check, in display order. */
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
  results.push(
    checkAdminToken(config.ADMIN_TOKEN),
    ...checkSecrets(config),
    checkPublicUrl(config),
    ...checkAlertWebhook(config),
    checkApprovers(config),
  );
  try {
    const policies = await loadPolicies(config, env, flags);
    if (policies) results.push(...checkDenyPolicies(policies.defs, policies.source));
    else
      results.push({
        check: 'policies',
        status: 'warn',
        detail: 'server not reachable and no POLICIES_FILE: deny policies not checked',
      });
  } catch (err) {
    results.push({ check: 'policies', status: 'fail', detail: (err as Error).message });
  }
  results.push(...(await checkConnections(config)));
  return results;
}

export function registerDoctorCommand(program: Command, print: (text: string) => void): void {
  program
    .command('doctor')
    .description('Check the configuration and its connections; exits non-zero on any failure')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, command: Command) => {
      const results = await runDoctor(process.env, command.optsWithGlobals<TargetFlags>());
      if (opts.json) print(JSON.stringify(results, null, 2));
      else {
        print(table(results as unknown as Record<string, unknown>[], ['status', 'check', 'detail']));
        const count = (s: CheckStatus) => results.filter((r) => r.status === s).length;
        print(`\n${count('pass')} passed, ${count('warn')} warnings, ${count('fail')} failed`);
      }
      if (results.some((r) => r.status === 'fail')) process.exitCode = 1;
    });
}
