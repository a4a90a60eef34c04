/**
 * The "Approve with changes…" modal for Slack: one input per numeric cap (lower it), one per
 * allow-list (untick entries), and an optional reason. Submissions are parsed back into the
 * platform-neutral NarrowingInput and validated by modificationsFromForm (src/chat/narrowing.ts).
 *
 * Ids: block_id `cap:<key>` / `list:<key>` (a key too long for Slack's 255-char block_id becomes
 * `cap#<sha256 of key>` / `list#…`), action_id `value`, the reason block `reason`. Long or odd
 * allow-list entries are sent as `i:<index>` option values (see listIndexed), mapped back here.
 */
import type {
  Checkboxes,
  InputBlock,
  KnownBlock,
  MultiStaticSelect,
  NumberInput,
  PlainTextInput,
  PlainTextOption,
  View,
} from '@slack/types';
import type { ApprovalCard, NarrowingForm } from '../card.js';
import {
  decimalString,
  FORM_FIELD,
  type FormLayout,
  inputIdOf,
  isCapKey,
  isListKey,
  layoutForm,
  type NarrowingInput,
  REASON_FIELD,
  REASON_MAX_CHARS,
} from '../narrowing.js';
import { escapeTruncate, truncate, truncateMrkdwn } from '../text.js';
import { SLACK_LIMITS } from './render.js';

export const NARROW_CALLBACK_ID = 'aotp_narrow';
export const VALUE_ACTION_ID = 'value';
export const REASON_BLOCK_ID = 'reason';

/** The modal's submission state: `view.state.values` of a view_submission payload. */
export type SlackViewStateValues = Record<
  string,
  Record<
    string,
    {
      type: string;
      value?: string | null;
      selected_options?: { value: string }[] | null;
    }
  >
>;

/** block_id of a cap's input. */
export const capBlockId = (key: string): string => inputIdOf('cap', key, SLACK_LIMITS.blockId);
/** block_id of an allow-list's input. */
export const listBlockId = (key: string): string => inputIdOf('list', key, SLACK_LIMITS.blockId);

/**
 * Whether a list's options use `i:<index>` values instead of the entries themselves: when an entry
 * is too long for an option value, empty, or itself starts with `i:` (which would be ambiguous).
 * Decided per list, from the card alone, so rendering and parsing always agree.
 */
export function listIndexed(values: readonly string[]): boolean {
  return values.some((v) => v === '' || v.length > SLACK_LIMITS.optionValue || v.startsWith('i:'));
}

/** Fixed blocks: summary, hint, "kept" note, reason. */
const FIXED_BLOCKS = 4;

/**
 * Caps and lists given an input, in order; the rest stay as granted. Lists too long for one select,
 * and fields beyond the block budget, are named in `kept`.
 */
function layout(card: ApprovalCard): FormLayout & { kept: string[] } {
  const form = layoutForm(
    card.scope,
    SLACK_LIMITS.modalBlocks - FIXED_BLOCKS,
    (values) => values.length <= SLACK_LIMITS.selectOptions,
  );
  const kept = [
    ...form.keptCaps.map((cap) => cap.label),
    ...form.keptLists.map((list) => `${list.label} (${list.values.length} entries)`),
  ];
  return { ...form, kept };
}

const plain = (text: string, max: number) => ({
  type: 'plain_text' as const,
  text: truncate(text === '' ? ' ' : text, max),
});

function capInput(cap: NarrowingForm['caps'][number]): InputBlock {
  const uses = cap.key === 'max_uses';
  const initial = decimalString(cap.current);
  const element: NumberInput | PlainTextInput = /^\d+(\.\d+)?$/.test(initial)
    ? {
        type: 'number_input',
        action_id: VALUE_ACTION_ID,
        is_decimal_allowed: !uses,
        initial_value: initial,
        min_value: uses ? '1' : '0',
      }
    : { type: 'plain_text_input', action_id: VALUE_ACTION_ID, initial_value: initial, max_length: 100 };
  return {
    type: 'input',
    block_id: capBlockId(cap.key),
    label: plain(cap.label, SLACK_LIMITS.inputLabel),
    hint: plain(
      `Granted: ${initial}. You can only lower it${uses ? ' (a whole number, at least 1)' : ''}.`,
      SLACK_LIMITS.inputHint,
    ),
    element,
  };
}

function options(values: readonly string[]): PlainTextOption[] {
  const indexed = listIndexed(values);
  return values.map((v, i) => ({
    text: plain(v === '' ? '(empty)' : v, SLACK_LIMITS.optionText),
    value: indexed ? `i:${i}` : v,
  }));
}

function listInput(list: NarrowingForm['lists'][number]): InputBlock {
  const opts = options(list.values);
  const element: Checkboxes | MultiStaticSelect =
    opts.length <= SLACK_LIMITS.checkboxOptions
      ? { type: 'checkboxes', action_id: VALUE_ACTION_ID, options: opts, initial_options: opts }
      : {
          type: 'multi_static_select',
          action_id: VALUE_ACTION_ID,
          options: opts,
          initial_options: opts,
          placeholder: plain('Select the entries to keep', 150),
        };
  return {
    type: 'input',
    block_id: listBlockId(list.key),
    optional: true, // an empty selection is allowed: nothing of this kind may be used
    label: plain(list.label, SLACK_LIMITS.inputLabel),
    hint: plain(
      'Untick entries to remove them. Nothing selected means nothing is allowed.',
      SLACK_LIMITS.inputHint,
    ),
    element,
  };
}

/**
 * The "Approve with changes…" modal: callback_id `aotp_narrow`, private_metadata
 * `{"permissionId": …}`. Always within Slack's limits (≤ 100 blocks; fields beyond the budget and
 * lists of more than 100 entries are listed as kept unchanged).
 */
export function renderNarrowingModal(card: ApprovalCard): View {
  const { caps, lists, kept } = layout(card);
  const resource = card.resource ? ` on ${escapeTruncate(card.resource, 1000)}` : '';
  const blocks: KnownBlock[] = [
    {
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: `*${escapeTruncate(card.agentName, 200)}* requests *${escapeTruncate(card.action, 1000)}*${resource}`,
      },
    },
    {
      type: 'context',
      elements: [
        {
          type: 'mrkdwn',
          text:
            caps.length + lists.length === 0
              ? 'Nothing in this scope can be narrowed here; you can still add a reason.'
              : 'Lower a limit or untick entries to narrow the permission. Nothing can be widened.',
        },
      ],
    },
  ];
  blocks.push(...caps.map(capInput), ...lists.map(listInput));
  if (kept.length > 0) {
    const names = kept.map((k) => escapeTruncate(k, 200)).join(', ');
    blocks.push({
      type: 'context',
      elements: [
        {
          type: 'mrkdwn',
          text: `Kept as granted (cannot be edited here): ${truncateMrkdwn(names, 2800)}`,
        },
      ],
    });
  }
  blocks.push({
    type: 'input',
    block_id: REASON_BLOCK_ID,
    optional: true,
    label: plain('Reason (optional)', SLACK_LIMITS.inputLabel),
    element: {
      type: 'plain_text_input',
      action_id: VALUE_ACTION_ID,
      multiline: true,
      max_length: REASON_MAX_CHARS,
    },
  });
  return {
    type: 'modal',
    callback_id: NARROW_CALLBACK_ID,
    private_metadata: JSON.stringify({ permissionId: card.permissionId }),
    title: plain('Approve with changes', SLACK_LIMITS.modalTitle),
    submit: plain('Approve', SLACK_LIMITS.modalButton),
    close: plain('Cancel', SLACK_LIMITS.modalButton),
    blocks,
  };
}

/** The permission id from a submission's private_metadata, or null if it is not ours. */
export function parseNarrowingMetadata(privateMetadata: string): string | null {
  try {
    const parsed: unknown = JSON.parse(privateMetadata);
    if (typeof parsed === 'object' && parsed !== null && 'permissionId' in parsed) {
      const id = (parsed as { permissionId: unknown }).permissionId;
      return typeof id === 'string' && id !== '' ? id : null;
    }
  } catch {
    // not ours
  }
  return null;
}

/**
 * A view_submission's `view.state.values` → the input for modificationsFromForm. Build `card` from
 * the permission as stored now (not from the modal). Inputs missing from the state count as
 * unchanged; option values that map to no granted entry are passed through, so
 * modificationsFromForm refuses them.
 */
export function parseNarrowingSubmission(card: ApprovalCard, values: SlackViewStateValues): NarrowingInput {
  const { caps, lists } = layout(card);
  const input: NarrowingInput = { caps: {}, lists: {} };
  const stateOf = (id: string) => (Object.hasOwn(values, id) ? values[id]?.[VALUE_ACTION_ID] : undefined);
  for (const cap of caps) {
    const state = stateOf(capBlockId(cap.key));
    if (state === undefined) continue;
    input.caps[cap.key] = state.value ?? '';
  }
  for (const list of lists) {
    const state = stateOf(listBlockId(list.key));
    if (state === undefined) continue;
    const indexed = listIndexed(list.values);
    input.lists[list.key] = (state.selected_options ?? []).map((o) => {
      const m = indexed ? /^i:(\d+)$/.exec(o.value) : null;
      const entry = m ? list.values[Number(m[1])] : undefined;
      return indexed ? (entry ?? o.value) : o.value;
    });
  }
  const reason = stateOf(REASON_BLOCK_ID)?.value;
  if (typeof reason === 'string') input.reason = reason;
  return input;
}

/**
 * modificationsFromForm's errors → `{block_id: message}` for `response_action: 'errors'`.
 * Keys that match no input of this modal (and `_form`) go to the reason block, which is always
 * there; pass `card` so fields the modal could not show are recognised too.
 */
export function slackFieldErrors(
  errors: Record<string, string>,
  card?: ApprovalCard,
): Record<string, string> {
  const shown = card ? layout(card) : null;
  const out: Record<string, string> = {};
  for (const key of Object.keys(errors)) {
    const message = errors[key] ?? '';
    let id = REASON_BLOCK_ID;
    if (key !== REASON_FIELD && key !== FORM_FIELD) {
      if (isCapKey(key) && (!shown || shown.caps.some((c) => c.key === key))) id = capBlockId(key);
      else if (isListKey(key) && (!shown || shown.lists.some((l) => l.key === key))) id = listBlockId(key);
    }
    const text =
      id === REASON_BLOCK_ID && key !== REASON_FIELD && key !== FORM_FIELD ? `${key}: ${message}` : message;
    const joined = out[id] === undefined ? text : `${out[id]} · ${text}`;
    out[id] = truncate(joined, 2000);
  }
  return out;
}
