import type { Clock } from '../../core/clock.js';
import type { Permission } from '../../core/permission.js';
import type { PermissionChange, PermissionEventType } from '../permissions.js';

/**
 * The delayed and background work of approvals, as the queue offers it (src/queue/jobQueue.ts).
 * A port, so that what to schedule is decided here and the queue only carries it.
 */
export interface ApprovalJobs {
  notify(permissionId: string): Promise<void>;
  messageUpdate(permission: Pick<Permission, 'id' | 'status' | 'approvals'>): Promise<void>;
  messageRedraw(permissionId: string, eventId: string): Promise<void>;
  expireAt(permission: Pick<Permission, 'id' | 'expiresAt'>, now: Date): Promise<void>;
  remindIn(permissionId: string, seconds: number): Promise<void>;
  escalateIn(permissionId: string, seconds: number): Promise<void>;
  /** Enqueue without failing the caller: the reconciler repairs what an outage drops. */
  soon(what: string, work: Promise<void>): void;
}

/** Events after which a posted message may need editing (the request itself is posted by notify). */
const MESSAGE_EVENTS: ReadonlySet<PermissionEventType> = new Set([
  'approved',
  'denied',
  'used',
  'revoked',
  'cancelled',
  'expired',
  'vote',
]);

/** Auto-decided permissions were never posted to a human, so they have no message to edit. */
const wentToHumans = (p: Permission) => p.decidedBy?.type !== 'policy';

/**
 * What each committed permission change schedules (as WebhookService.onPermissionEvent does for
 * webhooks): a pending request is posted, reminded, escalated and expired on time; a human
 * decision edits its messages and expires its token on time. Expiry does not depend on any
 * channel being configured. Auto-approved tokens are left to the reconciler's sweep, so the hot
 * request path adds no queue write.
 */
export class ApprovalScheduler {
  constructor(
    private readonly jobs: ApprovalJobs,
    private readonly clock: Clock,
    /** Is any channel configured (else there is nothing to post or edit)? */
    private readonly channelsEnabled: () => boolean,
  ) {}

  onPermissionEvent({ type, permission }: Pick<PermissionChange, 'type' | 'permission'>): void {
    const now = this.clock.now();
    if (type === 'requested') {
      if (permission.status !== 'pending') return;
      this.jobs.soon('expire', this.jobs.expireAt(permission, now));
      if (!this.channelsEnabled()) return;
      this.jobs.soon('notify', this.jobs.notify(permission.id));
      const { remindAfter, escalateAfter } = permission.approval ?? {};
      if (remindAfter) this.jobs.soon('remind', this.jobs.remindIn(permission.id, remindAfter));
      if (escalateAfter) this.jobs.soon('escalate', this.jobs.escalateIn(permission.id, escalateAfter));
      return;
    }
    if (!MESSAGE_EVENTS.has(type) || !wentToHumans(permission)) return;
    if (type === 'approved') this.jobs.soon('expire', this.jobs.expireAt(permission, now));
    if (this.channelsEnabled()) this.jobs.soon('message-update', this.jobs.messageUpdate(permission));
  }

  /** An erasure rewrote what posted messages show: redraw them (the reconciler repairs a lost job). */
  onErased({ eventId, chatPermissionIds }: { eventId: string; chatPermissionIds: string[] }): void {
    if (!this.channelsEnabled()) return;
    for (const id of chatPermissionIds)
      this.jobs.soon('message-update', this.jobs.messageRedraw(id, eventId));
  }
}
