import { type Queryable, toNumber } from './db.js';

/**
 * Rows that may hold a person's data, found by a case-insensitive substring search over every
 * text and JSON column that can carry what an agent or approver sent (GDPR erasure). `text` is
 * the subject as stored in text columns, `json` as it appears inside stored JSON text.
 */
export interface Needles {
  text: string;
  json: string;
}

/** The columns of a permission an erasure may rewrite. */
export interface PermissionCopy {
  id: string;
  status: string;
  action: string;
  resource: string | null;
  requestedScope: Record<string, unknown>;
  scope: Record<string, unknown>;
  context: Record<string, unknown>;
  decisionReason: string | null;
  decidedBy: Record<string, unknown> | null;
  approval: Record<string, unknown> | null;
  approvals: unknown[];
  webhookUrl: string | null;
  idempotencyKey: string | null;
}

interface PermissionRow {
  id: string;
  status: string;
  action: string;
  resource: string | null;
  requested_scope: Record<string, unknown>;
  scope: Record<string, unknown>;
  context: Record<string, unknown>;
  decision_reason: string | null;
  decided_by: Record<string, unknown> | null;
  approval: Record<string, unknown> | null;
  approvals: unknown[];
  webhook_url: string | null;
  idempotency_key: string | null;
}

/** SQL: does this text column (or JSON column, as text) contain parameter $n, without case? */
const textHit = (n: number) => (column: string) => `strpos(lower(coalesce(${column}, '')), lower($${n})) > 0`;
const jsonHit = (n: number) => (column: string) =>
  `strpos(lower(coalesce(${column}::text, '')), lower($${n})) > 0`;
/** In the paged queries below: $2 is the text needle, $3 the JSON needle. */
const TEXT_HIT = textHit(2);
const JSON_HIT = jsonHit(3);

/**
 * A page (keyset on id) of permissions naming the subject anywhere. Inside an erasure the rows
 * are locked, so no decision or use changes them between reading and rewriting.
 */
export async function permissionsMentioning(
  db: Queryable,
  needles: Needles,
  afterId: string,
  limit: number,
  lock: boolean,
): Promise<PermissionCopy[]> {
  const { rows } = await db.query<PermissionRow>(
    `SELECT id, status, action, resource, requested_scope, scope, context, decision_reason, decided_by,
            approval, approvals, webhook_url, idempotency_key
       FROM permissions
      WHERE id > $1 AND (
            ${['action', 'resource', 'decision_reason', 'webhook_url', 'idempotency_key'].map(TEXT_HIT).join(' OR ')}
         OR ${['requested_scope', 'scope', 'context', 'decided_by', 'approval', 'approvals'].map(JSON_HIT).join(' OR ')})
      ORDER BY id LIMIT $4${lock ? ' FOR UPDATE' : ''}`,
    [afterId, needles.text, needles.json, limit],
  );
  return rows.map((r) => ({
    id: r.id,
    status: r.status,
    action: r.action,
    resource: r.resource,
    requestedScope: r.requested_scope,
    scope: r.scope,
    context: r.context,
    decisionReason: r.decision_reason,
    decidedBy: r.decided_by,
    approval: r.approval,
    approvals: r.approvals,
    webhookUrl: r.webhook_url,
    idempotencyKey: r.idempotency_key,
  }));
}

const json = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v));

/** Writes the redacted copies back (rows locked by permissionsMentioning), one statement a page. */
export async function rewritePermissions(tx: Queryable, copies: readonly PermissionCopy[]): Promise<void> {
  if (copies.length === 0) return;
  await tx.query(
    `UPDATE permissions AS p
        SET action = u.action, resource = u.resource, requested_scope = u.requested_scope, scope = u.scope,
            context = u.context, decision_reason = u.decision_reason, decided_by = u.decided_by,
            approval = u.approval, approvals = u.approvals, webhook_url = u.webhook_url,
            idempotency_key = u.idempotency_key,
            -- The request's fingerprint is a hash of the data just erased: it goes too.
            request_hash = NULL
       FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[], $6::jsonb[], $7::text[],
                   $8::jsonb[], $9::jsonb[], $10::jsonb[], $11::text[], $12::text[])
            AS u(id, action, resource, requested_scope, scope, context, decision_reason, decided_by,
                 approval, approvals, webhook_url, idempotency_key)
      WHERE p.id = u.id`,
    [
      copies.map((c) => c.id),
      copies.map((c) => c.action),
      copies.map((c) => c.resource),
      copies.map((c) => json(c.requestedScope)),
      copies.map((c) => json(c.scope)),
      copies.map((c) => json(c.context)),
      copies.map((c) => c.decisionReason),
      copies.map((c) => json(c.decidedBy)),
      copies.map((c) => json(c.approval)),
      copies.map((c) => json(c.approvals)),
      copies.map((c) => c.webhookUrl),
      copies.map((c) => c.idempotencyKey),
    ],
  );
}

export interface DeliveryCopy {
  id: string;
  status: string;
  url: string;
  payload: Record<string, unknown>;
  lastError: string | null;
}

/** A page (keyset on id) of webhook deliveries naming the subject in their target, payload or error. */
export async function deliveriesMentioning(
  db: Queryable,
  needles: Needles,
  afterId: string,
  limit: number,
  lock: boolean,
): Promise<DeliveryCopy[]> {
  const { rows } = await db.query<{
    id: string;
    status: string;
    url: string;
    payload: Record<string, unknown>;
    last_error: string | null;
  }>(
    `SELECT id, status, url, payload, last_error FROM webhook_deliveries
      WHERE id > $1 AND (${TEXT_HIT('url')} OR ${TEXT_HIT('last_error')} OR ${JSON_HIT('payload')})
      ORDER BY id LIMIT $4${lock ? ' FOR UPDATE' : ''}`,
    [afterId, needles.text, needles.json, limit],
  );
  return rows.map((r) => ({
    id: r.id,
    status: r.status,
    url: r.url,
    payload: r.payload,
    lastError: r.last_error,
  }));
}

export async function rewriteDeliveries(tx: Queryable, copies: readonly DeliveryCopy[]): Promise<void> {
  if (copies.length === 0) return;
  await tx.query(
    `UPDATE webhook_deliveries AS d
        SET status = u.status, url = u.url, payload = u.payload, last_error = u.last_error
       FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[])
            AS u(id, status, url, payload, last_error)
      WHERE d.id = u.id`,
    [
      copies.map((c) => c.id),
      copies.map((c) => c.status),
      copies.map((c) => c.url),
      copies.map((c) => json(c.payload)),
      copies.map((c) => c.lastError),
    ],
  );
}

/**
 * The posted chat messages of these permissions: marked as showing nothing current, so the
 * reconciler re-renders them (from the redacted rows) even if the job queued after the erasure
 * is lost. Returns the permissions that have messages and how many messages; `dryRun` counts.
 */
export async function staleChatMessagesOf(
  tx: Queryable,
  permissionIds: readonly string[],
  dryRun: boolean,
): Promise<{ permissionIds: string[]; messages: number }> {
  if (permissionIds.length === 0) return { permissionIds: [], messages: 0 };
  const { rows } = await tx.query<{ permission_id: string }>(
    dryRun
      ? 'SELECT permission_id FROM chat_messages WHERE permission_id = ANY($1::text[])'
      : `UPDATE chat_messages SET rendered_state = NULL, updated_at = now()
          WHERE permission_id = ANY($1::text[]) RETURNING permission_id`,
    [permissionIds],
  );
  return { permissionIds: [...new Set(rows.map((r) => r.permission_id))], messages: rows.length };
}

/**
 * Operator configuration naming the subject — agents (name, description, metadata, webhook URL),
 * policies (name, definition) and approver accounts (name, email, identities) — which an erasure
 * leaves for the operator to edit: a policy condition is a rule, not a record, and rewriting it
 * would change what is enforced; an account's identities are who counts as one person.
 */
export async function configurationMentioning(
  db: Queryable,
  needles: Needles,
): Promise<{ agents: number; policies: number; approvers: number }> {
  const text = textHit(1);
  const inJson = jsonHit(2);
  const { rows } = await db.query<{ agents: unknown; policies: unknown; approvers: unknown }>(
    `SELECT
       (SELECT count(*) FROM agents WHERE ${['name', 'description', 'webhook_url'].map(text).join(' OR ')}
                                      OR ${inJson('metadata')}) AS agents,
       (SELECT count(*) FROM policies WHERE ${text('name')} OR ${inJson('definition')}) AS policies,
       (SELECT count(*) FROM approvers a WHERE ${['a.name', 'a.email'].map(text).join(' OR ')}
          OR EXISTS (SELECT 1 FROM approver_identities i WHERE i.approver_id = a.id AND ${text('i.identity')}))
         AS approvers`,
    [needles.text, needles.json],
  );
  return {
    agents: toNumber(rows[0]?.agents ?? 0),
    policies: toNumber(rows[0]?.policies ?? 0),
    approvers: toNumber(rows[0]?.approvers ?? 0),
  };
}
