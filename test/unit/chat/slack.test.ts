import type { KnownBlock, View } from '@slack/types';
import { describe, expect, it } from 'vitest';
import type { ApprovalCard, CardState } from '../../../src/chat/card.js';
import { modificationsFromForm } from '../../../src/chat/narrowing.js';
import {
  capBlockId,
  listBlockId,
  NARROW_CALLBACK_ID,
  parseNarrowingMetadata,
  parseNarrowingSubmission,
  renderNarrowingModal,
  type SlackViewStateValues,
  slackFieldErrors,
} from '../../../src/chat/slack/modal.js';
import { renderSlackMessage, SLACK_LIMITS } from '../../../src/chat/slack/render.js';
import { CARD_EXPIRES, chatCard } from '../../helpers/chatCard.js';

const L = SLACK_LIMITS;
const EXPIRES = CARD_EXPIRES;
const AT = new Date('2024-01-15T12:01:00Z');
const SLACK_APPROVER = {
  type: 'approver' as const,
  platform: 'slack' as const,
  userId: 'U0APPROVER',
  userName: 'alice',
};

const card = (overrides: Partial<ApprovalCard> = {}): ApprovalCard =>
  chatCard({ requestedBy: 'U0REQUESTER', ...overrides });

// ---------------------------------------------------------------------------------------------
// A generic checker of Slack's Block Kit limits: walks every block and element.

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const textOf = (v: unknown): string => (isObj(v) && typeof v['text'] === 'string' ? v['text'] : '');

function checkText(problems: string[], where: string, v: unknown, max: number): void {
  if (v === undefined) return;
  if (!isObj(v) || (v['type'] !== 'plain_text' && v['type'] !== 'mrkdwn')) {
    problems.push(`${where}: not a text object`);
    return;
  }
  const t = textOf(v);
  if (t.length === 0) problems.push(`${where}: empty text`);
  if (t.length > max) problems.push(`${where}: ${t.length} > ${max}`);
  if (v['type'] === 'mrkdwn') {
    // Every <…> token must be one we generate: a user mention or a date.
    for (const token of t.match(/<[^>]*>?/g) ?? []) {
      if (!/^<@[UW][A-Z0-9]+>$/.test(token) && !/^<!date\^\d+\^[^|>]+\|[^>]+>$/.test(token)) {
        problems.push(`${where}: unexpected token ${token.slice(0, 40)}`);
      }
    }
  }
}

function checkElement(problems: string[], where: string, el: Obj): void {
  const actionId = el['action_id'];
  if (typeof actionId === 'string' && actionId.length > L.actionId)
    problems.push(`${where}: action_id too long`);
  switch (el['type']) {
    case 'button':
      checkText(problems, `${where}.text`, el['text'], L.buttonText);
      if (typeof el['value'] === 'string' && el['value'].length > L.buttonValue)
        problems.push(`${where}: value too long`);
      break;
    case 'checkboxes':
    case 'multi_static_select': {
      const options = (el['options'] as Obj[]) ?? [];
      const max = el['type'] === 'checkboxes' ? L.checkboxOptions : L.selectOptions;
      if (options.length === 0 || options.length > max) problems.push(`${where}: ${options.length} options`);
      const values = options.map((o) => String(o['value']));
      if (new Set(values).size !== values.length) problems.push(`${where}: duplicate option values`);
      options.forEach((o, i) => {
        checkText(problems, `${where}.options[${i}]`, o['text'], L.optionText);
        if (String(o['value']).length > L.optionValue || String(o['value']).length === 0)
          problems.push(`${where}.options[${i}]: bad value length`);
      });
      for (const o of (el['initial_options'] as Obj[]) ?? []) {
        if (!options.some((x) => JSON.stringify(x) === JSON.stringify(o)))
          problems.push(`${where}: initial option not in options`);
      }
      break;
    }
    case 'plain_text_input': {
      const max = el['max_length'];
      if (typeof max === 'number' && max > 3000) problems.push(`${where}: max_length > 3000`);
      break;
    }
  }
}

function checkBlocks(blocks: readonly (KnownBlock | Obj)[], maxBlocks: number): string[] {
  const problems: string[] = [];
  if (blocks.length > maxBlocks) problems.push(`${blocks.length} blocks > ${maxBlocks}`);
  const ids = new Set<string>();
  blocks.forEach((raw, i) => {
    const b = raw as Obj;
    const where = `blocks[${i}](${String(b['type'])})`;
    const blockId = b['block_id'];
    if (typeof blockId === 'string') {
      if (blockId.length > L.blockId) problems.push(`${where}: block_id too long`);
      if (ids.has(blockId)) problems.push(`${where}: duplicate block_id`);
      ids.add(blockId);
    }
    switch (b['type']) {
      case 'header':
        checkText(problems, where, b['text'], L.headerText);
        break;
      case 'section': {
        if (b['text'] === undefined && b['fields'] === undefined)
          problems.push(`${where}: no text or fields`);
        checkText(problems, `${where}.text`, b['text'], L.sectionText);
        const fields = (b['fields'] as unknown[] | undefined) ?? [];
        if (fields.length > L.sectionFields) problems.push(`${where}: ${fields.length} fields`);
        fields.forEach((f, j) => {
          checkText(problems, `${where}.fields[${j}]`, f, L.fieldText);
        });
        break;
      }
      case 'context': {
        const elements = b['elements'] as unknown[];
        if (elements.length === 0 || elements.length > L.contextElements)
          problems.push(`${where}: ${elements.length} elements`);
        elements.forEach((e, j) => {
          checkText(problems, `${where}.elements[${j}]`, e, L.contextText);
        });
        break;
      }
      case 'actions': {
        const elements = b['elements'] as Obj[];
        if (elements.length > 25) problems.push(`${where}: too many elements`);
        elements.forEach((e, j) => {
          checkElement(problems, `${where}.elements[${j}]`, e);
        });
        break;
      }
      case 'input':
        checkText(problems, `${where}.label`, b['label'], L.inputLabel);
        checkText(problems, `${where}.hint`, b['hint'], L.inputHint);
        checkElement(problems, `${where}.element`, b['element'] as Obj);
        break;
      case 'divider':
        break;
      default:
        problems.push(`${where}: unexpected block type`);
    }
  });
  return problems;
}

function checkMessage(msg: { text: string; blocks: KnownBlock[] }): string[] {
  const problems = checkBlocks(msg.blocks, L.messageBlocks);
  if (msg.text.length === 0 || msg.text.length > L.fallbackText)
    problems.push(`text length ${msg.text.length}`);
  if (/[<>]/.test(msg.text)) problems.push('fallback text contains < or >');
  return problems;
}

function checkModal(view: View): string[] {
  const v = view as unknown as Obj;
  const problems = checkBlocks(view.blocks as KnownBlock[], L.modalBlocks);
  checkText(problems, 'title', v['title'], L.modalTitle);
  checkText(problems, 'submit', v['submit'], L.modalButton);
  checkText(problems, 'close', v['close'], L.modalButton);
  if (String(v['private_metadata']).length > L.privateMetadata) problems.push('private_metadata too long');
  return problems;
}

const allText = (blocks: KnownBlock[]): string => JSON.stringify(blocks);
const actionsOf = (blocks: KnownBlock[]) => blocks.filter((b) => b.type === 'actions');

// ---------------------------------------------------------------------------------------------

describe('renderSlackMessage', () => {
  it('renders a pending request with the three buttons carrying the permission id', () => {
    const msg = renderSlackMessage(card());
    expect(checkMessage(msg)).toEqual([]);
    expect(msg.blocks[0]).toMatchObject({
      type: 'header',
      text: { type: 'plain_text', text: '🔐 billing-bot requests payments.send' },
    });
    const actions = actionsOf(msg.blocks);
    expect(actions).toHaveLength(1);
    expect(actions[0]).toMatchObject({
      elements: [
        {
          type: 'button',
          action_id: 'aotp_approve',
          style: 'primary',
          value: 'perm_0123456789ABCDEFGHIJKL',
          text: { text: 'Approve' },
        },
        {
          type: 'button',
          action_id: 'aotp_deny',
          style: 'danger',
          value: 'perm_0123456789ABCDEFGHIJKL',
          text: { text: 'Deny' },
        },
        {
          type: 'button',
          action_id: 'aotp_approve_changes',
          value: 'perm_0123456789ABCDEFGHIJKL',
          text: { text: 'Approve with changes…' },
        },
      ],
    });
    const json = allText(msg.blocks);
    expect(json).toContain('<@U0REQUESTER>');
    expect(json).toContain('stripe:acct_1');
    expect(json).toContain('payments-over-50');
    expect(json).toContain('*Max amount*\\n100');
    expect(json).toContain('*Allowed recipients*\\na@acme.com, b@acme.com');
    expect(json).toContain(
      `<!date^${EXPIRES.getTime() / 1000}^{date_short_pretty} {time}|2024-01-15T12:05:00Z>`,
    );
    expect(json).not.toContain('Approvals:');
    expect(msg.text).toBe('billing-bot requests payments.send on stripe:acct_1: approval needed');
  });

  it('puts the reason first and does not repeat it among the context rows', () => {
    const msg = renderSlackMessage(card());
    const json = allText(msg.blocks);
    expect(json.match(/Pay invoice 42/g)).toHaveLength(1);
    const reasonAt = json.indexOf('*Reason*');
    expect(reasonAt).toBeGreaterThan(0);
    expect(reasonAt).toBeLessThan(json.indexOf('*Scope*'));
    expect(json.indexOf('*Scope*')).toBeLessThan(json.indexOf('*Context*'));
    expect(json).toContain('*invoice*\\n42');
  });

  it('uses a custom action prefix', () => {
    const msg = renderSlackMessage(card(), { actionPrefix: 'x_' });
    const ids = (actionsOf(msg.blocks)[0] as { elements: { action_id: string }[] }).elements.map(
      (e) => e.action_id,
    );
    expect(ids).toEqual(['x_approve', 'x_deny', 'x_approve_changes']);
  });

  it('shows the quorum progress when more than one approval is needed', () => {
    const msg = renderSlackMessage(card({ state: { kind: 'pending', approvals: 1, required: 2 } }));
    expect(allText(msg.blocks)).toContain('Approvals: 1/2');
    expect(actionsOf(msg.blocks)).toHaveLength(1);
    expect(msg.text).toContain('(1/2)');
  });

  it('renders a non-Slack requester as escaped text', () => {
    const json = allText(renderSlackMessage(card({ requestedBy: 'bob <!channel>' })).blocks);
    expect(json).toContain('bob &lt;!channel&gt;');
    expect(allText(renderSlackMessage(card({ requestedBy: null })).blocks)).not.toContain('Requested by');
  });

  const states: [string, CardState, RegExp][] = [
    [
      'approved',
      { kind: 'approved', by: SLACK_APPROVER, at: AT, expiresAt: EXPIRES },
      /✅ Approved by <@U0APPROVER> · expires <!date\^1705320300\^/,
    ],
    [
      'approved by operator',
      { kind: 'approved', by: { type: 'operator', name: 'ops <@U999>' }, at: AT, expiresAt: EXPIRES },
      /✅ Approved by ops &lt;@U999&gt; · expires/,
    ],
    [
      'denied',
      { kind: 'denied', by: SLACK_APPROVER, at: AT, reason: 'too <b>much</b>' },
      /❌ Denied by <@U0APPROVER> — too &lt;b&gt;much&lt;\/b&gt;/,
    ],
    [
      'denied by policy',
      { kind: 'denied', by: { type: 'policy', name: 'no-weekends' }, at: AT, reason: null },
      /❌ Denied by no-weekends"/,
    ],
    ['used', { kind: 'used', at: AT }, /Used <!date\^1705320060\^/],
    ['expired unused', { kind: 'expired', unused: true }, /⌛ Expired unused/],
    ['expired', { kind: 'expired', unused: false }, /⌛ Expired"/],
    ['revoked', { kind: 'revoked', at: AT }, /🚫 Revoked/],
    ['cancelled', { kind: 'cancelled', at: AT }, /Cancelled by the agent/],
  ];
  for (const [name, state, line] of states) {
    it(`renders the ${name} state without buttons`, () => {
      const msg = renderSlackMessage(card({ state }));
      expect(checkMessage(msg)).toEqual([]);
      expect(actionsOf(msg.blocks)).toHaveLength(0);
      const json = allText(msg.blocks);
      expect(json).toMatch(line);
      expect(json).not.toContain('Decide by');
      expect(json).not.toContain('Approvals:');
      expect(msg.text.length).toBeLessThanOrEqual(300);
    });
  }

  it('escapes agent-controlled text everywhere: no live mention or link', () => {
    const evil = '<!channel> <@U123> <https://evil.example|bank> & @here';
    const msg = renderSlackMessage(
      card({
        agentName: evil,
        action: evil,
        resource: evil,
        reason: evil,
        policyName: evil,
        scope: { [`allowed_${evil}`]: [evil], max_amount: 1 },
        context: [
          { key: evil, value: evil },
          { key: 'note', value: '<!channel>' },
        ],
        state: {
          kind: 'denied',
          by: { type: 'approver', platform: 'discord', userName: evil },
          at: AT,
          reason: evil,
        },
      }),
    );
    // checkMessage also proves every <…> token in mrkdwn is one we generated.
    expect(checkMessage(msg)).toEqual([]);
    // Plain-text objects (header, buttons) are never parsed by Slack; everything else is mrkdwn.
    const json = JSON.stringify(msg.blocks.slice(1));
    expect(json).not.toContain('<!channel>');
    expect(json).not.toContain('<@U123>');
    expect(json).not.toContain('<https');
    expect(json).toContain('&lt;!channel&gt;');
    expect(json).not.toMatch(/[^&]@here/);
    expect(msg.text).not.toContain('<!channel>');
  });

  it('stays within every Slack limit for huge values and 200 scope keys', () => {
    const scope: Record<string, unknown> = {};
    for (let i = 0; i < 200; i++) scope[`max_field_${i}_${'k'.repeat(300)}`] = i;
    scope['allowed_recipients'] = Array.from({ length: 500 }, (_, i) => `user${i}@example.com`);
    const huge = 'x'.repeat(10_000);
    const context = Array.from({ length: 300 }, (_, i) => ({ key: `k${i}`, value: i === 0 ? huge : 'v' }));
    const msg = renderSlackMessage(
      card({
        agentName: 'A'.repeat(500),
        action: '<'.repeat(5000),
        resource: '&'.repeat(10_000),
        reason: huge,
        scope,
        context,
        requestedBy: 'r'.repeat(10_000),
        policyName: 'p'.repeat(10_000),
        state: { kind: 'pending', approvals: 2, required: 3 },
      }),
    );
    expect(checkMessage(msg)).toEqual([]);
    expect(msg.blocks.length).toBeLessThanOrEqual(50);
    const json = allText(msg.blocks);
    expect(json).toContain('…[truncated]');
    // 200 scope rows fit (20 sections); the context is collapsed into "…and N more".
    expect(json).not.toMatch(/more scope limits/);
    expect(json).toContain('*Max field 199 kkk');
    expect(json).toMatch(/…and \d+ more context entries/);
    expect(actionsOf(msg.blocks)).toHaveLength(1); // the buttons are never squeezed out
    expect(json).toContain('Approvals: 2/3');
  });

  it('collapses scope rows beyond the block budget into one line, keeping some context', () => {
    const scope: Record<string, unknown> = {};
    for (let i = 0; i < 1000; i++) scope[`max_f${i}`] = i;
    const context = Array.from({ length: 50 }, (_, i) => ({ key: `k${i}`, value: 'v' }));
    const msg = renderSlackMessage(card({ scope, context }));
    expect(checkMessage(msg)).toEqual([]);
    expect(msg.blocks).toHaveLength(50);
    const json = allText(msg.blocks);
    const shown = (json.match(/\*Max f\d+\*/g) ?? []).length;
    expect(json).toContain(`…and ${1000 - shown} more scope limits`);
    expect(json).toContain('*Context*');
    expect(json).toMatch(/…and \d+ more context entries/);
    expect(actionsOf(msg.blocks)).toHaveLength(1);
  });

  it('renders a scope without rows and invalid dates without throwing', () => {
    const msg = renderSlackMessage(
      card({ scope: {}, scopeRows: [], context: [], reason: null, expiresAt: new Date(Number.NaN) }),
    );
    expect(checkMessage(msg)).toEqual([]);
    expect(allText(msg.blocks)).toContain('No limits beyond a single use');
  });
});

// ---------------------------------------------------------------------------------------------

type InputLike = { type: 'input'; block_id: string; element: Obj & { type: string } };
const inputs = (view: View) =>
  view.blocks.filter((b): b is InputLike & KnownBlock => b.type === 'input') as unknown as InputLike[];

/** What Slack would send back if the user submitted the modal untouched. */
function untouchedState(view: View): SlackViewStateValues {
  const values: SlackViewStateValues = {};
  for (const b of inputs(view)) {
    const el = b.element;
    const state =
      el.type === 'checkboxes' || el.type === 'multi_static_select'
        ? {
            type: el.type,
            selected_options: (el['initial_options'] as { value: string }[]).map((o) => ({ value: o.value })),
          }
        : { type: el.type, value: (el['initial_value'] as string | undefined) ?? null };
    values[b.block_id] = { value: state };
  }
  return values;
}

describe('renderNarrowingModal', () => {
  it('has an input per cap and allow-list, and an optional reason', () => {
    const view = renderNarrowingModal(card());
    expect(checkModal(view)).toEqual([]);
    expect(view).toMatchObject({
      type: 'modal',
      callback_id: NARROW_CALLBACK_ID,
      title: { text: 'Approve with changes' },
      submit: { text: 'Approve' },
      close: { text: 'Cancel' },
    });
    expect(parseNarrowingMetadata(view.private_metadata ?? '')).toBe('perm_0123456789ABCDEFGHIJKL');
    const byId = Object.fromEntries(inputs(view).map((b) => [b.block_id, b]));
    expect(Object.keys(byId)).toEqual([
      'cap:max_amount',
      'cap:max_uses',
      'list:allowed_recipients',
      'reason',
    ]);
    expect(byId['cap:max_amount']?.element).toMatchObject({
      type: 'number_input',
      action_id: 'value',
      initial_value: '100',
      is_decimal_allowed: true,
    });
    expect(byId['cap:max_uses']?.element).toMatchObject({
      type: 'number_input',
      initial_value: '2',
      is_decimal_allowed: false,
      min_value: '1',
    });
    const list = byId['list:allowed_recipients'];
    expect(list).toMatchObject({ optional: true, element: { type: 'checkboxes', action_id: 'value' } });
    expect(list?.element['initial_options']).toEqual(list?.element['options']);
    expect(byId['reason']).toMatchObject({
      optional: true,
      element: { type: 'plain_text_input', action_id: 'value', multiline: true, max_length: 2000 },
    });
  });

  it('uses a multi-select above 10 entries and indexes entries too long for an option value', () => {
    const long = 'z'.repeat(400);
    const scope = {
      allowed_a: Array.from({ length: 11 }, (_, i) => `v${i}`),
      allowed_b: ['short', long],
      allowed_c: ['i:0', 'x'],
    };
    const c = card({ scope });
    const view = renderNarrowingModal(c);
    expect(checkModal(view)).toEqual([]);
    const byId = Object.fromEntries(inputs(view).map((b) => [b.block_id, b]));
    expect(byId['list:allowed_a']?.element.type).toBe('multi_static_select');
    const optsB = byId['list:allowed_b']?.element['options'] as { value: string }[];
    expect(optsB.map((o) => o.value)).toEqual(['i:0', 'i:1']);
    const optsC = byId['list:allowed_c']?.element['options'] as { value: string }[];
    expect(optsC.map((o) => o.value)).toEqual(['i:0', 'i:1']); // a literal 'i:0' entry forces indexing

    const state = untouchedState(view);
    state['list:allowed_b'] = { value: { type: 'checkboxes', selected_options: [{ value: 'i:1' }] } };
    state['list:allowed_c'] = { value: { type: 'checkboxes', selected_options: [{ value: 'i:0' }] } };
    const parsed = parseNarrowingSubmission(c, state);
    expect(parsed.lists['allowed_b']).toEqual([long]);
    expect(parsed.lists['allowed_c']).toEqual(['i:0']);
    expect(modificationsFromForm(scope, parsed)).toMatchObject({
      ok: true,
      scopeModifications: { allowed_b: [long], allowed_c: ['i:0'] },
    });
  });

  it('stays within limits for 200 caps, huge lists and huge labels', () => {
    const scope: Record<string, unknown> = {};
    for (let i = 0; i < 200; i++) scope[`max_${i}_${'k'.repeat(i === 0 ? 3000 : 10)}`] = i + 0.5;
    scope['max_tiny'] = 1e-7; // not expressible in a number_input
    scope['allowed_many'] = Array.from({ length: 150 }, (_, i) => `m${i}`);
    const c = card({
      scope,
      agentName: '<!channel>'.repeat(500),
      action: 'a'.repeat(5000),
    });
    const view = renderNarrowingModal(c);
    expect(checkModal(view)).toEqual([]);
    expect(view.blocks.length).toBeLessThanOrEqual(100);
    expect(JSON.stringify(view.blocks)).toContain('Kept as granted');
    expect(JSON.stringify(view.blocks)).not.toContain('<!channel>');
    // The long key's block id is hashed, and parsing finds it again.
    const first = inputs(view)[0];
    expect(first?.block_id).toMatch(/^cap#[0-9a-f]{64}$/);
    const state = untouchedState(view);
    if (first) state[first.block_id] = { value: { type: 'number_input', value: '0' } };
    const parsed = parseNarrowingSubmission(c, state);
    const result = modificationsFromForm(scope, parsed);
    expect(result.ok).toBe(true);
    if (result.ok) expect(Object.values(result.scopeModifications)).toEqual([0]);
  });

  it('prefills a tiny cap as plain digits, so submitting it untouched is valid', () => {
    const scope = { max_x: 1e-7 };
    const c = card({ scope });
    const view = renderNarrowingModal(c);
    expect(inputs(view)[0]?.element).toMatchObject({ type: 'number_input', initial_value: '0.0000001' });
    const result = modificationsFromForm(scope, parseNarrowingSubmission(c, untouchedState(view)));
    expect(result).toMatchObject({ ok: true, scopeModifications: {} });
  });
});

describe('parseNarrowingSubmission + slackFieldErrors', () => {
  it('turns an untouched submission into no modifications', () => {
    const c = card();
    const parsed = parseNarrowingSubmission(c, untouchedState(renderNarrowingModal(c)));
    expect(parsed).toEqual({
      caps: { max_amount: '100', max_uses: '2' },
      lists: { allowed_recipients: ['a@acme.com', 'b@acme.com'] },
    });
    expect(modificationsFromForm(c.scope, parsed)).toMatchObject({
      ok: true,
      scopeModifications: {},
      reason: null,
    });
  });

  it('reads lowered caps, trimmed lists and the reason', () => {
    const c = card();
    const state: SlackViewStateValues = {
      'cap:max_amount': { value: { type: 'number_input', value: '40' } },
      'cap:max_uses': { value: { type: 'number_input', value: '2' } },
      'list:allowed_recipients': { value: { type: 'checkboxes', selected_options: [] } },
      reason: { value: { type: 'plain_text_input', value: 'smaller please' } },
    };
    const parsed = parseNarrowingSubmission(c, state);
    expect(parsed).toEqual({
      caps: { max_amount: '40', max_uses: '2' },
      lists: { allowed_recipients: [] },
      reason: 'smaller please',
    });
    expect(modificationsFromForm(c.scope, parsed)).toMatchObject({
      ok: true,
      scopeModifications: { max_amount: 40, allowed_recipients: [] },
      reason: 'smaller please',
    });
  });

  it('maps errors back to the block ids of the modal', () => {
    const c = card();
    const state: SlackViewStateValues = {
      'cap:max_amount': { value: { type: 'number_input', value: '150' } },
      'cap:max_uses': { value: { type: 'number_input', value: '1.5' } },
      'list:allowed_recipients': {
        value: { type: 'checkboxes', selected_options: [{ value: 'eve@evil.com' }] },
      },
      reason: { value: { type: 'plain_text_input', value: null } },
    };
    const result = modificationsFromForm(c.scope, parseNarrowingSubmission(c, state));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(slackFieldErrors(result.errors, c)).toEqual({
      [capBlockId('max_amount')]: 'Can only be lowered (granted: 100)',
      [capBlockId('max_uses')]: 'Must be a whole number of at least 1 (granted: 2)',
      [listBlockId('allowed_recipients')]: 'Not in the granted list: eve@evil.com',
    });
    expect(slackFieldErrors({ _form: 'broken', reason: 'too long' })).toEqual({
      reason: 'broken · too long',
    });
    expect(slackFieldErrors({ max_other: 'x' }, c)).toEqual({ reason: 'max_other: x' });
  });

  it('ignores metadata that is not ours', () => {
    expect(parseNarrowingMetadata('nope')).toBeNull();
    expect(parseNarrowingMetadata('{"permissionId": 5}')).toBeNull();
  });
});
