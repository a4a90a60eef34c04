import { App, type BlockAction, type ButtonAction, LogLevel, type ViewSubmitAction } from '@slack/bolt';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../logger.js';
import type { ChannelUser } from '../../services/approvals/channel.js';
import type { ChatInteractions } from '../interactions.js';
import { AckingSocketModeReceiver } from './ack.js';
import {
  NARROW_CALLBACK_ID,
  parseNarrowingMetadata,
  parseNarrowingSubmission,
  REASON_BLOCK_ID,
  renderNarrowingModal,
  slackFieldErrors,
} from './modal.js';
import type { SlackPlatform } from './platform.js';
import { FastifySlackReceiver } from './receiver.js';
import { slackActionIds } from './render.js';

/** The action_ids of the buttons renderSlackMessage draws. */
export const ACTIONS = slackActionIds();

export interface SlackBotOptions {
  botToken: string;
  signingSecret?: string;
  appToken?: string;
  apiUrl?: string;
  interactions: ChatInteractions;
  platform: SlackPlatform;
  logger: Logger;
}

export interface SlackBot {
  /** HTTP mode: mount POST /slack/events on the API server. */
  mount(server: FastifyInstance): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The Slack adapter: turns button presses and modal submissions into the shared chat flow
 * (ChatInteractions) and answers the clicker. It decides nothing itself. Socket Mode when an app token is given (no
 * public URL needed), otherwise HTTP on the API port with signature verification.
 */
export function createSlackBot(opts: SlackBotOptions): SlackBot {
  const clientOptions = {
    ...(opts.apiUrl ? { slackApiUrl: opts.apiUrl.endsWith('/') ? opts.apiUrl : `${opts.apiUrl}/` } : {}),
    retryConfig: { retries: 2, factor: 2, minTimeout: 200, maxTimeout: 2000 },
  };
  const httpReceiver = opts.appToken ? null : new FastifySlackReceiver(opts.signingSecret ?? '', opts.logger);
  const receiver = opts.appToken
    ? new AckingSocketModeReceiver(
        { appToken: opts.appToken, installerOptions: { clientOptions } },
        opts.logger,
      )
    : (httpReceiver as FastifySlackReceiver);
  const app = new App({
    token: opts.botToken,
    receiver,
    clientOptions,
    logLevel: LogLevel.WARN,
    logger: boltLogger(opts.logger),
  });

  const userOf = (body: {
    user: { id: string; name?: string; username?: string };
    team?: { id: string } | null;
  }): ChannelUser => ({
    channel: 'slack',
    userId: body.user.id,
    userName: body.user.username ?? body.user.name ?? body.user.id,
    ...(body.team?.id ? { teamId: body.team.id } : {}),
  });

  const decideButton = (approved: boolean) =>
    (async ({ ack, body, action }) => {
      await ack();
      const user = userOf(body);
      const answer = await opts.interactions.click(user, action.value ?? '', approved);
      // A decision's messages are edited by the message-update job the decision enqueued (one
      // path for every channel); only a note (a refusal, a repeat) is answered here.
      if (answer.kind === 'note' && body.channel?.id) {
        await opts.platform.ephemeral(body.channel.id, user.userId, answer.text).catch(() => undefined);
      }
    }) satisfies Parameters<typeof app.action<BlockAction<ButtonAction>>>[1];

  app.action<BlockAction<ButtonAction>>(ACTIONS.approve, decideButton(true));
  app.action<BlockAction<ButtonAction>>(ACTIONS.deny, decideButton(false));

  app.action<BlockAction<ButtonAction>>(ACTIONS.approveWithChanges, async ({ ack, body, action, client }) => {
    await ack();
    const form = await opts.interactions.openChanges(action.value ?? '');
    if (form.kind === 'note') {
      if (body.channel?.id) {
        await opts.platform.ephemeral(body.channel.id, body.user.id, form.text).catch(() => undefined);
      }
      return;
    }
    await client.views.open({ trigger_id: body.trigger_id, view: renderNarrowingModal(form.card) });
  });

  app.view<ViewSubmitAction>(NARROW_CALLBACK_ID, async ({ ack, body, view }) => {
    const refuse = (message: string) =>
      ack({ response_action: 'errors', errors: { [REASON_BLOCK_ID]: message } });
    const permissionId = parseNarrowingMetadata(view.private_metadata);
    if (permissionId === null) return refuse('This form is damaged; open it again.');
    const answer = await opts.interactions.submitChanges(userOf(body), permissionId, (card) =>
      parseNarrowingSubmission(card, view.state.values),
    );
    if (answer.kind === 'invalid') {
      await ack({ response_action: 'errors', errors: slackFieldErrors(answer.errors, answer.card) });
      return;
    }
    if (answer.kind === 'note') return refuse(answer.text);
    await ack();
  });

  app.error(async (err) => {
    opts.logger.error({ err }, 'slack app error');
  });

  return {
    mount(server) {
      httpReceiver?.register(server);
    },
    async start() {
      await app.start();
    },
    async stop() {
      await app.stop().catch(() => undefined);
    },
  };
}

/** Bolt logs through our pino logger (and so through its redaction). */
function boltLogger(logger: Logger) {
  const child = logger.child({ component: 'slack' });
  let level = LogLevel.WARN;
  return {
    debug: (...msg: unknown[]) => child.debug(msg.map(String).join(' ')),
    info: (...msg: unknown[]) => child.info(msg.map(String).join(' ')),
    warn: (...msg: unknown[]) => child.warn(msg.map(String).join(' ')),
    error: (...msg: unknown[]) => child.error(msg.map(String).join(' ')),
    setLevel: (l: LogLevel) => {
      level = l;
    },
    getLevel: () => level,
    setName: () => undefined,
  };
}
