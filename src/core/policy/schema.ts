import { z } from 'zod';
import { jsonLengthAtMost, POLICY_LIMITS as LIMIT } from '../limits.js';
import { patternError } from '../regex.js';
import { dualCaseObject } from './dual-case.js';
import { fieldPathProblem } from './field-path.js';
import {
  type ApprovalSettings,
  type ConditionOperators,
  POLICY_ACTIONS,
  type PolicyDefinition,
  type Scalar,
} from './types.js';

const scalarSchema = z.union([z.string(), z.number(), z.boolean(), z.null()]);

/** Validated when the policy is parsed, so a bad pattern never reaches storage. */
const regexSchema = z.string().superRefine((pattern, ctx) => {
  const problem = patternError(pattern);
  if (problem !== null) ctx.addIssue({ code: 'custom', message: `invalid regular expression: ${problem}` });
});

const operatorsSchema = dualCaseObject({
  equals: scalarSchema.optional(),
  notEquals: scalarSchema.optional(),
  startsWith: z.string().optional(),
  endsWith: z.string().optional(),
  contains: scalarSchema.optional(),
  matches: regexSchema.optional(),
  lessThan: z.number().optional(),
  greaterThan: z.number().optional(),
  lessThanOrEqual: z.number().optional(),
  greaterThanOrEqual: z.number().optional(),
  in: z.array(scalarSchema).optional(),
  notIn: z.array(scalarSchema).optional(),
  exists: z.boolean().optional(),
})
  // An empty operator object would be a condition that always holds: almost surely a mistake.
  // Only checked on an otherwise valid object, so `{startswith: …}` reports just the unknown operator.
  .refine((ops) => Object.keys(ops).length > 0, {
    message: 'a condition needs at least one operator',
    when: (payload) => payload.issues.length === 0,
  })
  .transform((ops): ConditionOperators => ops);

/** A plain scalar means `equals`; an object holds operators. */
const conditionSchema = z
  .union([scalarSchema, operatorsSchema], {
    error: 'expected a value (string, number, boolean, null) or an object of operators',
  })
  .transform((value): ConditionOperators => (isOperators(value) ? value : { equals: value }));

function isOperators(value: Scalar | ConditionOperators): value is ConditionOperators {
  return typeof value === 'object' && value !== null;
}

/**
 * Field paths are checked on the raw object because z.record silently drops a `__proto__` key:
 * the condition would vanish and the policy would match more than its author wrote.
 */
const conditionsSchema = z
  .unknown()
  .superRefine((raw, ctx) => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return; // the record reports it
    for (const key of Object.keys(raw)) {
      const problem = fieldPathProblem(key);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: problem });
    }
  })
  .pipe(z.record(z.string(), conditionSchema));

/**
 * Size limits (README "Limits") apply to what is authored: a policy sent to the API or read
 * from POLICIES_FILE. Rows already stored are read back without them, so a policy saved before
 * a limit existed still loads (and must be brought within the limits when it is next changed).
 */
export type PolicyParseMode = 'authored' | 'stored';

const text = (mode: PolicyParseMode, max: number) => (mode === 'authored' ? z.string().max(max) : z.string());
const int = (mode: PolicyParseMode, max: number) => (mode === 'authored' ? z.int().max(max) : z.int());

/** A size bound on a whole JSON value, checked before the (recursive) per-entry validation. */
function jsonAtMost<S extends z.ZodType>(mode: PolicyParseMode, max: number, schema: S) {
  if (mode === 'stored') return schema;
  return z
    .unknown()
    .refine((value) => jsonLengthAtMost(value, max), {
      message: `must be at most ${Math.round(max / 1024)} KiB as JSON`,
      abort: true,
    })
    .pipe(schema);
}

function approvalSchemaFor(mode: PolicyParseMode) {
  const entry = text(mode, LIMIT.approvalEntry).min(1);
  const list = mode === 'authored' ? z.array(entry).max(LIMIT.approvalListEntries) : z.array(entry);
  const delay = int(mode, LIMIT.approvalDelaySeconds).positive();
  return dualCaseObject({
    channels: list.optional(),
    approvers: list.optional(),
    quorum: int(mode, LIMIT.quorum).min(1).optional(),
    passkey: z.boolean().optional(),
    remindAfter: delay.optional(),
    escalateAfter: delay.optional(),
    escalateTo: list.optional(),
  }).transform((approval): ApprovalSettings => approval);
}

/**
 * One policy as authored (YAML/JSON, snake_case or camelCase). The output is the normalised
 * {@link PolicyDefinition}. Optional fields also accept null, as stored rows carry them.
 */
function policyDefinitionSchemaFor(mode: PolicyParseMode) {
  return dualCaseObject({
    id: text(mode, LIMIT.id).min(1).nullish(),
    name: text(mode, LIMIT.name).trim().min(1),
    description: text(mode, LIMIT.description).nullish(),
    priority: z.number().optional(),
    agent: text(mode, LIMIT.agent).min(1).nullish(),
    enabled: z.boolean().optional(),
    conditions: jsonAtMost(mode, LIMIT.conditionsJson, conditionsSchema),
    action: z.enum(POLICY_ACTIONS),
    scopeTemplate: jsonAtMost(mode, LIMIT.scopeTemplateJson, z.record(z.string(), z.json())).nullish(),
    ttl: z.int().positive().nullish(),
    reason: text(mode, LIMIT.reason).nullish(),
    approval: approvalSchemaFor(mode).nullish(),
  }).transform((p): PolicyDefinition => {
    const policy: PolicyDefinition = {
      name: p.name,
      priority: p.priority ?? 0,
      enabled: p.enabled ?? true,
      conditions: p.conditions,
      action: p.action,
    };
    // Absent and null both become "not set", so stored and authored policies compare equal.
    if (p.id != null) policy.id = p.id;
    if (p.description != null) policy.description = p.description;
    if (p.agent != null) policy.agent = p.agent;
    if (p.scopeTemplate != null) policy.scopeTemplate = p.scopeTemplate;
    if (p.ttl != null) policy.ttl = p.ttl;
    if (p.reason != null) policy.reason = p.reason;
    if (p.approval != null) policy.approval = p.approval;
    return policy;
  });
}

export const policyDefinitionSchema = policyDefinitionSchemaFor('authored');
export const storedPolicyDefinitionSchema = policyDefinitionSchemaFor('stored');

export type PolicyDefinitionInput = z.input<typeof policyDefinitionSchema>;
