import { renderSignature } from '../../core/approval/card.js';
import type { Clock } from '../../core/clock.js';
import type { Permission } from '../../core/permission.js';
import type { Logger } from '../../logger.js';
import {
  type ChatMessageRef,
  listChatMessages,
  markFollowedUp,
  markNotified,
  markRendered,
  saveChatMessage,
  setApprovalUrl,
} from '../../store/chatMessageRepository.js';
import type { Db } from '../../store/db.js';
import { findPermission } from '../../store/permissionRepository.js';
import { buildCard } from './cards.js';
import type { ApprovalChannel, ChannelRegistry } from './channel.js';

/**
 * Keeping every channel in step with a permission: posting a pending request where its policy
 * (or each channel's default) says, editing every posted message as the state changes, reminders
 * and escalations in the message's thread, and alert notes. Channels translate; what to send and
 * when is decided here and in ApprovalScheduler.
 */
export class ApprovalMessages {
  constructor(
    private readonly db: Db,
    private readonly channels: ChannelRegistry,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Is any channel configured (no channel: nothing to post, edit, remind or escalate)? */
  get enabled(): boolean {
    return this.channels.enabled;
  }

  /** Posts a note to each channel's default approval channel (alerts); returns where it went. */
  async broadcast(text: string): Promise<string[]> {
    const sent: string[] = [];
    for (const channel of this.channels.list()) {
      if (!channel.defaults.channel) continue;
      try {
        await channel.notice(channel.defaults.channel, null, text, []);
        sent.push(`${channel.name}:${channel.defaults.channel}`);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message, platform: channel.name }, 'broadcast failed');
      }
    }
    return sent;
  }

  /** Posts a pending request to every target channel it is not posted in yet. */
  async notify(permissionId: string): Promise<void> {
    const permission = await findPermission(this.db, permissionId);
    if (permission?.status !== 'pending') return;
    const posted = await listChatMessages(this.db, permissionId);
    const card = await buildCard(this.db, permission);
    const failures: string[] = [];
    for (const target of this.channels.postTargets(permission.approval)) {
      try {
        await this.postOnce(permission, posted, target.channel, target.id, card);
      } catch (err) {
        failures.push(`${target.channel.name}:${target.id}: ${(err as Error).message}`);
      }
    }
    if (failures.length) throw new Error(`posting failed (will retry): ${failures.join('; ')}`);
    await markNotified(this.db, permissionId, this.clock.now());
    // A decision made while we were posting must show on the new message too.
    const latest = await findPermission(this.db, permissionId);
    if (latest && renderSignature(latest) !== renderSignature(permission))
      await this.syncMessages(permissionId);
  }

  /**
   * Posts the card to one channel unless it is already there, and records the message (and the
   * first permalink as the request's approvalUrl) so every later state can edit it.
   */
  private async postOnce(
    permission: Permission,
    posted: readonly Pick<ChatMessageRef, 'platform' | 'channel'>[],
    channel: ApprovalChannel,
    id: string,
    card: Awaited<ReturnType<typeof buildCard>>,
  ): Promise<void> {
    if (posted.some((m) => m.platform === channel.name && m.channel === id)) return;
    const { messageRef, permalink } = await channel.post(id, card);
    await saveChatMessage(this.db, {
      permissionId: permission.id,
      platform: channel.name,
      channel: id,
      messageRef,
      permalink,
      renderedState: renderSignature(permission),
    });
    if (permalink) await setApprovalUrl(this.db, permission.id, permalink);
  }

  /**
   * Edits every message of the permission whose shown state is not the current one (`force`:
   * every message, e.g. after an erasure rewrote what the card is rendered from).
   */
  async syncMessages(permissionId: string, opts: { force?: boolean } = {}): Promise<void> {
    const permission = await findPermission(this.db, permissionId);
    if (!permission) return;
    const messages = await listChatMessages(this.db, permissionId);
    const signature = renderSignature(permission);
    const stale = opts.force ? messages : messages.filter((m) => m.renderedState !== signature);
    if (stale.length === 0) return;
    const card = await buildCard(this.db, permission);
    const failures: string[] = [];
    for (const message of stale) {
      const channel = this.channels.get(message.platform);
      if (!channel) continue;
      try {
        await channel.update(message.channel, message.messageRef, card);
        await markRendered(this.db, message, signature);
      } catch (err) {
        failures.push(`${message.platform}:${message.channel}: ${(err as Error).message}`);
      }
    }
    if (failures.length) throw new Error(`message update failed (will retry): ${failures.join('; ')}`);
  }

  /** A message the channel already edited itself (an interaction's own answer). */
  async noteRendered(permission: Permission, channel: string, id: string): Promise<void> {
    await markRendered(
      this.db,
      { permissionId: permission.id, platform: channel, channel: id },
      renderSignature(permission),
    );
  }

  /** A reminder in each message's thread while the request is still pending. */
  async remind(permissionId: string): Promise<void> {
    const permission = await findPermission(this.db, permissionId);
    if (permission?.status !== 'pending') return;
    for (const m of await listChatMessages(this.db, permissionId)) {
      const channel = this.channels.get(m.platform);
      if (!channel) continue;
      const people = this.channels
        .approverEntries(permission.approval, channel)
        .filter((e) => e.kind === 'user')
        .map((e) => e.id);
      await channel.notice(
        m.channel,
        m.messageRef,
        'Reminder: this request is still waiting for a decision.',
        people,
      );
    }
    // Recorded once sent, so the reconciler sends it if the job was lost with Redis.
    await markFollowedUp(this.db, permissionId, 'remind', this.clock.now());
  }

  /** Escalation: the request goes to the policy's escalateTo channels and people as well. */
  async escalate(permissionId: string): Promise<void> {
    const permission = await findPermission(this.db, permissionId);
    if (permission?.status !== 'pending') return;
    const messages = await listChatMessages(this.db, permissionId);
    const card = await buildCard(this.db, permission);
    for (const entry of permission.approval?.escalateTo ?? []) {
      const resolved = this.channels.resolveTarget(entry);
      if (!resolved) continue;
      const { channel, target } = resolved;
      if (target.kind === 'channel') {
        await this.postOnce(permission, messages, channel, target.id, card);
        continue;
      }
      for (const m of messages.filter((x) => x.platform === channel.name)) {
        await channel.notice(m.channel, m.messageRef, 'Escalated: please decide on this request.', [
          target.id,
        ]);
      }
    }
    await markFollowedUp(this.db, permissionId, 'escalate', this.clock.now());
  }
}
