#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { Command, CommanderError } from 'commander';
import { CliError, OperatorClient, resolveClientOptions } from './client.js';
import { registerAgentCommands } from './commands/agents.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerMetricsCommands } from './commands/metrics.js';
import { registerPermissionCommands } from './commands/permissions.js';
import { registerPolicyCommands } from './commands/policies.js';

const print = (text: string) => process.stdout.write(`${text}\n`);

/** A `.env` in the working directory fills in variables the environment does not set. */
function loadDotEnv(file = '.env'): void {
  if (!existsSync(file)) return;
  for (const [name, value] of Object.entries(parseEnv(readFileSync(file, 'utf8')))) {
    if (process.env[name] === undefined) process.env[name] = value;
  }
}

/**
 * The service (Slack, Discord, BullMQ, Postgres…) is loaded only by the commands that run it, so
 * the operator commands — HTTP clients of the API — start in a fraction of the time.
 */
const loadMain = () => import('../main.js');

export function buildProgram(): Command {
  const program = new Command('agent-otp')
    .description('Agent OTP: one-time, scoped permissions for AI agents, approved by policy or by a human')
    .version('0.1.0')
    .showHelpAfterError();

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
      const logger = createLogger(config.LOG_LEVEL);
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
      await runMcpServer();
    });

  let client: OperatorClient | undefined;
  const getClient = () => {
    client ??= new OperatorClient(resolveClientOptions());
    return client;
  };
  registerAgentCommands(program, getClient, print);
  registerPolicyCommands(program, getClient, print);
  registerPermissionCommands(program, getClient, print);
  registerAuditCommands(program, getClient, print);
  registerDoctorCommand(program, print);
  registerMetricsCommands(program, getClient, print);
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
