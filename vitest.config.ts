// Test projects by runtime: Node for shared and backend, workerd (the real Workers runtime) for the edge.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cloudflareTest } from '@cloudflare/vitest-pool-workers';
import { defineConfig } from 'vitest/config';

// One temporary directory per test run, inherited (TMPDIR) by the test workers and the processes they
// start, and removed when the run ends: fixtures and trained models no longer pile up in the OS temp dir.
const runTmp = mkdtempSync(join(tmpdir(), 'protopool-test-'));
process.env.TMPDIR = runTmp;
process.once('exit', () => rmSync(runTmp, { recursive: true, force: true }));

/** API keys the edge suite uses; the Worker only ever sees their hashes. */
export const EDGE_TEST_KEYS = ['edge-test-key-1', 'edge-test-key-2'];
const hashes = EDGE_TEST_KEYS.map((k) => createHash('sha256').update(k).digest('hex')).join(',');

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
        test: {
          name: 'e2e',
          environment: 'node',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
      {
        plugins: [
          cloudflareTest(async ({ inject }) => ({
            main: './edge/src/index.ts',
            wrangler: { configPath: './wrangler.toml' },
            miniflare: {
              bindings: {
                BACKEND_URL: inject('backendUrl'),
                PROTOPOOL_HMAC_SECRET: 'edge-suite-secret',
                API_KEY_HASHES: hashes,
                RATE_LIMIT_PER_MINUTE: '1000',
                BACKEND_TIMEOUT_MS: '5000',
                TEST_SAGEMAKER_URL: inject('sagemakerUrl'),
                // The fuzz suites' knobs (test/helpers/fuzz.ts), read through process.env inside workerd.
                FUZZ_RUNS: process.env.FUZZ_RUNS ?? '',
                FUZZ_SEED: process.env.FUZZ_SEED ?? '',
              },
            },
          })),
        ],
        // The shared suite runs here too: the contract must behave identically inside workerd.
        test: {
          name: 'edge',
          include: ['test/edge/**/*.test.ts', 'test/shared/**/*.test.ts'],
          globalSetup: ['test/edge/global-setup.ts'],
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
