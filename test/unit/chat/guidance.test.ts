import { describe, expect, it } from 'vitest';
import { approvalGuidance } from '../../../src/chat/guidance.js';
import { loadConfig } from '../../../src/config.js';

const guidance = (env: NodeJS.ProcessEnv) => approvalGuidance(loadConfig(env));

describe('approvalGuidance', () => {
  it('explains the silent wait on a default configuration and says what to configure', () => {
    const text = guidance({});
    expect(text).toContain('no approval channel (Slack or Discord) is configured');
    expect(text).toContain('wait 900 s (APPROVAL_TIMEOUT_SECONDS) and then expire');
    expect(text).toContain('SLACK_APPROVERS');
    expect(text).toContain('DISCORD_APPROVERS');
    expect(text).toContain('auto_approve');
  });

  it('names the configured timeout', () => {
    expect(guidance({ APPROVAL_TIMEOUT_SECONDS: '120' })).toContain('wait 120 s');
  });

  it('warns when a chat platform is configured without default approvers', () => {
    const text = guidance({
      DISCORD_BOT_TOKEN: 'discord-token-discord-token',
    });
    expect(text).toContain('Discord has no default approvers');
  });

  it('is silent when someone can decide, or when nothing waits for a human', () => {
    expect(
      guidance({
        SLACK_BOT_TOKEN: 'xoxb-1',
        SLACK_APP_TOKEN: 'xapp-1',
        SLACK_APPROVERS: 'U01ABCDEF',
      }),
    ).toBeNull();
    expect(
      guidance({
        DISCORD_BOT_TOKEN: 'discord-token-discord-token',
        DISCORD_APPROVER_ROLES: '123456789012345678',
      }),
    ).toBeNull();
    expect(guidance({ DEFAULT_POLICY_ACTION: 'deny' })).toBeNull();
    expect(guidance({ DEFAULT_POLICY_ACTION: 'auto_approve' })).toBeNull();
  });
});
