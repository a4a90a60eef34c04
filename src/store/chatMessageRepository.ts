import type { Queryable } from './db.js';

export interface ChatMessageRef {
  permissionId: string;
  /** The channel's registered name. */
  platform: string;
  channel: string;
  messageRef: string;
  permalink: string | null;
  renderedState: string | null;
}

interface Row {
  permission_id: string;
  /** The channel's registered name. */
  platform: string;
  channel: string;
  message_ref: string;
  permalink: string | null;
  rendered_state: string | null;
}

const fromRow = (r: Row): ChatMessageRef => ({
  permissionId: r.permission_id,
  platform: r.platform,
  channel: r.channel,
  messageRef: r.message_ref,
  permalink: r.permalink,
  renderedState: r.rendered_state,
});

export async function listChatMessages(db: Queryable, permissionId: string): Promise<ChatMessageRef[]> {
  const { rows } = await db.query<Row>(
    'SELECT * FROM chat_messages WHERE permission_id = $1 ORDER BY created_at',
    [permissionId],
  );
  return rows.map(fromRow);
}

/** Records a posted message; a second post for the same channel (a retried job) keeps the first. */
export async function saveChatMessage(db: Queryable, m: ChatMessageRef): Promise<boolean> {
  const { rows } = await db.query(
    `INSERT INTO chat_messages (permission_id, platform, channel, message_ref, permalink, rendered_state)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (permission_id, platform, channel) DO NOTHING RETURNING 1`,
    [m.permissionId, m.platform, m.channel, m.messageRef, m.permalink, m.renderedState],
  );
  return rows.length > 0;
}

export async function markRendered(
  db: Queryable,
  m: Pick<ChatMessageRef, 'permissionId' | 'platform' | 'channel'>,
  state: string,
): Promise<void> {
  await db.query(
    `UPDATE chat_messages SET rendered_state = $4, updated_at = now()
      WHERE permission_id = $1 AND platform = $2 AND channel = $3`,
    [m.permissionId, m.platform, m.channel, state],
  );
}

export async function markNotified(db: Queryable, permissionId: string, at: Date): Promise<void> {
  await db.query('UPDATE permissions SET notified_at = $2 WHERE id = $1 AND notified_at IS NULL', [
    permissionId,
    at,
  ]);
}

/** The first posted message's permalink becomes the permission's approvalUrl. */
export async function setApprovalUrl(db: Queryable, permissionId: string, url: string): Promise<void> {
  await db.query('UPDATE permissions SET approval_url = $2 WHERE id = $1 AND approval_url IS NULL', [
    permissionId,
    url,
  ]);
}

/** The first permalink of a permission's messages: its approvalUrl. */
export async function firstPermalink(db: Queryable, permissionId: string): Promise<string | null> {
  const { rows } = await db.query<{ permalink: string }>(
    `SELECT permalink FROM chat_messages WHERE permission_id = $1 AND permalink IS NOT NULL
      ORDER BY created_at LIMIT 1`,
    [permissionId],
  );
  return rows[0]?.permalink ?? null;
}

/** Pending requests that were never (fully) posted: the reconciler re-enqueues them. */
export async function unnotifiedPending(db: Queryable, olderThan: Date, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM permissions WHERE status = 'pending' AND notified_at IS NULL AND created_at <= $1
      ORDER BY created_at LIMIT $2`,
    [olderThan, limit],
  );
  return rows.map((r) => r.id);
}

/** A pending request's follow-ups, sent after `approval.remindAfter` / `escalateAfter` seconds. */
export type FollowUp = 'remind' | 'escalate';

const FOLLOW_UP = {
  remind: { column: 'reminded_at', after: 'remindAfter' },
  escalate: { column: 'escalated_at', after: 'escalateAfter' },
} as const;

export async function markFollowedUp(
  db: Queryable,
  permissionId: string,
  kind: FollowUp,
  at: Date,
): Promise<void> {
  const { column } = FOLLOW_UP[kind];
  await db.query(`UPDATE permissions SET ${column} = $2 WHERE id = $1 AND ${column} IS NULL`, [
    permissionId,
    at,
  ]);
}

/**
 * Posted pending requests whose follow-up was due by `dueBy` and never sent: its delayed queue
 * job was lost with Redis. Oldest first.
 */
export async function overdueFollowUps(
  db: Queryable,
  kind: FollowUp,
  dueBy: Date,
  limit: number,
): Promise<string[]> {
  const { column, after } = FOLLOW_UP[kind];
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM permissions
      WHERE status = 'pending' AND notified_at IS NOT NULL AND ${column} IS NULL
        AND approval ->> '${after}' IS NOT NULL
        AND created_at + (approval ->> '${after}')::int * interval '1 second' <= $1
      ORDER BY created_at LIMIT $2`,
    [dueBy, limit],
  );
  return rows.map((r) => r.id);
}

/** Messages whose last rendered state is not the permission's current one. */
export async function staleMessages(db: Queryable, olderThan: Date, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ permission_id: string }>(
    `SELECT DISTINCT m.permission_id FROM chat_messages m JOIN permissions p ON p.id = m.permission_id
      WHERE m.rendered_state IS DISTINCT FROM (p.status || ':' || jsonb_array_length(p.approvals))
        AND p.updated_at <= $1
      LIMIT $2`,
    [olderThan, limit],
  );
  return rows.map((r) => r.permission_id);
}
