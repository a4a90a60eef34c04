import type { Config } from '../config.js';

type GuidanceConfig = Pick<
  Config,
  | 'DEFAULT_POLICY_ACTION'
  | 'APPROVAL_TIMEOUT_SECONDS'
  | 'SLACK_BOT_TOKEN'
  | 'SLACK_APPROVERS'
  | 'DISCORD_BOT_TOKEN'
  | 'DISCORD_APPROVERS'
  | 'DISCORD_APPROVER_ROLES'
>;

const WHAT_TO_CONFIGURE =
  'Configure SLACK_BOT_TOKEN with SLACK_APPROVERS, or DISCORD_BOT_TOKEN with DISCORD_APPROVERS ' +
  '(or DISCORD_APPROVER_ROLES); or add an auto_approve policy, or change DEFAULT_POLICY_ACTION.';

/**
 * Says what happens to a request nobody can decide, or null when someone can. With the default
 * `require_approval` and no approver anywhere, a newcomer's requests wait out their deadline in
 * silence; this is the one sentence that explains it (logged at start, shown by `doctor`).
 * Per-policy approvers are not seen here: the message says so rather than guessing.
 */
export function approvalGuidance(config: GuidanceConfig): string | null {
  if (config.DEFAULT_POLICY_ACTION !== 'require_approval') return null;
  const slack = Boolean(config.SLACK_BOT_TOKEN);
  const discord = Boolean(config.DISCORD_BOT_TOKEN);
  const slackApprovers = slack && (config.SLACK_APPROVERS?.length ?? 0) > 0;
  const discordApprovers =
    discord && (config.DISCORD_APPROVERS?.length ?? 0) + (config.DISCORD_APPROVER_ROLES?.length ?? 0) > 0;
  if (slackApprovers || discordApprovers) return null;
  const wait = `wait ${config.APPROVAL_TIMEOUT_SECONDS} s (APPROVAL_TIMEOUT_SECONDS) and then expire`;
  const why =
    slack || discord
      ? `${[slack && 'Slack', discord && 'Discord'].filter(Boolean).join(' and ')} has no default approvers, so only policies that name approvers reach someone who can decide`
      : 'no approval channel (Slack or Discord) is configured, so nobody is asked';
  return (
    `Requests that no policy decides need approval (DEFAULT_POLICY_ACTION=require_approval), but ${why}: ` +
    `they ${wait} unless an operator runs \`agent-otp approve <id>\`. ${WHAT_TO_CONFIGURE}`
  );
}
