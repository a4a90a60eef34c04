/**
 * Export formats of the audit trail: JSON lines, and CSV (RFC 4180) with cells that a
 * spreadsheet would run as a formula (= + - @, tab, CR) prefixed with a quote.
 */

export interface ExportRow {
  seq: number;
  id: string;
  occurredAt: Date;
  type: string;
  actorType: string;
  /** JSON text, written as it is (no parse and re-serialise per row). */
  actorJson: string;
  agentId: string | null;
  permissionId: string | null;
  detailsJson: string;
  ip: string | null;
  userAgent: string | null;
  detailsHash: string;
  chainIndex: number | null;
  prevHash: string | null;
  hash: string | null;
  redactedAt: Date | null;
}

export type ExportFormat = 'jsonl' | 'csv';

export const CSV_COLUMNS = [
  'seq',
  'id',
  'occurred_at',
  'type',
  'actor_type',
  'actor',
  'agent_id',
  'permission_id',
  'details',
  'ip',
  'user_agent',
  'details_hash',
  'chain_index',
  'prev_hash',
  'hash',
  'redacted_at',
] as const;

const FORMULA_START = /^[=+\-@\t\r]/;

/** A JSON text cell: JSON never starts with a formula character, so only quoting applies. */
function csvJsonCell(json: string): string {
  return `"${json.replace(/"/g, '""')}"`;
}

/** One CSV cell: formula-injection guard, then quoted when it holds a quote, comma or newline. */
export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  let text =
    value instanceof Date
      ? value.toISOString()
      : typeof value === 'object'
        ? JSON.stringify(value)
        : String(value);
  if (typeof value === 'string' && FORMULA_START.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvHeader(): string {
  return `${CSV_COLUMNS.join(',')}\r\n`;
}

const JSON_CELL = Symbol('json');

export function csvLine(e: ExportRow): string {
  return `${[
    e.seq,
    e.id,
    e.occurredAt,
    e.type,
    e.actorType,
    JSON_CELL,
    e.agentId,
    e.permissionId,
    JSON_CELL,
    e.ip,
    e.userAgent,
    e.detailsHash,
    e.chainIndex,
    e.prevHash,
    e.hash,
    e.redactedAt,
  ]
    .map((v, i) => (v === JSON_CELL ? csvJsonCell(i === 5 ? e.actorJson : e.detailsJson) : csvCell(v)))
    .join(',')}\r\n`;
}

const str = (v: string | null) => (v === null ? 'null' : JSON.stringify(v));

/** One JSON object per line; actor and details are spliced in as the stored JSON text. */
export function jsonLine(e: ExportRow): string {
  return (
    `{"seq":${e.seq},"id":${str(e.id)},"occurredAt":"${e.occurredAt.toISOString()}","type":${str(e.type)},` +
    `"actor":${e.actorJson},"agentId":${str(e.agentId)},"permissionId":${str(e.permissionId)},` +
    `"details":${e.detailsJson},"ip":${str(e.ip)},"userAgent":${str(e.userAgent)},` +
    `"detailsHash":${str(e.detailsHash)},"chainIndex":${e.chainIndex ?? 'null'},"prevHash":${str(e.prevHash)},` +
    `"hash":${str(e.hash)},"redactedAt":${e.redactedAt ? `"${e.redactedAt.toISOString()}"` : 'null'}}\n`
  );
}
