#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { CliError, OperatorClient, resolveClientOptions } from './client.js';
import { registerAgentCommands } from './commands/agents.js';
import { registerApproverCommands } from './commands/approvers.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerCompletionCommand } from './commands/completion.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerInitCommand } from './commands/init.js';
import { registerMetricsCommands } from './commands/metrics.js';
import { registerPermissionCommands } from './commands/permissions.js';
import { registerPolicyCommands } from './commands/policies.js';
import { registerWebhookCommands } from './commands/webhooks.js';
import { loadDotEnv, type TargetFlags } from './target.js';

const print = (text: string) => process.stdout.write(`${text}\n`);

/**
 * The service (Slack, Discord, BullMQ, Postgres…) is loaded only by the commands that run it, so
 * the operator commands — HTTP clients of the API — start in a fraction of the time.
 */
const loadMain = () => import('../main.js');

export function buildProgram(): Command {
  const program = new Command('agent-otp')
    .description('Agent OTP: one-time, scoped permissions for AI agents, approved by policy or by a human')
    .version('0.1.0')
    .showHelpAfterError()
    .configureHelp({ showGlobalOptions: true })
    // Global: accepted before or after any command's name.
    .option(
      '--url <url>',
      'the server (default: AGENT_OTP_URL, else PORT/HOST/TLS_CERT_FILE as the server reads them)',
    )
    .option(
      '--token <key>',
      "the operator key (default: AGENT_OTP_ADMIN_TOKEN, ADMIN_TOKEN, or the data dir's admin-token)",
    );

  program
    .command('start')
    .description('Run the service: API, workers and chat bots in one process')
    .action(async () => {
      const { ALL_ROLES, runUntilSignal } = await loadMain();
      await runUntilSignal(ALL_ROLES);
    });
  program
    .command('api')
    .description('Run only the HTTP API (and Slack in HTTP mode)')
    .action(async () => {
      const { runUntilSignal } = await loadMain();
      await runUntilSignal(['api']);
    });
  program
    .command('worker')
    .description('Run only the queue workers and the reconciler')
    .action(async () => {
      const { runUntilSignal } = await loadMain();
      await runUntilSignal(['worker']);
    });
  program
    .command('bot')
    .description('Run only the chat bots (Slack Socket Mode)')
    .action(async () => {
      const { runUntilSignal } = await loadMain();
      await runUntilSignal(['bot']);
    });

  program
    .command('migrate')
    .description('Apply pending database migrations and exit')
    .action(async () => {
      const { configOrExit, openStorage } = await loadMain();
      const { createLogger } = await import('../logger.js');
      const config = configOrExit();
      const logger = createLogger(config.LOG_LEVEL, { format: config.LOG_FORMAT });
      const db = await openStorage(config, logger);
      const { nameDuplicateLines } = await import('../services/agentNames.js');
      const duplicates = await nameDuplicateLines(db);
      await db.close();
      print('Database is up to date.');
      for (const line of duplicates) print(line);
    });

  program
    .command('mcp')
    .description('Run an MCP server on stdio for AI agents (needs AGENT_OTP_API_KEY; AGENT_OTP_URL)')
    .action(async () => {
      const { runMcpServer } = await import('../mcp/server.js');
      const { url } = program.opts<TargetFlags>();
      await runMcpServer(url === undefined ? process.env : { ...process.env, AGENT_OTP_URL: url });
    });

  let client: OperatorClient | undefined;
  const getClient = () => {
    client ??= new OperatorClient(resolveClientOptions(process.env, program.opts<TargetFlags>()));
    return client;
  };
  registerAgentCommands(program, getClient, print);
  registerPolicyCommands(program, getClient, print);
  registerApproverCommands(program, getClient, print);
  registerPermissionCommands(program, getClient, print);
  registerAuditCommands(program, getClient, print);
  registerDoctorCommand(program, print);
  registerInitCommand(program, print);
  registerMetricsCommands(program, getClient, print);
  registerWebhookCommands(program, getClient, print);
  registerCompletionCommand(program, print);
  return program;
}

loadDotEnv();
buildProgram()
  .exitOverride()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    const message = err instanceof CliError || err instanceof Error ? err.message : String(err);
    process.stderr.write(`agent-otp: ${message}\n`);
    process.exit(1);
  });
