/**
 * Condition field paths: dot paths into the request as the policy engine sees it,
 * `{ action, resource, agent, scope, context }`.
 */

/** The request as conditions see it. `agent` is the agent's name when it has one, else its id. */
export interface RequestFields {
  action: string;
  resource: string | null | undefined;
  agent: string;
  scope: Record<string, unknown>;
  context: Record<string, unknown>;
}

const SCALAR_ROOTS = new Set(['action', 'resource', 'agent']);
const OBJECT_ROOTS = new Set(['scope', 'context']);

/**
 * Segments that would walk into the prototype chain rather than the request's own data. A policy
 * must never be able to observe (or be satisfied by) `Object.prototype`, so they read as missing.
 */
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);

export const splitFieldPath = (path: string): string[] => path.split('.');

/**
 * Why a condition key is not a usable field path, or undefined when it is. Refusing unknown roots
 * matters for safety: `amount` (meant as `scope.amount`) would otherwise never be found, and with
 * `not_equals` or `not_in` a missing field satisfies the condition, silently widening the policy.
 */
export function fieldPathProblem(path: string): string | undefined {
  const segments = splitFieldPath(path);
  if (segments.some((s) => s === '')) return `field path "${path}" has an empty segment`;
  const root = segments[0]!;
  if (SCALAR_ROOTS.has(root)) {
    return segments.length === 1 ? undefined : `"${root}" is a string and has no sub-fields`;
  }
  if (OBJECT_ROOTS.has(root)) return undefined;
  return `unknown field "${root}": conditions apply to action, resource, agent, scope.<key> and context.<key>`;
}

/** The value at `segments`, or undefined when any step is missing, not an object, or forbidden. */
export function resolveFieldPath(fields: RequestFields, segments: readonly string[]): unknown {
  let current: unknown = fields;
  for (const segment of segments) {
    if (FORBIDDEN_SEGMENTS.has(segment)) return undefined;
    if (current === null || typeof current !== 'object') return undefined;
    // Own properties only: `scope.toString` must not find Object.prototype.toString.
    if (!Object.hasOwn(current, segment)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}
