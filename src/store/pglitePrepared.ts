import { type PGlite, types } from '@electric-sql/pglite';
import { serialize } from 'pg-protocol';
import { preparedAfresh } from './db.js';

/** A prepared statement: its name and the types Postgres inferred for its parameters. */
interface Prepared {
  name: string;
  paramTypes: readonly number[];
}

interface Field {
  name: string;
  dataTypeID: number;
}

/** Generated SQL (filters, pages) must not grow the statement cache without bound. */
const MAX_PREPARED = 500;

const DESCRIBE_PORTAL = serialize.describe({ type: 'P' });
const EXECUTE = serialize.execute({});
const SYNC = serialize.sync();

/**
 * Runs statements on PGlite as named prepared statements, each call ONE trip into the wasm
 * Postgres (Bind, Describe, Execute and Sync in one buffer). PGlite's own query() makes six trips
 * (Parse, Describe, Bind, Describe, Execute, Sync) and has Postgres parse and analyse the text
 * every time; on the embedded default that was a large part of each request. Values are
 * serialised and rows parsed with PGlite's own type handlers, as its query() does, so callers see
 * the same rows. Like pg, each call describes its result columns afresh, so a table changed by a
 * migration is read by its new columns.
 *
 * Not a lock: callers run it where PGlite's query() would hold PGlite's locks (see
 * createPgliteDb). Each trip is synchronous inside PGlite, so nothing interleaves within one.
 */
export class PglitePrepared {
  /** By SQL text; a promise, so callers that miss together share one Parse. */
  private readonly prepared = new Map<string, Promise<Prepared>>();
  private named = 0;

  constructor(private readonly pglite: PGlite) {}

  /** False once the cache is full and sql is not in it: run it with PGlite's query() instead. */
  accepts(sql: string): boolean {
    return this.prepared.has(sql) || this.prepared.size < MAX_PREPARED;
  }

  /** Runs sql with params; outside a transaction PGlite syncs its files after, as its query() does. */
  async query(
    sql: string,
    params: readonly unknown[],
    { inTransaction }: { inTransaction: boolean },
  ): Promise<Record<string, unknown>[]> {
    // As PGlite's query() does: a clear error once it is closing or closed, and waits until ready.
    await this.pglite._checkReady();
    return preparedAfresh(
      async () => this.execute(await (this.prepared.get(sql) ?? this.prepare(sql)), params, !inTransaction),
      () => this.prepared.delete(sql),
      inTransaction,
    );
  }

  /**
   * Forgets every statement, so each is prepared afresh on its next call: after DDL, which can
   * change the columns of `SELECT *`. Not deallocated, so a call already holding one still runs.
   */
  forget(): void {
    this.prepared.clear();
  }

  private async execute(
    statement: Prepared,
    params: readonly unknown[],
    syncToFs: boolean,
  ): Promise<Record<string, unknown>[]> {
    const serializers = this.pglite.serializers;
    const values = params.map((value, i) => {
      if (value === null || value === undefined) return null;
      const serializer = serializers[statement.paramTypes[i] as number];
      return serializer ? serializer(value) : String(value);
    });
    const { messages } = await this.pglite.execProtocol(
      Buffer.concat([serialize.bind({ statement: statement.name, values }), DESCRIBE_PORTAL, EXECUTE, SYNC]),
      { syncToFs },
    );
    const parsers = this.pglite.parsers;
    let fields: readonly Field[] = [];
    const rows: Record<string, unknown>[] = [];
    for (const message of messages) {
      if (message.name === 'rowDescription') {
        fields = (message as unknown as { fields: Field[] }).fields;
      } else if (message.name === 'dataRow') {
        const values = (message as unknown as { fields: (string | null)[] }).fields;
        const row: Record<string, unknown> = {};
        for (let i = 0; i < values.length; i += 1) {
          const field = fields[i] as Field;
          row[field.name] = types.parseType(values[i] as string | null, field.dataTypeID, parsers);
        }
        rows.push(row);
      }
    }
    return rows;
  }

  private prepare(sql: string): Promise<Prepared> {
    const pending = this.parse(sql);
    this.prepared.set(sql, pending);
    // A statement Postgres refused is not remembered: the next call reports the same error.
    pending.catch(() => {
      if (this.prepared.get(sql) === pending) this.prepared.delete(sql);
    });
    return pending;
  }

  private async parse(sql: string): Promise<Prepared> {
    this.named += 1;
    const name = `aotp_${this.named}`;
    const { messages } = await this.pglite.execProtocol(
      Buffer.concat([serialize.parse({ name, text: sql }), serialize.describe({ type: 'S', name }), SYNC]),
      { syncToFs: false },
    );
    const described = messages.find((m) => m.name === 'parameterDescription') as unknown as
      | { dataTypeIDs: number[] }
      | undefined;
    return { name, paramTypes: described?.dataTypeIDs ?? [] };
  }
}
