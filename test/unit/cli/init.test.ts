import { parseEnv } from 'node:util';
import { describe, expect, it } from 'vitest';
import { checkAdminToken } from '../../../src/cli/doctor/configChecks.js';
import { buildInitEnv, renderEnvFile } from '../../../src/cli/init/envFile.js';
import { ConfigError, loadConfig } from '../../../src/config.js';

/** The file as the CLI and the server read it. */
const parsed = (text: string) => parseEnv(text) as Record<string, string>;

describe('agent-otp init: the .env it writes', () => {
  it('holds a fresh operator key the server and doctor accept, for the server and the CLI alike', () => {
    const first = parsed(renderEnvFile(buildInitEnv({ port: 4100 })));
    const second = parsed(renderEnvFile(buildInitEnv({ port: 4100 })));
    expect(first.PORT).toBe('4100');
    expect(first.ADMIN_TOKEN).toMatch(/^uk_[A-Za-z0-9]{40}$/);
    expect(first.AGENT_OTP_ADMIN_TOKEN).toBe(first.ADMIN_TOKEN);
    expect(second.ADMIN_TOKEN).not.toBe(first.ADMIN_TOKEN);
    expect(checkAdminToken(first.ADMIN_TOKEN).status).toBe('pass');
    expect(Buffer.from(first.SECRETS_ENCRYPTION_KEY as string, 'base64')).toHaveLength(32);
    expect(second.SECRETS_ENCRYPTION_KEY).not.toBe(first.SECRETS_ENCRYPTION_KEY);
    const config = loadConfig(first);
    expect(config.PORT).toBe(4100);
  });

  it('says in the file why requests would wait when nobody can approve, and not otherwise', () => {
    const bare = renderEnvFile(buildInitEnv({ port: 3000 }));
    expect(bare).toMatch(/^# Requests that no policy decides need approval .* no approval channel/m);
    const withSlack = renderEnvFile(
      buildInitEnv({
        port: 3000,
        slackBotToken: 'xoxb-123-456-abc',
        slackAppToken: 'xapp-1-A1-xyz',
        slackApprovers: 'U01ABCDEF,U02ABCDEF',
      }),
    );
    expect(parsed(withSlack)).toMatchObject({
      SLACK_BOT_TOKEN: 'xoxb-123-456-abc',
      SLACK_APP_TOKEN: 'xapp-1-A1-xyz',
      SLACK_APPROVERS: 'U01ABCDEF,U02ABCDEF',
    });
    expect(withSlack).not.toContain('Requests that no policy decides');
    expect(withSlack).not.toContain('SLACK_SIGNING_SECRET');
  });

  it('refuses what the server would refuse, naming the variable', () => {
    expect(() => buildInitEnv({ port: 3000, slackBotToken: 'xoxb-1' })).toThrow(
      /SLACK_SIGNING_SECRET: required with SLACK_BOT_TOKEN/,
    );
    expect(() =>
      buildInitEnv({ port: 3000, discordToken: 'discord-token-discord', discordApprovers: 'bob' }),
    ).toThrow(/DISCORD_APPROVERS: must be a comma-separated list of Discord user ids/);
    expect(() => buildInitEnv({ port: 3000, slackBotToken: 'xoxb-1 #x', slackAppToken: 'xapp-1' })).toThrow(
      ConfigError,
    );
  });
});
