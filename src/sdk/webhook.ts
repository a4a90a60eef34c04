/**
 * Verification of webhook deliveries (DESIGN §9), per Standard Webhooks: the server signs
 * `${webhook-id}.${webhook-timestamp}.${body}` with HMAC-SHA256 under the endpoint's secret
 * (`whsec_<base64 key>`) and sends `webhook-signature: v1,<base64>` (several, space-separated,
 * while a secret is being rotated). A receiver must check the signature over the raw bytes it
 * received — before any JSON parsing — and refuse old timestamps, or a captured delivery could
 * be replayed later. Deliveries carry status, never a token.
 */
import { type Bytes, base64Decode, constantTimeEqual, utf8, webCrypto } from './encoding.js';
import { ValidationError, WebhookVerificationError } from './errors.js';
import type { PermissionStatus, Scope } from './types.js';

export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

export interface VerifyWebhookOptions {
  /** How far the delivery's timestamp may be from now, either way (finite, ≥ 0). @default 300 */
  toleranceSeconds?: number;
  /** "Now", for tests or replays of stored deliveries: a Date or epoch milliseconds. @default Date.now() */
  now?: Date | number;
}

/** A delivery's payload as the server sends it: the event and the permission's state, no token. */
export interface WebhookEvent {
  type:
    | 'permission.approved'
    | 'permission.denied'
    | 'permission.expired'
    | 'permission.used'
    | 'permission.revoked'
    | (string & {});
  /** When the change happened (ISO 8601). */
  timestamp: string;
  data: {
    id: string;
    agentId: string;
    status: PermissionStatus;
    action: string;
    resource: string | null;
    scope: Scope;
    reason: string | null;
    decidedBy: Record<string, unknown> | null;
    expiresAt: string;
    usesRemaining: number;
  };
}

/**
 * A monitoring alert, sent to the server's ALERT_WEBHOOK_URL and signed with its
 * ALERT_WEBHOOK_SECRET: `alert.triggered` when a threshold is crossed, `alert.cleared` when it
 * is no longer. Verify it like any delivery: `verifyWebhook<AlertWebhookEvent>(…)`.
 */
export interface AlertWebhookEvent {
  type: 'alert.triggered' | 'alert.cleared';
  /** When the evaluation found the change (ISO 8601). */
  timestamp: string;
  data: {
    alert: 'denial_rate' | 'unused_token_rate' | 'failed_auth_per_min';
    /** The measured value: a rate (0..1), or failed authentications in one minute. */
    value: number;
    threshold: number;
    /** One human sentence, e.g. "Agent OTP alert: denial rate 62.5% over the last hour (…)." */
    summary: string;
  };
}

const SECRET_PREFIX = 'whsec_';

/**
 * Checks a delivery and returns its parsed JSON payload, or throws WebhookVerificationError
 * (code WEBHOOK_INVALID): answer those with a 4xx and do not act on them. A malformed secret is a
 * configuration error and throws ValidationError instead. Receivers should also drop repeated
 * `webhook-id`s: a delivery may be retried.
 */
export async function verifyWebhook<T = WebhookEvent>(
  rawBody: string | Uint8Array,
  headers: WebhookHeaders,
  secret: string,
  options: VerifyWebhookOptions = {},
): Promise<T> {
  const key = secretKey(secret);
  const id = single(headers, 'webhook-id');
  const timestamp = single(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError('Missing webhook-id, webhook-timestamp or webhook-signature header');
  }

  if (!/^\d{1,15}$/.test(timestamp)) throw new WebhookVerificationError('Invalid webhook-timestamp');
  const { tolerance, nowMs } = timeWindow(options);
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > tolerance) {
    throw new WebhookVerificationError('webhook-timestamp is outside the allowed tolerance');
  }

  const body = typeof rawBody === 'string' ? utf8(rawBody) : rawBody;
  const prefix = utf8(`${id}.${timestamp}.`);
  const signed = new Uint8Array(prefix.length + body.length);
  signed.set(prefix, 0);
  signed.set(body, prefix.length);

  const subtle = webCrypto().subtle;
  const hmacKey = await subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const expected = new Uint8Array(await subtle.sign('HMAC', hmacKey, signed));

  let matched = false;
  for (const entry of signatures.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
    let candidate: Uint8Array;
    try {
      candidate = base64Decode(entry.slice(comma + 1));
    } catch {
      continue;
    }
    // No early exit on a match: every candidate is compared, in constant time each.
    if (constantTimeEqual(candidate, expected)) matched = true;
  }
  if (!matched) throw new WebhookVerificationError('No webhook-signature matches the payload');

  try {
    return JSON.parse(new TextDecoder().decode(body)) as T;
  } catch {
    throw new WebhookVerificationError('The webhook payload is not JSON');
  }
}

/**
 * The replay window, checked both ways. A tolerance or a "now" that is not a finite number would
 * make every comparison false and so accept any timestamp (an invalid Date is NaN): refused as
 * a configuration error rather than silently turning the check off.
 */
function timeWindow(options: VerifyWebhookOptions): { tolerance: number; nowMs: number } {
  const tolerance = options.toleranceSeconds ?? 300;
  if (typeof tolerance !== 'number' || !Number.isFinite(tolerance) || tolerance < 0) {
    throw new ValidationError('toleranceSeconds must be a finite number of seconds, 0 or more');
  }
  const nowMs = options.now === undefined ? Date.now() : Number(options.now);
  if (!Number.isFinite(nowMs)) throw new ValidationError('now must be a valid Date or epoch milliseconds');
  return { tolerance, nowMs };
}

function secretKey(secret: string): Bytes {
  if (typeof secret !== 'string' || secret.length === 0) {
    throw new ValidationError('A webhook secret (whsec_…) is required');
  }
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  let key: Bytes;
  try {
    key = base64Decode(encoded);
  } catch {
    throw new ValidationError('The webhook secret must be whsec_ followed by base64');
  }
  if (key.length === 0) throw new ValidationError('The webhook secret is empty');
  return key;
}

/** A header from a Fetch `Headers` or a Node-style record, whatever the case of its name. */
function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as Headers).get === 'function' && typeof (headers as Headers).has === 'function') {
    return (headers as Headers).get(name) ?? undefined;
  }
  const record = headers as Record<string, string | string[] | undefined>;
  for (const [key, value] of Object.entries(record)) {
    if (key.toLowerCase() !== name || value === undefined) continue;
    return Array.isArray(value) ? value.join(' ') : value;
  }
  return undefined;
}

/** A header that must appear once: repeated ids or timestamps are ambiguous, so refused. */
function single(headers: WebhookHeaders, name: string): string | undefined {
  const value = header(headers, name);
  if (value === undefined) return undefined;
  if (value.includes(',') || value.includes(' ')) {
    throw new WebhookVerificationError(`The ${name} header appears more than once`);
  }
  return value;
}
