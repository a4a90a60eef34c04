import type { CardState } from '../core/approval/card.js';
import { displayName } from '../core/approvers.js';
import type { Actor } from '../core/audit/index.js';

export type { ApprovalCard, CardState, NarrowingForm } from '../core/approval/card.js';

/** A display name for an actor: the chat user's name, an operator's name, or the policy. */
export const actorName: (actor: Actor | null) => string = displayName;

/**
 * The state in a few plain words, for notification text and content lines. `actor` renders the
 * decider in the platform's own way (a mention on Discord, a name in Slack's plain fallback).
 */
export function stateInWords(state: CardState, actor: (a: Actor | null) => string = actorName): string {
  switch (state.kind) {
    case 'pending':
      return state.required > 1
        ? `approval needed (${state.approvals}/${state.required})`
        : 'approval needed';
    case 'approved':
      return `approved by ${actor(state.by)}`;
    case 'denied':
      return `denied by ${actor(state.by)}`;
    case 'used':
      return 'used';
    case 'expired':
      return state.unused ? 'expired unused' : 'expired';
    case 'revoked':
      return 'revoked';
    case 'cancelled':
      return 'cancelled by the agent';
  }
}

/** How a platform writes the parts of a state line: people, times, and a denial reason. */
export interface StateLineStyle {
  actor(actor: Actor | null): string;
  /** When a request was used, revoked or cancelled. */
  time(date: Date): string;
  /** When an approved token expires. */
  expiry(date: Date): string;
  /** A denial reason, trimmed and non-empty, escaped and cut for the platform. */
  reason(text: string): string;
}

/** The state line shown instead of the buttons once the request is decided; null while pending. */
export function stateLine(state: CardState, style: StateLineStyle): string | null {
  switch (state.kind) {
    case 'pending':
      return null;
    case 'approved':
      return `✅ Approved by ${style.actor(state.by)} · expires ${style.expiry(state.expiresAt)}`;
    case 'denied': {
      const reason = state.reason?.trim() ? ` — ${style.reason(state.reason.trim())}` : '';
      return `❌ Denied by ${style.actor(state.by)}${reason}`;
    }
    case 'used':
      return `☑️ Used ${style.time(state.at)}`;
    case 'expired':
      return state.unused ? '⌛ Expired unused' : '⌛ Expired';
    case 'revoked':
      return `🚫 Revoked ${style.time(state.at)}`;
    case 'cancelled':
      return `Cancelled by the agent ${style.time(state.at)}`;
  }
}
