import { describe, expect, it } from 'vitest';
import { KNOWN_VARIABLES, loadConfig } from '../../src/config.js';

// Guards test/setup/env.ts: run with app variables exported in the shell, this fails without it.
describe('the test processes’ environment', () => {
  it('holds none of the app’s variables, so in-process defaults are the documented ones', () => {
    const leaked = Object.keys(process.env).filter(
      (name) => (KNOWN_VARIABLES.includes(name) && name !== 'NODE_ENV') || name.startsWith('AGENT_OTP_'),
    );
    expect(leaked).toEqual([]);
    expect(loadConfig()).toMatchObject({ PORT: 3000, WEBHOOK_ALLOW_PRIVATE: false, DATABASE_URL: undefined });
  });
});
