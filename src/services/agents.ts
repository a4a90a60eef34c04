import type { Actor } from '../core/audit/index.js';
import type { Clock } from '../core/clock.js';
import { type AgentEnvironment, displayPrefix, newAgentKey, sha256Hex } from '../core/credentials.js';
import { AppError } from '../core/errors.js';
import { isId, newId } from '../core/ids.js';
import { assertWebhookTargetAllowed } from '../core/webhookTarget.js';
import {
  type Agent,
  type AgentChanges,
  expireAgentKeys,
  findAgent,
  findAgentsByName,
  insertAgent,
  insertApiKey,
  isAgentNameConflict,
  listAgentKeys,
  listAgents,
  listNameDuplicates,
  revokeAgentKeys,
  sampleAgents,
  setAgentStatus,
  updateAgent,
} from '../store/agentRepository.js';
import type { Db, Queryable } from '../store/db.js';
import type { AuditService } from './audit.js';
import type { WebhookSecrets } from './webhookSecrets.js';

export interface RequestOrigin {
  actor: Actor;
  ip?: string | null;
  userAgent?: string | null;
}

export interface CreatedAgent {
  agent: Agent;
  /** Shown once; only its hash is stored. */
  apiKey: string;
  apiKeyPrefix: string;
  /** Signs this agent's webhooks (`whsec_…`); shown once, stored encrypted. Null without webhook secrets wired. */
  webhookSecret: string | null;
}

export interface RotatedKey {
  agent: Agent;
  apiKey: string;
  apiKeyPrefix: string;
  /** When the previous keys stop working (now, with revokeImmediately). */
  previousKeysExpireAt: Date;
  /** A new webhook secret; the previous one keeps signing too until previousKeysExpireAt. */
  webhookSecret: string | null;
}

export interface AgentWebhookOptions {
  /** Issues and stores webhook signing secrets; without it agents get none (some tests). */
  webhookSecrets?: WebhookSecrets | null;
  /** WEBHOOK_ALLOW_PRIVATE: accept private and loopback webhookUrl targets. */
  allowPrivateWebhooks?: boolean;
}

/** Tells other instances (and this one's caches) that an agent's keys or settings changed. */
export type AgentChangeListener = (agentId: string) => void;

export class AgentService {
  private readonly listeners: AgentChangeListener[] = [];

  constructor(
    private readonly db: Db,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    private readonly webhooks: AgentWebhookOptions = {},
  ) {}

  onChange(listener: AgentChangeListener): void {
    this.listeners.push(listener);
  }

  private changed(agentId: string): void {
    for (const listener of this.listeners) listener(agentId);
  }

  async create(
    input: {
      name: string;
      description?: string;
      metadata?: Record<string, unknown>;
      environment?: AgentEnvironment;
    },
    origin: RequestOrigin,
  ): Promise<CreatedAgent> {
    assertNameUsable(input.name);
    const now = this.clock.now();
    const environment = input.environment ?? 'live';
    const agent: Agent = {
      id: newId('agent'),
      name: input.name,
      description: input.description ?? null,
      metadata: input.metadata ?? {},
      environment,
      status: 'active',
      rateLimitPerMin: null,
      rateLimitPerHour: null,
      tokenRateLimitPerMin: null,
      tokenRateLimitPerHour: null,
      webhookUrl: null,
      createdAt: now,
      updatedAt: now,
      revokedAt: null,
      nameDuplicate: false,
    };
    const apiKey = newAgentKey(environment);
    const webhookSecret = await this.withNameCheck(agent.name, () =>
      this.db.transaction(async (tx) => {
        await insertAgent(tx, agent);
        await this.insertKey(tx, agent, apiKey);
        const secret = (await this.webhooks.webhookSecrets?.issue(tx, agent.id, now)) ?? null;
        await this.audit.append(tx, {
          ...this.auditOrigin(origin, agent.id),
          type: 'agent.created',
          details: { name: agent.name, environment, keyPrefix: displayPrefix(apiKey) },
        });
        return secret;
      }),
    );
    return { agent, apiKey, apiKeyPrefix: displayPrefix(apiKey), webhookSecret };
  }

  async get(id: string): Promise<
    Agent & {
      keys: {
        prefix: string;
        createdAt: Date;
        expiresAt: Date | null;
        revokedAt: Date | null;
        lastUsedAt: Date | null;
      }[];
    }
  > {
    const agent = await this.require(this.db, id);
    const keys = await listAgentKeys(this.db, id);
    return {
      ...agent,
      keys: keys.map((k) => ({
        prefix: k.keyPrefix,
        createdAt: k.createdAt,
        expiresAt: k.expiresAt,
        revokedAt: k.revokedAt,
        lastUsedAt: k.lastUsedAt,
      })),
    };
  }

  list(opts: { limit: number; after?: { createdAt: Date; id: string } }): Promise<Agent[]> {
    return listAgents(this.db, opts);
  }

  async update(id: string, changes: AgentChanges, origin: RequestOrigin): Promise<Agent> {
    if (changes.webhookUrl) {
      assertWebhookTargetAllowed(changes.webhookUrl, this.webhooks.allowPrivateWebhooks ?? false);
    }
    if (changes.name !== undefined) assertNameUsable(changes.name);
    const agent = await this.withNameCheck(changes.name, () =>
      this.db.transaction(async (tx) => {
        const updated = await updateAgent(tx, this.checkId(id), changes, this.clock.now());
        if (!updated) throw notFound(id);
        await this.audit.append(tx, {
          ...this.auditOrigin(origin, id),
          type: 'agent.updated',
          details: { fields: Object.keys(changes).sort() },
        });
        return updated;
      }),
    );
    this.changed(id);
    return agent;
  }

  /**
   * Issues a new key and a new webhook secret. The old keys keep working, and the old secret
   * keeps signing deliveries beside the new one, until the grace period ends (so deployments and
   * webhook receivers can roll over), or stop at once with revokeImmediately.
   */
  async rotateKey(
    id: string,
    opts: { gracePeriodSeconds: number; revokeImmediately: boolean },
    origin: RequestOrigin,
  ): Promise<RotatedKey> {
    const now = this.clock.now();
    const result = await this.db.transaction(async (tx) => {
      const agent = await this.require(tx, id, true);
      if (agent.status !== 'active')
        throw new AppError('CONFLICT', `Agent ${id} is revoked; it cannot get new keys`);
      const expireAt = opts.revokeImmediately
        ? now
        : new Date(now.getTime() + opts.gracePeriodSeconds * 1000);
      if (opts.revokeImmediately) await revokeAgentKeys(tx, id, now);
      else await expireAgentKeys(tx, id, expireAt);
      const apiKey = newAgentKey(agent.environment);
      await this.insertKey(tx, agent, apiKey);
      let webhookSecret: string | null = null;
      if (this.webhooks.webhookSecrets) {
        await this.webhooks.webhookSecrets.retire(tx, id, expireAt, now);
        webhookSecret = await this.webhooks.webhookSecrets.issue(tx, id, now);
      }
      await this.audit.append(tx, {
        ...this.auditOrigin(origin, id),
        type: 'agent.key_rotated',
        details: {
          keyPrefix: displayPrefix(apiKey),
          gracePeriodSeconds: opts.revokeImmediately ? 0 : opts.gracePeriodSeconds,
          revokeImmediately: opts.revokeImmediately,
        },
      });
      return {
        agent,
        apiKey,
        apiKeyPrefix: displayPrefix(apiKey),
        previousKeysExpireAt: expireAt,
        webhookSecret,
      };
    });
    this.changed(id);
    return result;
  }

  /** Every key of the agent is refused from now on (401 EXPIRED_API_KEY). */
  async revoke(id: string, origin: RequestOrigin): Promise<Agent> {
    return this.end(id, 'revoked', 'agent.revoked', origin);
  }

  async delete(id: string, origin: RequestOrigin): Promise<Agent> {
    return this.end(id, 'deleted', 'agent.deleted', origin);
  }

  private async end(
    id: string,
    status: 'revoked' | 'deleted',
    type: 'agent.revoked' | 'agent.deleted',
    origin: RequestOrigin,
  ): Promise<Agent> {
    const now = this.clock.now();
    const agent = await this.db.transaction(async (tx) => {
      const ended = await setAgentStatus(tx, this.checkId(id), status, now);
      if (!ended) throw notFound(id);
      const keys = await revokeAgentKeys(tx, id, now);
      await this.audit.append(tx, { ...this.auditOrigin(origin, id), type, details: { keysRevoked: keys } });
      return ended;
    });
    this.changed(id);
    return agent;
  }

  /**
   * The agent an id or a name (case-insensitive) designates, for every agent filter of the API
   * and CLI. An id is tried first, so an agent is always reachable by its id. Unknown: 404
   * UNKNOWN_AGENT listing agents that exist; a name still shared by agents created before names
   * were unique: 409 AGENT_NAME_AMBIGUOUS with their ids.
   */
  async resolve(idOrName: string): Promise<Agent> {
    if (isId('agent', idOrName)) {
      const byId = await findAgent(this.db, idOrName);
      if (byId) return byId;
    }
    const named = await findAgentsByName(this.db, idOrName);
    if (named.length === 1 && named[0]) return named[0];
    if (named.length > 1) {
      const ids = named.map((a) => a.id);
      throw new AppError(
        'AGENT_NAME_AMBIGUOUS',
        `The name "${idOrName}" is shared by ${ids.length} agents (${ids.join(', ')}), created before names were unique: use an id, or rename all but one`,
        { name: idOrName, ids },
      );
    }
    throw await this.unknown(idOrName);
  }

  /** An optional filter value resolved to an agent id (undefined stays undefined: no filter). */
  async resolveFilter(idOrName: string | undefined): Promise<string | undefined> {
    return idOrName === undefined ? undefined : (await this.resolve(idOrName)).id;
  }

  /** Agents that still share a name with an older one (migration 012), for operators to rename. */
  nameDuplicates(): Promise<{ id: string; name: string; sharesNameWith: string[] }[]> {
    return listNameDuplicates(this.db);
  }

  private async unknown(idOrName: string): Promise<AppError> {
    const { agents, total } = await sampleAgents(this.db, UNKNOWN_AGENT_LIST_MAX);
    const listed = agents.map((a) => `${a.name} (${a.id})`).join(', ');
    const more = total > agents.length ? ` and ${total - agents.length} more (agent:list)` : '';
    return new AppError(
      'UNKNOWN_AGENT',
      total === 0
        ? `No agent has the id or name "${idOrName}": there are no agents yet`
        : `No agent has the id or name "${idOrName}". Agents: ${listed}${more}`,
      { agent: idOrName, known: agents, total },
    );
  }

  /** Maps the unique index's violation (a concurrent create or rename included) to 409. */
  private async withNameCheck<T>(name: string | undefined, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (name === undefined || !isAgentNameConflict(err)) throw err;
      const holders = await findAgentsByName(this.db, name);
      const holder = holders.find((a) => !a.nameDuplicate) ?? holders[0];
      throw new AppError(
        'AGENT_NAME_TAKEN',
        `An agent named "${holder?.name ?? name}"${holder ? ` (${holder.id})` : ''} already exists; names are unique, case-insensitively`,
        { name, agentId: holder?.id ?? null },
      );
    }
  }

  private async insertKey(tx: Queryable, agent: Agent, apiKey: string): Promise<void> {
    await insertApiKey(tx, {
      id: newId('apiKey'),
      agentId: agent.id,
      keyHash: sha256Hex(apiKey),
      keyPrefix: displayPrefix(apiKey),
      environment: agent.environment,
      createdAt: this.clock.now(),
      expiresAt: null,
      revokedAt: null,
      lastUsedAt: null,
    });
  }

  private checkId(id: string): string {
    if (!isId('agent', id)) throw notFound(id);
    return id;
  }

  private async require(db: Queryable, id: string, forUpdate = false): Promise<Agent> {
    const agent = await findAgent(db, this.checkId(id), forUpdate);
    if (!agent) throw notFound(id);
    return agent;
  }

  private auditOrigin(origin: RequestOrigin, agentId: string) {
    return { actor: origin.actor, agentId, ip: origin.ip ?? null, userAgent: origin.userAgent ?? null };
  }
}

/** How many agents an UNKNOWN_AGENT answer names (the total is given too). */
const UNKNOWN_AGENT_LIST_MAX = 20;

/** A name shaped like an agent id would make `--agent` mean two things. */
function assertNameUsable(name: string): void {
  if (isId('agent', name.trim())) {
    throw new AppError('VALIDATION_ERROR', 'An agent name cannot have the shape of an agent id (agent_…)', {
      issues: [{ path: 'name', message: 'must not look like an agent id' }],
    });
  }
}

const notFound = (id: string) => new AppError('NOT_FOUND', `Agent ${id} not found`);
