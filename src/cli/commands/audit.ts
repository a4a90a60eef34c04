import { createWriteStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Command } from 'commander';
import type { ErasureReport } from '../../services/erasure.js';
import { CliError, type OperatorClient } from '../client.js';
import { table } from '../format.js';
import { ProgressBar } from '../progress.js';
import { confirm } from '../prompt.js';

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
    .option('--agent <id-or-name>', 'only this agent, by id (agent_…) or name')
    .option('--permission <permissionId>', 'only this permission')
    .option(
      '--type <eventType>',
      'only this event type (request, approve, use, agent.created, …; a wrong one lists them)',
    )
    .option('--limit <n>', 'how many', '50')
    .option('--json', 'print JSON')
    .action(
      async (opts: { agent?: string; permission?: string; type?: string; limit: string; json?: boolean }) => {
        const query = new URLSearchParams({ limit: opts.limit });
        if (opts.agent) query.set('agent', opts.agent);
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

  program
    .command('audit:export')
    .description('Stream the audit trail as JSON lines or CSV, oldest first, to a file or stdout')
    .option('--format <format>', 'jsonl or csv', 'jsonl')
    .option('--since <date>', 'only events at or after this ISO 8601 date')
    .option('--until <date>', 'only events at or before this ISO 8601 date')
    .option('--agent <id-or-name>', 'only this agent, by id (agent_…) or name')
    .option('--type <eventType>', 'only this event type')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(
      async (opts: {
        format: string;
        since?: string;
        until?: string;
        agent?: string;
        type?: string;
        output?: string;
      }) => {
        if (opts.format !== 'jsonl' && opts.format !== 'csv') {
          throw new Error('--format must be jsonl or csv');
        }
        const query = new URLSearchParams({ format: opts.format });
        if (opts.since) query.set('start_date', opts.since);
        if (opts.until) query.set('end_date', opts.until);
        if (opts.agent) query.set('agent', opts.agent);
        if (opts.type) query.set('event_type', opts.type);
        // A bar only for a person watching: the count costs the server one more query, and
        // nothing but the export may reach a pipe or a file.
        const showProgress = process.stderr.isTTY === true;
        if (showProgress) query.set('count', 'true');
        const response = await client().stream(`/api/v1/audit/export?${query}`);
        if (!response.body) throw new Error('the server sent no body');
        const counted = response.headers.get('x-total-count');
        const bar = showProgress
          ? new ProgressBar({
              unit: 'rows',
              total: counted === null ? null : Number(counted),
              write: (text) => process.stderr.write(text),
              columns: process.stderr.columns,
            })
          : null;
        let lines = 0;
        // The CSV header line is not a row.
        const rows = () => (opts.format === 'csv' ? Math.max(0, lines - 1) : lines);
        const counter = new Transform({
          transform(chunk: Buffer, _enc, callback) {
            for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines += 1;
            bar?.update(rows());
            callback(null, chunk);
          },
        });
        const body = Readable.fromWeb(response.body as unknown as WebReadableStream<Uint8Array>);
        const sink = opts.output ? createWriteStream(opts.output) : process.stdout;
        try {
          await pipeline(body, counter, sink, { end: Boolean(opts.output) });
        } catch (err) {
          // The error message goes on a line of its own, not after the bar.
          if (bar) process.stderr.write('\n');
          throw err;
        }
        bar?.finish(rows());
      },
    );

  program
    .command('audit:redact')
    .description(
      "Erase a person's data (e.g. an email or user id) from the audit trail, permissions, webhook deliveries and posted chat messages (GDPR)",
    )
    .requiredOption('--subject <value>', 'the value to erase wherever it appears')
    .option('--dry-run', 'show what would change, change nothing')
    .option('-y, --yes', 'do not ask for confirmation (required without a terminal)')
    .option('--json', 'print JSON')
    .action(async (opts: { subject: string; dryRun?: boolean; yes?: boolean; json?: boolean }) => {
      const erase = (dryRun: boolean) =>
        client().call<ErasureReport>('POST', '/api/v1/audit/redact', {
          subject: opts.subject,
          ...(dryRun ? { dryRun: true } : {}),
        });
      // Erasure cannot be undone: unless --yes, the operator first sees what it would touch.
      if (opts.dryRun || !opts.yes) {
        const preview = await erase(true);
        if (opts.dryRun) return print(opts.json ? JSON.stringify(preview, null, 2) : erasureSummary(preview));
        const show = opts.json ? (text: string) => process.stderr.write(`${text}\n`) : print;
        show(erasureSummary(preview).replace(/\nDry run: nothing was changed\.$/, ''));
        if (!(await confirm('Redact all of this? It cannot be undone.')))
          throw new CliError('Not confirmed: nothing was redacted.', 'NOT_CONFIRMED');
      }
      const result = await erase(false);
      if (opts.json) return print(JSON.stringify(result, null, 2));
      print(erasureSummary(result));
    });
}

/** The erasure report as lines a person reads: what changed (or would), and what was kept and why. */
export function erasureSummary(r: ErasureReport): string {
  const verb = r.dryRun ? 'Would redact' : 'Redacted';
  const fields = Object.entries(r.permissionFields)
    .map(([field, n]) => `${field} ${n}`)
    .join(', ');
  const lines = [
    `${verb}: ${r.events} audit events, ${r.eventOrigins} client addresses/user agents, ${r.permissions} permissions${fields ? ` (${fields})` : ''}, ${r.webhookDeliveries} webhook deliveries, ${r.chatMessages} chat messages.`,
  ];
  if (r.revoked.length)
    lines.push(
      `${r.dryRun ? 'Would revoke' : 'Revoked'} ${r.revoked.length} live permissions whose terms named the subject: ${r.revoked.join(', ')}`,
    );
  if (r.eventActorsKept)
    lines.push(`Kept: ${r.eventActorsKept} audit event actors (the hash chain covers them).`);
  const left = r.leftInConfiguration;
  if (left.agents || left.policies || left.approvers)
    lines.push(
      `Left for you to edit: ${left.agents} agents, ${left.policies} policies and ${left.approvers} approver accounts name the subject.`,
    );
  lines.push(r.dryRun ? 'Dry run: nothing was changed.' : `Recorded as ${r.eventId}.`);
  return lines.join('\n');
}
