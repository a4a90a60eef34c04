import type { WorkBudget } from '../budget.js';
import { fieldPathProblem, type RequestFields, resolveFieldPath, splitFieldPath } from './field-path.js';
import { invalidPolicyAt } from './invalid.js';
import { compileOperators } from './operators.js';
import { type ApprovalSettings, POLICY_ACTIONS, type PolicyAction, type PolicyDefinition } from './types.js';
import { undecidable, type Verdict } from './verdict.js';

/** A policy ready to evaluate: its conditions are one closure, its data frozen. */
export interface CompiledPolicy {
  readonly id?: string;
  readonly name: string;
  readonly priority: number;
  readonly agent?: string;
  readonly action: PolicyAction;
  readonly reason?: string;
  readonly scopeTemplate?: Readonly<Record<string, unknown>>;
  readonly ttl?: number;
  readonly approval?: Readonly<ApprovalSettings>;
  /**
   * True when every condition holds, false when one fails, undecidable when none fails but one
   * cannot be decided from the request's values (the agent restriction is checked separately).
   * Regex and glob matching is charged to `budget`.
   */
  readonly matches: (fields: RequestFields, budget: WorkBudget) => Verdict;
}

/** Enabled policies in evaluation order. Build once per policy-set version and share it. */
export interface CompiledPolicySet {
  readonly policies: readonly CompiledPolicy[];
}

/**
 * Compiles a policy set once, so evaluating a request is only closure calls: regexes and globs
 * become RE2 programs, field paths are pre-split. Disabled policies are compiled too (a broken
 * one must not wait to fail until someone enables it) and then left out. Order is priority
 * descending; Array.prototype.sort is stable, so ties keep the input order.
 *
 * Throws AppError('INVALID_POLICY') naming `policies[i]…` (i = index in `policies`).
 */
export function compilePolicies(policies: readonly PolicyDefinition[]): CompiledPolicySet {
  const compiled = policies.map((policy, index) => ({
    enabled: policy.enabled,
    policy: compilePolicy(policy, `policies[${index}]`),
  }));
  const ordered = compiled
    .filter((c) => c.enabled)
    .map((c) => c.policy)
    .sort((a, b) => b.priority - a.priority);
  return Object.freeze({ policies: Object.freeze(ordered) });
}

function compilePolicy(policy: PolicyDefinition, path: string): CompiledPolicy {
  // Stored policies may reach here without the schema: the fields evaluation relies on are
  // re-checked so a corrupted row fails loudly instead of deciding something odd.
  if (!Number.isFinite(policy.priority)) throw invalidPolicyAt(`${path}.priority`, 'expected a number');
  if (!POLICY_ACTIONS.includes(policy.action)) {
    throw invalidPolicyAt(`${path}.action`, `expected one of ${POLICY_ACTIONS.join(', ')}`);
  }
  if (policy.conditions === null || typeof policy.conditions !== 'object') {
    throw invalidPolicyAt(`${path}.conditions`, 'expected an object');
  }
  const conditions = Object.entries(policy.conditions).map(([field, ops]) => {
    const problem = fieldPathProblem(field);
    if (problem !== undefined) throw invalidPolicyAt(`${path}.conditions.${field}`, problem);
    const segments = splitFieldPath(field);
    // Globs are part of the format for `action` only; elsewhere `*` is an ordinary character.
    const predicates = compileOperators(ops, field === 'action', `${path}.conditions.${field}`);
    return (fields: RequestFields, budget: WorkBudget): Verdict => {
      const value = resolveFieldPath(fields, segments);
      let open: Verdict = true;
      for (const holds of predicates) {
        const verdict = holds(value, budget);
        if (verdict === false) return false;
        if (verdict !== true && open === true) open = undecidable(`${field} ${verdict.undecidable}`);
      }
      return open;
    };
  });

  const compiled: CompiledPolicy = {
    name: policy.name,
    priority: policy.priority,
    action: policy.action,
    matches: (fields, budget) => {
      // Conditions in order; a failing one settles it, so later ones spend nothing.
      let open: Verdict = true;
      for (const holds of conditions) {
        const verdict = holds(fields, budget);
        if (verdict === false) return false;
        if (verdict !== true && open === true) open = verdict;
      }
      return open;
    },
    ...(policy.id !== undefined && { id: policy.id }),
    ...(policy.agent !== undefined && { agent: policy.agent }),
    ...(policy.reason !== undefined && { reason: policy.reason }),
    ...(policy.ttl !== undefined && { ttl: policy.ttl }),
    // Copied and frozen: decisions hand these out, and one caller's edit must not leak into the
    // next request's decision.
    ...(policy.scopeTemplate !== undefined && {
      scopeTemplate: deepFreeze(structuredClone(policy.scopeTemplate)),
    }),
    ...(policy.approval !== undefined && { approval: deepFreeze(structuredClone(policy.approval)) }),
  };
  return Object.freeze(compiled);
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
