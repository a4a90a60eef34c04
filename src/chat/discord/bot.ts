import {
  type ButtonInteraction,
  Client,
  Events,
  GatewayIntentBits,
  type Interaction,
  MessageFlags,
  type ModalSubmitInteraction,
} from 'discord.js';
import type { Permission } from '../../core/permission.js';
import type { Logger } from '../../logger.js';
import type { ChannelUser } from '../../services/approvals/channel.js';
import type { ChatInteractions } from '../interactions.js';
import { discordFieldErrorsMessage, parseNarrowingSubmission, renderNarrowingModal } from './modal.js';
import { parseCustomId, renderDiscordMessage } from './render.js';

export interface DiscordBotOptions {
  token: string;
  apiUrl?: string;
  interactions: ChatInteractions;
  logger: Logger;
  /** When a slow answer is deferred, a little under Discord's 3 s (tests shorten it). */
  answerDeadlineMs?: number;
}

const NOT_OURS = 'This control is not one Agent OTP knows (an old message?); nothing was changed.';

/** Discord refuses a first answer to an interaction after 3 s; defer before that. */
export const ANSWER_DEADLINE_MS = 2500;

type Answerable = ButtonInteraction | ModalSubmitInteraction;

/**
 * The one answer an interaction gets. A handler slower than the deadline (a busy database)
 * would miss Discord's 3 s and the clicker would see "This interaction failed" even though the
 * decision was made; so at the deadline the answer is deferred (the message is left as it is,
 * or an ephemeral "thinking…" for a form opened from nowhere) and the real answer edits it.
 */
class InteractionAnswer {
  private deferral: Promise<unknown> | null = null;
  private readonly timer: NodeJS.Timeout;
  /** An answer was sent (or tried: a failed answer is not retried with another). */
  attempted = false;

  constructor(
    private readonly interaction: Answerable,
    deadlineMs: number,
    private readonly log: Logger,
  ) {
    this.timer = setTimeout(() => this.defer(), deadlineMs);
  }

  /** A button, or a form opened from a message: the answer edits that message. */
  private get onMessage(): boolean {
    const i = this.interaction;
    return i.isButton() || i.isFromMessage();
  }

  private defer(): void {
    const i = this.interaction;
    if (i.replied || i.deferred) return;
    this.log.warn({ customId: i.customId }, 'discord interaction slow: deferred its answer');
    this.deferral = (
      i.isButton() || i.isFromMessage() ? i.deferUpdate() : i.deferReply({ flags: MessageFlags.Ephemeral })
    ).catch((err) => this.log.warn({ err: (err as Error).message }, 'discord deferral failed'));
  }

  /** Nothing more will be sent: stop the deferral timer. */
  close(): void {
    clearTimeout(this.timer);
  }

  private begin(): void {
    this.close();
    this.attempted = true;
  }

  async update(message: ReturnType<typeof renderDiscordMessage>): Promise<void> {
    this.begin();
    const body = {
      content: message.content,
      embeds: message.embeds,
      components: message.components,
      allowedMentions: message.allowedMentions,
    };
    const i = this.interaction;
    if (this.deferral) {
      await this.deferral;
      await i.editReply(body);
    } else if (i.isButton() || i.isFromMessage()) {
      await i.update(body);
    }
  }

  async ephemeral(content: string): Promise<void> {
    this.begin();
    const i = this.interaction;
    if (this.deferral) {
      await this.deferral;
      // After deferUpdate the message stays; the note goes beside it. After deferReply, it fills it.
      if (this.onMessage)
        await i.followUp({ content, flags: MessageFlags.Ephemeral, allowedMentions: { parse: [] } });
      else await i.editReply({ content, allowedMentions: { parse: [] } });
      return;
    }
    await i.reply({ content, flags: MessageFlags.Ephemeral, allowedMentions: { parse: [] } });
  }

  async modal(modal: ReturnType<typeof renderNarrowingModal>): Promise<void> {
    this.begin();
    const i = this.interaction;
    // A form can only be the first answer: once deferred, ask for another click.
    if (this.deferral || !i.isButton()) return this.ephemeral('That took too long; press the button again.');
    await i.showModal(modal);
  }
}

/** A discord.js client: created at once (the platform posts through it), logged in by start(). */
export function createDiscordClient(opts: { apiUrl?: string }): Client {
  return new Client({
    intents: [GatewayIntentBits.Guilds],
    rest: { ...(opts.apiUrl ? { api: opts.apiUrl.replace(/\/+$/, '') } : {}), retries: 3, timeout: 15_000 },
  });
}

/**
 * The Discord adapter: button presses and modal submissions go through the shared chat flow
 * (ChatInteractions), and
 * the answer goes back through the interaction (an update of the message for the clicker, an
 * ephemeral message for a refusal). It decides nothing itself.
 */
export function createDiscordBot(client: Client, opts: DiscordBotOptions) {
  const log = opts.logger.child({ component: 'discord' });
  // Listeners before login(): an early error must be logged, never crash the process.
  client.on(Events.ClientReady, (c) => log.info({ user: c.user.tag }, 'discord connected'));
  client.on(Events.Error, (err) => log.error({ err: err.message }, 'discord client error'));
  client.on(Events.ShardError, (err) =>
    log.warn({ err: err.message }, 'discord gateway error; reconnecting'),
  );
  client.on(Events.ShardDisconnect, (_e, shard) => log.warn({ shard }, 'discord gateway disconnected'));
  client.on(Events.ShardReconnecting, (shard) => log.info({ shard }, 'discord gateway reconnecting'));
  client.on(Events.InteractionCreate, (interaction) => {
    void answerInteraction(interaction);
  });

  const userOf = (interaction: ButtonInteraction | ModalSubmitInteraction): ChannelUser => {
    const roles = interaction.member?.roles;
    const roleIds = Array.isArray(roles) ? roles : roles ? [...roles.cache.keys()] : [];
    return {
      channel: 'discord',
      userId: interaction.user.id,
      userName: interaction.user.username,
      ...(interaction.guildId ? { guildId: interaction.guildId } : {}),
      groupIds: roleIds,
    };
  };

  /**
   * Every interaction is answered (or, for one nobody can see an answer to, left alone) and
   * nothing is left waiting: an unknown button or form, another component type, a slash command
   * or an autocomplete gets a short answer and changes nothing.
   */
  async function answerInteraction(interaction: Interaction): Promise<void> {
    if (interaction.isAutocomplete()) {
      await interaction.respond([]).catch((err) => log.warn({ err: (err as Error).message }, 'autocomplete'));
      return;
    }
    if (!interaction.isButton() && !interaction.isModalSubmit()) {
      if (interaction.isRepliable()) {
        await interaction
          .reply({ content: NOT_OURS, flags: MessageFlags.Ephemeral, allowedMentions: { parse: [] } })
          .catch((err) => log.warn({ err: (err as Error).message }, 'discord answer failed'));
      }
      return;
    }
    const answer = new InteractionAnswer(interaction, opts.answerDeadlineMs ?? ANSWER_DEADLINE_MS, log);
    try {
      await handle(interaction, answer);
    } catch (err) {
      log.error({ err }, 'discord interaction failed');
      if (!answer.attempted)
        await answer.ephemeral('Something went wrong on our side; please try again.').catch(() => undefined);
    } finally {
      answer.close();
    }
  }

  /**
   * After a decision: this message is edited through the interaction itself (Discord wants an
   * answer to the click); every other message is edited by the message-update job the decision
   * enqueued.
   */
  async function showDecision(interaction: Answerable, answer: InteractionAnswer, permission: Permission) {
    const message = renderDiscordMessage(await opts.interactions.card(permission));
    if (interaction.isButton() || (interaction.isModalSubmit() && interaction.isFromMessage())) {
      await answer.update(message);
      if (interaction.channelId)
        await opts.interactions.noteRendered(permission, 'discord', interaction.channelId);
    } else {
      await answer.ephemeral('Done.');
    }
  }

  async function handle(interaction: Answerable, answer: InteractionAnswer) {
    const parsed = parseCustomId(interaction.customId);
    // A button or form that is not ours (or no longer: a message from an older version).
    if (!parsed) return answer.ephemeral(NOT_OURS);
    const user = userOf(interaction);

    if (interaction.isButton() && (parsed.kind === 'approve' || parsed.kind === 'deny')) {
      const outcome = await opts.interactions.click(user, parsed.permissionId, parsed.kind === 'approve');
      if (outcome.kind === 'decided') return showDecision(interaction, answer, outcome.permission);
      return answer.ephemeral(outcome.text);
    }

    if (interaction.isButton() && parsed.kind === 'changes') {
      const open = await opts.interactions.openChanges(parsed.permissionId);
      if (open.kind === 'note') return answer.ephemeral(open.text);
      return answer.modal(renderNarrowingModal(open.card));
    }

    if (interaction.isModalSubmit() && parsed.kind === 'modal') {
      const fields: Record<string, string> = {};
      for (const [id, field] of interaction.fields.fields) {
        if ('value' in field && typeof field.value === 'string') fields[id] = field.value;
      }
      const outcome = await opts.interactions.submitChanges(user, parsed.permissionId, (card) =>
        parseNarrowingSubmission(card, fields),
      );
      // Pass the card, so the refusal names each field by its label ("Max amount") as the modal
      // does, not by its raw scope key.
      if (outcome.kind === 'invalid')
        return answer.ephemeral(discordFieldErrorsMessage(outcome.errors, outcome.card));
      if (outcome.kind === 'decided') return showDecision(interaction, answer, outcome.permission);
      return answer.ephemeral(outcome.text);
    }

    // One of our ids on the wrong kind of interaction (a modal id on a button, say): not ours.
    return answer.ephemeral(NOT_OURS);
  }

  return {
    async start() {
      await client.login(opts.token);
    },
    async stop() {
      await client.destroy();
    },
  };
}
