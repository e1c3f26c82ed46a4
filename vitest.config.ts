import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          // A failing test prints its run's logs and the world's states (before the next reset).
          setupFiles: ['test/e2e/diagnostics.ts'],
          // One shared world of real units and containers: files must run one after the other
          // (scripts/test.sh passes --no-file-parallelism), and tests within a file too.
          sequence: { concurrent: false },
          testTimeout: 180_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
