import { randomUUID } from 'node:crypto';
import { jsonLine } from '../core/audit/export.js';
import { SIEM_CURSOR_ID, sealedEventsAfter } from '../store/auditRepository.js';
import { type Db, toNumber } from '../store/db.js';

export interface AuditForwarderOptions {
  url: string;
  batchSize: number;
  intervalMs: number;
  timeoutMs?: number;
  /** First retry delay after a failed delivery; doubles up to maxBackoffMs. */
  backoffMs?: number;
  maxBackoffMs?: number;
  onError?: (err: unknown, attempt: number) => void;
}

const CURSOR_ID = SIEM_CURSOR_ID;
/** A lease outlives the POST timeout by this much; a sender that died is replaced after it. */
const LEASE_MARGIN_MS = 5_000;

/**
 * Forwards sealed audit events to a SIEM as JSON lines, in chain order, at least once: the
 * cursor (last delivered chain index, in `audit_forward_cursor`) moves only after a 2xx. One
 * instance sends at a time, the holder of a lease on the cursor row, renewed on every round.
 * No transaction is held across the POST: on PGlite it would hold the only connection, and a
 * slow SIEM would stall every request.
 */
export class AuditForwarder {
  private stopped = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private readonly owner = `fwd_${randomUUID()}`;

  constructor(
    private readonly db: Db,
    private readonly options: AuditForwarderOptions,
  ) {}

  private get timeoutMs(): number {
    return this.options.timeoutMs ?? 10_000;
  }

  /**
   * Takes or renews the lease (the database's clock, so instances' clocks do not matter).
   * Returns the cursor, or null while another instance holds an unexpired lease.
   */
  private async acquireLease(): Promise<number | null> {
    const { rows } = await this.db.query<{ chain_index: unknown }>(
      `INSERT INTO audit_forward_cursor (id, chain_index, lease_owner, lease_until)
       VALUES ($1, 0, $2, now() + make_interval(secs => $3::double precision))
       ON CONFLICT (id) DO UPDATE SET lease_owner = EXCLUDED.lease_owner, lease_until = EXCLUDED.lease_until
        WHERE audit_forward_cursor.lease_owner IS NOT DISTINCT FROM EXCLUDED.lease_owner
           OR audit_forward_cursor.lease_until IS NULL OR audit_forward_cursor.lease_until < now()
       RETURNING chain_index`,
      [CURSOR_ID, this.owner, (this.timeoutMs + LEASE_MARGIN_MS) / 1000],
    );
    return rows[0] ? toNumber(rows[0].chain_index) : null;
  }

  /** Sends the next batch; returns how many events were delivered (-1: another instance holds the lease). */
  async forwardOnce(): Promise<number> {
    const after = await this.acquireLease();
    if (after === null) return -1;
    const events = await sealedEventsAfter(this.db, after, this.options.batchSize);
    const last = events[events.length - 1];
    if (!last) return 0;
    const response = await fetch(this.options.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson', 'user-agent': 'agent-otp-audit-forwarder' },
      body: events
        .map((e) =>
          jsonLine({ ...e, actorJson: JSON.stringify(e.actor), detailsJson: JSON.stringify(e.details) }),
        )
        .join(''),
      signal: AbortSignal.timeout(this.timeoutMs),
      redirect: 'error',
    });
    await response.body?.cancel();
    if (!response.ok) throw new Error(`the SIEM endpoint answered HTTP ${response.status}`);
    // Only from where this lease found it: an instance that lost its lease meanwhile (it took
    // longer than the lease) cannot move the cursor; its batch is sent again (at least once).
    await this.db.query(
      `UPDATE audit_forward_cursor SET chain_index = $3, updated_at = now()
        WHERE id = $1 AND lease_owner = $2 AND chain_index = $4`,
      [CURSOR_ID, this.owner, last.chainIndex, after],
    );
    return events.length;
  }

  /** Runs until stop(): full batches back to back, then every intervalMs; backs off on failure. */
  start(): void {
    if (this.loop) return;
    this.loop = (async () => {
      let failures = 0;
      while (!this.stopped) {
        let delay = this.options.intervalMs;
        try {
          const sent = await this.forwardOnce();
          failures = 0;
          if (sent === this.options.batchSize) delay = 0;
        } catch (err) {
          failures += 1;
          this.options.onError?.(err, failures);
          delay = Math.min(
            (this.options.backoffMs ?? 1000) * 2 ** (failures - 1),
            this.options.maxBackoffMs ?? 60_000,
          );
        }
        if (delay > 0 && !this.stopped) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, delay);
            this.wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          this.wake = null;
        }
      }
    })();
  }

  /** Stops the loop and gives up the lease, so another instance takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    await this.db
      .query(
        'UPDATE audit_forward_cursor SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2',
        [CURSOR_ID, this.owner],
      )
      .catch(() => undefined);
  }
}
