// The Worker's environment as the edge suite configures it (see vitest.config.ts).
import { env as workerEnv } from 'cloudflare:workers';
import type { Env } from '../../edge/src/env';

export const env = workerEnv as unknown as Env & { TEST_SAGEMAKER_URL: string };
export const KEY = 'edge-test-key-1';
export const OTHER_KEY = 'edge-test-key-2';
export const auth = (key = KEY) => ({ authorization: `Bearer ${key}` });
