import { createHmac, randomBytes } from 'node:crypto';
import { type RandomBytes, randomBase62 } from './ids.js';
import type { Permission } from './permission.js';

/**
 * Signed webhook deliveries (DESIGN §9), per Standard Webhooks: the payload, the signature over
 * `${id}.${timestamp}.${body}` and the retry schedule. Pure: the delivery service does the I/O.
 */

/** Permission events that produce a delivery, and the event type each is sent as. */
export const WEBHOOK_EVENT_TYPES = {
  approved: 'permission.approved',
  denied: 'permission.denied',
  expired: 'permission.expired',
  used: 'permission.used',
  revoked: 'permission.revoked',
} as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[keyof typeof WEBHOOK_EVENT_TYPES];

export function webhookEventType(permissionEvent: string): WebhookEventType | null {
  return Object.hasOwn(WEBHOOK_EVENT_TYPES, permissionEvent)
    ? WEBHOOK_EVENT_TYPES[permissionEvent as keyof typeof WEBHOOK_EVENT_TYPES]
    : null;
}

export interface WebhookPayload {
  type: WebhookEventType;
  timestamp: string;
  data: {
    id: string;
    agentId: string;
    status: string;
    action: string;
    resource: string | null;
    scope: Record<string, unknown>;
    reason: string | null;
    decidedBy: Record<string, unknown> | null;
    expiresAt: string;
    usesRemaining: number;
  };
}

/**
 * The payload names each field it carries: the token and its hash are never among them, and
 * nothing added to Permission later reaches a receiver by accident.
 */
export function webhookPayload(type: WebhookEventType, p: Permission, at: Date): WebhookPayload {
  return {
    type,
    timestamp: at.toISOString(),
    data: {
      id: p.id,
      agentId: p.agentId,
      status: p.status,
      action: p.action,
      resource: p.resource,
      scope: p.scope,
      reason: p.decisionReason,
      decidedBy: p.decidedBy ? { ...p.decidedBy } : null,
      expiresAt: p.expiresAt.toISOString(),
      usesRemaining: p.usesRemaining,
    },
  };
}

/**
 * The body as sent, with the fields in a fixed order (a payload read back from jsonb has its
 * keys reordered), so every attempt of a delivery carries the same bytes.
 */
export function webhookBody(payload: WebhookPayload): string {
  const d = payload.data;
  return JSON.stringify({
    type: payload.type,
    timestamp: payload.timestamp,
    data: {
      id: d.id,
      agentId: d.agentId,
      status: d.status,
      action: d.action,
      resource: d.resource,
      scope: d.scope,
      reason: d.reason,
      decidedBy: d.decidedBy,
      expiresAt: d.expiresAt,
      usesRemaining: d.usesRemaining,
    },
  });
}

export const WEBHOOK_SECRET_PREFIX = 'whsec_';
const SECRET_BYTES = 32;

/** `whsec_<base64 of 32 random bytes>`, the Standard Webhooks secret format. */
export function newWebhookSecret(random: RandomBytes = randomBytes): string {
  return `${WEBHOOK_SECRET_PREFIX}${random(SECRET_BYTES).toString('base64')}`;
}

export function isWebhookSecret(value: string): boolean {
  if (!value.startsWith(WEBHOOK_SECRET_PREFIX)) return false;
  const encoded = value.slice(WEBHOOK_SECRET_PREFIX.length);
  return /^[A-Za-z0-9+/]+={0,2}$/.test(encoded) && Buffer.from(encoded, 'base64').length === SECRET_BYTES;
}

/** The HMAC key: the base64-decoded part after `whsec_`. */
function secretKey(secret: string): Buffer {
  const encoded = secret.startsWith(WEBHOOK_SECRET_PREFIX)
    ? secret.slice(WEBHOOK_SECRET_PREFIX.length)
    : secret;
  return Buffer.from(encoded, 'base64');
}

/** One `v1,<base64 HMAC-SHA256>` per secret, space-separated (several while a secret rolls over). */
export function signWebhook(
  secrets: readonly string[],
  id: string,
  timestampSeconds: number,
  body: string,
): string {
  const signed = `${id}.${timestampSeconds}.${body}`;
  return secrets
    .map((secret) => `v1,${createHmac('sha256', secretKey(secret)).update(signed, 'utf8').digest('base64')}`)
    .join(' ');
}

export const DELIVERY_ID_PREFIX = 'msg_';

export function newDeliveryId(random: RandomBytes = randomBytes): string {
  return DELIVERY_ID_PREFIX + randomBase62(22, random);
}

export function isDeliveryId(value: string): boolean {
  return (
    value.startsWith(DELIVERY_ID_PREFIX) && /^[A-Za-z0-9]{22}$/.test(value.slice(DELIVERY_ID_PREFIX.length))
  );
}

/** First retry after about a second, then doubling (1, 2, 4, … s), never more than an hour apart. */
export const FIRST_RETRY_DELAY_MS = 1000;
export const MAX_RETRY_DELAY_MS = 3600 * 1000;
/** Retries stop this long after the first attempt; the delivery is then dead. */
export const DEFAULT_RETRY_WINDOW_MS = 24 * 3600 * 1000;

/** The wait after the n-th failed attempt (n ≥ 1). */
export function retryDelayMs(failedAttempts: number): number {
  const exponent = Math.max(0, Math.min(failedAttempts - 1, 40));
  return Math.min(FIRST_RETRY_DELAY_MS * 2 ** exponent, MAX_RETRY_DELAY_MS);
}

/**
 * After a failed attempt: dead once the window since the first attempt has passed, otherwise
 * the next wait, shortened so that the last attempt falls at the end of the window.
 */
export function nextRetry(
  failedAttempts: number,
  firstAttemptAt: Date,
  now: Date,
  windowMs: number,
): { dead: true } | { dead: false; delayMs: number } {
  const remaining = firstAttemptAt.getTime() + windowMs - now.getTime();
  if (remaining <= 0) return { dead: true };
  return { dead: false, delayMs: Math.min(retryDelayMs(failedAttempts), remaining) };
}
