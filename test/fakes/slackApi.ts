/**
 * A fake Slack for end-to-end tests: the Web API under `/api/` and Socket Mode under `/link`, on one
 * in-process HTTP server bound to 127.0.0.1. It speaks the wire protocol the real clients use, so
 * `@slack/web-api`, `@slack/socket-mode` and Bolt can be pointed at it unchanged:
 *
 *   new WebClient(botToken, { slackApiUrl: fake.apiUrl })
 *   new SocketModeClient({ appToken, clientOptions: { slackApiUrl: fake.apiUrl } })
 *   new App({ token, appToken, socketMode: true, clientOptions: { slackApiUrl: fake.apiUrl } })
 *
 * What the clients send (checked against @slack/web-api 8.2 / @slack/socket-mode 3.1):
 * - every Web API call is `POST <slackApiUrl><method>` with `Content-Type: application/x-www-form-urlencoded`
 *   (multipart only when an argument is a Buffer). Non-scalar arguments (`blocks`, `view`, `attachments`,
 *   `metadata`) are JSON-encoded strings; numbers and booleans arrive as strings ("true").
 * - the token is `Authorization: Bearer …`; a per-call `token` argument is ALSO left in the form body.
 * - Slack answers HTTP 200 with `{ok:false, error}` for API errors; web-api only retries on a non-200
 *   status (429 needs a `Retry-After` header, or it gives up at once).
 * - Socket Mode: `apps.connections.open` with the app-level token (`xapp-…`) in the Authorization header
 *   and an empty body, then a WebSocket to the returned URL. The client counts itself connected only on
 *   the `hello` frame; it acks an envelope with `{envelope_id, payload}` (payload `{}` for a bare ack).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';

// ---------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------

export type Block = Record<string, unknown>;

export interface FakeUser {
  name: string;
  real_name?: string;
  /** Defaults to `name`; pass '' to model a user who never set one. */
  display_name?: string;
  is_bot?: boolean;
  deleted?: boolean;
  email?: string;
  tz?: string;
}

export interface FakeChannel {
  name?: string;
  is_private?: boolean;
  /** A DM; `user` is the other party. */
  is_im?: boolean;
  user?: string;
}

export interface FakeSlackOptions {
  users?: Record<string, FakeUser>;
  usergroups?: Record<string, string[]>;
  /** When given, posting to (or asking about) any other channel answers `channel_not_found`. */
  channels?: string[] | Record<string, FakeChannel>;
  teamId?: string;
  teamDomain?: string;
  teamName?: string;
  appId?: string;
  /** Accepted only by apps.connections.open. Default `xapp-1-A0FAKEAPP-1-fake`. */
  appToken?: string;
  /** Accepted by every other method. Default `xoxb-fake-bot-token`. */
  botToken?: string;
  botUserId?: string;
  botId?: string;
  botName?: string;
  /** How often the fake pings each Socket Mode connection (like Slack does). 0 disables. Default 10s. */
  serverPingIntervalMs?: number;
  /** Answer the client's WebSocket pings with pongs. Default true; false makes the client time out. */
  answerPings?: boolean;
  /** How long sendSocketEvent waits for the ack. Default 5000 ms. */
  ackTimeoutMs?: number;
}

export interface FakeCall {
  /** Web API method (`chat.postMessage`), or `response_url` for a post to a fake response_url. */
  method: string;
  /** Decoded arguments: JSON-string fields (`blocks`, `view`, …) parsed; `token` removed. */
  args: Record<string, unknown>;
  at: Date;
  /** The token used (header, else form `token`), if any. */
  token: string | undefined;
  /** How the request body was encoded. */
  encoding: 'form' | 'json' | 'multipart' | 'none';
  /** HTTP status answered (0 when the connection was cut by an injected `network` failure). */
  status: number;
  /** The JSON answered, if any. */
  response: Record<string, unknown> | undefined;
  /** True when a failNext() entry produced the answer. */
  injected: boolean;
  /** Request path (useful for response_url posts). */
  path: string;
}

/**
 * An injected failure: a Slack error string (HTTP 200 `{ok:false,error}`), a 429 with Retry-After (in
 * seconds; web-api sleeps that long then retries), another HTTP status, or a cut connection.
 */
export type FakeFailure =
  | string
  | { error: string; extra?: Record<string, unknown> }
  | { status: 429; retryAfter?: number }
  | { status: number; body?: string }
  | { network: true };

export interface FakeMessageVersion {
  text: string;
  blocks: Block[] | undefined;
  at: Date;
  via: string;
}

export interface FakeMessage {
  channel: string;
  ts: string;
  thread_ts: string | undefined;
  text: string;
  blocks: Block[] | undefined;
  attachments: unknown[] | undefined;
  metadata: unknown;
  user: string;
  bot_id: string;
  app_id: string;
  team: string;
  edited: { user: string; ts: string } | undefined;
  deleted: boolean;
  /** Every state the message has been in, oldest first (post, then each update). */
  versions: FakeMessageVersion[];
}

export interface FakeEphemeral {
  channel: string;
  user: string;
  message_ts: string;
  thread_ts: string | undefined;
  text: string;
  blocks: Block[] | undefined;
}

export interface FakeView {
  id: string;
  team_id: string;
  type: string;
  title: unknown;
  submit: unknown;
  close: unknown;
  blocks: Block[];
  private_metadata: string;
  callback_id: string;
  external_id: string;
  state: { values: Record<string, unknown> };
  hash: string;
  clear_on_close: boolean;
  notify_on_close: boolean;
  root_view_id: string;
  previous_view_id: string | null;
  app_id: string;
  app_installed_team_id: string;
  bot_id: string;
  /** Which trigger opened it (views.open / views.push). */
  trigger_id: string | undefined;
}

export type SocketEventType = 'interactive' | 'events_api' | 'slash_commands';

export interface SocketAck {
  envelope_id: string;
  payload?: Record<string, unknown>;
}

export interface SendSocketEventOptions {
  /** Default: true for interactive and slash_commands, false for events_api (as Slack does). */
  acceptsResponsePayload?: boolean;
  retryAttempt?: number;
  retryReason?: string;
  timeoutMs?: number;
  envelopeId?: string;
}

export type DropMode =
  /** Close frame 1001 from the server (the client answers and reconnects). */
  | 'close'
  /** Cut the TCP connection, no close frame (a network blip). */
  | 'terminate'
  /** Send Slack's `{type:'disconnect', reason:'refresh_requested'}` and let the client close. */
  | 'disconnect';

export interface FakeSlack {
  readonly port: number;
  /** `http://127.0.0.1:<port>/api/` — pass as `slackApiUrl`. */
  readonly apiUrl: string;
  readonly baseUrl: string;
  readonly teamId: string;
  readonly appId: string;
  readonly botToken: string;
  readonly appToken: string;
  readonly botUserId: string;
  readonly botId: string;

  calls(method?: string): FakeCall[];
  /** Current state of every posted message (after updates), in posting order. */
  readonly messages: FakeMessage[];
  getMessage(channel: string, ts: string): FakeMessage | undefined;
  readonly ephemerals: FakeEphemeral[];
  /** Every opened modal in its current state (views.open / push / update). */
  readonly views: FakeView[];
  /** Resolves with the first call (past or future) matching. */
  waitFor(predicate: string | ((call: FakeCall) => boolean), timeoutMs?: number): Promise<FakeCall>;
  /** The next `times` calls to `method` fail this way instead of being served. */
  failNext(method: string, failure: FakeFailure, times?: number): void;
  /**
   * A response_url served by the fake. Bound to a message, `replace_original` / `delete_original`
   * posts change it in `messages`; every post is recorded as method `response_url`.
   */
  responseUrl(target?: { channel: string; ts: string }): string;
  /** Forget calls, messages, views and pending failures; keeps the Socket Mode connection. */
  reset(): void;
  close(): Promise<void>;

  // Socket Mode
  sendSocketEvent(
    type: SocketEventType,
    payload: Record<string, unknown>,
    opts?: SendSocketEventOptions,
  ): Promise<SocketAck>;
  /**
   * Resolves once a connection has been sent `hello` (at once if one is live). This is the server's view:
   * the client handles the hello a tick later, so before stopping a client that is reconnecting, also
   * wait for its own `connected` event (socket-mode rejects an unhandled promise otherwise).
   */
  socketConnected(timeoutMs?: number): Promise<void>;
  /** Close the live connection(s); resolves when they are gone. The client should reconnect. */
  dropSocket(mode?: DropMode): Promise<void>;
  /** Every frame a client sent us (acks, parsed), oldest first. */
  readonly socketFrames: Record<string, unknown>[];
  /** How many WebSocket connections have been accepted so far. */
  readonly socketConnectionCount: number;
  /** How many client pings the fake has seen. */
  readonly socketPingCount: number;
}

// ---------------------------------------------------------------------------------------------------
// Slack's limits (docs.slack.dev/reference/block-kit, chat.postMessage, views.open)
// ---------------------------------------------------------------------------------------------------

export const SLACK_LIMITS = {
  messageBlocks: 50,
  modalBlocks: 100,
  text: 40_000,
  headerText: 150,
  sectionText: 3000,
  sectionFields: 10,
  sectionFieldText: 2000,
  contextElements: 10,
  actionsElements: 25,
  buttonText: 75,
  buttonValue: 2000,
  buttonUrl: 3000,
  actionId: 255,
  blockId: 255,
  modalTitle: 24,
  modalButton: 24,
  callbackId: 255,
  privateMetadata: 3000,
  inputLabel: 2000,
  inputHint: 2000,
  optionText: 75,
  optionValue: 150,
  selectOptions: 100,
} as const;

/** Argument names web-api JSON-encodes into a form field. */
const JSON_FIELDS = new Set([
  'blocks',
  'attachments',
  'view',
  'metadata',
  'user_auth_blocks',
  'unfurls',
  'options',
  'profile',
  'chunks',
]);

// ---------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------

type Args = Record<string, unknown>;
type Answer = Record<string, unknown>;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

function randomId(prefix: string, length = 10): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  const bytes = randomBytes(length);
  let out = prefix;
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

function fail(error: string, messages?: string[]): Answer {
  return messages && messages.length > 0
    ? { ok: false, error, response_metadata: { messages } }
    : { ok: false, error };
}

/** Slack-style validation messages: `[ERROR] … [json-pointer:/blocks/0/text/text]`. */
class Problems {
  readonly list: string[] = [];
  add(message: string, pointer: string): void {
    this.list.push(`[ERROR] ${message} [json-pointer:${pointer}]`);
  }
  maxLength(value: unknown, max: number, pointer: string): void {
    if (typeof value === 'string' && value.length > max) {
      this.add(`must be less than ${max + 1} characters`, pointer);
    }
  }
  maxItems(value: unknown, max: number, pointer: string): void {
    if (Array.isArray(value) && value.length > max) this.add(`no more than ${max} items allowed`, pointer);
  }
  textObject(obj: unknown, max: number, pointer: string, required: boolean, plainOnly = false): void {
    if (obj === undefined) {
      if (required) this.add('missing required field: text', pointer);
      return;
    }
    if (!isObject(obj)) {
      this.add('must be an object', pointer);
      return;
    }
    const type = obj['type'];
    if (type !== 'plain_text' && type !== 'mrkdwn') {
      this.add('must be a valid enum value', `${pointer}/type`);
    } else if (plainOnly && type !== 'plain_text') {
      this.add('must be a valid enum value', `${pointer}/type`);
    }
    const text = obj['text'];
    if (typeof text !== 'string') this.add('missing required field: text', `${pointer}/text`);
    else if (text.length === 0) this.add('must be more than 0 characters', `${pointer}/text`);
    else this.maxLength(text, max, `${pointer}/text`);
  }
}

function validateElement(el: unknown, p: Problems, pointer: string): void {
  if (!isObject(el)) {
    p.add('must be an object', pointer);
    return;
  }
  if (typeof el['type'] !== 'string') p.add('missing required field: type', `${pointer}/type`);
  p.maxLength(el['action_id'], SLACK_LIMITS.actionId, `${pointer}/action_id`);
  switch (el['type']) {
    case 'button':
      p.textObject(el['text'], SLACK_LIMITS.buttonText, `${pointer}/text`, true, true);
      p.maxLength(el['value'], SLACK_LIMITS.buttonValue, `${pointer}/value`);
      p.maxLength(el['url'], SLACK_LIMITS.buttonUrl, `${pointer}/url`);
      if (el['style'] !== undefined && el['style'] !== 'primary' && el['style'] !== 'danger') {
        p.add('must be a valid enum value', `${pointer}/style`);
      }
      break;
    case 'static_select':
    case 'multi_static_select':
    case 'overflow':
    case 'radio_buttons':
    case 'checkboxes': {
      const options = el['options'];
      p.maxItems(options, SLACK_LIMITS.selectOptions, `${pointer}/options`);
      if (Array.isArray(options)) {
        for (const [i, opt] of options.entries()) {
          const op = `${pointer}/options/${i}`;
          if (!isObject(opt)) {
            p.add('must be an object', op);
            continue;
          }
          p.textObject(opt['text'], SLACK_LIMITS.optionText, `${op}/text`, true);
          p.maxLength(opt['value'], SLACK_LIMITS.optionValue, `${op}/value`);
        }
      }
      break;
    }
    default:
      break;
  }
}

function validateBlocks(blocks: unknown[], max: number, p: Problems, base = '/blocks'): void {
  p.maxItems(blocks, max, base);
  for (const [i, block] of blocks.entries()) {
    const pointer = `${base}/${i}`;
    if (!isObject(block)) {
      p.add('must be an object', pointer);
      continue;
    }
    const type = block['type'];
    if (typeof type !== 'string') {
      p.add('missing required field: type', `${pointer}/type`);
      continue;
    }
    p.maxLength(block['block_id'], SLACK_LIMITS.blockId, `${pointer}/block_id`);
    switch (type) {
      case 'header':
        p.textObject(block['text'], SLACK_LIMITS.headerText, `${pointer}/text`, true, true);
        break;
      case 'section': {
        const fields = block['fields'];
        if (block['text'] === undefined && fields === undefined) {
          p.add('must provide either text or fields', pointer);
        }
        p.textObject(block['text'], SLACK_LIMITS.sectionText, `${pointer}/text`, false);
        if (fields !== undefined) {
          if (!Array.isArray(fields)) p.add('must be an array', `${pointer}/fields`);
          else {
            p.maxItems(fields, SLACK_LIMITS.sectionFields, `${pointer}/fields`);
            for (const [j, f] of fields.entries()) {
              p.textObject(f, SLACK_LIMITS.sectionFieldText, `${pointer}/fields/${j}`, true);
            }
          }
        }
        if (block['accessory'] !== undefined) validateElement(block['accessory'], p, `${pointer}/accessory`);
        break;
      }
      case 'context': {
        const elements = block['elements'];
        if (!Array.isArray(elements) || elements.length === 0) {
          p.add('must provide at least 1 item', `${pointer}/elements`);
        } else p.maxItems(elements, SLACK_LIMITS.contextElements, `${pointer}/elements`);
        break;
      }
      case 'actions': {
        const elements = block['elements'];
        if (!Array.isArray(elements) || elements.length === 0) {
          p.add('must provide at least 1 item', `${pointer}/elements`);
        } else {
          p.maxItems(elements, SLACK_LIMITS.actionsElements, `${pointer}/elements`);
          for (const [j, el] of elements.entries()) validateElement(el, p, `${pointer}/elements/${j}`);
        }
        break;
      }
      case 'input':
        p.textObject(block['label'], SLACK_LIMITS.inputLabel, `${pointer}/label`, true, true);
        p.textObject(block['hint'], SLACK_LIMITS.inputHint, `${pointer}/hint`, false, true);
        if (block['element'] === undefined) p.add('missing required field: element', `${pointer}/element`);
        else validateElement(block['element'], p, `${pointer}/element`);
        break;
      default:
        break;
    }
  }
}

/** Monotonic Slack timestamps: "<seconds>.<6 digits>", unique per fake. */
function tsFactory(): () => string {
  let last = 0;
  return () => {
    const micros = Math.max(Date.now() * 1000, last + 1);
    last = micros;
    return `${Math.floor(micros / 1e6)}.${String(micros % 1e6).padStart(6, '0')}`;
  };
}

interface ParsedRequest {
  args: Args;
  encoding: FakeCall['encoding'];
  bodyToken: string | undefined;
  parseError: string | undefined;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function decodeJsonFields(raw: Record<string, string>): Args {
  const args: Args = {};
  for (const [key, value] of Object.entries(raw)) {
    if (JSON_FIELDS.has(key)) {
      try {
        args[key] = JSON.parse(value);
      } catch {
        args[key] = value; // left as a string: the handler answers *_format errors
      }
    } else args[key] = value;
  }
  return args;
}

async function parseRequest(req: IncomingMessage, url: URL): Promise<ParsedRequest> {
  const raw = await readBody(req);
  const contentType = (req.headers['content-type'] ?? '').toLowerCase();
  const fields: Record<string, string> = {};
  for (const [k, v] of url.searchParams) fields[k] = v;
  let args: Args;
  let encoding: FakeCall['encoding'] = 'none';
  let parseError: string | undefined;
  let bodyToken: string | undefined;

  if (raw.length === 0) {
    args = decodeJsonFields(fields);
  } else if (contentType.startsWith('application/json')) {
    encoding = 'json';
    args = decodeJsonFields(fields);
    try {
      const parsed: unknown = JSON.parse(raw.toString('utf8'));
      if (isObject(parsed)) Object.assign(args, parsed);
      else parseError = 'invalid_json';
    } catch {
      parseError = 'invalid_json';
    }
    // A token in a JSON body is ignored (Slack wants the Authorization header with JSON).
  } else if (contentType.startsWith('multipart/form-data')) {
    encoding = 'multipart';
    const form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
    for (const [k, v] of form) {
      fields[k] = typeof v === 'string' ? v : `<file ${v.name} ${v.size} bytes>`;
    }
    args = decodeJsonFields(fields);
  } else {
    encoding = 'form';
    for (const [k, v] of new URLSearchParams(raw.toString('utf8'))) fields[k] = v;
    args = decodeJsonFields(fields);
  }
  if (encoding !== 'json' && typeof args['token'] === 'string') bodyToken = args['token'];
  delete args['token'];
  return { args, encoding, bodyToken, parseError };
}

// ---------------------------------------------------------------------------------------------------
// The fake
// ---------------------------------------------------------------------------------------------------

interface Waiter {
  predicate: (call: FakeCall) => boolean;
  resolve: (call: FakeCall) => void;
}

interface PendingAck {
  resolve: (ack: SocketAck) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface Live {
  ws: WebSocket;
  pinger: NodeJS.Timeout | undefined;
  ready: boolean;
}

export async function startFakeSlack(opts: FakeSlackOptions = {}): Promise<FakeSlack> {
  const teamId = opts.teamId ?? 'T0FAKETEAM';
  const teamDomain = opts.teamDomain ?? 'fake';
  const teamName = opts.teamName ?? 'Fake Workspace';
  const appId = opts.appId ?? 'A0FAKEAPP';
  const appToken = opts.appToken ?? `xapp-1-${appId}-1-fake`;
  const botToken = opts.botToken ?? 'xoxb-fake-bot-token';
  const botUserId = opts.botUserId ?? 'U0FAKEBOT';
  const botId = opts.botId ?? 'B0FAKEBOT';
  const botName = opts.botName ?? 'agent-otp';
  const serverPingIntervalMs = opts.serverPingIntervalMs ?? 10_000;
  const ackTimeoutMs = opts.ackTimeoutMs ?? 5000;

  const users: Record<string, FakeUser> = { ...(opts.users ?? {}) };
  if (!users[botUserId]) users[botUserId] = { name: botName, real_name: 'Agent OTP', is_bot: true };
  const usergroups = opts.usergroups ?? {};
  const channels: Record<string, FakeChannel> | undefined = Array.isArray(opts.channels)
    ? Object.fromEntries(opts.channels.map((c) => [c, {}]))
    : opts.channels;

  const nextTs = tsFactory();
  let calls: FakeCall[] = [];
  let messages = new Map<string, FakeMessage>();
  let ephemerals: FakeEphemeral[] = [];
  let views = new Map<string, FakeView>();
  let failures = new Map<string, FakeFailure[]>();
  let waiters: Waiter[] = [];
  const responseUrls = new Map<string, { channel: string; ts: string } | undefined>();
  const tickets = new Set<string>();
  const live = new Set<Live>();
  const pendingAcks = new Map<string, PendingAck>();
  const connectedWaiters: (() => void)[] = [];
  const socketFrames: Record<string, unknown>[] = [];
  let socketConnectionCount = 0;
  let socketPingCount = 0;
  let port = 0;

  const messageKey = (channel: string, ts: string) => `${channel}:${ts}`;

  function record(call: FakeCall): void {
    calls.push(call);
    for (const w of [...waiters]) {
      if (w.predicate(call)) {
        waiters = waiters.filter((x) => x !== w);
        w.resolve(call);
      }
    }
  }

  function takeFailure(method: string): FakeFailure | undefined {
    const queue = failures.get(method);
    if (!queue || queue.length === 0) return undefined;
    const f = queue.shift();
    if (queue.length === 0) failures.delete(method);
    return f;
  }

  /** Maps a user id to its DM channel (Slack opens an IM when you post to U…). */
  function resolveChannel(channel: string): string | undefined {
    if (/^[UW][A-Z0-9]+$/.test(channel)) {
      if (opts.users && !users[channel]) return undefined;
      return `D${channel.slice(1)}`;
    }
    if (channels && !channels[channel] && !channel.startsWith('D')) return undefined;
    return channel;
  }

  function slackMessage(m: FakeMessage): Answer {
    return {
      type: 'message',
      text: m.text,
      user: m.user,
      bot_id: m.bot_id,
      app_id: m.app_id,
      team: m.team,
      ts: m.ts,
      ...(m.thread_ts ? { thread_ts: m.thread_ts } : {}),
      ...(m.blocks ? { blocks: m.blocks } : {}),
      ...(m.attachments ? { attachments: m.attachments } : {}),
      ...(m.edited ? { edited: m.edited } : {}),
      bot_profile: { id: botId, app_id: appId, name: botName, deleted: false, team_id: teamId },
    };
  }

  /** Text/blocks checks shared by postMessage, update, postEphemeral and response_url. */
  function checkContent(
    args: Args,
    requireContent: boolean,
  ): { error: Answer } | { text: string | undefined; blocks: Block[] | undefined } {
    const rawBlocks = args['blocks'];
    let blocks: Block[] | undefined;
    if (rawBlocks !== undefined && rawBlocks !== '') {
      if (!Array.isArray(rawBlocks)) return { error: fail('invalid_blocks_format') };
      const p = new Problems();
      validateBlocks(rawBlocks, SLACK_LIMITS.messageBlocks, p);
      if (p.list.length > 0) return { error: fail('invalid_blocks', p.list) };
      blocks = (rawBlocks as Block[]).map((b) =>
        typeof b['block_id'] === 'string' ? b : { ...b, block_id: randomId('', 5) },
      );
    }
    const text = str(args['text']);
    if (text !== undefined && text.length > SLACK_LIMITS.text) return { error: fail('msg_too_long') };
    const attachments = args['attachments'];
    if (requireContent && !text && !blocks && !(Array.isArray(attachments) && attachments.length > 0)) {
      return { error: fail('no_text') };
    }
    return { text, blocks };
  }

  function viewFrom(
    args: Args,
    triggerId: string | undefined,
    previous?: FakeView,
  ): { error: Answer } | { view: FakeView } {
    const view = args['view'];
    if (view === undefined)
      return { error: fail('invalid_arguments', ['[ERROR] missing required field: view']) };
    if (!isObject(view)) {
      return { error: fail('invalid_arguments', ['[ERROR] must be an object [json-pointer:/view]']) };
    }
    const p = new Problems();
    if (view['type'] !== 'modal') p.add('must be a valid enum value', '/view/type');
    p.textObject(view['title'], SLACK_LIMITS.modalTitle, '/view/title', true, true);
    p.textObject(view['submit'], SLACK_LIMITS.modalButton, '/view/submit', false, true);
    p.textObject(view['close'], SLACK_LIMITS.modalButton, '/view/close', false, true);
    p.maxLength(view['callback_id'], SLACK_LIMITS.callbackId, '/view/callback_id');
    p.maxLength(view['private_metadata'], SLACK_LIMITS.privateMetadata, '/view/private_metadata');
    const blocks = view['blocks'];
    if (!Array.isArray(blocks)) p.add('missing required field: blocks', '/view/blocks');
    else validateBlocks(blocks, SLACK_LIMITS.modalBlocks, p, '/view/blocks');
    if (p.list.length > 0) return { error: fail('invalid_arguments', p.list) };
    const id = previous?.id ?? randomId('V');
    const made: FakeView = {
      id,
      team_id: teamId,
      type: 'modal',
      title: view['title'],
      submit: view['submit'] ?? null,
      close: view['close'] ?? null,
      blocks: (blocks as Block[]).map((b) =>
        typeof b['block_id'] === 'string' ? b : { ...b, block_id: randomId('', 5) },
      ),
      private_metadata: str(view['private_metadata']) ?? '',
      callback_id: str(view['callback_id']) ?? '',
      external_id: str(view['external_id']) ?? '',
      state: { values: {} },
      hash: `${Math.floor(Date.now() / 1000)}.${randomId('', 8)}`,
      clear_on_close: view['clear_on_close'] === true,
      notify_on_close: view['notify_on_close'] === true,
      root_view_id: previous?.root_view_id ?? id,
      previous_view_id: previous ? (previous.previous_view_id ?? null) : null,
      app_id: appId,
      app_installed_team_id: teamId,
      bot_id: botId,
      trigger_id: triggerId ?? previous?.trigger_id,
    };
    return { view: made };
  }

  function publicView(v: FakeView): Answer {
    const { trigger_id: _t, ...rest } = v;
    return rest;
  }

  function userObject(id: string, u: FakeUser): Answer {
    const realName = u.real_name ?? u.name;
    const displayName = u.display_name ?? u.name;
    return {
      id,
      team_id: teamId,
      name: u.name,
      deleted: u.deleted ?? false,
      real_name: realName,
      tz: u.tz ?? 'Europe/London',
      is_bot: u.is_bot ?? false,
      is_admin: false,
      is_app_user: false,
      profile: {
        display_name: displayName,
        display_name_normalized: displayName,
        real_name: realName,
        real_name_normalized: realName,
        ...(u.email ? { email: u.email } : {}),
        team: teamId,
      },
    };
  }

  // ---- Web API methods --------------------------------------------------------------------------

  /** views.open and views.push: a new view for a trigger id. */
  function openView(args: Args): Answer {
    const triggerId = str(args['trigger_id']);
    if (!triggerId) return fail('invalid_arguments', ['[ERROR] missing required field: trigger_id']);
    const made = viewFrom(args, triggerId);
    if ('error' in made) return made.error;
    views.set(made.view.id, made.view);
    return { ok: true, view: publicView(made.view) };
  }

  const handlers: Record<string, (args: Args) => Answer> = {
    'api.test': (args) => ({ ok: true, args }),

    'auth.test': () => ({
      ok: true,
      url: `https://${teamDomain}.slack.test/`,
      team: teamName,
      user: botName,
      team_id: teamId,
      user_id: botUserId,
      bot_id: botId,
      is_enterprise_install: false,
    }),

    'chat.postMessage': (args) => {
      const requested = str(args['channel']);
      if (!requested) return fail('channel_not_found');
      const channel = resolveChannel(requested);
      if (!channel) return fail('channel_not_found');
      const content = checkContent(args, true);
      if ('error' in content) return content.error;
      const ts = nextTs();
      const text = content.text ?? '';
      const msg: FakeMessage = {
        channel,
        ts,
        thread_ts: str(args['thread_ts']) || undefined,
        text,
        blocks: content.blocks,
        attachments: Array.isArray(args['attachments']) ? args['attachments'] : undefined,
        metadata: args['metadata'],
        user: botUserId,
        bot_id: botId,
        app_id: appId,
        team: teamId,
        edited: undefined,
        deleted: false,
        versions: [{ text, blocks: content.blocks, at: new Date(), via: 'chat.postMessage' }],
      };
      messages.set(messageKey(channel, ts), msg);
      return { ok: true, channel, ts, message: slackMessage(msg) };
    },

    'chat.update': (args) => {
      const channel = resolveChannel(str(args['channel']) ?? '');
      const ts = str(args['ts']);
      if (!channel) return fail('channel_not_found');
      const msg = ts ? messages.get(messageKey(channel, ts)) : undefined;
      if (!msg || msg.deleted) return fail('message_not_found');
      const content = checkContent(args, false);
      if ('error' in content) return content.error;
      if (content.text !== undefined) msg.text = content.text;
      if (args['blocks'] !== undefined) msg.blocks = content.blocks;
      if (Array.isArray(args['attachments'])) msg.attachments = args['attachments'];
      msg.edited = { user: botUserId, ts: nextTs() };
      msg.versions.push({ text: msg.text, blocks: msg.blocks, at: new Date(), via: 'chat.update' });
      return { ok: true, channel, ts: msg.ts, text: msg.text, message: slackMessage(msg) };
    },

    'chat.delete': (args) => {
      const channel = resolveChannel(str(args['channel']) ?? '');
      const ts = str(args['ts']);
      const msg = channel && ts ? messages.get(messageKey(channel, ts)) : undefined;
      if (!msg || msg.deleted) return fail('message_not_found');
      msg.deleted = true;
      return { ok: true, channel: msg.channel, ts: msg.ts };
    },

    'chat.getPermalink': (args) => {
      const channel = resolveChannel(str(args['channel']) ?? '');
      const ts = str(args['message_ts']);
      if (!channel) return fail('channel_not_found');
      const msg = ts ? messages.get(messageKey(channel, ts)) : undefined;
      if (!msg || msg.deleted) return fail('message_not_found');
      const base = `https://fake.slack.test/archives/${channel}/p${msg.ts.replace('.', '')}`;
      const permalink = msg.thread_ts ? `${base}?thread_ts=${msg.thread_ts}&cid=${channel}` : base;
      return { ok: true, channel, permalink };
    },

    'chat.postEphemeral': (args) => {
      const channel = resolveChannel(str(args['channel']) ?? '');
      if (!channel) return fail('channel_not_found');
      const user = str(args['user']);
      if (!user || (opts.users && !users[user])) return fail('user_not_in_channel');
      const content = checkContent(args, true);
      if ('error' in content) return content.error;
      const message_ts = nextTs();
      ephemerals.push({
        channel,
        user,
        message_ts,
        thread_ts: str(args['thread_ts']) || undefined,
        text: content.text ?? '',
        blocks: content.blocks,
      });
      return { ok: true, message_ts };
    },

    'views.open': openView,
    // The fake keeps no view stack: a pushed view is stored like an opened one.
    'views.push': openView,

    'views.update': (args) => {
      const viewId = str(args['view_id']);
      const externalId = str(args['external_id']);
      const previous = viewId
        ? views.get(viewId)
        : [...views.values()].find((v) => externalId && v.external_id === externalId);
      if (!previous) return fail('not_found');
      const hash = str(args['hash']);
      if (hash && hash !== previous.hash) return fail('hash_conflict');
      const made = viewFrom(args, undefined, previous);
      if ('error' in made) return made.error;
      views.set(previous.id, made.view);
      return { ok: true, view: publicView(made.view) };
    },

    'users.info': (args) => {
      const id = str(args['user']);
      const u = id ? users[id] : undefined;
      if (!id || !u) return fail('user_not_found');
      return { ok: true, user: userObject(id, u) };
    },

    'usergroups.users.list': (args) => {
      const id = str(args['usergroup']);
      const members = id ? usergroups[id] : undefined;
      if (!members) return fail('no_such_subteam');
      return { ok: true, users: [...members] };
    },

    'conversations.info': (args) => {
      const id = str(args['channel']);
      if (!id) return fail('channel_not_found');
      const known = channels?.[id];
      if (channels && !known && !id.startsWith('D')) return fail('channel_not_found');
      const isIm = known?.is_im ?? id.startsWith('D');
      const isPrivate = known?.is_private ?? false;
      return {
        ok: true,
        channel: {
          id,
          name: known?.name ?? (isIm ? undefined : `fake-${id.toLowerCase()}`),
          is_channel: !isIm && !isPrivate,
          is_group: isPrivate,
          is_im: isIm,
          is_mpim: false,
          is_private: isPrivate || isIm,
          is_archived: false,
          is_general: false,
          is_member: true,
          is_ext_shared: false,
          is_org_shared: false,
          context_team_id: teamId,
          created: 1_600_000_000,
          ...(isIm ? { user: known?.user ?? `U${id.slice(1)}` } : {}),
        },
      };
    },

    'conversations.open': (args) => {
      const list = (str(args['users']) ?? '').split(',').filter(Boolean);
      const first = list[0];
      if (!first) return fail('users_list_not_supplied');
      if (opts.users && !users[first]) return fail('user_not_found');
      return { ok: true, channel: { id: `D${first.slice(1)}` } };
    },
  };

  // ---- HTTP ------------------------------------------------------------------------------------

  function send(
    res: ServerResponse,
    status: number,
    body: Answer | string,
    headers: Record<string, string> = {},
  ) {
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      'content-type': typeof body === 'string' ? 'text/plain' : 'application/json; charset=utf-8',
      ...headers,
    });
    res.end(text);
  }

  /** Answers an injected failure; returns what was recorded. */
  function answerFailure(
    res: ServerResponse,
    f: FakeFailure,
  ): { status: number; response: Answer | undefined } {
    if (typeof f === 'string') {
      const response = fail(f);
      send(res, 200, response);
      return { status: 200, response };
    }
    if ('network' in f) {
      res.socket?.destroy();
      return { status: 0, response: undefined };
    }
    if ('error' in f) {
      const response = { ...fail(f.error), ...(f.extra ?? {}) };
      send(res, 200, response);
      return { status: 200, response };
    }
    if (f.status === 429) {
      const retryAfter = 'retryAfter' in f && f.retryAfter !== undefined ? f.retryAfter : 1;
      const response = fail('ratelimited');
      send(res, 429, response, { 'retry-after': String(retryAfter) });
      return { status: 429, response };
    }
    const body = 'body' in f && f.body !== undefined ? f.body : 'upstream error';
    send(res, f.status, body);
    return { status: f.status, response: undefined };
  }

  function authenticate(method: string, token: string | undefined): Answer | undefined {
    if (!token) return fail('not_authed');
    if (method === 'apps.connections.open') {
      if (token === appToken) return undefined;
      return token === botToken ? fail('not_allowed_token_type') : fail('invalid_auth');
    }
    if (token === botToken) return undefined;
    return token === appToken ? fail('not_allowed_token_type') : fail('invalid_auth');
  }

  async function serveApi(req: IncomingMessage, res: ServerResponse, url: URL, method: string) {
    const parsed = await parseRequest(req, url);
    const header = req.headers.authorization;
    const headerToken = header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined;
    const token = headerToken || parsed.bodyToken;
    const call: FakeCall = {
      method,
      args: parsed.args,
      at: new Date(),
      token,
      encoding: parsed.encoding,
      status: 200,
      response: undefined,
      injected: false,
      path: url.pathname,
    };
    const failure = takeFailure(method);
    if (failure !== undefined) {
      const { status, response } = answerFailure(res, failure);
      record({ ...call, status, response, injected: true });
      return;
    }
    let response: Answer;
    if (parsed.parseError) response = fail(parsed.parseError);
    else {
      const authError = authenticate(method, token);
      if (authError) response = authError;
      else if (method === 'apps.connections.open') {
        const ticket = randomUUID();
        tickets.add(ticket);
        response = { ok: true, url: `ws://127.0.0.1:${port}/link/?ticket=${ticket}&app_id=${appId}` };
      } else {
        const handler = handlers[method];
        response = handler ? handler(parsed.args) : fail('unknown_method');
      }
    }
    send(res, 200, response);
    record({ ...call, response });
  }

  async function serveResponseUrl(req: IncomingMessage, res: ServerResponse, url: URL) {
    const raw = (await readBody(req)).toString('utf8');
    let body: Args = {};
    try {
      const parsed: unknown = JSON.parse(raw);
      if (isObject(parsed)) body = parsed;
    } catch {
      // Slack answers 400 for a non-JSON body
    }
    const call: FakeCall = {
      method: 'response_url',
      args: body,
      at: new Date(),
      token: undefined,
      encoding: 'json',
      status: 200,
      response: undefined,
      injected: false,
      path: url.pathname,
    };
    const failure = takeFailure('response_url');
    if (failure !== undefined) {
      const { status, response } = answerFailure(res, failure);
      record({ ...call, status, response, injected: true });
      return;
    }
    if (!responseUrls.has(url.pathname)) {
      send(res, 404, 'no_service');
      record({ ...call, status: 404 });
      return;
    }
    const target = responseUrls.get(url.pathname);
    const content = checkContent(body, body['delete_original'] !== true);
    if ('error' in content) {
      send(res, 400, String(content.error['error']));
      record({ ...call, status: 400, response: content.error });
      return;
    }
    const msg = target ? messages.get(messageKey(target.channel, target.ts)) : undefined;
    if (msg && body['delete_original'] === true) {
      msg.deleted = true;
    } else if (msg && body['replace_original'] === true) {
      if (content.text !== undefined) msg.text = content.text;
      msg.blocks = content.blocks;
      msg.edited = { user: botUserId, ts: nextTs() };
      msg.versions.push({ text: msg.text, blocks: msg.blocks, at: new Date(), via: 'response_url' });
    } else if (target && body['response_type'] === 'in_channel') {
      handlers['chat.postMessage']?.({ ...body, channel: target.channel });
    } else if (target) {
      ephemerals.push({
        channel: target.channel,
        user: '',
        message_ts: nextTs(),
        thread_ts: undefined,
        text: content.text ?? '',
        blocks: content.blocks,
      });
    }
    const response = { ok: true };
    send(res, 200, response);
    record({ ...call, response });
  }

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const handle = async () => {
      if (url.pathname.startsWith('/api/')) {
        await serveApi(req, res, url, decodeURIComponent(url.pathname.slice('/api/'.length)));
      } else if (url.pathname.startsWith('/actions/') && req.method === 'POST') {
        await serveResponseUrl(req, res, url);
      } else {
        send(res, 404, 'not found');
      }
    };
    handle().catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, String(err));
      else res.destroy();
    });
  });

  // ---- Socket Mode -------------------------------------------------------------------------------

  const wss = new WebSocketServer({ noServer: true, autoPong: opts.answerPings ?? true });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const ticket = url.searchParams.get('ticket');
    const path = url.pathname.replace(/\/$/, '');
    if (path !== '/link' || !ticket || !tickets.has(ticket)) {
      socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    tickets.delete(ticket); // a connection URL is single-use
    wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws));
  });

  function onConnection(ws: WebSocket): void {
    socketConnectionCount += 1;
    const conn: Live = { ws, pinger: undefined, ready: false };
    live.add(conn);
    ws.on('ping', () => {
      socketPingCount += 1;
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) return;
      let frame: unknown;
      try {
        frame = JSON.parse(data.toString());
      } catch {
        return;
      }
      if (!isObject(frame)) return;
      socketFrames.push(frame);
      const id = frame['envelope_id'];
      const pending = typeof id === 'string' ? pendingAcks.get(id) : undefined;
      if (typeof id === 'string' && pending) {
        pendingAcks.delete(id);
        clearTimeout(pending.timer);
        const payload = frame['payload'];
        pending.resolve(isObject(payload) ? { envelope_id: id, payload } : { envelope_id: id });
      }
    });
    ws.on('close', () => {
      live.delete(conn);
      if (conn.pinger) clearInterval(conn.pinger);
    });
    ws.on('error', () => {
      // the close event follows
    });
    ws.send(
      JSON.stringify({
        type: 'hello',
        num_connections: live.size,
        debug_info: {
          host: 'applink-fake-1',
          build_number: 1,
          approximate_connection_time: 3600,
        },
        connection_info: { app_id: appId },
      }),
    );
    conn.ready = true;
    if (serverPingIntervalMs > 0) {
      conn.pinger = setInterval(() => {
        if (ws.readyState === ws.OPEN) ws.ping(Buffer.from(`ping-${Date.now()}`));
      }, serverPingIntervalMs);
      conn.pinger.unref();
    }
    for (const w of connectedWaiters.splice(0)) w();
  }

  function currentConnection(): Live | undefined {
    let last: Live | undefined;
    for (const c of live) if (c.ready && c.ws.readyState === c.ws.OPEN) last = c;
    return last;
  }

  function socketConnected(timeoutMs = 10_000): Promise<void> {
    if (currentConnection()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const i = connectedWaiters.indexOf(done);
        if (i >= 0) connectedWaiters.splice(i, 1);
        reject(new Error(`fake Slack: no Socket Mode connection within ${timeoutMs} ms`));
      }, timeoutMs);
      connectedWaiters.push(done);
    });
  }

  async function sendSocketEvent(
    type: SocketEventType,
    payload: Record<string, unknown>,
    o: SendSocketEventOptions = {},
  ): Promise<SocketAck> {
    const timeoutMs = o.timeoutMs ?? ackTimeoutMs;
    await socketConnected(timeoutMs);
    const conn = currentConnection();
    if (!conn) throw new Error('fake Slack: no Socket Mode connection');
    const envelope_id = o.envelopeId ?? randomUUID();
    const envelope: Record<string, unknown> = {
      envelope_id,
      type,
      accepts_response_payload: o.acceptsResponsePayload ?? type !== 'events_api',
      payload,
    };
    if (type === 'events_api') {
      envelope['retry_attempt'] = o.retryAttempt ?? 0;
      envelope['retry_reason'] = o.retryReason ?? '';
    }
    return new Promise<SocketAck>((resolve, reject) => {
      const timer = setTimeout(() => {
        pendingAcks.delete(envelope_id);
        reject(new Error(`fake Slack: envelope ${envelope_id} (${type}) not acked within ${timeoutMs} ms`));
      }, timeoutMs);
      pendingAcks.set(envelope_id, { resolve, reject, timer });
      conn.ws.send(JSON.stringify(envelope), (err) => {
        if (!err) return;
        clearTimeout(timer);
        pendingAcks.delete(envelope_id);
        reject(err);
      });
    });
  }

  async function dropSocket(mode: DropMode = 'close'): Promise<void> {
    const targets = [...live];
    await Promise.all(
      targets.map(
        (conn) =>
          new Promise<void>((resolve) => {
            conn.ready = false;
            if (conn.ws.readyState === conn.ws.CLOSED) return resolve();
            conn.ws.once('close', () => resolve());
            if (mode === 'terminate') conn.ws.terminate();
            else if (mode === 'close') conn.ws.close(1001, 'going away');
            else {
              conn.ws.send(
                JSON.stringify({
                  type: 'disconnect',
                  reason: 'refresh_requested',
                  debug_info: { host: 'applink-fake-1' },
                }),
              );
              // Slack closes the link itself shortly after if the client does not.
              setTimeout(() => conn.ws.terminate(), 2000).unref();
            }
          }),
      ),
    );
  }

  // ---- Start -------------------------------------------------------------------------------------

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  const baseUrl = `http://127.0.0.1:${port}`;
  let responseUrlCount = 0;

  const fake: FakeSlack = {
    port,
    apiUrl: `${baseUrl}/api/`,
    baseUrl,
    teamId,
    appId,
    botToken,
    appToken,
    botUserId,
    botId,

    calls: (method) => (method ? calls.filter((c) => c.method === method) : [...calls]),
    get messages() {
      return [...messages.values()];
    },
    getMessage: (channel, ts) => messages.get(messageKey(channel, ts)),
    get ephemerals() {
      return [...ephemerals];
    },
    get views() {
      return [...views.values()];
    },

    waitFor(predicate, timeoutMs = 5000) {
      const test = typeof predicate === 'string' ? (c: FakeCall) => c.method === predicate : predicate;
      const found = calls.find(test);
      if (found) return Promise.resolve(found);
      return new Promise<FakeCall>((resolve, reject) => {
        const waiter: Waiter = {
          predicate: test,
          resolve: (call) => {
            clearTimeout(timer);
            resolve(call);
          },
        };
        const timer = setTimeout(() => {
          waiters = waiters.filter((w) => w !== waiter);
          const seen = calls.map((c) => c.method).join(', ') || 'none';
          reject(new Error(`fake Slack: no matching call within ${timeoutMs} ms (calls so far: ${seen})`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },

    failNext(method, failure, times = 1) {
      const queue = failures.get(method) ?? [];
      for (let i = 0; i < times; i += 1) queue.push(failure);
      failures.set(method, queue);
    },

    responseUrl(target) {
      responseUrlCount += 1;
      const path = `/actions/${teamId}/${1_000_000_000 + responseUrlCount}/${randomBytes(12).toString('hex')}`;
      responseUrls.set(path, target);
      return `${baseUrl}${path}`;
    },

    reset() {
      calls = [];
      messages = new Map();
      ephemerals = [];
      views = new Map();
      failures = new Map();
      socketFrames.length = 0;
    },

    async close() {
      for (const p of pendingAcks.values()) {
        clearTimeout(p.timer);
        p.reject(new Error('fake Slack closed'));
      }
      pendingAcks.clear();
      for (const c of live) {
        if (c.pinger) clearInterval(c.pinger);
        c.ws.terminate();
      }
      live.clear();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },

    sendSocketEvent,
    socketConnected,
    dropSocket,
    get socketFrames() {
      return [...socketFrames];
    },
    get socketConnectionCount() {
      return socketConnectionCount;
    },
    get socketPingCount() {
      return socketPingCount;
    },
  };
  return fake;
}
