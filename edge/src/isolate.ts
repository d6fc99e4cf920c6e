// What one isolate keeps across requests (config, rate limits, the manifests and model list, the memory
// cache, counters) and what it hands each request (its backend transport and layered cache), as the request
// context's variables.
import { type ModelList, type ModelName, ProtocolError } from '@protopool/shared';
import type { Context, MiddlewareHandler } from 'hono';
import { RateLimiter, verifyApiKey } from './auth';
import { CacheApiCache } from './cache/cache-api';
import { cacheOutageRequested, FAULT_INJECTION_HEADER, failingBinding } from './cache/fault-injection';
import { KvCache } from './cache/kv';
import { LayeredCache } from './cache/layered';
import { MemoryCache } from './cache/memory';
import { CacheStats } from './cache/stats';
import { type EdgeConfig, type Env, loadConfig } from './env';
import { fail } from './errors';
import { Kept } from './kept';
import { ManifestCache } from './manifest-cache';
import type { Outcome, Trace } from './tracing';
import type { Backend } from './transport/backend';
import { HttpBackend } from './transport/http';
import { SageMakerBackend } from './transport/sagemaker';

export interface Isolate {
  env: Env;
  config: EdgeConfig;
  limiter: RateLimiter;
  manifests: ManifestCache;
  /** GET /v1/models's answer, kept as long as a manifest. */
  modelList: Kept<ModelList>;
  memory: MemoryCache | undefined;
  cacheStats: CacheStats;
}

type Vars = {
  isolate: Isolate;
  config: EdgeConfig;
  backend: Backend;
  cache: LayeredCache;
  keyHash: string;
  trace: Trace;
  outcome: Outcome | undefined;
};
export type AppEnv = { Bindings: Env; Variables: Vars };
export type AppContext = Context<AppEnv>;

/** Replaces the configured transport (tests: an in-process backend). */
export type BackendFactory = (config: EdgeConfig, env: Env) => Backend;

/**
 * Builds the isolate's state on its first request (and again if the bindings change, as tests do), then
 * gives each request its config, backend and cache.
 */
export function isolateContext(backendFor: BackendFactory = configuredBackend): MiddlewareHandler<AppEnv> {
  let isolate: Isolate | undefined;
  const cacheStats = new CacheStats();
  return async (c, next) => {
    if (isolate?.env !== c.env) {
      const config = loadConfig(c.env);
      isolate = {
        env: c.env,
        config,
        limiter: new RateLimiter(config.RATE_LIMIT_PER_MINUTE),
        manifests: new ManifestCache(config.MANIFEST_TTL_SECONDS * 1000),
        modelList: new Kept<ModelList>(config.MANIFEST_TTL_SECONDS * 1000),
        memory: config.MEMORY_CACHE_ENTRIES ? new MemoryCache(config.MEMORY_CACHE_ENTRIES) : undefined,
        cacheStats,
      };
    }
    const { config, memory } = isolate;
    c.set('isolate', isolate);
    c.set('config', config);
    c.set('backend', backendFor(config, c.env));
    // Isolate memory first: a hot explanation costs no I/O at all; then the colo's Cache API, then KV.
    // The cache's writes never reject (a failed write is logged and counted there).
    let [cache, kv] = [caches.default, c.env.EXPLANATIONS];
    // Test-only (`npm run faults -- cache-outage`): never taken unless the dev-only var FAULT_INJECTION is "1".
    if (cacheOutageRequested(c.env, c.req.header(FAULT_INJECTION_HEADER)))
      [cache, kv] = [failingBinding(cache, 'caches.default'), failingBinding(kv, 'EXPLANATIONS')];
    const layers = [new CacheApiCache(cache), new KvCache(kv)];
    c.set(
      'cache',
      new LayeredCache(
        memory ? [memory, ...layers] : layers,
        config.CACHE_TTL_SECONDS,
        (p) => c.executionCtx.waitUntil(p),
        cacheStats,
      ),
    );
    await next();
  };
}

/** An API key from API_KEY_HASHES, within its rate limit. */
export const requireApiKey: MiddlewareHandler<AppEnv> = async (c, next) => {
  const cfg = c.get('config');
  if (!cfg.API_KEY_HASHES.length)
    return fail(c, 'unauthorized', 'no API keys are configured on this edge (API_KEY_HASHES)');
  const hash = await verifyApiKey(c.req.header('authorization'), cfg.API_KEY_HASHES);
  if (!hash)
    return fail(
      c,
      'unauthorized',
      'missing or unknown API key: send Authorization: Bearer <key>',
      undefined,
      {
        'WWW-Authenticate': 'Bearer',
      },
    );
  const wait = c.get('isolate').limiter.take(hash);
  if (wait > 0)
    return fail(
      c,
      'rate_limited',
      `rate limit of ${cfg.RATE_LIMIT_PER_MINUTE} requests per minute exceeded`,
      undefined,
      { 'Retry-After': String(wait) },
    );
  c.set('keyHash', hash);
  await next();
};

/**
 * The manifest of `model` (undefined: the default); with the backend down, the last known one still
 * addresses the cache, so hits keep working.
 */
export async function manifestOf(c: AppContext, model?: ModelName) {
  const { manifests } = c.get('isolate');
  try {
    return await manifests.get(c.get('backend'), c.get('trace'), model);
  } catch (err) {
    return orLast(err, manifests.last(model));
  }
}

/** The backend's model list, kept like a manifest and with the same fallback. */
export async function modelListOf(c: AppContext) {
  const { modelList } = c.get('isolate');
  try {
    return await modelList.get(() => c.get('backend').models(c.get('trace')));
  } catch (err) {
    return orLast(err, modelList.last);
  }
}

/**
 * The stale value when the backend did not answer; a backend that answered with a 4xx (a model it no longer
 * serves) is believed.
 */
function orLast<T>(err: unknown, last: T | null): T {
  const unanswered =
    !(err instanceof ProtocolError) ||
    ['backend_unavailable', 'backend_timeout', 'overloaded'].includes(err.code);
  if (last !== null && unanswered) return last;
  throw err;
}

function configuredBackend(config: EdgeConfig): Backend {
  if (config.BACKEND_TRANSPORT === 'sagemaker') {
    return new SageMakerBackend({
      endpoint: config.SAGEMAKER_ENDPOINT!,
      region: config.AWS_REGION!,
      accessKeyId: config.AWS_ACCESS_KEY_ID!,
      secretAccessKey: config.AWS_SECRET_ACCESS_KEY!,
      sessionToken: config.AWS_SESSION_TOKEN,
      secret: config.PROTOPOOL_HMAC_SECRET,
      timeoutMs: config.BACKEND_TIMEOUT_MS,
    });
  }
  return new HttpBackend({
    baseUrl: config.BACKEND_URL!,
    secret: config.PROTOPOOL_HMAC_SECRET,
    timeoutMs: config.BACKEND_TIMEOUT_MS,
  });
}
