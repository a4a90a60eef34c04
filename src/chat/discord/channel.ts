import type { ChannelPlugin } from '../plugin.js';

/**
 * Discord: on when DISCORD_BOT_TOKEN is set. Messages are posted over REST from any role (no
 * gateway session needed); interactions arrive over the gateway in the bot role.
 */
export const discordChannel: ChannelPlugin = {
  name: 'discord',
  identity: { pattern: /^\d{15,21}$/, hint: 'discord:<user id>' },
  setup: {
    label: 'Discord',
    hint: 'DISCORD_BOT_TOKEN with DISCORD_APPROVERS (or DISCORD_APPROVER_ROLES)',
    state: (config) =>
      config.DISCORD_BOT_TOKEN
        ? {
            defaultApprovers:
              (config.DISCORD_APPROVERS?.length ?? 0) + (config.DISCORD_APPROVER_ROLES?.length ?? 0) > 0,
          }
        : null,
  },

  async create({ config, roles, logger, interactions }) {
    if (!config.DISCORD_BOT_TOKEN) return null;
    const token = config.DISCORD_BOT_TOKEN;
    const [{ createDiscordBot, createDiscordClient }, { DiscordPlatform }] = await Promise.all([
      import('./bot.js'),
      import('./platform.js'),
    ]);
    const client = createDiscordClient({ apiUrl: config.DISCORD_API_URL });
    // REST works without a gateway session, so a worker can post and edit messages too.
    client.rest.setToken(token);
    const platform = new DiscordPlatform(client, {
      channel: config.DISCORD_APPROVAL_CHANNEL_ID ?? null,
      approvers: [
        ...(config.DISCORD_APPROVERS ?? []),
        ...(config.DISCORD_APPROVER_ROLES ?? []).map((role) => `role:${role}`),
      ],
    });
    const bot = roles.includes('bot') ? createDiscordBot(client, { token, interactions, logger }) : null;
    return {
      adapter: platform,
      inbound: bot ? 'gateway' : 'off',
      // A Discord outage must not stop the service: log it; discord.js keeps reconnecting.
      start: async () =>
        bot?.start().catch((err) => logger.error({ err: (err as Error).message }, 'discord login failed')),
      stop: async () => bot?.stop(),
    };
  },
};
