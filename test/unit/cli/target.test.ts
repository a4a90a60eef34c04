import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../../../src/cli/errors.js';
import { describeNames, loadDotEnv, resolveTarget } from '../../../src/cli/target.js';

const dir = mkdtempSync(path.join(tmpdir(), 'aotp-target-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const none = new Set<string>();
const url = (env: NodeJS.ProcessEnv, flags = {}, dot: ReadonlySet<string> = none) => {
  const target = resolveTarget(flags, { AGENT_OTP_DATA_DIR: dir, ...env }, dot);
  return [target.url, target.urlSource];
};

describe('resolveTarget: the URL', () => {
  it('derives it from the server variables when AGENT_OTP_URL is unset', () => {
    expect(url({})).toEqual(['http://127.0.0.1:3000', 'the default']);
    expect(url({ PORT: '3701' }, {}, new Set(['PORT']))).toEqual(['http://127.0.0.1:3701', 'PORT in .env']);
    expect(url({ PORT: '3701', HOST: '0.0.0.0' }, {}, new Set(['PORT']))).toEqual([
      'http://127.0.0.1:3701',
      'PORT in .env and HOST',
    ]);
    expect(url({ HOST: '::' })[0]).toBe('http://[::1]:3000');
    expect(url({ HOST: '::1', PORT: '8443', TLS_CERT_FILE: '/c.pem' })[0]).toBe('https://[::1]:8443');
    expect(url({ HOST: 'otp.internal' })[0]).toBe('http://otp.internal:3000');
    expect(url({ PORT: '', HOST: ' ' })).toEqual(['http://127.0.0.1:3000', 'the default']);
  });

  it('prefers --url, then AGENT_OTP_URL, over the server variables', () => {
    const env = { PORT: '3701', AGENT_OTP_URL: 'https://otp.example.com/' };
    expect(url(env)).toEqual(['https://otp.example.com', 'AGENT_OTP_URL']);
    expect(url(env, { url: 'http://10.0.0.1:4000' })).toEqual(['http://10.0.0.1:4000', '--url']);
  });

  it('refuses an address it cannot use, naming where it came from', () => {
    expect(() => url({}, { url: 'ftp://x' })).toThrow(/--url: must be an http/);
    expect(() => url({ AGENT_OTP_URL: 'nope' })).toThrow(/AGENT_OTP_URL: "nope" is not a URL/);
    expect(() => url({ PORT: '0' }, {}, new Set(['PORT']))).toThrow(
      /PORT is 0 \(PORT in \.env\).*random port/,
    );
    expect(() => url({ PORT: '70000' })).toThrow(CliError);
    expect(() => url({ PORT: 'abc' })).toThrow(/PORT \(PORT\) is not a port number/);
  });
});

describe('resolveTarget: the operator key', () => {
  const token = (env: NodeJS.ProcessEnv, flags = {}) => {
    const t = resolveTarget(flags, { AGENT_OTP_DATA_DIR: dir, ...env }, new Set(['ADMIN_TOKEN']));
    return [t.token, t.tokenSource];
  };

  it('takes --token, then AGENT_OTP_ADMIN_TOKEN, then the server’s ADMIN_TOKEN', () => {
    const env = { AGENT_OTP_ADMIN_TOKEN: 'uk_cli', ADMIN_TOKEN: 'uk_server' };
    expect(token(env, { token: 'uk_flag' })).toEqual(['uk_flag', '--token']);
    expect(token(env)).toEqual(['uk_cli', 'AGENT_OTP_ADMIN_TOKEN']);
    expect(token({ ADMIN_TOKEN: 'uk_server' })).toEqual(['uk_server', 'ADMIN_TOKEN in .env']);
  });

  it('reads ADMIN_TOKEN_FILE, then the admin-token the server wrote to its data dir', () => {
    expect(token({})).toEqual([undefined, undefined]);
    const secret = path.join(dir, 'secret');
    writeFileSync(secret, 'uk_fromfile\n');
    expect(token({ ADMIN_TOKEN_FILE: secret })).toEqual(['uk_fromfile', 'ADMIN_TOKEN_FILE']);
    expect(() => token({ ADMIN_TOKEN_FILE: path.join(dir, 'missing') })).toThrow(/cannot read .*ENOENT/);
    writeFileSync(path.join(dir, 'admin-token'), 'uk_written\n');
    expect(token({})).toEqual(['uk_written', path.join(dir, 'admin-token')]);
  });
});

describe('loadDotEnv', () => {
  it('fills only the variables the environment does not set, and remembers which', () => {
    const file = path.join(dir, '.env');
    writeFileSync(file, 'PORT=3701\nHOST=0.0.0.0\n');
    const env: NodeJS.ProcessEnv = { HOST: '127.0.0.1' };
    loadDotEnv(file, env);
    expect(env).toEqual({ HOST: '127.0.0.1', PORT: '3701' });
    loadDotEnv(path.join(dir, 'absent'), env);
    expect(resolveTarget({}, env)).toMatchObject({
      url: 'http://127.0.0.1:3701',
      urlSource: 'PORT in .env and HOST',
    });
  });

  it('describes mixed origins', () => {
    expect(describeNames(['PORT', 'HOST', 'TLS_CERT_FILE'], new Set(['PORT', 'HOST']))).toBe(
      'PORT and HOST in .env and TLS_CERT_FILE',
    );
  });
});
