import { readFileSync } from 'node:fs';
import type { Config } from '../../config.js';
import { WorkBudget } from '../../core/budget.js';
import { compilePolicies, parsePolicyDocument, parsePolicySet } from '../../core/policy/index.js';
import type { PolicyDefinition } from '../../core/policy/types.js';
import type { CheckResult } from './result.js';

/** Dangerous actions that should meet an explicit deny policy, with a sample action name each. */
export const DANGEROUS_ACTIONS: readonly { pattern: string; sample: string }[] = [
  { pattern: '*.delete', sample: 'records.delete' },
  { pattern: 'payment.*', sample: 'payment.transfer' },
  { pattern: 'db.*', sample: 'db.drop' },
  { pattern: 'shell.* / exec', sample: 'shell.exec' },
];

export function checkDenyPolicies(definitions: readonly PolicyDefinition[], source: string): CheckResult[] {
  const denies = compilePolicies(definitions).policies.filter((p) => p.action === 'deny' && !p.agent);
  return DANGEROUS_ACTIONS.map(({ pattern, sample }) => {
    const samples = pattern.includes('exec') ? [sample, 'exec'] : [sample];
    const covered = samples.some((action) =>
      denies.some(
        (p) =>
          p.matches({ action, resource: undefined, agent: '', scope: {}, context: {} }, new WorkBudget()) ===
          true,
      ),
    );
    return covered
      ? { check: `deny ${pattern}`, status: 'pass' as const, detail: `a deny policy matches (${source})` }
      : {
          check: `deny ${pattern}`,
          status: 'warn' as const,
          detail: `no deny policy matches ${samples.join(', ')} (${source})`,
        };
  });
}

/** The API's policy shape differs from the file's: keep what decides a match, for global denies. */
function fromApi(policies: Record<string, unknown>[]): PolicyDefinition[] {
  const defs: PolicyDefinition[] = [];
  for (const p of policies) {
    if (p.action !== 'deny' || p.enabled === false || (p.agent as { id?: unknown } | null)?.id) continue;
    try {
      defs.push(
        ...parsePolicySet(
          [{ name: p.name, priority: p.priority, action: 'deny', conditions: p.conditions }],
          'stored',
        ),
      );
    } catch {
      // A policy this version cannot read does not count as a deny.
    }
  }
  return defs;
}

/** Deny-policy coverage: from the running server's policies, else POLICIES_FILE, else skipped. */
export function policyChecks(
  config: Config,
  stored: Record<string, unknown>[] | null,
  serverUrl: string,
): CheckResult[] {
  if (stored) return checkDenyPolicies(fromApi(stored), `server ${serverUrl}`);
  if (config.POLICIES_FILE) {
    try {
      return checkDenyPolicies(
        parsePolicyDocument(readFileSync(config.POLICIES_FILE, 'utf8')),
        config.POLICIES_FILE,
      );
    } catch (err) {
      return [
        { check: 'policies', status: 'fail', detail: `${config.POLICIES_FILE}: ${(err as Error).message}` },
      ];
    }
  }
  return [
    {
      check: 'policies',
      status: 'skip',
      detail:
        "the server's policies could not be read and POLICIES_FILE is not set: deny policies not checked",
    },
  ];
}
