import { createHash } from 'node:crypto';
import type { AuditEventType } from './eventTypes.js';

/**
 * The audit event and its hash chain (DESIGN §10). The chain hashes `details_hash`, not the
 * details themselves, so erasing personal data from `details` (GDPR) keeps the chain verifiable.
 */
export const ACTOR_TYPES = ['agent', 'approver', 'policy', 'system', 'operator'] as const;
export type ActorType = (typeof ACTOR_TYPES)[number];
/**
 * Where an actor acted: `api` or `cli` for operators, else the name of the approval channel the
 * click came through (registered by the channel, see src/chat/channels.ts): a name, not a list,
 * so that a new channel needs no change here.
 */
export const ACTOR_PLATFORM = /^[a-z][a-z0-9-]{0,31}$/;

export interface Actor {
  type: ActorType;
  id?: string;
  name?: string;
  platform?: string;
  teamId?: string;
  guildId?: string;
  userId?: string;
  userName?: string;
  /** The person an approver's identity is linked to (APPROVER_LINKS), shown beside the identity. */
  person?: string;
  /** On the web channel: the passkey (base64url credential id) whose session cast the vote. */
  credentialId?: string;
}

export interface AuditEventInput {
  type: AuditEventType;
  actor: Actor;
  agentId?: string | null;
  permissionId?: string | null;
  details?: Record<string, unknown>;
  ip?: string | null;
  userAgent?: string | null;
}

export interface AuditEvent extends Required<Omit<AuditEventInput, 'details' | 'type'>> {
  /** An AuditEventType when written; stored rows from older versions may hold others. */
  type: string;
  id: string;
  occurredAt: Date;
  details: Record<string, unknown>;
  detailsHash: string;
}

export interface SealedFields {
  chainIndex: number;
  prevHash: string;
  hash: string;
}

/** Hash of the empty chain: the first sealed event links to it. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * JSON with sorted keys, so the same value always hashes the same however it was built. Its
 * output is part of the stored chain and may never change (test/unit/core/auditHash.test.ts).
 * Every event is hashed twice on the server's event loop (its details when built, its link when
 * sealed), so objects are walked with one sorted key list and no intermediate arrays; keys sort
 * by UTF-16 code units, as a `<` comparison does.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const record = value as Record<string, unknown>;
  let out = '';
  for (const key of Object.keys(record).sort()) {
    const field = record[key];
    if (field === undefined) continue;
    out += `${out ? ',' : ''}${JSON.stringify(key)}:${canonicalJson(field)}`;
  }
  return `{${out}}`;
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

export function hashDetails(details: Record<string, unknown>): string {
  return sha256(canonicalJson(details));
}

/** Everything that identifies the event except the details, which enter through their hash. */
export function chainHash(
  prevHash: string,
  chainIndex: number,
  event: Pick<
    AuditEvent,
    'id' | 'occurredAt' | 'type' | 'actor' | 'agentId' | 'permissionId' | 'detailsHash'
  >,
): string {
  return sha256(
    canonicalJson([
      prevHash,
      chainIndex,
      event.id,
      event.occurredAt.toISOString(),
      event.type,
      event.actor,
      event.agentId ?? null,
      event.permissionId ?? null,
      event.detailsHash,
    ]),
  );
}
