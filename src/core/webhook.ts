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

export type PermissionWebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[keyof typeof WEBHOOK_EVENT_TYPES];

/**
 * Monitoring alerts, sent to the operator's ALERT_WEBHOOK_URL: one when a threshold is crossed,
 * one when it clears (the clearing closes the incident the first one opened).
 */
export const ALERT_EVENT_TYPES = {
  triggered: 'alert.triggered',
  cleared: 'alert.cleared',
} as const;

export type AlertEventType = (typeof ALERT_EVENT_TYPES)[keyof typeof ALERT_EVENT_TYPES];

export type WebhookEventType = PermissionWebhookEventType | AlertEventType;

export function webhookEventType(permissionEvent: string): PermissionWebhookEventType | null {
  return Object.hasOwn(WEBHOOK_EVENT_TYPES, permissionEvent)
    ? WEBHOOK_EVENT_TYPES[permissionEvent as keyof typeof WEBHOOK_EVENT_TYPES]
    : null;
}

export interface PermissionWebhookPayload {
  type: PermissionWebhookEventType;
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
export function webhookPayload(
  type: PermissionWebhookEventType,
  p: Permission,
  at: Date,
): PermissionWebhookPayload {
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
 * A delivery as it is recorded: pending, due at once. It is written by the same statement or
 * transaction as the state change that causes it (a transactional outbox), so a crash after the
 * commit cannot lose it; the queue job that sends it is added after the commit, and the
 * reconciler re-queues any whose job was lost.
 */
export interface NewWebhookDelivery {
  id: string;
  /** Null for an alert delivery: it belongs to no permission and no agent. */
  permissionId: string | null;
  agentId: string | null;
  url: string;
  eventType: WebhookEventType;
  payload: WebhookPayload;
  createdAt: Date;
}

export function newDelivery(
  owner: { permissionId: string | null; agentId: string | null },
  url: string,
  payload: WebhookPayload,
  now: Date,
  random: RandomBytes = randomBytes,
): NewWebhookDelivery {
  return { id: newDeliveryId(random), ...owner, url, eventType: payload.type, payload, createdAt: now };
}

/**
 * The delivery a permission event sends, or null when it sends none: an event type without a
 * webhook, or no target. The target is the request's webhookUrl, else the agent's
 * (`agentWebhookUrl`: null for an agent that is not active).
 */
export function permissionDelivery(
  event: string,
  permission: Permission,
  agentWebhookUrl: string | null,
  at: Date,
): NewWebhookDelivery | null {
  const type = webhookEventType(event);
  const url = permission.webhookUrl ?? agentWebhookUrl;
  if (!type || !url) return null;
  return newDelivery(
    { permissionId: permission.id, agentId: permission.agentId },
    url,
    webhookPayload(type, permission, at),
    at,
  );
}

export type AlertName = 'denial_rate' | 'unused_token_rate' | 'failed_auth_per_min';

/** One alert crossing its threshold or clearing, as the alert evaluation found it. */
export interface AlertChange {
  name: AlertName;
  kind: 'triggered' | 'cleared';
  /** The measured value (a rate 0..1, or failed authentications in a minute). */
  value: number;
  threshold: number;
  /** The human sentence, as posted to chat without its emoji. */
  summary: string;
}

export interface AlertWebhookPayload {
  type: AlertEventType;
  timestamp: string;
  data: { alert: AlertName; value: number; threshold: number; summary: string };
}

export type WebhookPayload = PermissionWebhookPayload | AlertWebhookPayload;

export function alertWebhookPayload(change: AlertChange, at: Date): AlertWebhookPayload {
  return {
    type: ALERT_EVENT_TYPES[change.kind],
    timestamp: at.toISOString(),
    data: { alert: change.name, value: change.value, threshold: change.threshold, summary: change.summary },
  };
}

const isAlertPayload = (payload: WebhookPayload): payload is AlertWebhookPayload =>
  payload.type === ALERT_EVENT_TYPES.triggered || payload.type === ALERT_EVENT_TYPES.cleared;

/**
 * The body as sent, with the fields in a fixed order (a payload read back from jsonb has its
 * keys reordered), so every attempt of a delivery carries the same bytes.
 */
export function webhookBody(payload: WebhookPayload): string {
  if (isAlertPayload(payload)) {
    const a = payload.data;
    return JSON.stringify({
      type: payload.type,
      timestamp: payload.timestamp,
      data: { alert: a.alert, value: a.value, threshold: a.threshold, summary: a.summary },
    });
  }
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

/** The shortest key accepted from configuration (Standard Webhooks asks for 24 to 64 bytes). */
export const MIN_CONFIGURED_SECRET_BYTES = 24;

/**
 * A secret an operator configures (ALERT_WEBHOOK_SECRET): `whsec_` and the canonical base64 of
 * at least 24 bytes. Canonical, so that the key this server signs with is the key every verifier
 * (the SDK's verifyWebhook, any Standard Webhooks library) decodes from the same text.
 */
export function isConfiguredWebhookSecret(value: string): boolean {
  if (!value.startsWith(WEBHOOK_SECRET_PREFIX)) return false;
  const encoded = value.slice(WEBHOOK_SECRET_PREFIX.length);
  const key = Buffer.from(encoded, 'base64');
  return key.length >= MIN_CONFIGURED_SECRET_BYTES && key.toString('base64') === encoded;
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
