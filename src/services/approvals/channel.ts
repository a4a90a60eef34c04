import type { ApprovalCard } from '../../core/approval/card.js';
import { entriesFor } from '../../core/approval/entries.js';
import { CHANNEL_NAME } from '../../core/approvers.js';
import type { ApprovalSettings } from '../../core/policy/types.js';

/**
 * The person who pressed a button, as the channel identifies them. `channel` is the channel's
 * registered name; the identity is `${channel}:${userId}`.
 */
export interface ChannelUser {
  channel: string;
  userId: string;
  userName: string;
  /** Where the click came from, recorded in the audit: a Slack workspace id… */
  teamId?: string;
  /** …or a Discord guild id. */
  guildId?: string;
  /** Groups the channel reported with the click (Discord sends the member's role ids). */
  groupIds?: string[];
}

/** An approver-list entry in the channel's syntax: a user, or a group of users. */
export type ApproverEntry = { kind: 'user' | 'group'; id: string };
/** A `channels`/`escalateTo` entry in the channel's syntax: where to post, or whom to mention. */
export type TargetEntry = { kind: 'channel' | 'user'; id: string };

/**
 * What the approval core needs from a channel (Teleport's MessagingBot): its recipient syntax,
 * posting and editing approval cards, notes, and group membership. Implementations translate and
 * never decide. Inbound interactions (buttons, forms, pages) belong to the channel's plug-in
 * (src/chat/plugin.ts) and reach the core through ApprovalService.decideAs.
 */
export interface ApprovalChannel {
  /** Registered name (`slack`, `discord`): the prefix of its entries and identities. */
  readonly name: string;
  /** Approval channel and approvers from the environment. */
  readonly defaults: { channel: string | null; approvers: string[] };
  /**
   * Bare `channels`/`escalateTo` entries (no `name:` prefix) are this channel's. At most one
   * channel claims them: Slack, because entries were Slack's before there were other channels.
   */
  readonly claimsBareTargets?: boolean;
  /**
   * False for a channel that posts no cards (the web channel: a pending request waits in the
   * inbox and at its approvalUrl). Such a channel alone does not turn on posting, reminders and
   * escalations, which all happen in posted messages.
   */
  readonly postsMessages?: boolean;
  /**
   * False when bare approver ids (`U123`) must not be read as this channel's: its approvers are
   * named only with its prefix (`web:alice`), so an id written for Slack never grants on it.
   */
  readonly bareApprovers?: boolean;
  approverEntry(entry: string): ApproverEntry;
  targetEntry(entry: string): TargetEntry;
  post(channel: string, card: ApprovalCard): Promise<{ messageRef: string; permalink: string | null }>;
  update(channel: string, messageRef: string, card: ApprovalCard): Promise<void>;
  /** A note in the message's thread (reminders, escalations), mentioning people. */
  notice(channel: string, messageRef: string | null, text: string, mentionUserIds: string[]): Promise<void>;
  /** Is the user in any of these groups (`approverEntry` kind `group` ids)? */
  memberOfAny(user: ChannelUser, groupIds: string[]): Promise<boolean>;
}

/**
 * The channels configured in this process, and every channel name this build knows (configured
 * or not), so that `discord:…` is Discord's entry even where Discord is not configured.
 */
export class ChannelRegistry {
  private readonly channels = new Map<string, ApprovalChannel>();
  private readonly known: Set<string>;

  constructor(knownChannels: readonly string[] = []) {
    this.known = new Set(knownChannels);
  }

  register(channel: ApprovalChannel): void {
    if (!CHANNEL_NAME.test(channel.name)) throw new Error(`"${channel.name}" is not a channel name`);
    if (this.channels.has(channel.name)) throw new Error(`channel "${channel.name}" is registered twice`);
    if (channel.claimsBareTargets && this.list().some((c) => c.claimsBareTargets))
      throw new Error(`channel "${channel.name}": bare entries are already another channel's`);
    this.channels.set(channel.name, channel);
    this.known.add(channel.name);
  }

  /** Does any configured channel post cards? (Posting, reminders and escalation need one.) */
  get enabled(): boolean {
    return this.list().some((c) => c.postsMessages !== false);
  }

  get(name: string): ApprovalChannel | undefined {
    return this.channels.get(name);
  }

  list(): ApprovalChannel[] {
    return [...this.channels.values()];
  }

  /** A `channels`/`escalateTo` entry: the configured channel it names, read in its syntax. */
  resolveTarget(entry: string): { channel: ApprovalChannel; target: TargetEntry } | null {
    for (const channel of this.list()) {
      const [rest] = entriesFor(channel.name, [entry], this.known, channel.claimsBareTargets === true);
      if (rest !== undefined) return { channel, target: channel.targetEntry(rest) };
    }
    return null;
  }

  /** Where a request is posted: the policy's `channels`, else each channel's default channel. */
  postTargets(approval: ApprovalSettings | null): { channel: ApprovalChannel; id: string }[] {
    if (approval?.channels?.length) {
      return approval.channels.flatMap((entry) => {
        const resolved = this.resolveTarget(entry);
        return resolved?.target.kind === 'channel'
          ? [{ channel: resolved.channel, id: resolved.target.id }]
          : [];
      });
    }
    return this.list().flatMap((channel) =>
      channel.defaults.channel ? [{ channel, id: channel.defaults.channel }] : [],
    );
  }

  /**
   * Who may approve on `channel`: the policy's approvers meant for it (prefixed, or bare: a bare
   * id matches only users of the channel it is theirs in), else the channel's own defaults.
   */
  approverEntries(approval: ApprovalSettings | null, channel: ApprovalChannel): ApproverEntry[] {
    const fromPolicy = approval?.approvers;
    const entries = fromPolicy?.length
      ? entriesFor(channel.name, fromPolicy, this.known, channel.bareApprovers !== false)
      : channel.defaults.approvers;
    return entries.map((entry) => channel.approverEntry(entry));
  }
}
