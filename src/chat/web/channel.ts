import type { ApprovalCard } from '../../core/approval/card.js';
import type {
  ApprovalChannel,
  ApproverEntry,
  ChannelUser,
  TargetEntry,
} from '../../services/approvals/channel.js';
import { type ApprovalService, WEB_CHANNEL } from '../../services/approvals/service.js';
import type { WebApprovals } from '../../services/approvals/web.js';
import type { WebSessions } from '../../services/webSessions.js';
import type { ChannelPlugin } from '../plugin.js';
import { registerApprovalPages } from './pages.js';

/** What the pages need from the service: built in main.ts, where the other services are. */
export interface WebChannelDeps {
  approvals: ApprovalService;
  requests: WebApprovals;
  sessions: WebSessions;
}

/** The approval page's and the inbox's scripts (src/chat/web/assets, copied into dist by src/build.mjs). */
export const WEB_PAGE_ASSETS = ['approve.js', 'inbox.js'] as const;

/**
 * The web channel's ApprovalChannel: it posts nothing. A pending request is already on the
 * page at its approvalUrl and in every allowed approver's inbox, so there is no message to post,
 * edit or thread a note under; its approvers are named `web:<approver id>` or `web:<name>`.
 */
export const webAdapter: ApprovalChannel = {
  name: WEB_CHANNEL,
  defaults: { channel: null, approvers: [] },
  postsMessages: false,
  // A bare `U123` was written for Slack: on the web only `web:` entries name approvers.
  bareApprovers: false,
  approverEntry(entry: string): ApproverEntry {
    return { kind: 'user', id: entry };
  },
  // Never a channel: postTargets finds nothing to post to here, and escalateTo mentions nobody.
  targetEntry(entry: string): TargetEntry {
    return { kind: 'user', id: entry };
  },
  async post(): Promise<{ messageRef: string; permalink: string | null }> {
    throw new Error('the web channel posts no messages');
  },
  async update(_channel: string, _messageRef: string, _card: ApprovalCard): Promise<void> {},
  async notice(): Promise<void> {},
  /** Web approvers have no groups of their own: groups are the chat channels' (mayDecideOnWeb). */
  async memberOfAny(_user: ChannelUser, _groupIds: string[]): Promise<boolean> {
    return false;
  },
};

/**
 * The web channel (issue 15): the approval page at /approve/<id> and the inbox at /inbox, on the
 * API server, for approver accounts signed in with a passkey. Always on: it needs no settings,
 * and an approver account with no sign-in yet simply sees the sign-in link.
 */
export const webChannel: ChannelPlugin = {
  name: WEB_CHANNEL,
  // `web:<approver id>` belongs to its account alone (PersonDirectory adds it): not linkable.
  identity: null,
  setup: {
    label: 'Web',
    hint: 'approver accounts (agent-otp approver:invite) linked to chat approvers',
    state: () => null,
    asks: false,
  },
  async create({ roles, web }) {
    const serves = roles.includes('api') && web !== undefined;
    return {
      adapter: webAdapter,
      inbound: serves ? 'http' : 'off',
      // The assets (ours among them, WEB_PAGE_ASSETS) are served once for every web page, in main.ts.
      mount: (server) => {
        if (web) registerApprovalPages(server, web);
      },
    };
  },
};

/**
 * Sessions where sign-in is not wired in (yet): everyone is signed out, so the pages show the
 * status and the sign-in link only, and every decision POST is refused and audited.
 */
export const SIGNED_OUT: WebSessions = {
  current: async () => null,
  forPost: async () => ({ refused: 'signed_out' }),
};
