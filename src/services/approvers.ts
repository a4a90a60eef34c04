import { type ApproverLinks, type IdentitySyntax, PERSON_NAME } from '../core/approvers.js';
import type { AuditEventType } from '../core/audit/index.js';
import type { Clock } from '../core/clock.js';
import { AppError } from '../core/errors.js';
import { isId, newId } from '../core/ids.js';
import {
  type ApproverAccount,
  type ApproverStatus,
  approverConflict,
  deleteApprover,
  deleteIdentities,
  findApprover,
  findApproverByName,
  identityOwners,
  insertApprover,
  insertIdentities,
  listApprovers,
  updateApprover,
} from '../store/approverRepository.js';
import type { Db, Queryable } from '../store/db.js';
import type { RequestOrigin } from './agents.js';
import type { AuditService } from './audit.js';

export interface NewApprover {
  name: string;
  email?: string | null;
  identities?: readonly string[];
}

export interface ApproverChanges {
  name?: string;
  email?: string | null;
  addIdentities?: readonly string[];
  removeIdentities?: readonly string[];
}

/**
 * Told after every committed change, and awaited: the person directory of this instance reloads
 * before the operator's call answers, so the next decision here already counts by the new persons.
 */
export type ApproverChangeListener = (approverId: string) => void | Promise<void>;

/** More identities than one person plausibly has is a script gone wrong. */
export const IDENTITIES_MAX = 32;
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,189}$/;

/**
 * Approver accounts (issue 15): stored persons, each known by a name and the channel identities
 * that are theirs. Together with APPROVER_LINKS they are the persons quorum and the self-approval
 * ban count (PersonDirectory); an account grants no approval rights by itself. Every change is
 * audited with the operator who made it.
 */
export class ApproverService {
  private readonly listeners: ApproverChangeListener[] = [];
  private readonly configuredNames: ReadonlyMap<string, string>;

  constructor(
    private readonly db: Db,
    private readonly audit: AuditService,
    private readonly clock: Clock,
    /** The identity syntax of this build's channels (src/chat/channels.ts), and operator keys. */
    private readonly syntax: IdentitySyntax,
    /** APPROVER_LINKS: its persons and identities cannot be taken by an account. */
    private readonly configured: ApproverLinks,
  ) {
    this.configuredNames = new Map([...configured.persons.values()].map((n) => [n.toLowerCase(), n]));
  }

  onChange(listener: ApproverChangeListener): void {
    this.listeners.push(listener);
  }

  private async changed(approverId: string): Promise<void> {
    await Promise.allSettled(this.listeners.map(async (listener) => listener(approverId)));
  }

  async create(input: NewApprover, origin: RequestOrigin): Promise<ApproverAccount> {
    const name = this.checkName(input.name);
    const email = checkEmail(input.email);
    const identities = this.checkIdentities(input.identities ?? [], 'identities');
    const now = this.clock.now();
    const approver: ApproverAccount = {
      id: newId('approver'),
      name,
      email,
      status: 'active',
      identities: [...identities].sort(),
      createdAt: now,
      updatedAt: now,
    };
    await this.withConflicts(name, identities, null, () =>
      this.db.transaction(async (tx) => {
        await this.assertIdentitiesFree(tx, identities, null);
        await insertApprover(tx, approver);
        await insertIdentities(tx, approver.id, identities, now);
        await this.record(tx, 'approver.created', approver, origin, {
          identities: approver.identities,
          email: email !== null,
        });
      }),
    );
    await this.changed(approver.id);
    return approver;
  }

  list(opts: { limit: number; after?: { createdAt: Date; id: string } }): Promise<ApproverAccount[]> {
    return listApprovers(this.db, opts);
  }

  /** By id (`apr_…`) or by name, case-insensitively. */
  async get(idOrName: string): Promise<ApproverAccount> {
    const found = isId('approver', idOrName)
      ? await findApprover(this.db, idOrName)
      : await findApproverByName(this.db, idOrName);
    if (!found) throw notFound(idOrName);
    return found;
  }

  async update(idOrName: string, changes: ApproverChanges, origin: RequestOrigin): Promise<ApproverAccount> {
    const name = changes.name === undefined ? undefined : this.checkName(changes.name);
    const email = changes.email === undefined ? undefined : checkEmail(changes.email);
    const add = this.checkIdentities(changes.addIdentities ?? [], 'addIdentities');
    const remove = [...new Set(changes.removeIdentities ?? [])];
    const both = add.filter((i) => remove.includes(i));
    if (both.length) {
      throw validation('addIdentities', `${both[0]} is both added and removed`);
    }
    if (name === undefined && email === undefined && add.length === 0 && remove.length === 0) {
      throw validation('', 'Nothing to change: give name, email, addIdentities or removeIdentities');
    }
    const { id } = await this.get(idOrName);
    const now = this.clock.now();
    const updated = await this.withConflicts(name, add, id, () =>
      this.db.transaction(async (tx) => {
        const current = await findApprover(tx, id, true);
        if (!current) throw notFound(idOrName);
        const notTheirs = remove.find((i) => !current.identities.includes(i));
        if (notTheirs !== undefined) {
          throw validation('removeIdentities', `${notTheirs} is not an identity of ${current.name}`);
        }
        const added = add.filter((i) => !current.identities.includes(i));
        await this.assertIdentitiesFree(tx, added, id);
        const fields: Record<string, unknown> = {};
        if (name !== undefined) fields.name = name;
        if (email !== undefined) fields.email = email;
        await updateApprover(tx, id, fields, now);
        await deleteIdentities(tx, id, remove);
        await insertIdentities(tx, id, added, now);
        const after = (await findApprover(tx, id)) as ApproverAccount;
        await this.record(tx, 'approver.updated', after, origin, {
          fields: Object.keys(fields).sort(),
          ...(name !== undefined && name !== current.name ? { previousName: current.name } : {}),
          added,
          removed: remove,
        });
        return after;
      }),
    );
    await this.changed(id);
    return updated;
  }

  /**
   * A disabled account keeps its identities as one person: disabling must never let someone's
   * second identity vote twice, nor approve their own request under it.
   */
  disable(idOrName: string, origin: RequestOrigin): Promise<ApproverAccount> {
    return this.setStatus(idOrName, 'disabled', 'approver.disabled', origin);
  }

  enable(idOrName: string, origin: RequestOrigin): Promise<ApproverAccount> {
    return this.setStatus(idOrName, 'active', 'approver.enabled', origin);
  }

  /** Its identities become persons of their own again (or APPROVER_LINKS's, where it names them). */
  async delete(idOrName: string, origin: RequestOrigin): Promise<ApproverAccount> {
    const { id } = await this.get(idOrName);
    const deleted = await this.db.transaction(async (tx) => {
      const current = await findApprover(tx, id, true);
      if (!current || !(await deleteApprover(tx, id))) throw notFound(idOrName);
      await this.record(tx, 'approver.deleted', current, origin, { identities: current.identities });
      return current;
    });
    await this.changed(id);
    return deleted;
  }

  private async setStatus(
    idOrName: string,
    status: ApproverStatus,
    type: AuditEventType,
    origin: RequestOrigin,
  ): Promise<ApproverAccount> {
    const { id } = await this.get(idOrName);
    const result = await this.db.transaction(async (tx) => {
      const current = await findApprover(tx, id, true);
      if (!current) throw notFound(idOrName);
      // Asking again for the status it has changes nothing, and records nothing.
      if (current.status === status) return { approver: current, changed: false };
      const now = this.clock.now();
      await updateApprover(tx, id, { status }, now);
      const approver = { ...current, status, updatedAt: now };
      await this.record(tx, type, approver, origin, {});
      return { approver, changed: true };
    });
    if (result.changed) await this.changed(id);
    return result.approver;
  }

  private async record(
    tx: Queryable,
    type: AuditEventType,
    approver: ApproverAccount,
    origin: RequestOrigin,
    details: Record<string, unknown>,
  ): Promise<void> {
    await this.audit.append(tx, {
      type,
      actor: origin.actor,
      ip: origin.ip ?? null,
      userAgent: origin.userAgent ?? null,
      details: { approverId: approver.id, name: approver.name, ...details },
    });
  }

  private checkName(raw: string): string {
    const name = raw.trim();
    if (!PERSON_NAME.test(name)) {
      throw validation(
        'name',
        'must be 1–64 letters, digits, dots, underscores or hyphens, starting with a letter or digit',
      );
    }
    if (isId('approver', name)) throw validation('name', 'must not look like an approver id (apr_…)');
    const configured = this.configuredNames.get(name.toLowerCase());
    if (configured !== undefined) {
      throw new AppError(
        'APPROVER_NAME_TAKEN',
        `"${configured}" is a person in APPROVER_LINKS; choose another name, or move the person out of APPROVER_LINKS first`,
        { name, source: 'APPROVER_LINKS' },
      );
    }
    return name;
  }

  /** Each written as its channel writes user ids, none of APPROVER_LINKS's; duplicates dropped. */
  private checkIdentities(identities: readonly string[], path: string): string[] {
    if (identities.length > IDENTITIES_MAX) {
      throw validation(path, `at most ${IDENTITIES_MAX} identities per approver`);
    }
    const unique = [...new Set(identities.map((i) => i.trim()))];
    for (const [index, identity] of unique.entries()) {
      if (!this.syntax.accepts(identity)) {
        throw validation(`${path}.${index}`, `"${identity.slice(0, 80)}": expected ${this.syntax.expected}`);
      }
      const person = this.configured.persons.get(identity);
      if (person !== undefined) {
        throw new AppError(
          'APPROVER_IDENTITY_TAKEN',
          `${identity} is linked to the person "${person}" in APPROVER_LINKS`,
          { identity, person, source: 'APPROVER_LINKS' },
        );
      }
    }
    return unique;
  }

  /** An identity is one approver's: another's is refused naming them (`self` may already hold it). */
  private async assertIdentitiesFree(tx: Queryable, identities: readonly string[], self: string | null) {
    const owner = (await identityOwners(tx, identities)).find((o) => o.approverId !== self);
    if (owner) throw identityTaken(owner);
  }

  /** The unique index and key, hit by a concurrent create or update, are 409s too. */
  private async withConflicts<T>(
    name: string | undefined,
    identities: readonly string[],
    self: string | null,
    work: () => Promise<T>,
  ): Promise<T> {
    try {
      return await work();
    } catch (err) {
      const conflict = approverConflict(err);
      if (conflict === 'name' && name !== undefined) {
        const holder = await findApproverByName(this.db, name);
        throw new AppError(
          'APPROVER_NAME_TAKEN',
          `An approver named "${holder?.name ?? name}"${holder ? ` (${holder.id})` : ''} already exists; names are unique, case-insensitively`,
          { name, approverId: holder?.id ?? null },
        );
      }
      if (conflict === 'identity') {
        const owner = (await identityOwners(this.db, identities)).find((o) => o.approverId !== self);
        if (owner) throw identityTaken(owner);
      }
      throw err;
    }
  }
}

function checkEmail(email: string | null | undefined): string | null {
  if (email === undefined || email === null) return null;
  const trimmed = email.trim();
  if (!EMAIL.test(trimmed)) throw validation('email', 'must be an email address (name@domain)');
  return trimmed;
}

const validation = (path: string, message: string) =>
  new AppError('VALIDATION_ERROR', path ? `Invalid request: ${path}: ${message}` : message, {
    issues: [{ path, message }],
  });

const identityTaken = (owner: { identity: string; approverId: string; name: string }) =>
  new AppError(
    'APPROVER_IDENTITY_TAKEN',
    `${owner.identity} is already an identity of the approver "${owner.name}" (${owner.approverId}); remove it there first`,
    { identity: owner.identity, approverId: owner.approverId, name: owner.name },
  );

const notFound = (idOrName: string) =>
  new AppError(
    'NOT_FOUND',
    `No approver has the id or name "${idOrName.slice(0, 100)}" (approver:list shows them)`,
  );
