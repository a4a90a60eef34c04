import { type ApprovalCard, cardState } from '../../core/approval/card.js';
import type { Permission } from '../../core/permission.js';
import { describeScope } from '../../core/scope/index.js';
import { findAgent } from '../../store/agentRepository.js';
import type { Queryable } from '../../store/db.js';

/** An agent's current name by id (null: deleted). */
export type AgentNames = (agentId: string) => Promise<string | null>;

/** Each agent read once: for a page of cards (the web inbox), not one query per card. */
export function agentNames(db: Queryable): AgentNames {
  const known = new Map<string, Promise<string | null>>();
  return (agentId) => {
    let name = known.get(agentId);
    if (!name) {
      name = findAgent(db, agentId).then((agent) => agent?.name ?? null);
      known.set(agentId, name);
    }
    return name;
  };
}

/** The card every channel renders for a permission, as stored now (the agent's current name). */
export async function buildCard(
  db: Queryable,
  permission: Permission,
  nameOf: AgentNames = agentNames(db),
): Promise<ApprovalCard> {
  const agentName = await nameOf(permission.agentId);
  const context = Object.entries(permission.context);
  const reason = permission.context.reason;
  const ordered = [
    ...context.filter(([k]) => k === 'reason'),
    ...context.filter(([k]) => k !== 'reason'),
  ].map(([key, value]) => ({ key, value: typeof value === 'string' ? value : JSON.stringify(value) }));
  const requestedBy = permission.context.user_id;
  return {
    permissionId: permission.id,
    agentName: agentName ?? permission.agentId,
    agentId: permission.agentId,
    action: permission.action,
    resource: permission.resource,
    scopeRows: describeScope(permission.scope),
    scope: permission.scope,
    context: ordered,
    reason: typeof reason === 'string' ? reason : null,
    requestedBy: typeof requestedBy === 'string' ? requestedBy : null,
    expiresAt: permission.expiresAt,
    policyName: permission.policyName,
    state: cardState(permission),
  };
}
