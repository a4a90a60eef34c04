import { WorkBudget } from '../budget.js';
import { narrowScope } from '../scope/index.js';
import type { CompiledPolicy, CompiledPolicySet } from './compile.js';
import type { RequestFields } from './field-path.js';
import type { PolicyAction, PolicyDecision, PolicyRequest } from './types.js';

/**
 * Decides a request: the first enabled policy (by priority) that applies to this agent and whose
 * conditions all hold wins; when none does, `defaultAction` applies with `policy: null`.
 * Pure and synchronous: no I/O, no clock. Regex and glob work is charged to `budget` (one per
 * request: the caller may share it with the narrowing that follows).
 *
 * A policy whose conditions cannot be decided from the request's values (verdict.ts: "5,000"
 * under `less_than`, a list under `ends_with`, a string too long to match) "may apply". The
 * request must never be auto-approved, nor escape a deny, because of the shape of a value, so
 * evaluation goes on to the first policy that surely applies (or the default) and then settles
 * on the strictest of it and every "may apply" passed on the way (deny > require_approval >
 * auto_approve), and never below require_approval: a person decides what the rules could not.
 */
export function evaluate(
  set: CompiledPolicySet,
  request: PolicyRequest,
  defaultAction: PolicyAction = 'require_approval',
  budget: WorkBudget = new WorkBudget(),
): PolicyDecision {
  const fields: RequestFields = {
    action: request.action,
    resource: request.resource,
    agent: request.agentName ?? request.agentId,
    scope: request.scope,
    context: request.context,
  };
  const mayApply: { policy: CompiledPolicy; why: string }[] = [];
  for (const policy of set.policies) {
    if (!appliesToAgent(policy, request)) continue;
    const verdict = policy.matches(fields, budget);
    if (verdict === true) return settle(mayApply, decisionOf(policy), budget);
    if (verdict !== false) mayApply.push({ policy, why: verdict.undecidable });
  }
  return settle(
    mayApply,
    {
      decision: defaultAction,
      policy: null,
      reason: `No policy matched; default action ${defaultAction}`,
    },
    budget,
  );
}

/** An agent-specific policy names the agent by id or by name; others apply to every agent. */
const appliesToAgent = (policy: CompiledPolicy, request: PolicyRequest): boolean =>
  policy.agent === undefined || policy.agent === request.agentId || policy.agent === request.agentName;

const policyRef = (policy: CompiledPolicy): { id?: string; name: string } =>
  policy.id !== undefined ? { id: policy.id, name: policy.name } : { name: policy.name };

function decisionOf(policy: CompiledPolicy): PolicyDecision {
  const decision: PolicyDecision = {
    decision: policy.action,
    policy: policyRef(policy),
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

/**
 * The decision once `mayApply` policies were passed on the way to `reached` (the first policy
 * that surely applies, or the default). Deny if any of them denies; otherwise a person decides,
 * under every scope template and ttl cap involved (narrowing with more templates only restricts)
 * and the approval settings of the first that has them.
 */
function settle(
  mayApply: readonly { policy: CompiledPolicy; why: string }[],
  reached: PolicyDecision,
  budget: WorkBudget,
) {
  const first = mayApply[0];
  if (!first) return reached;
  const denying = mayApply.find((m) => m.policy.action === 'deny');
  if (denying) {
    return {
      decision: 'deny' as const,
      policy: policyRef(denying.policy),
      reason: `Policy "${denying.policy.name}" may apply (${denying.why}) and denies: denied to be safe`,
    };
  }
  if (reached.decision === 'deny') return reached;
  const decisions = [...mayApply.map((m) => decisionOf(m.policy)), reached];
  const decision: PolicyDecision = {
    decision: 'require_approval',
    policy: policyRef(first.policy),
    reason: `Policy "${first.policy.name}" could not be evaluated (${first.why}): a person must decide`,
  };
  let template: Readonly<Record<string, unknown>> | undefined;
  for (const d of decisions) {
    if (d.scopeTemplate === undefined) continue;
    template =
      template === undefined ? d.scopeTemplate : narrowScope({ ...template }, { ...d.scopeTemplate }, budget);
  }
  if (template !== undefined) decision.scopeTemplate = template;
  const ttls = decisions.flatMap((d) => (d.ttlCap !== undefined ? [d.ttlCap] : []));
  if (ttls.length > 0) decision.ttlCap = Math.min(...ttls);
  const approval = decisions.find((d) => d.approval !== undefined)?.approval;
  if (approval !== undefined) decision.approval = approval;
  return decision;
}
