import type { WebClient } from '@slack/web-api';
import type { ApprovalCard } from '../../core/approval/card.js';
import type {
  ApprovalChannel,
  ApproverEntry,
  ChannelUser,
  TargetEntry,
} from '../../services/approvals/channel.js';
import { escapeMrkdwn } from '../text.js';
import { renderSlackMessage } from './render.js';

const GROUP_CACHE_MS = 60_000;

/** Slack as an approval channel: Web API calls only; every decision is the core's. */
export class SlackPlatform implements ApprovalChannel {
  readonly name = 'slack';
  /** Bare entries were Slack's before there were other channels, and stay so. */
  readonly claimsBareTargets = true;
  private readonly groupMembers = new Map<string, { users: Set<string>; until: number }>();

  constructor(
    private readonly client: WebClient,
    readonly defaults: { channel: string | null; approvers: string[] },
  ) {}

  /** User ids (U…, W…) and user groups (S…). */
  approverEntry(entry: string): ApproverEntry {
    return { kind: entry.startsWith('S') ? 'group' : 'user', id: entry };
  }

  /** `C123`, `#name` or a name is a channel; `@U123` or `U123` a person to mention. */
  targetEntry(entry: string): TargetEntry {
    if (entry.startsWith('@')) return { kind: 'user', id: entry.slice(1) };
    if (/^[UW][A-Z0-9]+$/.test(entry)) return { kind: 'user', id: entry };
    return { kind: 'channel', id: entry.replace(/^#/, '') };
  }

  async post(channel: string, card: ApprovalCard): Promise<{ messageRef: string; permalink: string | null }> {
    const message = renderSlackMessage(card);
    const posted = await this.client.chat.postMessage({
      channel,
      text: message.text,
      blocks: message.blocks,
    });
    const ts = posted.ts as string;
    const postedChannel = (posted.channel as string | undefined) ?? channel;
    let permalink: string | null = null;
    try {
      const link = await this.client.chat.getPermalink({ channel: postedChannel, message_ts: ts });
      permalink = (link.permalink as string | undefined) ?? null;
    } catch {
      // A missing permalink only means no approvalUrl; the message itself is posted.
    }
    return { messageRef: `${postedChannel}/${ts}`, permalink };
  }

  async update(_channel: string, messageRef: string, card: ApprovalCard): Promise<void> {
    const { channel, ts } = splitRef(messageRef);
    const message = renderSlackMessage(card);
    await this.client.chat.update({ channel, ts, text: message.text, blocks: message.blocks });
  }

  async notice(
    target: string,
    messageRef: string | null,
    text: string,
    mentionUserIds: string[],
  ): Promise<void> {
    const mentions = mentionUserIds.map((id) => `<@${id}>`).join(' ');
    const body = `${mentions ? `${mentions} ` : ''}${escapeMrkdwn(text)}`;
    // No message to reply to (an alert from ApprovalMessages.broadcast): a note in the channel
    // itself. Returning here instead dropped every Slack alert while broadcast reported it sent.
    if (!messageRef) {
      await this.client.chat.postMessage({ channel: target, text: body });
      return;
    }
    const { channel, ts } = splitRef(messageRef);
    await this.client.chat.postMessage({ channel, thread_ts: ts, text: body });
  }

  async memberOfAny(user: ChannelUser, groupIds: string[]): Promise<boolean> {
    for (const group of groupIds) {
      const cached = this.groupMembers.get(group);
      let users = cached && cached.until > Date.now() ? cached.users : null;
      if (!users) {
        const answer = await this.client.usergroups.users.list({ usergroup: group });
        users = new Set((answer.users as string[] | undefined) ?? []);
        this.groupMembers.set(group, { users, until: Date.now() + GROUP_CACHE_MS });
      }
      if (users.has(user.userId)) return true;
    }
    return false;
  }

  /** A refusal or notice only the clicking user sees. */
  async ephemeral(channel: string, userId: string, text: string): Promise<void> {
    await this.client.chat.postEphemeral({ channel, user: userId, text });
  }
}

/** Messages are stored as `channel/ts`: the posted channel id, which may differ from a #name. */
export function splitRef(ref: string): { channel: string; ts: string } {
  const slash = ref.lastIndexOf('/');
  return { channel: ref.slice(0, slash), ts: ref.slice(slash + 1) };
}
