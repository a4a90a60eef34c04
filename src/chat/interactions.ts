import type { ApprovalCard } from '../core/approval/card.js';
import { describeRefusal, unchangedText } from '../core/approval/refusals.js';
import type { Permission } from '../core/permission.js';
import type { ChannelUser } from '../services/approvals/channel.js';
import type { ApprovalMessages } from '../services/approvals/messages.js';
import type { ApprovalService, DecisionResult } from '../services/approvals/service.js';
import { modificationsFromForm, type NarrowingInput } from './narrowing.js';

/** What a chat channel shows the clicker after a button or a form. */
export type ClickAnswer =
  /** Decided: show the new state (the clicked message, if the channel edits it in its answer). */
  | { kind: 'decided'; permission: Permission }
  /** Nothing decided, or a repeat: a note only the clicker sees. */
  | { kind: 'note'; text: string };

export type FormAnswer =
  | ClickAnswer
  /** The form was filled in wrongly: errors by field key (narrowing.ts), to show on the form. */
  | { kind: 'invalid'; errors: Record<string, string>; card: ApprovalCard };

/**
 * The flow every chat channel shares (DESIGN §13): Approve and Deny buttons, and "Approve with
 * changes…" → form → decision. Channels parse their own payloads and draw their own answers;
 * the steps and the words of a refusal live here once, and every decision goes through
 * ApprovalService.decideAs.
 */
export class ChatInteractions {
  constructor(
    private readonly approvals: ApprovalService,
    private readonly messages: ApprovalMessages,
  ) {}

  async click(user: ChannelUser, permissionId: string, approved: boolean): Promise<ClickAnswer> {
    return answerOf(await this.approvals.decideAs({ kind: 'channel', user }, { permissionId, approved }));
  }

  /** "Approve with changes…" pressed: the card to draw the form from, or why there is none. */
  async openChanges(
    permissionId: string,
  ): Promise<{ kind: 'open'; card: ApprovalCard } | { kind: 'note'; text: string }> {
    const form = await this.approvals.changesForm(permissionId);
    // Only a pending request has a form: one short answer for every other case.
    return form.kind === 'open' ? form : { kind: 'note', text: 'This request is no longer pending.' };
  }

  /**
   * The form submitted: read against the card as stored now (`read` turns the channel's payload
   * into a NarrowingInput), refused field by field if it would widen, else decided.
   */
  async submitChanges(
    user: ChannelUser,
    permissionId: string,
    read: (card: ApprovalCard) => NarrowingInput,
  ): Promise<FormAnswer> {
    const open = await this.openChanges(permissionId);
    if (open.kind === 'note') return open;
    const form = modificationsFromForm(open.card.scope, read(open.card));
    if (!form.ok) return { kind: 'invalid', errors: form.errors, card: open.card };
    const result = await this.approvals.decideAs(
      { kind: 'channel', user },
      {
        permissionId,
        approved: true,
        reason: form.reason ?? undefined,
        scopeModifications: form.scopeModifications,
      },
    );
    return answerOf(result);
  }

  card(permission: Permission): Promise<ApprovalCard> {
    return this.approvals.card(permission);
  }

  /** The channel edited the clicked message itself: the message-update job need not. */
  noteRendered(permission: Permission, channel: string, id: string): Promise<void> {
    return this.messages.noteRendered(permission, channel, id);
  }
}

function answerOf(result: DecisionResult): ClickAnswer {
  switch (result.kind) {
    case 'decided':
      return { kind: 'decided', permission: result.permission };
    case 'unchanged':
      return { kind: 'note', text: unchangedText(result.permission, result.approvals) };
    case 'refused':
      return { kind: 'note', text: describeRefusal(result.refusal) };
  }
}
