import { describe, expect, it } from 'vitest';
import {
  AgentOTPClient,
  AuthenticationError,
  DEFAULT_BASE_URL,
  ValidationError,
} from '../../src/sdk/index.js';
import { ok, permission, scriptedFetch } from './fakeFetch.js';

const apiKey = 'ak_live_configTestKey0123456789';

describe('the HTTPS rule', () => {
  it('refuses plain HTTP to a remote host, synchronously, with ValidationError', () => {
    expect(() => new AgentOTPClient({ apiKey, baseUrl: 'http://example.com' })).toThrow(ValidationError);
    expect(() => new AgentOTPClient({ apiKey, baseUrl: 'http://10.0.0.5:3000' })).toThrow(/plain HTTP/);
    expect(() => new AgentOTPClient({ apiKey, baseUrl: 'http://128.0.0.1' })).toThrow(ValidationError);
    expect(() => new AgentOTPClient({ apiKey, baseUrl: 'http://localhost.evil.example' })).toThrow(
      ValidationError,
    );
  });

  it('allows plain HTTP to a remote host only with allowInsecureHttp', () => {
    const otp = new AgentOTPClient({ apiKey, baseUrl: 'http://example.com/', allowInsecureHttp: true });
    expect(otp.baseUrl).toBe('http://example.com');
  });

  it.each([
    'http://localhost:3000',
    'http://LOCALHOST:3000',
    'http://127.0.0.1:3000',
    'http://127.1.2.3',
    'http://[::1]:3000',
  ])('allows plain HTTP to the loopback address %s', (baseUrl) => {
    expect(() => new AgentOTPClient({ apiKey, baseUrl })).not.toThrow();
  });

  it('takes any HTTPS URL, keeping a path prefix without its trailing slash', () => {
    expect(new AgentOTPClient({ apiKey, baseUrl: 'https://api.eu.agentotp.com' }).baseUrl).toBe(
      'https://api.eu.agentotp.com',
    );
    expect(new AgentOTPClient({ apiKey, baseUrl: 'https://gw.example.com/otp/' }).baseUrl).toBe(
      'https://gw.example.com/otp',
    );
  });

  it('defaults to the local server, which passes the rule', () => {
    expect(new AgentOTPClient({ apiKey }).baseUrl).toBe(DEFAULT_BASE_URL);
    expect(DEFAULT_BASE_URL).toBe('http://127.0.0.1:3000');
  });

  it.each([
    ['not a URL', 'not a url'],
    ['another scheme', 'ftp://example.com'],
    ['credentials in the URL', 'https://user:pass@example.com'],
    ['a query string', 'https://example.com/?x=1'],
  ])('refuses %s', (_what, baseUrl) => {
    expect(() => new AgentOTPClient({ apiKey, baseUrl })).toThrow(ValidationError);
  });

  it('sends requests under the path prefix', async () => {
    const { fetch, calls } = scriptedFetch(ok(permission()));
    await new AgentOTPClient({ apiKey, baseUrl: 'https://gw.example.com/otp', fetch }).getPermission(
      'perm_1',
    );
    expect(calls[0]?.url.href).toBe('https://gw.example.com/otp/api/v1/permissions/perm_1');
  });
});

describe('other configuration', () => {
  it('refuses a missing or empty API key with AuthenticationError (MISSING_API_KEY)', () => {
    for (const key of [undefined, '', '   ']) {
      expect(() => new AgentOTPClient({ apiKey: key as unknown as string })).toThrow(AuthenticationError);
    }
    try {
      new AgentOTPClient({ apiKey: '' });
    } catch (err) {
      expect(err).toMatchObject({ code: 'MISSING_API_KEY' });
    }
  });

  it('refuses a key with whitespace in it, without echoing the key', () => {
    const key = 'ak_live_abc\n';
    expect(() => new AgentOTPClient({ apiKey: key })).toThrow(ValidationError);
    try {
      new AgentOTPClient({ apiKey: key });
    } catch (err) {
      expect((err as Error).message).not.toContain('ak_live_abc');
    }
  });

  it.each([
    [{ timeout: 0 }],
    [{ timeout: -1 }],
    [{ retryAttempts: -1 }],
    [{ retryAttempts: 1.5 }],
    [{ retryDelay: Number.NaN }],
  ])('refuses nonsensical numbers %o', (opts) => {
    expect(() => new AgentOTPClient({ apiKey, ...opts })).toThrow(ValidationError);
  });
});
