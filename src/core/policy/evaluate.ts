import type { CompiledPolicy, CompiledPolicySet } from './compile.js';
import type { RequestFields } from './field-path.js';
import type { PolicyAction, PolicyDecision, PolicyRequest } from './types.js';

/**
 * Decides a request: the first enabled policy (by priority) that applies to this agent and whose
 * conditions all hold wins; when none does, `defaultAction` applies with `policy: null`.
 * Pure and synchronous: no I/O, no clock.
 */
export function evaluate(
  set: CompiledPolicySet,
  request: PolicyRequest,
  defaultAction: PolicyAction = 'require_approval',
): PolicyDecision {
  const fields: RequestFields = {
    action: request.action,
    resource: request.resource,
    agent: request.agentName ?? request.agentId,
    scope: request.scope,
    context: request.context,
  };
  for (const policy of set.policies) {
    if (!appliesToAgent(policy, request)) continue;
    if (policy.matches(fields)) return decisionOf(policy);
  }
  return {
    decision: defaultAction,
    policy: null,
    reason: `No policy matched; default action ${defaultAction}`,
  };
}

/** An agent-specific policy names the agent by id or by name; others apply to every agent. */
const appliesToAgent = (policy: CompiledPolicy, request: PolicyRequest): boolean =>
  policy.agent === undefined || policy.agent === request.agentId || policy.agent === request.agentName;

function decisionOf(policy: CompiledPolicy): PolicyDecision {
  const decision: PolicyDecision = {
    decision: policy.action,
    policy: policy.id !== undefined ? { id: policy.id, name: policy.name } : { name: policy.name },
    reason: policy.reason ?? `Matched policy "${policy.name}"`,
  };
  // A denial grants nothing, so scope, ttl and approval settings only travel with the others.
  if (policy.action !== 'deny') {
    if (policy.scopeTemplate !== undefined) decision.scopeTemplate = policy.scopeTemplate;
    if (policy.ttl !== undefined) decision.ttlCap = policy.ttl;
  }
  if (policy.action === 'require_approval' && policy.approval !== undefined)
    decision.approval = policy.approval;
  return decision;
}
