import { displayName } from '../approvers.js';
import type { Permission } from '../permission.js';

/**
 * Why a decision was not taken (DESIGN §13). Typed, so each channel words it in its own idiom
 * (an ephemeral chat note, a form error, an HTTP error code); `describeRefusal` is the plain
 * wording chat uses and the audit records.
 */
export type Refusal =
  | { reason: 'not_found' }
  /** The channel the click came through is not configured in this process. */
  | { reason: 'channel_disabled' }
  /** Neither the policy nor any channel's defaults name an approver. */
  | { reason: 'no_approvers' }
  | { reason: 'not_an_approver' }
  /**
   * The policy needs a passkey to approve (step-up): a chat click is handed over to the web page
   * at `url` (null without PUBLIC_URL); `linked` says whether the clicker's identity belongs to an
   * approver account (one who can sign in there), else they need an invitation first.
   */
  | { reason: 'passkey_required'; url: string | null; linked: boolean }
  /** On the web, the session's passkey assertion is too old for a step-up approval. */
  | { reason: 'passkey_stale' }
  /** A web approver whose account is disabled or deleted (their session ends with it). */
  | { reason: 'account_disabled' }
  /** The person the agent acts for may not decide their own request. */
  | { reason: 'self_approval' }
  /** Decided, used, expired, revoked or cancelled already: nothing left to decide. */
  | { reason: 'closed'; permission: Permission };

export const SELF_APPROVAL_TEXT = 'You cannot approve a request made on your behalf.';

export function describeRefusal(refusal: Refusal): string {
  switch (refusal.reason) {
    case 'not_found':
      return 'This request no longer exists.';
    case 'channel_disabled':
      return 'Approvals are not enabled on this platform.';
    case 'no_approvers':
      return 'No approvers are configured for this request.';
    case 'not_an_approver':
      return 'You are not an approver for this request.';
    case 'passkey_required':
      if (!refusal.linked) {
        return 'This request needs a passkey confirmation on the web, and this account is linked to no approver account: ask an operator for an invitation.';
      }
      return refusal.url
        ? `This request needs a passkey confirmation: approve it on the web page ${refusal.url}`
        : 'This request needs a passkey confirmation: approve it on the web page (its link is in the request).';
    case 'passkey_stale':
      return 'This request needs a fresh passkey confirmation: sign in with your passkey again, then approve.';
    case 'account_disabled':
      return 'Your approver account is disabled: ask an operator to enable it.';
    case 'self_approval':
      return SELF_APPROVAL_TEXT;
    case 'closed':
      return closedText(refusal.permission);
  }
}

/** Why a request cannot be decided any more, naming who decided it. */
export function closedText(p: Permission): string {
  const by = p.decidedBy ? ` by ${displayName(p.decidedBy)}` : '';
  switch (p.status) {
    case 'approved':
    case 'used':
      return `This request was already approved${by}.`;
    case 'denied':
      return `This request was already denied${by}.`;
    case 'expired':
      return 'This request has expired.';
    case 'revoked':
      return 'This permission was revoked.';
    case 'cancelled':
      return 'The agent cancelled this request.';
    default:
      return 'This request is still pending.';
  }
}

/** A repeated decision that changed nothing, in words. */
export function unchangedText(p: Permission, approvals: { count: number; required: number }): string {
  return p.status === 'pending'
    ? `Your approval is already counted (${approvals.count}/${approvals.required}).`
    : closedText(p);
}
