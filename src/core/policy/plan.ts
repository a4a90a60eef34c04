import { canonicalJson } from '../audit/event.js';
import type { PolicyDefinition } from './types.js';

/** A stored policy as far as planning a replacement needs it. */
export interface PlannedStoredPolicy {
  id: string;
  name: string;
  definition: PolicyDefinition;
}

/** What replacing the whole set does, policy by policy (by name, with ids where they exist). */
export interface PolicyPlan {
  /** New policies; `id` once they are stored (absent on a dry run). */
  added: { name: string; id?: string }[];
  /** Stored policies the set continues with other content: the fields that differ (camelCase). */
  changed: { id: string; name: string; previousName?: string; fields: string[] }[];
  removed: { id: string; name: string }[];
  unchanged: { id: string; name: string }[];
  /**
   * The policies kept are in another relative order. Order only breaks priority ties, yet it is
   * part of the set, so a reorder alone is a change worth saying.
   */
  reordered: boolean;
}

/**
 * Which stored policy each desired definition continues (keeping its id): the one it names by
 * id, else the one with its name. A stored policy is continued at most once.
 */
export function matchPolicies<T extends PlannedStoredPolicy>(
  current: readonly T[],
  desired: readonly PolicyDefinition[],
): { definition: PolicyDefinition; previous: T | undefined }[] {
  const byId = new Map(current.map((r) => [r.id, r]));
  const byName = new Map(current.map((r) => [r.name, r]));
  const claimed = new Set<string>();
  // Ids first, so a policy renamed by id is not taken by a newcomer with its old name.
  const byIdMatch = desired.map((definition) => {
    const match = definition.id !== undefined ? byId.get(definition.id) : undefined;
    if (match) claimed.add(match.id);
    return match;
  });
  return desired.map((definition, index) => {
    let match = byIdMatch[index];
    if (!match) {
      const candidate = byName.get(definition.name);
      if (candidate && !claimed.has(candidate.id)) {
        claimed.add(candidate.id);
        match = candidate;
      }
    }
    return { definition, previous: match };
  });
}

/** Top-level definition fields that differ, ids aside, sorted. */
export function changedFields(before: PolicyDefinition, after: PolicyDefinition): string[] {
  const a = before as unknown as Record<string, unknown>;
  const b = after as unknown as Record<string, unknown>;
  return [...new Set([...Object.keys(a), ...Object.keys(b)])]
    .filter((k) => k !== 'id' && canonicalJson(a[k]) !== canonicalJson(b[k]))
    .sort();
}

/**
 * The diff from the stored set (in stored order) to the desired one, with the same matching the
 * replacement uses, so the plan says exactly which ids survive. Pure: no ids are minted here.
 */
export function planPolicySet(
  current: readonly PlannedStoredPolicy[],
  desired: readonly PolicyDefinition[],
): PolicyPlan {
  const plan: PolicyPlan = { added: [], changed: [], removed: [], unchanged: [], reordered: false };
  const kept = new Set<string>();
  const storedIndex = new Map(current.map((r, i) => [r.id, i]));
  let lastIndex = -1;
  for (const { definition, previous } of matchPolicies(current, desired)) {
    if (!previous) {
      plan.added.push({ name: definition.name });
      continue;
    }
    kept.add(previous.id);
    const index = storedIndex.get(previous.id) ?? 0;
    if (index < lastIndex) plan.reordered = true;
    lastIndex = Math.max(lastIndex, index);
    const fields = changedFields(previous.definition, definition);
    if (fields.length === 0) {
      plan.unchanged.push({ id: previous.id, name: definition.name });
    } else {
      plan.changed.push({
        id: previous.id,
        name: definition.name,
        ...(previous.name !== definition.name && { previousName: previous.name }),
        fields,
      });
    }
  }
  plan.removed = current.filter((r) => !kept.has(r.id)).map((r) => ({ id: r.id, name: r.name }));
  return plan;
}

/** Operators whose operands name agents outright (patterns and prefixes are not names). */
const NAMING_OPERATORS = ['equals', 'notEquals', 'in', 'notIn'] as const;

/**
 * The agents a policy names, by id or name: its `agent` restriction and the literal operands of
 * its conditions on `agent`. A name no agent has is most likely a typo: the policy never applies
 * (or, under not_equals / not_in, applies to everyone).
 */
export function agentReferences(definition: PolicyDefinition): string[] {
  const refs = new Set<string>();
  if (definition.agent !== undefined) refs.add(definition.agent);
  const condition = definition.conditions.agent;
  if (condition) {
    for (const op of NAMING_OPERATORS) {
      const operand = condition[op];
      for (const value of Array.isArray(operand) ? operand : [operand]) {
        if (typeof value === 'string') refs.add(value);
      }
    }
  }
  return [...refs];
}
