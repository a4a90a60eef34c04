import YAML from 'yaml';
import { z } from 'zod';
import { AppError } from '../errors.js';
import { findUnstorable } from '../storable.js';
import { invalidPolicy, type PolicyIssue } from './invalid.js';
import { type PolicyParseMode, policyDefinitionSchema, storedPolicyDefinitionSchema } from './schema.js';
import type { PolicyDefinition } from './types.js';

const listSchema = {
  authored: z.array(policyDefinitionSchema),
  stored: z.array(storedPolicyDefinitionSchema),
} as const;

/**
 * Validates and normalises a policy set: a list of policies, or `{ policies: [...] }`.
 * Throws AppError('INVALID_POLICY', …, { path, issues }) naming the first offending path.
 * `stored` re-reads rows the database already holds: without the size limits of authored input.
 */
export function parsePolicySet(input: unknown, mode: PolicyParseMode = 'authored'): PolicyDefinition[] {
  const list = extractPolicyList(input);
  if (mode === 'authored') {
    // Before zod: its JSON checks recurse, and a NUL or lone surrogate would only fail in Postgres.
    const unstorable = findUnstorable(list);
    if (unstorable !== null) {
      const path = formatPath(['policies', ...unstorable.path]);
      throw invalidPolicy([{ path, message: unstorable.problem }]);
    }
  }
  const result = listSchema[mode].safeParse(list);
  if (!result.success) throw invalidPolicy(result.error.issues.flatMap((i) => flattenIssue(i, ['policies'])));
  const duplicates = findDuplicates(result.data);
  if (duplicates.length > 0) throw invalidPolicy(duplicates);
  return result.data;
}

/** Parses YAML or JSON text (JSON is YAML) into a policy set; an empty document is an empty set. */
export function parsePolicyDocument(text: string): PolicyDefinition[] {
  // uniqueKeys: a repeated key would otherwise silently override, e.g. a second `action:`.
  const lineCounter = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { uniqueKeys: true, prettyErrors: false, lineCounter });
  const syntaxError = doc.errors[0];
  if (syntaxError !== undefined) {
    const position = lineCounter.linePos(syntaxError.pos[0]);
    const where = ` (line ${position.line}, column ${position.col})`;
    const message = `Policy document is not valid YAML or JSON${where}: ${syntaxError.message}`;
    throw new AppError('INVALID_POLICY', message, {
      path: '',
      line: position.line,
      column: position.col,
      issues: [{ path: '', message: syntaxError.message }],
    });
  }
  let data: unknown;
  try {
    // Bounded alias expansion: a "billion laughs" document must not exhaust memory.
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new AppError('INVALID_POLICY', `Policy document could not be read: ${message}`, {
      path: '',
      issues: [{ path: '', message }],
    });
  }
  return data == null ? [] : parsePolicySet(data);
}

function extractPolicyList(input: unknown): unknown {
  if (Array.isArray(input)) return input;
  if (input !== null && typeof input === 'object') {
    const extra = Object.keys(input).filter((k) => k !== 'policies');
    if (extra.length > 0)
      throw invalidPolicy(extra.map((k) => ({ path: k, message: `unknown field "${k}"` })));
    if (!Object.hasOwn(input, 'policies')) {
      throw invalidPolicy([{ path: 'policies', message: 'missing "policies" list' }]);
    }
    return (input as { policies: unknown }).policies;
  }
  throw invalidPolicy([
    { path: '', message: 'expected a list of policies or an object { policies: [...] }' },
  ]);
}

/**
 * Turns zod issues into path + message pairs an author can act on: unknown keys are named by their
 * own path, and a failed "value or operators" union reports the branch that got furthest instead
 * of one line per alternative.
 */
function flattenIssue(issue: z.core.$ZodIssue, prefix: readonly PropertyKey[]): PolicyIssue[] {
  const path = [...prefix, ...issue.path];
  if (issue.code === 'unrecognized_keys') {
    const kind = path[path.length - 2] === 'conditions' ? 'operator' : 'field';
    return issue.keys.map((key) => ({
      path: formatPath([...path, key]),
      message: `unknown ${kind} "${key}"`,
    }));
  }
  if (issue.code === 'invalid_union') {
    const specific = issue.errors.filter((branch) => branch.some(isSpecific));
    if (specific.length === 1) return specific[0]!.flatMap((i) => flattenIssue(i, path));
  }
  return [{ path: formatPath(path), message: issue.message }];
}

/** A branch failing only because the value had the wrong shape altogether says nothing useful. */
const isSpecific = (issue: z.core.$ZodIssue): boolean =>
  issue.path.length > 0 || (issue.code !== 'invalid_type' && issue.code !== 'invalid_union');

/** ['policies', 2, 'conditions', 'scope.amount', 'less_than'] → policies[2].conditions.scope.amount.less_than */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? String(segment) : `.${String(segment)}`;
  }
  return out;
}

/** Names and ids identify the deciding policy in audit rows and messages, so they must be unique. */
function findDuplicates(policies: PolicyDefinition[]): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  const names = new Map<string, number>();
  const ids = new Map<string, number>();
  policies.forEach((policy, index) => {
    const sameName = names.get(policy.name);
    if (sameName !== undefined) {
      issues.push({
        path: `policies[${index}].name`,
        message: `duplicate name, also used by policies[${sameName}]`,
      });
    } else {
      names.set(policy.name, index);
    }
    if (policy.id === undefined) return;
    const sameId = ids.get(policy.id);
    if (sameId !== undefined) {
      issues.push({
        path: `policies[${index}].id`,
        message: `duplicate id, also used by policies[${sameId}]`,
      });
    } else {
      ids.set(policy.id, index);
    }
  });
  return issues;
}
