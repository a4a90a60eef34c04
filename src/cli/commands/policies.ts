import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { AppError } from '../../core/errors.js';
import { parsePolicyDocument } from '../../core/policy/index.js';
import { CliError, type OperatorClient } from '../client.js';
import { display, keyValues, table } from '../format.js';
import { confirm } from '../prompt.js';

interface PolicyDto {
  id: string;
  name: string;
  priority: number;
  action: string;
  agent?: string;
  enabled: boolean;
  [k: string]: unknown;
}

interface PlanDto {
  added: { name: string; id?: string }[];
  changed: { id: string; name: string; previousName?: string; fields: string[] }[];
  removed: { id: string; name: string }[];
  unchanged: { id: string; name: string }[];
  reordered: boolean;
}

interface ApplyResultDto {
  dryRun: boolean;
  count: number;
  plan: PlanDto;
  unknownAgents: { policy: string; agents: string[] }[];
  policies?: PolicyDto[];
}

/** The diff by name, one line a policy, then warnings and the totals. */
export function formatApplyResult(result: ApplyResultDto): string {
  const { plan } = result;
  const lines = [
    ...plan.added.map((p) => `+ added      ${p.name}`),
    ...plan.changed.map(
      (p) =>
        `~ changed    ${p.name} (${p.previousName !== undefined ? `was ${p.previousName}; ` : ''}${p.fields.join(', ')})`,
    ),
    ...plan.removed.map((p) => `- removed    ${p.name}`),
    ...plan.unchanged.map((p) => `= unchanged  ${p.name}`),
  ];
  if (plan.reordered) lines.push('Order changed (it breaks ties in priority).');
  for (const u of result.unknownAgents) {
    lines.push(
      `Warning: ${u.policy} names ${u.agents.length === 1 ? 'an agent that does' : 'agents that do'} not exist: ${u.agents.join(', ')}`,
    );
  }
  const totals = `${plan.added.length} added, ${plan.changed.length} changed, ${plan.removed.length} removed, ${plan.unchanged.length} unchanged`;
  lines.push(result.dryRun ? `Dry run: nothing applied (${totals}).` : `Applied: ${totals}.`);
  return lines.join('\n');
}

interface TestResultDto {
  decision: string;
  policy: { id?: string; name: string } | null;
  reason: string;
  scope: Record<string, unknown> | null;
  ttl: number | null;
  agent: { id: string | null; name: string | null };
  approval?: Record<string, unknown>;
}

/** A JSON object option (--scope, --context): anything else is a clear error before any request. */
export function parseJsonObjectOption(flag: string, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CliError(
      `${flag} is not valid JSON (${(err as Error).message}); e.g. ${flag} '{"amount": 50}'`,
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new CliError(`${flag} must be a JSON object, e.g. ${flag} '{"amount": 50}'`);
  }
  return value as Record<string, unknown>;
}

export function registerPolicyCommands(
  program: Command,
  client: () => OperatorClient,
  print: (text: string) => void,
): void {
  program
    .command('policy:apply')
    .description('Replace the whole policy set with the one in a YAML or JSON file, showing what changes')
    .requiredOption('-f, --file <file>', 'policy file (YAML or JSON: a list, or { policies: [...] })')
    .option('--dry-run', 'show what would change; apply nothing')
    .option('--json', 'print JSON')
    .action(async (opts: { file: string; dryRun?: boolean; json?: boolean }) => {
      let text: string;
      try {
        text = await readFile(opts.file, 'utf8');
      } catch (err) {
        throw new CliError(`Cannot read ${opts.file}: ${(err as Error).message}`);
      }
      // Checked here first so a typo is reported with its line or field path, before any request;
      // the server validates the set again.
      let policies: unknown[];
      try {
        policies = parsePolicyDocument(text);
      } catch (err) {
        if (err instanceof AppError) throw new CliError(`${opts.file}: ${err.message}`, err.code);
        throw err;
      }
      const result = await client().call<ApplyResultDto>(
        'PUT',
        `/api/v1/policies${opts.dryRun ? '?dry_run=true' : ''}`,
        { policies },
      );
      if (opts.json) return print(JSON.stringify(result, null, 2));
      print(formatApplyResult(result));
    });

  program
    .command('policy:list')
    .description('List the policy set')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { policies } = await client().call<{ policies: PolicyDto[] }>('GET', '/api/v1/policies');
      if (opts.json) return print(JSON.stringify(policies, null, 2));
      print(table(policies, ['id', 'name', 'priority', 'action', 'agent', 'enabled']));
    });

  program
    .command('policy:test')
    .description('Dry run: which policy decides a request, and the scope and TTL it would get')
    .requiredOption('--action <action>', 'the action, e.g. email.send')
    .option('--agent <id-or-name>', 'an existing agent, by id (agent_…) or name')
    .option('--resource <resource>', 'the resource')
    .option('--scope <json>', 'requested scope as a JSON object')
    .option('--context <json>', 'request context as a JSON object')
    .option('--ttl <seconds>', 'requested TTL in seconds')
    .option('--json', 'print JSON')
    .action(
      async (opts: {
        action: string;
        agent?: string;
        resource?: string;
        scope?: string;
        context?: string;
        ttl?: string;
        json?: boolean;
      }) => {
        const body: Record<string, unknown> = { action: opts.action };
        // Resolved by the server: an unknown or ambiguous agent is an error listing what exists.
        if (opts.agent !== undefined) body.agent = opts.agent;
        if (opts.resource !== undefined) body.resource = opts.resource;
        if (opts.scope !== undefined) body.scope = parseJsonObjectOption('--scope', opts.scope);
        if (opts.context !== undefined) body.context = parseJsonObjectOption('--context', opts.context);
        if (opts.ttl !== undefined) {
          const ttl = Number(opts.ttl);
          if (!Number.isInteger(ttl) || ttl <= 0)
            throw new CliError('--ttl must be a whole number of seconds');
          body.ttl = ttl;
        }
        const result = await client().call<TestResultDto>('POST', '/api/v1/policies/test', body);
        if (opts.json) return print(JSON.stringify(result, null, 2));
        const policy = result.policy
          ? `${result.policy.name}${result.policy.id ? ` (${result.policy.id})` : ''}`
          : '(none: default action)';
        print(
          keyValues({
            decision: result.decision,
            policy,
            reason: result.reason,
            scope: result.scope === null ? '-' : display(result.scope),
            ttl: result.ttl === null ? '-' : `${result.ttl}s`,
            ...(result.approval !== undefined && { approval: result.approval }),
          }),
        );
      },
    );

  registerPolicyLifecycleCommands(program, client, print);
}

/** A policy by id (pol_…) or by its name; names are unique within the set. */
async function resolvePolicy(client: OperatorClient, idOrName: string): Promise<PolicyDto> {
  const { policies } = await client.call<{ policies: PolicyDto[] }>('GET', '/api/v1/policies');
  const found = policies.find((p) => p.id === idOrName) ?? policies.find((p) => p.name === idOrName);
  if (!found) throw new CliError(`NOT_FOUND: no policy with id or name "${idOrName}"`, 'NOT_FOUND');
  return found;
}

function registerPolicyLifecycleCommands(
  program: Command,
  client: () => OperatorClient,
  print: (text: string) => void,
): void {
  const describe = (p: PolicyDto) => `${p.name} (${p.id}, priority ${p.priority}, ${p.action})`;

  program
    .command('policy:delete <policy>')
    .description('Delete one policy (by id or name); the rest of the set stays')
    .option('-y, --yes', 'do not ask for confirmation (required without a terminal)')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { yes?: boolean; json?: boolean }) => {
      const policy = await resolvePolicy(client(), ref);
      if (!(await confirm(`Delete policy ${describe(policy)}?`, { yes: opts.yes })))
        throw new CliError('Not confirmed: nothing was deleted.', 'NOT_CONFIRMED');
      const deleted = await client().call<PolicyDto>(
        'DELETE',
        `/api/v1/policies/${encodeURIComponent(policy.id)}`,
      );
      if (opts.json) return print(JSON.stringify(deleted, null, 2));
      print(`Deleted policy ${describe(deleted)}.`);
    });

  for (const enabled of [false, true]) {
    const verb = enabled ? 'enable' : 'disable';
    program
      .command(`policy:${verb} <policy>`)
      .description(
        enabled
          ? 'Enable a disabled policy again (by id or name)'
          : 'Disable a policy (by id or name): it stays in the set but no request matches it',
      )
      .option('--json', 'print JSON')
      .action(async (ref: string, opts: { json?: boolean }) => {
        const policy = await resolvePolicy(client(), ref);
        const updated = await client().call<PolicyDto>(
          'PATCH',
          `/api/v1/policies/${encodeURIComponent(policy.id)}`,
          { enabled },
        );
        if (opts.json) return print(JSON.stringify(updated, null, 2));
        print(`${enabled ? 'Enabled' : 'Disabled'} policy ${describe(updated)}.`);
      });
  }
}
