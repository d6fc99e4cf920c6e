// Test projects by runtime: Node for shared and backend, workerd (the real Workers runtime) for the edge.
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: { name: 'shared', environment: 'node', include: ['test/shared/**/*.test.ts'] },
      },
      {
        test: {
          name: 'backend',
          environment: 'node',
          include: ['test/backend/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        plugins: [
          cloudflareTest({ main: './edge/src/index.ts', wrangler: { configPath: './wrangler.toml' } }),
        ],
        // The shared suite runs here too: the contract must behave identically inside workerd.
        test: { name: 'edge', include: ['test/edge/**/*.test.ts', 'test/shared/**/*.test.ts'] },
      },
    ],
  },
});
