import type { Clock } from '../core/clock.js';
import type { Logger } from '../logger.js';
import type { ApprovalMessages } from '../services/approvals/messages.js';
import type { PermissionService } from '../services/permissions.js';
import type { WebhookService } from '../services/webhooks.js';
import { overdueFollowUps, staleMessages, unnotifiedPending } from '../store/chatMessageRepository.js';
import type { Db } from '../store/db.js';
import type { JobQueue } from './jobQueue.js';

const GRACE_MS = 3000;
const BATCH = 200;

/**
 * Repairs what an interrupted process or a Redis flush left behind, working from Postgres
 * (DESIGN §8): pending requests never posted, reminders and escalations never sent, pending
 * requests and tokens past their expiry, messages showing an old state, webhook deliveries whose
 * queue job was lost.
 */
export class Reconciler {
  constructor(
    private readonly db: Db,
    private readonly messages: ApprovalMessages,
    private readonly permissions: PermissionService,
    private readonly jobs: JobQueue,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly webhooks: WebhookService | null = null,
  ) {}

  async run(): Promise<void> {
    const expired = await this.permissions.expireDue();
    // Leave just-created requests to their own notify job; the job id dedupes the rest.
    const before = new Date(this.clock.now().getTime() - GRACE_MS);
    const unposted = this.messages.enabled ? await unnotifiedPending(this.db, before, BATCH) : [];
    for (const id of unposted) await this.jobs.notify(id);
    // Due before the grace period and never sent: the delayed job is gone (same job id, so a
    // job still waiting in Redis is not doubled).
    let followUps = 0;
    if (this.messages.enabled) {
      for (const id of await overdueFollowUps(this.db, 'remind', before, BATCH)) {
        await this.jobs.remindIn(id, 0);
        followUps += 1;
      }
      for (const id of await overdueFollowUps(this.db, 'escalate', before, BATCH)) {
        await this.jobs.escalateIn(id, 0);
        followUps += 1;
      }
    }
    const stale = this.messages.enabled ? await staleMessages(this.db, before, BATCH) : [];
    // Editing a message twice is harmless, so stale ones are repaired here directly.
    for (const id of stale) {
      await this.messages
        .syncMessages(id)
        .catch((err) => this.logger.warn({ err: (err as Error).message, id }, 'repair failed'));
    }
    const webhooks = (await this.webhooks?.requeueOverdue()) ?? 0;
    if (expired || unposted.length || followUps || stale.length || webhooks) {
      this.logger.info(
        { expired, unposted: unposted.length, followUps, stale: stale.length, webhooks },
        'reconciler repaired',
      );
    }
  }
}
