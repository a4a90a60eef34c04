import type { WebClient } from '@slack/web-api';
import type { ChatPlatform, ChatUser } from '../../services/approvals.js';
import type { ApprovalCard } from '../card.js';
import { escapeMrkdwn } from '../text.js';
import { renderSlackMessage } from './render.js';

const GROUP_CACHE_MS = 60_000;

/** Slack as a ChatPlatform: Web API calls only; every decision is the core's. */
export class SlackPlatform implements ChatPlatform {
  readonly platform = 'slack' as const;
  private readonly groupMembers = new Map<string, { users: Set<string>; until: number }>();

  constructor(
    private readonly client: WebClient,
    readonly defaults: { channel: string | null; approvers: string[] },
  ) {}

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
    _channel: string,
    messageRef: string | null,
    text: string,
    mentionUserIds: string[],
  ): Promise<void> {
    if (!messageRef) return;
    const mentions = mentionUserIds.map((id) => `<@${id}>`).join(' ');
    const body = `${mentions ? `${mentions} ` : ''}${escapeMrkdwn(text)}`;
    const { channel, ts } = splitRef(messageRef);
    await this.client.chat.postMessage({ channel, thread_ts: ts, text: body });
  }

  async memberOfAny(user: ChatUser, groupIds: string[]): Promise<boolean> {
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
