// The Worker's bindings and configuration (wrangler vars and secrets), validated once per isolate.
import { zodIssueLines } from '@protopool/shared';
import { z } from 'zod';

const Int = (d: number) => z.coerce.number().int().min(1).default(d);

export const EdgeConfig = z
  .object({
    BACKEND_TRANSPORT: z.enum(['http', 'sagemaker']).default('http'),
    BACKEND_URL: z.url().optional(),
    BACKEND_TIMEOUT_MS: Int(10_000),
    PROTOPOOL_HMAC_SECRET: z.string().min(1).optional(),
    SAGEMAKER_ENDPOINT: z.string().min(1).optional(),
    AWS_REGION: z.string().min(1).optional(),
    AWS_ACCESS_KEY_ID: z.string().min(1).optional(),
    AWS_SECRET_ACCESS_KEY: z.string().min(1).optional(),
    AWS_SESSION_TOKEN: z.string().min(1).optional(),
    API_KEY_HASHES: z
      .string()
      .default('')
      .transform((s) =>
        s
          .split(',')
          .map((h) => h.trim().toLowerCase())
          .filter(Boolean),
      )
      .pipe(z.array(z.string().regex(/^[0-9a-f]{64}$/, 'each API key hash must be 64 hex digits (SHA-256)'))),
    RATE_LIMIT_PER_MINUTE: Int(120),
    MAX_BODY_BYTES: Int(5 * 1024 * 1024),
    CACHE_TTL_SECONDS: Int(7 * 24 * 3600),
    MANIFEST_TTL_SECONDS: Int(60),
    /** Explanations kept in the isolate's own memory, in front of the Cache API (0 turns it off). */
    MEMORY_CACHE_ENTRIES: z.coerce.number().int().min(0).max(100_000).default(1000),
  })
  .superRefine((c, ctx) => {
    if (c.BACKEND_TRANSPORT === 'http' && !c.BACKEND_URL) {
      ctx.addIssue({
        code: 'custom',
        path: ['BACKEND_URL'],
        message: 'required when BACKEND_TRANSPORT is http',
      });
    }
    if (c.BACKEND_TRANSPORT === 'sagemaker') {
      for (const k of [
        'SAGEMAKER_ENDPOINT',
        'AWS_REGION',
        'AWS_ACCESS_KEY_ID',
        'AWS_SECRET_ACCESS_KEY',
      ] as const) {
        if (!c[k])
          ctx.addIssue({
            code: 'custom',
            path: [k],
            message: 'required when BACKEND_TRANSPORT is sagemaker',
          });
      }
    }
  });
export type EdgeConfig = z.infer<typeof EdgeConfig>;

/**
 * The Worker's bindings: the explanations KV namespace, the optional Workers Analytics Engine dataset (one data
 * point per request when bound; see wrangler.toml), and every variable `EdgeConfig` reads, as wrangler passes them
 * (strings).
 */
export type Env = { EXPLANATIONS: KVNamespace; ANALYTICS?: AnalyticsEngineDataset } & {
  [K in keyof typeof EdgeConfig.shape]?: string;
};

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses the environment; a misconfiguration names the variable (never its value: some are secrets). */
export function loadConfig(env: Env): EdgeConfig {
  const parsed = EdgeConfig.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(`edge misconfigured: ${zodIssueLines(parsed.error).join('; ')}`);
  }
  return parsed.data;
}
