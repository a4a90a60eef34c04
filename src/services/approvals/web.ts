import type { ApprovalCard } from '../../core/approval/card.js';
import type { Refusal } from '../../core/approval/refusals.js';
import type { ApproverLinks } from '../../core/approvers.js';
import type { Clock } from '../../core/clock.js';
import { effectivePermission, type Permission } from '../../core/permission.js';
import { type ApprovalProgress, approvalProgress } from '../../core/permissionView.js';
import { findApprover } from '../../store/approverRepository.js';
import type { Db } from '../../store/db.js';
import { findPermission, listPermissions, recentlyDecided } from '../../store/permissionRepository.js';
import type { AuditService } from '../audit.js';
import { agentNames } from './cards.js';
import { type ApprovalService, WEB_CHANNEL } from './service.js';

/** How many pending requests the inbox reads before keeping those the approver may decide. */
const INBOX_SCAN = 200;
/** How many recent decisions it reads before keeping those on requests the approver may decide. */
const RECENT_SCAN = 100;
export const INBOX_MAX = 50;
export const RECENT_MAX = 20;

/** One request as the web pages show it: the card, the votes so far, and whether this approver may decide. */
export interface WebRequestView {
  permission: Permission;
  card: ApprovalCard;
  progress: ApprovalProgress;
  /** Null when the approver may decide it (were it pending); else why not. */
  refusal: Refusal | null;
}

export interface InboxFilter {
  agentId?: string;
  action?: string;
}

/**
 * What the web channel's pages read (issue 15): a request for one approver, and their inbox.
 * Who may decide is ApprovalService.mayDecideOnWeb's rule, the one decideAs applies; this only
 * reads. Deciding goes through ApprovalService.decideAs with a `web` decider.
 */
export class WebApprovals {
  constructor(
    private readonly db: Db,
    private readonly approvals: ApprovalService,
    private readonly links: () => ApproverLinks,
    private readonly clock: Clock,
    private readonly audit: AuditService,
  ) {}

  /**
   * A decision POSTed with no session (signed out, expired, or the approver disabled meanwhile):
   * refused, and recorded as an unauthorized approver event on the web against that request.
   */
  async auditRefusedPost(
    permissionId: string,
    attempted: 'approve' | 'deny',
    client: { ip: string | null; userAgent: string | null },
  ): Promise<void> {
    const permission = await findPermission(this.db, permissionId);
    await this.audit.append(this.db, {
      type: 'unauthorized_approver',
      actor: { type: 'approver', platform: WEB_CHANNEL },
      agentId: permission?.agentId ?? null,
      permissionId: permission?.id ?? null,
      details: { reason: 'not signed in', attempted },
      ip: client.ip,
      userAgent: client.userAgent,
    });
  }

  /**
   * The request as `approverId` sees it (null: signed out, refused as not an approver), or null
   * when there is no such request.
   */
  async request(approverId: string | null, permissionId: string): Promise<WebRequestView | null> {
    const stored = await findPermission(this.db, permissionId);
    if (!stored) return null;
    const permission = effectivePermission(stored, this.clock.now());
    const account = approverId === null ? null : await findApprover(this.db, approverId);
    return {
      permission,
      card: await this.approvals.card(permission),
      progress: approvalProgress(permission, this.links()),
      refusal: account
        ? await this.approvals.mayDecideOnWeb(permission, account)
        : { reason: 'not_an_approver' },
    };
  }

  /**
   * The pending requests this approver may decide, newest first, and the latest decisions (by
   * anyone) on requests they may decide: what happened to the requests they could have answered.
   */
  async inbox(
    approverId: string,
    filter: InboxFilter,
  ): Promise<{ pending: WebRequestView[]; recent: WebRequestView[] }> {
    const account = await findApprover(this.db, approverId);
    const now = this.clock.now();
    const nameOf = agentNames(this.db);
    /** The first `max` of `list` (as readers see them now, kept by `wanted`) this approver may decide. */
    const keep = async (list: Permission[], max: number, wanted: (p: Permission) => boolean) => {
      const out: WebRequestView[] = [];
      for (const stored of list) {
        if (out.length >= max) break;
        const permission = effectivePermission(stored, now);
        if (!wanted(permission)) continue;
        if (await this.approvals.mayDecideOnWeb(permission, account)) continue;
        out.push({
          permission,
          card: await this.approvals.card(permission, nameOf),
          progress: approvalProgress(permission, this.links()),
          refusal: null,
        });
      }
      return out;
    };
    const pending = await listPermissions(this.db, {
      status: 'pending',
      ...(filter.agentId ? { agentId: filter.agentId } : {}),
      ...(filter.action ? { action: filter.action } : {}),
      limit: INBOX_SCAN,
    });
    const recent = await recentlyDecided(this.db, RECENT_SCAN);
    return {
      // Past its deadline but not yet swept: no longer in the inbox.
      pending: await keep(pending, INBOX_MAX, (p) => p.status === 'pending'),
      recent: await keep(recent, RECENT_MAX, () => true),
    };
  }
}
