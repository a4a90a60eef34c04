import type { ApprovalCard, CardState } from '../chat/card.js';
import { type ApproverLinks, attributeApprover, NO_LINKS } from '../core/approvers.js';
import type { Actor } from '../core/audit/index.js';
import type { Clock } from '../core/clock.js';
import { AppError } from '../core/errors.js';
import type { Permission } from '../core/permission.js';
import { describeScope } from '../core/scope/index.js';
import type { Logger } from '../logger.js';
import { findAgent } from '../store/agentRepository.js';
import {
  listChatMessages,
  markFollowedUp,
  markNotified,
  markRendered,
  saveChatMessage,
  setApprovalUrl,
} from '../store/chatMessageRepository.js';
import type { Db } from '../store/db.js';
import { findPermission } from '../store/permissionRepository.js';
import type { AuditService } from './audit.js';
import type { PermissionService } from './permissions.js';

export type PlatformName = 'slack' | 'discord';

/** The person who pressed a button, as the platform identifies them. */
export interface ChatUser {
  platform: PlatformName;
  userId: string;
  userName: string;
  /** Slack workspace id. */
  teamId?: string;
  /** Discord guild id and the member's role ids (Discord sends them with the interaction). */
  guildId?: string;
  roleIds?: string[];
}

/**
 * What the core needs from a chat platform (Teleport's MessagingBot): post and edit approval
 * messages, post notes, and answer group membership. Implementations translate and never decide.
 */
export interface ChatPlatform {
  readonly platform: PlatformName;
  post(channel: string, card: ApprovalCard): Promise<{ messageRef: string; permalink: string | null }>;
  update(channel: string, messageRef: string, card: ApprovalCard): Promise<void>;
  /** A note in the message's thread (reminders, escalations), mentioning people. */
  notice(channel: string, messageRef: string | null, text: string, mentionUserIds: string[]): Promise<void>;
  /** Is the user in any of these groups (Slack user groups, Discord roles)? */
  memberOfAny(user: ChatUser, groupIds: string[]): Promise<boolean>;
  /** Approval channel and approvers from the environment. */
  readonly defaults: { channel: string | null; approvers: string[] };
}

export type ChatDecisionOutcome =
  | { kind: 'decided'; permission: Permission; approvals: { count: number; required: number } }
  | { kind: 'refused'; message: string }
  | { kind: 'closed'; message: string }
  /** The same approver repeated a decision already recorded: nothing changed, tell them so. */
  | { kind: 'unchanged'; message: string };

interface ApprovalSettings {
  channels?: string[];
  approvers?: string[];
  quorum?: number;
  escalateTo?: string[];
}

/** `${status}:${approvals}`: what a message shows; equal signatures need no edit. */
export function renderSignature(p: Pick<Permission, 'status' | 'approvals'>): string {
  return `${p.status}:${p.approvals.length}`;
}

/**
 * Human approvals in chat: where a request is posted, who may decide, and keeping every posted
 * message in step with the permission. Decisions go through PermissionService.decide, the same
 * path as the operator API.
 */
export class ApprovalService {
  private readonly platforms = new Map<PlatformName, ChatPlatform>();

  constructor(
    private readonly db: Db,
    private readonly permissions: PermissionService,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly logger: Logger,
    /** APPROVER_LINKS: the self-approval ban and the audit follow a person across platforms. */
    private readonly links: ApproverLinks = NO_LINKS,
  ) {}

  register(platform: ChatPlatform): void {
    this.platforms.set(platform.platform, platform);
  }

  get enabled(): boolean {
    return this.platforms.size > 0;
  }

  /** Posts a note to each platform's default approval channel (alerts); returns where it went. */
  async broadcast(text: string): Promise<string[]> {
    const sent: string[] = [];
    for (const platform of this.platforms.values()) {
      if (!platform.defaults.channel) continue;
      try {
        await platform.notice(platform.defaults.channel, null, text, []);
        sent.push(`${platform.platform}:${platform.defaults.channel}`);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message, platform: platform.platform }, 'broadcast failed');
      }
    }
    return sent;
  }

  /** Posts a pending request to every target channel it is not posted in yet. */
  async notify(permissionId: string): Promise<void> {
    const permission = await findPermission(this.db, permissionId);
    if (permission?.status !== 'pending') return;
    const posted = await listChatMessages(this.db, permissionId);
    const card = await this.card(permission);
    const failures: string[] = [];
    for (const target of this.targets(permission)) {
      try {
        await this.postOnce(permission, posted, target, card);
      } catch (err) {
        failures.push(`${target.platform.platform}:${target.channel}: ${(err as Error).message}`);
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
    posted: readonly { platform: PlatformName; channel: string }[],
    target: { platform: ChatPlatform; channel: string },
    card: ApprovalCard,
  ): Promise<void> {
    if (posted.some((m) => m.platform === target.platform.platform && m.channel === target.channel)) return;
    const { messageRef, permalink } = await target.platform.post(target.channel, card);
    await saveChatMessage(this.db, {
      permissionId: permission.id,
      platform: target.platform.platform,
      channel: target.channel,
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
    const card = await this.card(permission);
    const failures: string[] = [];
    for (const message of stale) {
      const platform = this.platforms.get(message.platform);
      if (!platform) continue;
      try {
        await platform.update(message.channel, message.messageRef, card);
        await markRendered(this.db, message, signature);
      } catch (err) {
        failures.push(`${message.platform}:${message.channel}: ${(err as Error).message}`);
      }
    }
    if (failures.length) throw new Error(`message update failed (will retry): ${failures.join('; ')}`);
  }

  /** A message already edited by the platform itself (an interaction's own update). */
  async noteRendered(permission: Permission, platform: PlatformName, channel: string): Promise<void> {
    await markRendered(
      this.db,
      { permissionId: permission.id, platform, channel },
      renderSignature(permission),
    );
  }

  /** A reminder in each message's thread while the request is still pending. */
  async remind(permissionId: string): Promise<void> {
    const permission = await findPermission(this.db, permissionId);
    if (permission?.status !== 'pending') return;
    const messages = await listChatMessages(this.db, permissionId);
    for (const m of messages) {
      const platform = this.platforms.get(m.platform);
      if (!platform) continue;
      const approvers = this.approversFor(permission, platform).filter(
        (id) => !isGroupId(platform.platform, id),
      );
      await platform.notice(
        m.channel,
        m.messageRef,
        `Reminder: this request is still waiting for a decision.`,
        approvers,
      );
    }
    // Recorded once sent, so the reconciler sends it if the job was lost with Redis.
    await markFollowedUp(this.db, permissionId, 'remind', this.clock.now());
  }

  /** Escalation: the request goes to the policy's escalate_to channels and people as well. */
  async escalate(permissionId: string): Promise<void> {
    const permission = await findPermission(this.db, permissionId);
    if (permission?.status !== 'pending') return;
    const escalateTo = (permission.approval as ApprovalSettings | null)?.escalateTo ?? [];
    const messages = await listChatMessages(this.db, permissionId);
    const card = await this.card(permission);
    for (const entry of escalateTo) {
      const target = this.resolveTarget(entry);
      if (target?.kind === 'channel') {
        await this.postOnce(permission, messages, target, card);
      } else if (target?.kind === 'user') {
        for (const m of messages.filter((x) => x.platform === target.platform.platform)) {
          await target.platform.notice(m.channel, m.messageRef, 'Escalated: please decide on this request.', [
            target.userId,
          ]);
        }
      }
    }
    await markFollowedUp(this.db, permissionId, 'escalate', this.clock.now());
  }

  /**
   * "Approve with changes…": the card to build the form from, as stored now, or why there is no
   * form to show (only a pending request can be narrowed). Asked when the form opens and again
   * when it is submitted.
   */
  async changesForm(
    permissionId: string,
  ): Promise<{ kind: 'open'; card: ApprovalCard } | { kind: 'closed'; message: string }> {
    const permission = await findPermission(this.db, permissionId);
    if (permission?.status !== 'pending')
      return { kind: 'closed', message: 'This request is no longer pending.' };
    return { kind: 'open', card: await this.card(permission) };
  }

  /**
   * A button press or form submission. Checks who may decide (configured approvers, the
   * self-approval ban), audits refusals, and decides through PermissionService.
   */
  async decideFromChat(input: {
    permissionId: string;
    user: ChatUser;
    approved: boolean;
    reason?: string;
    scopeModifications?: Record<string, unknown>;
  }): Promise<ChatDecisionOutcome> {
    const permission = await findPermission(this.db, input.permissionId);
    if (!permission) return { kind: 'closed', message: 'This request no longer exists.' };
    const actor = attributeApprover(approverActor(input.user), this.links);
    const refusal = await this.refusal(permission, input.user, actor);
    if (refusal) {
      this.logger.info(
        { permissionId: permission.id, platform: input.user.platform, userId: input.user.userId, refusal },
        'refused a decision from chat',
      );
      await this.audit.append(this.db, {
        type: 'unauthorized_approver',
        actor,
        agentId: permission.agentId,
        permissionId: permission.id,
        details: { reason: refusal, attempted: input.approved ? 'approve' : 'deny' },
      });
      return { kind: 'refused', message: refusal };
    }
    try {
      const result = await this.permissions.decide({
        permissionId: permission.id,
        approved: input.approved,
        reason: input.reason,
        scopeModifications: input.scopeModifications,
        approver: actor,
        origin: { actor },
      });
      // A repeated click (a second vote by the same approver, or Approve on a request they already
      // approved) changes nothing; answering it as 'decided' left the clicker without any reply.
      if (!result.changed) {
        const { count, required } = result.approvals;
        const message =
          result.permission.status === 'pending'
            ? `Your approval is already counted (${count}/${required}).`
            : closedMessage(result.permission);
        return { kind: 'unchanged', message };
      }
      return { kind: 'decided', permission: result.permission, approvals: result.approvals };
    } catch (err) {
      // The self-approval ban is decide's (one rule for every channel), refused and audited there.
      if (err instanceof AppError && err.code === 'FORBIDDEN')
        return { kind: 'refused', message: err.message };
      if (err instanceof AppError && (err.code === 'ALREADY_DECIDED' || err.code === 'CONFLICT')) {
        const current = await findPermission(this.db, permission.id);
        return { kind: 'closed', message: current ? closedMessage(current) : err.message };
      }
      throw err;
    }
  }

  /** Why this user may not decide this request, or null when they may. */
  private async refusal(permission: Permission, user: ChatUser, actor: Actor): Promise<string | null> {
    const platform = this.platforms.get(user.platform);
    if (!platform) return 'Approvals are not enabled on this platform.';
    const approvers = this.approversFor(permission, platform);
    if (approvers.length === 0) return 'No approvers are configured for this request.';
    const own = approvers.filter((a) => !isGroupId(platform.platform, a));
    if (own.includes(user.userId)) return null;
    const groups = approvers.filter((a) => isGroupId(platform.platform, a));
    if (groups.length && (await platform.memberOfAny(user, groups))) return null;
    return 'You are not an approver for this request.';
  }

  /** The policy's approvers for this platform (prefixed `slack:`/`discord:` or bare), else the defaults. */
  private approversFor(permission: Permission, platform: ChatPlatform): string[] {
    const fromPolicy = (permission.approval as ApprovalSettings | null)?.approvers;
    if (!fromPolicy?.length) return platform.defaults.approvers;
    const prefix = `${platform.platform}:`;
    return fromPolicy.flatMap((entry) => {
      if (entry.startsWith(prefix)) return [entry.slice(prefix.length)];
      if (/^(slack|discord):/.test(entry)) return [];
      return [entry];
    });
  }

  private targets(permission: Permission): { platform: ChatPlatform; channel: string }[] {
    const channels = (permission.approval as ApprovalSettings | null)?.channels;
    if (channels?.length) {
      return channels.flatMap((entry) => {
        const target = this.resolveTarget(entry);
        return target?.kind === 'channel' ? [{ platform: target.platform, channel: target.channel }] : [];
      });
    }
    return [...this.platforms.values()].flatMap((platform) =>
      platform.defaults.channel ? [{ platform, channel: platform.defaults.channel }] : [],
    );
  }

  /** `slack:C123`, `discord:123…`, or a bare Slack channel id/name; `@U123`/`slack:@U123` is a user. */
  private resolveTarget(
    entry: string,
  ):
    | { kind: 'channel'; platform: ChatPlatform; channel: string }
    | { kind: 'user'; platform: ChatPlatform; userId: string }
    | null {
    const match = /^(slack|discord):(.+)$/.exec(entry);
    const platformName = (match?.[1] ?? 'slack') as PlatformName;
    const rest = match?.[2] ?? entry;
    const platform = this.platforms.get(platformName);
    if (!platform) return null;
    if (rest.startsWith('@')) return { kind: 'user', platform, userId: rest.slice(1) };
    if (platformName === 'slack' && /^[UW][A-Z0-9]+$/.test(rest))
      return { kind: 'user', platform, userId: rest };
    return { kind: 'channel', platform, channel: rest.replace(/^#/, '') };
  }

  async card(permission: Permission): Promise<ApprovalCard> {
    const agent = await findAgent(this.db, permission.agentId);
    const context = Object.entries(permission.context);
    const reason = permission.context.reason;
    const ordered = [
      ...context.filter(([k]) => k === 'reason'),
      ...context.filter(([k]) => k !== 'reason'),
    ].map(([key, value]) => ({ key, value: typeof value === 'string' ? value : JSON.stringify(value) }));
    const requestedBy = permission.context.user_id;
    return {
      permissionId: permission.id,
      agentName: agent?.name ?? permission.agentId,
      agentId: permission.agentId,
      action: permission.action,
      resource: permission.resource,
      scopeRows: describeScope(permission.scope),
      scope: permission.scope,
      context: ordered,
      reason: typeof reason === 'string' ? reason : null,
      requestedBy: typeof requestedBy === 'string' ? requestedBy : null,
      expiresAt: permission.expiresAt,
      policyName: permission.policyName,
      state: cardState(permission),
    };
  }
}

export function approverActor(user: ChatUser): Actor {
  return {
    type: 'approver',
    platform: user.platform,
    ...(user.teamId ? { teamId: user.teamId } : {}),
    ...(user.guildId ? { guildId: user.guildId } : {}),
    userId: user.userId,
    userName: user.userName,
  };
}

function isGroupId(platform: PlatformName, id: string): boolean {
  // Slack user groups are S…; Discord roles are configured apart and passed as `role:<id>`.
  return platform === 'slack' ? id.startsWith('S') : id.startsWith('role:');
}

function cardState(p: Permission): CardState {
  const at = p.updatedAt;
  switch (p.status) {
    case 'pending': {
      const quorum = (p.approval as ApprovalSettings | null)?.quorum;
      return { kind: 'pending', approvals: p.approvals.length, required: quorum && quorum > 1 ? quorum : 1 };
    }
    case 'approved':
      return { kind: 'approved', by: p.decidedBy, at: p.decidedAt ?? at, expiresAt: p.expiresAt };
    case 'denied':
      return { kind: 'denied', by: p.decidedBy, at: p.decidedAt ?? at, reason: p.decisionReason };
    case 'used':
      return { kind: 'used', at: p.lastUsedAt ?? at };
    case 'expired':
      return { kind: 'expired', unused: p.decidedAt !== null && p.usesRemaining === p.maxUses };
    case 'revoked':
      return { kind: 'revoked', at };
    case 'cancelled':
      return { kind: 'cancelled', at };
  }
}

function closedMessage(p: Permission): string {
  const by = p.decidedBy ? ` by ${p.decidedBy.userName ?? p.decidedBy.name ?? p.decidedBy.type}` : '';
  switch (p.status) {
    case 'approved':
    case 'used':
      return `This request was already approved${by}.`;
    case 'denied':
      return `This request was already denied${by}.`;
    case 'expired':
      return 'This request has expired.';
    case 'revoked':
      return 'This permission was revoked.';
    case 'cancelled':
      return 'The agent cancelled this request.';
    default:
      return 'This request is still pending.';
  }
}
