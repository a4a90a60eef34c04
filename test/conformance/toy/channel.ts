import type { ApprovalCard } from '../../../src/chat/card.js';
import { stateInWords } from '../../../src/chat/card.js';
import type { ChannelPlugin } from '../../../src/chat/plugin.js';
import type {
  ApprovalChannel,
  ApproverEntry,
  ChannelUser,
  TargetEntry,
} from '../../../src/services/approvals/channel.js';

/**
 * A toy approval channel, the whole of it in this folder (issue 14): it shows that a channel is a
 * plug-in — registered with one line (`[...CHANNELS, toyChannel]`) and reaching the approval core
 * only through ApprovalChannel (outbound) and ChatInteractions (inbound). Messages live in memory;
 * clicks arrive as POST /toy/click on the API server, and GET /toy/state shows what it holds.
 * Its syntax: users are lower-case names, `group:<id>` a group of them; `@<name>` in a target
 * entry is a person to mention, anything else a channel.
 */

export interface ToyMessage {
  ref: string;
  channel: string;
  permissionId: string;
  /** What the message shows now, one line. */
  text: string;
  buttons: boolean;
  edits: number;
  /** Replies to the message (reminders, escalations). */
  thread: string[];
}

export interface ToyState {
  messages: ToyMessage[];
  /** Notes posted in a channel itself (alerts), by channel. */
  notes: Record<string, string[]>;
  /** Notes shown to one user only (refusals, repeats), by user. */
  told: Record<string, string[]>;
}

export interface ToySettings {
  channel: string;
  approvers: string[];
  /** Group id → member names. */
  groups: Record<string, string[]>;
}

/** A card as the toy shows it: what is asked, its id, and its state in words. */
export function renderToy(card: ApprovalCard): { text: string; buttons: boolean } {
  const what = card.resource ? `${card.action} on ${card.resource}` : card.action;
  return {
    text: `${card.agentName} asks: ${what} [${card.permissionId}] — ${stateInWords(card.state)}`,
    buttons: card.state.kind === 'pending',
  };
}

const mention = (ids: string[]) => ids.map((id) => `@${id} `).join('');

export class ToyAdapter implements ApprovalChannel {
  readonly name = 'toy';

  constructor(
    private readonly settings: ToySettings,
    /** The toy's chat service, shared by every adapter of one plug-in as a workspace would be. */
    readonly state: ToyState,
  ) {}

  get defaults() {
    return { channel: this.settings.channel, approvers: this.settings.approvers };
  }

  approverEntry(entry: string): ApproverEntry {
    return entry.startsWith('group:') ? { kind: 'group', id: entry.slice(6) } : { kind: 'user', id: entry };
  }

  targetEntry(entry: string): TargetEntry {
    return entry.startsWith('@') ? { kind: 'user', id: entry.slice(1) } : { kind: 'channel', id: entry };
  }

  async post(channel: string, card: ApprovalCard) {
    const ref = `toy-${this.state.messages.length + 1}`;
    this.state.messages.push({
      ref,
      channel,
      permissionId: card.permissionId,
      ...renderToy(card),
      edits: 0,
      thread: [],
    });
    return { messageRef: ref, permalink: `https://toy.example/${channel}/${ref}` };
  }

  async update(_channel: string, messageRef: string, card: ApprovalCard): Promise<void> {
    const message = this.message(messageRef);
    Object.assign(message, renderToy(card), { edits: message.edits + 1 });
  }

  async notice(channel: string, messageRef: string | null, text: string, mentions: string[]): Promise<void> {
    const note = `${mention(mentions)}${text}`;
    if (messageRef) this.message(messageRef).thread.push(note);
    else this.state.notes[channel] = [...(this.state.notes[channel] ?? []), note];
  }

  async memberOfAny(user: ChannelUser, groupIds: string[]): Promise<boolean> {
    return groupIds.some((group) => this.settings.groups[group]?.includes(user.userId));
  }

  tell(user: string, text: string): void {
    this.state.told[user] = [...(this.state.told[user] ?? []), text];
  }

  private message(ref: string): ToyMessage {
    const message = this.state.messages.find((m) => m.ref === ref);
    // An unknown ref is an error, as on a real channel: the core must keep the refs it was given.
    if (!message) throw new Error(`toy: no message ${ref}`);
    return message;
  }
}

/** The toy channel plug-in with its settings (a real channel would read them from the config). */
export function createToyChannel(settings: ToySettings): ChannelPlugin {
  const state: ToyState = { messages: [], notes: {}, told: {} };
  return {
    name: 'toy',
    identity: { pattern: /^[a-z][a-z0-9-]{0,31}$/, hint: 'toy:<name>' },
    setup: {
      label: 'Toy',
      hint: 'the toy settings',
      state: () => ({ defaultApprovers: settings.approvers.length > 0 }),
    },
    // Always configured: the plug-in decides that, and a toy has nothing to wait for.
    async create({ interactions }) {
      const adapter = new ToyAdapter(settings, state);
      return {
        adapter,
        inbound: 'http',
        mount(server) {
          server.post<{ Body: { user?: unknown; permissionId?: unknown; approved?: unknown } }>(
            '/toy/click',
            async (request, reply) => {
              const { user, permissionId, approved } = request.body ?? {};
              if (
                typeof user !== 'string' ||
                typeof permissionId !== 'string' ||
                typeof approved !== 'boolean'
              )
                return reply.status(400).send({ error: 'user, permissionId and approved are required' });
              const answer = await interactions.click(
                { channel: 'toy', userId: user, userName: user },
                permissionId,
                approved,
              );
              // A decision's messages are edited by the message-update job, as on Slack.
              if (answer.kind === 'note') adapter.tell(user, answer.text);
              return answer.kind === 'note'
                ? { kind: 'note', text: answer.text }
                : { kind: 'decided', status: answer.permission.status };
            },
          );
          server.get('/toy/state', async () => adapter.state);
        },
      };
    },
  };
}

/** Two approvers and a group of one. */
export const TOY_SETTINGS: ToySettings = {
  channel: 'approvals',
  approvers: ['alice', 'bob', 'group:leads'],
  groups: { leads: ['carol'] },
};

/** The toy as the tests register it. */
export const toyChannel = createToyChannel(TOY_SETTINGS);
