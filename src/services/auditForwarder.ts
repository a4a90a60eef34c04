import { jsonLine } from '../core/audit/export.js';
import { sealedEventsAfter } from '../store/auditRepository.js';
import { type Db, LOCKS, toNumber } from '../store/db.js';

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

const CURSOR_ID = 'siem';

/**
 * Forwards sealed audit events to a SIEM as JSON lines, in chain order, at least once: the
 * cursor (last delivered chain index, in `audit_forward_cursor`) moves only after a 2xx, in the
 * transaction that holds the forwarder's advisory lock, so one instance sends at a time.
 */
export class AuditForwarder {
  private stopped = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly db: Db,
    private readonly options: AuditForwarderOptions,
  ) {}

  /** Sends the next batch; returns how many events were delivered (-1: another instance holds the lock). */
  async forwardOnce(): Promise<number> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [
        LOCKS.auditForwarder,
      ]);
      if (!rows[0]?.locked) return -1;
      const cursor = await tx.query<{ chain_index: unknown }>(
        'SELECT chain_index FROM audit_forward_cursor WHERE id = $1',
        [CURSOR_ID],
      );
      const after = toNumber(cursor.rows[0]?.chain_index ?? 0);
      const events = await sealedEventsAfter(tx, after, this.options.batchSize);
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
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
        redirect: 'error',
      });
      await response.body?.cancel();
      if (!response.ok) throw new Error(`the SIEM endpoint answered HTTP ${response.status}`);
      await tx.query(
        `INSERT INTO audit_forward_cursor (id, chain_index) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET chain_index = EXCLUDED.chain_index, updated_at = now()`,
        [CURSOR_ID, last.chainIndex],
      );
      return events.length;
    });
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

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }
}
