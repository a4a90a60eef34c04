import { type DestinationStream, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

/**
 * Credentials must never reach a log line. Two layers:
 * 1. pino `redact` for the places we know hold them (headers, named fields);
 * 2. a scrubber over every logged value that masks anything shaped like one of our credentials
 *    (agent and operator keys, one-time tokens, webhook secrets, Slack/Discord tokens), so a key
 *    that ends up in an error message or an unexpected field is still masked.
 */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'req.headers["x-slack-signature"]',
  'headers.authorization',
  'headers["x-api-key"]',
  '*.authorization',
  '*.apiKey',
  '*.token',
  '*.tokenHash',
  '*.secret',
  '*.password',
  '*.adminToken',
  '*.webhookSecret',
  'apiKey',
  'token',
  'secret',
  'password',
  'adminToken',
  'webhookSecret',
];

export const CREDENTIAL_PATTERN =
  /\b(?:ak_(?:live|test)_[A-Za-z0-9]{8,}|uk_[A-Za-z0-9_-]{8,}|otp_v1_[A-Za-z0-9_-]{8,}|whsec_[A-Za-z0-9+/=_-]{8,}|xox[abposr]-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,})/g;

export function scrubString(value: string): string {
  return value.replace(CREDENTIAL_PATTERN, (match) => `${match.slice(0, match.indexOf('_') + 1)}[REDACTED]`);
}

function scrub(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return scrubString(value);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    const copy: Record<string, unknown> = {
      type: value.name,
      message: scrubString(value.message),
      stack: value.stack ? scrubString(value.stack) : undefined,
    };
    for (const [k, v] of Object.entries(value)) copy[k] = scrub(v, depth + 1);
    return copy;
  }
  if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
  if (value instanceof Date || Buffer.isBuffer(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = scrub(v, depth + 1);
  return out;
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'agent-otp' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      formatters: {
        log: (object) => scrub(object, 0) as Record<string, unknown>,
      },
      hooks: {
        // Scrub interpolated message strings too (logger.info('x %s', value)).
        logMethod(args, method) {
          method.apply(
            this,
            args.map((a) => (typeof a === 'string' ? scrubString(a) : a)) as Parameters<typeof method>,
          );
        },
      },
    },
    destination,
  );
}
