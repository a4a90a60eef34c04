import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { channelIdentityShapes } from './chat/channels.js';
import { parseApproverLinks } from './core/approvers.js';
import { isConfiguredWebhookSecret } from './core/webhook.js';

/**
 * The one schema for the whole environment. Parsed once at start and frozen; a bad value stops
 * the start with a message naming the variable. Secrets are never defaulted and each can be
 * given as NAME or as NAME_FILE (a path whose contents are the value: Docker/Kubernetes secrets).
 */

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

const url = (protocols: string[]) =>
  z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    { message: `must be a URL (${protocols.join(' or ')})` },
  );

/** Variables holding secrets: each also accepts NAME_FILE, and none is ever logged. */
export const SECRET_VARIABLES = [
  'DATABASE_URL',
  'REDIS_URL',
  'ADMIN_TOKEN',
  'SLACK_BOT_TOKEN',
  'SLACK_SIGNING_SECRET',
  'SLACK_APP_TOKEN',
  'DISCORD_BOT_TOKEN',
  'METRICS_TOKEN',
  'SECRETS_ENCRYPTION_KEY',
  'ALERT_WEBHOOK_SECRET',
] as const;

const base64Length = (v: string) =>
  Buffer.from(v, v.includes('-') || v.includes('_') ? 'base64url' : 'base64').length;

const idList = (pattern: RegExp, what: string) =>
  z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .refine((ids) => ids.every((id) => pattern.test(id)), {
      message: `must be a comma-separated list of ${what}`,
    });

export const configSchema = z.object({
  /** Informational only: no behaviour depends on it, so tests run what production runs. */
  NODE_ENV: z.enum(['development', 'production', 'test']).default('production'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Unset: pretty when stdout is a terminal, JSON otherwise (see createLogger). */
  LOG_FORMAT: z.enum(['pretty', 'json']).optional(),

  // HTTP
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  PUBLIC_URL: url(['http:', 'https:']).optional(),
  TRUST_PROXY: bool.default(false),
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),

  // Storage
  DATABASE_URL: url(['postgres:', 'postgresql:']).optional(),
  DATABASE_POOL_SIZE: int(1, 500).default(20),
  AGENT_OTP_DATA_DIR: z.string().min(1).default('./.agent-otp'),
  REDIS_URL: url(['redis:', 'rediss:']).optional(),
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]{1,64}$/, 'letters, digits, ":", "_" or "-" only')
    .default('aotp'),

  // Operators
  ADMIN_TOKEN: z
    .string()
    .regex(/^uk_[A-Za-z0-9_-]+$/, 'must be a uk_ operator key')
    .min(32, 'must be at least 32 characters')
    .max(131, 'must be at most 131 characters')
    .optional(),

  // Abuse limits
  AUTH_FAILURES_PER_MIN: int(1).default(30),
  RATE_LIMIT_PER_MIN: int(1).default(60),
  RATE_LIMIT_PER_HOUR: int(1).default(1000),
  /** verify and use calls together, per agent (each runs the scope check: bounded CPU per agent). */
  TOKEN_RATE_LIMIT_PER_MIN: int(1).default(600),
  TOKEN_RATE_LIMIT_PER_HOUR: int(1).default(20_000),

  // Permissions and policies
  POLICIES_FILE: z.string().min(1).optional(),
  DEFAULT_POLICY_ACTION: z.enum(['auto_approve', 'require_approval', 'deny']).default('require_approval'),
  /** How long a request may wait for a human before it expires unanswered. */
  APPROVAL_TIMEOUT_SECONDS: int(30, 7 * 86400).default(900),
  REQUIRE_ACTION_DETAILS: bool.default(false),

  // Queues
  RECONCILE_INTERVAL_MS: int(1000, 3_600_000).default(30_000),

  // Audit trail
  /** Sealed audit events older than this many days are purged daily (behind a checkpoint). */
  AUDIT_RETENTION_DAYS: int(1, 36_500).default(365),
  /** When set, sealed audit events are POSTed as JSON lines to this SIEM endpoint, in chain order. */
  AUDIT_FORWARD_URL: url(['http:', 'https:']).optional(),
  AUDIT_FORWARD_BATCH_SIZE: int(1, 10_000).default(500),
  AUDIT_FORWARD_INTERVAL_MS: int(100, 3_600_000).default(2000),

  // Webhooks
  /** Encrypts stored secrets (webhook signing secrets): base64 of 32 bytes, the same on every instance. */
  SECRETS_ENCRYPTION_KEY: z
    .string()
    .refine((v) => /^[A-Za-z0-9+/_-]+={0,2}$/.test(v.trim()) && base64Length(v.trim()) === 32, {
      message: 'must be the base64 encoding of 32 bytes (e.g. `openssl rand -base64 32`)',
    })
    .optional(),
  /** Allow webhook targets on private, loopback, link-local and unique-local addresses. */
  WEBHOOK_ALLOW_PRIVATE: bool.default(false),
  WEBHOOK_TIMEOUT_MS: int(1000, 60_000).default(10_000),
  /** How long after its first attempt a failing delivery is retried before it is dead. */
  WEBHOOK_RETRY_WINDOW_SECONDS: int(60, 7 * 86400).default(86_400),

  // Monitoring and alerts
  /** When set, GET /metrics (Prometheus) needs `Authorization: Bearer <METRICS_TOKEN>`. */
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Alert when the last hour's denial rate exceeds this (0..1). */
  ALERT_DENIAL_RATE: z.coerce.number().min(0).max(1).default(0.5),
  /** Alert when the last hour's unused-token rate exceeds this (0..1). */
  ALERT_UNUSED_TOKEN_RATE: z.coerce.number().min(0).max(1).default(0.3),
  /** Alert when failed authentications in the last complete minute exceed this. */
  ALERT_FAILED_AUTH_PER_MIN: int(1).default(20),
  /** The rate alerts need at least this many decisions / finished tokens in the hour. */
  ALERT_MIN_VOLUME: int(1).default(10),
  /** When set, alerts (triggered and cleared) are also POSTed here as signed webhooks. */
  ALERT_WEBHOOK_URL: url(['http:', 'https:']).optional(),
  /** Signs the alert webhooks (Standard Webhooks); required with ALERT_WEBHOOK_URL. */
  ALERT_WEBHOOK_SECRET: z
    .string()
    .refine(isConfiguredWebhookSecret, {
      message:
        'must be whsec_ followed by the base64 of at least 24 random bytes (e.g. `echo "whsec_$(openssl rand -base64 32)"`)',
    })
    .optional(),

  // Approvers
  /**
   * One person with identities on several platforms: `alice=slack:U123,discord:456…;bob=slack:U9`.
   * A linked person has one vote in a quorum, is named in the audit, and the self-approval ban
   * covers all their identities.
   */
  APPROVER_LINKS: z
    .string()
    .transform((value, ctx) => {
      try {
        return parseApproverLinks(value, channelIdentityShapes());
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    })
    .optional(),

  // Slack (approvals in Slack are on when SLACK_BOT_TOKEN is set)
  SLACK_BOT_TOKEN: z
    .string()
    .regex(/^xoxb-/, 'must be a bot token (xoxb-…)')
    .optional(),
  SLACK_SIGNING_SECRET: z.string().min(16).optional(),
  /** Socket Mode when set (no public URL needed); otherwise HTTP at POST /slack/events. */
  SLACK_APP_TOKEN: z
    .string()
    .regex(/^xapp-/, 'must be an app-level token (xapp-…)')
    .optional(),
  SLACK_APPROVAL_CHANNEL: z.string().min(1).max(80).optional(),
  SLACK_APPROVERS: idList(/^[UWS][A-Z0-9]{2,}$/, 'Slack user ids (U…) and user-group ids (S…)').optional(),
  /** Base URL of the Slack Web API, for proxies and tests (default https://slack.com/api/). */
  SLACK_API_URL: url(['http:', 'https:']).optional(),

  // Discord (approvals in Discord are on when DISCORD_BOT_TOKEN is set)
  DISCORD_BOT_TOKEN: z.string().min(20).optional(),
  DISCORD_APPROVAL_CHANNEL_ID: z
    .string()
    .regex(/^\d{15,21}$/, 'must be a channel id (digits)')
    .optional(),
  DISCORD_APPROVERS: idList(/^\d{15,21}$/, 'Discord user ids').optional(),
  DISCORD_APPROVER_ROLES: idList(/^\d{15,21}$/, 'Discord role ids').optional(),
  /** Base URL of the Discord REST API, for proxies and tests (default https://discord.com/api). */
  DISCORD_API_URL: url(['http:', 'https:']).optional(),
});

type Parsed = z.infer<typeof configSchema>;

export interface Config extends Parsed {
  /** Absolute path of AGENT_OTP_DATA_DIR. */
  readonly dataDir: string;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** Every variable the schema knows, including NAME_FILE variants: used by the manifest checks. */
export const KNOWN_VARIABLES: readonly string[] = [
  ...Object.keys(configSchema.shape),
  ...SECRET_VARIABLES.map((name) => `${name}_FILE`),
];

function resolveSecretFiles(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const raw = env[key];
    out[key] = raw === '' ? undefined : raw;
  }
  for (const name of SECRET_VARIABLES) {
    const file = env[`${name}_FILE`];
    if (!file) continue;
    if (out[name] !== undefined) {
      throw new ConfigError(`Both ${name} and ${name}_FILE are set; set only one.`);
    }
    try {
      out[name] = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(`${name}_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code})`);
    }
  }
  return out;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const result = configSchema.safeParse(resolveSecretFiles(env));
  if (!result.success) {
    const lines = result.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? 'environment');
      const secret = (SECRET_VARIABLES as readonly string[]).includes(name);
      // Never echo a secret's value back, even a malformed one.
      const message = secret ? issue.message.replace(/received .*/i, 'invalid value') : issue.message;
      return `  ${name}: ${message}`;
    });
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const parsed = result.data;
  if (Boolean(parsed.TLS_CERT_FILE) !== Boolean(parsed.TLS_KEY_FILE)) {
    throw new ConfigError(
      'Invalid configuration:\n  TLS_CERT_FILE: TLS_CERT_FILE and TLS_KEY_FILE must be set together',
    );
  }
  if (parsed.SLACK_BOT_TOKEN && !parsed.SLACK_APP_TOKEN && !parsed.SLACK_SIGNING_SECRET) {
    throw new ConfigError(
      'Invalid configuration:\n  SLACK_SIGNING_SECRET: required with SLACK_BOT_TOKEN unless SLACK_APP_TOKEN (Socket Mode) is set',
    );
  }
  if (parsed.ALERT_WEBHOOK_URL && !parsed.ALERT_WEBHOOK_SECRET) {
    throw new ConfigError(
      'Invalid configuration:\n  ALERT_WEBHOOK_SECRET: required with ALERT_WEBHOOK_URL (alert webhooks are always signed)',
    );
  }
  return Object.freeze({ ...parsed, dataDir: path.resolve(parsed.AGENT_OTP_DATA_DIR) });
}
