import { ButtonStyle, ComponentType, TextInputStyle } from 'discord-api-types/v10';
import { describe, expect, it } from 'vitest';
import type { ApprovalCard, CardState } from '../../../src/chat/card.js';
import {
  type DiscordModal,
  decimalString,
  discordFieldErrorsMessage,
  parseNarrowingSubmission,
  renderNarrowingModal,
} from '../../../src/chat/discord/modal.js';
import {
  DISCORD_COLORS,
  DISCORD_LIMITS,
  type DiscordMessage,
  embedLength,
  escapeDiscord,
  parseCustomId,
  renderDiscordMessage,
} from '../../../src/chat/discord/render.js';
import { modificationsFromForm } from '../../../src/chat/narrowing.js';
import {
  parseNarrowingSubmission as parseSlackSubmission,
  type SlackViewStateValues,
} from '../../../src/chat/slack/modal.js';
import { CARD_EXPIRES, CARD_PERMISSION_ID, chatCard } from '../../helpers/chatCard.js';

const L = DISCORD_LIMITS;
const PERM = CARD_PERMISSION_ID;
const EXPIRES = CARD_EXPIRES;
const AT = new Date('2024-01-15T12:01:00Z');
const EXP_S = EXPIRES.getTime() / 1000;
const AT_S = AT.getTime() / 1000;
const DISCORD_APPROVER = {
  type: 'approver' as const,
  platform: 'discord' as const,
  userId: '123456789012345678',
  userName: 'alice',
};

const card = (overrides: Partial<ApprovalCard> = {}): ApprovalCard =>
  chatCard({ requestedBy: '987654321098765432', ...overrides });

// ---------------------------------------------------------------------------------------------
// A generic checker of Discord's message limits, and of mention safety.

/** Every `<…>` must be one we generated (a user mention or a timestamp); no bare mass mention. */
function checkMarkdown(problems: string[], where: string, text: string): void {
  // An escaped `<` is followed by a zero-width space: plain text. Any other must open our token.
  for (const token of text.match(/<(?!\u200b)[^>]*>?/g) ?? []) {
    if (!/^<@\d{17,20}>$/.test(token) && !/^<t:\d+:[tTdDfFR]>$/.test(token)) {
      problems.push(`${where}: unexpected token ${token.slice(0, 40)}`);
    }
  }
  if (/@(everyone|here)/i.test(text)) problems.push(`${where}: bare mass mention`);
  if (/(^|[^\\])\]\(/.test(text)) problems.push(`${where}: masked link`);
}

function checkLength(problems: string[], where: string, text: string | undefined, max: number, min = 1) {
  if (text === undefined) return;
  if (text.length > max) problems.push(`${where}: ${text.length} > ${max}`);
  if (text.trim().length < min) problems.push(`${where}: empty`);
}

function checkMessage(msg: DiscordMessage): string[] {
  const problems: string[] = [];
  checkLength(problems, 'content', msg.content, L.content);
  checkMarkdown(problems, 'content', msg.content);
  if (msg.embeds.length !== 1) problems.push(`${msg.embeds.length} embeds`);
  for (const [i, e] of msg.embeds.entries()) {
    const w = `embeds[${i}]`;
    checkLength(problems, `${w}.title`, e.title, L.embedTitle);
    checkLength(problems, `${w}.description`, e.description, L.embedDescription);
    checkLength(problems, `${w}.footer`, e.footer?.text, L.footerText);
    checkMarkdown(problems, `${w}.title`, e.title ?? '');
    checkMarkdown(problems, `${w}.description`, e.description ?? '');
    const fields = e.fields ?? [];
    if (fields.length > L.embedFields) problems.push(`${w}: ${fields.length} fields`);
    fields.forEach((f, j) => {
      checkLength(problems, `${w}.fields[${j}].name`, f.name, L.fieldName);
      checkLength(problems, `${w}.fields[${j}].value`, f.value, L.fieldValue);
      checkMarkdown(problems, `${w}.fields[${j}]`, f.name + f.value);
    });
    const total = embedLength(e);
    const recount =
      (e.title ?? '').length +
      (e.description ?? '').length +
      (e.footer?.text ?? '').length +
      fields.reduce((n, f) => n + f.name.length + f.value.length, 0);
    if (total !== recount || total > L.embedTotal) problems.push(`${w}: total ${recount} > ${L.embedTotal}`);
    if (typeof e.color !== 'number') problems.push(`${w}: no colour`);
  }
  if (msg.components.length > L.actionRows) problems.push('too many rows');
  const ids = new Set<string>();
  for (const r of msg.components) {
    if (r.type !== ComponentType.ActionRow) problems.push('not an action row');
    if (r.components.length > L.rowButtons) problems.push('too many buttons');
    for (const b of r.components) {
      if (b.type !== ComponentType.Button || !('custom_id' in b)) {
        problems.push('not a custom-id button');
        continue;
      }
      checkLength(problems, 'button.label', b.label, L.buttonLabel);
      checkLength(problems, 'button.custom_id', b.custom_id, L.customId);
      if (ids.has(b.custom_id)) problems.push('duplicate custom_id');
      ids.add(b.custom_id);
    }
  }
  if (JSON.stringify(msg.allowedMentions) !== '{"parse":[]}')
    problems.push('allowedMentions not {parse: []}');
  return problems;
}

function checkModal(modal: DiscordModal): string[] {
  const problems: string[] = [];
  checkLength(problems, 'title', modal.title, L.modalTitle);
  checkLength(problems, 'custom_id', modal.custom_id, L.customId);
  if (modal.components.length < 1 || modal.components.length > L.modalRows) {
    problems.push(`${modal.components.length} rows`);
  }
  const ids = new Set<string>();
  for (const r of modal.components) {
    if (r.type !== ComponentType.ActionRow || r.components.length !== 1) problems.push('bad row');
    for (const t of r.components) {
      checkLength(problems, `${t.custom_id}.label`, t.label, L.textInputLabel);
      checkLength(problems, `${t.custom_id}.custom_id`, t.custom_id, L.customId);
      checkLength(problems, `${t.custom_id}.placeholder`, t.placeholder, L.textInputPlaceholder, 0);
      checkLength(problems, `${t.custom_id}.value`, t.value, L.textInputValue, 0);
      if ((t.max_length ?? 0) > L.textInputValue) problems.push(`${t.custom_id}: max_length`);
      if (t.value !== undefined && t.max_length !== undefined && t.value.length > t.max_length) {
        problems.push(`${t.custom_id}: value longer than max_length`);
      }
      if (ids.has(t.custom_id)) problems.push('duplicate custom_id');
      ids.add(t.custom_id);
    }
  }
  return problems;
}

const embedOf = (msg: DiscordMessage) => {
  const e = msg.embeds[0];
  if (!e) throw new Error('no embed');
  return e;
};
const embedText = (msg: DiscordMessage): string => JSON.stringify(embedOf(msg));
const field = (msg: DiscordMessage, name: string) => embedOf(msg).fields?.find((f) => f.name === name)?.value;

/** What Discord would send back if the modal were submitted untouched. */
const untouched = (modal: DiscordModal): Record<string, string> =>
  Object.fromEntries(modal.components.flatMap((r) => r.components).map((t) => [t.custom_id, t.value ?? '']));

// ---------------------------------------------------------------------------------------------

describe('renderDiscordMessage', () => {
  it('renders a pending request: embed, three buttons with routable custom ids, no pings', () => {
    const msg = renderDiscordMessage(card());
    expect(checkMessage(msg)).toEqual([]);
    const e = embedOf(msg);
    expect(e.title).toBe('billing-bot wants to payments.send');
    expect(e.color).toBe(DISCORD_COLORS.pending);
    expect(e.footer?.text).toBe(`ID: ${PERM}`);
    expect(e.description?.split('\n')).toEqual([
      '**Resource:** stripe:acct\\_1',
      '**Reason:** Pay invoice 42',
    ]);
    expect(field(msg, 'Requested by')).toBe('<@987654321098765432>');
    expect(field(msg, 'Policy')).toBe('payments-over-50');
    expect(field(msg, 'Decide by')).toBe(`<t:${EXP_S}:f> (<t:${EXP_S}:R>)`);
    expect(field(msg, 'Expires')).toBeUndefined();
    expect(field(msg, 'Scope')).toBe(
      '**Max amount:** 100\n**Max uses:** 2\n**Allowed recipients:** a@acme.com, b@acme.com',
    );
    // The reason is in the description, not repeated among the context rows.
    expect(field(msg, 'Context')).toBe('**invoice:** 42');
    expect(embedText(msg).match(/Pay invoice 42/g)).toHaveLength(1);
    expect(embedText(msg)).not.toContain('Approvals:');
    expect(msg.components).toEqual([
      {
        type: ComponentType.ActionRow,
        components: [
          {
            type: ComponentType.Button,
            style: ButtonStyle.Success,
            label: 'Approve',
            custom_id: `aotp:approve:${PERM}`,
          },
          {
            type: ComponentType.Button,
            style: ButtonStyle.Danger,
            label: 'Deny',
            custom_id: `aotp:deny:${PERM}`,
          },
          {
            type: ComponentType.Button,
            style: ButtonStyle.Secondary,
            label: 'Approve with changes…',
            custom_id: `aotp:changes:${PERM}`,
          },
        ],
      },
    ]);
    expect(msg.allowedMentions).toEqual({ parse: [] });
    expect(msg.content).toBe(
      'Approval requested: billing-bot wants to payments.send on stripe:acct\\_1 — approval needed',
    );
  });

  it('shows the quorum progress while more than one approval is needed', () => {
    const msg = renderDiscordMessage(card({ state: { kind: 'pending', approvals: 1, required: 2 } }));
    expect(checkMessage(msg)).toEqual([]);
    expect(embedOf(msg).description).toContain('Approvals: 1/2');
    expect(msg.components).toHaveLength(1);
    expect(msg.content).toContain('(1/2)');
  });

  const states: [string, CardState, number, RegExp][] = [
    [
      'approved',
      { kind: 'approved', by: DISCORD_APPROVER, at: AT, expiresAt: EXPIRES },
      DISCORD_COLORS.approved,
      new RegExp(`✅ Approved by <@123456789012345678> · expires <t:${EXP_S}:t>$`),
    ],
    [
      'approved by operator',
      {
        kind: 'approved',
        by: { type: 'operator', name: 'ops <@123456789012345678>' },
        at: AT,
        expiresAt: EXPIRES,
      },
      DISCORD_COLORS.approved,
      /✅ Approved by ops <\u200b@123456789012345678> · expires/,
    ],
    [
      'approved by a Slack user',
      {
        kind: 'approved',
        by: { type: 'approver', platform: 'slack', userId: 'U0X', userName: 'bob' },
        at: AT,
        expiresAt: EXPIRES,
      },
      DISCORD_COLORS.approved,
      /✅ Approved by bob · expires/,
    ],
    [
      'denied',
      { kind: 'denied', by: DISCORD_APPROVER, at: AT, reason: 'too **much** @everyone' },
      DISCORD_COLORS.denied,
      /❌ Denied by <@123456789012345678> — too \\\*\\\*much\\\*\\\* @\u200beveryone$/,
    ],
    [
      'denied by policy',
      { kind: 'denied', by: { type: 'policy', name: 'no-weekends' }, at: AT, reason: null },
      DISCORD_COLORS.denied,
      /❌ Denied by no-weekends$/,
    ],
    ['used', { kind: 'used', at: AT }, DISCORD_COLORS.other, new RegExp(`Used <t:${AT_S}:f>$`)],
    ['expired unused', { kind: 'expired', unused: true }, DISCORD_COLORS.other, /⌛ Expired unused$/],
    ['expired', { kind: 'expired', unused: false }, DISCORD_COLORS.other, /⌛ Expired$/],
    ['revoked', { kind: 'revoked', at: AT }, DISCORD_COLORS.other, /🚫 Revoked <t:/],
    ['cancelled', { kind: 'cancelled', at: AT }, DISCORD_COLORS.other, /Cancelled by the agent <t:/],
  ];
  for (const [name, state, color, line] of states) {
    it(`renders the ${name} state without buttons`, () => {
      const msg = renderDiscordMessage(card({ state }));
      expect(checkMessage(msg)).toEqual([]);
      expect(msg.components).toEqual([]);
      const e = embedOf(msg);
      expect(e.color).toBe(color);
      expect(e.description).toMatch(line);
      expect(e.description?.startsWith('**Resource:**')).toBe(true);
      expect(field(msg, 'Decide by')).toBeUndefined();
      expect(embedText(msg)).not.toContain('Approvals:');
      expect(msg.content).toMatch(
        /^Approval requested: billing-bot wants to payments\.send on stripe:acct\\_1 — \w/,
      );
      if (state.kind === 'approved') expect(field(msg, 'Expires')).toBe(`<t:${EXP_S}:f> (<t:${EXP_S}:R>)`);
      else expect(field(msg, 'Expires')).toBeUndefined();
    });
  }

  it('escapes mentions and markdown in agent-controlled text: nothing pings, nothing disguised', () => {
    const evil =
      '@everyone @here <@111111111111111111> <@&222222222222222222> <#333333333333333333> [bank](https://evil.example) **x** <t:1:R>';
    const scope = { [`allowed_${evil}`]: [evil], max_amount: 1 };
    const msg = renderDiscordMessage(
      card({
        agentName: evil,
        action: evil,
        resource: evil,
        reason: evil,
        policyName: evil,
        requestedBy: evil,
        scope,
        context: [
          { key: evil, value: evil },
          { key: 'note', value: 'hi @everyone' },
        ],
        state: {
          kind: 'denied',
          by: { type: 'approver', platform: 'slack', userName: evil },
          at: AT,
          reason: evil,
        },
      }),
    );
    // checkMessage proves every <…> token is ours, no bare @everyone/@here and no masked link.
    expect(checkMessage(msg)).toEqual([]);
    const all = JSON.stringify(msg);
    expect(all).not.toContain('<@111111111111111111>');
    expect(all).not.toContain('<@&');
    expect(all).not.toContain('<#');
    expect(field(msg, 'Context')).toContain('**note:** hi @\u200beveryone');
    expect(msg.allowedMentions).toEqual({ parse: [] });
  });

  it('escapes line-start markdown and keeps ordinary text readable', () => {
    expect(escapeDiscord('# big\n> quote\n- item\n12. x')).toBe('\\# big\n\\> quote\n\\- item\n12\\. x');
    expect(escapeDiscord('a_b *c* ~~d~~ `e` ||f|| \\')).toBe(
      'a\\_b \\*c\\* \\~\\~d\\~\\~ \\`e\\` \\|\\|f\\|\\| \\\\',
    );
    expect(escapeDiscord('pay 5 EUR to bob')).toBe('pay 5 EUR to bob');
  });

  it('names the deciding Discord user in the content line without pinging', () => {
    const msg = renderDiscordMessage(
      card({ state: { kind: 'denied', by: DISCORD_APPROVER, at: AT, reason: null } }),
    );
    expect(msg.content).toMatch(/— denied by <@123456789012345678>$/);
    expect(msg.allowedMentions).toEqual({ parse: [] });
  });

  it('renders a non-Discord requester as escaped text and omits a missing one', () => {
    expect(field(renderDiscordMessage(card({ requestedBy: 'U0SLACK' })), 'Requested by')).toBe('U0SLACK');
    expect(field(renderDiscordMessage(card({ requestedBy: '12345' })), 'Requested by')).toBe('12345');
    expect(field(renderDiscordMessage(card({ requestedBy: null })), 'Requested by')).toBeUndefined();
    expect(field(renderDiscordMessage(card({ policyName: null })), 'Policy')).toBe(
      '*none (default approvers)*',
    );
  });

  it('stays within every Discord limit for a 10 000-char context value and 200 scope keys', () => {
    const scope: Record<string, unknown> = {};
    for (let i = 0; i < 200; i++) scope[`max_field_${i}_${'k'.repeat(300)}`] = i;
    scope['allowed_recipients'] = Array.from({ length: 500 }, (_, i) => `user${i}@example.com`);
    const huge = 'x'.repeat(10_000);
    const context = Array.from({ length: 300 }, (_, i) => ({ key: `k${i}`, value: i === 0 ? huge : 'v' }));
    const msg = renderDiscordMessage(
      card({
        agentName: 'A'.repeat(500),
        action: '*'.repeat(5000),
        resource: '<'.repeat(10_000),
        reason: huge,
        scope,
        context,
        requestedBy: 'r'.repeat(10_000),
        policyName: '_'.repeat(10_000),
        state: { kind: 'pending', approvals: 2, required: 3 },
      }),
    );
    expect(checkMessage(msg)).toEqual([]);
    expect(embedLength(embedOf(msg))).toBeLessThanOrEqual(6000);
    const text = embedText(msg);
    expect(text).toContain('…[truncated]');
    expect(text).toMatch(/…and \d+ more scope limits/);
    expect(text).toMatch(/…and \d+ more context entries/);
    expect(field(msg, 'Context')).toMatch(/^\*\*k0:\*\* x+…\[truncated\]/); // the huge value is cut, not dropped
    expect(embedOf(msg).description).toContain('Approvals: 2/3');
    expect(msg.components).toHaveLength(1); // the buttons are never squeezed out
  });

  it('gives the context room when the scope is huge, and vice versa', () => {
    const scope: Record<string, unknown> = {};
    for (let i = 0; i < 1000; i++) scope[`max_f${i}`] = i;
    const context = Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: 'v'.repeat(50) }));
    const msg = renderDiscordMessage(card({ scope, context }));
    expect(checkMessage(msg)).toEqual([]);
    const shown = (embedText(msg).match(/\*\*Max f\d+:\*\*/g) ?? []).length;
    expect(shown).toBeGreaterThan(50);
    expect(embedText(msg)).toContain(`…and ${1000 - shown} more scope limits`);
    expect(field(msg, 'Context')).toContain('**k0:**');

    const small = renderDiscordMessage(
      card({ context: Array.from({ length: 1000 }, (_, i) => ({ key: `k${i}`, value: 'v' })) }),
    );
    expect(checkMessage(small)).toEqual([]);
    expect(field(small, 'Scope')).toContain('**Allowed recipients:**');
    expect(embedText(small)).toMatch(/…and \d+ more context entries/);
  });

  it('renders an empty scope, empty values and invalid dates without throwing', () => {
    const msg = renderDiscordMessage(
      card({
        scope: {},
        scopeRows: [],
        context: [{ key: 'blank', value: '  ' }],
        reason: null,
        resource: null,
        expiresAt: new Date(Number.NaN),
      }),
    );
    expect(checkMessage(msg)).toEqual([]);
    expect(field(msg, 'Scope')).toBe('*No limits beyond a single use*');
    expect(field(msg, 'Context')).toBe('**blank:** —');
    expect(field(msg, 'Decide by')).toBe('an unknown time');
    expect(embedOf(msg).description).toBeUndefined();
  });

  it('refuses a permission id that cannot make a routable custom id', () => {
    expect(() => renderDiscordMessage(card({ permissionId: 'p'.repeat(90) }))).toThrow(/too long/);
    expect(() => renderDiscordMessage(card({ permissionId: 'a:b' }))).toThrow(/custom_id/);
  });
});

describe('parseCustomId', () => {
  it('parses our four kinds', () => {
    for (const kind of ['approve', 'deny', 'changes', 'modal'] as const) {
      expect(parseCustomId(`aotp:${kind}:${PERM}`)).toEqual({ kind, permissionId: PERM });
    }
  });

  it('rejects junk, wrong prefixes, unknown kinds and overlong ids', () => {
    const bad = [
      '',
      'junk',
      'aotp',
      'aotp:approve',
      'aotp:approve:',
      `aotp:approve:${PERM}:extra`,
      `aotp:approve:perm 1`,
      `aotp:Approve:${PERM}`,
      `aotp:grant:${PERM}`,
      `xotp:approve:${PERM}`,
      `aotp_approve:${PERM}`,
      ` aotp:approve:${PERM}`,
      `aotp:approve:${'p'.repeat(100)}`,
      `aotp:approve:${PERM}\n`,
    ];
    for (const id of bad) expect(parseCustomId(id), id).toBeNull();
    expect(parseCustomId(42 as unknown as string)).toBeNull();
    // The longest accepted id is exactly 100 characters.
    const longest = `aotp:approve:${'p'.repeat(100 - 'aotp:approve:'.length)}`;
    expect(longest).toHaveLength(100);
    expect(parseCustomId(longest)?.kind).toBe('approve');
  });
});

// ---------------------------------------------------------------------------------------------

describe('renderNarrowingModal', () => {
  it('has a cap input per numeric cap, the allow-list as text, and an optional reason', () => {
    const modal = renderNarrowingModal(card());
    expect(checkModal(modal)).toEqual([]);
    expect(modal.custom_id).toBe(`aotp:modal:${PERM}`);
    expect(parseCustomId(modal.custom_id)).toEqual({ kind: 'modal', permissionId: PERM });
    expect(modal.title).toBe('Approve with changes');
    const inputs = modal.components.flatMap((r) => r.components);
    expect(inputs.map((t) => t.custom_id)).toEqual([
      'cap:max_amount',
      'cap:max_uses',
      'list:allowed_recipients',
      'reason',
    ]);
    expect(inputs[0]).toMatchObject({
      type: ComponentType.TextInput,
      style: TextInputStyle.Short,
      label: 'Max amount (now 100)',
      value: '100',
      required: true,
    });
    expect(inputs[1]).toMatchObject({ label: 'Max uses (now 2)', value: '2', required: true });
    expect(inputs[2]).toMatchObject({
      style: TextInputStyle.Paragraph,
      label: 'Allowed recipients (remove to trim)',
      value: 'a@acme.com, b@acme.com',
      required: false,
    });
    expect(inputs[3]).toMatchObject({
      custom_id: 'reason',
      style: TextInputStyle.Paragraph,
      required: false,
      max_length: 2000,
    });
  });

  it('never exceeds 5 rows: at most 4 caps, lists only if room remains, the rest kept as granted', () => {
    const scope: Record<string, unknown> = {
      allowed_recipients: ['a', 'b'],
      max_a: 1,
      max_b: 2,
      max_c: 3,
      max_d: 4,
      max_e: 5,
    };
    const modal = renderNarrowingModal(card({ scope }));
    expect(checkModal(modal)).toEqual([]);
    expect(modal.components).toHaveLength(5);
    const inputs = modal.components.flatMap((r) => r.components);
    expect(inputs.map((t) => t.custom_id)).toEqual([
      'cap:max_a',
      'cap:max_b',
      'cap:max_c',
      'cap:max_d',
      'reason',
    ]);
    expect(modal.title).toBe('Approve with changes (some limits kept)');
    expect(inputs[4]?.placeholder).toBe('Optional. Kept as granted: Max e, Allowed recipients');

    // Two caps leave room for two lists; a list that cannot round-trip as text is kept.
    const s2 = { max_a: 1, max_b: 2, allowed_x: ['1', '2'], allowed_y: ['a,b', 'c'], allowed_z: ['z'] };
    const m2 = renderNarrowingModal(card({ scope: s2 }));
    expect(checkModal(m2)).toEqual([]);
    expect(m2.components.flatMap((r) => r.components).map((t) => t.custom_id)).toEqual([
      'cap:max_a',
      'cap:max_b',
      'list:allowed_x',
      'list:allowed_z',
      'reason',
    ]);
    expect(m2.components.at(-1)?.components[0]?.placeholder).toContain('Allowed y');
  });

  it('stays within limits for huge keys, labels, numbers and lists', () => {
    const scope: Record<string, unknown> = {
      [`max_${'k'.repeat(3000)}`]: 5,
      max_tiny: 1e-7,
      max_huge: Number.MAX_VALUE,
      max_uses: 3,
      // Too long for one text input (4000). (Few entries: narrowing checks are quadratic in a list.)
      allowed_many: Array.from({ length: 5 }, (_, i) => `${i}@${'x'.repeat(900)}.example.com`),
    };
    const c = card({ scope, agentName: '@everyone'.repeat(100) });
    const modal = renderNarrowingModal(c);
    expect(checkModal(modal)).toEqual([]);
    const inputs = modal.components.flatMap((r) => r.components);
    expect(inputs[0]?.custom_id).toMatch(/^cap#[0-9a-f]{64}$/);
    expect(inputs[0]?.label).toMatch(/^Max kkk+… \(now 5\)$/);
    expect(inputs[1]?.value).toBe('0.0000001');
    expect(Number(inputs[2]?.value)).toBe(Number.MAX_VALUE);
    expect(modal.title).toBe('Approve with changes (some limits kept)'); // the list does not fit in a text input
    // Submitted untouched, nothing changes and nothing is refused.
    const untouchedResult = modificationsFromForm(scope, parseNarrowingSubmission(c, untouched(modal)));
    expect(untouchedResult).toMatchObject({ ok: true, scopeModifications: {} });
    // The hashed id is found again.
    const fields = untouched(modal);
    fields[inputs[0]?.custom_id ?? ''] = '0';
    const lowered = modificationsFromForm(scope, parseNarrowingSubmission(c, fields));
    expect(lowered).toMatchObject({ ok: true, scopeModifications: { [`max_${'k'.repeat(3000)}`]: 0 } });
  });

  it('formats numbers as plain decimals that keep their value', () => {
    for (const n of [0, 1, 0.5, 100, 1e-7, 1.25e-10, 1e21, 1.5e300, Number.MAX_VALUE, Number.MIN_VALUE]) {
      const s = decimalString(n);
      expect(s).toMatch(/^\d+(\.\d+)?$/);
      expect(Number(s)).toBe(n);
    }
  });
});

describe('parseNarrowingSubmission + discordFieldErrorsMessage', () => {
  it('turns an untouched submission into no modifications', () => {
    const c = card();
    const parsed = parseNarrowingSubmission(c, untouched(renderNarrowingModal(c)));
    expect(parsed).toEqual({
      caps: { max_amount: '100', max_uses: '2' },
      lists: { allowed_recipients: ['a@acme.com', 'b@acme.com'] },
      reason: '',
    });
    expect(modificationsFromForm(c.scope, parsed)).toMatchObject({
      ok: true,
      scopeModifications: {},
      reason: null,
    });
  });

  it('reads lowered caps, trimmed lists and the reason', () => {
    const c = card();
    const parsed = parseNarrowingSubmission(c, {
      'cap:max_amount': ' 40 ',
      'cap:max_uses': '2',
      'list:allowed_recipients': ' b@acme.com ,\n',
      reason: 'smaller please',
      unrelated: 'ignored',
    });
    expect(parsed).toEqual({
      caps: { max_amount: ' 40 ', max_uses: '2' },
      lists: { allowed_recipients: ['b@acme.com'] },
      reason: 'smaller please',
    });
    expect(modificationsFromForm(c.scope, parsed)).toMatchObject({
      ok: true,
      scopeModifications: { max_amount: 40, allowed_recipients: ['b@acme.com'] },
      reason: 'smaller please',
    });
    // An emptied list means nothing is allowed; a missing input means unchanged.
    const emptied = parseNarrowingSubmission(c, { 'list:allowed_recipients': '' });
    expect(emptied).toEqual({ caps: {}, lists: { allowed_recipients: [] } });
    expect(modificationsFromForm(c.scope, emptied)).toMatchObject({
      ok: true,
      scopeModifications: { allowed_recipients: [] },
    });
  });

  it('validates exactly like Slack: lower ok, raise refused naming the limit, non-number refused', () => {
    const c = card();
    const cases: { amount: string; uses: string; keep: string[] }[] = [
      { amount: '50', uses: '1', keep: ['a@acme.com'] },
      { amount: '150', uses: '2', keep: ['a@acme.com', 'b@acme.com'] },
      { amount: 'lots', uses: '1.5', keep: ['eve@evil.com'] },
      { amount: '-1', uses: '0', keep: [] },
      { amount: '', uses: '3', keep: ['b@acme.com', 'a@acme.com'] },
      { amount: '1e2', uses: '2', keep: ['a@acme.com'] },
    ];
    for (const { amount, uses, keep } of cases) {
      const discord = parseNarrowingSubmission(c, {
        'cap:max_amount': amount,
        'cap:max_uses': uses,
        'list:allowed_recipients': keep.join(', '),
        reason: 'r',
      });
      const slackState: SlackViewStateValues = {
        'cap:max_amount': { value: { type: 'number_input', value: amount } },
        'cap:max_uses': { value: { type: 'number_input', value: uses } },
        'list:allowed_recipients': {
          value: { type: 'checkboxes', selected_options: keep.map((value) => ({ value })) },
        },
        reason: { value: { type: 'plain_text_input', value: 'r' } },
      };
      const slack = parseSlackSubmission(c, slackState);
      expect(discord).toEqual(slack);
      expect(modificationsFromForm(c.scope, discord)).toEqual(modificationsFromForm(c.scope, slack));
    }

    const raised = modificationsFromForm(c.scope, parseNarrowingSubmission(c, { 'cap:max_amount': '150' }));
    expect(raised).toEqual({ ok: false, errors: { max_amount: 'Can only be lowered (granted: 100)' } });
    const text = modificationsFromForm(c.scope, parseNarrowingSubmission(c, { 'cap:max_amount': 'lots' }));
    expect(text).toEqual({ ok: false, errors: { max_amount: 'Enter a number, digits only (granted: 100)' } });
    const widened = modificationsFromForm(
      c.scope,
      parseNarrowingSubmission(c, { 'list:allowed_recipients': 'a@acme.com, eve@evil.com' }),
    );
    expect(widened).toEqual({
      ok: false,
      errors: { allowed_recipients: 'Not in the granted list: eve@evil.com' },
    });
  });

  it('lists every problem in one ephemeral message, named by label', () => {
    const c = card();
    const result = modificationsFromForm(
      c.scope,
      parseNarrowingSubmission(c, {
        'cap:max_amount': '150',
        'cap:max_uses': 'two',
        'list:allowed_recipients': 'eve@evil.com',
        reason: 'x'.repeat(2001),
      }),
    );
    expect(result.ok).toBe(false);
    if (result.ok) return;
    const message = discordFieldErrorsMessage(result.errors, c);
    expect(message.split('\n').slice(1)).toEqual([
      '• **Max amount**: Can only be lowered (granted: 100)',
      '• **Max uses**: Enter a number, digits only (granted: 2)',
      '• **Allowed recipients**: Not in the granted list: eve@evil.com',
      '• **Reason**: At most 2000 characters (got 2001)',
    ]);
    expect(message.split('\n')[0]).toContain('Approve with changes…');
    expect(discordFieldErrorsMessage({ _form: 'broken', max_other: 'x' })).toContain(
      '• broken\n• **max\\_other**: x',
    );
    const long = discordFieldErrorsMessage(
      Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`max_${i}`, `@everyone ${'y'.repeat(500)}`])),
    );
    expect(long.length).toBeLessThanOrEqual(2000);
    expect(long).not.toMatch(/@everyone/);
  });
});
