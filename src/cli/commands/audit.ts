import type { Command } from 'commander';
import type { OperatorClient } from '../client.js';
import { table } from '../format.js';

interface AuditEventDto {
  id: string;
  occurredAt: string;
  type: string;
  actor: { type: string; name?: string; userName?: string };
  agentId: string | null;
  permissionId: string | null;
}

export function registerAuditCommands(
  program: Command,
  client: () => OperatorClient,
  print: (text: string) => void,
): void {
  program
    .command('audit:list')
    .description('Show audit events, newest first')
    .option('--agent <agentId>', 'only this agent')
    .option('--permission <permissionId>', 'only this permission')
    .option('--type <eventType>', 'only this event type (request, approve, use, …)')
    .option('--limit <n>', 'how many', '50')
    .option('--json', 'print JSON')
    .action(
      async (opts: { agent?: string; permission?: string; type?: string; limit: string; json?: boolean }) => {
        const query = new URLSearchParams({ limit: opts.limit });
        if (opts.agent) query.set('agent_id', opts.agent);
        if (opts.permission) query.set('permission_id', opts.permission);
        if (opts.type) query.set('event_type', opts.type);
        const page = await client().call<{ events: AuditEventDto[] }>('GET', `/api/v1/audit?${query}`);
        if (opts.json) return print(JSON.stringify(page.events, null, 2));
        print(
          table(
            page.events.map((e) => ({
              ...e,
              actor: `${e.actor.type}:${e.actor.userName ?? e.actor.name ?? ''}`,
            })),
            ['occurredAt', 'type', 'actor', 'agentId', 'permissionId'],
          ),
        );
      },
    );

  program
    .command('audit:verify')
    .description('Walk the audit hash chain; exits non-zero and names the first broken link')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const result = await client().call<{
        valid: boolean;
        checked: number;
        unsealed: number;
        firstBroken?: { id: string; chainIndex: number; reason: string };
      }>('POST', '/api/v1/audit/verify');
      if (opts.json) print(JSON.stringify(result, null, 2));
      else if (result.valid)
        print(`Audit chain intact: ${result.checked} events checked, ${result.unsealed} not yet sealed.`);
      else {
        const b = result.firstBroken;
        print(`Audit chain BROKEN at event ${b?.id} (chain index ${b?.chainIndex}): ${b?.reason}`);
        print(`${result.checked} events verified before it.`);
      }
      if (!result.valid) process.exitCode = 2;
    });
}
