import type { AgentEnvironment } from '../core/credentials.js';
import type { Queryable } from './db.js';

export type AgentStatus = 'active' | 'revoked' | 'deleted';

export interface Agent {
  id: string;
  name: string;
  description: string | null;
  metadata: Record<string, unknown>;
  environment: AgentEnvironment;
  status: AgentStatus;
  rateLimitPerMin: number | null;
  rateLimitPerHour: number | null;
  /** Verify and use calls together (null: TOKEN_RATE_LIMIT_PER_MIN / _PER_HOUR). */
  tokenRateLimitPerMin: number | null;
  tokenRateLimitPerHour: number | null;
  webhookUrl: string | null;
  createdAt: Date;
  updatedAt: Date;
  revokedAt: Date | null;
  /**
   * Shares its name (case-insensitively) with an older agent: set by migration 012 for agents
   * created before names were unique, cleared by a rename. Such a name resolves to no agent.
   */
  nameDuplicate: boolean;
}

export interface ApiKeyRecord {
  id: string;
  agentId: string;
  keyHash: string;
  keyPrefix: string;
  environment: AgentEnvironment;
  createdAt: Date;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

interface AgentRow {
  id: string;
  name: string;
  description: string | null;
  metadata: Record<string, unknown>;
  environment: AgentEnvironment;
  status: AgentStatus;
  rate_limit_per_min: number | null;
  rate_limit_per_hour: number | null;
  token_rate_limit_per_min: number | null;
  token_rate_limit_per_hour: number | null;
  webhook_url: string | null;
  created_at: Date;
  updated_at: Date;
  revoked_at: Date | null;
  name_duplicate: boolean;
}

interface KeyRow {
  id: string;
  agent_id: string;
  key_hash: string;
  key_prefix: string;
  environment: AgentEnvironment;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

const agentFromRow = (r: AgentRow): Agent => ({
  id: r.id,
  name: r.name,
  description: r.description,
  metadata: r.metadata,
  environment: r.environment,
  status: r.status,
  rateLimitPerMin: r.rate_limit_per_min,
  rateLimitPerHour: r.rate_limit_per_hour,
  tokenRateLimitPerMin: r.token_rate_limit_per_min,
  tokenRateLimitPerHour: r.token_rate_limit_per_hour,
  webhookUrl: r.webhook_url,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
  revokedAt: r.revoked_at,
  nameDuplicate: r.name_duplicate ?? false,
});

const keyFromRow = (r: KeyRow): ApiKeyRecord => ({
  id: r.id,
  agentId: r.agent_id,
  keyHash: r.key_hash,
  keyPrefix: r.key_prefix,
  environment: r.environment,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  lastUsedAt: r.last_used_at,
});

export async function insertAgent(tx: Queryable, agent: Agent): Promise<void> {
  await tx.query(
    `INSERT INTO agents (id, name, description, metadata, environment, status, created_at, updated_at)
     VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $7)`,
    [
      agent.id,
      agent.name,
      agent.description,
      JSON.stringify(agent.metadata),
      agent.environment,
      agent.status,
      agent.createdAt,
    ],
  );
}

export async function insertApiKey(tx: Queryable, key: ApiKeyRecord): Promise<void> {
  await tx.query(
    `INSERT INTO api_keys (id, agent_id, key_hash, key_prefix, environment, created_at)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [key.id, key.agentId, key.keyHash, key.keyPrefix, key.environment, key.createdAt],
  );
}

/** Deleted agents are kept for the audit trail's references but are invisible to the API. */
export async function findAgent(db: Queryable, id: string, forUpdate = false): Promise<Agent | null> {
  const { rows } = await db.query<AgentRow>(
    `SELECT * FROM agents WHERE id = $1 AND status <> 'deleted'${forUpdate ? ' FOR UPDATE' : ''}`,
    [id],
  );
  return rows[0] ? agentFromRow(rows[0]) : null;
}

export async function listAgents(
  db: Queryable,
  opts: { limit: number; after?: { createdAt: Date; id: string } },
): Promise<Agent[]> {
  const params: unknown[] = [opts.limit];
  let cursor = '';
  if (opts.after) {
    params.push(opts.after.createdAt, opts.after.id);
    cursor = 'AND (created_at, id) > ($2, $3)';
  }
  const { rows } = await db.query<AgentRow>(
    `SELECT * FROM agents WHERE status <> 'deleted' ${cursor} ORDER BY created_at, id LIMIT $1`,
    params,
  );
  return rows.map(agentFromRow);
}

export interface AgentChanges {
  name?: string;
  description?: string | null;
  metadata?: Record<string, unknown>;
  rateLimitPerMin?: number | null;
  rateLimitPerHour?: number | null;
  tokenRateLimitPerMin?: number | null;
  tokenRateLimitPerHour?: number | null;
  webhookUrl?: string | null;
}

const CHANGE_COLUMNS: Record<keyof AgentChanges, string> = {
  name: 'name',
  description: 'description',
  metadata: 'metadata',
  rateLimitPerMin: 'rate_limit_per_min',
  rateLimitPerHour: 'rate_limit_per_hour',
  tokenRateLimitPerMin: 'token_rate_limit_per_min',
  tokenRateLimitPerHour: 'token_rate_limit_per_hour',
  webhookUrl: 'webhook_url',
};

export async function updateAgent(
  tx: Queryable,
  id: string,
  changes: AgentChanges,
  now: Date,
): Promise<Agent | null> {
  const sets: string[] = [];
  const params: unknown[] = [id, now];
  for (const [field, column] of Object.entries(CHANGE_COLUMNS) as [keyof AgentChanges, string][]) {
    if (!(field in changes)) continue;
    const value = changes[field];
    params.push(field === 'metadata' ? JSON.stringify(value) : value);
    sets.push(`${column} = $${params.length}${field === 'metadata' ? '::jsonb' : ''}`);
  }
  // A renamed agent's new name is checked by the unique index like any other (409 if taken).
  if ('name' in changes) sets.push('name_duplicate = false');
  const { rows } = await tx.query<AgentRow>(
    `UPDATE agents SET ${[...sets, 'updated_at = $2'].join(', ')}
      WHERE id = $1 AND status <> 'deleted' RETURNING *`,
    params,
  );
  return rows[0] ? agentFromRow(rows[0]) : null;
}

export async function setAgentStatus(
  tx: Queryable,
  id: string,
  status: 'revoked' | 'deleted',
  now: Date,
): Promise<Agent | null> {
  const { rows } = await tx.query<AgentRow>(
    `UPDATE agents SET status = $2, updated_at = $3, revoked_at = COALESCE(revoked_at, $3)
      WHERE id = $1 AND status <> 'deleted' RETURNING *`,
    [id, status, now],
  );
  return rows[0] ? agentFromRow(rows[0]) : null;
}

export async function revokeAgentKeys(tx: Queryable, agentId: string, now: Date): Promise<number> {
  const { rows } = await tx.query(
    'UPDATE api_keys SET revoked_at = $2 WHERE agent_id = $1 AND revoked_at IS NULL RETURNING id',
    [agentId, now],
  );
  return rows.length;
}

/** Gives every current key of the agent an end of life (rotation grace); never extends one. */
export async function expireAgentKeys(tx: Queryable, agentId: string, at: Date): Promise<number> {
  const { rows } = await tx.query(
    `UPDATE api_keys SET expires_at = LEAST(COALESCE(expires_at, $2), $2)
      WHERE agent_id = $1 AND revoked_at IS NULL RETURNING id`,
    [agentId, at],
  );
  return rows.length;
}

export async function listAgentKeys(db: Queryable, agentId: string): Promise<ApiKeyRecord[]> {
  const { rows } = await db.query<KeyRow>('SELECT * FROM api_keys WHERE agent_id = $1 ORDER BY created_at', [
    agentId,
  ]);
  return rows.map(keyFromRow);
}

export interface KeyWithAgent {
  key: ApiKeyRecord;
  agent: Agent;
}

export async function findKeyByHash(db: Queryable, keyHash: string): Promise<KeyWithAgent | null> {
  const { rows } = await db.query<KeyRow & { agent: AgentRow }>(
    `SELECT k.*, row_to_json(a.*) AS agent FROM api_keys k JOIN agents a ON a.id = k.agent_id
      WHERE k.key_hash = $1`,
    [keyHash],
  );
  const row = rows[0];
  if (!row) return null;
  const agent = row.agent;
  return {
    key: keyFromRow(row),
    agent: agentFromRow({
      ...agent,
      created_at: new Date(agent.created_at),
      updated_at: new Date(agent.updated_at),
      revoked_at: agent.revoked_at ? new Date(agent.revoked_at) : null,
    }),
  };
}

export async function touchApiKey(db: Queryable, keyId: string, now: Date): Promise<void> {
  await db.query('UPDATE api_keys SET last_used_at = $2 WHERE id = $1', [keyId, now]);
}

/** The unique index on lower(name): a create or rename that hits it is 409 AGENT_NAME_TAKEN. */
export const AGENT_NAME_INDEX = 'agents_name_unique_idx';

export function isAgentNameConflict(err: unknown): boolean {
  const e = err as { code?: unknown; constraint?: unknown; message?: unknown } | null;
  if (e?.code !== '23505') return false;
  // PGlite does not always fill in `constraint`; its message names the index.
  return e.constraint === AGENT_NAME_INDEX || String(e.message ?? '').includes(AGENT_NAME_INDEX);
}

/** Agents (not deleted) whose name equals `name` case-insensitively, oldest first. */
export async function findAgentsByName(db: Queryable, name: string): Promise<Agent[]> {
  const { rows } = await db.query<AgentRow>(
    `SELECT * FROM agents WHERE lower(name) = lower($1) AND status <> 'deleted'
      ORDER BY created_at, id LIMIT 50`,
    [name],
  );
  return rows.map(agentFromRow);
}

/** A few agents to name in an "unknown agent" answer, and how many there are. */
export async function sampleAgents(
  db: Queryable,
  limit: number,
): Promise<{ agents: { id: string; name: string }[]; total: number }> {
  const [{ rows }, count] = await Promise.all([
    db.query<{ id: string; name: string }>(
      `SELECT id, name FROM agents WHERE status <> 'deleted' ORDER BY lower(name), id LIMIT $1`,
      [limit],
    ),
    db.query<{ n: string | number }>(`SELECT count(*) AS n FROM agents WHERE status <> 'deleted'`),
  ]);
  return { agents: rows, total: Number(count.rows[0]?.n ?? 0) };
}

/** Agents flagged by migration 012 as sharing an older agent's name, with that agent. */
export async function listNameDuplicates(
  db: Queryable,
): Promise<{ id: string; name: string; sharesNameWith: string[] }[]> {
  const { rows } = await db.query<{ id: string; name: string; others: string[] | null }>(
    `SELECT a.id, a.name,
            ARRAY(SELECT b.id FROM agents b
                   WHERE b.status <> 'deleted' AND b.id <> a.id AND lower(b.name) = lower(a.name)
                   ORDER BY b.created_at, b.id) AS others
       FROM agents a
      WHERE a.name_duplicate AND a.status <> 'deleted'
      ORDER BY lower(a.name), a.created_at, a.id`,
  );
  return rows.map((r) => ({ id: r.id, name: r.name, sharesNameWith: r.others ?? [] }));
}
