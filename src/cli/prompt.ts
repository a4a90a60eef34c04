import { createInterface } from 'node:readline/promises';
import { CliError } from './client.js';

export interface ConfirmOptions {
  /** `-y/--yes`: the operator already agreed (scripts, CI). */
  yes?: boolean;
  /** The flag to name in the error, when it is not --yes. */
  flag?: string;
}

/**
 * Asks "<question> [y/N]" on the terminal; only y/yes goes ahead. Without a terminal nobody can
 * answer, so instead of guessing it refuses with CONFIRMATION_REQUIRED and changes nothing:
 * a script must say --yes.
 */
export async function confirm(question: string, opts: ConfirmOptions = {}): Promise<boolean> {
  if (opts.yes) return true;
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new CliError(
      `CONFIRMATION_REQUIRED: not a terminal, so nobody can answer "${question}"; pass ${opts.flag ?? '--yes'} to go ahead`,
      'CONFIRMATION_REQUIRED',
    );
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^\s*y(es)?\s*$/i.test(answer);
  } finally {
    rl.close();
  }
}
