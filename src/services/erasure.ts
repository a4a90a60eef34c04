import type { Actor } from '../core/audit/index.js';
import {
  jsonNeedle,
  MIN_SUBJECT_LENGTH,
  namesSubject,
  REDACTED,
  redactText,
  redactValue,
} from '../core/erasure.js';
import { AppError } from '../core/errors.js';
import type { Db, Queryable } from '../store/db.js';
import {
  configurationMentioning,
  type DeliveryCopy,
  deliveriesMentioning,
  type Needles,
  type PermissionCopy,
  permissionsMentioning,
  rewriteDeliveries,
  rewritePermissions,
  staleChatMessagesOf,
} from '../store/erasureRepository.js';
import type { AuditService, RedactionResult } from './audit.js';
import type { PermissionService } from './permissions.js';

/** What an erasure changed (or, on a dry run, would change), per kind of copy. */
export interface ErasureReport extends RedactionResult {
  /** Permission rows rewritten. */
  permissions: number;
  /** How many rows had each column rewritten (`context`, `resource`, `scope`, …). */
  permissionFields: Record<string, number>;
  /** Webhook deliveries rewritten (payload, target or error; a pending one to a target naming the subject is dead). */
  webhookDeliveries: number;
  /** Posted Slack/Discord messages that are edited to show the redacted request. */
  chatMessages: number;
  /**
   * Live permissions (pending or approved) whose enforced terms — scope, approvers, votes —
   * named the subject: revoked first (on a dry run: would be), since erased terms cannot be enforced.
   */
  revoked: string[];
  /** Operator configuration still naming the subject, left for the operator to edit. */
  leftInConfiguration: { agents: number; policies: number; approvers: number };
}

type ErasureCopies = Omit<ErasureReport, keyof RedactionResult>;

export type ErasureListener = (erased: { eventId: string; chatPermissionIds: string[] }) => void;

const PAGE = 500;
const ATTEMPTS = 3;
const REVOKE_REASON = 'Revoked: its terms named a person whose data was erased (GDPR)';
const DEAD_DELIVERY = 'Erased: the target address named a person whose data was erased (GDPR)';

/** The columns whose change would alter what an approved permission enforces. */
const ENFORCED: ReadonlySet<string> = new Set(['scope', 'approval', 'approvals']);

/**
 * Whether an erasure must revoke the permission first. An approved one: when its enforced terms
 * change (erasing a blocked recipient would widen the grant). A pending one: when anything
 * changes — its context feeds the self-approval ban (`context.user_id`), and a human would be
 * deciding a request whose terms were blacked out; the agent can ask again.
 */
function mustRevoke(status: string, fields: readonly string[]): boolean {
  if (status === 'pending') return fields.length > 0;
  return status === 'approved' && fields.some((f) => ENFORCED.has(f));
}

/** Inside the erasure transaction: a live permission still names the subject in its terms. */
class StillLive extends Error {}

/**
 * Erasure of a person's data (GDPR) from every copy we hold: the audit trail (AuditService),
 * permission rows, webhook deliveries, and — through a message-update job after commit — the
 * Slack and Discord messages we posted. One transaction with its `audit.redacted` event;
 * live permissions whose terms name the person are revoked just before, as an operator would.
 */
export class ErasureService {
  private readonly listeners: ErasureListener[] = [];

  constructor(
    private readonly db: Db,
    private readonly audit: AuditService,
    private readonly permissions: PermissionService,
  ) {}

  /** Told after an erasure committed: the permissions whose chat messages need editing. */
  onErased(listener: ErasureListener): void {
    this.listeners.push(listener);
  }

  async erase(subject: string, actor: Actor, opts: { dryRun?: boolean } = {}): Promise<ErasureReport> {
    const trimmed = subject.trim();
    if (trimmed.length < MIN_SUBJECT_LENGTH) {
      throw new AppError(
        'VALIDATION_ERROR',
        `The subject must have at least ${MIN_SUBJECT_LENGTH} characters`,
      );
    }
    const needles: Needles = { text: trimmed, json: jsonNeedle(trimmed) };
    if (opts.dryRun) {
      return this.audit.redact<ErasureCopies>(trimmed, actor, {
        dryRun: true,
        copies: (tx) => this.copies(tx, needles, trimmed, null, []).then((c) => c.report),
      });
    }
    const revoked: string[] = [];
    for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
      for (const id of await this.liveNaming(needles, trimmed)) {
        await this.revoke(id, actor);
        if (!revoked.includes(id)) revoked.push(id);
      }
      let chatPermissionIds: string[] = [];
      try {
        const report = await this.audit.redact<ErasureCopies>(trimmed, actor, {
          copies: async (tx, redactedAt) => {
            const copies = await this.copies(tx, needles, trimmed, redactedAt, revoked);
            chatPermissionIds = copies.chatPermissionIds;
            return copies.report;
          },
        });
        const eventId = report.eventId ?? '';
        for (const listener of this.listeners) listener({ eventId, chatPermissionIds });
        return report;
      } catch (err) {
        // A permission naming the subject became live (or was created) meanwhile: revoke it too.
        if (err instanceof StillLive) continue;
        throw err;
      }
    }
    throw new AppError(
      'CONFLICT',
      'Permissions naming the subject kept changing during the erasure; try again',
    );
  }

  private async revoke(id: string, actor: Actor): Promise<void> {
    try {
      await this.permissions.revoke({ operator: true }, id, { actor }, REVOKE_REASON);
    } catch (err) {
      // Used or expired meanwhile: no longer live, nothing to revoke.
      if (!(err instanceof AppError && err.code === 'CONFLICT')) throw err;
    }
  }

  /** Live permissions whose enforced terms name the subject. */
  private async liveNaming(needles: Needles, subject: string): Promise<string[]> {
    const ids: string[] = [];
    await this.eachPermission(this.db, needles, false, async (page) => {
      for (const row of page) if (redactPermission(row, subject)?.revoke) ids.push(row.id);
    });
    return ids;
  }

  private async eachPermission(
    db: Queryable,
    needles: Needles,
    lock: boolean,
    onPage: (page: PermissionCopy[]) => Promise<void>,
  ): Promise<void> {
    let after = '';
    for (;;) {
      const page = await permissionsMentioning(db, needles, after, PAGE, lock);
      await onPage(page);
      if (page.length < PAGE) return;
      after = page[page.length - 1]?.id ?? after;
    }
  }

  /**
   * Every copy outside the audit trail, in the erasure's transaction (rows locked), or only
   * counted when `redactedAt` is null (dry run).
   */
  private async copies(
    tx: Queryable,
    needles: Needles,
    subject: string,
    redactedAt: Date | null,
    revoked: string[],
  ): Promise<{ report: ErasureCopies; chatPermissionIds: string[] }> {
    const apply = redactedAt !== null;
    const permissionFields: Record<string, number> = {};
    const changedIds: string[] = [];
    const wouldRevoke: string[] = [];
    await this.eachPermission(tx, needles, apply, async (page) => {
      const rewritten: PermissionCopy[] = [];
      for (const row of page) {
        const redacted = redactPermission(row, subject);
        if (!redacted) continue;
        if (redacted.revoke) {
          if (apply) throw new StillLive();
          wouldRevoke.push(row.id);
        }
        rewritten.push(redacted.copy);
        changedIds.push(row.id);
        for (const field of redacted.fields) permissionFields[field] = (permissionFields[field] ?? 0) + 1;
      }
      if (apply) await rewritePermissions(tx, rewritten);
    });

    let webhookDeliveries = 0;
    let after = '';
    for (;;) {
      const page = await deliveriesMentioning(tx, needles, after, PAGE, apply);
      const rewritten = page.flatMap((d) => {
        const copy = redactDelivery(d, subject);
        return copy ? [copy] : [];
      });
      if (apply) await rewriteDeliveries(tx, rewritten);
      webhookDeliveries += rewritten.length;
      if (page.length < PAGE) break;
      after = page[page.length - 1]?.id ?? after;
    }

    const chat = await staleChatMessagesOf(tx, changedIds, !apply);
    return {
      report: {
        permissions: changedIds.length,
        permissionFields,
        webhookDeliveries,
        chatMessages: chat.messages,
        revoked: apply ? revoked : wouldRevoke,
        leftInConfiguration: await configurationMentioning(tx, needles),
      },
      chatPermissionIds: chat.permissionIds,
    };
  }
}

/**
 * The permission with every value naming the subject redacted, which columns changed, and
 * whether it must be revoked first (live, with enforced terms naming the subject); null when
 * nothing in it names the subject. A webhook target or idempotency key naming the subject is
 * cleared rather than replaced (a placeholder would be a broken URL or a shared key).
 */
export function redactPermission(
  row: PermissionCopy,
  subject: string,
): { copy: PermissionCopy; fields: string[]; revoke: boolean } | null {
  const fields: string[] = [];
  const json = <T>(field: string, value: T): T => {
    const { value: redacted, changed } = redactValue(value, subject);
    if (changed) fields.push(field);
    return redacted as T;
  };
  const text = (field: string, value: string | null, replacement: string | null = REDACTED) => {
    if (value === null || !namesSubject(value, subject)) return value;
    fields.push(field);
    return replacement;
  };
  const copy: PermissionCopy = {
    ...row,
    action: text('action', row.action) ?? REDACTED,
    resource: text('resource', row.resource),
    requestedScope: json('requestedScope', row.requestedScope),
    scope: json('scope', row.scope),
    context: json('context', row.context),
    decisionReason: text('decisionReason', row.decisionReason),
    decidedBy: json('decidedBy', row.decidedBy),
    approval: json('approval', row.approval),
    approvals: json('approvals', row.approvals),
    webhookUrl: text('webhookUrl', row.webhookUrl, null),
    idempotencyKey: text('idempotencyKey', row.idempotencyKey, null),
  };
  if (fields.length === 0) return null;
  return { copy, fields, revoke: mustRevoke(row.status, fields) };
}

/** A delivery with its payload and error redacted; one to a target naming the subject is dead. */
export function redactDelivery(d: DeliveryCopy, subject: string): DeliveryCopy | null {
  const payload = redactValue(d.payload, subject);
  const urlNames = namesSubject(d.url, subject);
  const lastError = redactText(d.lastError, subject);
  if (!payload.changed && !urlNames && lastError === d.lastError) return null;
  return {
    ...d,
    payload: payload.value as Record<string, unknown>,
    url: urlNames ? REDACTED : d.url,
    status: urlNames && d.status === 'pending' ? 'dead' : d.status,
    lastError: urlNames && d.status === 'pending' ? DEAD_DELIVERY : lastError,
  };
}
