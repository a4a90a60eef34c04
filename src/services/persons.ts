import { type ApproverLinks, NO_LINKS } from '../core/approvers.js';
import { mergePersons, webIdentity } from '../core/persons.js';
import type { Logger } from '../logger.js';
import { allApprovers } from '../store/approverRepository.js';
import type { Queryable } from '../store/db.js';

/**
 * The persons who decide, from both sources: APPROVER_LINKS and the stored approver accounts
 * (each one person named by the account's name, its identities with `web:<approver id>` for the
 * web channel). Kept in memory, so the rules read it without a query (`links()`); reloaded after
 * each change here, on the bus's `approvers-changed` from other instances, and while the bus is
 * down, by the catch-up timer.
 *
 * Disabled accounts stay persons: disabling someone must never let their second identity vote
 * twice in a quorum, nor approve their own request under it.
 */
export class PersonDirectory {
  private current: ApproverLinks;
  private started = 0;
  private applied = 0;
  private lastMerged = '[]';

  constructor(
    private readonly db: Queryable,
    private readonly logger: Logger,
    /** APPROVER_LINKS. */
    readonly configured: ApproverLinks = NO_LINKS,
  ) {
    this.current = configured;
  }

  /** The persons now: a synchronous read, for PermissionService and ApprovalService. */
  readonly links = (): ApproverLinks => this.current;

  /** Re-reads the accounts; on failure the previous persons stay (logged), never none. */
  async load(): Promise<void> {
    const seq = ++this.started;
    try {
      const stored = await allApprovers(this.db);
      // Two reloads in flight: the one started last read last, and wins.
      if (seq < this.applied) return;
      const { links, merged } = mergePersons(
        this.configured,
        stored.map((a) => ({ name: a.name, identities: [...a.identities, webIdentity(a.id)] })),
      );
      this.applied = seq;
      this.current = links;
      this.logger.debug({ accounts: stored.length }, 'approver accounts loaded');
      this.warnMerged(merged);
    } catch (err) {
      this.logger.error({ err }, 'approver accounts could not be reloaded; keeping the previous persons');
    }
  }

  /** Said once per new situation, not at every reload. */
  private warnMerged(merged: { name: string; members: string[] }[]): void {
    const text = JSON.stringify(merged);
    if (text === this.lastMerged) return;
    this.lastMerged = text;
    for (const m of merged) {
      this.logger.warn(
        { person: m.name, merged: m.members },
        'APPROVER_LINKS and approver accounts share an identity or a name: they count as one person; remove the overlap from APPROVER_LINKS',
      );
    }
  }
}
