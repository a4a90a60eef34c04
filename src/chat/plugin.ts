import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import type { IdentityShape } from '../core/approvers.js';
import type { Logger } from '../logger.js';
import type { Role } from '../main.js';
import type { ApprovalChannel } from '../services/approvals/channel.js';
import type { ChatInteractions } from './interactions.js';
import type { WebChannelDeps } from './web/channel.js';

/**
 * An approval channel as a plug-in (DESIGN §13): one folder under src/chat and one line in
 * src/chat/channels.ts. The plug-in owns everything specific to its channel — configuration,
 * recipient syntax, rendering, message refs, inbound interactions and their lifecycle — and
 * reaches the approval core only through ApprovalChannel (outbound) and ChatInteractions /
 * ApprovalService.decideAs (inbound).
 */
export interface ChannelPlugin {
  /** Registered name: entries (`slack:C1`), identities (`slack:U1`) and stored messages use it. */
  readonly name: string;
  /**
   * How its user ids are written, for checking APPROVER_LINKS and approver identities. Null when
   * operators never write them: the web channel's `web:<approver id>` is implicit in each account.
   */
  readonly identity: IdentityShape | null;
  /** What `doctor`, `init` and the start log tell an operator about its setup. */
  readonly setup: {
    /** Its name for people (`Slack`). */
    label: string;
    /** How to turn it on with approvers: `SLACK_BOT_TOKEN with SLACK_APPROVERS`. */
    hint: string;
    /** Null when it is not configured; else whether it names default approvers. */
    state(config: Config): { defaultApprovers: boolean } | null;
    /**
     * False for a channel that asks nobody by itself (the web page: its approvers come from the
     * other channels' lists): the setup guidance then does not offer it as a way to be asked.
     */
    asks?: boolean;
  };
  /**
   * The channel, when its settings are present (null otherwise). Loads its SDK lazily: a
   * process that does not use a channel does not pay for loading it.
   */
  create(context: ChannelContext): Promise<RunningChannel | null>;
}

export interface ChannelContext {
  config: Config;
  /** The roles this process runs: a channel receives its interactions in one of them. */
  roles: readonly Role[];
  logger: Logger;
  interactions: ChatInteractions;
  /** What the web channel's pages need (src/chat/web/channel.ts); absent where no pages are served. */
  web?: WebChannelDeps;
}

export interface RunningChannel {
  adapter: ApprovalChannel;
  /** How its interactions arrive in this process, for the start log (`http`, `socket`, `gateway`, `off`). */
  inbound: string;
  /** Routes on the API server (HTTP interactions), when it receives them that way. */
  mount?(server: FastifyInstance): void;
  /** Connects its own inbound connection, if any; a failure to connect must not stop the service. */
  start?(): Promise<void>;
  stop?(): Promise<void>;
}
