/** The policy engine: parse (validate + normalise), compile once per version, evaluate per request. */
export { type CompiledPolicy, type CompiledPolicySet, compilePolicies } from './compile.js';
export { evaluate } from './evaluate.js';
export { compileGlob, isGlob } from './glob.js';
export type { PolicyIssue } from './invalid.js';
export { formatPath, parsePolicyDocument, parsePolicySet } from './parse.js';
export {
  agentReferences,
  changedFields,
  matchPolicies,
  type PolicyPlan,
  planPolicySet,
} from './plan.js';
export {
  type PolicyDefinitionInput,
  type PolicyParseMode,
  policyDefinitionSchema,
  storedPolicyDefinitionSchema,
} from './schema.js';
export {
  type ApprovalSettings,
  type ConditionOperators,
  type OperatorName,
  POLICY_ACTIONS,
  type PolicyAction,
  type PolicyDecision,
  type PolicyDefinition,
  type PolicyRequest,
  type Scalar,
} from './types.js';
