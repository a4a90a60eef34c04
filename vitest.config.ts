import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/redis.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // Each file gets its own Redis key prefix and Postgres schema, so files run in parallel.
    pool: 'forks',
    maxWorkers: 2,
  },
});
