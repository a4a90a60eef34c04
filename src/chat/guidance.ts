import type { Config } from '../config.js';
import { CHANNELS } from './channels.js';
import type { ChannelPlugin } from './plugin.js';

/**
 * Says what happens to a request nobody can decide, or null when someone can. With the default
 * `require_approval` and no approver anywhere, a newcomer's requests wait out their deadline in
 * silence; this is the one sentence that explains it (logged at start, shown by `doctor`).
 * Per-policy approvers are not seen here: the message says so rather than guessing. Each
 * channel says whether it is configured and names default approvers (ChannelPlugin.setup).
 */
export function approvalGuidance(config: Config, all: readonly ChannelPlugin[] = CHANNELS): string | null {
  const channels = all.filter((c) => c.setup.asks !== false);
  if (config.DEFAULT_POLICY_ACTION !== 'require_approval') return null;
  const configured = channels.flatMap((c) => {
    const state = c.setup.state(config);
    return state ? [{ label: c.setup.label, ...state }] : [];
  });
  if (configured.some((c) => c.defaultApprovers)) return null;
  const labels = channels.map((c) => c.setup.label);
  const wait = `wait ${config.APPROVAL_TIMEOUT_SECONDS} s (APPROVAL_TIMEOUT_SECONDS) and then expire`;
  const why = configured.length
    ? `${configured.map((c) => c.label).join(' and ')} has no default approvers, so only policies that name approvers reach someone who can decide`
    : `no approval channel (${labels.join(' or ')}) is configured, so nobody is asked`;
  const what = channels.map((c) => c.setup.hint).join(', or ');
  return (
    `Requests that no policy decides need approval (DEFAULT_POLICY_ACTION=require_approval), but ${why}: ` +
    `they ${wait} unless an operator runs \`agent-otp approve <id>\`. ` +
    `Configure ${what}; or add an auto_approve policy, or change DEFAULT_POLICY_ACTION.`
  );
}
