import { KNOWN_VARIABLES } from '../../src/config.js';

/**
 * Runs in every test worker before its test file: the app's variables from the developer's shell
 * (PORT, DATABASE_URL, WEBHOOK_ALLOW_PRIVATE, AGENT_OTP_URL…) are dropped, so code that reads
 * process.env in-process (loadConfig(), runDoctor(), the CLI's resolveTarget()) sees what the test
 * gives it and nothing else. Tests are configured only by the documented TEST_* variables.
 * NODE_ENV is informational (no behaviour depends on it) and is pinned rather than removed.
 */
for (const name of Object.keys(process.env)) {
  if (KNOWN_VARIABLES.includes(name) || name.startsWith('AGENT_OTP_')) delete process.env[name];
}
process.env.NODE_ENV = 'test';
