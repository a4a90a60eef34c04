import type { FastifyReply } from 'fastify';
import type { Permission } from '../../core/permission.js';

const KEEPALIVE_MS = 15_000;
/** A waiter set to wake at a deadline wakes this much after it, so its read is past it. */
const DEADLINE_SLACK_MS = 5;
const FINAL: ReadonlySet<Permission['status']> = new Set([
  'denied',
  'expired',
  'used',
  'revoked',
  'cancelled',
]);

export interface EventStreamDeps {
  read(): Promise<{ permission: Permission; token?: string }>;
  arm(timeoutMs: number, signal: AbortSignal): { wait: Promise<'changed' | 'timeout'>; cancel(): void };
  toEvent(permission: Permission, token?: string): Record<string, unknown>;
  /** Ms until a deadline changes the permission by time alone (it expires then), or null. */
  dueIn?(permission: Permission): number | null;
  /** Aborted when the server shuts down: the stream ends (the client reconnects elsewhere). */
  closing: AbortSignal;
  reply: FastifyReply;
  requestId: string;
}

/**
 * Streams a permission as Server-Sent Events: its state now, then one `status` event per change
 * (decision, quorum vote, use, revoke, expiry), a comment every 15 s to keep proxies from
 * closing the stream (and a fresh read then, in case a wake-up was lost with Redis), and the end of the stream once the state is final. The first read
 * happens before the stream opens, so an unknown id is a normal JSON 404.
 */
export async function streamPermissionEvents(deps: EventStreamDeps): Promise<void> {
  const closed = new AbortController();
  let armed = deps.arm(KEEPALIVE_MS, closed.signal);
  let current = await deps.read().catch((err) => {
    armed.cancel();
    throw err;
  });
  const raw = deps.reply.raw;
  deps.reply.hijack();
  raw.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
    'x-request-id': deps.requestId,
  });
  raw.once('close', () => closed.abort());
  let eventId = 0;
  const send = (snapshot: { permission: Permission; token?: string }) => {
    eventId += 1;
    raw.write(
      `id: ${eventId}\nevent: status\ndata: ${JSON.stringify(deps.toEvent(snapshot.permission, snapshot.token))}\n\n`,
    );
  };
  send(current);
  let signature = stateSignature(current.permission);
  const ended = () => closed.signal.aborted || deps.closing.aborted;
  // Set while the waiter is armed to wake at the permission's deadline rather than a keepalive.
  let armedFor = KEEPALIVE_MS;
  let atDeadline = false;
  while (!FINAL.has(current.permission.status) && !ended()) {
    const due = deps.dueIn?.(current.permission) ?? null;
    if (!atDeadline && due !== null && due < armedFor) {
      // Its deadline comes before the next keepalive: wake then, so `expired` is sent at once
      // rather than when the expiry job runs. Re-read after re-arming (nothing is missed).
      armed.cancel();
      atDeadline = true;
      armedFor = due + DEADLINE_SLACK_MS;
      armed = deps.arm(armedFor, closed.signal);
    } else {
      const how = await armed.wait;
      if (ended()) break;
      // The keepalive also re-reads: a wake-up lost with Redis (an outage) costs at most 15 s.
      if (how === 'timeout' && !atDeadline) raw.write(': keepalive\n\n');
      atDeadline = false;
      armedFor = KEEPALIVE_MS;
      armed = deps.arm(KEEPALIVE_MS, closed.signal);
    }
    current = await deps.read();
    const next = stateSignature(current.permission);
    if (next !== signature || current.token) send(current);
    signature = next;
  }
  armed.cancel();
  if (!raw.writableEnded) raw.end();
}

function stateSignature(p: Permission): string {
  return `${p.status}|${p.approvals.length}|${p.usesRemaining}`;
}
