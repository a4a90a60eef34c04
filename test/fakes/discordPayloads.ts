/**
 * Builders for the JSON objects the fake Discord hands out (users, members, channels, roles, the guild
 * in GUILD_CREATE, messages), shaped like what discord.com sends for API v10. Typed against the
 * `discord-api-types` definitions that discord.js re-exports, so a missing required field is a type error.
 */
import type {
  APIApplication,
  APIChannel,
  APIGuild,
  APIGuildMember,
  APIInteractionGuildMember,
  APIRole,
  APIUser,
  GatewayGuildCreateDispatchData,
  GuildMemberFlags,
  RoleFlags,
  UserFlags,
} from 'discord.js';

const DISCORD_EPOCH = 1_420_070_400_000n;
let snowflakeIncrement = 0n;

/** A fresh snowflake: ms since the Discord epoch << 22, plus a process-wide increment. */
export function snowflake(at: number = Date.now()): string {
  snowflakeIncrement = (snowflakeIncrement + 1n) & 0xfffn;
  return (((BigInt(at) - DISCORD_EPOCH) << 22n) | (1n << 17n) | snowflakeIncrement).toString();
}

/** The time a snowflake was minted, as an ISO timestamp. */
export function snowflakeTime(id: string): string {
  return new Date(Number((BigInt(id) >> 22n) + DISCORD_EPOCH)).toISOString();
}

// Permission bits used below (https://discord.com/developers/docs/topics/permissions).
const ADMINISTRATOR = 1n << 3n;
/** Every permission bit Discord currently defines: what an Administrator effectively has. */
export const ALL_PERMISSIONS = ((1n << 51n) - 1n).toString();
/** The @everyone default for a new guild. */
export const EVERYONE_PERMISSIONS = '2248473465835073';

export interface FakeDiscordUserInput {
  id: string;
  username: string;
  global_name?: string | null;
}

export interface FakeDiscordChannelInput {
  id: string;
  name: string;
  /** ChannelType: 0 text, 2 voice, 4 category, 5 announcement, 15 forum … Default 0. */
  type?: number;
  parent_id?: string | null;
  topic?: string | null;
}

export interface FakeDiscordRoleInput {
  id: string;
  name: string;
  /** Permission bit set as a decimal string. Default '0' ('@everyone' gets the guild default). */
  permissions?: string;
  position?: number;
  color?: number;
}

export interface FakeDiscordMemberInput {
  user: FakeDiscordUserInput;
  roles: string[];
  nick?: string | null;
}

export interface FakeDiscordGuildInput {
  id: string;
  name: string;
  channels: FakeDiscordChannelInput[];
  roles: FakeDiscordRoleInput[];
  members: FakeDiscordMemberInput[];
  /** Default: the first member, else the bot. */
  ownerId?: string;
}

export function userObject(u: FakeDiscordUserInput & { bot?: boolean; discriminator?: string }): APIUser {
  const user: APIUser = {
    id: u.id,
    username: u.username,
    avatar: null,
    discriminator: u.discriminator ?? '0',
    public_flags: 0 as UserFlags,
    flags: 0 as UserFlags,
    banner: null,
    accent_color: null,
    global_name: u.global_name ?? null,
    avatar_decoration_data: null,
    collectibles: null,
    primary_guild: null,
  };
  if (u.bot) user.bot = true;
  return user;
}

export function roleObject(r: FakeDiscordRoleInput, guildId: string, index: number): APIRole {
  const isEveryone = r.id === guildId;
  return {
    id: r.id,
    name: r.name,
    permissions: r.permissions ?? (isEveryone ? EVERYONE_PERMISSIONS : '0'),
    position: r.position ?? (isEveryone ? 0 : index + 1),
    color: r.color ?? 0,
    colors: { primary_color: r.color ?? 0, secondary_color: null, tertiary_color: null },
    hoist: false,
    managed: false,
    mentionable: false,
    icon: null,
    unicode_emoji: null,
    flags: 0 as RoleFlags,
  };
}

/** The guild's roles, with the implicit @everyone role (id = guild id) added when missing. */
export function guildRoles(guild: FakeDiscordGuildInput): APIRole[] {
  const roles = guild.roles.map((r, i) => roleObject(r, guild.id, i));
  if (!roles.some((r) => r.id === guild.id)) {
    roles.unshift(roleObject({ id: guild.id, name: '@everyone' }, guild.id, 0));
  }
  return roles;
}

/** Effective guild-level permissions of a member holding `roleIds` (plus @everyone), as Discord computes them. */
export function memberPermissions(guild: FakeDiscordGuildInput, roleIds: string[], userId?: string): string {
  const roles = guildRoles(guild);
  if (userId !== undefined && userId === guild.ownerId) return ALL_PERMISSIONS;
  let bits = 0n;
  for (const role of roles) {
    if (role.id === guild.id || roleIds.includes(role.id)) bits |= BigInt(role.permissions);
  }
  return bits & ADMINISTRATOR ? ALL_PERMISSIONS : bits.toString();
}

export function guildMemberObject(
  member: FakeDiscordMemberInput,
  joinedAt: string,
  bot = false,
): APIGuildMember {
  return {
    avatar: null,
    banner: null,
    communication_disabled_until: null,
    flags: 0 as GuildMemberFlags,
    joined_at: joinedAt,
    nick: member.nick ?? null,
    pending: false,
    premium_since: null,
    roles: [...member.roles],
    collectibles: null,
    user: userObject({ ...member.user, bot }),
    mute: false,
    deaf: false,
  };
}

export function interactionMemberObject(
  member: FakeDiscordMemberInput,
  joinedAt: string,
  permissions: string,
): APIInteractionGuildMember {
  return { ...guildMemberObject(member, joinedAt), permissions, user: userObject(member.user) };
}

export function channelObject(
  c: FakeDiscordChannelInput,
  guildId: string | undefined,
  position: number,
): APIChannel {
  const type = c.type ?? 0;
  const channel: Record<string, unknown> = {
    id: c.id,
    type,
    last_message_id: null,
    flags: 0,
    name: c.name,
    parent_id: c.parent_id ?? null,
    position,
    permission_overwrites: [],
    nsfw: false,
  };
  if (guildId !== undefined) channel.guild_id = guildId;
  if (type === 0 || type === 5) {
    channel.topic = c.topic ?? null;
    channel.rate_limit_per_user = 0;
  }
  if (type === 2 || type === 13) {
    channel.bitrate = 64000;
    channel.user_limit = 0;
    channel.rtc_region = null;
  }
  return channel as unknown as APIChannel;
}

export function dmChannelObject(id: string, recipient: APIUser): APIChannel {
  return { id, type: 1, last_message_id: null, flags: 0, recipients: [recipient] } as unknown as APIChannel;
}

export function guildObject(guild: FakeDiscordGuildInput, applicationOwnerId: string): APIGuild {
  return {
    id: guild.id,
    name: guild.name,
    icon: null,
    splash: null,
    discovery_splash: null,
    owner_id: guild.ownerId ?? guild.members[0]?.user.id ?? applicationOwnerId,
    afk_channel_id: null,
    afk_timeout: 300,
    verification_level: 1,
    default_message_notifications: 1,
    explicit_content_filter: 2,
    roles: guildRoles(guild),
    emojis: [],
    features: [],
    mfa_level: 0,
    application_id: null,
    system_channel_id: null,
    system_channel_flags: 0,
    rules_channel_id: null,
    max_presences: null,
    max_members: 25000000,
    vanity_url_code: null,
    description: null,
    banner: null,
    premium_tier: 0,
    premium_subscription_count: 0,
    preferred_locale: 'en-US' as APIGuild['preferred_locale'],
    public_updates_channel_id: null,
    max_video_channel_users: 25,
    max_stage_video_channel_users: 50,
    nsfw_level: 0,
    stickers: [],
    premium_progress_bar_enabled: false,
    hub_type: null,
    safety_alerts_channel_id: null,
    incidents_data: null,
    region: 'deprecated',
    home_header: null,
    latest_onboarding_question_id: null,
    inventory_settings: null,
    embed_enabled: false,
    embed_channel_id: null,
    widget_enabled: false,
    widget_channel_id: null,
  } as unknown as APIGuild;
}

export function guildCreateData(
  guild: FakeDiscordGuildInput,
  botMember: APIGuildMember,
  members: APIGuildMember[],
  joinedAt: string,
): GatewayGuildCreateDispatchData {
  const base = guildObject(guild, botMember.user.id);
  return {
    ...base,
    joined_at: joinedAt,
    large: false,
    unavailable: false,
    member_count: guild.members.length + 1,
    voice_states: [],
    members: [botMember, ...members],
    // GUILD_CREATE channels carry no guild_id (the client fills it in).
    channels: guild.channels.map((c, i) => {
      const { guild_id: _omit, ...rest } = channelObject(c, guild.id, i) as APIChannel & {
        guild_id?: string;
      };
      return rest;
    }) as GatewayGuildCreateDispatchData['channels'],
    threads: [],
    presences: [],
    stage_instances: [],
    guild_scheduled_events: [],
    soundboard_sounds: [],
  };
}

export function applicationObject(applicationId: string, bot: APIUser, name: string): APIApplication {
  return {
    id: applicationId,
    name,
    icon: null,
    description: '',
    summary: '',
    type: null,
    bot,
    bot_public: false,
    bot_require_code_grant: false,
    verify_key: 'f'.repeat(64),
    flags: 0,
    hook: true,
    is_monetized: false,
    team: null,
    owner: userObject({ id: snowflake(), username: 'fake-owner' }),
    redirect_uris: [],
    interactions_endpoint_url: null,
    role_connections_verification_url: null,
    tags: [],
    approximate_guild_count: 1,
    approximate_user_install_count: 0,
    integration_types_config: { '0': {} },
  } as unknown as APIApplication;
}
