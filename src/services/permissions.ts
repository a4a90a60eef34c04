import { SELF_APPROVAL_TEXT } from '../core/approval/refusals.js';
import {
  type ApproverLinks,
  approverKey,
  attributeApprover,
  displayName,
  distinctApprovals,
  isRequester,
  type LinksSource,
  linksProvider,
} from '../core/approvers.js';
import type { Actor, AuditEventInput } from '../core/audit/index.js';
import { WorkBudget } from '../core/budget.js';
import type { Clock } from '../core/clock.js';
import { constantTimeEqualHex } from '../core/credentials.js';
import { AppError } from '../core/errors.js';
import { isId, newId } from '../core/ids.js';
import { REASON_MAX_CHARS } from '../core/limits.js';
import {
  type ApprovalRecord,
  assertSameRequest,
  effectivePermission,
  IDEMPOTENCY_WINDOW_MS,
  msUntilDeadline,
  type Permission,
  type PermissionStatus,
  requestFingerprint,
  TTL_DEFAULT_SECONDS,
  tokenStateError,
} from '../core/permission.js';
import {
  type ApprovalProgress,
  approvalProgress,
  quorumOf,
  type TokenState,
  tokenState,
} from '../core/permissionView.js';
import type { PolicyDecision, PolicyRequest } from '../core/policy/index.js';
import {
  applyModifications,
  checkActionDetails,
  computeTotalIncrements,
  DEFAULT_MAX_USES,
  narrowScope,
  type ScopeViolation,
  validateScope,
} from '../core/scope/index.js';
import { assertStorable } from '../core/storable.js';
import { hashToken, isTokenShape, newToken } from '../core/token.js';
import { type NewWebhookDelivery, permissionDelivery } from '../core/webhook.js';
import { assertWebhookTargetAllowed } from '../core/webhookTarget.js';
import type { Agent } from '../store/agentRepository.js';
import type { Db, Queryable } from '../store/db.js';
import {
  type ChangedPermission,
  changeStatus,
  claimMintedToken,
  expireDue,
  findByIdempotencyKey,
  findPermission,
  findPermissions,
  insertPermissions,
  listPermissions,
  type NewPermission,
  type PermissionFilter,
  recordVote,
  releaseIdempotencyKey,
  spendTokens,
  type TokenSpend,
} from '../store/permissionRepository.js';
import { insertDeliveries, insertDelivery } from '../store/webhookRepository.js';
import type { RequestOrigin } from './agents.js';
import type { AuditService } from './audit.js';
import { GroupCommit, isDataError, sqlState } from './groupCommit.js';
import { SpendableCache } from './spendableCache.js';

export interface PermissionRequestInput {
  action: string;
  resource?: string;
  scope?: Record<string, unknown>;
  context?: Record<string, unknown>;
  ttl?: number;
  tokenHash?: string;
  webhookUrl?: string;
  idempotencyKey?: string;
}

export interface RequestOutcome {
  permission: Permission;
  /** A server-minted token, present only in the response to an auto-approved request. */
  token?: string;
  /** True when an idempotencyKey matched an earlier request and nothing new was stored. */
  replayed: boolean;
}

export interface VerifyOutcome {
  valid: boolean;
  permission: Permission;
  reason?: string;
  violations?: ScopeViolation[];
}

export interface DecideInput {
  permissionId: string;
  approved: boolean;
  reason?: string;
  scopeModifications?: Record<string, unknown>;
  approver: Actor;
  origin: RequestOrigin;
}

export interface DecideOutcome {
  permission: Permission;
  /** False when the same approver repeated a decision already recorded: nothing changed. */
  changed: boolean;
  /** With a quorum: approvals so far and how many are needed. */
  approvals: { count: number; required: number };
}

export type PermissionEventType =
  | 'requested'
  | 'approved'
  | 'denied'
  | 'used'
  | 'revoked'
  | 'cancelled'
  | 'expired'
  | 'vote';

export interface PermissionChange {
  type: PermissionEventType;
  permission: Permission;
  /**
   * The webhook delivery recorded with this change (same statement or transaction), to be
   * queued now that it is committed; absent when the event sends none.
   */
  deliveryId?: string;
}

export type PermissionListener = (change: PermissionChange) => void;

export interface PolicyEvaluator {
  evaluate(request: PolicyRequest, budget?: WorkBudget): PolicyDecision;
}

export interface PermissionSettings {
  approvalTimeoutSeconds: number;
  requireActionDetails: boolean;
  /** WEBHOOK_ALLOW_PRIVATE: accept private and loopback webhookUrl targets (default: refused). */
  allowPrivateWebhooks?: boolean;
  /**
   * Identities on several platforms that are one person (one vote): APPROVER_LINKS alone, or the
   * current persons of a PersonDirectory (stored approvers too), read at each decision.
   */
  approverLinks?: LinksSource;
}

const EXPIRE_BATCH = 500;

/**
 * Group commit of the two writes every agent action pays for, new permissions (request) and
 * spent uses (use): statements in flight at once on Postgres, and the most calls one statement
 * carries. A lone call is written at once; under load, calls that arrive while statements are
 * running go together in the next one, so the database sees fewer, larger commits, and uses of
 * one hot permission queue here instead of on its row lock. PGlite runs one statement at a time.
 */
const WRITES_IN_FLIGHT = 2;
const WRITE_BATCH_MAX = 128;
/**
 * Reads by id (verify, use, get) are grouped the same way: one SELECT for the ids asked for while
 * the previous one runs. One at a time did best (bench, verify and use, interleaved runs: 1 in
 * flight 3,413 / 3,950 verifies/s, 2 → 2,507 / 3,600, 4 → 2,578 / 2,669): each statement costs
 * the server a socket write that wakes a database process, and fewer, larger groups mean fewer.
 */
const READS_IN_FLIGHT = 1;
const DEADLOCK_DETECTED = '40P01';

/** The self-approval ban's refusal (one wording for every channel). */
export const SELF_APPROVAL = SELF_APPROVAL_TEXT;

/**
 * The permission lifecycle (DESIGN §4–§6): request → policy → (approval) → one-time token →
 * verify/use within scope → used/expired/revoked. Every state change is a compare-and-swap with
 * its audit row in the same statement or transaction; listeners (chat, webhooks, waiters) are
 * told only after the change committed.
 */
export class PermissionService {
  private readonly listeners: PermissionListener[] = [];
  /** A cached value's getter: request, verify and use never read it; decide and progress do. */
  private readonly links: () => ApproverLinks;
  /** Each request or use answers only once its own write is committed. */
  private readonly inserts: GroupCommit<NewPermission, boolean>;
  private readonly spends: GroupCommit<TokenSpend, Permission | null>;
  private readonly reads: GroupCommit<string, Permission | null>;
  /** Approved permissions seen a moment ago, so use can skip its read (see SpendableCache). */
  private readonly spendable = new SpendableCache();

  constructor(
    private readonly db: Db,
    private readonly audit: AuditService,
    private readonly policies: PolicyEvaluator,
    private readonly clock: Clock,
    private readonly settings: PermissionSettings,
  ) {
    this.links = linksProvider(settings.approverLinks);
    const grouping = {
      gatherTurn: true,
      maxInFlight: db.kind === 'pglite' ? 1 : WRITES_IN_FLIGHT,
      maxBatch: WRITE_BATCH_MAX,
      causedByData: isDataError,
    };
    this.inserts = new GroupCommit<NewPermission, boolean>({
      write: (news) => insertPermissions(db, news),
      ...grouping,
    });
    this.spends = new GroupCommit<TokenSpend, Permission | null>({
      write: (uses) => spendTokens(db, uses),
      ...grouping,
      // A group locks its rows in id order, so groups never deadlock one another; another
      // statement locking several rows (an expiry sweep at the boundary) still could, and
      // Postgres then aborts one side: the halves are retried, as for a refused item.
      causedByData: (err) => isDataError(err) || sqlState(err) === DEADLOCK_DETECTED,
    });
    this.reads = new GroupCommit<string, Permission | null>({
      write: (ids) => findPermissions(db, ids),
      gatherTurn: true,
      maxInFlight: db.kind === 'pglite' ? 1 : READS_IN_FLIGHT,
      maxBatch: WRITE_BATCH_MAX,
      // A read that failed failed for all: no id can make a SELECT by ids fail.
      causedByData: () => false,
    });
  }

  onChange(listener: PermissionListener): void {
    this.listeners.push(listener);
  }

  private emit(type: PermissionEventType, permission: Permission, delivery?: { id: string } | null): void {
    const change: PermissionChange = delivery
      ? { type, permission, deliveryId: delivery.id }
      : { type, permission };
    // Revoked, used, expired (an erasure revokes what it touches): no copy outlives the change.
    if (type !== 'requested' && type !== 'approved') this.spendable.forget(permission.id);
    for (const listener of this.listeners) listener(change);
  }

  async request(agent: Agent, input: PermissionRequestInput, origin: RequestOrigin): Promise<RequestOutcome> {
    const requestedScope = input.scope ?? {};
    validateScopeAt(requestedScope, 'scope');
    if (input.webhookUrl)
      assertWebhookTargetAllowed(input.webhookUrl, this.settings.allowPrivateWebhooks ?? false);
    const context = input.context ?? {};

    // Only requests with a key need a fingerprint: the others pay nothing for it.
    const requestHash = input.idempotencyKey ? requestFingerprint(input) : null;
    if (input.idempotencyKey && requestHash) {
      const earlier = await this.findReplay(agent.id, input.idempotencyKey);
      if (earlier) return { permission: assertSameReplay(earlier, input, requestHash), replayed: true };
    }

    // One work budget for the policy conditions and the narrowing: the request path's matching
    // work stays within one bound however the agent shapes its scope and context.
    const work = new WorkBudget();
    // ak_test_ keys exist for development: every request is approved and nobody is notified.
    const decision: PolicyDecision =
      agent.environment === 'test'
        ? { decision: 'auto_approve', policy: null, reason: 'Test agent key: auto-approved' }
        : this.policies.evaluate(
            {
              agentId: agent.id,
              agentName: agent.name,
              action: input.action,
              resource: input.resource ?? null,
              scope: requestedScope,
              context,
            },
            work,
          );

    const now = this.clock.now();
    const scope = decision.scopeTemplate
      ? atPath('scope', () => narrowScope(requestedScope, { ...decision.scopeTemplate }, work))
      : requestedScope;
    validateScopeAt(scope, 'scope');
    const maxUses = typeof scope.max_uses === 'number' ? scope.max_uses : DEFAULT_MAX_USES;
    const ttl = Math.min(input.ttl ?? TTL_DEFAULT_SECONDS, decision.ttlCap ?? Number.POSITIVE_INFINITY);

    let token: string | undefined;
    let tokenHash = input.tokenHash ?? null;
    if (decision.decision === 'auto_approve' && !tokenHash) {
      token = newToken();
      tokenHash = hashToken(token);
    }

    const status: PermissionStatus =
      decision.decision === 'auto_approve' ? 'approved' : decision.decision === 'deny' ? 'denied' : 'pending';
    const policyActor: Actor = decision.policy
      ? { type: 'policy', id: decision.policy.id, name: decision.policy.name }
      : { type: 'policy', name: agent.environment === 'test' ? 'test-agent' : 'default' };
    const expiresAt = new Date(
      now.getTime() +
        (status === 'pending' ? this.settings.approvalTimeoutSeconds : status === 'approved' ? ttl : 0) *
          1000,
    );

    const permission: Permission = {
      id: newId('permission'),
      agentId: agent.id,
      action: input.action,
      resource: input.resource ?? null,
      requestedScope,
      scope,
      context,
      status,
      ttlSeconds: ttl,
      policyId: decision.policy?.id ?? null,
      policyName: decision.policy?.name ?? null,
      decisionReason: status === 'pending' ? null : decision.reason,
      decidedBy: status === 'pending' ? null : policyActor,
      decidedAt: status === 'pending' ? null : now,
      expiresAt,
      tokenHash,
      clientToken: Boolean(input.tokenHash),
      maxUses,
      usesRemaining: status === 'approved' ? maxUses : 0,
      totals: {},
      approval: decision.approval ? { ...decision.approval } : null,
      approvals: [],
      webhookUrl: input.webhookUrl ?? null,
      approvalUrl: null,
      idempotencyKey: input.idempotencyKey ?? null,
      requestHash,
      createdAt: now,
      updatedAt: now,
      lastUsedAt: null,
    };

    const events: AuditEventInput[] = [
      {
        ...this.eventBase(permission, origin),
        type: 'request',
        details: {
          action: permission.action,
          resource: permission.resource,
          requestedScope,
          context,
          ttl,
          clientToken: permission.clientToken,
        },
      },
    ];
    if (status !== 'pending') {
      events.push({
        ...this.eventBase(permission, origin),
        actor: policyActor,
        type: status === 'approved' ? 'approve' : 'deny',
        details: { reason: decision.reason, scope, expiresAt: expiresAt.toISOString(), maxUses },
      });
    }

    // The decision's webhook, in the same statement: no crash after the commit can lose it.
    const delivery = permissionDelivery(status, permission, agentWebhookUrl(agent), now);
    const inserted = await this.inserts.submit({
      permission,
      events: events.map((e) => this.audit.build(e)),
      delivery,
    });
    if (!inserted) {
      // Lost a race with the same idempotency key: answer with the winner.
      const earlier = input.idempotencyKey ? await this.findReplay(agent.id, input.idempotencyKey) : null;
      if (!earlier || !requestHash)
        throw new AppError('CONFLICT', 'A request with this idempotencyKey is being processed; retry');
      return { permission: assertSameReplay(earlier, input, requestHash), replayed: true };
    }
    this.spendable.remember(permission, now.getTime());
    this.emit(status === 'pending' ? 'requested' : status, permission, delivery);
    return { permission, token, replayed: false };
  }

  private async findReplay(agentId: string, key: string): Promise<Permission | null> {
    const earlier = await findByIdempotencyKey(this.db, agentId, key);
    if (!earlier) return null;
    if (this.clock.now().getTime() - earlier.createdAt.getTime() < IDEMPOTENCY_WINDOW_MS) return earlier;
    await releaseIdempotencyKey(this.db, earlier.id);
    return null;
  }

  /**
   * Reads a permission. For its own agent, after a human approval of a request that sent no
   * token commitment, the first read mints the token and returns it — once. The token is never
   * stored; only its hash, set by a compare-and-swap so two concurrent readers cannot both get one.
   */
  async get(
    principal: { agent: Agent } | { operator: true },
    id: string,
    origin: RequestOrigin,
  ): Promise<{ permission: Permission; token?: string }> {
    // Expired the moment its deadline passes, so an expired grant is never collected either.
    const permission = effectivePermission(await this.find(principal, id), this.clock.now());
    if ('agent' in principal && permission.status === 'approved' && permission.tokenHash === null) {
      const token = newToken();
      const hash = hashToken(token);
      const claimed = await this.db.transaction(async (tx) => {
        if (!(await claimMintedToken(tx, permission.id, permission.agentId, hash, this.clock.now())))
          return false;
        await this.audit.append(tx, {
          ...this.eventBase(permission, origin),
          type: 'token_issued',
          details: {},
        });
        return true;
      });
      if (claimed) return { permission: { ...permission, tokenHash: hash }, token };
    }
    return { permission };
  }

  /**
   * What the operator sees beyond the stored fields: how far the approval got (one vote per
   * person, under the current links) and where the token stands. Never the token or its hash.
   */
  progress(permission: Permission): { approvals: ApprovalProgress; tokenState: TokenState } {
    return {
      approvals: approvalProgress(permission, this.links()),
      tokenState: tokenState(permission, this.clock.now()),
    };
  }

  async list(filter: PermissionFilter): Promise<Permission[]> {
    const now = this.clock.now();
    return (await listPermissions(this.db, filter)).map((p) => effectivePermission(p, now));
  }

  /**
   * Milliseconds until time alone changes what a read of this permission shows (its approval
   * deadline or its token's TTL), or null: waiters wake then instead of at the expiry job's run.
   */
  deadlineIn(permission: Permission): number | null {
    return msUntilDeadline(permission, this.clock.now());
  }

  /**
   * Checks a token and actionDetails against the scope without consuming anything. `admitted`
   * is the caller's rate limiter (verify/use); a refusal from it wins before any work is done.
   *
   * Answered only once its `verify` event is committed (concurrent verifies share one INSERT).
   * With a copy of the permission this instance holds (SpendableCache), the answer is decided
   * from the copy and its event is written only while the row still stands as the copy says:
   * one statement instead of a read and then a write. If the row changed meanwhile (a use, a
   * revoke, on any instance), nothing is written and the answer is decided again from a read.
   */
  async verify(
    agent: Agent,
    id: string,
    token: string,
    actionDetails: Record<string, unknown> | undefined,
    origin: RequestOrigin,
    admitted?: Promise<unknown>,
  ): Promise<VerifyOutcome> {
    const copy = await this.admittedCopy(agent, id, admitted);
    if (copy) {
      const now = this.clock.now();
      const outcome = this.verdict(effectivePermission(copy, now), token, actionDetails, now);
      if (await this.audit.recordWhile(this.verifyEvent(outcome, origin), copy)) {
        this.spendable.remember(copy, now.getTime());
        return outcome;
      }
      this.spendable.forget(id);
    }
    const now = this.clock.now();
    const permission = effectivePermission(await this.findAdmitted(agent, id, admitted), now);
    const outcome = this.verdict(permission, token, actionDetails, now);
    await this.audit.record(this.verifyEvent(outcome, origin));
    // Verified once, it is likely verified again or spent soon: the next call skips the read.
    this.spendable.remember(permission, now.getTime());
    return outcome;
  }

  private verdict(
    permission: Permission,
    token: string,
    actionDetails: Record<string, unknown> | undefined,
    now: Date,
  ): VerifyOutcome {
    const tokenProblem = this.tokenProblem(permission, token, now);
    if (tokenProblem) return { valid: false, permission, reason: tokenProblem.code };
    const violations = this.violations(permission, actionDetails, now);
    return violations.length
      ? { valid: false, permission, reason: 'SCOPE_VIOLATION', violations }
      : { valid: true, permission };
  }

  private verifyEvent(outcome: VerifyOutcome, origin: RequestOrigin): AuditEventInput {
    return {
      ...this.eventBase(outcome.permission, origin),
      type: 'verify',
      details: {
        valid: outcome.valid,
        reason: outcome.reason ?? null,
        violations: keysOf(outcome.violations),
      },
    };
  }

  /** Spends one use of the token, atomically, after checking actionDetails against the scope. */
  async use(
    agent: Agent,
    id: string,
    token: string,
    actionDetails: Record<string, unknown> | undefined,
    origin: RequestOrigin,
    admitted?: Promise<unknown>,
  ): Promise<Permission> {
    const copy = await this.admittedCopy(agent, id, admitted);
    const permission = copy ?? (await this.findAdmitted(agent, id, admitted));
    const now = this.clock.now();
    const problem = this.tokenProblem(permission, token, now);
    if (problem) return this.refuseUse(agent, token, permission, copy !== null, origin, problem, now);
    if (actionDetails === undefined && this.settings.requireActionDetails) {
      throw new AppError('VALIDATION_ERROR', 'actionDetails is required (REQUIRE_ACTION_DETAILS=true)');
    }
    const violation = scopeViolation(this.violations(permission, actionDetails, now));
    if (violation) return this.refuseUse(agent, token, permission, copy !== null, origin, violation, now);

    const event = this.audit.build({
      ...this.eventBase(permission, origin),
      type: 'use',
      details: actionDetails === undefined ? { checked: false } : { checked: true, actionDetails },
    });
    // If this use spends the last one, the statement also records the permission.used webhook.
    // Its payload is known now: once approved, only the status and uses left change, and the
    // statement writes it only when it leaves the permission 'used' with none left.
    const lastUse = permissionDelivery(
      'used',
      { ...permission, status: 'used', usesRemaining: 0 },
      agentWebhookUrl(agent),
      now,
    );
    const spent = await this.spends.submit({
      id: permission.id,
      agentId: agent.id,
      tokenHash: hashToken(token),
      now,
      increments: computeTotalIncrements(permission.scope, actionDetails),
      event,
      lastUseDelivery: lastUse,
    });
    if (spent) {
      this.spendable.remember(spent, now.getTime());
      if (spent.status === 'used') this.emit('used', spent, lastUse);
      return spent;
    }
    this.spendable.forget(id);
    // Lost to a concurrent use, an expiry or a revoke, or a cumulative cap: say which.
    const current = await this.find({ agent }, id);
    const reason =
      this.tokenProblem(current, token, this.clock.now()) ??
      scopeViolation(this.violations(current, actionDetails, this.clock.now())) ??
      new AppError('TOKEN_USED', 'The token has no uses left');
    return this.rejectUse(current, origin, reason);
  }

  /**
   * The copy of this agent's permission this instance holds, if any, once the caller's rate
   * limiter admitted the call: a copy saves the read, and the limiter's refusal still comes first.
   */
  private async admittedCopy(
    agent: Agent,
    id: string,
    admitted?: Promise<unknown>,
  ): Promise<Permission | null> {
    const copy = this.spendable.get(agent.id, id, this.clock.now().getTime());
    if (copy && admitted) await admitted;
    return copy;
  }

  /**
   * Refuses a use. A refusal is explained from the row, never from a copy that may be behind: when
   * the check ran on a copy, the row is read, and a token problem it shows (revoked, used up
   * elsewhere) comes first, as a read would have said; otherwise the copy's reason stands (its
   * token and scope are the row's: they never change once approved).
   */
  private async refuseUse(
    agent: Agent,
    token: string,
    checked: Permission,
    fromCopy: boolean,
    origin: RequestOrigin,
    reason: AppError,
    now: Date,
  ): Promise<never> {
    if (!fromCopy) return this.rejectUse(checked, origin, reason);
    const row = await this.find({ agent }, checked.id);
    return this.rejectUse(row, origin, this.tokenProblem(row, token, now) ?? reason);
  }

  private async rejectUse(permission: Permission, origin: RequestOrigin, error: AppError): Promise<never> {
    await this.audit.append(this.db, {
      ...this.eventBase(permission, origin),
      type: 'use_rejected',
      details: {
        code: error.code,
        message: error.message,
        violations: keysOf((error.details as { violations?: ScopeViolation[] })?.violations),
      },
    });
    throw error;
  }

  /** Revokes an approved (or still pending) permission: its token stops working at once. */
  async revoke(
    principal: { agent: Agent } | { operator: true },
    id: string,
    origin: RequestOrigin,
    reason?: string,
  ): Promise<Permission> {
    checkReason(reason);
    const permission = await this.find(principal, id);
    if (permission.status === 'revoked') return permission;
    const revoked = await this.db.transaction(async (tx) => {
      const now = this.clock.now();
      const changed = await changeStatus(
        tx,
        permission.id,
        ['approved', 'pending'],
        { status: 'revoked', decisionReason: reason ?? permission.decisionReason },
        now,
      );
      if (!changed) return null;
      await this.audit.append(tx, {
        ...this.eventBase(changed.permission, origin),
        type: 'revoke',
        details: { reason: reason ?? null, previousStatus: permission.status },
      });
      return {
        permission: changed.permission,
        delivery: await this.recordDelivery(tx, 'revoked', changed, now),
      };
    });
    if (!revoked) {
      const current = await this.find(principal, id);
      if (current.status === 'revoked') return current;
      throw new AppError(
        'CONFLICT',
        `The permission is ${current.status}; only approved or pending permissions can be revoked`,
        {
          status: current.status,
        },
      );
    }
    this.emit('revoked', revoked.permission, revoked.delivery);
    return revoked.permission;
  }

  /** The agent withdraws a request that is still waiting for a human. */
  async cancel(agent: Agent, id: string, origin: RequestOrigin): Promise<Permission> {
    const permission = await this.find({ agent }, id);
    const cancelled = await this.db.transaction(async (tx) => {
      const changed = await changeStatus(
        tx,
        permission.id,
        ['pending'],
        { status: 'cancelled' },
        this.clock.now(),
      );
      if (!changed) return null;
      await this.audit.append(tx, {
        ...this.eventBase(changed.permission, origin),
        type: 'cancel',
        details: {},
      });
      return changed.permission;
    });
    if (!cancelled) {
      const current = await this.find({ agent }, id);
      if (current.status === 'cancelled') return current;
      throw alreadyDecided(current);
    }
    this.emit('cancelled', cancelled);
    return cancelled;
  }

  /**
   * A human (or operator) decision. The one entry point for the operator API, Slack and Discord:
   * narrowing only, quorum of distinct approvers, a compare-and-swap on `pending`, the approver's
   * identity in the audit row of the same transaction. The same approver repeating their own
   * decision is a no-op; a conflicting late decision is ALREADY_DECIDED naming the earlier one.
   */
  async decide(input: DecideInput): Promise<DecideOutcome> {
    const id = checkPermissionId(input.permissionId);
    checkReason(input.reason);
    assertStorable(input.scopeModifications, 'scopeModifications');
    assertStorable(input.approver, 'approver');
    const now = this.clock.now();
    const links = this.links();
    // One person, one vote: the key ignores the workspace/guild and follows the person's links.
    const approver = attributeApprover(input.approver, links);
    const key = approverKey(approver, links);
    const result = await this.db.transaction(async (tx) => {
      const permission = await findPermission(tx, id, true);
      if (!permission) throw notFound(id);
      const required = quorumOf(permission);
      if (permission.status !== 'pending') {
        if (isSameDecision(permission, input, key, links)) {
          return {
            permission,
            changed: false,
            approvals: { count: permission.approvals.length, required },
            event: null,
          };
        }
        throw alreadyDecided(permission);
      }
      if (permission.expiresAt <= now)
        throw new AppError('CONFLICT', 'The request expired before this decision', { status: 'expired' });
      // The self-approval ban, for every channel: the person an agent acts for (context.user_id)
      // may not decide their own request, under any of their linked identities. The refusal is
      // audited in this transaction, which then commits; the caller gets FORBIDDEN.
      if (isRequester(permission.context.user_id, approver, links)) {
        await this.audit.append(tx, {
          ...this.eventBase(permission, input.origin),
          actor: approver,
          type: 'unauthorized_approver',
          details: { reason: SELF_APPROVAL, attempted: input.approved ? 'approve' : 'deny' },
        });
        return { refused: true as const };
      }

      if (!input.approved) {
        const denied = await changeStatus(
          tx,
          id,
          ['pending'],
          {
            status: 'denied',
            decisionReason: input.reason ?? 'Denied by approver',
            decidedBy: approver,
            decidedAt: now,
          },
          now,
        );
        if (!denied) throw alreadyDecided(permission);
        await this.audit.append(tx, {
          ...this.eventBase(denied.permission, input.origin),
          actor: approver,
          type: 'deny',
          details: { reason: input.reason ?? null },
        });
        return {
          permission: denied.permission,
          changed: true,
          approvals: { count: permission.approvals.length, required },
          event: 'denied' as const,
          delivery: await this.recordDelivery(tx, 'denied', denied, now),
        };
      }

      // Narrowing only: applyModifications refuses (SCOPE_WIDENING) anything wider than granted.
      const modifications = input.scopeModifications;
      const scope = modifications
        ? atPath('scopeModifications', () => applyModifications(permission.scope, modifications))
        : permission.scope;
      if (input.scopeModifications) validateScopeAt(scope, 'scopeModifications');
      // Compared by the key computed from each stored actor, so a vote recorded under an older
      // key (`slack:T1:U1`) or before a link was added still counts as that person's one vote.
      const prior = distinctApprovals(permission.approvals, links);
      const counted = prior.some((a) => approverKey(a.actor, links) === key);
      const approvals: ApprovalRecord[] = counted
        ? prior
        : [...prior, { key, actor: approver, at: now.toISOString() }];

      if (approvals.length < required) {
        if (counted && !input.scopeModifications) {
          return {
            permission,
            changed: false,
            approvals: { count: approvals.length, required },
            event: null,
          };
        }
        const voted = await recordVote(tx, id, approvals, scope, now);
        if (!voted) throw alreadyDecided(permission);
        await this.audit.append(tx, {
          ...this.eventBase(voted, input.origin),
          actor: approver,
          type: 'approval_vote',
          details: {
            approvals: approvals.length,
            required,
            reason: input.reason ?? null,
            scopeModifications: input.scopeModifications ?? null,
          },
        });
        return {
          permission: voted,
          changed: true,
          approvals: { count: approvals.length, required },
          event: 'vote' as const,
        };
      }

      const maxUses = typeof scope.max_uses === 'number' ? scope.max_uses : DEFAULT_MAX_USES;
      const expiresAt = new Date(now.getTime() + permission.ttlSeconds * 1000);
      const approved = await changeStatus(
        tx,
        id,
        ['pending'],
        {
          status: 'approved',
          scope,
          decisionReason: input.reason ?? 'Approved',
          decidedBy: approver,
          decidedAt: now,
          expiresAt,
          maxUses,
          usesRemaining: maxUses,
          approvals,
        },
        now,
      );
      if (!approved) throw alreadyDecided(permission);
      await this.audit.append(tx, {
        ...this.eventBase(approved.permission, input.origin),
        actor: approver,
        type: 'approve',
        details: {
          reason: input.reason ?? null,
          scope,
          scopeModifications: input.scopeModifications ?? null,
          expiresAt: expiresAt.toISOString(),
          approvers: approvals.map((a) => approverKey(a.actor, links)),
        },
      });
      return {
        permission: approved.permission,
        changed: true,
        approvals: { count: approvals.length, required },
        event: 'approved' as const,
        delivery: await this.recordDelivery(tx, 'approved', approved, now),
      };
    });
    if ('refused' in result) throw new AppError('FORBIDDEN', SELF_APPROVAL);
    if (result.event)
      this.emit(result.event, result.permission, 'delivery' in result ? result.delivery : null);
    return { permission: result.permission, changed: result.changed, approvals: result.approvals };
  }

  /**
   * Moves pending requests past their approval deadline and approved tokens past their TTL to
   * `expired` (the latter feed the unused-token rate), with an audit row each. Safe to run on
   * every instance at once: rows are claimed with SKIP LOCKED and changed by compare-and-swap.
   */
  async expireDue(): Promise<number> {
    let total = 0;
    for (;;) {
      const expired = await this.db.transaction(async (tx) => {
        const now = this.clock.now();
        const rows = await expireDue(tx, now, EXPIRE_BATCH);
        if (rows.length) {
          await this.audit.append(
            tx,
            ...rows.map(({ permission: p, previousStatus }) => ({
              ...this.eventBase(p, { actor: { type: 'system' as const } }),
              type: 'expire' as const,
              details: {
                previousStatus,
                unused: previousStatus === 'approved' && p.usesRemaining === p.maxUses,
              },
            })),
          );
        }
        // Their webhooks, in the same transaction: one statement for the batch.
        const deliveries = rows.map((r) =>
          permissionDelivery('expired', r.permission, r.agentWebhookUrl, now),
        );
        await insertDeliveries(
          tx,
          deliveries.filter((d) => d !== null),
        );
        return rows.map((r, i) => ({ permission: r.permission, delivery: deliveries[i] ?? null }));
      });
      for (const { permission, delivery } of expired) this.emit('expired', permission, delivery);
      total += expired.length;
      if (expired.length < EXPIRE_BATCH) return total;
    }
  }

  /**
   * find(), while the caller's rate limiter answers in parallel (no added latency). Both are
   * awaited and the limiter's refusal wins over the lookup's outcome, so an agent over its limit
   * gets 429 whatever id it sends.
   */
  private async findAdmitted(agent: Agent, id: string, admitted?: Promise<unknown>): Promise<Permission> {
    if (!admitted) return this.find({ agent }, id);
    const [found, limit] = await Promise.allSettled([this.find({ agent }, id), admitted]);
    if (limit.status === 'rejected') throw limit.reason;
    if (found.status === 'rejected') throw found.reason;
    return found.value;
  }

  /**
   * Records, in the caller's transaction, the webhook delivery of a change (when it has a
   * target), so it commits or rolls back with the change itself.
   */
  private async recordDelivery(
    tx: Queryable,
    event: PermissionEventType,
    changed: ChangedPermission,
    now: Date,
  ): Promise<NewWebhookDelivery | null> {
    const delivery = permissionDelivery(event, changed.permission, changed.agentWebhookUrl, now);
    if (delivery) await insertDelivery(tx, delivery);
    return delivery;
  }

  /** An agent sees only its own permissions: another agent's id is indistinguishable from none. */
  private async find(principal: { agent: Agent } | { operator: true }, id: string): Promise<Permission> {
    const permission = await this.reads.submit(checkPermissionId(id));
    if (!permission) throw notFound(id);
    if ('agent' in principal && permission.agentId !== principal.agent.id) throw notFound(id);
    return permission;
  }

  private tokenProblem(permission: Permission, token: string, now: Date): AppError | null {
    if (
      !isTokenShape(token) ||
      permission.tokenHash === null ||
      !constantTimeEqualHex(hashToken(token), permission.tokenHash)
    ) {
      return new AppError('INVALID_TOKEN', 'The token does not match this permission');
    }
    // A pending request past its deadline is TOKEN_EXPIRED, not "still waiting for approval".
    return tokenStateError(effectivePermission(permission, now), now);
  }

  private violations(
    permission: Permission,
    actionDetails: Record<string, unknown> | undefined,
    now: Date,
  ): ScopeViolation[] {
    return checkActionDetails(permission.scope, actionDetails ?? {}, { now, totals: permission.totals });
  }

  private eventBase(permission: Permission, origin: RequestOrigin) {
    return {
      actor: origin.actor,
      agentId: permission.agentId,
      permissionId: permission.id,
      ip: origin.ip ?? null,
      userAgent: origin.userAgent ?? null,
    };
  }
}

/**
 * A replay must be the same request (IDEMPOTENCY_KEY_REUSED otherwise) and carry the token
 * commitment of the original: the same idempotencyKey with another tokenHash would hand the
 * caller a token that cannot work (e.g. a second process retrying).
 */
function assertSameReplay(
  earlier: Permission,
  input: PermissionRequestInput,
  requestHash: string,
): Permission {
  assertSameRequest(earlier, requestHash, input);
  if (input.tokenHash && earlier.clientToken && earlier.tokenHash !== input.tokenHash) {
    throw new AppError('CONFLICT', 'This idempotencyKey was already used with a different token commitment', {
      permissionId: earlier.id,
    });
  }
  return earlier;
}

function isSameDecision(
  permission: Permission,
  input: DecideInput,
  key: string,
  links: ApproverLinks,
): boolean {
  const sameOutcome = input.approved ? permission.status === 'approved' : permission.status === 'denied';
  const byThisApprover =
    (permission.decidedBy !== null && approverKey(permission.decidedBy, links) === key) ||
    permission.approvals.some((a) => approverKey(a.actor, links) === key);
  return sameOutcome && byThisApprover && !input.scopeModifications;
}

function alreadyDecided(permission: Permission): AppError {
  const by = permission.decidedBy;
  const who = by ? displayName(by) : null;
  return new AppError(
    'ALREADY_DECIDED',
    `The request is already ${permission.status}${who ? ` by ${who}` : ''}`,
    {
      status: permission.status,
      decidedBy: permission.decidedBy,
      decidedAt: permission.decidedAt?.toISOString() ?? null,
    },
  );
}

function scopeViolation(violations: ScopeViolation[]): AppError | null {
  const first = violations[0];
  if (!first) return null;
  return new AppError('SCOPE_VIOLATION', `Scope violation on ${first.key}: ${first.message}`, {
    key: first.key,
    violations: violations.map(({ key, field, message, limit }) => ({ key, field, message, limit })),
  });
}

function keysOf(violations: ScopeViolation[] | undefined): string[] | null {
  return violations ? violations.map((v) => v.key) : null;
}

/** Reasons come from chat forms as well as the API: one bound and one character check for both. */
function checkReason(reason: string | undefined): void {
  if (reason === undefined) return;
  if (reason.length > REASON_MAX_CHARS) {
    const message = `must be at most ${REASON_MAX_CHARS} characters`;
    throw new AppError('VALIDATION_ERROR', `Invalid request: reason: ${message}`, {
      path: 'reason',
      issues: [{ path: 'reason', message }],
    });
  }
  assertStorable(reason, 'reason');
}

function validateScopeAt(scope: unknown, prefix: string): asserts scope is Record<string, unknown> {
  atPath(prefix, () => validateScope(scope));
}

/** Runs a scope operation, naming the body field in its VALIDATION_ERROR path (`scope.x_pattern`). */
function atPath<T>(prefix: string, run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (err instanceof AppError && err.code === 'VALIDATION_ERROR') {
      const path = (err.details as { path?: string } | undefined)?.path;
      throw new AppError('VALIDATION_ERROR', err.message, { path: path ? `${prefix}.${path}` : prefix });
    }
    throw err;
  }
}

/** The agent's own webhook target, the one its requests' events go to unless they name one. */
function agentWebhookUrl(agent: Agent): string | null {
  return agent.status === 'active' ? agent.webhookUrl : null;
}

function checkPermissionId(id: string): string {
  if (!isId('permission', id)) throw notFound(id);
  return id;
}

/** Another agent's permission id and an unknown one get the same answer. */
export const permissionNotFound = (id: string) =>
  new AppError('NOT_FOUND', `Permission ${id.slice(0, 64)} not found`);
const notFound = permissionNotFound;
