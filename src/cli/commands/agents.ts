import type { Command } from 'commander';
import { CliError, type OperatorClient } from '../client.js';
import { keyValues, table } from '../format.js';

interface AgentDto {
  id: string;
  name: string;
  environment: string;
  status: string;
  createdAt: string;
  [k: string]: unknown;
}

const AGENT_ID = /^agent_[A-Za-z0-9]+$/;

/** Every agent, all pages. */
export async function listAllAgents(client: OperatorClient): Promise<AgentDto[]> {
  const all: AgentDto[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `?limit=200&cursor=${encodeURIComponent(cursor)}` : '?limit=200';
    const page: { agents: AgentDto[]; nextCursor: string | null } = await client.call(
      'GET',
      `/api/v1/agents${query}`,
    );
    all.push(...page.agents);
    cursor = page.nextCursor;
  } while (cursor);
  return all;
}

/**
 * An agent named by id (agent_…) or by name, resolved by the server as every `--agent` filter is:
 * an unknown one is UNKNOWN_AGENT listing agents, a shared name AGENT_NAME_AMBIGUOUS.
 */
export async function resolveAgentId(client: OperatorClient, idOrName: string): Promise<string> {
  if (AGENT_ID.test(idOrName)) return idOrName;
  return (await client.call<AgentDto>('GET', `/api/v1/agents/${encodeURIComponent(idOrName)}`)).id;
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
      const all = await listAllAgents(client());
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
            previousKeysExpireAt: rotated.previousKeysExpireAt,
          }),
        );
        print('\nStore the new API key and webhook secret now: they are not shown again.');
      },
    );

  program
    .command('agent:update <agent>')
    .description("Change an agent's description, webhook URL or rate limits (agent by id or name)")
    .option('--name <name>', 'rename the agent')
    .option('--description <text>', 'what the agent does')
    .option('--clear-description', 'remove the description')
    .option('--webhook-url <url>', 'where its permission events are POSTed (http or https)')
    .option('--clear-webhook-url', 'stop sending it webhooks')
    .option('--rate-limit-per-min <n>', 'permission requests per minute (overrides RATE_LIMIT_PER_MIN)')
    .option('--rate-limit-per-hour <n>', 'permission requests per hour')
    .option('--token-rate-limit-per-min <n>', 'verify/use calls per minute')
    .option('--token-rate-limit-per-hour <n>', 'verify/use calls per hour')
    .option('--clear-rate-limits', 'go back to the server-wide rate limits')
    .option('--json', 'print JSON')
    .action(async (agent: string, opts: AgentUpdateOptions) => {
      const body = agentUpdateBody(opts);
      if (Object.keys(body).length === 0)
        throw new CliError(
          'Nothing to change: pass --description, --webhook-url, a rate limit flag or a --clear- flag',
        );
      const id = await resolveAgentId(client(), agent);
      const updated = await client().call<AgentDto>(
        'PATCH',
        `/api/v1/agents/${encodeURIComponent(id)}`,
        body,
      );
      if (opts.json) return print(JSON.stringify(updated, null, 2));
      print(
        keyValues({
          id: updated.id,
          name: updated.name,
          description: updated.description,
          webhookUrl: updated.webhookUrl,
          rateLimitPerMin: updated.rateLimitPerMin ?? '(server default)',
          rateLimitPerHour: updated.rateLimitPerHour ?? '(server default)',
          tokenRateLimitPerMin: updated.tokenRateLimitPerMin ?? '(server default)',
          tokenRateLimitPerHour: updated.tokenRateLimitPerHour ?? '(server default)',
        }),
      );
    });
}

interface AgentUpdateOptions {
  name?: string;
  description?: string;
  clearDescription?: boolean;
  webhookUrl?: string;
  clearWebhookUrl?: boolean;
  rateLimitPerMin?: string;
  rateLimitPerHour?: string;
  tokenRateLimitPerMin?: string;
  tokenRateLimitPerHour?: string;
  clearRateLimits?: boolean;
  json?: boolean;
}

const RATE_FLAGS = [
  ['rateLimitPerMin', '--rate-limit-per-min'],
  ['rateLimitPerHour', '--rate-limit-per-hour'],
  ['tokenRateLimitPerMin', '--token-rate-limit-per-min'],
  ['tokenRateLimitPerHour', '--token-rate-limit-per-hour'],
] as const;

/** The PATCH body: only what a flag names; a --clear- flag sends null (back to the default). */
function agentUpdateBody(opts: AgentUpdateOptions): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  const exclusive = (a: unknown, b: unknown, flags: string) => {
    if (a !== undefined && b) throw new CliError(`${flags}: pass one or the other`);
  };
  exclusive(opts.description, opts.clearDescription, '--description and --clear-description');
  exclusive(opts.webhookUrl, opts.clearWebhookUrl, '--webhook-url and --clear-webhook-url');
  if (opts.name !== undefined) body.name = opts.name;
  if (opts.description !== undefined) body.description = opts.description;
  if (opts.clearDescription) body.description = null;
  if (opts.webhookUrl !== undefined) body.webhookUrl = opts.webhookUrl;
  if (opts.clearWebhookUrl) body.webhookUrl = null;
  for (const [field, flag] of RATE_FLAGS) {
    const text = opts[field];
    if (text === undefined) {
      if (opts.clearRateLimits) body[field] = null;
      continue;
    }
    if (opts.clearRateLimits) throw new CliError(`${flag} and --clear-rate-limits: pass one or the other`);
    const n = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < 1)
      throw new CliError(`${flag} must be a whole number of at least 1`);
    body[field] = n;
  }
  return body;
}
