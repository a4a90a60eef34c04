import type { Command } from 'commander';
import type { OperatorClient } from '../client.js';
import { keyValues, table } from '../format.js';

interface AgentDto {
  id: string;
  name: string;
  environment: string;
  status: string;
  createdAt: string;
  [k: string]: unknown;
}

export function registerAgentCommands(
  program: Command,
  client: () => OperatorClient,
  print: (text: string) => void,
): void {
  program
    .command('agent:create')
    .description('Create an agent and print its API key (shown once)')
    .requiredOption('--name <name>', 'agent name')
    .option('--description <text>', 'what the agent does')
    .option('--test', 'create an ak_test_ key: every request auto-approves, nobody is notified')
    .option('--json', 'print JSON')
    .action(async (opts: { name: string; description?: string; test?: boolean; json?: boolean }) => {
      const agent = await client().call<AgentDto & { apiKey: string; webhookSecret?: string }>(
        'POST',
        '/api/v1/agents',
        {
          name: opts.name,
          description: opts.description,
          environment: opts.test ? 'test' : 'live',
        },
      );
      if (opts.json) return print(JSON.stringify(agent, null, 2));
      print(
        keyValues({
          id: agent.id,
          name: agent.name,
          environment: agent.environment,
          apiKey: agent.apiKey,
          ...(agent.webhookSecret ? { webhookSecret: agent.webhookSecret } : {}),
        }),
      );
      print('\nStore the API key and webhook secret now: they are not shown again.');
    });

  program
    .command('agent:list')
    .description('List agents')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const all: AgentDto[] = [];
      let cursor: string | null = null;
      do {
        const query: string = cursor ? `?limit=200&cursor=${encodeURIComponent(cursor)}` : '?limit=200';
        const page: { agents: AgentDto[]; nextCursor: string | null } = await client().call(
          'GET',
          `/api/v1/agents${query}`,
        );
        all.push(...page.agents);
        cursor = page.nextCursor;
      } while (cursor);
      if (opts.json) return print(JSON.stringify(all, null, 2));
      print(table(all, ['id', 'name', 'environment', 'status', 'createdAt']));
      const duplicates = all.filter((a) => a.nameDuplicate === true);
      if (duplicates.length) {
        print(
          `\n${duplicates.length} agent(s) share a name with an older agent (created before names were unique); rename them: ${duplicates.map((a) => a.id).join(', ')}`,
        );
      }
    });

  program
    .command('agent:revoke')
    .description('Revoke an agent: all its keys are refused from now on')
    .requiredOption('--id <agentId>', 'agent id')
    .option('--json', 'print JSON')
    .action(async (opts: { id: string; json?: boolean }) => {
      const agent = await client().call<AgentDto>(
        'POST',
        `/api/v1/agents/${encodeURIComponent(opts.id)}/revoke`,
      );
      if (opts.json) return print(JSON.stringify(agent, null, 2));
      print(`Revoked ${agent.id} (${agent.name}); its keys no longer work.`);
    });

  program
    .command('agent:rotate-key')
    .description('Issue a new API key; the old one keeps working for the grace period')
    .requiredOption('--id <agentId>', 'agent id')
    .option('--grace-period <seconds>', 'how long the old key keeps working', '86400')
    .option('--revoke-immediately', 'stop the old key now')
    .option('--json', 'print JSON')
    .action(
      async (opts: { id: string; gracePeriod: string; revokeImmediately?: boolean; json?: boolean }) => {
        const gracePeriod = Number(opts.gracePeriod);
        if (!Number.isInteger(gracePeriod) || gracePeriod < 0)
          throw new Error('--grace-period must be a whole number of seconds');
        const rotated = await client().call<{
          id: string;
          apiKey: string;
          webhookSecret?: string;
          previousKeysExpireAt: string;
        }>('POST', `/api/v1/agents/${encodeURIComponent(opts.id)}/rotate-key`, {
          gracePeriod,
          revokeImmediately: Boolean(opts.revokeImmediately),
        });
        if (opts.json) return print(JSON.stringify(rotated, null, 2));
        print(
          keyValues({
            id: rotated.id,
            apiKey: rotated.apiKey,
            ...(rotated.webhookSecret ? { webhookSecret: rotated.webhookSecret } : {}),
            oldKeysStopAt: rotated.previousKeysExpireAt,
          }),
        );
        print('\nStore the new API key and webhook secret now: they are not shown again.');
      },
    );
}
