import { createRequire } from 'node:module';
import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/**
 * Credentials must never reach a log line. Three layers:
 * 1. pino `redact` for the places we know hold them (request headers);
 * 2. any field whose name says it holds a secret (token, apiKey, authorization, …) is replaced,
 *    at any depth;
 * 3. the finished line is scrubbed of anything shaped like one of our credentials (agent and
 *    operator keys, one-time tokens, webhook secrets, Slack tokens), however it got there: an
 *    error message, an interpolated object, a deeply nested payload.
 */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'req.headers["x-slack-signature"]',
];

const SECRET_FIELD =
  /^(authorization|x-api-key|cookie|api_?key|admin_?token|token|token_?hash|password|.*secret)$/i;
const MAX_DEPTH = 32;

export const CREDENTIAL_PATTERN =
  /\b(?:ak_(?:live|test)_[A-Za-z0-9]{8,}|uk_[A-Za-z0-9_-]{8,}|otp_v1_[A-Za-z0-9_-]{8,}|whsec_[A-Za-z0-9+/=_-]{8,}|xox[abposr]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,})/g;

export function scrubString(value: string): string {
  return value.replace(CREDENTIAL_PATTERN, (match) => `${match.slice(0, match.indexOf('_') + 1)}[REDACTED]`);
}

function redactSecretFields(value: unknown, depth: number): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (depth > MAX_DEPTH) return '[too deep]';
  // Errors go to pino's serializer untouched; their text is scrubbed with the finished line.
  if (value instanceof Error || value instanceof Date || Buffer.isBuffer(value)) return value;
  if (Array.isArray(value)) return value.map((v) => redactSecretFields(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] =
      SECRET_FIELD.test(k) && v !== null && v !== undefined ? '[REDACTED]' : redactSecretFields(v, depth + 1);
  }
  return out;
}

/** `pretty`: one readable line per event (pino-pretty) for a person at a terminal; `json`: one JSON object per line, for log shippers. */
export type LogFormat = 'pretty' | 'json';

/** LOG_FORMAT unset: pretty when a person is watching stdout, JSON when it is piped or collected. */
export function defaultLogFormat(stdoutIsTTY = process.stdout.isTTY === true): LogFormat {
  return stdoutIsTTY ? 'pretty' : 'json';
}

export interface LoggerOptions {
  /** Default: defaultLogFormat(); JSON when a destination is given. */
  format?: LogFormat | undefined;
  /** Default: stdout. */
  destination?: DestinationStream;
  /** Colours in pretty mode. Default: when stdout is a terminal. */
  colorize?: boolean;
}

/**
 * Pretty printing in-process, not as a pino transport: a transport is a worker thread (about 30 ms
 * more at start, and lines lost when the process exits before the thread drains). Each finished
 * line — redacted and scrubbed exactly as in JSON mode — is parsed and re-laid out by pino-pretty's
 * formatter, then written to the same asynchronous destination. pino-pretty is loaded only here,
 * so JSON mode (production) does not pay for it.
 */
function prettyDestination(inner: DestinationStream, colorize: boolean): DestinationStream {
  const { prettyFactory } = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
  const prettify = prettyFactory({
    colorize,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname,service',
  });
  const flushable = inner as DestinationStream & { flush?: (cb?: (err?: Error) => void) => void };
  return {
    write: (line: string) => inner.write(prettify(line)),
    ...(flushable.flush ? { flush: (cb?: (err?: Error) => void) => flushable.flush?.(cb) } : {}),
  } as DestinationStream;
}

/** Characters of log lines (ASCII JSON: about bytes) held before they go to stdout, and the longest a line is held. */
const LOG_BATCH_CHARS = 4096;
const LOG_BATCH_MS = 100;

/**
 * stdout, written in batches: lines are held until 4 KB are waiting or 100 ms have passed. Each
 * write is a system call on a libuv pool thread, which wakes that thread and the reader of the
 * pipe; one per access-log line cost 10–15 % of a verify's server CPU at 4 connections
 * (`npm run bench`, 4 connections, five interleaved pairs). Held lines are written synchronously
 * when the process exits (process.exit, a signal handled by shutdown, an uncaught error); only a
 * SIGKILL or a crash of the machine loses them, at most the last 100 ms.
 */
class BatchedStdout implements DestinationStream {
  private held: string[] = [];
  private heldChars = 0;
  private handOverScheduled = false;

  constructor(private readonly inner: ReturnType<typeof pino.destination>) {
    setInterval(() => this.handOver(), LOG_BATCH_MS).unref();
    // Writes what this holds and what `inner` holds, whether or not pino's own hook ran first.
    process.once('exit', () => this.flushSync());
  }

  write(line: string): boolean {
    this.held.push(line);
    this.heldChars += line.length;
    // A full batch goes at the end of this turn, not at once: a process that logs a burst and
    // exits in the same turn then has no write in flight, and the exit writes every line in order.
    if (this.heldChars >= LOG_BATCH_CHARS && !this.handOverScheduled) {
      this.handOverScheduled = true;
      setImmediate(() => this.handOver());
    }
    return true;
  }

  flush(cb?: (err?: Error) => void): void {
    this.handOver();
    this.inner.flush(cb);
  }

  flushSync(): void {
    this.handOver();
    try {
      this.inner.flushSync();
    } catch {
      // stdout closed or not open yet: nothing more can be written.
    }
  }

  private handOver(): void {
    this.handOverScheduled = false;
    if (this.held.length === 0) return;
    const chunk = this.held.length === 1 ? (this.held[0] as string) : this.held.join('');
    this.held = [];
    this.heldChars = 0;
    // sonic-boom writes asynchronously, coalescing whatever arrives while a write is in flight.
    this.inner.write(chunk);
  }
}

/** One per process, shared by every logger without a destination of its own: stdout is one. */
let processStdout: BatchedStdout | null = null;
function batchedStdout(): BatchedStdout {
  processStdout ??= new BatchedStdout(pino.destination({ dest: 1, sync: false }));
  return processStdout;
}

/**
 * Logs go to stdout asynchronously (a synchronous write per request line blocked the event loop on
 * a slow reader: 40 % of CPU time under load) and in batches (BatchedStdout). Call flushLogger
 * before a planned exit; any exit but a SIGKILL writes what is held.
 */
export function createLogger(level: string, output: DestinationStream | LoggerOptions = {}): Logger {
  const options: LoggerOptions = 'write' in output ? { destination: output } : output;
  const format = options.format ?? (options.destination ? 'json' : defaultLogFormat());
  const stdout = options.destination ?? batchedStdout();
  const dest =
    format === 'pretty'
      ? prettyDestination(stdout, options.colorize ?? process.stdout.isTTY === true)
      : stdout;
  return pino(
    {
      level,
      base: { service: 'agent-otp' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      formatters: {
        log: (object) => redactSecretFields(object, 0) as Record<string, unknown>,
      },
      hooks: {
        streamWrite: scrubString,
      },
    },
    dest,
  );
}

/** Writes out buffered log lines; call before the process exits. */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // Nothing buffered, or stdout already closed.
  }
}

/**
 * Reports an outage of a dependency in two lines instead of one per failed call: the first
 * failure is a warning (what fails and what the service does instead), later ones are only
 * counted, and the first success after them logs the recovery with that count. Calling
 * `succeeded()` on the hot path costs one comparison.
 */
export class OutageLog {
  private failures = 0;

  constructor(
    private readonly logger: Logger,
    /** What is unavailable, e.g. "rate limiter". */
    private readonly what: string,
    /** What the service does meanwhile, e.g. "allowing requests". */
    private readonly meanwhile: string,
  ) {}

  get down(): boolean {
    return this.failures > 0;
  }

  failed(err: unknown, fields: Record<string, unknown> = {}): void {
    this.failures += 1;
    if (this.failures > 1) return;
    const message = err instanceof Error ? err.message : String(err);
    this.logger.warn({ err: message, ...fields }, `${this.what} unavailable; ${this.meanwhile}`);
  }

  succeeded(): void {
    if (this.failures === 0) return;
    this.logger.info({ failedCalls: this.failures }, `${this.what} available again`);
    this.failures = 0;
  }
}
