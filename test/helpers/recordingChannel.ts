import type { ApprovalCard } from '../../src/core/approval/card.js';
import type {
  ApprovalChannel,
  ApproverEntry,
  ChannelUser,
  TargetEntry,
} from '../../src/services/approvals/channel.js';

export interface RecordedPost {
  channel: string;
  messageRef: string;
  card: ApprovalCard;
}

/**
 * An approval channel in memory: it records what the core asked it to post, edit and note, and
 * answers group membership from a table. Its syntax: `group:<id>` is a group, anything else a
 * user; targets `@<id>` are people, anything else a channel. Posting fails while `failPosts`.
 */
export class RecordingChannel implements ApprovalChannel {
  readonly posts: RecordedPost[] = [];
  readonly updates: { channel: string; messageRef: string; card: ApprovalCard }[] = [];
  readonly notices: { channel: string; messageRef: string | null; text: string; mentions: string[] }[] = [];
  /** Group id → member user ids. */
  readonly groups = new Map<string, string[]>();
  failPosts = false;
  readonly claimsBareTargets: boolean;
  private next = 0;

  constructor(
    readonly name: string,
    readonly defaults: { channel: string | null; approvers: string[] } = { channel: null, approvers: [] },
    options: { claimsBareTargets?: boolean } = {},
  ) {
    this.claimsBareTargets = options.claimsBareTargets ?? false;
  }

  approverEntry(entry: string): ApproverEntry {
    return entry.startsWith('group:') ? { kind: 'group', id: entry.slice(6) } : { kind: 'user', id: entry };
  }

  targetEntry(entry: string): TargetEntry {
    return entry.startsWith('@') ? { kind: 'user', id: entry.slice(1) } : { kind: 'channel', id: entry };
  }

  async post(channel: string, card: ApprovalCard) {
    if (this.failPosts) throw new Error(`${this.name} is down`);
    this.next += 1;
    const messageRef = `${this.name}-m${this.next}`;
    this.posts.push({ channel, messageRef, card });
    return { messageRef, permalink: `https://${this.name}.example/${channel}/${messageRef}` };
  }

  async update(channel: string, messageRef: string, card: ApprovalCard): Promise<void> {
    this.updates.push({ channel, messageRef, card });
  }

  async notice(channel: string, messageRef: string | null, text: string, mentions: string[]): Promise<void> {
    this.notices.push({ channel, messageRef, text, mentions });
  }

  async memberOfAny(user: ChannelUser, groupIds: string[]): Promise<boolean> {
    return groupIds.some((g) => this.groups.get(g)?.includes(user.userId));
  }

  /** A user of this channel, as its interactions would name them. */
  user(userId: string, userName = userId.toLowerCase()): ChannelUser {
    return { channel: this.name, userId, userName };
  }
}
