import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { createLogger, defaultLogFormat, type Logger, scrubString } from '../../src/logger.js';

/** A logger writing to memory; `text()` is everything it wrote. */
function memoryLogger(level = 'info'): {
  logger: Logger;
  text(): string;
  lines(): Record<string, unknown>[];
} {
  const chunks: string[] = [];
  const logger = createLogger(level, {
    write(s: string) {
      chunks.push(s);
    },
  });
  return {
    logger,
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

const AGENT_LIVE = `ak_live_${'Lv9'.repeat(14)}`;
const AGENT_TEST = `ak_test_${'Ts7'.repeat(14)}`;
const OPERATOR = `uk_${'Op5'.repeat(14)}`;
const OTP = `otp_v1_${'Tk_-3'.repeat(9)}`;
const WEBHOOK = `whsec_${'Wh+/8'.repeat(8)}`;
const SLACK = 'xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx';
const SLACK_APP = 'xapp-1-A0123456789-1234567890123-abcdef0123456789';
const SHAPED = [AGENT_LIVE, AGENT_TEST, OPERATOR, OTP, WEBHOOK, SLACK, SLACK_APP];

/** Values with no recognisable shape: only the field name tells they are secret. */
const PLAIN = 'plain-secret-value-hunter2';

function expectClean(text: string, secrets: string[] = SHAPED): void {
  expect(text.length).toBeGreaterThan(0);
  for (const secret of secrets) expect(text).not.toContain(secret);
  // Not even a long fragment of one.
  for (const secret of secrets) expect(text).not.toContain(secret.slice(-16));
}

describe('createLogger', () => {
  it('writes JSON lines with the level, time, service and message', () => {
    const { logger, lines } = memoryLogger();
    logger.info({ agentId: 'agent_1' }, 'hello');
    logger.debug('not at info level');
    expect(lines()).toEqual([
      expect.objectContaining({ level: 30, service: 'agent-otp', agentId: 'agent_1', msg: 'hello' }),
    ]);
    expect(typeof lines()[0]?.time).toBe('string');
  });

  it('redacts Authorization and X-API-Key headers, however the request is logged', () => {
    const { logger, text, lines } = memoryLogger();
    logger.info({ req: { headers: { authorization: `Bearer ${PLAIN}`, 'x-api-key': PLAIN } } }, 'req');
    logger.info({ headers: { authorization: `Bearer ${PLAIN}`, 'x-api-key': PLAIN } }, 'headers');
    logger.info({ upstream: { authorization: `Basic ${PLAIN}` } }, 'nested');
    expectClean(text(), [PLAIN]);
    expect(lines()[0]).toMatchObject({ req: { headers: { authorization: '[REDACTED]' } } });
  });

  it('redacts apiKey, token, secret, password and webhookSecret fields', () => {
    const { logger, text, lines } = memoryLogger();
    logger.info({ apiKey: PLAIN, token: PLAIN, secret: PLAIN, password: PLAIN, webhookSecret: PLAIN }, 'top');
    logger.info({ agent: { apiKey: PLAIN, token: PLAIN, secret: PLAIN, adminToken: PLAIN } }, 'one level');
    expectClean(text(), [PLAIN]);
    expect(lines()[0]).toMatchObject({ apiKey: '[REDACTED]', token: '[REDACTED]', secret: '[REDACTED]' });
    // What is not a secret stays readable.
    logger.info({ agentId: 'agent_abc', action: 'email.send' }, 'fine');
    expect(text()).toContain('email.send');
  });

  it('redacts secret-named fields at any depth', () => {
    const { logger, text } = memoryLogger();
    logger.info({ authorization: `Bearer ${PLAIN}` }, 'top-level');
    logger.info({ config: { slack: { token: PLAIN, signingSecret: PLAIN, secret: PLAIN } } }, 'deep');
    logger.info({ body: { agent: { apiKey: PLAIN } } }, 'deep');
    expectClean(text(), [PLAIN]);
  });

  it.each(SHAPED.map((s) => [s.slice(0, s.search(/[_-]/) + 1), s]))(
    'masks a %s… credential inside a message, a field and an interpolated argument',
    (_prefix, secret) => {
      const { logger, text } = memoryLogger();
      logger.info(`calling upstream with ${secret} now`);
      logger.info({ note: `key=${secret};` }, 'field');
      logger.info('interpolated %s here', secret);
      logger.warn({ list: ['a', secret, { x: secret }] }, 'array');
      expectClean(text(), [secret]);
      expect(text()).toContain('[REDACTED]');
    },
  );

  it('masks credentials in nested objects', () => {
    const { logger, text } = memoryLogger();
    logger.info(
      {
        request: {
          body: { context: { metadata: { debug: `x ${AGENT_LIVE}`, other: [OTP, { w: WEBHOOK }] } } },
        },
        values: [[OPERATOR], { deeper: { slack: SLACK } }],
      },
      'nested',
    );
    expectClean(text());
  });

  it('masks credentials inside objects interpolated into the message (%o, %j)', () => {
    const { logger, text } = memoryLogger();
    logger.info('payload %o', { inner: AGENT_LIVE });
    logger.info('payload %j', { inner: [OTP] });
    expectClean(text(), [AGENT_LIVE, OTP]);
  });

  it('masks credentials nested however deep (e.g. a Slack Block Kit payload)', () => {
    const { logger, text } = memoryLogger();
    // body.message.blocks[0].elements[0].elements[0].text: the shape of a real Slack action payload.
    logger.info(
      { body: { message: { blocks: [{ elements: [{ elements: [{ text: `key ${AGENT_LIVE}` }] }] }] } } },
      'slack payload',
    );
    expectClean(text(), [AGENT_LIVE]);
  });

  it('masks credentials in Error messages and stacks', () => {
    const { logger, text, lines } = memoryLogger();
    const err = new TypeError(`upstream refused ${AGENT_TEST} and ${OTP}`);
    logger.error({ err }, 'call failed');
    logger.error({ cause: { inner: new Error(`token ${WEBHOOK}`) } }, 'wrapped');
    expectClean(text());
    const first = lines()[0] as { err: { message: string; stack: string } };
    expect(first.err.message).toContain('upstream refused');
    expect(first.err.stack).toContain('upstream refused');
  });

  it('masks credentials in an Error logged without a message of its own', () => {
    const { logger, text } = memoryLogger();
    // pino copies err.message into "msg" when no message is given: both forms are common.
    logger.error(new Error(`refused ${AGENT_LIVE}`));
    logger.error({ err: new Error(`refused ${OPERATOR}`) });
    expectClean(text(), [AGENT_LIVE, OPERATOR]);
  });
});

describe('LOG_FORMAT=pretty', () => {
  function prettyLogger(): { logger: Logger; text(): string } {
    const chunks: string[] = [];
    const logger = createLogger('info', {
      format: 'pretty',
      colorize: false,
      destination: {
        write(s: string) {
          chunks.push(s);
        },
      },
    });
    return { logger, text: () => chunks.join('') };
  }

  it('writes one readable line per event: time, level and message, fields below, no JSON envelope', () => {
    const { logger, text } = prettyLogger();
    logger.info({ agentId: 'agent_1' }, 'permission approved');
    logger.warn('redis slow');
    const out = text();
    expect(out).toMatch(/^\[\d{2}:\d{2}:\d{2}\.\d{3}\] INFO: permission approved\n\s+agentId: "agent_1"\n/);
    expect(out).toMatch(/\] WARN: redis slow\n/);
    expect(out).not.toContain('"level"');
    expect(out).not.toContain('agent-otp');
  });

  it('redacts Authorization headers, secret-named fields and credential-shaped strings as JSON mode does', () => {
    const { logger, text } = prettyLogger();
    logger.info({ req: { headers: { authorization: `Bearer ${PLAIN}`, 'x-api-key': PLAIN } } }, 'req');
    logger.info({ token: PLAIN, agent: { apiKey: PLAIN } }, 'fields');
    logger.info(`calling upstream with ${AGENT_LIVE} and ${OTP}`);
    logger.error({ err: new Error(`refused ${OPERATOR}`) }, 'failed');
    const out = text();
    expectClean(out, [PLAIN, AGENT_LIVE, OTP, OPERATOR]);
    expect(out).toContain('[REDACTED]');
    expect(out).toContain('calling upstream with ak_[REDACTED]');
  });

  it('is the default on a terminal; JSON when stdout is piped, or when LOG_FORMAT says so', () => {
    expect(defaultLogFormat(true)).toBe('pretty');
    expect(defaultLogFormat(false)).toBe('json');
    expect(loadConfig({ LOG_FORMAT: 'json' }).LOG_FORMAT).toBe('json');
    expect(loadConfig({}).LOG_FORMAT).toBeUndefined();
    expect(() => loadConfig({ LOG_FORMAT: 'yaml' })).toThrow(/LOG_FORMAT/);
  });
});

describe('scrubString', () => {
  it('keeps the kind of credential visible and masks the rest', () => {
    expect(scrubString(`a ${AGENT_LIVE} b`)).toBe('a ak_[REDACTED] b');
    expect(scrubString(`${OPERATOR}`)).toBe('uk_[REDACTED]');
    expect(scrubString('no credentials here, just ak_ and uk_ and otp_v1_x')).toBe(
      'no credentials here, just ak_ and uk_ and otp_v1_x',
    );
  });

  it('masks every occurrence, not only the first', () => {
    const scrubbed = scrubString(`${AGENT_LIVE} ${AGENT_LIVE} ${OPERATOR}`);
    expect(scrubbed).toBe('ak_[REDACTED] ak_[REDACTED] uk_[REDACTED]');
  });
});
