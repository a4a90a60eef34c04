import type { ApprovalCard } from '../../core/approval/card.js';
import { describeRefusal, type Refusal } from '../../core/approval/refusals.js';
import {
  type ApproverLinks,
  attributeApprover,
  type LinksSource,
  linksProvider,
} from '../../core/approvers.js';
import type { Actor } from '../../core/audit/index.js';
import { type Clock, systemClock } from '../../core/clock.js';
import { AppError } from '../../core/errors.js';
import type { Permission } from '../../core/permission.js';
import type { Logger } from '../../logger.js';
import { type ApproverAccount, findApprover, identityOwners } from '../../store/approverRepository.js';
import type { Db } from '../../store/db.js';
import { findPermission } from '../../store/permissionRepository.js';
import type { RequestOrigin } from '../agents.js';
import type { AuditService } from '../audit.js';
import { type PermissionService, permissionNotFound } from '../permissions.js';
import { type AgentNames, buildCard } from './cards.js';
import type { ApprovalChannel, ApproverEntry, ChannelRegistry, ChannelUser } from './channel.js';

/** How fresh a passkey assertion must be to approve a step-up request on the web. */
export const STEP_UP_MAX_AGE_MS = 5 * 60_000;

/** Step-up (a policy's `approval.passkey`): where chat clickers are sent, and the time now. */
export interface StepUpOptions {
  /** The web approval page of a request (`${PUBLIC_URL}/approve/<id>`), or null when unknown. */
  pageUrl(permissionId: string): string | null;
  clock: Clock;
}

/** The web channel's registered name: its identities are `web:<approver id>`. */
export const WEB_CHANNEL = 'web';

/**
 * Who is deciding. A channel user is checked against the request's approvers (its policy's, else
 * the channels' defaults); a web approver (signed in with a passkey) through the identities of
 * their account (mayDecideOnWeb); an operator key (the API, the CLI) is an administrator's and may
 * decide any request. All then meet the same rules in PermissionService.decide: the self-approval
 * ban, one vote per person, quorum, narrowing only.
 */
export type Decider =
  | { kind: 'channel'; user: ChannelUser }
  | {
      kind: 'web';
      /** The signed-in approver account (`apr_…`). */
      approverId: string;
      /** The passkey whose session casts the vote, recorded in the audit. */
      credentialId: string;
      /** When that passkey assertion was made: a step-up approval needs a fresh one. */
      verifiedAt: Date;
    }
  | { kind: 'operator'; origin: RequestOrigin };

export interface DecisionInput {
  permissionId: string;
  approved: boolean;
  reason?: string;
  /** "Approve with changes": narrowing only (SCOPE_WIDENING otherwise). */
  scopeModifications?: Record<string, unknown>;
}

export type DecisionResult =
  | { kind: 'decided'; permission: Permission; approvals: { count: number; required: number } }
  /** The same person repeated a decision already recorded: nothing changed. */
  | { kind: 'unchanged'; permission: Permission; approvals: { count: number; required: number } }
  /** Not decided: `refusal` says why (each channel words it), `error` is the API's answer. */
  | { kind: 'refused'; refusal: Refusal; error: AppError };

/** The audit actor of a channel user (the platform, workspace or guild, and the user). */
export function channelActor(user: ChannelUser): Actor {
  return {
    type: 'approver',
    platform: user.channel,
    ...(user.teamId ? { teamId: user.teamId } : {}),
    ...(user.guildId ? { guildId: user.guildId } : {}),
    userId: user.userId,
    userName: user.userName,
  };
}

/**
 * The one way a human decision reaches PermissionService.decide (DESIGN §13), whatever channel it
 * came through: a chat click or form, the CLI or API, later the web page. Channels word the typed
 * refusals in their own idiom; none of them decides who may approve.
 */
export class ApprovalService {
  /** The persons now (APPROVER_LINKS and approver accounts): the audit names the person behind a channel identity. */
  private readonly links: () => ApproverLinks;

  constructor(
    private readonly db: Db,
    private readonly permissions: PermissionService,
    private readonly audit: AuditService,
    private readonly channels: ChannelRegistry,
    private readonly logger: Logger,
    links?: LinksSource,
    private readonly stepUp: StepUpOptions = { pageUrl: () => null, clock: systemClock },
  ) {
    this.links = linksProvider(links);
  }

  async decideAs(decider: Decider, input: DecisionInput): Promise<DecisionResult> {
    if (decider.kind === 'channel') {
      const permission = await findPermission(this.db, input.permissionId);
      if (!permission) return refused({ reason: 'not_found' }, permissionNotFound(input.permissionId));
      const actor = attributeApprover(channelActor(decider.user), this.links());
      const refusal = await this.mayDecide(permission, decider.user);
      if (refusal) {
        await this.auditRefusal(permission, actor, refusal, input.approved);
        return refused(refusal, new AppError('FORBIDDEN', describeRefusal(refusal)));
      }
      if (input.approved && permission.status === 'pending' && permission.approval?.passkey === true) {
        return this.handOver(permission, decider.user, actor);
      }
      return this.decide(input, actor, { actor });
    }
    if (decider.kind === 'web') return this.decideOnWeb(decider, input);
    return this.decide(input, decider.origin.actor, decider.origin);
  }

  /**
   * Step-up: a chat Approve on a request whose policy needs a passkey decides nothing. The clicker
   * is sent to the web page (or told to ask for an invitation when no approver account holds their
   * identity), and the click is audited, so the trail shows the click and, later, the passkey vote.
   */
  private async handOver(permission: Permission, user: ChannelUser, actor: Actor): Promise<DecisionResult> {
    const [owner] = await identityOwners(this.db, [`${user.channel}:${user.userId}`]);
    const refusal: Refusal = {
      reason: 'passkey_required',
      url: this.stepUp.pageUrl(permission.id),
      linked: owner !== undefined,
    };
    await this.audit.append(this.db, {
      type: 'approval_step_up',
      actor,
      agentId: permission.agentId,
      permissionId: permission.id,
      details: { approverId: owner?.approverId ?? null },
    });
    return refused(refusal, new AppError('FORBIDDEN', describeRefusal(refusal)));
  }

  private async decideOnWeb(
    decider: Extract<Decider, { kind: 'web' }>,
    input: DecisionInput,
  ): Promise<DecisionResult> {
    const permission = await findPermission(this.db, input.permissionId);
    if (!permission) return refused({ reason: 'not_found' }, permissionNotFound(input.permissionId));
    const account = await findApprover(this.db, decider.approverId);
    const actor = attributeApprover(
      {
        type: 'approver',
        platform: WEB_CHANNEL,
        userId: decider.approverId,
        ...(account ? { userName: account.name } : {}),
        credentialId: decider.credentialId,
      },
      this.links(),
    );
    let refusal = await this.mayDecideOnWeb(permission, account);
    const stale = this.stepUp.clock.now().getTime() - decider.verifiedAt.getTime() > STEP_UP_MAX_AGE_MS;
    if (!refusal && input.approved && permission.approval?.passkey === true && stale) {
      refusal = { reason: 'passkey_stale' };
    }
    if (refusal) {
      await this.auditRefusal(permission, actor, refusal, input.approved);
      return refused(refusal, new AppError('FORBIDDEN', describeRefusal(refusal)));
    }
    return this.decide(input, actor, { actor });
  }

  /**
   * May this approver account decide on the web? The account must be active, and the request's
   * approvers (its policy's, else every channel's defaults) must name one of its identities:
   * `web:<approver id>` or `web:<approver name>` for the web channel itself, a linked
   * `slack:U…`/`discord:…` id where that channel lists it, or a group that channel says the
   * linked id is in (memberOfAny). Slack user groups are looked up by user id; Discord roles are
   * known only from the member an interaction carries, so a Discord role never grants on the web
   * (list the person's Discord user id, or `web:<name>`, instead). Only configured channels
   * count, as in chat: an identity on a channel this process does not run grants nothing.
   */
  async mayDecideOnWeb(permission: Permission, account: ApproverAccount | null): Promise<Refusal | null> {
    if (account?.status !== 'active') return { reason: 'account_disabled' };
    const web = this.channels.get(WEB_CHANNEL);
    if (!web) return { reason: 'channel_disabled' };
    for (const channel of this.channels.list()) {
      const listed = this.channels.approverEntries(permission.approval, channel);
      if (channel === web) {
        const name = account.name.toLowerCase();
        const named = (id: string) => id === account.id || id.toLowerCase() === name;
        if (listed.some((e) => e.kind === 'user' && named(e.id))) return null;
        continue;
      }
      const prefix = `${channel.name}:`;
      for (const identity of account.identities.filter((i) => i.startsWith(prefix))) {
        const user: ChannelUser = {
          channel: channel.name,
          userId: identity.slice(prefix.length),
          userName: account.name,
        };
        if (await isListed(channel, listed, user)) return null;
      }
    }
    return this.notListed(permission);
  }

  /**
   * "Approve with changes…": the card to build the form from, as stored now, or why there is no
   * form to show (only a pending request can be narrowed). Asked when the form opens and again
   * when it is submitted.
   */
  async changesForm(
    permissionId: string,
  ): Promise<{ kind: 'open'; card: ApprovalCard } | { kind: 'closed'; refusal: Refusal }> {
    const permission = await findPermission(this.db, permissionId);
    if (!permission) return { kind: 'closed', refusal: { reason: 'not_found' } };
    if (permission.status !== 'pending') return { kind: 'closed', refusal: { reason: 'closed', permission } };
    return { kind: 'open', card: await buildCard(this.db, permission) };
  }

  /** `nameOf`: a shared agent-name lookup when building many cards (see agentNames). */
  card(permission: Permission, nameOf?: AgentNames): Promise<ApprovalCard> {
    return buildCard(this.db, permission, nameOf);
  }

  /**
   * May this channel user decide? Yes when the policy's approvers (else their channel's defaults)
   * name their identity on the channel they clicked in, or a group their channel says they are in.
   * Persons (APPROVER_LINKS, approver accounts) make one person of several identities for quorum and the self-approval
   * ban, but grant nothing: each identity is an approver only where it is listed.
   */
  private async mayDecide(permission: Permission, user: ChannelUser): Promise<Refusal | null> {
    const channel = this.channels.get(user.channel);
    if (!channel) return { reason: 'channel_disabled' };
    if (await isListed(channel, this.channels.approverEntries(permission.approval, channel), user))
      return null;
    return this.notListed(permission);
  }

  /**
   * The refusal of someone no list names: no_approvers means nobody on any configured channel may
   * decide (a configuration gap); approvers listed elsewhere make them "not an approver".
   */
  private notListed(permission: Permission): Refusal {
    const anyApprover = this.channels
      .list()
      .some((c) => this.channels.approverEntries(permission.approval, c).length > 0);
    return { reason: anyApprover ? 'not_an_approver' : 'no_approvers' };
  }

  private async auditRefusal(permission: Permission, actor: Actor, refusal: Refusal, approved: boolean) {
    const reason = describeRefusal(refusal);
    this.logger.info(
      {
        permissionId: permission.id,
        platform: actor.platform,
        userId: actor.userId,
        refusal: refusal.reason,
      },
      'refused a decision from a channel',
    );
    await this.audit.append(this.db, {
      type: 'unauthorized_approver',
      actor,
      agentId: permission.agentId,
      permissionId: permission.id,
      details: { reason, attempted: approved ? 'approve' : 'deny' },
    });
  }

  private async decide(
    input: DecisionInput,
    approver: Actor,
    origin: RequestOrigin,
  ): Promise<DecisionResult> {
    try {
      const result = await this.permissions.decide({
        permissionId: input.permissionId,
        approved: input.approved,
        reason: input.reason,
        scopeModifications: input.scopeModifications,
        approver,
        origin,
      });
      // A repeated click (a second vote by the same person, or Approve on a request they already
      // approved) changes nothing, and is answered as such rather than left without a reply.
      const kind = result.changed ? 'decided' : 'unchanged';
      return { kind, permission: result.permission, approvals: result.approvals };
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      // The self-approval ban is decide's (one rule for every channel), refused and audited there.
      if (err.code === 'FORBIDDEN') return refused({ reason: 'self_approval' }, err);
      if (err.code === 'NOT_FOUND') return refused({ reason: 'not_found' }, err);
      if (err.code === 'ALREADY_DECIDED' || err.code === 'CONFLICT') {
        const current = await findPermission(this.db, input.permissionId);
        if (!current) return refused({ reason: 'not_found' }, err);
        // CONFLICT is decide's "expired before this decision": the sweep may not have stored the
        // expiry yet, and a stored `pending` would be worded "This request is still pending."
        const expired = err.code === 'CONFLICT' && current.status === 'pending';
        return refused(
          { reason: 'closed', permission: expired ? { ...current, status: 'expired' } : current },
          err,
        );
      }
      throw err;
    }
  }
}

const refused = (refusal: Refusal, error: AppError): DecisionResult => ({ kind: 'refused', refusal, error });

/** Is this channel user named in `listed`, directly or through a group their channel says they are in? */
async function isListed(
  channel: ApprovalChannel,
  listed: ApproverEntry[],
  user: ChannelUser,
): Promise<boolean> {
  if (listed.some((e) => e.kind === 'user' && e.id === user.userId)) return true;
  const groups = listed.filter((e) => e.kind === 'group').map((e) => e.id);
  return groups.length > 0 && (await channel.memberOfAny(user, groups));
}
