import type { WorkBudget } from '../budget.js';
import { validateScope } from '../scope/index.js';
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
 * Throws AppError('INVALID_POLICY') naming `policies[i]…` (i = index in `policies`). With
 * `options.onInvalid`, a policy that does not compile is handed to it (with the error) and kept as a
 * policy that can never be decided — for sets already stored, which must still load after an
 * upgrade tightened a bound (a larger pattern than now accepted): it fails closed, never open.
 */
export function compilePolicies(
  policies: readonly PolicyDefinition[],
  options: {
    /** Validates (throwing INVALID_POLICY) and returns each policy before it is compiled. */
    prepare?: (policy: PolicyDefinition, path: string) => PolicyDefinition;
    onInvalid?: (policy: PolicyDefinition, error: unknown) => void;
  } = {},
): CompiledPolicySet {
  const { prepare = (policy: PolicyDefinition) => policy, onInvalid } = options;
  const compiled = policies.map((policy, index) => {
    const path = `policies[${index}]`;
    const compileOne = () => {
      const prepared = prepare(policy, path);
      return { enabled: prepared.enabled, policy: compilePolicy(prepared, path) };
    };
    if (!onInvalid) return compileOne();
    try {
      return compileOne();
    } catch (error) {
      onInvalid(policy, error);
      return { enabled: policy.enabled !== false, policy: brokenPolicy(policy, path) };
    }
  });
  const ordered = compiled
    .filter((c) => c.enabled)
    .map((c) => c.policy)
    .sort((a, b) => b.priority - a.priority);
  return Object.freeze({ policies: Object.freeze(ordered) });
}

/** Conditions compiled leniently (a broken stored policy): one that does not compile is undecidable. */
type ConditionMode = 'strict' | 'lenient';

function compilePolicy(
  policy: PolicyDefinition,
  path: string,
  mode: ConditionMode = 'strict',
): CompiledPolicy {
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
    if (problem !== undefined) {
      if (mode === 'lenient') return () => undecidable(`${field} cannot be read`);
      throw invalidPolicyAt(`${path}.conditions.${field}`, problem);
    }
    const segments = splitFieldPath(field);
    // Globs are part of the format for `action` only; elsewhere `*` is an ordinary character.
    let predicates: ReturnType<typeof compileOperators>;
    try {
      predicates = compileOperators(ops, field === 'action', `${path}.conditions.${field}`);
    } catch (error) {
      if (mode === 'lenient') return () => undecidable(`${field} does not compile`);
      throw error;
    }
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

/**
 * A stored policy that no longer compiles. It never surely matches: a request it surely does
 * not match (a condition that still compiles fails) passes it by, and every other request is
 * undecidable, so its action becomes a floor (an auto_approve policy sends the request to a
 * human, a deny policy denies) — the strict reading of what it would have done. Its approval
 * settings and ttl are kept when they read (they only narrow); its scope template only when it
 * is valid, since narrowing with one that is not would refuse the request (a 400 blaming the
 * agent) instead of letting a human decide it.
 */
function brokenPolicy(policy: PolicyDefinition, path: string): CompiledPolicy {
  const reason = undecidable(`policy ${String(policy.name)} does not compile under the current limits`);
  let lenient: CompiledPolicy | null = null;
  try {
    const { scopeTemplate, ...rest } = policy;
    lenient = compilePolicy(validTemplate(scopeTemplate) ? policy : rest, path, 'lenient');
  } catch {
    // Not even its action or priority reads: it decides nothing for sure.
  }
  if (lenient) {
    const { matches } = lenient;
    return Object.freeze({
      ...lenient,
      matches: (f: RequestFields, b: WorkBudget) => (matches(f, b) === false ? false : reason),
    });
  }
  // Read defensively: the definition is whatever the row holds.
  return Object.freeze({
    name: String(policy.name),
    priority: Number.isFinite(policy.priority) ? policy.priority : 0,
    action: POLICY_ACTIONS.includes(policy.action) ? policy.action : 'deny',
    matches: () => reason,
    ...(typeof policy.id === 'string' && { id: policy.id }),
    ...(typeof policy.agent === 'string' && { agent: policy.agent }),
  });
}

function validTemplate(template: unknown): boolean {
  if (template === undefined) return false;
  try {
    validateScope(template);
    return true;
  } catch {
    return false;
  }
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
