import {
  type AuditEvent,
  type AuditEventInput,
  chainHash,
  GENESIS_HASH,
  hashDetails,
} from '../core/audit/index.js';
import type { Clock } from '../core/clock.js';
import { newId } from '../core/ids.js';
import {
  type AuditQuery,
  chainHead,
  countUnsealed,
  earliestCheckpoint,
  insertAuditEvents,
  queryAuditEvents,
  type StoredAuditEvent,
  sealEvents,
  sealedEventsAfter,
  unsealedEvents,
} from '../store/auditRepository.js';
import { type Db, LOCKS, type Queryable } from '../store/db.js';

export interface VerifyResult {
  valid: boolean;
  checked: number;
  unsealed: number;
  firstBroken?: { id: string; chainIndex: number; reason: string };
}

const SEAL_BATCH = 1000;
const BUFFER_FLUSH_MS = 100;
const BUFFER_MAX = 500;

/**
 * Appends audit events inside the caller's transaction (so an event exists exactly when its state
 * change does) and links them into the hash chain afterwards, in one sealer at a time.
 */
export class AuditService {
  private buffer: AuditEvent[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly onFlushError: (err: unknown) => void = () => undefined,
  ) {}

  build(input: AuditEventInput): AuditEvent {
    const details = input.details ?? {};
    return {
      id: newId('event'),
      occurredAt: this.clock.now(),
      type: input.type,
      actor: input.actor,
      agentId: input.agentId ?? null,
      permissionId: input.permissionId ?? null,
      details,
      ip: input.ip ?? null,
      userAgent: input.userAgent ?? null,
      detailsHash: hashDetails(details),
    };
  }

  /** Writes the events in the caller's transaction: they commit or roll back with the change. */
  async append(tx: Queryable, ...inputs: AuditEventInput[]): Promise<AuditEvent[]> {
    const events = inputs.map((i) => this.build(i));
    await insertAuditEvents(tx, events);
    return events;
  }

  /**
   * For events that record a read and change no state (verify): written in batches within
   * about 100 ms, so the read path costs one query instead of a query and a commit. Events that
   * record a state change always go through append() in the change's own transaction.
   */
  record(input: AuditEventInput): void {
    this.buffer.push(this.build(input));
    if (this.buffer.length >= BUFFER_MAX) {
      void this.flush();
    } else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => void this.flush(), BUFFER_FLUSH_MS);
      this.flushTimer.unref();
    }
  }

  /** Writes buffered events now (also called on shutdown). */
  flush(): Promise<void> {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    const batch = this.buffer;
    this.buffer = [];
    this.flushing = this.flushing.then(async () => {
      if (batch.length === 0) return;
      try {
        await insertAuditEvents(this.db, batch);
      } catch (err) {
        this.onFlushError(err);
      }
    });
    return this.flushing;
  }

  /**
   * Links unsealed rows into the chain. Only one sealer runs at a time (advisory lock); others
   * return 0 at once. Returns how many rows were sealed.
   */
  async sealPending(): Promise<number> {
    let total = 0;
    for (;;) {
      const sealed = await this.db.transaction(async (tx) => {
        const { rows } = await tx.query<{ locked: boolean }>(
          'SELECT pg_try_advisory_xact_lock($1) AS locked',
          [LOCKS.auditSealer],
        );
        if (!rows[0]?.locked) return -1;
        const batch = await unsealedEvents(tx, SEAL_BATCH);
        const head = await chainHead(tx);
        let index = head?.chainIndex ?? 0;
        let prev = head?.hash ?? GENESIS_HASH;
        const links = batch.map((event) => {
          index += 1;
          const hash = chainHash(prev, index, event);
          const link = { seq: event.seq, chainIndex: index, prevHash: prev, hash };
          prev = hash;
          return link;
        });
        await sealEvents(tx, links);
        return links.length;
      });
      if (sealed <= 0) return total;
      total += sealed;
      if (sealed < SEAL_BATCH) return total;
    }
  }

  /** Walks the sealed chain in order and names the first link that does not hold. */
  async verify(): Promise<VerifyResult> {
    const checkpoint = await earliestCheckpoint(this.db);
    let expectedIndex = (checkpoint?.chainIndex ?? 0) + 1;
    let prev = checkpoint?.hash ?? GENESIS_HASH;
    let checked = 0;
    let after = checkpoint?.chainIndex ?? 0;
    for (;;) {
      const page = await sealedEventsAfter(this.db, after, 2000);
      for (const event of page) {
        const broken = this.checkLink(event, expectedIndex, prev);
        if (broken) {
          return {
            valid: false,
            checked,
            unsealed: await countUnsealed(this.db),
            firstBroken: { id: event.id, chainIndex: event.chainIndex ?? -1, reason: broken },
          };
        }
        checked += 1;
        expectedIndex += 1;
        prev = event.hash ?? '';
      }
      if (page.length < 2000) break;
      after = page[page.length - 1]?.chainIndex ?? after;
    }
    return { valid: true, checked, unsealed: await countUnsealed(this.db) };
  }

  private checkLink(event: StoredAuditEvent, expectedIndex: number, prev: string): string | null {
    if (event.chainIndex !== expectedIndex) return `missing link before chain index ${event.chainIndex}`;
    if (event.prevHash !== prev) return 'prev_hash does not match the previous event';
    if (event.actorType !== event.actor.type) return 'actor_type does not match the actor';
    if (!event.redactedAt && hashDetails(event.details) !== event.detailsHash) {
      return 'details do not match details_hash';
    }
    if (chainHash(prev, expectedIndex, event) !== event.hash) return 'hash does not match the event';
    return null;
  }

  list(query: AuditQuery): Promise<StoredAuditEvent[]> {
    return queryAuditEvents(this.db, query);
  }
}
