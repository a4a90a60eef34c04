import { type Command, Option } from 'commander';
import { CliError, type OperatorClient } from '../client.js';
import { table } from '../format.js';
import { age, truncate } from '../table.js';
import { listAllAgents } from './agents.js';

interface DeliveryDto {
  id: string;
  permissionId: string | null;
  agentId: string | null;
  url: string;
  eventType: string;
  status: 'pending' | 'delivered' | 'dead';
  attempts: number;
  lastError: string | null;
  lastStatus: number | null;
  createdAt: string;
  nextAttemptAt: string | null;
  deliveredAt: string | null;
}

const STATUSES = ['pending', 'delivered', 'dead'];

export function registerWebhookCommands(
  program: Command,
  client: () => OperatorClient,
  print: (text: string) => void,
): void {
  program
    .command('webhook:list')
    .description('List webhook deliveries: dead letters first, then the rest, newest first')
    .addOption(new Option('--status <status>', 'only pending, delivered or dead').choices(STATUSES))
    .option('--agent <agent>', 'only this agent (id or name)')
    .option('--limit <n>', 'how many', '50')
    .option('--json', 'print JSON')
    .action(async (opts: { status?: string; agent?: string; limit: string; json?: boolean }) => {
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 200)
        throw new CliError('--limit must be a whole number from 1 to 200');
      const base = new URLSearchParams({ limit: String(limit) });
      if (opts.agent) base.set('agent', opts.agent);
      const page = async (status?: string) => {
        const query = new URLSearchParams(base);
        if (status) query.set('status', status);
        return (
          await client().call<{ deliveries: DeliveryDto[] }>('GET', `/api/v1/webhooks/deliveries?${query}`)
        ).deliveries;
      };
      let deliveries: DeliveryDto[];
      if (opts.status) deliveries = await page(opts.status);
      else {
        // The dead letters are what needs a person: they come first, whatever their age.
        const dead = await page('dead');
        const rest = (await page()).filter((d) => d.status !== 'dead');
        deliveries = [...dead, ...rest].slice(0, limit);
      }
      if (opts.json) return print(JSON.stringify(deliveries, null, 2));
      const names = new Map((await listAllAgents(client())).map((a) => [a.id, a.name]));
      const now = new Date();
      print(
        table(
          deliveries.map((d) => ({
            id: d.id,
            status: d.status,
            event: d.eventType,
            agent: d.agentId ? truncate(names.get(d.agentId) ?? d.agentId, 24) : '(alert)',
            permission: d.permissionId,
            attempts: d.attempts,
            last: d.lastStatus ?? (d.lastError === null ? null : truncate(d.lastError, 40)),
            url: truncate(d.url, 40),
            age: age(d.createdAt, now),
          })),
          ['id', 'status', 'event', 'agent', 'permission', 'attempts', 'last', 'url', 'age'],
        ),
      );
    });

  program
    .command('webhook:replay <id>')
    .description('Send a dead (or delivered) webhook again: attempts reset, a new retry window')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      const delivery = await client().call<DeliveryDto>(
        'POST',
        `/api/v1/webhooks/deliveries/${encodeURIComponent(id)}/replay`,
      );
      if (opts.json) return print(JSON.stringify(delivery, null, 2));
      print(`Queued ${delivery.id} (${delivery.eventType}) to ${delivery.url} again.`);
    });
}
