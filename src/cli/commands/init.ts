import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { approvalGuidance } from '../../chat/guidance.js';
import { ConfigError } from '../../config.js';
import { CliError } from '../client.js';
import { buildInitEnv, type InitAnswers, renderEnvFile } from '../init/envFile.js';

/** The flags: the answers (the port still as typed) and how init runs. */
type InitOptions = Omit<InitAnswers, 'port'> & { port: string; force?: boolean; interactive?: boolean };

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new CliError(`--port: ${value} is not a port (1–65535)`);
  return port;
}

/** Asks on the terminal for what the flags did not give; an empty answer keeps the default. */
async function ask(given: InitAnswers): Promise<InitAnswers> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  // Lines are read in turn rather than through rl.question(), which drops lines typed (or
  // pasted) ahead of their prompt. End of input answers every remaining question with its default.
  const lines = rl[Symbol.asyncIterator]();
  const q = async (question: string, current?: string) => {
    rl.setPrompt(current ? `${question} [${current}]: ` : `${question}: `);
    rl.prompt();
    const next = await lines.next();
    return (next.done ? '' : String(next.value)).trim() || current;
  };
  try {
    const out: InitAnswers = { ...given };
    out.port = parsePort((await q('Port to listen on', String(given.port))) ?? String(given.port));
    process.stdout.write('Approvals in Slack (leave empty to skip):\n');
    out.slackBotToken = await q('  Slack bot token (xoxb-…)', given.slackBotToken);
    if (out.slackBotToken) {
      out.slackAppToken = await q(
        '  Slack app token for Socket Mode (xapp-…, empty for HTTP mode)',
        given.slackAppToken,
      );
      if (!out.slackAppToken)
        out.slackSigningSecret = await q('  Slack signing secret', given.slackSigningSecret);
      out.slackChannel = await q('  Slack approval channel id (C…)', given.slackChannel);
      out.slackApprovers = await q('  Slack approvers (user ids U…, comma-separated)', given.slackApprovers);
    }
    process.stdout.write('Approvals in Discord (leave empty to skip):\n');
    out.discordToken = await q('  Discord bot token', given.discordToken);
    if (out.discordToken) {
      out.discordChannel = await q('  Discord approval channel id', given.discordChannel);
      out.discordApprovers = await q(
        '  Discord approvers (user ids, comma-separated)',
        given.discordApprovers,
      );
    }
    return out;
  } finally {
    rl.close();
  }
}

/**
 * `agent-otp init`: a working `.env` in one command. Generates the operator key and the secrets
 * key, takes the port and the optional chat settings from flags, or asks for them on a terminal.
 */
export function registerInitCommand(program: Command, print: (text: string) => void): void {
  program
    .command('init')
    .description('Write a .env for a first setup: generated ADMIN_TOKEN and secrets key, port, Slack/Discord')
    .option('--port <port>', 'port the API listens on', '3000')
    .option('--force', 'overwrite an existing .env')
    .option('--no-interactive', 'do not ask, even on a terminal (use the flags only)')
    .option('--slack-bot-token <token>', 'Slack bot token (xoxb-…)')
    .option('--slack-signing-secret <secret>', 'Slack signing secret (HTTP mode)')
    .option('--slack-app-token <token>', 'Slack app-level token (xapp-…, Socket Mode)')
    .option('--slack-channel <id>', 'Slack channel for approval requests')
    .option('--slack-approvers <ids>', 'Slack user/group ids who may decide, comma-separated')
    .option('--discord-token <token>', 'Discord bot token')
    .option('--discord-channel <id>', 'Discord channel id for approval requests')
    .option('--discord-approvers <ids>', 'Discord user ids who may decide, comma-separated')
    .action(async (opts: InitOptions) => {
      const file = path.resolve('.env');
      if (existsSync(file) && !opts.force) {
        throw new CliError(
          `${file} exists; pass --force to replace it (its ADMIN_TOKEN and secrets key are lost)`,
        );
      }
      let answers: InitAnswers = {
        port: parsePort(opts.port),
        slackBotToken: opts.slackBotToken,
        slackSigningSecret: opts.slackSigningSecret,
        slackAppToken: opts.slackAppToken,
        slackChannel: opts.slackChannel,
        slackApprovers: opts.slackApprovers,
        discordToken: opts.discordToken,
        discordChannel: opts.discordChannel,
        discordApprovers: opts.discordApprovers,
      };
      if (opts.interactive !== false && process.stdin.isTTY && process.stdout.isTTY)
        answers = await ask(answers);
      let env: ReturnType<typeof buildInitEnv>;
      try {
        env = buildInitEnv(answers);
      } catch (err) {
        if (err instanceof ConfigError)
          throw new CliError(err.message.replace(/^Invalid configuration:\n\s*/, ''));
        throw err;
      }
      writeFileSync(file, renderEnvFile(env), { mode: 0o600, flag: opts.force ? 'w' : 'wx' });
      // `mode` applies only to a new file: a replaced one may have been readable by others.
      chmodSync(file, 0o600);
      // Names only: the values are secrets.
      print(`Wrote ${file} (mode 0600): ${env.variables.map(([name]) => name).join(', ')}.`);
      print('Start the server here with `npx agent-otp start`, then check it with `npx agent-otp doctor`.');
      const guidance = approvalGuidance(env.config);
      if (guidance) print(`\nNote: ${guidance}`);
    });
}
