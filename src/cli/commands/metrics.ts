import type { Command } from 'commander';
import { CliError, type OperatorClient } from '../client.js';
import { keyValues } from '../format.js';

const PERIODS = ['1h', '24h', '7d', '30d'];

const percent = (v: unknown) => (typeof v === 'number' ? `${(v * 100).toFixed(1)}%` : v);
const millis = (v: unknown) => (typeof v === 'number' ? `${(v / 1000).toFixed(1)} s` : v);

/** `agent-otp metrics [--period 24h] [--agent ID-OR-NAME] [--json]`: GET /api/v1/metrics. */
export function registerMetricsCommands(
  program: Command,
  client: () => OperatorClient,
  print: (text: string) => void,
): void {
  program
    .command('metrics')
    .description('Security metrics: request volume, denial and unused-token rates, approval times, failures')
    .option('--period <period>', `one of ${PERIODS.join(', ')}`, '24h')
    .option('--agent <id-or-name>', 'one agent only, by id (agent_…) or name')
    .option('--json', 'print JSON')
    .action(async (opts: { period: string; agent?: string; json?: boolean }) => {
      if (!PERIODS.includes(opts.period)) throw new CliError(`--period must be one of ${PERIODS.join(', ')}`);
      const query = new URLSearchParams({ period: opts.period });
      if (opts.agent) query.set('agent', opts.agent);
      const m = await client().call<Record<string, unknown>>('GET', `/api/v1/metrics?${query}`);
      if (opts.json) return print(JSON.stringify(m, null, 2));
      print(
        keyValues({
          period: `${m.period} (since ${m.since})`,
          agent: m.agentId ?? 'all agents',
          requestVolume: m.requestVolume,
          approved: m.approved,
          denied: m.denied,
          expired: m.expired,
          pending: m.pending,
          used: m.used,
          revoked: m.revoked,
          denialRate: percent(m.denialRate),
          unusedTokenRate: percent(m.unusedTokenRate),
          avgApprovalTime: millis(m.avgApprovalTimeMs),
          p95ApprovalTime: millis(m.p95ApprovalTimeMs),
          failedAuthentications: m.failedAuthentications,
          scopeViolations: m.scopeViolations,
        }),
      );
    });
}
