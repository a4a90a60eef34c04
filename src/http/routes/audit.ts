import type { Writable } from 'node:stream';
import { z } from 'zod';
import { csvHeader, csvLine, type ExportFormat, jsonLine } from '../../core/audit/export.js';
import { ACTOR_PLATFORM, ACTOR_TYPES } from '../../core/audit/index.js';
import { AppError } from '../../core/errors.js';
import { isStorableDate } from '../../core/storable.js';
import type { AgentService } from '../../services/agents.js';
import type { AuditService } from '../../services/audit.js';
import type { ErasureService } from '../../services/erasure.js';
import type { StoredAuditEvent } from '../../store/auditRepository.js';
import { agentFilterFields, agentFilterOf, checkEventType } from '../agentFilter.js';
import type { Router } from '../route.js';

const date = z
  .string()
  .max(40)
  .transform((v, ctx) => {
    const d = new Date(v);
    // JavaScript dates reach ±275760 years, Postgres' timestamps only 4713 BC–294276 AD.
    if (!isStorableDate(d)) {
      ctx.addIssue({ code: 'custom', message: 'must be an ISO 8601 date between 0001-01-01 and 9999-12-31' });
      return z.NEVER;
    }
    return d;
  });

const listQuery = z
  .object({
    ...agentFilterFields,
    permission_id: z.string().max(100).optional(),
    event_type: z.string().max(100).optional(),
    action: z.string().max(200).optional(),
    start_date: date.optional(),
    end_date: date.optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    // A sequence number: 15 digits stay exact as a JavaScript number and fit the bigint column.
    cursor: z
      .string()
      .regex(/^\d{1,15}$/, 'must be the nextCursor of an earlier page')
      .optional(),
  })
  .strict();

const exportQuery = z
  .object({
    format: z.enum(['jsonl', 'csv']).default('jsonl'),
    ...agentFilterFields,
    event_type: z.string().max(100).optional(),
    start_date: date.optional(),
    end_date: date.optional(),
    /** true: the answer carries X-Total-Count (one count(*) more, so only when asked: a progress bar). */
    count: z.enum(['true', 'false']).optional(),
  })
  .strict();

/** Characters per socket write of an export: small enough for V8's young generation. */
const EXPORT_CHUNK_CHARS = 16_384;

/** Resolves when the stream has drained its buffer or closed. */
function drained(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

const redactBody = z
  .object({
    subject: z.string().trim().min(3).max(500),
    /** Report what would change, change nothing. */
    dryRun: z.boolean().optional(),
  })
  .strict();

const actorResponse = z.object({
  type: z.enum(ACTOR_TYPES),
  id: z.string().optional(),
  name: z.string().optional(),
  platform: z.string().regex(ACTOR_PLATFORM).optional(),
  teamId: z.string().optional(),
  guildId: z.string().optional(),
  userId: z.string().optional(),
  userName: z.string().optional(),
  person: z.string().optional(),
  credentialId: z.string().optional(),
});

const eventResponse = z.object({
  id: z.string(),
  occurredAt: z.string(),
  type: z.string(),
  actor: actorResponse,
  agentId: z.string().nullable(),
  permissionId: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
  ip: z.string().nullable(),
  userAgent: z.string().nullable(),
  sealed: z.boolean(),
  chainIndex: z.number().nullable(),
  hash: z.string().nullable(),
});

const verifyResponse = z.object({
  valid: z.boolean(),
  checked: z.number(),
  unsealed: z.number(),
  firstBroken: z.object({ id: z.string(), chainIndex: z.number(), reason: z.string() }).optional(),
});

const redactResponse = z.object({
  dryRun: z.boolean(),
  events: z.number(),
  eventOrigins: z.number(),
  eventActorsKept: z.number(),
  eventId: z.string().nullable(),
  permissions: z.number(),
  permissionFields: z.record(z.string(), z.number()),
  webhookDeliveries: z.number(),
  chatMessages: z.number(),
  revoked: z.array(z.string()),
  leftInConfiguration: z.object({ agents: z.number(), policies: z.number(), approvers: z.number() }),
});

export function auditDto(e: StoredAuditEvent) {
  return {
    id: e.id,
    occurredAt: e.occurredAt.toISOString(),
    type: e.type,
    actor: e.actor,
    agentId: e.agentId,
    permissionId: e.permissionId,
    details: e.details,
    ip: e.ip,
    userAgent: e.userAgent,
    sealed: e.chainIndex !== null,
    chainIndex: e.chainIndex,
    hash: e.hash,
  };
}

export function registerAuditRoutes(
  route: Router,
  audit: AuditService,
  erasure: ErasureService,
  agents: AgentService,
): void {
  route({
    method: 'GET',
    url: '/api/v1/audit',
    auth: 'operator',
    tag: 'audit',
    summary: 'Query the audit trail, newest first',
    query: listQuery,
    response: z.object({ events: z.array(eventResponse), nextCursor: z.string().nullable() }),
    async handler({ query }) {
      if (query.start_date && query.end_date && query.start_date > query.end_date) {
        throw new AppError('VALIDATION_ERROR', 'start_date is after end_date');
      }
      checkEventType(query.event_type);
      const page = await audit.list({
        agentId: await agents.resolveFilter(agentFilterOf(query)),
        permissionId: query.permission_id,
        eventType: query.event_type,
        action: query.action,
        startDate: query.start_date,
        endDate: query.end_date,
        beforeSeq: query.cursor ? Number(query.cursor) : undefined,
        limit: query.limit,
      });
      const last = page[page.length - 1];
      return {
        data: {
          events: page.map(auditDto),
          nextCursor: page.length === query.limit && last ? String(last.seq) : null,
        },
      };
    },
  });

  route({
    method: 'POST',
    url: '/api/v1/audit/verify',
    auth: 'operator',
    tag: 'audit',
    summary: 'Walk the hash chain and name the first broken link',
    response: verifyResponse,
    async handler() {
      await audit.sealPending();
      return { data: await audit.verify() };
    },
  });

  route({
    method: 'GET',
    url: '/api/v1/audit/export',
    auth: 'operator',
    tag: 'audit',
    summary: 'Stream the audit trail as JSON lines or CSV, oldest first',
    query: exportQuery,
    stream: {
      contentTypes: ['application/x-ndjson', 'text/csv'],
      description: 'One audit event per line (JSON lines or CSV with a header row), oldest first',
      headers: {
        'X-Total-Count': 'With count=true: how many events the export holds (counted when it began)',
      },
    },
    async handler({ query, reply, request, origin }) {
      if (query.start_date && query.end_date && query.start_date > query.end_date) {
        throw new AppError('VALIDATION_ERROR', 'start_date is after end_date');
      }
      checkEventType(query.event_type);
      const agentId = await agents.resolveFilter(agentFilterOf(query));
      const format: ExportFormat = query.format;
      // Committed before the 200: an export that could not be audited is not sent.
      await audit.record({
        type: 'audit.exported',
        actor: origin.actor,
        ip: origin.ip,
        userAgent: origin.userAgent,
        details: {
          format,
          agentId: agentId ?? null,
          eventType: query.event_type ?? null,
          startDate: query.start_date?.toISOString() ?? null,
          endDate: query.end_date?.toISOString() ?? null,
        },
      });
      const filter = {
        agentId,
        eventType: query.event_type,
        startDate: query.start_date,
        endDate: query.end_date,
      };
      // Counted after the audit.exported event is committed, so it is included when it matches.
      // Events added while the export runs are exported too: the count is where the export
      // stood when it began, not a promise.
      const total = query.count === 'true' ? await audit.countExport(filter) : undefined;
      const raw = reply.raw;
      // The 200 and its headers go out with the first bytes of the export, once the first rows
      // have been read: a failure before that is still an ordinary JSON error answer.
      let started = false;
      const start = () => {
        if (started) return;
        started = true;
        reply.hijack();
        raw.writeHead(200, {
          'content-type':
            format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
          'content-disposition': `attachment; filename="audit-export.${format}"`,
          'cache-control': 'no-store',
          'x-request-id': request.id,
          ...(total === undefined ? {} : { 'x-total-count': String(total) }),
        });
        if (format === 'csv') raw.write(csvHeader());
      };
      let closed = false;
      raw.once('close', () => {
        closed = true;
      });
      // Lines are gathered into writes of ~16 KB: a page (~600 KB) in one string would be
      // allocated straight into V8's old generation and only freed by a full GC.
      let chunk = '';
      const flush = () => {
        start();
        if (chunk && !closed) raw.write(chunk);
        chunk = '';
      };
      const line = format === 'csv' ? csvLine : jsonLine;
      try {
        await audit.exportEvents(
          filter,
          (event) => {
            chunk += line(event);
            if (chunk.length >= EXPORT_CHUNK_CHARS) flush();
          },
          // Backpressure: the next page is read once the socket has taken this one (at most a
          // page is buffered), or not at all when the client has gone.
          async () => {
            flush();
            if (raw.writableNeedDrain && !closed) await drained(raw);
            return !closed;
          },
        );
        flush();
      } catch (err) {
        if (!started) throw err;
        request.log.error({ err }, 'audit export failed');
        raw.destroy(err as Error);
        return null;
      }
      raw.end();
      return null;
    },
  });

  route({
    method: 'POST',
    url: '/api/v1/audit/redact',
    auth: 'operator',
    tag: 'audit',
    summary:
      "Erase a person's data (GDPR) from the audit trail, permissions, webhook deliveries and posted chat messages; `dryRun` reports without changing",
    body: redactBody,
    response: redactResponse,
    async handler({ body, origin }) {
      return { data: await erasure.erase(body.subject, origin.actor, { dryRun: body.dryRun ?? false }) };
    },
  });
}
