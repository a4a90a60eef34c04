/**
 * The "Approve with changes…" modal for Discord. A Discord modal holds at most 5 rows of text
 * inputs and cannot show per-field errors, so:
 * - the reason takes one row; the numeric caps come next (at most 4: "Max amount (now 100)",
 *   prefilled with the granted value, to be lowered);
 * - an allow-list gets a row only if room is left after the caps, as comma-separated text the
 *   approver trims (entries that cannot round-trip through comma-separated text — empty, with a
 *   comma or line break, with leading/trailing spaces — keep the list out of the modal);
 * - whatever gets no row is kept as granted, and the modal says so (title and reason placeholder);
 * - problems come back as one ephemeral message (discordFieldErrorsMessage).
 * Submissions are parsed into the platform-neutral NarrowingInput and validated by
 * modificationsFromForm (src/chat/narrowing.ts), exactly as for Slack.
 *
 * Ids: modal `aotp:modal:<permissionId>`; inputs `cap:<key>` / `list:<key>` (a key too long for
 * Discord's 100-char custom_id becomes `cap#<sha256 of key>` / `list#…`), and `reason`.
 */
import {
  type APIActionRowComponent,
  type APIModalInteractionResponseCallbackData,
  type APITextInputComponent,
  ComponentType,
  TextInputStyle,
} from 'discord-api-types/v10';
import type { ApprovalCard, NarrowingForm } from '../card.js';
import {
  decimalString,
  FORM_FIELD,
  type FormLayout,
  inputIdOf,
  layoutForm,
  type NarrowingInput,
  narrowingForm,
  REASON_FIELD,
  REASON_MAX_CHARS,
} from '../narrowing.js';
import { truncate } from '../text.js';
import { DISCORD_LIMITS, discordCustomId, escapeTruncate, truncateDiscord } from './render.js';

export const REASON_INPUT_ID = 'reason';
/** Rows left for caps and lists once the reason has its row. */
export const MAX_FIELD_ROWS = DISCORD_LIMITS.modalRows - 1;
export const MODAL_TITLE = 'Approve with changes';
export const MODAL_TITLE_KEPT = 'Approve with changes (some limits kept)';

/** A modal as sent to Discord (`interaction.showModal(...)`). */
export interface DiscordModal extends APIModalInteractionResponseCallbackData {
  components: APIActionRowComponent<APITextInputComponent>[];
}

/** custom_id of a cap's text input. */
export const capInputId = (key: string): string => inputIdOf('cap', key, DISCORD_LIMITS.customId);
/** custom_id of an allow-list's text input. */
export const listInputId = (key: string): string => inputIdOf('list', key, DISCORD_LIMITS.customId);

/** Separator of allow-list entries in the text input. */
const LIST_SEPARATOR = ', ';

/**
 * Whether an allow-list can be edited as comma-separated text: every entry survives
 * split-on-comma-and-trim, and the whole fits in a text input.
 */
export function listEditable(values: readonly string[]): boolean {
  return (
    values.length > 0 &&
    values.every((v) => v !== '' && v === v.trim() && !/[,\r\n]/.test(v)) &&
    values.join(LIST_SEPARATOR).length <= DISCORD_LIMITS.textInputValue
  );
}

/** Comma-separated (or one-per-line) text → the entries, trimmed, empty ones dropped. */
export function parseListText(text: string): string[] {
  return text
    .split(/[,\r\n]/)
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** Which caps and lists get a row (`kept`: labels of the rest, which stay as granted). */
function layout(card: ApprovalCard): FormLayout & { kept: string[] } {
  const form = layoutForm(card.scope, MAX_FIELD_ROWS, listEditable);
  return { ...form, kept: [...form.keptCaps, ...form.keptLists].map((f) => f.label) };
}

const row = (input: APITextInputComponent): APIActionRowComponent<APITextInputComponent> => ({
  type: ComponentType.ActionRow,
  components: [input],
});

/** `label` followed by `suffix`, cut so that the whole fits an input label. */
function label(text: string, suffix = ''): string {
  const max = DISCORD_LIMITS.textInputLabel;
  if (suffix.length > max - 12) return truncate(text, max, '…');
  return truncate(text, max - suffix.length, '…') + suffix;
}

function capInput(cap: NarrowingForm['caps'][number]): APITextInputComponent {
  const value = decimalString(cap.current);
  const uses = cap.key === 'max_uses';
  return {
    type: ComponentType.TextInput,
    custom_id: capInputId(cap.key),
    style: TextInputStyle.Short,
    label: label(cap.label, ` (now ${value})`),
    value,
    required: true,
    max_length: 400,
    placeholder: truncate(
      `Granted: ${value}. You can only lower it${uses ? ' (a whole number, at least 1)' : ''}.`,
      DISCORD_LIMITS.textInputPlaceholder,
      '…',
    ),
  };
}

function listInput(list: NarrowingForm['lists'][number]): APITextInputComponent {
  return {
    type: ComponentType.TextInput,
    custom_id: listInputId(list.key),
    style: TextInputStyle.Paragraph,
    label: label(list.label, ' (remove to trim)'),
    value: list.values.join(LIST_SEPARATOR),
    required: false, // empty: nothing of this kind may be used
    max_length: DISCORD_LIMITS.textInputValue,
    placeholder: 'Comma-separated. Only remove entries; empty means none allowed.',
  };
}

/**
 * The "Approve with changes…" modal (custom_id `aotp:modal:<permissionId>`): ≤ 4 cap inputs,
 * then allow-list inputs while rows remain, then the optional reason. Anything without an input is
 * kept as granted: the title then reads "Approve with changes (some limits kept)" and the reason
 * placeholder names what is kept.
 */
export function renderNarrowingModal(card: ApprovalCard): DiscordModal {
  const { caps, lists, kept } = layout(card);
  const placeholder =
    kept.length > 0
      ? `Optional. Kept as granted: ${kept.join(', ')}`
      : caps.length + lists.length === 0
        ? 'Optional. Nothing here can be narrowed; you can still give a reason.'
        : 'Optional: why you narrowed it.';
  const reason: APITextInputComponent = {
    type: ComponentType.TextInput,
    custom_id: REASON_INPUT_ID,
    style: TextInputStyle.Paragraph,
    label: 'Reason (optional)',
    required: false,
    max_length: REASON_MAX_CHARS,
    placeholder: truncate(placeholder, DISCORD_LIMITS.textInputPlaceholder, '…'),
  };
  return {
    custom_id: discordCustomId('modal', card.permissionId),
    title: kept.length > 0 ? MODAL_TITLE_KEPT : MODAL_TITLE,
    components: [...caps.map(capInput), ...lists.map(listInput), reason].map(row),
  };
}

/**
 * A modal submission (text input custom_id → value) → the input for modificationsFromForm. Build
 * `card` from the permission as stored now. Inputs missing from the submission count as unchanged;
 * list entries that are not granted are passed through, so modificationsFromForm refuses them.
 */
export function parseNarrowingSubmission(card: ApprovalCard, fields: Record<string, string>): NarrowingInput {
  const { caps, lists } = layout(card);
  const input: NarrowingInput = { caps: {}, lists: {} };
  const submitted = (id: string): string | undefined => {
    const v = Object.hasOwn(fields, id) ? fields[id] : undefined;
    return typeof v === 'string' ? v : undefined;
  };
  for (const cap of caps) {
    const value = submitted(capInputId(cap.key));
    if (value !== undefined) input.caps[cap.key] = value;
  }
  for (const list of lists) {
    const value = submitted(listInputId(list.key));
    if (value !== undefined) input.lists[list.key] = parseListText(value);
  }
  const reason = submitted(REASON_INPUT_ID);
  if (reason !== undefined) input.reason = reason;
  return input;
}

/**
 * modificationsFromForm's errors → one ephemeral message listing every problem (Discord modals
 * cannot show errors per input), ≤ 2000 characters. Pass `card` to name fields by their label.
 */
export function discordFieldErrorsMessage(errors: Record<string, string>, card?: ApprovalCard): string {
  const labels = new Map<string, string>();
  if (card) {
    const form = narrowingForm(card.scope);
    for (const f of [...form.caps, ...form.lists]) labels.set(f.key, f.label);
  }
  const lines = Object.keys(errors).map((key) => {
    const message = escapeTruncate(errors[key] ?? '', 400);
    if (key === FORM_FIELD) return `• ${message}`;
    const name = key === REASON_FIELD ? 'Reason' : (labels.get(key) ?? key);
    return `• **${escapeTruncate(name, 100)}**: ${message}`;
  });
  if (lines.length === 0) lines.push('• Something went wrong.');
  const head = 'Not approved — nothing was changed. Please fix this and press “Approve with changes…” again:';
  return truncateDiscord(`${head}\n${lines.join('\n')}`, DISCORD_LIMITS.content);
}

export { decimalString } from '../narrowing.js';
