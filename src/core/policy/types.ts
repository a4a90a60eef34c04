/**
 * The normalised (camelCase) shapes the policy engine works with. Input may spell every field in
 * snake_case or camelCase (see schema.ts); after parsing only these shapes exist, so the rest of
 * the system never has to care which spelling an author used.
 */

export const POLICY_ACTIONS = ['auto_approve', 'require_approval', 'deny'] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

/** Operands are JSON scalars: equality on them is `===`, so there is no deep-equality surprise. */
export type Scalar = string | number | boolean | null;

/**
 * Operators of one condition; every operator present must hold. A plain value in the input is
 * normalised to `{ equals: value }`.
 */
export interface ConditionOperators {
  equals?: Scalar;
  notEquals?: Scalar;
  startsWith?: string;
  endsWith?: string;
  contains?: Scalar;
  matches?: string;
  lessThan?: number;
  greaterThan?: number;
  lessThanOrEqual?: number;
  greaterThanOrEqual?: number;
  in?: Scalar[];
  notIn?: Scalar[];
  exists?: boolean;
}

export type OperatorName = keyof ConditionOperators;

/** Who is asked, and when to nudge or escalate, when a policy requires a human. */
export interface ApprovalSettings {
  channels?: string[];
  approvers?: string[];
  quorum?: number;
  /**
   * Step-up: an approval needs a fresh passkey confirmation on the web page. A Slack or Discord
   * Approve click then answers with the page's link instead of deciding; Deny stays one click.
   */
  passkey?: boolean;
  /** Seconds after the request before approvers are reminded. */
  remindAfter?: number;
  /** Seconds after the request before it is escalated to `escalateTo`. */
  escalateAfter?: number;
  escalateTo?: string[];
}

export interface PolicyDefinition {
  /** Present on stored policies; files usually have none. */
  id?: string;
  name: string;
  description?: string;
  /** Higher is evaluated first; ties keep input order. */
  priority: number;
  /** Agent id or name this policy is limited to; absent means every agent. */
  agent?: string;
  enabled: boolean;
  /** Field path (`action`, `scope.amount`, `context.metadata.priority`, …) → operators. */
  conditions: Record<string, ConditionOperators>;
  action: PolicyAction;
  scopeTemplate?: Record<string, unknown>;
  /** Seconds; a cap on the ttl the agent asked for. */
  ttl?: number;
  /** Text given to the agent (notably on deny). */
  reason?: string;
  approval?: ApprovalSettings;
}

/** What the policy engine looks at in a permission request. */
export interface PolicyRequest {
  agentId: string;
  agentName?: string;
  action: string;
  resource?: string | null;
  scope: Record<string, unknown>;
  context: Record<string, unknown>;
}

export interface PolicyDecision {
  decision: PolicyAction;
  /** The policy that decided, or null when none matched and the default action applied. */
  policy: { id?: string; name: string } | null;
  reason: string;
  /** Only for auto_approve / require_approval: constraints to narrow the requested scope with. */
  scopeTemplate?: Readonly<Record<string, unknown>>;
  /** Only for auto_approve / require_approval: the most seconds the permission may live. */
  ttlCap?: number;
  /** Only for require_approval. */
  approval?: Readonly<ApprovalSettings>;
}
