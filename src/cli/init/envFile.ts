import { randomBytes } from 'node:crypto';
import { approvalGuidance } from '../../chat/guidance.js';
import { type Config, ConfigError, loadConfig } from '../../config.js';
import { newOperatorKey } from '../../core/credentials.js';
import { checkAdminToken } from '../doctor/configChecks.js';

/** What `agent-otp init` asks for; everything but the port is optional. */
export interface InitAnswers {
  port: number;
  slackBotToken?: string;
  slackSigningSecret?: string;
  slackAppToken?: string;
  slackChannel?: string;
  slackApprovers?: string;
  discordToken?: string;
  discordChannel?: string;
  discordApprovers?: string;
}

export interface InitEnv {
  /** Variable → value, in the order written. */
  variables: [string, string][];
  config: Config;
}

/** An operator key `doctor` passes (length and entropy): generated keys virtually always do. */
function adminToken(): string {
  for (;;) {
    const key = newOperatorKey();
    if (checkAdminToken(key).status === 'pass') return key;
  }
}

/**
 * The variables a first setup needs, validated by the server's own schema so a `.env` that init
 * writes is one the server starts with. Throws ConfigError naming the variable on a bad answer.
 */
export function buildInitEnv(answers: InitAnswers): InitEnv {
  const token = adminToken();
  const pairs: [string, string | undefined][] = [
    ['PORT', String(answers.port)],
    ['ADMIN_TOKEN', token],
    // The CLI's name for the same key: operator commands run in this directory then just work.
    ['AGENT_OTP_ADMIN_TOKEN', token],
    ['SECRETS_ENCRYPTION_KEY', randomBytes(32).toString('base64')],
    ['SLACK_BOT_TOKEN', answers.slackBotToken],
    ['SLACK_SIGNING_SECRET', answers.slackSigningSecret],
    ['SLACK_APP_TOKEN', answers.slackAppToken],
    ['SLACK_APPROVAL_CHANNEL', answers.slackChannel],
    ['SLACK_APPROVERS', answers.slackApprovers],
    ['DISCORD_BOT_TOKEN', answers.discordToken],
    ['DISCORD_APPROVAL_CHANNEL_ID', answers.discordChannel],
    ['DISCORD_APPROVERS', answers.discordApprovers],
  ];
  const variables = pairs
    .map(([name, value]) => [name, value?.trim() ?? ''] as [string, string])
    .filter(([, value]) => value !== '');
  for (const [name, value] of variables) {
    // One line per variable, unquoted: refuse what would break the file or be read differently.
    if (/[\s#"'`\\]/.test(value))
      throw new ConfigError(`Invalid configuration:\n  ${name}: must not contain spaces, quotes, # or \\`);
  }
  const config = loadConfig(Object.fromEntries(variables));
  return { variables, config };
}

export function renderEnvFile(env: InitEnv, now = new Date()): string {
  const lines = [
    `# Written by \`agent-otp init\` on ${now.toISOString()}. Keep it secret (mode 0600).`,
    '# Every other variable keeps its default: see .env.example and the README.',
    ...env.variables.map(([name, value]) => `${name}=${value}`),
  ];
  const guidance = approvalGuidance(env.config);
  if (guidance) lines.push('', `# ${guidance}`);
  return `${lines.join('\n')}\n`;
}
