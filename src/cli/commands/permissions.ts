import { type Command, Option } from 'commander';
import { PERMISSION_STATUSES } from '../../core/permission.js';
import { CliError, type OperatorClient } from '../client.js';
import { display, keyValues, table } from '../format.js';
import { confirm } from '../prompt.js';
import { age, scopeLines, scopeSummary, truncate } from '../table.js';
import { listAllAgents } from './agents.js';

interface PermissionDto {
  id: string;
  agentId: string;
  status: string;
  action: string;
  resource: string | null;
  scope: Record<string, unknown>;
  context: Record<string, unknown>;
  reason: string | null;
  policy: { id: string | null; name: string | null } | null;
  expiresAt: string;
  createdAt: string;
  decidedAt: string | null;
  decidedBy: { name?: string; userName?: string; type?: string; person?: string } | null;
  usesRemaining: number;
  maxUses: number;
  approvalUrl?: string;
}

/** The operator's read (GET /permissions/:id): progress and token state, never a token. */
interface PermissionViewDto extends PermissionDto {
  approvals: { count: number; required: number; votes: { approver: string; decision: string; at: string }[] };
  tokenState: string;
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
  const by = p.decidedBy;
  return by ? (by.person ?? by.userName ?? by.name ?? by.type ?? null) : null;
}

const TOKEN_STATE_TEXT: Record<string, string> = {
  none: 'none issued',
  unused: 'issued, not used yet',
  used: 'issued, partly used',
  exhausted: 'every use spent',
  expired: 'expired',
  revoked: 'revoked',
};

/** One permission for a person: who asked for what, under which terms, and where it stands. */
export function permissionDetail(p: PermissionViewDto, agentName: string | null, now = new Date()): string {
  const votes = p.approvals.votes.map((v) => `${v.decision} by ${v.approver} at ${v.at}`);
  const lines = [
    keyValues({
      id: p.id,
      status: p.status,
      agent: agentName ? `${agentName} (${p.agentId})` : p.agentId,
      action: p.action,
      resource: p.resource,
      ...(typeof p.context.user_id === 'string' && { onBehalfOf: p.context.user_id }),
      policy: p.policy ? [p.policy.name, p.policy.id && `(${p.policy.id})`].filter(Boolean).join(' ') : null,
      requested: `${p.createdAt} (${age(p.createdAt, now)} ago)`,
      expires: `${p.expiresAt} (${age(p.expiresAt, now)}${new Date(p.expiresAt) > now ? '' : ' ago'})`,
      decided: p.decidedAt ? `${p.decidedAt} by ${decidedByName(p) ?? '-'}` : null,
      reason: p.reason,
      approvals: `${p.approvals.count} of ${p.approvals.required}${votes.length ? `: ${votes.join('; ')}` : ''}`,
      token:
        `${TOKEN_STATE_TEXT[p.tokenState] ?? p.tokenState}` +
        (p.tokenState === 'none' ? '' : ` (${p.usesRemaining} of ${p.maxUses} uses left)`),
      ...(p.approvalUrl && { approvalUrl: p.approvalUrl }),
    }),
  ];
  const scope = scopeLines(p.scope);
  lines.push(
    '',
    'scope:',
    ...(scope.length ? scope.map((l) => `  ${l}`) : ['  (none: any use of the action)']),
  );
  const context = Object.entries(p.context);
  if (context.length)
    lines.push('', 'context:', ...context.map(([k, v]) => `  ${k}: ${truncate(display(v), 200)}`));
  return lines.join('\n');
}

async function agentNameOf(client: OperatorClient, agentId: string): Promise<string | null> {
  try {
    return (await client.call<{ name: string }>('GET', `/api/v1/agents/${encodeURIComponent(agentId)}`)).name;
  } catch {
    return null; // a deleted agent: its id is still shown
  }
}

export function registerPermissionCommands(
  program: Command,
  client: () => OperatorClient,
  print: (text: string) => void,
): void {
  program
    .command('permission:list')
    .description('List permissions, newest first: who asked for what, with which scope')
    .addOption(new Option('--status <status>', 'only this status').choices(PERMISSION_STATUSES))
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
        const names = new Map((await listAllAgents(client())).map((a) => [a.id, a.name]));
        const now = new Date();
        const rows = page.permissions.map((p) => ({
          id: p.id,
          agent: truncate(names.get(p.agentId) ?? p.agentId, 24),
          for: typeof p.context?.user_id === 'string' ? truncate(p.context.user_id, 24) : null,
          action: truncate(p.action, 32),
          resource: p.resource === null ? null : truncate(p.resource, 32),
          scope: scopeSummary(p.scope),
          status: p.status,
          age: age(p.createdAt, now),
        }));
        const forColumn = rows.some((r) => r.for !== null) ? ['for'] : [];
        print(table(rows, ['id', 'agent', ...forColumn, 'action', 'resource', 'scope', 'status', 'age']));
      },
    );

  program
    .command('permission:get <id>')
    .description('Show one permission: scope, context, approvals so far, policy, expiry and token state')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      const p = await getPermission(client(), id);
      if (opts.json) return print(JSON.stringify(p, null, 2));
      print(permissionDetail(p, await agentNameOf(client(), p.agentId)));
    });

  program
    .command('permission:revoke <id>')
    .description('Revoke a permission: its token stops working at once; a pending request is withdrawn')
    .option('--reason <text>', 'why (kept in the audit trail)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { reason?: string; json?: boolean }) => {
      const revoked = await client().call<PermissionDto>(
        'POST',
        `/api/v1/permissions/${encodeURIComponent(id)}/revoke`,
        opts.reason === undefined ? {} : { reason: opts.reason },
      );
      if (opts.json) return print(JSON.stringify(revoked, null, 2));
      print(`Revoked ${revoked.id} (${revoked.action}); its token no longer works.`);
    });

  /**
   * The request is shown before anyone decides on it, and a decision needs a "y" on a terminal
   * or --yes: approving the wrong id from shell history is the mistake this prevents.
   */
  const decide = async (
    id: string,
    body: Record<string, unknown> & { approved: boolean },
    opts: { json?: boolean; yes?: boolean },
  ) => {
    const current = await getPermission(client(), id);
    const preview = permissionDetail(current, await agentNameOf(client(), current.agentId));
    const show = opts.json ? (text: string) => process.stderr.write(`${text}\n`) : print;
    if (!opts.yes) {
      show(preview);
      if (body.scopeModifications) show(`\nyour scope changes: ${JSON.stringify(body.scopeModifications)}`);
      show('');
    }
    const verb = body.approved ? 'Approve' : 'Deny';
    if (!(await confirm(`${verb} ${current.id}?`, { yes: opts.yes }))) {
      throw new CliError('Not confirmed: nothing was decided.', 'NOT_CONFIRMED');
    }
    const result = await client().call<PermissionDto & { approvals: { count: number; required: number } }>(
      'POST',
      `/api/v1/permissions/${encodeURIComponent(current.id)}/decide`,
      body,
    );
    if (opts.json) return print(JSON.stringify(result, null, 2));
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
    .description('Approve a pending request, optionally narrowing its scope (shows it and asks first)')
    .option('--reason <text>', 'why')
    .option('--scope <json>', 'scope changes (narrowing only), e.g. \'{"max_amount": 50}\'')
    .option('-y, --yes', 'do not ask for confirmation (required without a terminal)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { reason?: string; scope?: string; yes?: boolean; json?: boolean }) => {
      const scopeModifications = parseJsonOption('--scope', opts.scope);
      await decide(id, { approved: true, reason: opts.reason, scopeModifications }, opts);
    });

  program
    .command('deny <id>')
    .description('Deny a pending request (shows it and asks first)')
    .option('--reason <text>', 'why')
    .option('-y, --yes', 'do not ask for confirmation (required without a terminal)')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { reason?: string; yes?: boolean; json?: boolean }) => {
      await decide(id, { approved: false, reason: opts.reason }, opts);
    });
}

function getPermission(client: OperatorClient, id: string): Promise<PermissionViewDto> {
  return client.call<PermissionViewDto>('GET', `/api/v1/permissions/${encodeURIComponent(id)}`);
}
