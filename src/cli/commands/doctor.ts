import type { Command } from 'commander';
import { runDoctor, summary } from '../doctor/run.js';
import { table } from '../format.js';
import type { TargetFlags } from '../target.js';

export function registerDoctorCommand(program: Command, print: (text: string) => void): void {
  program
    .command('doctor')
    .description(
      'Check the configuration, the running server, its database and Redis; exits 1 on any failure',
    )
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }, command: Command) => {
      const results = await runDoctor(process.env, command.optsWithGlobals<TargetFlags>());
      if (opts.json) print(JSON.stringify(results, null, 2));
      else {
        print(table(results as unknown as Record<string, unknown>[], ['status', 'check', 'detail']));
        print(`\n${summary(results)}`);
      }
      if (results.some((r) => r.status === 'fail')) process.exitCode = 1;
    });
}
