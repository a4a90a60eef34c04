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
  insertAgent,
  insertApiKey,
  listAgentKeys,
  listAgents,
  revokeAgentKeys,
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
    };
    const apiKey = newAgentKey(environment);
    const webhookSecret = await this.db.transaction(async (tx) => {
      await insertAgent(tx, agent);
      await this.insertKey(tx, agent, apiKey);
      const secret = (await this.webhooks.webhookSecrets?.issue(tx, agent.id, now)) ?? null;
      await this.audit.append(tx, {
        ...this.auditOrigin(origin, agent.id),
        type: 'agent.created',
        details: { name: agent.name, environment, keyPrefix: displayPrefix(apiKey) },
      });
      return secret;
    });
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
    const agent = await this.db.transaction(async (tx) => {
      const updated = await updateAgent(tx, this.checkId(id), changes, this.clock.now());
      if (!updated) throw notFound(id);
      await this.audit.append(tx, {
        ...this.auditOrigin(origin, id),
        type: 'agent.updated',
        details: { fields: Object.keys(changes).sort() },
      });
      return updated;
    });
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
    type: string,
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

const notFound = (id: string) => new AppError('NOT_FOUND', `Agent ${id} not found`);
