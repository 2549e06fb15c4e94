import { defineConfig } from 'vitest/config';

// Unit and contract tests are cheap and run in parallel. Integration tests start real node
// processes that share this machine's 2 cores, so their files run one at a time (see the
// "integration" project) and wait on conditions, never on sleeps.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts', 'test/contract/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
});
