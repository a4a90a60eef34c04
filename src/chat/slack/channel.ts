import type { ChannelPlugin } from '../plugin.js';
import type { SlackBot } from './bot.js';

/**
 * Slack (DESIGN §7): on when SLACK_BOT_TOKEN is set. Messages are posted through the Web API
 * from any role; interactions arrive over Socket Mode in the bot role (SLACK_APP_TOKEN), or over
 * HTTP (/slack/events, signed) on the API server.
 */
export const slackChannel: ChannelPlugin = {
  name: 'slack',
  identity: { pattern: /^[UW][A-Z0-9]{2,}$/, hint: 'slack:U…/W…' },
  setup: {
    label: 'Slack',
    hint: 'SLACK_BOT_TOKEN with SLACK_APPROVERS',
    state: (config) =>
      config.SLACK_BOT_TOKEN ? { defaultApprovers: (config.SLACK_APPROVERS?.length ?? 0) > 0 } : null,
  },

  async create({ config, roles, logger, interactions }) {
    if (!config.SLACK_BOT_TOKEN) return null;
    const [{ WebClient }, { SlackPlatform }] = await Promise.all([
      import('@slack/web-api'),
      import('./platform.js'),
    ]);
    const apiUrl = config.SLACK_API_URL;
    const client = new WebClient(config.SLACK_BOT_TOKEN, {
      ...(apiUrl ? { slackApiUrl: apiUrl.endsWith('/') ? apiUrl : `${apiUrl}/` } : {}),
      retryConfig: { retries: 2, factor: 2, minTimeout: 200, maxTimeout: 2000 },
    });
    const platform = new SlackPlatform(client, {
      channel: config.SLACK_APPROVAL_CHANNEL ?? null,
      approvers: config.SLACK_APPROVERS ?? [],
    });
    const socketMode = Boolean(config.SLACK_APP_TOKEN);
    let bot: SlackBot | null = null;
    // HTTP mode belongs to the API process; Socket Mode to the bot process.
    if ((socketMode && roles.includes('bot')) || (!socketMode && roles.includes('api'))) {
      const { createSlackBot } = await import('./bot.js');
      bot = createSlackBot({
        botToken: config.SLACK_BOT_TOKEN,
        signingSecret: config.SLACK_SIGNING_SECRET,
        appToken: config.SLACK_APP_TOKEN,
        apiUrl,
        interactions,
        platform,
        logger,
      });
    }
    return {
      adapter: platform,
      inbound: bot ? (socketMode ? 'socket' : 'http') : 'off',
      mount: (server) => bot?.mount(server),
      start: async () => bot?.start(),
      stop: async () => bot?.stop(),
    };
  },
};
