import { z } from 'zod';
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

const approvalSchema = dualCaseObject({
  channels: z.array(z.string().min(1)).optional(),
  approvers: z.array(z.string().min(1)).optional(),
  quorum: z.int().min(1).optional(),
  remindAfter: z.int().positive().optional(),
  escalateAfter: z.int().positive().optional(),
  escalateTo: z.array(z.string().min(1)).optional(),
}).transform((approval): ApprovalSettings => approval);

/**
 * One policy as authored (YAML/JSON, snake_case or camelCase). The output is the normalised
 * {@link PolicyDefinition}. Optional fields also accept null, as stored rows carry them.
 */
export const policyDefinitionSchema = dualCaseObject({
  id: z.string().min(1).nullish(),
  name: z.string().trim().min(1),
  description: z.string().nullish(),
  priority: z.number().optional(),
  agent: z.string().min(1).nullish(),
  enabled: z.boolean().optional(),
  conditions: conditionsSchema,
  action: z.enum(POLICY_ACTIONS),
  scopeTemplate: z.record(z.string(), z.json()).nullish(),
  ttl: z.int().positive().nullish(),
  reason: z.string().nullish(),
  approval: approvalSchema.nullish(),
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

export type PolicyDefinitionInput = z.input<typeof policyDefinitionSchema>;
