import { discordChannel } from './discord/channel.js';
import type { ChannelPlugin } from './plugin.js';
import { slackChannel } from './slack/channel.js';
import { webChannel } from './web/channel.js';

/**
 * Every approval channel this build has (DESIGN §13): adding one is a folder under src/chat and
 * a line here. Listed channels are known by name even where they are not configured, so their
 * entries (`discord:…`) never reach another channel as bare ids. Light to import: each channel
 * loads its SDK only when it is configured.
 */
export const CHANNELS: readonly ChannelPlugin[] = [slackChannel, discordChannel, webChannel];

/** The user-id syntax of each channel, for APPROVER_LINKS. */
export const channelIdentityShapes = (channels: readonly ChannelPlugin[] = CHANNELS) =>
  Object.fromEntries(channels.flatMap((c) => (c.identity ? [[c.name, c.identity]] : [])));
