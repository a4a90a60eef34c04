import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as sdk from '../../src/sdk/index.js';
import {
  AgentOTPClient,
  AgentOTPError,
  generateToken,
  hashToken,
  TOKEN_PATTERN,
  verifyWebhook,
} from '../../src/sdk/index.js';
import { ROOT } from '../helpers/serverProcess.js';
import { type RecordedCall, type Reply, scriptedFetch } from './fakeFetch.js';

/**
 * The wire contract shared with the Python SDK (test/contract/*.json, read by
 * src/python/tests/test_contract.py too): the same requests on the wire, the same error class
 * for each answer, the same webhook verdicts, the same token commitment. A change to either SDK
 * that drifts from the other fails here or there.
 */
// biome-ignore lint/suspicious/noExplicitAny: fixtures are free-form JSON
type Json = any;
const load = (name: string): Json => JSON.parse(readFileSync(path.join(ROOT, 'test/contract', name), 'utf8'));
const ERRORS = load('errors.json');
const REQUESTS = load('requests.json');
const WEBHOOKS = load('webhooks.json');
const TOKENS = load('tokens.json');

/** Deep equality where an expected `re:…` string is a pattern, keys compared exactly. */
function matches(expected: Json, actual: Json): boolean {
  if (typeof expected === 'string' && expected.startsWith('re:')) {
    return typeof actual === 'string' && new RegExp(expected.slice(3)).test(actual);
  }
  if (expected && typeof expected === 'object' && !Array.isArray(expected)) {
    if (!actual || typeof actual !== 'object') return false;
    const keys = Object.keys(expected).sort();
    if (JSON.stringify(keys) !== JSON.stringify(Object.keys(actual).sort())) return false;
    return keys.every((k) => matches(expected[k], actual[k]));
  }
  return JSON.stringify(expected) === JSON.stringify(actual);
}

const answer =
  (status: number, body: Json, raw: string | undefined, headers: Record<string, string> = {}): Reply =>
  () =>
    new Response(raw ?? JSON.stringify(body), {
      status,
      headers: { 'content-type': 'application/json', ...headers },
    });

describe('the wire contract shared with the Python SDK', () => {
  it.each(ERRORS.cases as Json[])('error answer: $name', async (c: Json) => {
    const { fetch } = scriptedFetch(answer(c.status, c.body, c.rawBody, c.headers));
    const client = new AgentOTPClient({ apiKey: 'ak_test_contract', fetch, retryAttempts: 0 });
    const err = await client.useToken(ERRORS.permissionId, generateToken()).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AgentOTPError);
    const expected = c.expect;
    const cls = (sdk as Record<string, unknown>)[expected.class] as new (...args: never[]) => unknown;
    expect(err).toBeInstanceOf(cls);
    expect((err as Error).constructor.name).toBe(expected.class);
    if (expected.notClass) {
      expect(err).not.toBeInstanceOf(
        (sdk as Record<string, unknown>)[expected.notClass] as typeof AgentOTPError,
      );
    }
    const e = err as Json;
    expect([e.code, e.status, e.permissionId]).toEqual([expected.code, expected.status, ERRORS.permissionId]);
    for (const field of ['requestId', 'retryAfter', 'key', 'violations']) {
      if (field in expected) expect(e[field], field).toEqual(expected[field]);
    }
    if (expected.messageContains) expect(e.message).toContain(expected.messageContains);
    for (const fragment of expected.messageExcludes ?? [])
      expect(JSON.stringify(e) + e.message).not.toContain(fragment);
  });

  it.each(REQUESTS.cases as Json[])('request: $name', async (c: Json) => {
    const { fetch, calls } = scriptedFetch(answer(c.reply.status, c.reply.body, undefined));
    const client = new AgentOTPClient({ apiKey: REQUESTS.apiKey, fetch, retryAttempts: 0 });
    const options = { ...(c.options ?? {}) };
    let result: Json;
    switch (c.call) {
      case 'requestPermission':
        result = await client.requestPermission(options);
        break;
      case 'verifyToken':
      case 'useToken':
        result = await client[c.call as 'useToken'](c.id, c.token, options);
        break;
      case 'waitForPermission':
        // The fixture's timeout is in seconds, as in the Python SDK; this SDK takes ms.
        result = await client.waitForPermission(c.id, { timeout: options.timeout * 1000 });
        break;
      default:
        result = await (client as Json)[c.call](c.id, options);
    }
    expect(calls).toHaveLength(1);
    const sent = calls[0] as RecordedCall;
    const expected = c.expectRequest;
    expect(sent.method).toBe(expected.method);
    expect(sent.url.pathname).toBe(expected.path);
    expect(Object.fromEntries(sent.url.searchParams)).toEqual(expected.query ?? {});
    const headers = { ...REQUESTS.headers, ...(expected.method === 'POST' ? REQUESTS.postHeaders : {}) };
    for (const [name, value] of Object.entries(headers)) {
      expect(matches(value, sent.headers.get(name)), `${name}: ${sent.headers.get(name)}`).toBe(true);
    }
    if (expected.method === 'POST')
      expect(matches(expected.body, sent.body), JSON.stringify(sent.body)).toBe(true);
    expect(matches(c.expectResult, result), JSON.stringify(result)).toBe(true);
    if (c.tokenCommitment) {
      // The server got only the SHA-256 of the token the caller holds.
      expect(createHash('sha256').update(result.token).digest('hex')).toBe(sent.body?.tokenHash);
    }
  });

  it.each(WEBHOOKS.cases as Json[])('webhook: $name', async (c: Json) => {
    const secret = c.secret ?? WEBHOOKS.secret;
    const verdict = verifyWebhook(c.body, c.headers, secret, { now: c.now * 1000 });
    if (c.valid) {
      expect(await verdict).toEqual(WEBHOOKS.payloadOfValid);
      return;
    }
    const err = await verdict.then(
      () => null,
      (e: unknown) => e,
    );
    expect((err as Error)?.constructor.name).toBe(c.error);
    if (c.messageContains) expect((err as Error).message).toContain(c.messageContains);
  });

  it('token format and commitment', async () => {
    expect(TOKEN_PATTERN.source).toBe(TOKENS.pattern);
    for (const vector of TOKENS.vectors) expect(await hashToken(vector.token)).toBe(vector.tokenHash);
    for (let i = 0; i < 50; i += 1) expect(generateToken()).toMatch(new RegExp(TOKENS.pattern));
  });
});
