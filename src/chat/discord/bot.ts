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
import type { ApprovalService, ChatUser } from '../../services/approvals.js';
import { modificationsFromForm } from '../narrowing.js';
import { discordFieldErrorsMessage, parseNarrowingSubmission, renderNarrowingModal } from './modal.js';
import { parseCustomId, renderDiscordMessage } from './render.js';

export interface DiscordBotOptions {
  token: string;
  apiUrl?: string;
  approvals: ApprovalService;
  logger: Logger;
}

/** A discord.js client: created at once (the platform posts through it), logged in by start(). */
export function createDiscordClient(opts: { apiUrl?: string }): Client {
  return new Client({
    intents: [GatewayIntentBits.Guilds],
    rest: { ...(opts.apiUrl ? { api: opts.apiUrl.replace(/\/+$/, '') } : {}), retries: 3, timeout: 15_000 },
  });
}

/**
 * The Discord adapter: button presses and modal submissions become ApprovalService calls, and
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
    handle(interaction).catch((err) => log.error({ err }, 'discord interaction failed'));
  });

  const userOf = (interaction: ButtonInteraction | ModalSubmitInteraction): ChatUser => {
    const roles = interaction.member?.roles;
    const roleIds = Array.isArray(roles) ? roles : roles ? [...roles.cache.keys()] : [];
    return {
      platform: 'discord',
      userId: interaction.user.id,
      userName: interaction.user.username,
      ...(interaction.guildId ? { guildId: interaction.guildId } : {}),
      roleIds,
    };
  };

  const ephemeral = (interaction: ButtonInteraction | ModalSubmitInteraction, content: string) =>
    interaction.reply({ content, flags: MessageFlags.Ephemeral, allowedMentions: { parse: [] } });

  /**
   * After a decision: this message is edited through the interaction itself (Discord wants an
   * answer to the click); every other message is edited by the message-update job the decision
   * enqueued.
   */
  async function showDecision(
    interaction: ButtonInteraction | ModalSubmitInteraction,
    permission: Permission,
  ) {
    const message = renderDiscordMessage(await opts.approvals.card(permission));
    if (interaction.isButton() || (interaction.isModalSubmit() && interaction.isFromMessage())) {
      await interaction.update({
        content: message.content,
        embeds: message.embeds,
        components: message.components,
        allowedMentions: message.allowedMentions,
      });
      if (interaction.channelId)
        await opts.approvals.noteRendered(permission, 'discord', interaction.channelId);
    } else {
      await ephemeral(interaction, 'Done.');
    }
  }

  async function handle(interaction: Interaction) {
    if (!interaction.isButton() && !interaction.isModalSubmit()) return;
    const parsed = parseCustomId(interaction.customId);
    if (!parsed) return;
    const user = userOf(interaction);

    if (interaction.isButton() && (parsed.kind === 'approve' || parsed.kind === 'deny')) {
      const outcome = await opts.approvals.decideFromChat({
        permissionId: parsed.permissionId,
        user,
        approved: parsed.kind === 'approve',
      });
      if (outcome.kind === 'decided') return showDecision(interaction, outcome.permission);
      return ephemeral(interaction, outcome.message);
    }

    if (interaction.isButton() && parsed.kind === 'changes') {
      const open = await opts.approvals.changesForm(parsed.permissionId);
      if (open.kind === 'closed') return ephemeral(interaction, open.message);
      return interaction.showModal(renderNarrowingModal(open.card));
    }

    if (interaction.isModalSubmit() && parsed.kind === 'modal') {
      const open = await opts.approvals.changesForm(parsed.permissionId);
      if (open.kind === 'closed') return ephemeral(interaction, open.message);
      const { card } = open;
      const fields: Record<string, string> = {};
      for (const [id, field] of interaction.fields.fields) {
        if ('value' in field && typeof field.value === 'string') fields[id] = field.value;
      }
      const form = modificationsFromForm(card.scope, parseNarrowingSubmission(card, fields));
      // Pass the card, so the refusal names each field by its label ("Max amount") as the modal
      // does, not by its raw scope key.
      if (!form.ok) return ephemeral(interaction, discordFieldErrorsMessage(form.errors, card));
      const outcome = await opts.approvals.decideFromChat({
        permissionId: card.permissionId,
        user,
        approved: true,
        reason: form.reason ?? undefined,
        scopeModifications: form.scopeModifications,
      });
      if (outcome.kind === 'decided') return showDecision(interaction, outcome.permission);
      return ephemeral(interaction, outcome.message);
    }
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
