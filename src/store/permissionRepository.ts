import type { Actor, AuditEvent } from '../core/audit/index.js';
import type { ApprovalRecord, Permission, PermissionStatus } from '../core/permission.js';
import type { NewWebhookDelivery } from '../core/webhook.js';
import { auditEventArrays, auditEventsFromArraysSql } from './auditRepository.js';
import type { Queryable } from './db.js';
import { deliveriesFromArraysSql, deliveryArrays } from './webhookRepository.js';

interface PermissionRow {
  id: string;
  agent_id: string;
  action: string;
  resource: string | null;
  requested_scope: Record<string, unknown>;
  scope: Record<string, unknown>;
  context: Record<string, unknown>;
  status: PermissionStatus;
  ttl_seconds: number;
  policy_id: string | null;
  policy_name: string | null;
  decision_reason: string | null;
  decided_by: Actor | null;
  decided_at: Date | null;
  expires_at: Date;
  token_hash: string | null;
  client_token: boolean;
  max_uses: number;
  uses_remaining: number;
  totals: Record<string, number>;
  approval: Record<string, unknown> | null;
  approvals: ApprovalRecord[];
  webhook_url: string | null;
  approval_url: string | null;
  idempotency_key: string | null;
  request_hash: string | null;
  created_at: Date;
  updated_at: Date;
  last_used_at: Date | null;
}

export function permissionFromRow(r: PermissionRow): Permission {
  return {
    id: r.id,
    agentId: r.agent_id,
    action: r.action,
    resource: r.resource,
    requestedScope: r.requested_scope,
    scope: r.scope,
    context: r.context,
    status: r.status,
    ttlSeconds: r.ttl_seconds,
    policyId: r.policy_id,
    policyName: r.policy_name,
    decisionReason: r.decision_reason,
    decidedBy: r.decided_by,
    decidedAt: r.decided_at,
    expiresAt: r.expires_at,
    tokenHash: r.token_hash,
    clientToken: r.client_token,
    maxUses: r.max_uses,
    usesRemaining: r.uses_remaining,
    totals: r.totals,
    approval: r.approval,
    approvals: r.approvals,
    webhookUrl: r.webhook_url,
    approvalUrl: r.approval_url ?? null,
    idempotencyKey: r.idempotency_key,
    requestHash: r.request_hash ?? null,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    lastUsedAt: r.last_used_at,
  };
}

const json = (v: unknown) => (v === null ? null : JSON.stringify(v));
const iso = (d: Date | null) => (d === null ? null : d.toISOString());

/**
 * The columns a new permission writes: each with the element type its array is sent as (JSON
 * travels as text and is cast per element) and how the value is read off the Permission. One
 * list, so the statement and its parameters cannot fall out of step.
 */
const INSERTED: readonly { column: string; type: string; jsonb?: true; of: (p: Permission) => unknown }[] = [
  { column: 'id', type: 'text', of: (p) => p.id },
  { column: 'agent_id', type: 'text', of: (p) => p.agentId },
  { column: 'action', type: 'text', of: (p) => p.action },
  { column: 'resource', type: 'text', of: (p) => p.resource },
  { column: 'requested_scope', type: 'text', jsonb: true, of: (p) => json(p.requestedScope) },
  { column: 'scope', type: 'text', jsonb: true, of: (p) => json(p.scope) },
  { column: 'context', type: 'text', jsonb: true, of: (p) => json(p.context) },
  { column: 'status', type: 'text', of: (p) => p.status },
  { column: 'ttl_seconds', type: 'integer', of: (p) => p.ttlSeconds },
  { column: 'policy_id', type: 'text', of: (p) => p.policyId },
  { column: 'policy_name', type: 'text', of: (p) => p.policyName },
  { column: 'decision_reason', type: 'text', of: (p) => p.decisionReason },
  { column: 'decided_by', type: 'text', jsonb: true, of: (p) => json(p.decidedBy) },
  { column: 'decided_at', type: 'timestamptz', of: (p) => iso(p.decidedAt) },
  { column: 'expires_at', type: 'timestamptz', of: (p) => iso(p.expiresAt) },
  { column: 'token_hash', type: 'text', of: (p) => p.tokenHash },
  { column: 'client_token', type: 'boolean', of: (p) => p.clientToken },
  { column: 'max_uses', type: 'integer', of: (p) => p.maxUses },
  { column: 'uses_remaining', type: 'integer', of: (p) => p.usesRemaining },
  { column: 'approval', type: 'text', jsonb: true, of: (p) => json(p.approval) },
  { column: 'webhook_url', type: 'text', of: (p) => p.webhookUrl },
  { column: 'idempotency_key', type: 'text', of: (p) => p.idempotencyKey },
  { column: 'request_hash', type: 'text', of: (p) => p.requestHash },
  { column: 'created_at', type: 'timestamptz', of: (p) => iso(p.createdAt) },
  { column: 'updated_at', type: 'timestamptz', of: (p) => iso(p.updatedAt) },
];
const INSERT_COLUMNS = INSERTED.map((c) => c.column).join(', ');

/** A new permission as a request writes it: the row, its audit events, its decision's webhook. */
export interface NewPermission {
  permission: Permission;
  events: readonly AuditEvent[];
  delivery: NewWebhookDelivery | null;
}

const AUDIT_PARAM = INSERTED.length + 1;
const DELIVERY_PARAM = AUDIT_PARAM + 11;

/**
 * Any number of new permissions, their audit events and their decisions' webhook deliveries in
 * ONE statement of fixed text (column arrays): one round trip and one commit for a whole group of
 * requests. A permission whose agent already used its idempotency key is not written, and
 * neither are its events nor its delivery. A group with no delivery runs the text without that
 * part, so a permission without a webhook target costs nothing extra.
 */
function insertPermissionsSql(withDeliveries: boolean): string {
  return `WITH inserted AS (
   INSERT INTO permissions (${INSERT_COLUMNS})
   SELECT ${INSERTED.map((c) => (c.jsonb ? `v.${c.column}::jsonb` : `v.${c.column}`)).join(', ')}
     FROM unnest(${INSERTED.map((c, i) => `$${i + 1}::${c.type}[]`).join(', ')})
       AS v(${INSERT_COLUMNS})
   ON CONFLICT (agent_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
   RETURNING id
 ), audited AS (
   ${auditEventsFromArraysSql(AUDIT_PARAM, 'v.permission_id IN (SELECT id FROM inserted)')}
 )${
   withDeliveries
     ? `, delivered AS (
   ${deliveriesFromArraysSql(DELIVERY_PARAM)}
    WHERE v.permission_id IN (SELECT id FROM inserted)
 )`
     : ''
 }
 SELECT id FROM inserted`;
}
const INSERT_PERMISSIONS_SQL = insertPermissionsSql(false);
const INSERT_PERMISSIONS_WITH_DELIVERIES_SQL = insertPermissionsSql(true);

/**
 * Writes the permissions (see insertPermissionsSql) and answers, for each in order, whether it
 * was written (false: its idempotency key was taken, by an earlier request or one in this group).
 */
export async function insertPermissions(db: Queryable, news: readonly NewPermission[]): Promise<boolean[]> {
  const params = [
    ...INSERTED.map((c) => news.map((n) => c.of(n.permission))),
    ...auditEventArrays(news.flatMap((n) => n.events)),
  ];
  const deliveries = news.flatMap((n) => (n.delivery ? [n.delivery] : []));
  const { rows } = await db.query<{ id: string }>(
    deliveries.length > 0 ? INSERT_PERMISSIONS_WITH_DELIVERIES_SQL : INSERT_PERMISSIONS_SQL,
    deliveries.length > 0 ? [...params, ...deliveryArrays(deliveries)] : params,
  );
  const written = new Set(rows.map((r) => r.id));
  return news.map((n) => written.has(n.permission.id));
}

export async function findPermission(
  db: Queryable,
  id: string,
  forUpdate = false,
): Promise<Permission | null> {
  const { rows } = await db.query<PermissionRow>(
    `SELECT * FROM permissions WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0] ? permissionFromRow(rows[0]) : null;
}

/**
 * Several permissions by id in one statement (a group of concurrent reads): for each id, in
 * order, its permission or null.
 */
export async function findPermissions(db: Queryable, ids: readonly string[]): Promise<(Permission | null)[]> {
  const { rows } = await db.query<PermissionRow>('SELECT * FROM permissions WHERE id = ANY($1::text[])', [
    ids,
  ]);
  const byId = new Map(rows.map((r) => [r.id, permissionFromRow(r)]));
  return ids.map((id) => byId.get(id) ?? null);
}

export async function findByIdempotencyKey(
  db: Queryable,
  agentId: string,
  key: string,
): Promise<Permission | null> {
  const { rows } = await db.query<PermissionRow>(
    'SELECT * FROM permissions WHERE agent_id = $1 AND idempotency_key = $2',
    [agentId, key],
  );
  return rows[0] ? permissionFromRow(rows[0]) : null;
}

/** Frees an idempotency key whose 24 h window has passed, so the agent can reuse it. */
export async function releaseIdempotencyKey(db: Queryable, id: string): Promise<void> {
  await db.query('UPDATE permissions SET idempotency_key = NULL WHERE id = $1', [id]);
}

/** One use to spend (see spendTokens). */
export interface TokenSpend {
  id: string;
  agentId: string;
  tokenHash: string;
  now: Date;
  /** Per-field increments for max_total_<f> caps, e.g. {amount: 40}. */
  increments: Record<string, number>;
  event: AuditEvent;
  /** The permission.used delivery: written only if this use spends the last one. */
  lastUseDelivery?: NewWebhookDelivery | null;
}

/**
 * Spends one use of each token in a group, in ONE statement: spend_tokens (migration 016) checks
 * everything for each use (agent, hash, status, expiry, uses left, cumulative caps) against the
 * row as the uses before it left it, decrements and adds to the totals; the same statement
 * writes the audit row of each use that was spent, and the permission.used delivery of the one
 * that spent the last. Under any concurrency, on any number of instances, a token with N uses
 * is spent at most N times, because each use is a compare-and-swap serialised by the row lock.
 * The uses go in ordered by permission id (stable, so one permission's uses keep their order):
 * every statement takes its row locks in the same order, so two groups never deadlock.
 */
function spendTokensSql(withDeliveries: boolean): string {
  return `WITH spent AS (
     SELECT s.ord, (s.spent).*
       FROM spend_tokens($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[]) s
   ), audited AS (
     ${auditEventsFromArraysSql(6, 'v.ord IN (SELECT ord FROM spent)')}
   )${
     withDeliveries
       ? `, delivered AS (
     ${deliveriesFromArraysSql(17, true)}
      WHERE v.id IS NOT NULL AND v.ord IN (SELECT ord FROM spent WHERE status = 'used')
   )`
       : ''
   }
   SELECT * FROM spent`;
}
const SPEND_TOKENS_SQL = spendTokensSql(false);
const SPEND_TOKENS_WITH_DELIVERIES_SQL = spendTokensSql(true);

/** Spends the uses (see spendTokensSql); for each, in order, the row it left, or null if refused. */
export async function spendTokens(
  db: Queryable,
  uses: readonly TokenSpend[],
): Promise<(Permission | null)[]> {
  const order = uses.map((_, i) => i).sort((a, b) => compareIds(uses[a]?.id, uses[b]?.id) || a - b);
  const sorted = order.map((i) => uses[i] as TokenSpend);
  const params = [
    sorted.map((u) => u.id),
    sorted.map((u) => u.agentId),
    sorted.map((u) => u.tokenHash),
    sorted.map((u) => u.now.toISOString()),
    sorted.map((u) => JSON.stringify(u.increments)),
    ...auditEventArrays(sorted.map((u) => u.event)),
  ];
  const withDeliveries = sorted.some((u) => u.lastUseDelivery);
  const { rows } = await db.query<PermissionRow & { ord: number }>(
    withDeliveries ? SPEND_TOKENS_WITH_DELIVERIES_SQL : SPEND_TOKENS_SQL,
    withDeliveries ? [...params, ...deliveryArrays(sorted.map((u) => u.lastUseDelivery ?? null))] : params,
  );
  const results: (Permission | null)[] = uses.map(() => null);
  for (const row of rows) {
    const original = order[Number(row.ord) - 1];
    if (original !== undefined) results[original] = permissionFromRow(row);
  }
  return results;
}

/** Code-unit order: the same on every instance, whatever the database's collation. */
const compareIds = (a = '', b = '') => (a < b ? -1 : a > b ? 1 : 0);

/** Sets the hash of a token minted on the agent's first read after a human approval (once). */
export async function claimMintedToken(
  db: Queryable,
  id: string,
  agentId: string,
  tokenHash: string,
  now: Date,
): Promise<boolean> {
  const { rows } = await db.query(
    `UPDATE permissions SET token_hash = $3, updated_at = $4
      WHERE id = $1 AND agent_id = $2 AND token_hash IS NULL AND status = 'approved' AND expires_at > $4
      RETURNING id`,
    [id, agentId, tokenHash, now],
  );
  return rows.length > 0;
}

export interface StatusChange {
  status: PermissionStatus;
  scope?: Record<string, unknown>;
  decisionReason?: string | null;
  decidedBy?: Actor | null;
  decidedAt?: Date | null;
  expiresAt?: Date;
  maxUses?: number;
  usesRemaining?: number;
  approvals?: ApprovalRecord[];
}

/**
 * A changed permission, with its agent's webhookUrl (null unless the agent is active) read by the
 * same statement: where the change's webhook goes when the request named no URL.
 */
export interface ChangedPermission {
  permission: Permission;
  agentWebhookUrl: string | null;
}

/** Added to a `RETURNING p.*`: the webhook URL of the permission's agent, if active. */
const AGENT_WEBHOOK_URL = `(SELECT a.webhook_url FROM agents a WHERE a.id = p.agent_id AND a.status = 'active')
  AS agent_webhook_url`;

/**
 * Compare-and-swap of the status: applies only while the stored status is one of `from`, so of
 * two concurrent deciders exactly one wins. Returns the updated row, or null if it lost.
 */
export async function changeStatus(
  tx: Queryable,
  id: string,
  from: readonly PermissionStatus[],
  change: StatusChange,
  now: Date,
): Promise<ChangedPermission | null> {
  const sets = ['status = $3', 'updated_at = $4'];
  const params: unknown[] = [id, [...from], change.status, now];
  const set = (column: string, value: unknown, cast = '') => {
    params.push(value);
    sets.push(`${column} = $${params.length}${cast}`);
  };
  if (change.scope !== undefined) set('scope', JSON.stringify(change.scope), '::jsonb');
  if (change.decisionReason !== undefined) set('decision_reason', change.decisionReason);
  if (change.decidedBy !== undefined) set('decided_by', JSON.stringify(change.decidedBy), '::jsonb');
  if (change.decidedAt !== undefined) set('decided_at', change.decidedAt);
  if (change.expiresAt !== undefined) set('expires_at', change.expiresAt);
  if (change.maxUses !== undefined) set('max_uses', change.maxUses);
  if (change.usesRemaining !== undefined) set('uses_remaining', change.usesRemaining);
  if (change.approvals !== undefined) set('approvals', JSON.stringify(change.approvals), '::jsonb');
  const { rows } = await tx.query<PermissionRow & { agent_webhook_url: string | null }>(
    `UPDATE permissions p SET ${sets.join(', ')} WHERE p.id = $1 AND p.status = ANY($2::text[])
      RETURNING p.*, ${AGENT_WEBHOOK_URL}`,
    params,
  );
  const row = rows[0];
  return row ? { permission: permissionFromRow(row), agentWebhookUrl: row.agent_webhook_url } : null;
}

/**
 * Records a quorum vote without deciding, only while still pending. The scope is stored too:
 * a voter's narrowing binds the approvals after theirs.
 */
export async function recordVote(
  tx: Queryable,
  id: string,
  approvals: ApprovalRecord[],
  scope: Record<string, unknown>,
  now: Date,
): Promise<Permission | null> {
  const { rows } = await tx.query<PermissionRow>(
    `UPDATE permissions SET approvals = $2::jsonb, scope = $3::jsonb, updated_at = $4
      WHERE id = $1 AND status = 'pending' RETURNING *`,
    [id, JSON.stringify(approvals), JSON.stringify(scope), now],
  );
  return rows[0] ? permissionFromRow(rows[0]) : null;
}

/**
 * Moves every pending or approved permission past its expiry to `expired`, returning them (with
 * their agent's webhookUrl, as changeStatus).
 */
export async function expireDue(
  tx: Queryable,
  now: Date,
  limit: number,
): Promise<(ChangedPermission & { previousStatus: PermissionStatus })[]> {
  const { rows } = await tx.query<
    PermissionRow & { previous_status: PermissionStatus; agent_webhook_url: string | null }
  >(
    `WITH due AS (
       SELECT id, status FROM permissions
        WHERE status IN ('pending', 'approved') AND expires_at <= $1
        ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED
     )
     UPDATE permissions p SET status = 'expired', updated_at = $1
       FROM due WHERE p.id = due.id
     RETURNING p.*, due.status AS previous_status, ${AGENT_WEBHOOK_URL}`,
    [now, limit],
  );
  return rows.map((r) => ({
    permission: permissionFromRow(r),
    agentWebhookUrl: r.agent_webhook_url,
    previousStatus: r.previous_status,
  }));
}

export interface PermissionFilter {
  status?: PermissionStatus;
  agentId?: string;
  action?: string;
  before?: { createdAt: Date; id: string };
  limit: number;
}

export async function listPermissions(db: Queryable, f: PermissionFilter): Promise<Permission[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: (n: number) => string, ...values: unknown[]) => {
    const first = params.length + 1;
    params.push(...values);
    where.push(sql(first));
  };
  if (f.status) add((n) => `status = $${n}`, f.status);
  if (f.agentId) add((n) => `agent_id = $${n}`, f.agentId);
  if (f.action) add((n) => `action = $${n}`, f.action);
  if (f.before) add((n) => `(created_at, id) < ($${n}, $${n + 1})`, f.before.createdAt, f.before.id);
  params.push(f.limit);
  const { rows } = await db.query<PermissionRow>(
    `SELECT * FROM permissions ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
    params,
  );
  return rows.map(permissionFromRow);
}

/**
 * Requests people decided lately, newest decision first (the web inbox's "recent decisions"):
 * decisions by a policy at creation are left out, nobody was asked.
 */
export async function recentlyDecided(db: Queryable, limit: number): Promise<Permission[]> {
  const { rows } = await db.query<PermissionRow>(
    `SELECT * FROM permissions
      WHERE decided_at IS NOT NULL AND decided_by->>'type' <> 'policy'
      ORDER BY decided_at DESC, id DESC LIMIT $1`,
    [limit],
  );
  return rows.map(permissionFromRow);
}
