/**
 * Drive a Slack HTTP receiver (Bolt's HTTPReceiver or our own route) the way Slack does: interactivity
 * payloads in Slack's exact shapes, form-encoded as `payload=<JSON>`, signed with the signing secret.
 *
 * Slack's signature: `x-slack-signature: v0=<hex HMAC-SHA256(signingSecret, "v0:<timestamp>:<raw body>")>`
 * with `x-slack-request-timestamp: <unix seconds>`; receivers reject timestamps older than 5 minutes.
 * Note Bolt's HTTPReceiver only form-decodes when Content-Type is exactly
 * `application/x-www-form-urlencoded` (no charset), which is what Slack sends.
 */
import { createHmac, randomBytes } from 'node:crypto';

export interface SlackSignatureHeaders {
  'x-slack-signature': string;
  'x-slack-request-timestamp': string;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

export function signSlackRequest(
  signingSecret: string,
  rawBody: string,
  timestamp: number = nowSeconds(),
): SlackSignatureHeaders {
  const hex = createHmac('sha256', signingSecret).update(`v0:${timestamp}:${rawBody}`).digest('hex');
  return { 'x-slack-signature': `v0=${hex}`, 'x-slack-request-timestamp': String(timestamp) };
}

// ---------------------------------------------------------------------------------------------------
// Payload builders
// ---------------------------------------------------------------------------------------------------

export interface SlackUserRef {
  id: string;
  name: string;
  username?: string;
  team_id?: string;
}

export interface SlackTeamRef {
  id: string;
  domain?: string;
}

/** The parts of a posted message a payload carries (FakeMessage from slackApi.ts fits). */
export interface MessageLike {
  ts?: string;
  text?: string;
  blocks?: readonly Record<string, unknown>[] | undefined;
  thread_ts?: string | undefined;
  user?: string;
  bot_id?: string;
  app_id?: string;
  team?: string;
}

export interface BlockActionInput {
  user: SlackUserRef;
  team: SlackTeamRef;
  actionId: string;
  value: string;
  /** Channel id, or `{id, name}`. */
  channel: string | { id: string; name?: string };
  messageTs: string;
  triggerId?: string;
  /** Defaults to the block holding `actionId` in `message.blocks`, else a random id. */
  blockId?: string;
  /** The message the button is on (e.g. `fake.getMessage(channel, ts)`); sent as `message`. */
  message?: MessageLike;
  /** Defaults to a hooks.slack.com-shaped URL; pass `fake.responseUrl({channel, ts})` to serve it. */
  responseUrl?: string;
  apiAppId?: string;
  /** `container.is_ephemeral`. */
  isEphemeral?: boolean;
  /** Button label when it cannot be found in `message`. */
  buttonText?: string;
  /** Verification token (legacy; Bolt ignores it). */
  token?: string;
}

export interface SlackButtonAction {
  type: 'button';
  action_id: string;
  block_id: string;
  text: { type: 'plain_text'; text: string; emoji: boolean };
  value: string;
  style?: string;
  action_ts: string;
}

export interface BlockActionsPayload {
  type: 'block_actions';
  user: { id: string; username: string; name: string; team_id: string };
  api_app_id: string;
  token: string;
  container: {
    type: 'message';
    message_ts: string;
    channel_id: string;
    is_ephemeral: boolean;
    thread_ts?: string;
  };
  trigger_id: string;
  team: { id: string; domain: string };
  enterprise: null;
  is_enterprise_install: boolean;
  channel: { id: string; name: string };
  message: Record<string, unknown>;
  state: { values: Record<string, unknown> };
  response_url: string;
  actions: SlackButtonAction[];
}

/** The `user` object of an interactivity payload. */
function userPayload(user: SlackUserRef, team: SlackTeamRef) {
  return {
    id: user.id,
    username: user.username ?? user.name,
    name: user.name,
    team_id: user.team_id ?? team.id,
  };
}

/** Slack-shaped trigger id: `<digits>.<digits>.<32 hex>`. */
export function fakeTriggerId(): string {
  const n = () => String(1_000_000_000_000 + Math.floor(Math.random() * 8_999_999_999_999));
  return `${n()}.${n()}.${randomBytes(16).toString('hex')}`;
}

/** A ts-shaped string for now: `<seconds>.<6 digits>`. */
export function fakeActionTs(): string {
  const ms = Date.now();
  return `${Math.floor(ms / 1000)}.${String((ms % 1000) * 1000 + Math.floor(Math.random() * 1000)).padStart(6, '0')}`;
}

function fakeResponseUrl(teamId: string): string {
  return `https://hooks.slack.com/actions/${teamId}/${Date.now()}/${randomBytes(12).toString('hex')}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Finds the element with `actionId` in actions blocks or section accessories. */
function findElement(
  blocks: readonly Record<string, unknown>[] | undefined,
  actionId: string,
): { blockId: string | undefined; element: Record<string, unknown> } | undefined {
  for (const block of blocks ?? []) {
    const blockId = typeof block['block_id'] === 'string' ? block['block_id'] : undefined;
    const candidates = [...(Array.isArray(block['elements']) ? block['elements'] : []), block['accessory']];
    for (const el of candidates) {
      if (isRecord(el) && el['action_id'] === actionId) return { blockId, element: el };
    }
  }
  return undefined;
}

export function blockActionPayload(input: BlockActionInput): BlockActionsPayload {
  const channel = typeof input.channel === 'string' ? { id: input.channel } : input.channel;
  const found = findElement(input.message?.blocks, input.actionId);
  const label = isRecord(found?.element['text']) ? found.element['text']['text'] : undefined;
  const style = found?.element['style'];
  const threadTs = input.message?.thread_ts;
  const action: SlackButtonAction = {
    type: 'button',
    action_id: input.actionId,
    block_id: input.blockId ?? found?.blockId ?? randomBytes(3).toString('base64url'),
    text: {
      type: 'plain_text',
      text: typeof label === 'string' ? label : (input.buttonText ?? 'Button'),
      emoji: true,
    },
    value: input.value,
    ...(typeof style === 'string' ? { style } : {}),
    action_ts: fakeActionTs(),
  };
  const msg = input.message;
  return {
    type: 'block_actions',
    user: userPayload(input.user, input.team),
    api_app_id: input.apiAppId ?? 'A0FAKEAPP',
    token: input.token ?? 'fakeVerificationToken',
    container: {
      type: 'message',
      message_ts: input.messageTs,
      channel_id: channel.id,
      is_ephemeral: input.isEphemeral ?? false,
      ...(threadTs ? { thread_ts: threadTs } : {}),
    },
    trigger_id: input.triggerId ?? fakeTriggerId(),
    team: { id: input.team.id, domain: input.team.domain ?? 'fake' },
    enterprise: null,
    is_enterprise_install: false,
    channel: {
      id: channel.id,
      name: channel.name ?? (channel.id.startsWith('D') ? 'directmessage' : 'fake'),
    },
    message: {
      type: 'message',
      text: msg?.text ?? '',
      user: msg?.user ?? 'U0FAKEBOT',
      ts: msg?.ts ?? input.messageTs,
      ...(msg?.bot_id ? { bot_id: msg.bot_id } : {}),
      ...(msg?.app_id ? { app_id: msg.app_id } : {}),
      team: msg?.team ?? input.team.id,
      ...(threadTs ? { thread_ts: threadTs } : {}),
      blocks: msg?.blocks ? [...msg.blocks] : [],
    },
    state: { values: {} },
    response_url: input.responseUrl ?? fakeResponseUrl(input.team.id),
    actions: [action],
  };
}

/** `state.values`: block_id → action_id → element state (e.g. `{type:'plain_text_input', value:'x'}`). */
export type ViewStateValues = Record<string, Record<string, Record<string, unknown>>>;

/** Shorthand for text inputs: `{block: {action: 'typed'}}` → state.values of plain_text_input. */
export function plainTextValues(values: Record<string, Record<string, string | null>>): ViewStateValues {
  const out: ViewStateValues = {};
  for (const [blockId, actions] of Object.entries(values)) {
    out[blockId] = {};
    for (const [actionId, value] of Object.entries(actions)) {
      const block = out[blockId];
      if (block) block[actionId] = { type: 'plain_text_input', value };
    }
  }
  return out;
}

export interface ViewSubmissionInput {
  user: SlackUserRef;
  team: SlackTeamRef;
  callbackId: string;
  privateMetadata: string;
  values: ViewStateValues;
  viewId?: string;
  /** The view as opened (e.g. one of `fake.views`), to carry its blocks/title/hash. */
  view?: Record<string, unknown>;
  triggerId?: string;
  apiAppId?: string;
  botId?: string;
  token?: string;
}

export interface ViewSubmissionPayload {
  type: 'view_submission';
  team: { id: string; domain: string };
  user: { id: string; username: string; name: string; team_id: string };
  api_app_id: string;
  token: string;
  trigger_id: string;
  view: {
    id: string;
    team_id: string;
    type: 'modal';
    blocks: unknown[];
    private_metadata: string;
    callback_id: string;
    state: { values: ViewStateValues };
    hash: string;
    title: unknown;
    clear_on_close: boolean;
    notify_on_close: boolean;
    close: unknown;
    submit: unknown;
    previous_view_id: string | null;
    root_view_id: string;
    app_id: string;
    external_id: string;
    app_installed_team_id: string;
    bot_id: string;
  };
  response_urls: unknown[];
  is_enterprise_install: boolean;
  enterprise: null;
}

export function viewSubmissionPayload(input: ViewSubmissionInput): ViewSubmissionPayload {
  const v = input.view ?? {};
  const pick = <T>(key: string, fallback: T): T => (key in v ? (v[key] as T) : fallback);
  const viewId = input.viewId ?? pick<string>('id', `V${randomBytes(5).toString('hex').toUpperCase()}`);
  const appId = input.apiAppId ?? pick<string>('app_id', 'A0FAKEAPP');
  return {
    type: 'view_submission',
    team: { id: input.team.id, domain: input.team.domain ?? 'fake' },
    user: userPayload(input.user, input.team),
    api_app_id: appId,
    token: input.token ?? 'fakeVerificationToken',
    trigger_id: input.triggerId ?? fakeTriggerId(),
    view: {
      id: viewId,
      team_id: input.team.id,
      type: 'modal',
      blocks: pick<unknown[]>('blocks', []),
      private_metadata: input.privateMetadata,
      callback_id: input.callbackId,
      state: { values: input.values },
      hash: pick<string>('hash', `${nowSeconds()}.${randomBytes(4).toString('hex')}`),
      title: pick<unknown>('title', { type: 'plain_text', text: 'Modal', emoji: true }),
      clear_on_close: pick<boolean>('clear_on_close', false),
      notify_on_close: pick<boolean>('notify_on_close', false),
      close: pick<unknown>('close', null),
      submit: pick<unknown>('submit', { type: 'plain_text', text: 'Submit', emoji: true }),
      previous_view_id: pick<string | null>('previous_view_id', null),
      root_view_id: pick<string>('root_view_id', viewId),
      app_id: appId,
      external_id: pick<string>('external_id', ''),
      app_installed_team_id: input.team.id,
      bot_id: input.botId ?? pick<string>('bot_id', 'B0FAKEBOT'),
    },
    response_urls: [],
    is_enterprise_install: false,
    enterprise: null,
  };
}

/** `view_closed`: the user dismissed a modal opened with `notify_on_close` (or Slack sends it anyway). */
export function viewClosedPayload(input: {
  user: SlackUserRef;
  team: SlackTeamRef;
  callbackId: string;
  privateMetadata: string;
}): Record<string, unknown> {
  return {
    type: 'view_closed',
    team: { id: input.team.id, domain: input.team.domain ?? 'fake' },
    user: userPayload(input.user, input.team),
    api_app_id: 'A0FAKEAPP',
    token: 'fakeVerificationToken',
    view: {
      id: `V${randomBytes(5).toString('hex').toUpperCase()}`,
      type: 'modal',
      callback_id: input.callbackId,
      private_metadata: input.privateMetadata,
      state: { values: {} },
    },
    is_cleared: false,
  };
}

// ---------------------------------------------------------------------------------------------------
// Posting
// ---------------------------------------------------------------------------------------------------

/** Slack's interactivity body: `payload=<urlencoded JSON>`. */
export function formBody(payload: unknown): string {
  return new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
}

export interface PostSlackOptions {
  /** Sign with this timestamp (e.g. `nowSeconds() - 600` for a stale request). */
  timestamp?: number;
  /** Send this signature instead of the right one (forged). */
  signature?: string;
  /** Leave the signature headers out entirely. */
  unsigned?: boolean;
  /**
   * How to encode `payload`: `interactive` (default) → `payload=<JSON>` form; `form` → the object's
   * fields as a form (slash commands); `json` → JSON body (Events API).
   */
  encoding?: 'interactive' | 'form' | 'json';
  headers?: Record<string, string>;
}

export interface PostSlackResult {
  status: number;
  text: string;
  json: unknown;
  headers: Headers;
}

export async function postSlack(
  url: string,
  signingSecret: string,
  payload: unknown,
  opts: PostSlackOptions = {},
): Promise<PostSlackResult> {
  const encoding = opts.encoding ?? 'interactive';
  let body: string;
  let contentType: string;
  if (encoding === 'json') {
    body = JSON.stringify(payload);
    contentType = 'application/json';
  } else if (encoding === 'form') {
    const fields: Record<string, string> = {};
    if (isRecord(payload)) for (const [k, v] of Object.entries(payload)) fields[k] = String(v);
    body = new URLSearchParams(fields).toString();
    contentType = 'application/x-www-form-urlencoded';
  } else {
    body = formBody(payload);
    contentType = 'application/x-www-form-urlencoded';
  }
  const signed = signSlackRequest(signingSecret, body, opts.timestamp ?? nowSeconds());
  const headers: Record<string, string> = {
    'content-type': contentType,
    'user-agent': 'Slackbot 1.0 (+https://api.slack.com/robots)',
    ...(opts.unsigned
      ? {}
      : {
          'x-slack-request-timestamp': signed['x-slack-request-timestamp'],
          'x-slack-signature': opts.signature ?? signed['x-slack-signature'],
        }),
    ...(opts.headers ?? {}),
  };
  const res = await fetch(url, { method: 'POST', headers, body });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, headers: res.headers };
}
