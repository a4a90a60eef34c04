import { readFile } from 'node:fs/promises';
import { type Actor, canonicalJson } from '../core/audit/index.js';
import type { WorkBudget } from '../core/budget.js';
import type { Clock } from '../core/clock.js';
import { AppError } from '../core/errors.js';
import { isId, newId } from '../core/ids.js';
import { TTL_DEFAULT_SECONDS } from '../core/permission.js';
import {
  type ApprovalSettings,
  agentReferences,
  type CompiledPolicySet,
  changedFields,
  compilePolicies,
  evaluate,
  matchPolicies,
  type PolicyAction,
  type PolicyDecision,
  type PolicyDefinition,
  type PolicyIssue,
  type PolicyPlan,
  type PolicyRequest,
  parsePolicyDocument,
  parsePolicySet,
  planPolicySet,
} from '../core/policy/index.js';
import { invalidPolicy } from '../core/policy/invalid.js';
import { narrowScope, validateScope } from '../core/scope/index.js';
import type { Logger } from '../logger.js';
import type { Db, Queryable } from '../store/db.js';
import {
  deletePolicy,
  existingAgentReferences,
  findAgentIdentity,
  findPolicy,
  insertPolicy,
  listPolicies,
  lockPolicies,
  type PolicyRecord,
  replaceAllPolicies,
  updatePolicy,
} from '../store/policyRepository.js';
import type { RequestOrigin } from './agents.js';
import type { AuditService } from './audit.js';

export type { PolicyRecord } from '../store/policyRepository.js';

/** Tells this instance's owner that the stored set changed, so other instances can load() it. */
export type PolicyChangeListener = () => void;

/** A dry run: what a permission request would get, without storing anything. */
export interface PolicyTestRequest {
  agentId?: string;
  agentName?: string;
  action: string;
  resource?: string | null;
  scope?: Record<string, unknown>;
  context?: Record<string, unknown>;
  /** Seconds the agent would ask for; the default TTL when absent. */
  ttl?: number;
}

export interface PolicyTestResult {
  decision: PolicyAction;
  policy: { id?: string; name: string } | null;
  reason: string;
  /** The requested scope narrowed by the policy's template; null on deny (nothing is granted). */
  scope: Record<string, unknown> | null;
  /** Seconds the permission would live (requested or default, capped by the policy); null on deny. */
  ttl: number | null;
  /** The agent the request was evaluated as (filled in from the database when it exists). */
  agent: { id: string | null; name: string | null };
  approval?: Readonly<ApprovalSettings>;
}

export interface ReplaceResult {
  /** The stored set afterwards; on a dry run, the set as it stands (nothing was stored). */
  policies: PolicyRecord[];
  /** False on a dry run, and when loadFile found the stored set already equal to the file's. */
  changed: boolean;
  dryRun: boolean;
  /** What the replacement did, or on a dry run would do. */
  plan: PolicyPlan;
  /** How many policies the set has after the replacement (would have, on a dry run). */
  count: number;
  /** Policies of the new set naming agents (by id or name) that do not exist. */
  unknownAgents: UnknownAgentReference[];
}

export interface UnknownAgentReference {
  policy: string;
  agents: string[];
}

/** Who changes policies when POLICIES_FILE is loaded at start. */
export const POLICY_FILE_ORIGIN: RequestOrigin = { actor: { type: 'system', name: 'POLICIES_FILE' } };

/** Top-level definition fields: a PATCH may spell them in snake_case or camelCase. */
const DEFINITION_FIELDS = [
  'id',
  'name',
  'description',
  'priority',
  'agent',
  'enabled',
  'conditions',
  'action',
  'scopeTemplate',
  'ttl',
  'reason',
  'approval',
] as const;
const FIELD_BY_SPELLING = new Map<string, string>(
  DEFINITION_FIELDS.flatMap((camel) => [
    [camel, camel],
    [camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), camel],
  ]),
);

type StoredDefinition = PolicyDefinition & { id: string };

/**
 * The policy set: stored in Postgres, compiled once per version and held in memory so that
 * evaluate() is a pure, synchronous function call on the hot path.
 *
 * Every change validates the whole resulting set (parse, scope templates, compile) before it is
 * written, writes it with its audit event in one transaction (writers serialised by a table
 * lock, so two instances never validate against the same old set), then swaps the new compiled
 * set in and calls the onChange listeners. Other instances call load() when told.
 */
export class PolicyService {
  private compiled: CompiledPolicySet = compilePolicies([]);
  private loaded = false;
  private readonly listeners: PolicyChangeListener[] = [];
  /** Loads and changes on this instance run one at a time, so an older read never replaces a newer set. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly defaultAction: PolicyAction,
    private readonly logger?: Logger,
  ) {}

  onChange(listener: PolicyChangeListener): void {
    this.listeners.push(listener);
  }

  /** True once a stored set has been compiled (by load, loadFile or a change). */
  get isLoaded(): boolean {
    return this.loaded;
  }

  /** How many enabled policies the in-memory set evaluates. */
  get activeCount(): number {
    return this.compiled.policies.length;
  }

  /**
   * Reads the stored set, compiles it and swaps it in. A set that does not compile throws
   * AppError('INVALID_POLICY') and the previous compiled set stays in force (another instance
   * may have stored what this version cannot read). At the first load there is no previous set:
   * a stored policy that does not compile (e.g. an upgrade tightened a bound it exceeds) must not
   * keep the service from starting — the operator could not fix it through the API — so it is
   * logged and kept as a policy that can never be decided, which fails closed (see
   * compilePolicies). Changes through the API and POLICIES_FILE still refuse it.
   */
  load(): Promise<void> {
    return this.serial(async () => {
      const records = await listPolicies(this.db);
      const onInvalid = this.loaded
        ? undefined
        : (policy: PolicyDefinition, err: unknown) =>
            this.logger?.warn(
              { policy: policy.name, problem: err instanceof AppError ? err.details : String(err) },
              'a stored policy does not compile: it sends every request it could match to its strictest outcome until it is fixed or deleted',
            );
      this.install(
        prepareSet(
          records.map((r) => r.definition),
          onInvalid,
        ),
      );
    });
  }

  /** The hot path: in memory, synchronous, no I/O. */
  evaluate(request: PolicyRequest, budget?: WorkBudget): PolicyDecision {
    return evaluate(this.compiled, request, this.defaultAction, budget);
  }

  list(): Promise<PolicyRecord[]> {
    return listPolicies(this.db);
  }

  async get(id: string): Promise<PolicyRecord> {
    const found = isId('policy', id) ? await findPolicy(this.db, id) : null;
    if (!found) throw notFound(id);
    return found;
  }

  /** Adds one policy at the end of the set. Error paths are relative to the policy (`conditions.…`). */
  async create(input: unknown, origin: RequestOrigin): Promise<PolicyRecord> {
    const definition = parseOne(input);
    return this.change(async (tx, current) => {
      assertNameFree(current, definition.name, null);
      const now = this.clock.now();
      const id = newId('policy');
      const record: PolicyRecord = {
        id,
        name: definition.name,
        definition: withId(definition, id),
        position: current.reduce((max, r) => Math.max(max, r.position + 1), 0),
        createdAt: now,
        updatedAt: now,
      };
      const compiled = prepareSet([...current.map((r) => r.definition), record.definition]);
      await insertPolicy(tx, record);
      await this.audit.append(tx, {
        ...auditOrigin(origin),
        type: 'policy.created',
        details: {
          id,
          name: record.name,
          action: definition.action,
          priority: definition.priority,
          count: current.length + 1,
        },
      });
      return { value: record, compiled };
    });
  }

  /**
   * Replaces the whole set with a list of policies or `{ policies: [...] }`. Error paths name
   * `policies[i]…`. Ids are the server's: a policy keeps the id of the stored policy it names by
   * id, or else by name; others get new ids.
   */
  async replaceAll(
    input: unknown,
    origin: RequestOrigin,
    opts: { dryRun?: boolean } = {},
  ): Promise<ReplaceResult> {
    const parsed = parsePolicySet(input);
    if (opts.dryRun) return this.planReplacement(parsed);
    return this.replaceParsed(parsed, origin, { onlyIfDifferent: false });
  }

  /** YAML or JSON text (a list, or `{ policies: [...] }`) → replaceAll. */
  async applyDocument(text: string, origin: RequestOrigin): Promise<ReplaceResult> {
    return this.replaceParsed(parsePolicyDocument(text), origin, { onlyIfDifferent: false });
  }

  /**
   * At start with POLICIES_FILE: the stored set becomes the file's, only when it differs
   * (canonical JSON of the normalised definitions, in order, ids ignored), so restarting with the
   * same file writes nothing. Either way the in-memory set is the stored one afterwards.
   */
  async loadFile(path: string, origin: RequestOrigin = POLICY_FILE_ORIGIN): Promise<ReplaceResult> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      throw new Error(`Cannot read the policy file ${path}: ${(err as Error).message}`, { cause: err });
    }
    let parsed: PolicyDefinition[];
    try {
      parsed = parsePolicyDocument(text);
    } catch (err) {
      if (err instanceof AppError && err.code === 'INVALID_POLICY') {
        throw new AppError('INVALID_POLICY', `${path}: ${err.message}`, {
          ...(err.details as Record<string, unknown>),
          file: path,
        });
      }
      throw err;
    }
    const result = await this.replaceParsed(parsed, origin, { onlyIfDifferent: true, file: path });
    this.logFileResult(path, result);
    return result;
  }

  /**
   * What replacing the set with `parsed` would do: the whole would-be set is validated as an
   * apply would (so a dry run refuses what the apply would), nothing is stored or audited.
   */
  private async planReplacement(parsed: PolicyDefinition[]): Promise<ReplaceResult> {
    const current = await listPolicies(this.db);
    prepareSet(this.continueRecords(current, parsed).map((r) => r.definition));
    return {
      policies: current,
      changed: false,
      dryRun: true,
      plan: planPolicySet(current, parsed),
      count: parsed.length,
      unknownAgents: await unknownAgents(this.db, parsed),
    };
  }

  /** One summary at start: which policies the file added, changed and removed, and likely typos. */
  private logFileResult(file: string, result: ReplaceResult): void {
    const { plan } = result;
    if (result.changed) {
      this.logger?.info(
        {
          file,
          added: plan.added.map((p) => p.name),
          changed: plan.changed.map((p) => ({ name: p.name, fields: p.fields })),
          removed: plan.removed.map((p) => p.name),
          unchanged: plan.unchanged.length,
          reordered: plan.reordered,
        },
        `POLICIES_FILE applied: ${plan.added.length} added, ${plan.changed.length} changed, ${plan.removed.length} removed, ${plan.unchanged.length} unchanged`,
      );
    } else {
      this.logger?.info(
        { file, unchanged: plan.unchanged.length },
        'POLICIES_FILE: the stored policies already match the file; nothing applied',
      );
    }
    if (result.unknownAgents.length > 0) {
      const list = result.unknownAgents.map((u) => `${u.policy} (${u.agents.join(', ')})`).join('; ');
      this.logger?.warn(
        { file, policies: result.unknownAgents },
        `POLICIES_FILE: policies name agents that do not exist: ${list}`,
      );
    }
  }

  /**
   * Merges the patch (top-level fields, either spelling; null clears an optional field) over the
   * stored definition and validates the result. Error paths are relative to the policy.
   */
  async update(id: string, patch: unknown, origin: RequestOrigin): Promise<PolicyRecord> {
    if (!isId('policy', id)) throw notFound(id);
    const changes = normalisePatch(patch, id);
    return this.change(async (tx, current) => {
      const target = current.find((r) => r.id === id);
      if (!target) throw notFound(id);
      const definition = withId(parseOne({ ...target.definition, ...changes }), id);
      assertNameFree(current, definition.name, id);
      const compiled = prepareSet(current.map((r) => (r.id === id ? definition : r.definition)));
      const updated = await updatePolicy(tx, id, definition, this.clock.now());
      if (!updated) throw notFound(id);
      await this.audit.append(tx, {
        ...auditOrigin(origin),
        type: 'policy.updated',
        details: {
          id,
          name: definition.name,
          ...(target.name !== definition.name && { previousName: target.name }),
          fields: changedFields(target.definition, definition),
        },
      });
      return { value: updated, compiled };
    });
  }

  async remove(id: string, origin: RequestOrigin): Promise<PolicyRecord> {
    if (!isId('policy', id)) throw notFound(id);
    return this.change(async (tx, current) => {
      const remaining = current.filter((r) => r.id !== id);
      const compiled = prepareSet(remaining.map((r) => r.definition));
      const deleted = await deletePolicy(tx, id);
      if (!deleted) throw notFound(id);
      await this.audit.append(tx, {
        ...auditOrigin(origin),
        type: 'policy.deleted',
        details: { id, name: deleted.name, count: remaining.length },
      });
      return { value: deleted, compiled };
    });
  }

  /**
   * What a request would get from the current in-memory set, stored nothing. An agent named by
   * id or (unambiguous) name is completed from the database, so policies naming it either way
   * apply as they would for a real request.
   */
  async test(request: PolicyTestRequest): Promise<PolicyTestResult> {
    const known =
      request.agentId !== undefined && request.agentName !== undefined
        ? null
        : await findAgentIdentity(this.db, { id: request.agentId, name: request.agentName });
    const agentId = request.agentId ?? known?.id;
    const agentName = request.agentName ?? known?.name;
    const decision = this.evaluate({
      agentId: agentId ?? '',
      ...(agentName !== undefined && { agentName }),
      action: request.action,
      resource: request.resource ?? null,
      scope: request.scope ?? {},
      context: request.context ?? {},
    });
    const grants = decision.decision !== 'deny';
    return {
      decision: decision.decision,
      policy: decision.policy,
      reason: decision.reason,
      scope: grants ? narrowScope(request.scope ?? {}, decision.scopeTemplate ?? {}) : null,
      ttl: grants ? Math.min(request.ttl ?? TTL_DEFAULT_SECONDS, decision.ttlCap ?? Infinity) : null,
      agent: { id: agentId ?? null, name: agentName ?? null },
      ...(decision.approval !== undefined && { approval: decision.approval }),
    };
  }

  private async replaceParsed(
    parsed: PolicyDefinition[],
    origin: RequestOrigin,
    opts: { onlyIfDifferent: boolean; file?: string },
  ): Promise<ReplaceResult> {
    return this.change<ReplaceResult>(async (tx, current) => {
      if (opts.onlyIfDifferent && sameDefinitions(current, parsed)) {
        return {
          value: {
            policies: current,
            changed: false,
            dryRun: false,
            // Nothing is written: every stored policy stays as it is.
            plan: planPolicySet(
              current,
              current.map((r) => r.definition),
            ),
            count: current.length,
            unknownAgents: await unknownAgents(
              tx,
              current.map((r) => r.definition),
            ),
          },
          compiled: prepareSet(current.map((r) => r.definition)),
          changed: false,
        };
      }
      const plan = planPolicySet(current, parsed);
      const records = this.continueRecords(current, parsed);
      const compiled = prepareSet(records.map((r) => r.definition));
      await replaceAllPolicies(tx, records);
      const before = new Set(current.map((r) => r.id));
      plan.added = records.filter((r) => !before.has(r.id)).map((r) => ({ name: r.name, id: r.id }));
      await this.audit.append(tx, {
        ...auditOrigin(origin),
        type: 'policy.replaced',
        details: {
          count: records.length,
          previousCount: current.length,
          policies: records.map((r) => ({ id: r.id, name: r.name })),
          created: plan.added.map((p) => p.name),
          updated: plan.changed.map((p) => p.name),
          removed: plan.removed,
          ...(opts.file !== undefined && { source: 'file', file: opts.file }),
        },
      });
      // Read in the transaction: a failure rolls the change back rather than failing after it.
      const unknown = await unknownAgents(tx, parsed);
      return {
        value: {
          policies: records,
          changed: true,
          dryRun: false,
          plan,
          count: records.length,
          unknownAgents: unknown,
        },
        compiled,
      };
    });
  }

  /** The records that replace `current`: continued policies keep their id and creation time. */
  private continueRecords(
    current: readonly PolicyRecord[],
    parsed: readonly PolicyDefinition[],
  ): PolicyRecord[] {
    const now = this.clock.now();
    return matchPolicies(current, parsed).map(({ definition, previous }, position): PolicyRecord => {
      const id = previous?.id ?? newId('policy');
      const stored = withId(definition, id);
      const same = previous !== undefined && changedFields(previous.definition, stored).length === 0;
      return {
        id,
        name: stored.name,
        definition: stored,
        position,
        createdAt: previous?.createdAt ?? now,
        updatedAt: same ? (previous?.updatedAt ?? now) : now,
      };
    });
  }

  /**
   * One change: under the policies lock, read the current set, let `fn` validate and write (and
   * audit) in the same transaction; after commit, swap the compiled set in and tell listeners.
   */
  private async change<T>(
    fn: (
      tx: Queryable,
      current: PolicyRecord[],
    ) => Promise<{ value: T; compiled: CompiledPolicySet; changed?: boolean }>,
  ): Promise<T> {
    const result = await this.serial(async () => {
      const outcome = await this.db.transaction(async (tx) => {
        await lockPolicies(tx);
        return fn(tx, await listPolicies(tx));
      });
      this.install(outcome.compiled);
      return outcome;
    });
    if (result.changed !== false) this.notify();
    return result.value;
  }

  private install(compiled: CompiledPolicySet): void {
    this.compiled = compiled;
    this.loaded = true;
  }

  private notify(): void {
    for (const listener of this.listeners) {
      try {
        listener();
      } catch {
        // The change is committed; a failing listener must not turn it into an error answer.
      }
    }
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }
}

/**
 * Validates a whole set the way it will be evaluated: schema and unique names/ids, scope
 * templates against the scope vocabulary, then compiles it. Paths name `policies[i]…`.
 */
function prepareSet(
  definitions: readonly PolicyDefinition[],
  onInvalid?: (policy: PolicyDefinition, error: unknown) => void,
): CompiledPolicySet {
  // Stored rows as they are; what is new in the set was parsed as authored input before.
  if (!onInvalid) {
    return compilePolicies(parsePolicySet(definitions, 'stored'), {
      prepare: (policy, path) => checkScopeTemplate(policy, path),
    });
  }
  // Lenient: each row read on its own, so one that no longer reads fails alone (and closed).
  return compilePolicies(definitions, {
    prepare: (raw, path) => checkScopeTemplate(parsePolicySet([raw], 'stored')[0] ?? raw, path),
    onInvalid,
  });
}

/** A template that would make narrowScope throw would fail every request it matches: refuse it now. */
function checkScopeTemplate(policy: PolicyDefinition, path: string): PolicyDefinition {
  if (policy.scopeTemplate === undefined) return policy;
  try {
    validateScope(policy.scopeTemplate);
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    const key = (err.details as { path?: string } | undefined)?.path ?? '';
    const problem = err.message.replace(/^Invalid scope[^:]*: /, '');
    throw invalidPolicy([{ path: `${path}.scopeTemplate${key ? `.${key}` : ''}`, message: problem }]);
  }
  return policy;
}

/** One policy, validated and compiled alone; error paths relative to it (`conditions.x.lessthan`). */
function parseOne(input: unknown): PolicyDefinition {
  try {
    const [definition] = parsePolicySet([input]);
    if (!definition) throw invalidPolicy([{ path: '', message: 'expected a policy' }]);
    checkScopeTemplate(definition, 'policies[0]');
    compilePolicies([definition]);
    return definition;
  } catch (err) {
    throw rebase(err);
  }
}

/** `policies[0].conditions.x` → `conditions.x`, for errors about a single policy. */
function rebase(err: unknown): unknown {
  if (!(err instanceof AppError) || err.code !== 'INVALID_POLICY') return err;
  const issues = (err.details as { issues?: PolicyIssue[] } | undefined)?.issues;
  if (!issues) return err;
  return invalidPolicy(
    issues.map((issue) => ({ ...issue, path: issue.path.replace(/^policies\[0\](?:\.|$)/, '') })),
  );
}

function normalisePatch(patch: unknown, id: string): Record<string, unknown> {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) {
    throw invalidPolicy([{ path: '', message: 'expected an object of policy fields to change' }]);
  }
  const out: Record<string, unknown> = {};
  const spelledAs = new Map<string, string>();
  for (const [key, value] of Object.entries(patch)) {
    const field = FIELD_BY_SPELLING.get(key) ?? key;
    const other = spelledAs.get(field);
    if (other !== undefined) {
      throw invalidPolicy([{ path: key, message: `given as both "${other}" and "${key}"` }]);
    }
    spelledAs.set(field, key);
    if (field === 'id') {
      if (value !== id) throw invalidPolicy([{ path: key, message: 'ids are assigned by the server' }]);
      continue;
    }
    out[field] = value;
  }
  return out;
}

function assertNameFree(current: readonly PolicyRecord[], name: string, exceptId: string | null): void {
  const clash = current.find((r) => r.name === name && r.id !== exceptId);
  if (clash) {
    throw invalidPolicy([{ path: 'name', message: `a policy named "${name}" already exists (${clash.id})` }]);
  }
}

/** Policies of `definitions` that name agents no one has: most likely typos, said, not refused. */
async function unknownAgents(
  db: Queryable,
  definitions: readonly PolicyDefinition[],
): Promise<UnknownAgentReference[]> {
  const refs = definitions.map((d) => ({ policy: d.name, agents: agentReferences(d) }));
  const existing = await existingAgentReferences(db, [...new Set(refs.flatMap((r) => r.agents))]);
  return refs
    .map((r) => ({ policy: r.policy, agents: r.agents.filter((a) => !existing.has(a)) }))
    .filter((r) => r.agents.length > 0);
}

function withId(definition: PolicyDefinition, id: string): StoredDefinition {
  const { id: _ignored, ...rest } = definition;
  return { id, ...rest };
}

function withoutId(definition: PolicyDefinition): Omit<PolicyDefinition, 'id'> {
  const { id: _ignored, ...rest } = definition;
  return rest;
}

/** Same policies in the same order, ids aside; stored rows are re-normalised before comparing. */
function sameDefinitions(current: readonly PolicyRecord[], parsed: readonly PolicyDefinition[]): boolean {
  if (current.length !== parsed.length) return false;
  let stored: PolicyDefinition[];
  try {
    stored = parsePolicySet(
      current.map((r) => r.definition),
      'stored',
    );
  } catch {
    return false;
  }
  return canonicalJson(stored.map(withoutId)) === canonicalJson(parsed.map(withoutId));
}

function auditOrigin(origin: RequestOrigin): {
  actor: Actor;
  agentId: null;
  ip: string | null;
  userAgent: string | null;
} {
  return { actor: origin.actor, agentId: null, ip: origin.ip ?? null, userAgent: origin.userAgent ?? null };
}

const notFound = (id: string) => new AppError('NOT_FOUND', `Policy ${id} not found`);
