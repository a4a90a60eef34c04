import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/redis.ts'],
    // Drops the app's variables inherited from the shell: only TEST_* ones configure the tests.
    setupFiles: ['test/setup/env.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // Each file gets its own Redis key prefix and Postgres schema, so files run in parallel.
    pool: 'forks',
    maxWorkers: 2,
  },
});
