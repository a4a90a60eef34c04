/**
 * Every audit event type the service writes. AuditEventInput.type is this union, so a new event
 * type cannot be written without being listed here; the list is what an unknown `event_type`
 * filter answers with (400 VALIDATION_ERROR, details.known) instead of an empty page.
 */
export const AUDIT_EVENT_TYPES = [
  // Permissions: the request and what became of it.
  'request',
  'approve',
  'deny',
  'approval_vote',
  'unauthorized_approver',
  // A chat Approve click on a request whose policy needs a passkey: handed over to the web page.
  'approval_step_up',
  'token_issued',
  'verify',
  'use',
  'use_rejected',
  'revoke',
  'cancel',
  'expire',
  // Agents and keys.
  'agent.created',
  'agent.updated',
  'agent.key_rotated',
  'agent.revoked',
  'agent.deleted',
  // Approver accounts: the persons who decide.
  'approver.created',
  'approver.updated',
  'approver.disabled',
  'approver.enabled',
  'approver.deleted',
  'approver.invited',
  // Signing in on the web with passkeys.
  'passkey.enrolled',
  'passkey.removed',
  'web.signed_in',
  'web.sign_in_failed',
  'web.signed_out',
  'web.csrf_refused',
  // Policies.
  'policy.created',
  'policy.updated',
  'policy.deleted',
  'policy.replaced',
  // Webhooks.
  'webhook.dead',
  'webhook.replayed',
  // The trail itself.
  'audit.exported',
  'audit.redacted',
] as const;

export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

const KNOWN: ReadonlySet<string> = new Set(AUDIT_EVENT_TYPES);

export const isAuditEventType = (value: string): value is AuditEventType => KNOWN.has(value);
