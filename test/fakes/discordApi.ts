/**
 * A fake Discord for end-to-end tests: the REST API under `/api/v10/` and the Gateway (WebSocket) on one
 * in-process HTTP server bound to 127.0.0.1. It speaks the wire protocol discord.js 14 uses, so a real
 * `Client` can be pointed at it unchanged:
 *
 *   new Client({ intents: [GatewayIntentBits.Guilds], rest: { api: fake.apiUrl, retries: 0 } })
 *
 * How discord.js 14.28 (@discordjs/rest 2.6, @discordjs/ws 1.2) talks, checked against its source:
 * - REST: `${rest.api}/v${rest.version}${route}` → `http://127.0.0.1:<port>/api/v10/...`; JSON bodies
 *   (multipart with `payload_json` + `files[n]` only when files are attached); `Authorization: Bot <token>`
 *   on everything EXCEPT interaction callbacks and interaction webhooks (`auth: false`), which carry no
 *   Authorization header at all. A 401 on an authed route makes the client drop its token.
 * - There is no client option for the gateway URL: login() calls `GET /gateway/bot` (through the same REST
 *   base) and connects to `${url}?v=10&encoding=json`. After READY it reconnects to READY's
 *   `resume_gateway_url` (this fake: `/resume-gateway`) to RESUME.
 * - Compression: discord.js asks for `compress=zlib-stream` only if the optional native package `zlib-sync`
 *   is installed (it is not here), and has no option to turn it on or off. The fake supports it anyway
 *   (one deflate context per connection, every frame ends in a Z_SYNC_FLUSH 00 00 ff ff), and also
 *   IDENTIFY `compress: true` (each frame zlib-deflated on its own).
 * - Gateway: HELLO → IDENTIFY at once (or RESUME when it holds a session) → READY → the client waits for a
 *   GUILD_CREATE per guild in READY (or `waitGuildTimeout`, 15 s) before emitting `clientReady`. Heartbeats
 *   run alongside: the first after `heartbeat_interval * random()`, then every interval; an unacked
 *   heartbeat at the next tick counts as a zombie connection (close + RESUME). A close with 4000/4200/1006/… resumes after a
 *   fixed 500 ms; a close 1000 or INVALID_SESSION(false) re-identifies, and the default identify throttler
 *   then waits up to 5 s + 1.5 s jitter since the last IDENTIFY (`ws.buildIdentifyThrottler` swaps it).
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import zlib from 'node:zlib';
import type { APIChannel, APIGuildMember, APIMessage, APIUser } from 'discord.js';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import {
  ALL_PERMISSIONS,
  applicationObject,
  channelObject,
  dmChannelObject,
  type FakeDiscordGuildInput,
  type FakeDiscordMemberInput,
  type FakeDiscordUserInput,
  guildCreateData,
  guildMemberObject,
  guildObject,
  guildRoles,
  interactionMemberObject,
  memberPermissions,
  snowflake,
  userObject,
} from './discordPayloads.js';
import {
  checkMessageBody,
  checkModalData,
  IS_COMPONENTS_V2,
  isObj,
  type Refusal,
} from './discordValidate.js';

export type {
  FakeDiscordChannelInput,
  FakeDiscordGuildInput,
  FakeDiscordMemberInput,
  FakeDiscordRoleInput,
  FakeDiscordUserInput,
} from './discordPayloads.js';
export { snowflake } from './discordPayloads.js';
export { LIMITS } from './discordValidate.js';

// ---------------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------------

export type Json = Record<string, unknown>;

export interface FakeDiscordOptions {
  /** The token the bot must present (REST `Authorization: Bot …`, IDENTIFY, RESUME). */
  botToken?: string;
  /** Also the bot user's id, as for every modern Discord app. */
  applicationId?: string;
  botUsername?: string;
  /** The one guild the bot is in. Without it READY lists no guilds. */
  guild?: FakeDiscordGuildInput;
  /** HELLO's heartbeat_interval. Default 45000 (like Discord); tests want ~1000. */
  heartbeatIntervalMs?: number;
  /** How long clickButton/submitModal wait for the bot's callback. Default 5000 ms. */
  interactionTimeoutMs?: number;
  /** Discord refuses an initial interaction response after 3 s (404, code 10062). Default 3000 ms. */
  interactionResponseWindowMs?: number;
  /**
   * Which members GUILD_CREATE carries. Discord sends only the bot itself (and users in voice) unless
   * the client identified with GUILD_PRESENCES ('auto', the default). 'all' / 'self' force it.
   */
  guildCreateMembers?: 'auto' | 'all' | 'self';
  /** Privileged intents enabled for the app (GUILD_MEMBERS 1<<1, GUILD_PRESENCES 1<<8, MESSAGE_CONTENT 1<<15). Others close 4014. Default all. */
  allowedPrivilegedIntents?: number;
}

export interface FakeRestFile {
  field: string;
  name: string;
  contentType: string;
  size: number;
}

export interface FakeRestCall {
  method: string;
  /** Path below `/api/v10`, e.g. `/channels/123/messages`. */
  path: string;
  /** The matched route, e.g. `POST /channels/:channelId/messages`; null when unknown. */
  route: string | null;
  params: Record<string, string>;
  query: Record<string, string>;
  /** Parsed JSON body (for multipart: the parsed `payload_json`). */
  body: unknown;
  files: FakeRestFile[];
  authorization: string | null;
  at: number;
  /** 0 until answered. */
  status: number;
  response: unknown;
  /** Set when the answer came from failNext(). */
  injected?: boolean;
}

export interface FakeFailure {
  status: number;
  body?: unknown;
  /** Seconds (float, like Discord's `retry_after`). 429 default 0.05. */
  retryAfter?: number;
  /** 429 only: a global rate limit (`X-RateLimit-Global`). */
  global?: boolean;
  /** How many consecutive matching requests fail. Default 1. */
  times?: number;
}

export type CallFilter = string | ((call: FakeRestCall) => boolean);

export interface StoredMessage {
  id: string;
  channelId: string;
  /** The message as Discord would return it now. */
  current: APIMessage;
  /** Earlier versions, oldest first (one per edit). */
  history: APIMessage[];
  deleted: boolean;
  ephemeral: boolean;
  source: 'channel' | 'interaction' | 'followup';
  interactionId?: string;
}

export interface InteractionCallbackRecord {
  interactionId: string;
  /** 3 MESSAGE_COMPONENT, 5 MODAL_SUBMIT. */
  interactionType: number;
  token: string;
  /** 4 CHANNEL_MESSAGE_WITH_SOURCE, 5 DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE, 6 DEFERRED_UPDATE_MESSAGE, 7 UPDATE_MESSAGE, 9 MODAL. */
  type: number;
  data: Json | undefined;
  /** `data.flags` (64 = ephemeral), 0 when absent. */
  flags: number;
  withResponse: boolean;
  at: number;
  /** The message the callback created (4/5) or edited (6/7). */
  messageId?: string;
}

export interface FakeInteraction {
  id: string;
  token: string;
  type: number;
  channelId: string;
  /** The message a component was on (or a component-launched modal came from). */
  messageId?: string;
  payload: Json;
  sentAt: number;
  callback?: InteractionCallbackRecord;
  /** Callbacks Discord refused (late, duplicate, invalid). */
  refused: { status: number; body: unknown; at: number }[];
  originalMessageId?: string;
  followupIds: string[];
}

export interface ClickButtonOptions {
  customId: string;
  user: FakeDiscordUserInput;
  /** Default: the configured member's roles, else []. */
  memberRoles?: string[];
  channelId: string;
  messageId: string;
  /** Default: the guild owning channelId; a DM channel makes a DM interaction. */
  guildId?: string;
  locale?: string;
  timeoutMs?: number;
  /** Click even if the stored message has no such (enabled) button, like a stale client would. */
  force?: boolean;
}

export interface SubmitModalOptions {
  customId: string;
  user: FakeDiscordUserInput;
  memberRoles?: string[];
  /** Text input custom_id → value. Inputs of the shown modal not listed here are submitted empty. */
  fields: Record<string, string>;
  channelId: string;
  /** Default: the message of the component interaction that opened the modal, if any. */
  messageId?: string;
  guildId?: string;
  locale?: string;
  timeoutMs?: number;
  /** Submit even if the bot never showed a modal with this custom_id (rows of text inputs are made up). */
  force?: boolean;
}

export interface GatewayConnectionRecord {
  id: number;
  /** `/gateway` or `/resume-gateway`. */
  path: string;
  query: Record<string, string>;
  compress: 'zlib-stream' | null;
  openedAt: number;
  closedAt?: number;
  closeCode?: number;
  closedBy?: 'client' | 'server';
  sessionId?: string;
}

export interface IdentifyRecord {
  connectionId: number;
  sessionId: string;
  token: string;
  intents: number;
  properties: unknown;
  shard: unknown;
  compress: boolean;
  largeThreshold?: number;
  presence?: unknown;
  at: number;
}

export interface ResumeRecord {
  connectionId: number;
  sessionId: string;
  seq: number;
  ok: boolean;
  replayed: number;
  at: number;
}

export interface GatewayFrame {
  connectionId: number;
  direction: 'in' | 'out';
  op: number;
  t?: string | null;
  s?: number | null;
  d?: unknown;
  at: number;
}

export interface FakeGatewayState {
  connections: GatewayConnectionRecord[];
  identifies: IdentifyRecord[];
  resumes: ResumeRecord[];
  /** Every payload both ways, decoded. */
  frames: GatewayFrame[];
  /** Heartbeats (op 1) received from the client. */
  heartbeats: number;
}

export interface DropGatewayOptions {
  /** Close code. Default 4000 (Unknown error: discord.js resumes). 1000 makes it re-identify. */
  code?: number;
  reason?: string;
  /** Kill the TCP connection without a close frame (the client sees 1006 and resumes). */
  abrupt?: boolean;
  /** Forget the session too, so a RESUME gets INVALID_SESSION(false). */
  invalidateSession?: boolean;
}

export interface FakeDiscord {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  /** `http://127.0.0.1:<port>/api` — pass as the Client's `rest.api`. */
  readonly apiUrl: string;
  /** What GET /gateway/bot returns: `ws://127.0.0.1:<port>/gateway`. */
  readonly gatewayUrl: string;
  /** READY's resume_gateway_url: `ws://127.0.0.1:<port>/resume-gateway`. */
  readonly resumeGatewayUrl: string;
  readonly port: number;
  readonly botToken: string;
  readonly applicationId: string;
  readonly botUser: APIUser;
  readonly guild: FakeDiscordGuildInput | undefined;

  // REST
  calls(filter?: CallFilter): FakeRestCall[];
  /** Make the next matching request(s) fail. routeKey: 'POST /channels/:channelId/messages' (any param names), a concrete path, or without the method. */
  failNext(routeKey: string, failure: FakeFailure): void;
  /** Every message the bot sent, keyed by message id (ephemeral interaction responses included). */
  readonly messages: Map<string, StoredMessage>;
  messagesIn(channelId: string): StoredMessage[];
  readonly interactionCallbacks: InteractionCallbackRecord[];
  readonly interactions: Map<string, FakeInteraction>;
  /** Resolves with the predicate's first truthy result; re-checked on every change and every 25 ms. */
  waitFor<T>(predicate: () => T | undefined | null | false, timeoutMs?: number): Promise<T>;

  // Gateway
  readonly gateway: FakeGatewayState;
  /** Resolves once a client has identified and got READY (and GUILD_CREATE). */
  ready(): Promise<void>;
  /** An identified/resumed connection is open. */
  isConnected(): boolean;
  /** Send a dispatch (op 0) on the current session; buffered for replay while the client is away. Returns its sequence number. */
  dispatch(t: string, d: unknown): number;
  /** Close the live gateway connection; resolves when it is closed. */
  dropGateway(opts?: DropGatewayOptions): Promise<void>;
  /** op 7 RECONNECT: discord.js closes with 4200 and resumes. */
  sendReconnect(): void;
  /** op 9 INVALID_SESSION; `false` also forgets the session. */
  sendInvalidSession(resumable: boolean): void;
  /** op 1 from the server: the client must heartbeat at once. */
  requestHeartbeat(): void;
  /** Stop/resume acking heartbeats (discord.js treats a missing ack as a zombie and resumes). */
  setHeartbeatAcks(on: boolean): void;

  // Interactions
  clickButton(opts: ClickButtonOptions): Promise<InteractionCallbackRecord>;
  submitModal(opts: SubmitModalOptions): Promise<InteractionCallbackRecord>;
  /** Send a hand-made INTERACTION_CREATE payload (must have id, token, type, channel) and await its callback. */
  sendInteraction(payload: Json, timeoutMs?: number): Promise<InteractionCallbackRecord>;

  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------------------------------

const EPHEMERAL = 64;
const LOADING = 128;
const PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15);
const GUILD_PRESENCES = 1 << 8;
const SESSION_REPLAY_BUFFER = 1000;
const TRACE = ['["gateway-fake-127-0-0-1",{"micros":0.0}]'];

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface RouteContext {
  params: Record<string, string>;
  query: Record<string, string>;
  body: Json;
  files: FakeRestFile[];
}

interface Route {
  method: string;
  pattern: string;
  segments: string[];
  auth: boolean;
  handler: (ctx: RouteContext) => Reply;
}

interface Session {
  id: string;
  seq: number;
  events: { s: number; frame: Json }[];
  intents: number;
  conn?: Conn;
  valid: boolean;
}

interface Conn {
  id: number;
  ws: WebSocket;
  record: GatewayConnectionRecord;
  identified: boolean;
  session?: Session;
  deflate?: zlib.Deflate;
  deflateChunks: Buffer[];
  identifyCompress: boolean;
  chain: Promise<void>;
  open: boolean;
  closed: Promise<void>;
}

interface Waiter {
  resolve: (r: InteractionCallbackRecord) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

function apiError(status: number, code: number, message: string): Reply {
  return { status, body: { message, code } };
}

const unknownChannel = () => apiError(404, 10003, 'Unknown Channel');
const unknownMessage = () => apiError(404, 10008, 'Unknown Message');
const unknownWebhook = () => apiError(404, 10015, 'Unknown Webhook');
const unknownInteraction = () => apiError(404, 10062, 'Unknown interaction');

function refusalReply(r: Refusal): Reply {
  return { status: r.status, body: r.body };
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function splitPath(p: string): string[] {
  return p.split('/').filter((s) => s !== '');
}

/** `METHOD /a/:x/b` or `/a/:x/b`; `:x` segments match anything, on either side. */
function routeKeyMatches(key: string, method: string, path: string, route: string | null): boolean {
  const trimmed = key.trim();
  const space = trimmed.indexOf(' ');
  const keyMethod = space > 0 ? trimmed.slice(0, space).toUpperCase() : null;
  const keyPath = space > 0 ? trimmed.slice(space + 1).trim() : trimmed;
  if (keyMethod && keyMethod !== method) return false;
  const want = splitPath(keyPath.split('?')[0] ?? '');
  const candidates = [splitPath(path)];
  if (route) candidates.push(splitPath(route.slice(route.indexOf(' ') + 1)));
  return candidates.some(
    (segs) =>
      segs.length === want.length &&
      segs.every((seg, i) => {
        const w = want[i] ?? '';
        return w.startsWith(':') || seg.startsWith(':') || w === seg;
      }),
  );
}

function assignComponentIds(components: unknown): void {
  let next = 1;
  const used = new Set<number>();
  const collect = (list: unknown): void => {
    if (!Array.isArray(list)) return;
    for (const c of list) {
      if (!isObj(c)) continue;
      if (typeof c.id === 'number') used.add(c.id);
      collect(c.components);
      if (isObj(c.component)) collect([c.component]);
      if (isObj(c.accessory)) collect([c.accessory]);
    }
  };
  const assign = (list: unknown): void => {
    if (!Array.isArray(list)) return;
    for (const c of list) {
      if (!isObj(c)) continue;
      if (typeof c.id !== 'number') {
        while (used.has(next)) next++;
        c.id = next;
        used.add(next);
      }
      assign(c.components);
      if (isObj(c.component)) assign([c.component]);
      if (isObj(c.accessory)) assign([c.accessory]);
    }
  };
  collect(components);
  assign(components);
}

function findComponent(components: unknown, pred: (c: Json) => boolean): Json | undefined {
  if (!Array.isArray(components)) return undefined;
  for (const c of components) {
    if (!isObj(c)) continue;
    if (pred(c)) return c;
    const inner =
      findComponent(c.components, pred) ??
      (isObj(c.component) ? findComponent([c.component], pred) : undefined) ??
      (isObj(c.accessory) ? findComponent([c.accessory], pred) : undefined);
    if (inner) return inner;
  }
  return undefined;
}

function normalizeEmbeds(embeds: unknown): Json[] {
  if (!Array.isArray(embeds)) return [];
  return embeds.filter(isObj).map((e) => {
    const embed: Json = { type: 'rich', ...clone(e) };
    if (Array.isArray(embed.fields)) {
      embed.fields = embed.fields.filter(isObj).map((f) => ({ ...f, inline: f.inline === true }));
    }
    return embed;
  });
}

function normalizeComponents(components: unknown): Json[] {
  if (!Array.isArray(components)) return [];
  const list = clone(components.filter(isObj));
  assignComponentIds(list);
  return list;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function parseBody(raw: Buffer, contentType: string): Promise<{ body: Json; files: FakeRestFile[] }> {
  if (raw.length === 0) return { body: {}, files: [] };
  if (contentType.startsWith('multipart/form-data')) {
    const form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
    let body: Json = {};
    const files: FakeRestFile[] = [];
    for (const [field, value] of form.entries()) {
      if (typeof value === 'string') {
        if (field === 'payload_json') body = JSON.parse(value) as Json;
        else body[field] = value;
      } else {
        files.push({ field, name: value.name, contentType: value.type, size: value.size });
      }
    }
    return { body, files };
  }
  const parsed: unknown = JSON.parse(raw.toString('utf8'));
  return { body: isObj(parsed) ? parsed : { _: parsed }, files: [] };
}

function interactionToken(id: string): string {
  const random = Buffer.from(Array.from({ length: 48 }, () => Math.floor(Math.random() * 256))).toString(
    'base64url',
  );
  return `${Buffer.from(`interaction:${id}:`).toString('base64url')}${random}`;
}

// ---------------------------------------------------------------------------------------------------
// The fake
// ---------------------------------------------------------------------------------------------------

export async function startFakeDiscord(opts: FakeDiscordOptions = {}): Promise<FakeDiscord> {
  const applicationId = opts.applicationId ?? '1190000000000000001';
  const botToken =
    opts.botToken ?? `${Buffer.from(applicationId).toString('base64url')}.GfAkE0.${'x'.repeat(38)}`;
  const heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 45_000;
  const interactionTimeoutMs = opts.interactionTimeoutMs ?? 5000;
  const responseWindowMs = opts.interactionResponseWindowMs ?? 3000;
  const allowedPrivileged = opts.allowedPrivilegedIntents ?? PRIVILEGED_INTENTS;
  const guild = opts.guild ? clone(opts.guild) : undefined;
  const botUser: APIUser = {
    ...userObject({
      id: applicationId,
      username: opts.botUsername ?? 'agent-otp',
      bot: true,
      discriminator: '4821',
    }),
    verified: true,
    mfa_enabled: true,
  } as APIUser;
  const guildJoinedAt = new Date(Date.now() - 86_400_000).toISOString();
  const botMember: APIGuildMember = guildMemberObject(
    { user: { id: botUser.id, username: botUser.username }, roles: [] },
    guildJoinedAt,
    true,
  );
  botMember.user = clone(botUser);

  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  const changed = () => changes.emit('change');

  const callLog: FakeRestCall[] = [];
  const failures: { key: string; failure: FakeFailure; left: number }[] = [];
  const messages = new Map<string, StoredMessage>();
  const interactionCallbacks: InteractionCallbackRecord[] = [];
  const interactions = new Map<string, FakeInteraction>();
  const waiters = new Map<string, Waiter>();
  const dmChannels = new Map<string, APIChannel>(); // channel id → channel
  const gateway: FakeGatewayState = {
    connections: [],
    identifies: [],
    resumes: [],
    frames: [],
    heartbeats: 0,
  };
  const sessions = new Map<string, Session>();
  const conns = new Set<Conn>();
  let lastSession: Session | undefined;
  let ackHeartbeats = true;
  let connCounter = 0;
  let closing = false;
  let resolveReady!: () => void;
  const readyPromise = new Promise<void>((r) => {
    resolveReady = r;
  });

  // ---- lookups --------------------------------------------------------------------------------------

  function memberInput(userId: string): FakeDiscordMemberInput | undefined {
    return guild?.members.find((m) => m.user.id === userId);
  }

  function findUser(userId: string): APIUser | undefined {
    if (userId === botUser.id) return botUser;
    const m = memberInput(userId);
    return m ? userObject(m.user) : undefined;
  }

  function channelInfo(channelId: string): { channel: APIChannel; guildId?: string } | undefined {
    if (guild) {
      const idx = guild.channels.findIndex((c) => c.id === channelId);
      const c = guild.channels[idx];
      if (c) return { channel: channelObject(c, guild.id, idx), guildId: guild.id };
    }
    const dm = dmChannels.get(channelId);
    return dm ? { channel: dm } : undefined;
  }

  function visibleMessage(channelId: string, messageId: string): StoredMessage | undefined {
    const m = messages.get(messageId);
    // Ephemeral messages exist only for the interaction webhook, not on channel routes.
    if (!m || m.deleted || m.ephemeral || m.channelId !== channelId) return undefined;
    return m;
  }

  // ---- messages -------------------------------------------------------------------------------------

  function attachmentsFor(body: Json, files: FakeRestFile[], port: number, channelId: string): Json[] {
    const meta = Array.isArray(body.attachments) ? body.attachments.filter(isObj) : [];
    return files.map((f, i) => {
      const id = snowflake();
      const m = meta.find((a) => String(a.id) === String(i)) ?? {};
      return {
        id,
        filename: typeof m.filename === 'string' ? m.filename : f.name,
        size: f.size,
        url: `http://127.0.0.1:${port}/attachments/${channelId}/${id}/${f.name}`,
        proxy_url: `http://127.0.0.1:${port}/attachments/${channelId}/${id}/${f.name}`,
        content_type: f.contentType,
        ...(typeof m.description === 'string' ? { description: m.description } : {}),
      };
    });
  }

  function createMessage(
    channelId: string,
    body: Json,
    files: FakeRestFile[],
    extra: { source: StoredMessage['source']; interaction?: FakeInteraction; addFlags?: number },
  ): StoredMessage {
    const id = snowflake();
    // Flags a client may set: SUPPRESS_EMBEDS, SUPPRESS_NOTIFICATIONS, IS_VOICE_MESSAGE, IS_COMPONENTS_V2, and
    // EPHEMERAL on interaction responses only. Others are dropped: a channel message sent with flags 64 is
    // simply public (check `StoredMessage.ephemeral`).
    const settable = 4 | 4096 | 8192 | IS_COMPONENTS_V2 | (extra.source === 'channel' ? 0 : EPHEMERAL);
    const flags = ((typeof body.flags === 'number' ? body.flags : 0) & settable) | (extra.addFlags ?? 0);
    const msg: Json = {
      type: isObj(body.message_reference) ? 19 : 0,
      content: typeof body.content === 'string' ? body.content : '',
      mentions: [],
      mention_roles: [],
      attachments: attachmentsFor(body, files, port, channelId),
      embeds: normalizeEmbeds(body.embeds),
      timestamp: new Date().toISOString(),
      edited_timestamp: null,
      flags,
      components: normalizeComponents(body.components),
      id,
      channel_id: channelId,
      author: clone(botUser),
      pinned: false,
      mention_everyone: false,
      tts: body.tts === true,
    };
    if (body.nonce !== undefined) msg.nonce = body.nonce;
    if (isObj(body.message_reference))
      msg.message_reference = { type: 0, channel_id: channelId, ...body.message_reference };
    const ix = extra.interaction;
    if (ix) {
      msg.webhook_id = applicationId;
      msg.application_id = applicationId;
      const user = (isObj(ix.payload.member) ? ix.payload.member.user : ix.payload.user) as APIUser;
      msg.interaction_metadata = {
        id: ix.id,
        type: ix.type,
        user,
        authorizing_integration_owners: ix.payload.authorizing_integration_owners,
        ...(ix.messageId && ix.type === 3 ? { interacted_message_id: ix.messageId } : {}),
        ...(extra.source === 'followup' && ix.originalMessageId
          ? { original_response_message_id: ix.originalMessageId }
          : {}),
      };
    }
    const stored: StoredMessage = {
      id,
      channelId,
      current: msg as unknown as APIMessage,
      history: [],
      deleted: false,
      ephemeral: (flags & EPHEMERAL) !== 0,
      source: extra.source,
    };
    if (ix) stored.interactionId = ix.id;
    messages.set(id, stored);
    changed();
    return stored;
  }

  function editMessage(stored: StoredMessage, body: Json, files: FakeRestFile[]): void {
    const prev = stored.current;
    stored.history.push(clone(prev));
    const next = clone(prev) as unknown as Json;
    if ('content' in body) next.content = typeof body.content === 'string' ? body.content : '';
    if ('embeds' in body) next.embeds = normalizeEmbeds(body.embeds);
    if ('components' in body) next.components = normalizeComponents(body.components);
    if ('attachments' in body || files.length > 0) {
      const kept = Array.isArray(body.attachments)
        ? (prev.attachments as unknown as Json[]).filter((a) =>
            (body.attachments as unknown[]).some((b) => isObj(b) && String(b.id) === String(a.id)),
          )
        : (prev.attachments as unknown as Json[]);
      next.attachments = [...kept, ...attachmentsFor(body, files, port, stored.channelId)];
    }
    if (typeof body.flags === 'number') {
      // Only SUPPRESS_EMBEDS can be toggled on edit; ephemeral / v2 / loading stick.
      const sticky = (prev.flags ?? 0) & ~4;
      next.flags = sticky | (body.flags & 4);
    }
    next.flags = (Number(next.flags ?? 0) & ~LOADING) >>> 0;
    next.edited_timestamp = new Date().toISOString();
    stored.current = next as unknown as APIMessage;
    changed();
  }

  // ---- REST routes ----------------------------------------------------------------------------------

  const routes: Route[] = [];
  function route(key: string, auth: boolean, handler: Route['handler']): void {
    const [method = '', pattern = ''] = key.split(' ');
    routes.push({ method, pattern, segments: splitPath(pattern), auth, handler });
  }

  function matchRoute(
    method: string,
    path: string,
  ): { route: Route; params: Record<string, string> } | 'method' | undefined {
    const segs = splitPath(path);
    let methodMismatch = false;
    for (const r of routes) {
      if (r.segments.length !== segs.length) continue;
      const params: Record<string, string> = {};
      const ok = r.segments.every((s, i) => {
        const actual = segs[i] ?? '';
        if (s.startsWith(':')) {
          params[s.slice(1)] = decodeURIComponent(actual);
          return true;
        }
        return s === actual;
      });
      if (!ok) continue;
      if (r.method !== method) {
        methodMismatch = true;
        continue;
      }
      return { route: r, params };
    }
    return methodMismatch ? 'method' : undefined;
  }

  route('GET /gateway', false, () => ({ status: 200, body: { url: gatewayUrl } }));
  route('GET /gateway/bot', true, () => ({
    status: 200,
    body: {
      url: gatewayUrl,
      shards: 1,
      session_start_limit: {
        total: 1000,
        remaining: Math.max(0, 1000 - gateway.identifies.length),
        reset_after: 14_400_000,
        max_concurrency: 1,
      },
    },
  }));
  route('GET /users/@me', true, () => ({ status: 200, body: botUser }));
  route('POST /users/@me/channels', true, ({ body }) => {
    const recipient = typeof body.recipient_id === 'string' ? findUser(body.recipient_id) : undefined;
    if (!recipient) return apiError(400, 50007, 'Cannot send messages to this user');
    for (const ch of dmChannels.values()) {
      const r = (ch as { recipients?: APIUser[] }).recipients?.[0];
      if (r?.id === recipient.id) return { status: 200, body: ch };
    }
    const ch = dmChannelObject(snowflake(), recipient);
    dmChannels.set(ch.id, ch);
    return { status: 200, body: ch };
  });
  route('GET /users/:userId', true, ({ params }) => {
    const u = findUser(params.userId ?? '');
    return u ? { status: 200, body: u } : apiError(404, 10013, 'Unknown User');
  });
  const application = () => applicationObject(applicationId, botUser, botUser.username);
  route('GET /applications/@me', true, () => ({ status: 200, body: application() }));
  route('GET /oauth2/applications/@me', true, () => ({ status: 200, body: application() }));

  route('GET /channels/:channelId', true, ({ params }) => {
    const info = channelInfo(params.channelId ?? '');
    return info ? { status: 200, body: info.channel } : unknownChannel();
  });
  route('POST /channels/:channelId/typing', true, ({ params }) =>
    channelInfo(params.channelId ?? '') ? { status: 204 } : unknownChannel(),
  );
  route('GET /channels/:channelId/messages/:messageId', true, ({ params }) => {
    if (!channelInfo(params.channelId ?? '')) return unknownChannel();
    const m = visibleMessage(params.channelId ?? '', params.messageId ?? '');
    return m ? { status: 200, body: m.current } : unknownMessage();
  });
  route('POST /channels/:channelId/messages', true, ({ params, body, files }) => {
    const channelId = params.channelId ?? '';
    if (!channelInfo(channelId)) return unknownChannel();
    const refused = checkMessageBody(
      files.length > 0 ? { ...body, attachments: body.attachments ?? files } : body,
      { create: true },
    );
    if (refused) return refusalReply(refused);
    return { status: 200, body: createMessage(channelId, body, files, { source: 'channel' }).current };
  });
  route('PATCH /channels/:channelId/messages/:messageId', true, ({ params, body, files }) => {
    if (!channelInfo(params.channelId ?? '')) return unknownChannel();
    const m = visibleMessage(params.channelId ?? '', params.messageId ?? '');
    if (!m) return unknownMessage();
    if (m.current.author.id !== botUser.id)
      return apiError(403, 50005, 'Cannot edit a message authored by another user');
    const refused = checkMessageBody(body, { create: false, existingFlags: m.current.flags ?? 0 });
    if (refused) return refusalReply(refused);
    editMessage(m, body, files);
    return { status: 200, body: m.current };
  });
  route('DELETE /channels/:channelId/messages/:messageId', true, ({ params }) => {
    if (!channelInfo(params.channelId ?? '')) return unknownChannel();
    const m = visibleMessage(params.channelId ?? '', params.messageId ?? '');
    if (!m) return unknownMessage();
    m.deleted = true;
    changed();
    return { status: 204 };
  });

  function guildOr404(guildId: string): FakeDiscordGuildInput | Reply {
    return guild && guild.id === guildId ? guild : apiError(404, 10004, 'Unknown Guild');
  }
  route('GET /guilds/:guildId', true, ({ params }) => {
    const g = guildOr404(params.guildId ?? '');
    return 'status' in g ? g : { status: 200, body: guildObject(g, botUser.id) };
  });
  route('GET /guilds/:guildId/channels', true, ({ params }) => {
    const g = guildOr404(params.guildId ?? '');
    return 'status' in g ? g : { status: 200, body: g.channels.map((c, i) => channelObject(c, g.id, i)) };
  });
  route('GET /guilds/:guildId/roles', true, ({ params }) => {
    const g = guildOr404(params.guildId ?? '');
    return 'status' in g ? g : { status: 200, body: guildRoles(g) };
  });
  route('GET /guilds/:guildId/members/:userId', true, ({ params }) => {
    const g = guildOr404(params.guildId ?? '');
    if ('status' in g) return g;
    if (params.userId === botUser.id) return { status: 200, body: botMember };
    const m = memberInput(params.userId ?? '');
    return m
      ? { status: 200, body: guildMemberObject(m, guildJoinedAt) }
      : apiError(404, 10007, 'Unknown Member');
  });

  route('POST /interactions/:interactionId/:token/callback', false, (ctx) => interactionCallback(ctx));

  function webhookInteraction(params: Record<string, string>): FakeInteraction | Reply {
    if (params.applicationId !== applicationId) return unknownWebhook();
    for (const ix of interactions.values()) if (ix.token === params.token) return ix;
    return unknownWebhook();
  }
  function webhookMessage(ix: FakeInteraction, messageId: string): StoredMessage | undefined {
    const id = messageId === '@original' ? ix.originalMessageId : messageId;
    if (!id || (id !== ix.originalMessageId && !ix.followupIds.includes(id))) return undefined;
    const m = messages.get(id);
    return m && !m.deleted ? m : undefined;
  }
  route('GET /webhooks/:applicationId/:token/messages/:messageId', false, ({ params }) => {
    const ix = webhookInteraction(params);
    if ('status' in ix) return ix;
    const m = webhookMessage(ix, params.messageId ?? '');
    return m ? { status: 200, body: m.current } : unknownMessage();
  });
  route('PATCH /webhooks/:applicationId/:token/messages/:messageId', false, ({ params, body, files }) => {
    const ix = webhookInteraction(params);
    if ('status' in ix) return ix;
    const m = webhookMessage(ix, params.messageId ?? '');
    if (!m) return unknownMessage();
    const refused = checkMessageBody(body, { create: false, existingFlags: m.current.flags ?? 0 });
    if (refused) return refusalReply(refused);
    editMessage(m, body, files);
    return { status: 200, body: m.current };
  });
  route('DELETE /webhooks/:applicationId/:token/messages/:messageId', false, ({ params }) => {
    const ix = webhookInteraction(params);
    if ('status' in ix) return ix;
    const m = webhookMessage(ix, params.messageId ?? '');
    if (!m) return unknownMessage();
    m.deleted = true;
    changed();
    return { status: 204 };
  });
  route('POST /webhooks/:applicationId/:token', false, ({ params, body, files }) => {
    const ix = webhookInteraction(params);
    if ('status' in ix) return ix;
    if (!ix.callback) return unknownWebhook(); // follow-ups need an initial response first
    const refused = checkMessageBody(
      files.length > 0 ? { ...body, attachments: body.attachments ?? files } : body,
      { create: true },
    );
    if (refused) return refusalReply(refused);
    const m = createMessage(ix.channelId, body, files, { source: 'followup', interaction: ix });
    ix.followupIds.push(m.id);
    return { status: 200, body: m.current };
  });

  // ---- interaction callbacks ------------------------------------------------------------------------

  function badCallbackType(): Reply {
    return {
      status: 400,
      body: {
        code: 50035,
        message: 'Invalid Form Body',
        errors: {
          type: {
            _errors: [
              {
                code: 'INTERACTION_RESPONSE_TYPE_INVALID',
                message: 'This interaction response type is not valid for this interaction',
              },
            ],
          },
        },
      },
    };
  }

  function interactionCallback({ params, query, body, files }: RouteContext): Reply {
    const ix = interactions.get(params.interactionId ?? '');
    const refuse = (r: Reply): Reply => {
      if (ix) {
        ix.refused.push({ status: r.status, body: r.body, at: Date.now() });
        changed();
      }
      return r;
    };
    if (!ix || ix.token !== params.token) return unknownInteraction();
    if (ix.callback) return refuse(apiError(400, 40060, 'Interaction has already been acknowledged.'));
    if (Date.now() - ix.sentAt > responseWindowMs) return refuse(unknownInteraction());
    const type = body.type;
    const data = isObj(body.data) ? body.data : undefined;
    const withResponse = query.with_response === 'true';
    const hasMessage = ix.messageId !== undefined && messages.has(ix.messageId);
    let messageId: string | undefined;
    switch (type) {
      case 4: {
        const refused = checkMessageBody(data ?? {}, { create: true, base: ['data'] });
        if (refused) return refuse(refusalReply(refused));
        const m = createMessage(ix.channelId, data ?? {}, files, { source: 'interaction', interaction: ix });
        ix.originalMessageId = m.id;
        messageId = m.id;
        break;
      }
      case 5: {
        const flags = (typeof data?.flags === 'number' ? data.flags : 0) & EPHEMERAL;
        const m = createMessage(ix.channelId, { flags }, [], {
          source: 'interaction',
          interaction: ix,
          addFlags: LOADING,
        });
        ix.originalMessageId = m.id;
        messageId = m.id;
        break;
      }
      case 6:
      case 7: {
        if (!hasMessage || !ix.messageId) return refuse(badCallbackType());
        const m = messages.get(ix.messageId);
        if (!m) return refuse(unknownMessage());
        if (type === 7) {
          const refused = checkMessageBody(data ?? {}, {
            create: false,
            base: ['data'],
            existingFlags: m.current.flags ?? 0,
          });
          if (refused) return refuse(refusalReply(refused));
          editMessage(m, data ?? {}, files);
        }
        ix.originalMessageId = m.id;
        messageId = m.id;
        break;
      }
      case 9: {
        if (ix.type === 5) return refuse(badCallbackType());
        const refused = checkModalData(data);
        if (refused) return refuse(refusalReply(refused));
        if (data) assignComponentIds(data.components);
        break;
      }
      default:
        return refuse({
          status: 400,
          body: {
            code: 50035,
            message: 'Invalid Form Body',
            errors: {
              type: {
                _errors: [
                  {
                    code: 'BASE_TYPE_CHOICES',
                    message: 'Value must be one of {1, 4, 5, 6, 7, 8, 9, 10, 12}.',
                  },
                ],
              },
            },
          },
        });
    }
    const record: InteractionCallbackRecord = {
      interactionId: ix.id,
      interactionType: ix.type,
      token: ix.token,
      type,
      data: data ? clone(data) : undefined,
      flags: typeof data?.flags === 'number' ? data.flags : 0,
      withResponse,
      at: Date.now(),
    };
    if (messageId) record.messageId = messageId;
    ix.callback = record;
    interactionCallbacks.push(record);
    changed();
    const w = waiters.get(ix.id);
    if (w) {
      clearTimeout(w.timer);
      waiters.delete(ix.id);
      w.resolve(record);
    }
    if (!withResponse) return { status: 204 };
    const msg = messageId ? messages.get(messageId) : undefined;
    return {
      status: 200,
      body: {
        interaction: {
          id: ix.id,
          type: ix.type,
          activity_instance_id: null,
          response_message_id: msg?.id ?? null,
          response_message_loading: type === 5,
          response_message_ephemeral: msg?.ephemeral ?? false,
        },
        ...(type === 4 || type === 7
          ? { resource: { type, message: msg?.current } }
          : { resource: { type } }),
      },
    };
  }

  // ---- HTTP -----------------------------------------------------------------------------------------

  function send(res: ServerResponse, reply: Reply, call: FakeRestCall): void {
    call.status = reply.status;
    call.response = reply.body;
    const headers: Record<string, string> = { ...reply.headers };
    if (reply.body !== undefined && reply.status !== 204) {
      headers['content-type'] = 'application/json';
      res.writeHead(reply.status, headers);
      res.end(JSON.stringify(reply.body));
    } else {
      res.writeHead(reply.status, headers);
      res.end();
    }
    changed();
  }

  function bucketHeaders(call: FakeRestCall, remaining: number, resetAfter: number): Record<string, string> {
    const bucket = Buffer.from(call.route ?? call.path)
      .toString('hex')
      .slice(0, 32);
    return {
      'x-ratelimit-bucket': bucket,
      'x-ratelimit-limit': '5',
      'x-ratelimit-remaining': String(remaining),
      'x-ratelimit-reset': String((Date.now() / 1000 + resetAfter).toFixed(3)),
      'x-ratelimit-reset-after': String(resetAfter),
    };
  }

  function injectedReply(call: FakeRestCall, failure: FakeFailure): Reply {
    if (failure.status === 429) {
      const retryAfter = failure.retryAfter ?? 0.05;
      const headers: Record<string, string> = {
        ...bucketHeaders(call, 0, retryAfter),
        'retry-after': String(retryAfter),
        'x-ratelimit-scope': failure.global ? 'global' : 'user',
      };
      if (failure.global) headers['x-ratelimit-global'] = 'true';
      return {
        status: 429,
        headers,
        body: failure.body ?? {
          message: 'You are being rate limited.',
          retry_after: retryAfter,
          global: !!failure.global,
        },
      };
    }
    const defaults: Record<number, unknown> = {
      400: { message: 'Invalid Form Body', code: 50035, errors: {} },
      401: { message: '401: Unauthorized', code: 0 },
      403: { message: 'Missing Permissions', code: 50013 },
      404: { message: '404: Not Found', code: 0 },
    };
    return {
      status: failure.status,
      body: failure.body ??
        defaults[failure.status] ?? { message: `${failure.status}: Internal Server Error`, code: 0 },
    };
  }

  async function handleHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = (req.method ?? 'GET').toUpperCase();
    const raw = await readBody(req);
    const prefix = '/api/v10';
    const path = url.pathname.startsWith(`${prefix}/`) ? url.pathname.slice(prefix.length) : url.pathname;
    const call: FakeRestCall = {
      method,
      path,
      route: null,
      params: {},
      query: Object.fromEntries(url.searchParams),
      body: undefined,
      files: [],
      authorization: req.headers.authorization ?? null,
      at: Date.now(),
      status: 0,
      response: undefined,
    };
    callLog.push(call);
    if (!url.pathname.startsWith(`${prefix}/`)) return send(res, apiError(404, 0, '404: Not Found'), call);
    let parsed: { body: Json; files: FakeRestFile[] };
    try {
      parsed = await parseBody(raw, String(req.headers['content-type'] ?? ''));
    } catch {
      return send(res, apiError(400, 50109, 'The request body contains invalid JSON.'), call);
    }
    call.body = raw.length > 0 ? parsed.body : undefined;
    call.files = parsed.files;
    const match = matchRoute(method, path);
    if (match === 'method') return send(res, apiError(405, 0, '405: Method Not Allowed'), call);
    if (match) {
      call.route = `${match.route.method} ${match.route.pattern}`;
      call.params = match.params;
    }
    const failureIdx = failures.findIndex((f) => routeKeyMatches(f.key, method, path, call.route));
    const failure = failures[failureIdx];
    if (failure) {
      failure.left--;
      if (failure.left <= 0) failures.splice(failureIdx, 1);
      call.injected = true;
      return send(res, injectedReply(call, failure.failure), call);
    }
    if (!match) return send(res, apiError(404, 0, '404: Not Found'), call);
    if (match.route.auth && call.authorization !== `Bot ${botToken}`) {
      return send(res, apiError(401, 0, '401: Unauthorized'), call);
    }
    let reply: Reply;
    try {
      reply = match.route.handler({
        params: match.params,
        query: call.query,
        body: parsed.body,
        files: parsed.files,
      });
    } catch (err) {
      reply = { status: 500, body: { message: `fake discord bug: ${(err as Error).message}`, code: 0 } };
    }
    if (match.route.auth && reply.status < 400) {
      reply.headers = { ...bucketHeaders(call, 4, 1), ...reply.headers };
    }
    send(res, reply, call);
  }

  // ---- Gateway --------------------------------------------------------------------------------------

  function recordFrame(conn: Conn, direction: 'in' | 'out', p: Json): void {
    const frame: GatewayFrame = {
      connectionId: conn.id,
      direction,
      op: typeof p.op === 'number' ? p.op : -1,
      at: Date.now(),
    };
    if ('t' in p) frame.t = p.t as string | null;
    if ('s' in p) frame.s = p.s as number | null;
    if ('d' in p) frame.d = p.d;
    gateway.frames.push(frame);
    changed();
  }

  function sendFrame(conn: Conn, payload: Json): void {
    if (!conn.open) return;
    recordFrame(conn, 'out', payload);
    const json = JSON.stringify(payload);
    const deflate = conn.deflate;
    if (deflate) {
      conn.chain = conn.chain.then(
        () =>
          new Promise<void>((resolve) => {
            if (!conn.open) return resolve();
            deflate.write(json);
            deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => {
              const takeWhenComplete = () => {
                if (!conn.open) return resolve();
                const buf = Buffer.concat(conn.deflateChunks);
                const n = buf.length;
                if (
                  n >= 4 &&
                  buf[n - 4] === 0 &&
                  buf[n - 3] === 0 &&
                  buf[n - 2] === 0xff &&
                  buf[n - 1] === 0xff
                ) {
                  conn.deflateChunks = [];
                  if (conn.open) conn.ws.send(buf);
                  resolve();
                } else {
                  setImmediate(takeWhenComplete);
                }
              };
              takeWhenComplete();
            });
          }),
      );
    } else if (conn.identifyCompress) {
      conn.ws.send(zlib.deflateSync(json));
    } else {
      conn.ws.send(json);
    }
  }

  function closeConn(conn: Conn, code: number, reason: string): void {
    if (!conn.open) return;
    conn.record.closedBy = 'server';
    conn.ws.close(code, reason);
  }

  function sessionDispatch(session: Session, t: string, d: unknown): number {
    session.seq++;
    const frame: Json = { t, s: session.seq, op: 0, d };
    session.events.push({ s: session.seq, frame });
    if (session.events.length > SESSION_REPLAY_BUFFER) session.events.shift();
    if (session.conn?.open) sendFrame(session.conn, frame);
    return session.seq;
  }

  function invalidate(session: Session | undefined): void {
    if (!session) return;
    session.valid = false;
    if (lastSession === session) lastSession = undefined;
  }

  function liveConn(): Conn | undefined {
    let latest: Conn | undefined;
    for (const c of conns) if (c.open && (!latest || c.id > latest.id)) latest = c;
    return latest;
  }

  function readyPayload(session: Session): Json {
    return {
      v: 10,
      user_settings: {},
      user: botUser,
      session_type: 'normal',
      session_id: session.id,
      resume_gateway_url: resumeGatewayUrl,
      relationships: [],
      private_channels: [],
      presences: [],
      guilds: guild ? [{ id: guild.id, unavailable: true }] : [],
      guild_join_requests: [],
      geo_ordered_rtc_regions: ['us-east', 'us-central'],
      game_relationships: [],
      auth: {},
      application: { id: applicationId, flags: 0 },
      shard: [0, 1],
      _trace: TRACE,
    };
  }

  /** IDENTIFY and RESUME: a second one closes 4005, a wrong token 4004. False when the connection was closed. */
  function mayAuthenticate(conn: Conn, d: Json): boolean {
    if (conn.identified) {
      closeConn(conn, 4005, 'Already authenticated.');
      return false;
    }
    if (d.token !== botToken) {
      closeConn(conn, 4004, 'Authentication failed.');
      return false;
    }
    return true;
  }

  function onIdentify(conn: Conn, d: Json): void {
    if (!mayAuthenticate(conn, d)) return;
    const intents = d.intents;
    if (typeof intents !== 'number' || !Number.isInteger(intents) || intents < 0) {
      closeConn(conn, 4013, 'Invalid intent(s).');
      return;
    }
    if (intents & PRIVILEGED_INTENTS & ~allowedPrivileged) {
      closeConn(conn, 4014, 'Disallowed intent(s).');
      return;
    }
    const session: Session = {
      id: Buffer.from(snowflake()).toString('hex').slice(0, 32),
      seq: 0,
      events: [],
      intents,
      conn,
      valid: true,
    };
    sessions.set(session.id, session);
    lastSession = session;
    conn.session = session;
    conn.identified = true;
    conn.identifyCompress = d.compress === true && !conn.deflate;
    conn.record.sessionId = session.id;
    const rec: IdentifyRecord = {
      connectionId: conn.id,
      sessionId: session.id,
      token: String(d.token),
      intents,
      properties: d.properties,
      shard: d.shard,
      compress: d.compress === true,
      at: Date.now(),
    };
    if (typeof d.large_threshold === 'number') rec.largeThreshold = d.large_threshold;
    if (d.presence !== undefined) rec.presence = d.presence;
    gateway.identifies.push(rec);
    sessionDispatch(session, 'READY', readyPayload(session));
    // A beat later, like Discord: discord.js handles each frame asynchronously, and a GUILD_CREATE in the
    // same TCP read as READY could overtake it.
    setTimeout(() => {
      if (guild) {
        const mode = opts.guildCreateMembers ?? 'auto';
        const all = mode === 'all' || (mode === 'auto' && (intents & GUILD_PRESENCES) !== 0);
        const members = all ? guild.members.map((m) => guildMemberObject(m, guildJoinedAt)) : [];
        sessionDispatch(
          session,
          'GUILD_CREATE',
          guildCreateData(guild, clone(botMember), members, guildJoinedAt),
        );
      }
      resolveReady();
      changed();
    }, 15);
  }

  function onResume(conn: Conn, d: Json): void {
    if (!mayAuthenticate(conn, d)) return;
    const session = typeof d.session_id === 'string' ? sessions.get(d.session_id) : undefined;
    const seq = typeof d.seq === 'number' ? d.seq : -1;
    const rec: ResumeRecord = {
      connectionId: conn.id,
      sessionId: String(d.session_id),
      seq,
      ok: false,
      replayed: 0,
      at: Date.now(),
    };
    gateway.resumes.push(rec);
    const oldest = session?.events[0]?.s ?? 1;
    if (!session?.valid || seq > session.seq || seq < oldest - 1) {
      sendFrame(conn, { t: null, s: null, op: 9, d: false });
      changed();
      return;
    }
    const old = session.conn;
    if (old && old !== conn && old.open) {
      old.session = undefined;
      old.record.closedBy = 'server';
      old.ws.terminate();
    }
    session.conn = conn;
    conn.session = session;
    conn.identified = true;
    conn.record.sessionId = session.id;
    const missed = session.events.filter((e) => e.s > seq);
    for (const e of missed) sendFrame(conn, e.frame);
    rec.ok = true;
    rec.replayed = missed.length;
    lastSession = session;
    sessionDispatch(session, 'RESUMED', { _trace: TRACE });
  }

  function onRequestMembers(conn: Conn, d: Json): void {
    if (!guild || d.guild_id !== guild.id || !conn.session) return;
    const ids = Array.isArray(d.user_ids)
      ? d.user_ids.map(String)
      : typeof d.user_ids === 'string'
        ? [d.user_ids]
        : null;
    const query = typeof d.query === 'string' ? d.query.toLowerCase() : '';
    const limit = typeof d.limit === 'number' && d.limit > 0 ? d.limit : Number.POSITIVE_INFINITY;
    const all = [{ user: { id: botUser.id, username: botUser.username }, roles: [] }, ...guild.members];
    const found = all
      .filter((m) => (ids ? ids.includes(m.user.id) : m.user.username.toLowerCase().startsWith(query)))
      .slice(0, limit);
    sessionDispatch(conn.session, 'GUILD_MEMBERS_CHUNK', {
      guild_id: guild.id,
      members: found.map((m) =>
        m.user.id === botUser.id ? clone(botMember) : guildMemberObject(m, guildJoinedAt),
      ),
      chunk_index: 0,
      chunk_count: 1,
      not_found: ids ? ids.filter((id) => !found.some((m) => m.user.id === id)) : [],
      ...(d.nonce !== undefined ? { nonce: d.nonce } : {}),
    });
  }

  function onGatewayMessage(conn: Conn, data: RawData, isBinary: boolean): void {
    let p: unknown;
    try {
      const text = isBinary ? Buffer.from(data as Buffer).toString('utf8') : data.toString();
      p = JSON.parse(text);
    } catch {
      closeConn(conn, 4002, 'Error while decoding payload.');
      return;
    }
    if (!isObj(p) || typeof p.op !== 'number') {
      closeConn(conn, 4002, 'Error while decoding payload.');
      return;
    }
    recordFrame(conn, 'in', p);
    const d = isObj(p.d) ? p.d : {};
    if (!conn.identified && p.op !== 1 && p.op !== 2 && p.op !== 6) {
      closeConn(conn, 4003, 'Not authenticated.');
      return;
    }
    switch (p.op) {
      case 1:
        gateway.heartbeats++;
        if (ackHeartbeats) sendFrame(conn, { t: null, s: null, op: 11, d: null });
        return;
      case 2: {
        onIdentify(conn, d);
        return;
      }
      case 6: {
        onResume(conn, d);
        return;
      }
      case 3: // presence update
      case 4: // voice state update
        return;
      case 8: {
        onRequestMembers(conn, d);
        return;
      }
      default: {
        closeConn(conn, 4001, 'Unknown opcode.');
        return;
      }
    }
  }

  const wss = new WebSocketServer({ noServer: true });

  function onGatewayConnection(ws: WebSocket, req: IncomingMessage): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const query = Object.fromEntries(url.searchParams);
    const record: GatewayConnectionRecord = {
      id: ++connCounter,
      path: url.pathname,
      query,
      compress: query.compress === 'zlib-stream' ? 'zlib-stream' : null,
      openedAt: Date.now(),
    };
    gateway.connections.push(record);
    let markClosed!: () => void;
    const conn: Conn = {
      id: record.id,
      ws,
      record,
      identified: false,
      deflateChunks: [],
      identifyCompress: false,
      chain: Promise.resolve(),
      open: true,
      closed: new Promise<void>((r) => {
        markClosed = r;
      }),
    };
    conns.add(conn);
    if (record.compress) {
      const deflate = zlib.createDeflate();
      deflate.on('data', (chunk: Buffer) => conn.deflateChunks.push(chunk));
      deflate.on('error', () => {});
      conn.deflate = deflate;
    }
    ws.on('message', (data, isBinary) => onGatewayMessage(conn, data, isBinary));
    ws.on('error', () => {});
    ws.on('close', (code) => {
      conn.open = false;
      conns.delete(conn);
      record.closedAt = Date.now();
      record.closeCode = code;
      record.closedBy ??= 'client';
      conn.deflate?.close();
      const session = conn.session;
      if (session && session.conn === conn) session.conn = undefined;
      // A client closing with 1000/1001 ends its session (Discord will not let it resume).
      if (record.closedBy === 'client' && (code === 1000 || code === 1001)) invalidate(session);
      markClosed();
      changed();
    });
    changed();
    if (query.v !== '10') {
      closeConn(conn, 4012, 'Invalid API version.');
      return;
    }
    if ((query.encoding ?? 'json') !== 'json') {
      closeConn(conn, 4002, 'Error while decoding payload.');
      return;
    }
    if (query.compress !== undefined && query.compress !== 'zlib-stream') {
      closeConn(conn, 4000, 'Unsupported compression (fake).');
      return;
    }
    sendFrame(conn, {
      t: null,
      s: null,
      op: 10,
      d: { heartbeat_interval: heartbeatIntervalMs, _trace: TRACE },
    });
  }

  // ---- interactions ---------------------------------------------------------------------------------

  function interactionBase(
    type: number,
    data: Json,
    o: {
      user: FakeDiscordUserInput;
      memberRoles?: string[];
      channelId: string;
      guildId?: string;
      locale?: string;
    },
  ): { id: string; token: string; payload: Json } {
    const info = channelInfo(o.channelId);
    if (!info) throw new Error(`fake discord: unknown channel ${o.channelId}`);
    const guildId = o.guildId ?? info.guildId;
    const id = snowflake();
    const token = interactionToken(id);
    const locale = o.locale ?? 'en-US';
    const payload: Json = {
      app_permissions: ALL_PERMISSIONS,
      application_id: applicationId,
      attachment_size_limit: 10_485_760,
      authorizing_integration_owners: { '0': guildId ?? '0' },
      channel: clone(info.channel),
      channel_id: o.channelId,
      context: guildId ? 0 : 1,
      data,
      entitlement_sku_ids: [],
      entitlements: [],
      id,
      locale,
      token,
      type,
      version: 1,
    };
    if (guildId) {
      const configured = memberInput(o.user.id);
      const roles = o.memberRoles ?? configured?.roles ?? [];
      const member: FakeDiscordMemberInput = { user: o.user, roles, nick: configured?.nick ?? null };
      const perms =
        guild && guild.id === guildId ? memberPermissions(guild, roles, o.user.id) : ALL_PERMISSIONS;
      payload.guild = { features: [], id: guildId, locale: 'en-US' };
      payload.guild_id = guildId;
      payload.guild_locale = 'en-US';
      payload.member = interactionMemberObject(member, guildJoinedAt, perms);
      (payload.channel as Json).permissions = perms;
    } else {
      payload.user = userObject(o.user);
    }
    return { id, token, payload };
  }

  function awaitCallback(ix: FakeInteraction, timeoutMs: number): Promise<InteractionCallbackRecord> {
    return new Promise((resolve, reject) => {
      if (ix.callback) return resolve(ix.callback);
      const timer = setTimeout(() => {
        waiters.delete(ix.id);
        const refused = ix.refused.map((r) => `${r.status} ${JSON.stringify(r.body)}`).join('; ');
        reject(
          new Error(
            `fake discord: no callback for interaction ${ix.id} within ${timeoutMs} ms` +
              (refused ? ` (refused: ${refused})` : ''),
          ),
        );
      }, timeoutMs);
      waiters.set(ix.id, { resolve, reject, timer });
    });
  }

  function sendInteraction(
    payload: Json,
    timeoutMs = interactionTimeoutMs,
  ): Promise<InteractionCallbackRecord> {
    if (!lastSession) throw new Error('fake discord: no gateway session (await fake.ready() first)');
    const id = String(payload.id);
    const channelId = String(payload.channel_id ?? (isObj(payload.channel) ? payload.channel.id : ''));
    const ix: FakeInteraction = {
      id,
      token: String(payload.token),
      type: Number(payload.type),
      channelId,
      payload,
      sentAt: Date.now(),
      refused: [],
      followupIds: [],
    };
    if (isObj(payload.message) && typeof payload.message.id === 'string') ix.messageId = payload.message.id;
    interactions.set(id, ix);
    const result = awaitCallback(ix, timeoutMs);
    sessionDispatch(lastSession, 'INTERACTION_CREATE', payload);
    changed();
    return result;
  }

  async function clickButton(o: ClickButtonOptions): Promise<InteractionCallbackRecord> {
    const stored = messages.get(o.messageId);
    if (!stored || stored.deleted || stored.channelId !== o.channelId) {
      throw new Error(`fake discord: no message ${o.messageId} in channel ${o.channelId}`);
    }
    const button = findComponent(
      stored.current.components,
      (c) => c.type === 2 && c.custom_id === o.customId,
    );
    if (!o.force && (!button || button.disabled === true)) {
      throw new Error(
        `fake discord: message ${o.messageId} has no ${button ? 'enabled ' : ''}button with custom_id ${o.customId}`,
      );
    }
    const data: Json = { component_type: 2, custom_id: o.customId };
    if (typeof button?.id === 'number') data.id = button.id;
    const { payload } = interactionBase(3, data, o);
    payload.message = clone(stored.current);
    return sendInteraction(payload, o.timeoutMs);
  }

  async function submitModal(o: SubmitModalOptions): Promise<InteractionCallbackRecord> {
    let modal: InteractionCallbackRecord | undefined;
    for (let i = interactionCallbacks.length - 1; i >= 0; i--) {
      const cb = interactionCallbacks[i];
      if (cb?.type === 9 && cb.data?.custom_id === o.customId) {
        modal = cb;
        break;
      }
    }
    if (!modal && !o.force) {
      throw new Error(`fake discord: the bot never showed a modal with custom_id ${o.customId}`);
    }
    const components: Json[] = [];
    const used = new Set<string>();
    const submitted = (input: Json): Json => {
      const customId = String(input.custom_id);
      used.add(customId);
      const value = o.fields[customId] ?? '';
      const label = String(input.label ?? customId);
      if (input.required !== false && value === '') {
        throw new Error(`fake discord: modal field ${customId} (${label}) is required`);
      }
      if (typeof input.max_length === 'number' && value.length > input.max_length) {
        throw new Error(
          `fake discord: modal field ${customId} is longer than max_length ${input.max_length}`,
        );
      }
      if (typeof input.min_length === 'number' && value !== '' && value.length < input.min_length) {
        throw new Error(
          `fake discord: modal field ${customId} is shorter than min_length ${input.min_length}`,
        );
      }
      return { type: 4, id: input.id, custom_id: customId, value };
    };
    if (modal) {
      const rows = Array.isArray(modal.data?.components) ? modal.data.components.filter(isObj) : [];
      for (const top of rows) {
        if (top.type === 1 && Array.isArray(top.components) && isObj(top.components[0])) {
          components.push({ type: 1, id: top.id, components: [submitted(top.components[0])] });
        } else if (top.type === 18 && isObj(top.component)) {
          const inner = top.component;
          if (inner.type === 4) {
            components.push({ type: 18, id: top.id, component: submitted(inner) });
          } else {
            const customId = String(inner.custom_id);
            used.add(customId);
            const v = o.fields[customId];
            components.push({
              type: 18,
              id: top.id,
              component: { type: inner.type, id: inner.id, custom_id: customId, values: v ? [v] : [] },
            });
          }
        } else if (top.type === 10) {
          components.push({ type: 10, id: top.id });
        }
      }
      const unknown = Object.keys(o.fields).filter((k) => !used.has(k));
      if (unknown.length > 0)
        throw new Error(`fake discord: the modal has no field(s) ${unknown.join(', ')}`);
    } else {
      let n = 1;
      for (const [customId, value] of Object.entries(o.fields)) {
        components.push({ type: 1, id: n++, components: [{ type: 4, id: n++, custom_id: customId, value }] });
      }
    }
    const opener = modal ? interactions.get(modal.interactionId) : undefined;
    const messageId = o.messageId ?? (opener?.type === 3 ? opener.messageId : undefined);
    const { payload } = interactionBase(5, { custom_id: o.customId, components }, o);
    if (messageId) {
      const stored = messages.get(messageId);
      if (!stored || stored.deleted) throw new Error(`fake discord: no message ${messageId}`);
      payload.message = clone(stored.current);
    }
    return sendInteraction(payload, o.timeoutMs);
  }

  // ---- server ---------------------------------------------------------------------------------------

  const server = createServer((req, res) => {
    handleHttp(req, res).catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: `fake discord bug: ${(err as Error).message}`, code: 0 }));
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const pathname = new URL(req.url ?? '/', 'http://127.0.0.1').pathname.replace(/\/+$/, '');
    if (closing || (pathname !== '/gateway' && pathname !== '/resume-gateway')) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onGatewayConnection(ws, req));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const baseUrl = `http://127.0.0.1:${port}`;
  const gatewayUrl = `ws://127.0.0.1:${port}/gateway`;
  const resumeGatewayUrl = `ws://127.0.0.1:${port}/resume-gateway`;

  const fake: FakeDiscord = {
    url: baseUrl,
    apiUrl: `${baseUrl}/api`,
    gatewayUrl,
    resumeGatewayUrl,
    port,
    botToken,
    applicationId,
    botUser,
    guild,
    messages,
    interactionCallbacks,
    interactions,
    gateway,

    calls(filter) {
      if (filter === undefined) return [...callLog];
      if (typeof filter === 'function') return callLog.filter(filter);
      return callLog.filter((c) => routeKeyMatches(filter, c.method, c.path, c.route));
    },
    failNext(routeKey, failure) {
      failures.push({ key: routeKey, failure, left: failure.times ?? 1 });
    },
    messagesIn(channelId) {
      return [...messages.values()].filter((m) => m.channelId === channelId);
    },
    waitFor<T>(predicate: () => T | undefined | null | false, timeoutMs = 5000): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        let done = false;
        const finish = () => {
          done = true;
          changes.off('change', check);
          clearInterval(poll);
          clearTimeout(timer);
        };
        function check(): void {
          if (done) return;
          let v: T | undefined | null | false;
          try {
            v = predicate();
          } catch (err) {
            finish();
            reject(err);
            return;
          }
          if (v !== undefined && v !== null && v !== false) {
            finish();
            resolve(v);
          }
        }
        const poll = setInterval(check, 25);
        const timer = setTimeout(() => {
          if (done) return;
          finish();
          reject(new Error(`fake discord: waitFor timed out after ${timeoutMs} ms`));
        }, timeoutMs);
        changes.on('change', check);
        check();
      });
    },

    ready: () => readyPromise,
    isConnected() {
      const c = liveConn();
      return !!c?.identified;
    },
    dispatch(t, d) {
      if (!lastSession) throw new Error('fake discord: no gateway session (await fake.ready() first)');
      return sessionDispatch(lastSession, t, d);
    },
    async dropGateway(o = {}) {
      const conn = liveConn();
      if (!conn) return;
      if (o.invalidateSession) invalidate(conn.session);
      conn.record.closedBy = 'server';
      if (o.abrupt) conn.ws.terminate();
      else conn.ws.close(o.code ?? 4000, o.reason ?? 'fake discord: dropped');
      await conn.closed;
    },
    sendReconnect() {
      const conn = liveConn();
      if (conn) sendFrame(conn, { t: null, s: null, op: 7, d: null });
    },
    sendInvalidSession(resumable) {
      const conn = liveConn();
      if (!conn) return;
      if (!resumable) invalidate(conn.session);
      sendFrame(conn, { t: null, s: null, op: 9, d: resumable });
    },
    requestHeartbeat() {
      const conn = liveConn();
      if (conn) sendFrame(conn, { t: null, s: null, op: 1, d: null });
    },
    setHeartbeatAcks(on) {
      ackHeartbeats = on;
    },

    clickButton,
    submitModal,
    async sendInteraction(payload, timeoutMs) {
      return sendInteraction(payload, timeoutMs);
    },

    async close() {
      closing = true;
      for (const w of waiters.values()) {
        clearTimeout(w.timer);
        w.reject(new Error('fake discord closed'));
      }
      waiters.clear();
      for (const c of conns) {
        c.record.closedBy ??= 'server';
        c.ws.terminate();
      }
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return fake;
}
