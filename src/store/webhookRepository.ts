import type { NewWebhookDelivery, WebhookEventType, WebhookPayload } from '../core/webhook.js';
import { type Queryable, toNumber } from './db.js';

// --- Signing secrets ------------------------------------------------------------------------

export interface StoredWebhookSecret {
  id: string;
  agentId: string;
  /** Encrypted (SecretBox); never the secret itself. */
  secretEnc: string;
  createdAt: Date;
  expiresAt: Date | null;
}

interface SecretRow {
  id: string;
  agent_id: string;
  secret_enc: string;
  created_at: Date;
  expires_at: Date | null;
}

export async function insertWebhookSecret(tx: Queryable, s: StoredWebhookSecret): Promise<void> {
  await tx.query(
    `INSERT INTO webhook_secrets (id, agent_id, secret_enc, created_at, expires_at)
     VALUES ($1, $2, $3, $4, $5)`,
    [s.id, s.agentId, s.secretEnc, s.createdAt, s.expiresAt],
  );
}

/**
 * Gives the agent's current secrets an end of life (a rotation's grace period, or now) and
 * deletes the ones already past theirs. Never extends one.
 */
export async function retireWebhookSecrets(
  tx: Queryable,
  agentId: string,
  at: Date,
  now: Date,
): Promise<void> {
  await tx.query('DELETE FROM webhook_secrets WHERE agent_id = $1 AND expires_at <= $2', [agentId, now]);
  await tx.query(
    `UPDATE webhook_secrets SET expires_at = LEAST(COALESCE(expires_at, $2), $2)
      WHERE agent_id = $1`,
    [agentId, at],
  );
}

/** The secrets deliveries are signed with now: the current one first, then those in their grace period. */
export async function activeWebhookSecrets(
  db: Queryable,
  agentId: string,
  now: Date,
): Promise<StoredWebhookSecret[]> {
  const { rows } = await db.query<SecretRow>(
    `SELECT * FROM webhook_secrets WHERE agent_id = $1 AND (expires_at IS NULL OR expires_at > $2)
      ORDER BY expires_at DESC NULLS FIRST, created_at DESC, id DESC`,
    [agentId, now],
  );
  return rows.map((r) => ({
    id: r.id,
    agentId: r.agent_id,
    secretEnc: r.secret_enc,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
  }));
}

// --- Deliveries -----------------------------------------------------------------------------

export const DELIVERY_STATUSES = ['pending', 'delivered', 'dead'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export interface WebhookDelivery extends NewWebhookDelivery {
  status: DeliveryStatus;
  attempts: number;
  lastError: string | null;
  lastStatus: number | null;
  firstAttemptAt: Date | null;
  nextAttemptAt: Date;
  deliveredAt: Date | null;
}

interface DeliveryRow {
  id: string;
  permission_id: string | null;
  agent_id: string | null;
  url: string;
  event_type: WebhookEventType;
  payload: WebhookPayload;
  status: DeliveryStatus;
  attempts: number;
  last_error: string | null;
  last_status: number | null;
  created_at: Date;
  first_attempt_at: Date | null;
  next_attempt_at: Date;
  delivered_at: Date | null;
}

const deliveryFromRow = (r: DeliveryRow): WebhookDelivery => ({
  id: r.id,
  permissionId: r.permission_id,
  agentId: r.agent_id,
  url: r.url,
  eventType: r.event_type,
  payload: r.payload,
  status: r.status,
  attempts: toNumber(r.attempts),
  lastError: r.last_error,
  lastStatus: r.last_status === null ? null : toNumber(r.last_status),
  createdAt: r.created_at,
  firstAttemptAt: r.first_attempt_at,
  nextAttemptAt: r.next_attempt_at,
  deliveredAt: r.delivered_at,
});

const DELIVERY_COLUMNS = 'id, permission_id, agent_id, url, event_type, payload, created_at, next_attempt_at';

/**
 * `INSERT INTO webhook_deliveries … SELECT … FROM unnest(…) AS v` of new (pending, due now)
 * deliveries passed column by column (deliveryArrays), parameters numbered from `firstParam`:
 * one statement text for any number. Callers may append a WHERE over `v`; `withOrdinality`
 * adds `v.ord`, each delivery's position (from 1), and a null entry (no id) stands for none.
 */
export function deliveriesFromArraysSql(firstParam: number, withOrdinality = false): string {
  const p = (i: number) => `$${firstParam + i}`;
  const alias = `v(id, permission_id, agent_id, url, event_type, payload, created_at${withOrdinality ? ', ord' : ''})`;
  return `INSERT INTO webhook_deliveries (${DELIVERY_COLUMNS})
     SELECT v.id, v.permission_id, v.agent_id, v.url, v.event_type, v.payload::jsonb, v.created_at, v.created_at
       FROM unnest(${p(0)}::text[], ${p(1)}::text[], ${p(2)}::text[], ${p(3)}::text[], ${p(4)}::text[],
                   ${p(5)}::text[], ${p(6)}::timestamptz[])
         ${withOrdinality ? 'WITH ORDINALITY ' : ''}AS ${alias}`;
}

/** The parameters of deliveriesFromArraysSql: 7 arrays, one per column (null: no delivery). */
export function deliveryArrays(ds: readonly (NewWebhookDelivery | null)[]): unknown[] {
  return [
    ds.map((d) => d?.id ?? null),
    ds.map((d) => d?.permissionId ?? null),
    ds.map((d) => d?.agentId ?? null),
    ds.map((d) => d?.url ?? null),
    ds.map((d) => d?.eventType ?? null),
    ds.map((d) => (d ? JSON.stringify(d.payload) : null)),
    ds.map((d) => d?.createdAt.toISOString() ?? null),
  ];
}

const INSERT_DELIVERIES_SQL = deliveriesFromArraysSql(1);

/** New deliveries in one statement of fixed text, e.g. a batch of expiries. */
export async function insertDeliveries(db: Queryable, ds: readonly NewWebhookDelivery[]): Promise<void> {
  if (ds.length === 0) return;
  await db.query(INSERT_DELIVERIES_SQL, deliveryArrays(ds));
}

export function insertDelivery(db: Queryable, d: NewWebhookDelivery): Promise<void> {
  return insertDeliveries(db, [d]);
}

export async function findDelivery(db: Queryable, id: string): Promise<WebhookDelivery | null> {
  const { rows } = await db.query<DeliveryRow>('SELECT * FROM webhook_deliveries WHERE id = $1', [id]);
  return rows[0] ? deliveryFromRow(rows[0]) : null;
}

export interface AttemptResult {
  status: DeliveryStatus;
  now: Date;
  lastError: string | null;
  lastStatus: number | null;
  nextAttemptAt: Date;
}

/**
 * Records one attempt of a pending delivery (compare-and-swap on `pending`): its outcome, the
 * attempt count, and the start of the retry window on the first attempt. Null when the delivery
 * is no longer pending.
 */
export async function recordAttempt(
  tx: Queryable,
  id: string,
  result: AttemptResult,
): Promise<WebhookDelivery | null> {
  const { rows } = await tx.query<DeliveryRow>(
    `UPDATE webhook_deliveries
        SET status = $2, attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, $3),
            last_error = $4, last_status = $5, next_attempt_at = $6,
            delivered_at = CASE WHEN $2 = 'delivered' THEN $3::timestamptz ELSE delivered_at END
      WHERE id = $1 AND status = 'pending'
      RETURNING *`,
    [id, result.status, result.now, result.lastError, result.lastStatus, result.nextAttemptAt],
  );
  return rows[0] ? deliveryFromRow(rows[0]) : null;
}

/** A dead or delivered delivery goes back to pending with a fresh count and window. */
export async function resetForReplay(tx: Queryable, id: string, now: Date): Promise<WebhookDelivery | null> {
  const { rows } = await tx.query<DeliveryRow>(
    `UPDATE webhook_deliveries
        SET status = 'pending', attempts = 0, first_attempt_at = NULL, next_attempt_at = $2,
            delivered_at = NULL
      WHERE id = $1 AND status IN ('dead', 'delivered')
      RETURNING *`,
    [id, now],
  );
  return rows[0] ? deliveryFromRow(rows[0]) : null;
}

export interface DeliveryFilter {
  status?: DeliveryStatus;
  /** One agent's deliveries (never the alert deliveries, which have no agent). */
  agentId?: string;
  limit: number;
  /** Keyset cursor: rows strictly older than this (createdAt, id), newest first. */
  before?: { createdAt: Date; id: string };
}

export async function listDeliveries(db: Queryable, filter: DeliveryFilter): Promise<WebhookDelivery[]> {
  const params: unknown[] = [filter.limit];
  const where: string[] = [];
  if (filter.status) {
    params.push(filter.status);
    where.push(`status = $${params.length}`);
  }
  if (filter.agentId) {
    params.push(filter.agentId);
    where.push(`agent_id = $${params.length}`);
  }
  if (filter.before) {
    params.push(filter.before.createdAt, filter.before.id);
    where.push(`(created_at, id) < ($${params.length - 1}, $${params.length})`);
  }
  const { rows } = await db.query<DeliveryRow>(
    `SELECT * FROM webhook_deliveries ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY created_at DESC, id DESC LIMIT $1`,
    params,
  );
  return rows.map(deliveryFromRow);
}

/** Pending deliveries whose next attempt was due before `before`: their queue job was lost. */
export async function overdueDeliveries(db: Queryable, before: Date, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at < $1
      ORDER BY next_attempt_at LIMIT $2`,
    [before, limit],
  );
  return rows.map((r) => r.id);
}
