import { describe, expect, it } from 'vitest';
import { configChecks } from '../../../src/cli/doctor/configChecks.js';
import { loadConfig } from '../../../src/config.js';

/** `doctor`'s passkeys row: can browsers use this PUBLIC_URL as a passkey relying party? */
describe('doctor: passkeys', () => {
  const passkeys = (PUBLIC_URL?: string) =>
    configChecks(loadConfig(PUBLIC_URL ? { PUBLIC_URL } : {})).find((r) => r.check === 'passkeys');

  it('passes HTTPS and http on localhost, naming the relying party', () => {
    expect(passkeys('https://otp.example.com/')).toEqual({
      check: 'passkeys',
      status: 'pass',
      detail: 'relying party otp.example.com, origin https://otp.example.com',
    });
    expect(passkeys('http://localhost:3000')?.status).toBe('pass');
  });

  it('warns without PUBLIC_URL, over plain http elsewhere, and on an IP address browsers refuse', () => {
    expect(passkeys()).toMatchObject({
      status: 'warn',
      detail: expect.stringContaining('PUBLIC_URL is not set'),
    });
    expect(passkeys('http://otp.example.com')).toMatchObject({
      status: 'warn',
      detail: expect.stringContaining('not HTTPS'),
    });
    expect(passkeys('http://127.0.0.1:3000')).toMatchObject({
      status: 'warn',
      detail: expect.stringContaining('refuse an IP address'),
    });
    expect(passkeys('https://[::1]:8443')?.status).toBe('warn');
  });
});
