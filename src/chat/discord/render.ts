/**
 * An ApprovalCard as a Discord message: a short plain `content` line, one embed and — while
 * pending — one action row with Approve / Deny / Approve with changes…. Pure: the time shown comes
 * from the card.
 *
 * Every string an agent or user controls is escaped (escapeDiscord) so it cannot format, disguise
 * a link, or render/ping a mention, and every text is cut to Discord's limit with a visible marker
 * (including the 6000-character total of an embed), so Discord never refuses the message. The
 * result also carries `allowedMentions: {parse: []}` as a second line of defence: pass it on.
 *
 * Custom ids: `aotp:<approve|deny|changes|modal>:<permissionId>` (see parseCustomId).
 */
import {
  type APIActionRowComponent,
  type APIAllowedMentions,
  type APIButtonComponentWithCustomId,
  type APIComponentInMessageActionRow,
  type APIEmbed,
  type APIEmbedField,
  ButtonStyle,
  ComponentType,
} from 'discord-api-types/v10';
import type { Actor } from '../../core/audit/index.js';
import { type ApprovalCard, actorName, stateInWords, stateLine } from '../card.js';
import { TRUNCATION_MARKER, truncate } from '../text.js';

/** Discord's limits (API reference: embeds, components, modals), enforced here and in modal.ts. */
export const DISCORD_LIMITS = {
  content: 2000,
  embedTitle: 256,
  embedDescription: 4096,
  embedFields: 25,
  fieldName: 256,
  fieldValue: 1024,
  footerText: 2048,
  /** Sum of title, description, field names and values, footer text and author name. */
  embedTotal: 6000,
  actionRows: 5,
  rowButtons: 5,
  buttonLabel: 80,
  customId: 100,
  modalTitle: 45,
  modalRows: 5,
  textInputLabel: 45,
  textInputPlaceholder: 100,
  textInputValue: 4000,
} as const;

export const CUSTOM_ID_PREFIX = 'aotp';

export type DiscordCustomIdKind = 'approve' | 'deny' | 'changes' | 'modal';
const KINDS: readonly DiscordCustomIdKind[] = ['approve', 'deny', 'changes', 'modal'];

/** What a permission id may look like inside a custom_id (our ids are `perm_` + base62). */
const PERMISSION_ID = /^[A-Za-z0-9_-]+$/;

/** Embed colours by state. */
export const DISCORD_COLORS = {
  pending: 0xf5a623,
  approved: 0x57f287,
  denied: 0xed4245,
  other: 0x95a5a6,
} as const;

/**
 * `aotp:<kind>:<permissionId>`. Throws for a permission id that parseCustomId would not accept
 * or that makes the id longer than Discord's 100 characters: a button we could not route back.
 */
export function discordCustomId(kind: DiscordCustomIdKind, permissionId: string): string {
  const id = `${CUSTOM_ID_PREFIX}:${kind}:${permissionId}`;
  if (!PERMISSION_ID.test(permissionId)) throw new Error('Permission id not usable in a Discord custom_id');
  if (id.length > DISCORD_LIMITS.customId) throw new Error(`Discord custom_id too long: ${id.length}`);
  return id;
}

/**
 * A button's or modal's custom_id → what it asks for, or null when it is not one of ours (other
 * prefix, unknown kind, empty or malformed permission id, longer than Discord allows).
 */
export function parseCustomId(customId: string): { kind: DiscordCustomIdKind; permissionId: string } | null {
  if (typeof customId !== 'string' || customId.length > DISCORD_LIMITS.customId) return null;
  const m = /^aotp:([a-z]+):([^:]+)$/.exec(customId);
  if (!m) return null;
  const kind = KINDS.find((k) => k === m[1]);
  const permissionId = m[2] ?? '';
  if (!kind || !PERMISSION_ID.test(permissionId)) return null;
  return { kind, permissionId };
}

/**
 * Escapes agent- or user-controlled text for Discord markdown: inline formatting (`* _ ~ \` |`),
 * masked links (`[…](…)`) and line-start syntax (headings, quotes, lists) get a backslash; every
 * `<` gets a zero-width space after it, so `<@id>`, `<@&id>`, `<#id>`, `<t:…>` and custom emoji
 * stay plain text; `@everyone` / `@here` get one after the `@`.
 */
export function escapeDiscord(text: string): string {
  return text
    .replace(/[\\*_~`|[\]]/g, '\\$&')
    .replace(/^([ \t]*)(?:([#>+-])|(\d+)\.)/gm, (_m, indent: string, mark?: string, num?: string) =>
      mark === undefined ? `${indent}${num ?? ''}\\.` : `${indent}\\${mark}`,
    )
    .replace(/</g, '<\u200b')
    .replace(/@(everyone|here)/gi, '@\u200b$1');
}

/**
 * Cuts text that is already escaped (or markdown we composed around escaped text) to `max`,
 * never leaving a dangling backslash that would escape the marker.
 */
export function truncateDiscord(markdown: string, max: number): string {
  if (markdown.length <= max) return markdown;
  const cut = truncate(markdown, max);
  if (!cut.endsWith(TRUNCATION_MARKER)) return cut;
  let head = cut.slice(0, cut.length - TRUNCATION_MARKER.length);
  const slashes = /\\+$/.exec(head)?.[0].length ?? 0;
  if (slashes % 2 === 1) head = head.slice(0, -1);
  return head + TRUNCATION_MARKER;
}

/** escapeDiscord, then cut to `max` (after escaping, so the result really fits). */
export const escapeTruncate = (text: string, max: number): string =>
  truncateDiscord(escapeDiscord(text), max);

const SNOWFLAKE = /^\d{17,20}$/;

/** Does `value` look like a Discord user id (a snowflake)? Such values render as a mention. */
export const isDiscordUserId = (value: string): boolean => SNOWFLAKE.test(value);

/** Who acted: a Discord approver as `<@id>`, anyone else by escaped name. */
export function discordActor(actor: Actor | null): string {
  if (actor?.platform === 'discord' && actor.userId && isDiscordUserId(actor.userId)) {
    return `<@${actor.userId}>`;
  }
  return escapeTruncate(actorName(actor), 100);
}

const validDate = (d: Date): boolean => d instanceof Date && Number.isFinite(d.getTime());

/** A Discord timestamp (`<t:UNIX:style>`), shown in the reader's time zone. */
export function discordTimestamp(date: Date, style: 't' | 'T' | 'd' | 'D' | 'f' | 'F' | 'R' = 'f'): string {
  if (!validDate(date)) return 'an unknown time';
  return `<t:${Math.floor(date.getTime() / 1000)}:${style}>`;
}

const when = (date: Date): string =>
  validDate(date) ? `${discordTimestamp(date, 'f')} (${discordTimestamp(date, 'R')})` : 'an unknown time';

/** The state line shown in the embed once the request is decided; null while pending. */
export function discordStateLine(card: ApprovalCard): string | null {
  return stateLine(card.state, {
    actor: discordActor,
    time: (date) => discordTimestamp(date),
    expiry: (date) => discordTimestamp(date, 't'),
    reason: (text) => escapeTruncate(text, 300),
  });
}

function colorOf(card: ApprovalCard): number {
  switch (card.state.kind) {
    case 'pending':
      return DISCORD_COLORS.pending;
    case 'approved':
      return DISCORD_COLORS.approved;
    case 'denied':
      return DISCORD_COLORS.denied;
    default:
      return DISCORD_COLORS.other;
  }
}

/** The characters Discord counts against an embed's 6000. */
export function embedLength(embed: APIEmbed): number {
  let n = (embed.title ?? '').length + (embed.description ?? '').length;
  n += (embed.footer?.text ?? '').length + (embed.author?.name ?? '').length;
  for (const f of embed.fields ?? []) n += f.name.length + f.value.length;
  return n;
}

/** One row of a packed field: `head` (our markdown) and `body` (escaped), cut only in the body. */
interface Line {
  head: string;
  body: string;
}

/** Longest a single row's value may be before packing. */
const LINE_BODY_MAX = 900;
/** Room kept for the "…and N more" line. */
const MORE_RESERVE = 48;
/** A row is cut to fit only if at least this much of its value remains visible. */
const MIN_CUT_BODY = 60;

const line = (label: string, value: string): Line => ({
  head: `**${escapeTruncate(label, 100)}:** `,
  body: value.trim() === '' ? '—' : escapeTruncate(value, LINE_BODY_MAX),
});

const lineLength = (l: Line): number => l.head.length + l.body.length;

/** About what `lines` take packed: for dividing the budget between scope and context. */
const packedNeed = (title: string, lines: Line[]): number =>
  lines.reduce((n, l) => n + lineLength(l) + 1, 0) +
  Math.ceil(lines.reduce((n, l) => n + lineLength(l) + 1, 0) / DISCORD_LIMITS.fieldValue) *
    (title.length + 8);

/**
 * Rows as lines packed into fields (`title`, then `title (cont.)`), each value ≤ 1024, at most
 * `maxFields` fields and `budget` characters (names and values). Rows that do not fit are
 * collapsed into a last line "…and N more <noun>"; the first row that does not fit is cut instead
 * when enough of it would still show.
 */
function packFields(
  title: string,
  lines: Line[],
  budget: number,
  maxFields: number,
  noun: string,
): APIEmbedField[] {
  if (lines.length === 0 || maxFields < 1) return [];
  const nameOf = (i: number): string => (i === 0 ? title : `${title} (cont.)`);
  const fields: { name: string; lines: string[]; length: number }[] = [];
  let used = 0;
  let shown = 0;
  for (const l of lines) {
    const reserve = shown === lines.length - 1 ? 0 : MORE_RESERVE;
    const current = fields.at(-1);
    const full = l.head + l.body;
    // Room in the current field, and in a new one.
    const inCurrent = current
      ? Math.min(DISCORD_LIMITS.fieldValue - current.length - 1, budget - used - 1) - reserve
      : -1;
    const canOpen = fields.length < maxFields;
    const inNew = canOpen
      ? Math.min(DISCORD_LIMITS.fieldValue, budget - used - nameOf(fields.length).length) - reserve
      : -1;
    let target: 'current' | 'new' | null = null;
    let text = full;
    if (full.length <= inCurrent) target = 'current';
    else if (full.length <= inNew) target = 'new';
    else {
      const room = Math.max(inCurrent, inNew);
      if (room - l.head.length >= MIN_CUT_BODY) {
        text = l.head + truncateDiscord(l.body, room - l.head.length);
        target = room === inCurrent ? 'current' : 'new';
      }
    }
    if (target === null) break;
    if (target === 'current' && current) {
      current.lines.push(text);
      current.length += text.length + 1;
      used += text.length + 1;
    } else {
      const name = nameOf(fields.length);
      fields.push({ name, lines: [text], length: text.length });
      used += name.length + text.length;
    }
    shown++;
    if (text !== full) break;
  }
  if (shown < lines.length) {
    const more = (n: number): string => `*…and ${n} more ${noun}*`;
    const last = fields.at(-1);
    const extra = more(lines.length - shown).length + 1;
    // Placing a row kept MORE_RESERVE free in the budget and its field, so this normally fits.
    if (last && last.length + extra <= DISCORD_LIMITS.fieldValue && used + extra <= budget) {
      last.lines.push(more(lines.length - shown));
    } else if (fields.length < maxFields && budget - used >= nameOf(fields.length).length + MORE_RESERVE) {
      fields.push({ name: nameOf(fields.length), lines: [more(lines.length - shown)], length: 0 });
    }
  }
  return fields.map((f) => ({ name: f.name, value: f.lines.join('\n') }));
}

function requester(value: string): string {
  const v = value.trim();
  return isDiscordUserId(v) ? `<@${v}>` : escapeTruncate(v, 200);
}

/** The message to send (or edit) for a card: pass all four properties to discord.js. */
export interface DiscordMessage {
  content: string;
  embeds: APIEmbed[];
  /** Empty unless pending: an edit with `[]` removes the buttons. */
  components: APIActionRowComponent<APIComponentInMessageActionRow>[];
  /** Always `{parse: []}`: nothing in the message may ping anyone. */
  allowedMentions: APIAllowedMentions;
}

/**
 * The approval message: content line; embed with title "<agent> wants to <action>", description
 * (resource, reason, then the quorum or state line), fields (agent, requested by, policy, deadline
 * or expiry, scope rows, context rows), footer with the permission id and a colour by state; while
 * pending, the three buttons. Within every Discord limit, whatever the card holds.
 */
export function renderDiscordMessage(card: ApprovalCard): DiscordMessage {
  const L = DISCORD_LIMITS;
  const pending = card.state.kind === 'pending' ? card.state : null;
  const approveId = discordCustomId('approve', card.permissionId);
  const denyId = discordCustomId('deny', card.permissionId);
  const changesId = discordCustomId('changes', card.permissionId);

  const title = truncateDiscord(
    `${escapeTruncate(card.agentName, 80)} wants to ${escapeTruncate(card.action, 160)}`,
    L.embedTitle,
  );

  const description: string[] = [];
  if (card.resource?.trim()) description.push(`**Resource:** ${escapeTruncate(card.resource, 400)}`);
  const reason = card.reason?.trim();
  if (reason) description.push(`**Reason:** ${escapeTruncate(reason, 1500)}`);
  if (pending && pending.required > 1) {
    description.push(`👥 Approvals: ${pending.approvals}/${pending.required}`);
  }
  const stateLine = discordStateLine(card);
  if (stateLine) description.push(stateLine);

  const fixed: APIEmbedField[] = [];
  fixed.push({
    name: 'Agent',
    value:
      card.agentName === card.agentId
        ? escapeTruncate(card.agentId, 200)
        : `${escapeTruncate(card.agentName, 100)} (${escapeTruncate(card.agentId, 100)})`,
    inline: true,
  });
  if (card.requestedBy?.trim())
    fixed.push({ name: 'Requested by', value: requester(card.requestedBy), inline: true });
  fixed.push({
    name: 'Policy',
    value:
      card.policyName === null ? '*none (default approvers)*' : escapeTruncate(card.policyName || '—', 200),
    inline: true,
  });
  if (pending) fixed.push({ name: 'Decide by', value: when(card.expiresAt), inline: true });
  else if (card.state.kind === 'approved') {
    fixed.push({ name: 'Expires', value: when(card.state.expiresAt), inline: true });
  }

  const embed: APIEmbed = {
    title,
    color: colorOf(card),
    footer: { text: truncate(`ID: ${card.permissionId}`, L.footerText) },
  };
  if (description.length > 0) embed.description = truncateDiscord(description.join('\n'), L.embedDescription);
  embed.fields = fixed; // counted below; the scope and context fields are added after them

  // Scope and context rows share what is left of the 6000 characters and 25 fields.
  const remaining = L.embedTotal - embedLength(embed);
  const fieldsLeft = L.embedFields - fixed.length;
  const scopeLines =
    card.scopeRows.length === 0
      ? [{ head: '', body: '*No limits beyond a single use*' }]
      : card.scopeRows.map((r) => line(r.label, r.value));
  const contextLines = card.context
    .filter((c) => !(reason && c.key === 'reason' && c.value.trim() === reason))
    .map((c) => line(c.key, c.value));
  const contextNeed = contextLines.length === 0 ? 0 : packedNeed('Context', contextLines);
  const scopeNeed = packedNeed('Scope', scopeLines);
  const contextShare =
    contextNeed === 0
      ? 0
      : Math.min(contextNeed, Math.max(Math.floor(remaining * 0.35), remaining - scopeNeed));
  const scopeFields = packFields(
    'Scope',
    scopeLines,
    remaining - contextShare,
    fieldsLeft - (contextLines.length > 0 ? 1 : 0),
    'scope limits',
  );
  const scopeUsed = scopeFields.reduce((n, f) => n + f.name.length + f.value.length, 0);
  const contextFields = packFields(
    'Context',
    contextLines,
    remaining - scopeUsed,
    fieldsLeft - scopeFields.length,
    'context entries',
  );
  embed.fields = [...fixed, ...scopeFields, ...contextFields];

  const components: APIActionRowComponent<APIComponentInMessageActionRow>[] = [];
  if (pending) {
    const button = (
      label: string,
      customId: string,
      style: ButtonStyle.Success | ButtonStyle.Danger | ButtonStyle.Secondary,
    ): APIButtonComponentWithCustomId => ({
      type: ComponentType.Button,
      style,
      label: truncate(label, L.buttonLabel),
      custom_id: customId,
    });
    components.push({
      type: ComponentType.ActionRow,
      components: [
        button('Approve', approveId, ButtonStyle.Success),
        button('Deny', denyId, ButtonStyle.Danger),
        button('Approve with changes…', changesId, ButtonStyle.Secondary),
      ],
    });
  }

  const resource = card.resource?.trim() ? ` on ${escapeTruncate(card.resource.trim(), 150)}` : '';
  const content = truncateDiscord(
    `Approval requested: ${escapeTruncate(card.agentName, 80)} wants to ${escapeTruncate(card.action, 150)}` +
      `${resource} — ${stateInWords(card.state, discordActor)}`,
    500,
  );

  return { content, embeds: [embed], components, allowedMentions: { parse: [] } };
}
