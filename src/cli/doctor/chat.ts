import type { Config } from '../../config.js';
import { type CheckResult, reason, TIMEOUT_MS, withDeadline } from './result.js';

async function timed(check: string, fn: () => Promise<string>): Promise<CheckResult> {
  try {
    return { check, status: 'pass', detail: await withDeadline(fn) };
  } catch (err) {
    return { check, status: 'fail', detail: reason(err) };
  }
}

/** Each configured chat platform accepts its bot token (nothing is posted). */
export function chatChecks(config: Config): Promise<CheckResult>[] {
  const checks: Promise<CheckResult>[] = [];
  const slackToken = config.SLACK_BOT_TOKEN;
  if (slackToken) {
    checks.push(
      import('@slack/web-api').then(({ WebClient }) =>
        // The deadline is for Slack's answer, not for loading its client (slow on a busy machine).
        timed('slack', async () => {
          const client = new WebClient(slackToken, {
            ...(config.SLACK_API_URL ? { slackApiUrl: config.SLACK_API_URL } : {}),
            retryConfig: { retries: 0 },
            timeout: TIMEOUT_MS,
          });
          const auth = await client.auth.test();
          return `auth.test ok (team ${auth.team ?? auth.team_id ?? '?'}, bot ${auth.user ?? '?'})`;
        }),
      ),
    );
  }
  const discordToken = config.DISCORD_BOT_TOKEN;
  if (discordToken) {
    checks.push(
      import('discord.js').then(({ REST, Routes }) =>
        timed('discord', async () => {
          const rest = new REST({
            ...(config.DISCORD_API_URL ? { api: config.DISCORD_API_URL } : {}),
            retries: 0,
            timeout: TIMEOUT_MS,
          }).setToken(discordToken);
          const me = (await rest.get(Routes.user())) as { username?: string };
          return `GET /users/@me ok (${me.username ?? '?'})`;
        }),
      ),
    );
  }
  return checks;
}
