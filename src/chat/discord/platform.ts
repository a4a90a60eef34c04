import { type Client, Routes } from 'discord.js';
import type { ApprovalCard } from '../../core/approval/card.js';
import type {
  ApprovalChannel,
  ApproverEntry,
  ChannelUser,
  TargetEntry,
} from '../../services/approvals/channel.js';
import { renderDiscordMessage } from './render.js';

interface PostedMessage {
  id: string;
  channel_id: string;
}

/**
 * Discord as an approval channel: REST calls through the discord.js client (its rate-limit
 * handling and retries included). Membership comes from the roles Discord sends with each
 * interaction.
 */
export class DiscordPlatform implements ApprovalChannel {
  readonly name = 'discord';
  private readonly guildOfChannel = new Map<string, string | null>();

  constructor(
    private readonly client: Client,
    readonly defaults: { channel: string | null; approvers: string[] },
  ) {}

  /** User ids, and approver roles written `role:<id>` (configured apart, see config.ts). */
  approverEntry(entry: string): ApproverEntry {
    return entry.startsWith('role:') ? { kind: 'group', id: entry.slice(5) } : { kind: 'user', id: entry };
  }

  /** A channel id (`#` allowed), or `@<user id>`, a person to mention. */
  targetEntry(entry: string): TargetEntry {
    if (entry.startsWith('@')) return { kind: 'user', id: entry.slice(1) };
    return { kind: 'channel', id: entry.replace(/^#/, '') };
  }

  async post(channel: string, card: ApprovalCard): Promise<{ messageRef: string; permalink: string | null }> {
    const posted = (await this.client.rest.post(Routes.channelMessages(channel), {
      body: messageBody(card),
    })) as PostedMessage;
    const guildId = await this.guildOf(channel);
    const permalink = guildId ? `https://discord.com/channels/${guildId}/${channel}/${posted.id}` : null;
    return { messageRef: posted.id, permalink };
  }

  async update(channel: string, messageRef: string, card: ApprovalCard): Promise<void> {
    await this.client.rest.patch(Routes.channelMessage(channel, messageRef), { body: messageBody(card) });
  }

  async notice(
    channel: string,
    messageRef: string | null,
    text: string,
    mentionUserIds: string[],
  ): Promise<void> {
    const mentions = mentionUserIds.map((id) => `<@${id}>`).join(' ');
    await this.client.rest.post(Routes.channelMessages(channel), {
      body: {
        content: `${mentions ? `${mentions} ` : ''}${text}`.slice(0, 2000),
        allowed_mentions: { users: mentionUserIds },
        ...(messageRef ? { message_reference: { message_id: messageRef, fail_if_not_exists: false } } : {}),
      },
    });
  }

  /** Discord sends the member's roles with the click: no lookup needed. */
  async memberOfAny(user: ChannelUser, roleIds: string[]): Promise<boolean> {
    const roles = new Set(user.groupIds ?? []);
    return roleIds.some((role) => roles.has(role));
  }

  private async guildOf(channel: string): Promise<string | null> {
    if (this.guildOfChannel.has(channel)) return this.guildOfChannel.get(channel) ?? null;
    try {
      const info = (await this.client.rest.get(Routes.channel(channel))) as { guild_id?: string };
      this.guildOfChannel.set(channel, info.guild_id ?? null);
      return info.guild_id ?? null;
    } catch {
      return null;
    }
  }
}

/** A card as the REST body of a message post or edit. */
function messageBody(card: ApprovalCard) {
  const message = renderDiscordMessage(card);
  return {
    content: message.content,
    embeds: message.embeds,
    components: message.components,
    allowed_mentions: message.allowedMentions,
  };
}
