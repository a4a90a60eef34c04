/**
 * An ApprovalCard as a Slack message (Block Kit). Pure: the time shown comes from the card.
 *
 * Every string an agent or user controls is escaped (escapeMrkdwn) before it enters mrkdwn, and
 * every text is cut to Slack's limit with a visible marker, so Slack never refuses the message
 * and never renders a mention or link the agent smuggled in. Plain-text objects (header, button
 * labels) are not parsed by Slack and are only cut.
 */
import type {
  ActionsBlock,
  Button,
  ContextBlock,
  KnownBlock,
  MrkdwnElement,
  SectionBlock,
} from '@slack/types';
import type { Actor } from '../../core/audit/index.js';
import { type ApprovalCard, actorName, stateInWords, stateLine } from '../card.js';
import { escapeMrkdwn, escapeTruncate, truncate, truncateMrkdwn } from '../text.js';

/** Slack's limits (Block Kit reference), enforced by the renderers and checked by the tests. */
export const SLACK_LIMITS = {
  messageBlocks: 50,
  modalBlocks: 100,
  messageText: 40_000,
  fallbackText: 300,
  headerText: 150,
  sectionText: 3000,
  sectionFields: 10,
  fieldText: 2000,
  contextElements: 10,
  contextText: 3000,
  buttonText: 75,
  actionId: 255,
  blockId: 255,
  buttonValue: 255,
  modalTitle: 24,
  modalButton: 24,
  privateMetadata: 3000,
  inputLabel: 2000,
  inputHint: 2000,
  optionText: 75,
  optionValue: 150,
  checkboxOptions: 10,
  selectOptions: 100,
} as const;

export const DEFAULT_ACTION_PREFIX = 'aotp_';

/** The action_ids of the three buttons, for the adapter's `app.action(...)` handlers. */
export function slackActionIds(prefix: string = DEFAULT_ACTION_PREFIX) {
  return {
    approve: `${prefix}approve`,
    deny: `${prefix}deny`,
    approveWithChanges: `${prefix}approve_changes`,
  } as const;
}

const SLACK_USER_ID = /^[UW][A-Z0-9]{2,30}$/;

/** Does `value` look like a Slack user id (U…/W…)? Such values render as a mention. */
export const isSlackUserId = (value: string): boolean => SLACK_USER_ID.test(value);

/** Who acted, as mrkdwn: a Slack approver as a mention, anyone else by escaped name. */
export function slackActor(actor: Actor | null): string {
  if (actor?.platform === 'slack' && actor.userId && isSlackUserId(actor.userId)) return `<@${actor.userId}>`;
  return escapeTruncate(actorName(actor), 200);
}

const validDate = (d: Date): boolean => d instanceof Date && Number.isFinite(d.getTime());

const isoSeconds = (d: Date): string =>
  validDate(d) ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : 'an unknown time';

/** A date Slack shows in the reader's time zone, with the ISO time as the fallback. */
export function slackDate(date: Date, format = '{date_short_pretty} {time}'): string {
  if (!validDate(date)) return 'an unknown time';
  return `<!date^${Math.floor(date.getTime() / 1000)}^${format}|${isoSeconds(date)}>`;
}

interface Row {
  label: string;
  value: string;
}

const mrkdwn = (text: string): MrkdwnElement => ({ type: 'mrkdwn', text });

/** One `*label*\nvalue` field; both parts raw (escaped here), cut to the field limit. */
function field(row: Row): MrkdwnElement {
  const label = escapeTruncate(row.label, 200);
  const value = escapeTruncate(row.value === '' ? ' ' : row.value, SLACK_LIMITS.fieldText - label.length - 3);
  return mrkdwn(`*${label}*\n${value}`);
}

/**
 * Rows as sections of fields (2 columns), at most `maxSections` blocks. If the rows do not fit,
 * the last field says how many were left out. The first section carries `title`.
 */
function rowSections(title: string, rows: Row[], maxSections: number, noun: string): SectionBlock[] {
  const per = SLACK_LIMITS.sectionFields;
  const capacity = Math.max(1, maxSections) * per;
  let fields: MrkdwnElement[];
  if (rows.length <= capacity) fields = rows.map(field);
  else {
    const shown = rows.slice(0, capacity - 1).map(field);
    fields = [...shown, mrkdwn(`_…and ${rows.length - shown.length} more ${noun}_`)];
  }
  const sections: SectionBlock[] = [];
  for (let i = 0; i < fields.length; i += per) {
    const section: SectionBlock = { type: 'section', fields: fields.slice(i, i + per) };
    if (i === 0) section.text = mrkdwn(title);
    sections.push(section);
  }
  return sections;
}

const section = (text: string): SectionBlock => ({
  type: 'section',
  text: mrkdwn(truncateMrkdwn(text, SLACK_LIMITS.sectionText)),
});

const context = (texts: string[]): ContextBlock => ({
  type: 'context',
  elements: texts
    .slice(0, SLACK_LIMITS.contextElements)
    .map((t) => mrkdwn(truncateMrkdwn(t, SLACK_LIMITS.contextText))),
});

/** The state line (mrkdwn) shown instead of the buttons once the request is decided. */
export function slackStateLine(card: ApprovalCard): string | null {
  return stateLine(card.state, {
    actor: slackActor,
    time: (date) => slackDate(date),
    expiry: (date) => slackDate(date),
    reason: (text) => escapeTruncate(text, 2000),
  });
}

/** The notification fallback: plain words (escaped, since Slack parses `text` too), ≤ 300. */
function fallbackText(card: ApprovalCard): string {
  const resource = card.resource ? ` on ${truncate(card.resource, 80)}` : '';
  const raw = `${truncate(card.agentName, 60)} requests ${truncate(card.action, 80)}${resource}: ${stateInWords(card.state)}`;
  return escapeTruncate(raw, SLACK_LIMITS.fallbackText);
}

function requester(value: string): string {
  const v = value.trim();
  return isSlackUserId(v) ? `<@${v}>` : escapeTruncate(v, 500);
}

/**
 * The approval message: header, summary (agent, action, resource, requester, policy), reason,
 * scope rows, context rows, a context line (deadline, id) and — while pending — the quorum line
 * and the Approve / Deny / Approve with changes… buttons (each with `value` = the permission id);
 * otherwise a state line. Within every Slack limit, whatever the card holds.
 */
export function renderSlackMessage(
  card: ApprovalCard,
  opts: { actionPrefix?: string } = {},
): { text: string; blocks: KnownBlock[] } {
  const ids = slackActionIds(opts.actionPrefix ?? DEFAULT_ACTION_PREFIX);
  for (const id of Object.values(ids)) {
    if (id.length > SLACK_LIMITS.actionId) throw new Error(`Slack action_id too long: ${id.length}`);
  }
  if (card.permissionId.length > SLACK_LIMITS.buttonValue) {
    throw new Error(`Permission id too long for a Slack button value: ${card.permissionId.length}`);
  }
  const pending = card.state.kind === 'pending' ? card.state : null;

  const head: KnownBlock[] = [];
  head.push({
    type: 'header',
    text: {
      type: 'plain_text',
      text: truncate(`🔐 ${card.agentName} requests ${card.action}`, SLACK_LIMITS.headerText),
      emoji: true,
    },
  });
  const summary: Row[] = [
    {
      label: 'Agent',
      value: card.agentName === card.agentId ? card.agentId : `${card.agentName} (${card.agentId})`,
    },
    { label: 'Action', value: card.action },
    { label: 'Resource', value: card.resource ?? '—' },
  ];
  const summaryFields = summary.map(field);
  if (card.requestedBy?.trim()) summaryFields.push(mrkdwn(`*Requested by*\n${requester(card.requestedBy)}`));
  summaryFields.push(
    card.policyName === null
      ? mrkdwn('*Policy*\n_none (default approvers)_')
      : field({ label: 'Policy', value: card.policyName }),
  );
  head.push({ type: 'section', fields: summaryFields });
  const reason = card.reason?.trim();
  if (reason) head.push(section(`*Reason*\n${escapeTruncate(reason, SLACK_LIMITS.sectionText - 20)}`));

  const tail: KnownBlock[] = [];
  const meta: string[] = [];
  if (pending) meta.push(`⏳ Decide by ${slackDate(card.expiresAt)}`);
  meta.push(`ID: ${escapeMrkdwn(card.permissionId)}`);
  tail.push(context(meta));
  if (pending) {
    if (pending.required > 1) tail.push(context([`Approvals: ${pending.approvals}/${pending.required}`]));
    const button = (text: string, actionId: string, style?: 'primary' | 'danger'): Button => ({
      type: 'button',
      text: { type: 'plain_text', text: truncate(text, SLACK_LIMITS.buttonText), emoji: true },
      action_id: actionId,
      value: card.permissionId,
      ...(style ? { style } : {}),
    });
    const actions: ActionsBlock = {
      type: 'actions',
      block_id: truncate(`aotp_actions:${card.permissionId}`, SLACK_LIMITS.blockId, ''),
      elements: [
        button('Approve', ids.approve, 'primary'),
        button('Deny', ids.deny, 'danger'),
        button('Approve with changes…', ids.approveWithChanges),
      ],
    };
    tail.push(actions);
  } else {
    tail.push(section(slackStateLine(card) ?? ''));
  }

  // Scope and context rows share what is left of the 50 blocks; the scope comes first.
  const budget = SLACK_LIMITS.messageBlocks - head.length - tail.length;
  const contextRows: Row[] = card.context
    .filter((c) => !(reason && c.key === 'reason' && c.value.trim() === reason))
    .map((c) => ({ label: c.key, value: c.value }));
  const per = SLACK_LIMITS.sectionFields;
  const contextNeed = Math.ceil(contextRows.length / per);
  const scopeNeed = Math.max(1, Math.ceil(card.scopeRows.length / per));
  const scopeBlocks = Math.min(scopeNeed, budget - Math.min(contextNeed, 1));
  const contextBlocks = Math.min(contextNeed, budget - scopeBlocks);

  const scopeSections =
    card.scopeRows.length === 0
      ? [section('*Scope*\n_No limits beyond a single use_')]
      : rowSections(
          '*Scope*',
          card.scopeRows.map((r) => ({ label: r.label, value: r.value })),
          scopeBlocks,
          'scope limits',
        );
  const contextSections =
    contextRows.length === 0 ? [] : rowSections('*Context*', contextRows, contextBlocks, 'context entries');

  return {
    text: fallbackText(card),
    blocks: [...head, ...scopeSections, ...contextSections, ...tail],
  };
}
