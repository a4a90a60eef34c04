import type { ExportRow } from '../core/audit/export.js';
import type { Actor, AuditEvent } from '../core/audit/index.js';
import type { Permission } from '../core/permission.js';
import { type Db, type Queryable, toNumber } from './db.js';

interface AuditRow {
  seq: unknown;
  id: string;
  occurred_at: Date;
  type: string;
  permission_id: string | null;
  agent_id: string | null;
  actor_type: string;
  actor: Actor;
  details: Record<string, unknown>;
  ip: string | null;
  user_agent: string | null;
  details_hash: string;
  chain_index: unknown;
  prev_hash: string | null;
  hash: string | null;
  redacted_at: Date | null;
}

export interface StoredAuditEvent extends AuditEvent {
  seq: number;
  /** Denormalised from actor.type for queries; verify checks the two agree. */
  actorType: string;
  chainIndex: number | null;
  prevHash: string | null;
  hash: string | null;
  redactedAt: Date | null;
}

const COLUMNS = `seq, id, occurred_at, type, permission_id, agent_id, actor_type, actor, details, ip,
  user_agent, details_hash, chain_index, prev_hash, hash, redacted_at`;

function fromRow(r: AuditRow): StoredAuditEvent {
  return {
    ...linkedFields(r),
    actorType: r.actor_type,
    details: r.details,
    ip: r.ip,
    userAgent: r.user_agent,
    chainIndex: r.chain_index === null ? null : toNumber(r.chain_index),
    prevHash: r.prev_hash,
    hash: r.hash,
    redactedAt: r.redacted_at,
  };
}

/** The columns the chain hashes, and seq: all the sealer reads of an event (unsealedEvents). */
const LINKED_COLUMNS = 'seq, id, occurred_at, type, actor, agent_id, permission_id, details_hash';
type LinkedRow = Pick<
  AuditRow,
  'seq' | 'id' | 'occurred_at' | 'type' | 'actor' | 'agent_id' | 'permission_id' | 'details_hash'
>;

function linkedFields(r: LinkedRow): UnsealedEvent {
  return {
    seq: toNumber(r.seq),
    id: r.id,
    occurredAt: r.occurred_at,
    type: r.type,
    actor: r.actor,
    agentId: r.agent_id,
    permissionId: r.permission_id,
    detailsHash: r.details_hash,
  };
}

const INSERT_COLUMNS = `id, occurred_at, type, permission_id, agent_id, actor_type, actor, details, ip, user_agent,
  details_hash`;

/**
 * `INSERT INTO audit_events … SELECT … FROM unnest(…) AS v` of events passed column by column as
 * arrays (auditEventArrays), parameters numbered from `firstParam`: one statement text for any
 * number of events (one prepared statement, where a VALUES list would make a new one per count).
 * `where` filters over `v`, whose `v.ord` is each event's position (from 1) in the arrays (e.g.
 * only the events of permissions a statement inserted). Events are inserted in array order, so
 * their seq follows it: a filter is a join, and without the ORDER BY a plan may hand the rows
 * over in another order (a permission's approval stored before its request).
 */
export function auditEventsFromArraysSql(firstParam: number, where?: string): string {
  const p = (i: number) => `$${firstParam + i}`;
  return `INSERT INTO audit_events (${INSERT_COLUMNS})
  SELECT v.id, v.occurred_at, v.type, v.permission_id, v.agent_id, v.actor_type, v.actor::jsonb,
         v.details::jsonb, v.ip, v.user_agent, v.details_hash
    FROM unnest(${p(0)}::text[], ${p(1)}::timestamptz[], ${p(2)}::text[], ${p(3)}::text[], ${p(4)}::text[],
                ${p(5)}::text[], ${p(6)}::text[], ${p(7)}::text[], ${p(8)}::text[], ${p(9)}::text[], ${p(10)}::text[])
      WITH ORDINALITY AS v(${INSERT_COLUMNS}, ord)${
        where
          ? `
   WHERE ${where}`
          : ''
      }
   ORDER BY v.ord`;
}

/** The parameters of auditEventsFromArraysSql: 11 arrays, one per column. */
export function auditEventArrays(events: readonly AuditEvent[]): unknown[] {
  return [
    events.map((e) => e.id),
    events.map((e) => e.occurredAt.toISOString()),
    events.map((e) => e.type),
    events.map((e) => e.permissionId),
    events.map((e) => e.agentId),
    events.map((e) => e.actor.type),
    events.map((e) => JSON.stringify(e.actor)),
    events.map((e) => JSON.stringify(e.details)),
    events.map((e) => e.ip),
    events.map((e) => e.userAgent),
    events.map((e) => e.detailsHash),
  ];
}

/**
 * An event already stored (same id) is skipped: retrying a write whose outcome was lost with the
 * connection cannot store it twice.
 */
const INSERT_EVENTS_SQL = `${auditEventsFromArraysSql(1)}
  ON CONFLICT (id) DO NOTHING`;

export async function insertAuditEvents(tx: Queryable, events: readonly AuditEvent[]): Promise<void> {
  if (events.length === 0) return;
  await tx.query(INSERT_EVENTS_SQL, auditEventArrays(events));
}

/**
 * What a caller saw of the event's permission when it decided the answer the event records: the
 * event is written only while that row still stands so (see insertAuditEventsWhile).
 */
export type PermissionAsSeen = Pick<Permission, 'status' | 'usesRemaining' | 'tokenHash'>;

/** An event to write, unconditionally or only while its permission stands as `seen`. */
export interface EventToRecord {
  event: AuditEvent;
  seen?: PermissionAsSeen;
}

/**
 * Events with a `seen` permission are written only if, when the statement runs, that row still
 * has the status, uses left and token hash the caller saw; the others always. Answers, per event
 * in order, whether its condition held (an event already stored by a retried write still counts).
 * One statement: the check and the write see one snapshot, as a read then a write would not.
 */
const INSERT_EVENTS_WHILE_SQL = `WITH held AS (
    SELECT g.ord FROM unnest($12::text[], $13::text[], $14::int[], $15::text[])
                      WITH ORDINALITY AS g(permission_id, status, uses_remaining, token_hash, ord)
     WHERE g.status IS NULL
        OR EXISTS (SELECT 1 FROM permissions p
                    WHERE p.id = g.permission_id AND p.status = g.status
                      AND p.uses_remaining = g.uses_remaining AND p.token_hash = g.token_hash)
  ), written AS (
    ${auditEventsFromArraysSql(1, 'v.ord IN (SELECT ord FROM held)')}
    ON CONFLICT (id) DO NOTHING
  )
  SELECT ord FROM held`;

export async function insertAuditEventsWhile(
  db: Queryable,
  items: readonly EventToRecord[],
): Promise<boolean[]> {
  if (items.length === 0) return [];
  const { rows } = await db.query<{ ord: unknown }>(INSERT_EVENTS_WHILE_SQL, [
    ...auditEventArrays(items.map((i) => i.event)),
    items.map((i) => (i.seen ? i.event.permissionId : null)),
    items.map((i) => i.seen?.status ?? null),
    items.map((i) => i.seen?.usesRemaining ?? null),
    items.map((i) => i.seen?.tokenHash ?? null),
  ]);
  const held = new Set(rows.map((r) => toNumber(r.ord)));
  return items.map((_, i) => held.has(i + 1));
}

/** The newest sealed link, or the retention checkpoint when the sealed rows were purged. */
export async function chainHead(tx: Queryable): Promise<{ chainIndex: number; hash: string } | null> {
  const { rows } = await tx.query<{ chain_index: unknown; hash: string }>(
    `SELECT chain_index, hash FROM (
       (SELECT chain_index, hash FROM audit_events WHERE chain_index IS NOT NULL
         ORDER BY chain_index DESC LIMIT 1)
       UNION ALL
       (SELECT chain_index, hash FROM audit_checkpoints ORDER BY chain_index DESC LIMIT 1)
     ) heads ORDER BY chain_index DESC LIMIT 1`,
  );
  const row = rows[0];
  return row ? { chainIndex: toNumber(row.chain_index), hash: row.hash } : null;
}

/** What the sealer links of an unsealed event: the fields chainHash covers, and its seq. */
export type UnsealedEvent = Pick<
  StoredAuditEvent,
  'seq' | 'id' | 'occurredAt' | 'type' | 'actor' | 'agentId' | 'permissionId' | 'detailsHash'
>;

/**
 * The oldest unsealed events, with only the columns the chain hashes: not their details (the
 * chain covers those through details_hash), which the sealer would parse for nothing, on the
 * server's event loop, for every event written.
 */
export async function unsealedEvents(tx: Queryable, limit: number): Promise<UnsealedEvent[]> {
  const { rows } = await tx.query<LinkedRow>(
    `SELECT ${LINKED_COLUMNS} FROM audit_events WHERE chain_index IS NULL ORDER BY seq LIMIT $1`,
    [limit],
  );
  return rows.map(linkedFields);
}

export async function sealEvents(
  tx: Queryable,
  links: readonly { seq: number; chainIndex: number; prevHash: string; hash: string }[],
): Promise<void> {
  if (links.length === 0) return;
  await tx.query(
    `UPDATE audit_events AS a SET chain_index = l.chain_index, prev_hash = l.prev_hash, hash = l.hash
       FROM (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])
             AS t(seq, chain_index, prev_hash, hash)) AS l
      WHERE a.seq = l.seq`,
    [
      links.map((l) => l.seq),
      links.map((l) => l.chainIndex),
      links.map((l) => l.prevHash),
      links.map((l) => l.hash),
    ],
  );
}

export async function countUnsealed(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ n: unknown }>(
    'SELECT count(*) AS n FROM audit_events WHERE chain_index IS NULL',
  );
  return toNumber(rows[0]?.n ?? 0);
}

export async function earliestCheckpoint(
  db: Queryable,
): Promise<{ chainIndex: number; hash: string } | null> {
  const { rows } = await db.query<{ chain_index: unknown; hash: string }>(
    'SELECT chain_index, hash FROM audit_checkpoints ORDER BY chain_index DESC LIMIT 1',
  );
  const row = rows[0];
  return row ? { chainIndex: toNumber(row.chain_index), hash: row.hash } : null;
}

/** Sealed events in chain order after `afterIndex`, a page at a time (verify walks with it). */
export async function sealedEventsAfter(
  db: Queryable,
  afterIndex: number,
  limit: number,
): Promise<StoredAuditEvent[]> {
  const { rows } = await db.query<AuditRow>(
    `SELECT ${COLUMNS} FROM audit_events WHERE chain_index > $1 ORDER BY chain_index LIMIT $2`,
    [afterIndex, limit],
  );
  return rows.map(fromRow);
}

export interface AuditQuery extends AuditExportFilter {
  permissionId?: string;
  /** The permission's action, for events that belong to a permission. */
  action?: string;
  /** Keyset cursor: the seq of the last row of the previous page. */
  beforeSeq?: number;
  limit: number;
}

export async function queryAuditEvents(db: Queryable, q: AuditQuery): Promise<StoredAuditEvent[]> {
  const params: unknown[] = [];
  const where = filterClauses(q, params);
  if (q.permissionId) where.push(`permission_id = ${param(params, q.permissionId)}`);
  if (q.action)
    where.push(`permission_id IN (SELECT id FROM permissions WHERE action = ${param(params, q.action)})`);
  if (q.beforeSeq !== undefined) where.push(`seq < ${param(params, q.beforeSeq)}`);
  const { rows } = await db.query<AuditRow>(
    `SELECT ${COLUMNS} FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY seq DESC LIMIT ${param(params, q.limit)}`,
    params,
  );
  return rows.map(fromRow);
}

export interface AuditExportFilter {
  agentId?: string;
  eventType?: string;
  startDate?: Date;
  endDate?: Date;
}

/** Appends a query parameter and returns its placeholder. */
function param(params: unknown[], value: unknown): string {
  params.push(value);
  return `$${params.length}`;
}

/** The filters the audit list and the export share, as WHERE clauses over `params`. */
function filterClauses(f: AuditExportFilter, params: unknown[]): string[] {
  const where: string[] = [];
  if (f.agentId) where.push(`agent_id = ${param(params, f.agentId)}`);
  if (f.eventType) where.push(`type = ${param(params, f.eventType)}`);
  if (f.startDate) where.push(`occurred_at >= ${param(params, f.startDate)}`);
  if (f.endDate) where.push(`occurred_at <= ${param(params, f.endDate)}`);
  return where;
}

/** How many events an export with this filter would hold now (one count, for a progress bar). */
export async function countAuditEvents(db: Queryable, filter: AuditExportFilter): Promise<number> {
  const params: unknown[] = [];
  const where = filterClauses(filter, params);
  const { rows } = await db.query<{ n: unknown }>(
    `SELECT count(*) AS n FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''}`,
    params,
  );
  return toNumber(rows[0]?.n ?? 0);
}

/**
 * One page of events in insertion order after `afterSeq` (keyset pagination for export), each
 * handed to onEvent as the database returns it. Returns how many there were and the last seq.
 */
export async function eachAuditEventAfterSeq(
  db: Db,
  filter: AuditExportFilter,
  afterSeq: number,
  limit: number,
  onEvent: (event: ExportedAuditEvent) => void,
): Promise<{ count: number; lastSeq: number }> {
  const params: unknown[] = [afterSeq];
  const where = ['seq > $1', ...filterClauses(filter, params)];
  let lastSeq = afterSeq;
  // actor and details as JSON text: the export writes them as they are, without parsing.
  const count = await db.eachRow<ExportDbRow>(
    `SELECT seq, id, occurred_at, type, permission_id, agent_id, actor_type, actor::text AS actor,
            details::text AS details, ip, user_agent, details_hash, chain_index, prev_hash, hash, redacted_at
       FROM audit_events WHERE ${where.join(' AND ')} ORDER BY seq LIMIT ${param(params, limit)}`,
    params,
    (r) => {
      lastSeq = toNumber(r.seq);
      onEvent({
        seq: lastSeq,
        id: r.id,
        occurredAt: r.occurred_at,
        type: r.type,
        actorType: r.actor_type,
        actorJson: r.actor,
        agentId: r.agent_id,
        permissionId: r.permission_id,
        detailsJson: r.details,
        ip: r.ip,
        userAgent: r.user_agent,
        detailsHash: r.details_hash,
        chainIndex: r.chain_index === null ? null : toNumber(r.chain_index),
        prevHash: r.prev_hash,
        hash: r.hash,
        redactedAt: r.redacted_at,
      });
    },
  );
  return { count, lastSeq };
}

interface ExportDbRow extends Omit<AuditRow, 'actor' | 'details'> {
  actor: string;
  details: string;
}

/** An event for export: actor and details kept as the JSON text Postgres returned. */
export type ExportedAuditEvent = ExportRow;

/**
 * The last chain index retention may purge: the end of the longest chain prefix (after the
 * current checkpoint) whose events all occurred before the cutoff. Null when nothing is due.
 */
export async function retentionBoundary(
  tx: Queryable,
  cutoff: Date,
  /** Never past this chain index (events not yet forwarded to the SIEM); null: no such limit. */
  notAfter: number | null = null,
): Promise<{ chainIndex: number; hash: string; count: number } | null> {
  const { rows } = await tx.query<{ chain_index: unknown; hash: string; n: unknown }>(
    `WITH cp AS (SELECT coalesce(max(chain_index), 0) AS ci FROM audit_checkpoints),
          stop AS (SELECT min(chain_index) AS ci FROM audit_events, cp
                    WHERE chain_index > cp.ci AND occurred_at >= $1),
          last AS (SELECT max(e.chain_index) AS ci FROM audit_events e, cp, stop
                    WHERE e.chain_index > cp.ci AND (stop.ci IS NULL OR e.chain_index < stop.ci)
                      AND ($2::bigint IS NULL OR e.chain_index <= $2::bigint))
     SELECT e.chain_index, e.hash,
            (SELECT count(*) FROM audit_events x, cp WHERE x.chain_index > cp.ci AND x.chain_index <= e.chain_index) AS n
       FROM audit_events e, last WHERE e.chain_index = last.ci`,
    [cutoff, notAfter],
  );
  const row = rows[0];
  return row?.hash ? { chainIndex: toNumber(row.chain_index), hash: row.hash, count: toNumber(row.n) } : null;
}

/** The row of `audit_forward_cursor` that SIEM forwarding keeps. */
export const SIEM_CURSOR_ID = 'siem';

/** The last chain index delivered to the SIEM (0 before the first delivery). */
export async function forwardedThrough(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ chain_index: unknown }>(
    'SELECT chain_index FROM audit_forward_cursor WHERE id = $1',
    [SIEM_CURSOR_ID],
  );
  return toNumber(rows[0]?.chain_index ?? 0);
}

export async function purgeThrough(
  tx: Queryable,
  boundary: { chainIndex: number; hash: string; count: number },
) {
  await tx.query('INSERT INTO audit_checkpoints (chain_index, hash, purged_count) VALUES ($1, $2, $3)', [
    boundary.chainIndex,
    boundary.hash,
    boundary.count,
  ]);
  await tx.query('DELETE FROM audit_events WHERE chain_index IS NOT NULL AND chain_index <= $1', [
    boundary.chainIndex,
  ]);
}

/** Events whose details text contains `needle` (case-insensitive), a page at a time by seq. */
export async function eventsMentioning(
  db: Queryable,
  needle: string,
  afterSeq: number,
  limit: number,
): Promise<StoredAuditEvent[]> {
  const { rows } = await db.query<AuditRow>(
    `SELECT ${COLUMNS} FROM audit_events WHERE seq > $1 AND strpos(lower(details::text), lower($2)) > 0
      ORDER BY seq LIMIT $3`,
    [afterSeq, needle, limit],
  );
  return rows.map(fromRow);
}

export async function updateRedactedDetails(
  tx: Queryable,
  updates: readonly { seq: number; details: Record<string, unknown> }[],
  redactedAt: Date,
): Promise<void> {
  if (updates.length === 0) return;
  await tx.query(
    `UPDATE audit_events AS a SET details = u.details, redacted_at = $3
       FROM (SELECT * FROM unnest($1::bigint[], $2::jsonb[]) AS t(seq, details)) AS u
      WHERE a.seq = u.seq`,
    [updates.map((u) => u.seq), updates.map((u) => JSON.stringify(u.details)), redactedAt],
  );
}

/**
 * Erases the client address and user agent of events where either names the subject (neither
 * enters the chain hash, so the chain is untouched). Returns how many events had one; with
 * `dryRun` only counts.
 */
export async function eraseEventOrigins(tx: Queryable, subject: string, dryRun: boolean): Promise<number> {
  const match = `(strpos(lower(coalesce(ip, '')), lower($1)) > 0
                  OR strpos(lower(coalesce(user_agent, '')), lower($1)) > 0)`;
  if (dryRun) {
    const { rows } = await tx.query<{ n: unknown }>(`SELECT count(*) AS n FROM audit_events WHERE ${match}`, [
      subject,
    ]);
    return toNumber(rows[0]?.n ?? 0);
  }
  const { rows } = await tx.query(
    `UPDATE audit_events
        SET ip = CASE WHEN strpos(lower(coalesce(ip, '')), lower($1)) > 0 THEN NULL ELSE ip END,
            user_agent = CASE WHEN strpos(lower(coalesce(user_agent, '')), lower($1)) > 0 THEN NULL ELSE user_agent END
      WHERE ${match} RETURNING 1`,
    [subject],
  );
  return rows.length;
}

/** Events whose actor (part of the chained hash, so never rewritten) names the subject. */
export async function countActorsMentioning(db: Queryable, needle: string): Promise<number> {
  const { rows } = await db.query<{ n: unknown }>(
    'SELECT count(*) AS n FROM audit_events WHERE strpos(lower(actor::text), lower($1)) > 0',
    [needle],
  );
  return toNumber(rows[0]?.n ?? 0);
}

/** The redaction events: when each redaction happened and how many events it redacted. */
export async function redactionRecords(db: Queryable): Promise<Map<string, number>> {
  const { rows } = await db.query<{ occurred_at: Date; n: unknown }>(
    `SELECT occurred_at, details->>'events' AS n FROM audit_events WHERE type = 'audit.redacted'`,
  );
  const out = new Map<string, number>();
  for (const r of rows) {
    const key = new Date(r.occurred_at).toISOString();
    out.set(key, (out.get(key) ?? 0) + toNumber(r.n ?? 0));
  }
  return out;
}
