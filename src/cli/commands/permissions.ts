import type { Command } from 'commander';
import { CliError, type OperatorClient } from '../client.js';
import { keyValues, table } from '../format.js';

interface PermissionDto {
  id: string;
  agentId: string;
  status: string;
  action: string;
  resource: string | null;
  scope: Record<string, unknown>;
  reason: string | null;
  expiresAt: string;
  createdAt: string;
  decidedBy: { name?: string; userName?: string; type?: string } | null;
}

export function parseJsonOption(
  name: string,
  value: string | undefined,
): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new CliError(`${name} must be JSON, e.g. '{"max_amount": 50}'`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new CliError(`${name} must be a JSON object`);
  return parsed as Record<string, unknown>;
}

function decidedByName(p: PermissionDto): string | null {
  return p.decidedBy ? (p.decidedBy.userName ?? p.decidedBy.name ?? p.decidedBy.type ?? null) : null;
}

export function registerPermissionCommands(
  program: Command,
  client: () => OperatorClient,
  print: (text: string) => void,
): void {
  program
    .command('permission:list')
    .description('List permissions, newest first')
    .option('--status <status>', 'pending, approved, denied, expired, used, revoked or cancelled')
    .option('--agent <id-or-name>', 'only this agent, by id (agent_…) or name')
    .option('--action <action>', 'only this action')
    .option('--limit <n>', 'how many', '50')
    .option('--json', 'print JSON')
    .action(
      async (opts: { status?: string; agent?: string; action?: string; limit: string; json?: boolean }) => {
        const query = new URLSearchParams({ limit: opts.limit });
        if (opts.status) query.set('status', opts.status);
        if (opts.agent) query.set('agent', opts.agent);
        if (opts.action) query.set('action', opts.action);
        const page = await client().call<{ permissions: PermissionDto[] }>(
          'GET',
          `/api/v1/permissions?${query}`,
        );
        if (opts.json) return print(JSON.stringify(page.permissions, null, 2));
        print(
          table(
            page.permissions.map((p) => ({ ...p, decidedBy: decidedByName(p) })),
            ['id', 'status', 'action', 'agentId', 'decidedBy', 'expiresAt'],
          ),
        );
      },
    );

  const decide = async (id: string, body: Record<string, unknown>, json?: boolean) => {
    const result = await client().call<PermissionDto & { approvals: { count: number; required: number } }>(
      'POST',
      `/api/v1/permissions/${encodeURIComponent(id)}/decide`,
      body,
    );
    if (json) return print(JSON.stringify(result, null, 2));
    print(
      keyValues({
        id: result.id,
        status: result.status,
        action: result.action,
        scope: result.scope,
        approvals: `${result.approvals.count}/${result.approvals.required}`,
        expiresAt: result.expiresAt,
      }),
    );
  };

  program
    .command('approve <id>')
    .description('Approve a pending request, optionally narrowing its scope')
    .option('--reason <text>', 'why')
    .option('--scope <json>', 'scope changes (narrowing only), e.g. \'{"max_amount": 50}\'')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { reason?: string; scope?: string; json?: boolean }) => {
      await decide(
        id,
        { approved: true, reason: opts.reason, scopeModifications: parseJsonOption('--scope', opts.scope) },
        opts.json,
      );
    });

  program
    .command('deny <id>')
    .description('Deny a pending request')
    .option('--reason <text>', 'why')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { reason?: string; json?: boolean }) => {
      await decide(id, { approved: false, reason: opts.reason }, opts.json);
    });
}
