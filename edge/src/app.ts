// The public edge API: auth, limits, validation, images to tensors, the explanation cache, the backend.

import {
  type Explanation,
  explanationId,
  type ModelManifest,
  ProtocolError,
  parseClassifyBody,
  parseClassifyQuery,
  resolveOptions,
} from '@protopool/shared';
import type { Context } from 'hono';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { RateLimiter, verifyApiKey } from './auth';
import { ID_PATTERN } from './cache/cache';
import { CacheApiCache } from './cache/cache-api';
import { KvCache } from './cache/kv';
import { LayeredCache } from './cache/layered';
import { MemoryCache } from './cache/memory';
import { demoPage } from './demo/page';
import { type EdgeConfig, type Env, loadConfig } from './env';
import { fail } from './errors';
import { decodeToInput } from './image';
import { ManifestCache } from './manifest-cache';
import { docsPage, openApiDocument } from './openapi';
import type { Backend } from './transport/backend';
import { BackendError } from './transport/backend';
import { HttpBackend } from './transport/http';
import { SageMakerBackend } from './transport/sagemaker';
import { CANONICAL, needsBypass, view } from './views';

type Vars = { config: EdgeConfig; backend: Backend; cache: LayeredCache; keyHash: string };
type AppEnv = { Bindings: Env; Variables: Vars };

export interface EdgeDeps {
  /** Replaces the configured transport (tests: an in-process backend). */
  backend?: (config: EdgeConfig, env: Env) => Backend;
}

export function createApp(deps: EdgeDeps = {}) {
  const app = new Hono<AppEnv>();
  // Per isolate: these live as long as the isolate, across requests.
  let limiter: RateLimiter | undefined;
  let manifests: ManifestCache | undefined;
  let memory: MemoryCache | undefined;
  let configFor: Env | undefined;
  let config: EdgeConfig | undefined;

  app.use('*', async (c, next) => {
    if (configFor !== c.env) {
      config = loadConfig(c.env);
      configFor = c.env;
      limiter = new RateLimiter(config.RATE_LIMIT_PER_MINUTE);
      manifests = new ManifestCache(config.MANIFEST_TTL_SECONDS * 1000);
      memory = config.MEMORY_CACHE_ENTRIES ? new MemoryCache(config.MEMORY_CACHE_ENTRIES) : undefined;
    }
    const cfg = config!;
    c.set('config', cfg);
    c.set('backend', deps.backend ? deps.backend(cfg, c.env) : makeBackend(cfg));
    const background = (p: Promise<unknown>) =>
      c.executionCtx.waitUntil(p.catch((e) => console.error('cache fill failed', e)));
    // Isolate memory first: a hot explanation costs no I/O at all; then the colo's Cache API, then KV.
    const layers = [new CacheApiCache(caches.default), new KvCache(c.env.EXPLANATIONS)];
    c.set(
      'cache',
      new LayeredCache(memory ? [memory, ...layers] : layers, cfg.CACHE_TTL_SECONDS, background),
    );
    await next();
  });

  const requireKey = async (c: Context<AppEnv>, next: () => Promise<void>) => {
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
        { 'WWW-Authenticate': 'Bearer' },
      );
    const wait = limiter!.take(hash);
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

  const manifestOf = async (c: Context<AppEnv>): Promise<ModelManifest> => {
    try {
      return await manifests!.get(c.get('backend'));
    } catch (err) {
      // Backend down: the last known manifest still addresses the cache, so hits keep working.
      if (manifests!.last) return manifests!.last;
      throw err;
    }
  };

  app.use('/v1/classify', requireKey);
  app.use('/v1/explanations/*', requireKey);
  app.use('/v1/classify', async (c, next) =>
    bodyLimit({
      maxSize: c.get('config').MAX_BODY_BYTES,
      onError: (cc) =>
        fail(cc, 'payload_too_large', `request body exceeds ${c.get('config').MAX_BODY_BYTES} bytes`),
    })(c, next),
  );

  app.post('/v1/classify', async (c) => {
    const query = parseClassifyQuery(c.req.query());
    const manifest = await manifestOf(c);
    const body = await parseClassifyBody(
      c.req.header('content-type'),
      new Uint8Array(await c.req.arrayBuffer()),
      { input: manifest.input, decodeImage: (bytes) => decodeToInput(bytes, manifest.input) },
    );
    const { tensor } = body;
    const options = resolveOptions(body.options, query);
    const id = await explanationId(manifest.version, tensor);
    const cache = c.get('cache');
    if (needsBypass(options)) {
      c.header('X-Cache', 'BYPASS');
      return c.json(await c.get('backend').explain(tensor, options));
    }
    // Server-Timing: where a request's time went (workerd's clock moves at I/O, which is what these are).
    const lookupStart = Date.now();
    const hit = await cache.get(id);
    const lookup = `cache;dur=${Date.now() - lookupStart}`;
    if (hit) {
      c.header('X-Cache', 'HIT');
      c.header('X-Cache-Layer', cache.lastHitLayer ?? '');
      c.header('Server-Timing', lookup);
      return c.json(view(hit, options));
    }
    const backendStart = Date.now();
    const fresh = await c.get('backend').explain(tensor, CANONICAL);
    c.header('Server-Timing', `${lookup}, backend;dur=${Date.now() - backendStart}`);
    if (fresh.modelVersion !== manifest.version) {
      // The backend changed model since the manifest was read: never store under the old version's id.
      manifests!.invalidate();
    } else {
      c.executionCtx.waitUntil(
        cache
          .put(id, fresh, c.get('config').CACHE_TTL_SECONDS)
          .catch((e) => console.error('cache put failed', e)),
      );
    }
    c.header('X-Cache', 'MISS');
    return c.json(view(fresh, options));
  });

  app.get('/v1/explanations/:id', async (c) => {
    const id = c.req.param('id');
    if (!ID_PATTERN.test(id))
      return fail(c, 'bad_request', 'explanation ids are 64 lowercase hex digits (SHA-256)');
    const options = resolveOptions({}, parseClassifyQuery(c.req.query()));
    const hit = await c.get('cache').get(id);
    if (!hit)
      return fail(
        c,
        'not_found',
        `no cached explanation ${id}: classify the input again (POST /v1/classify)`,
      );
    c.header('X-Cache', 'HIT');
    // The same defaults as /v1/classify, so a lookup by id returns what the classify call returned.
    return c.json(view(hit as Explanation, options));
  });

  app.get('/v1/model', async (c) => {
    c.header('Cache-Control', 'public, max-age=60');
    return c.json(await manifestOf(c));
  });

  app.get('/v1/prototypes/:id/image', async (c) => {
    const id = c.req.param('id');
    if (!/^\d{1,6}$/.test(id)) return fail(c, 'bad_request', 'prototype ids are non-negative integers');
    const manifest = await manifestOf(c);
    if (!manifest.prototypes.some((p) => p.id === Number(id))) {
      return fail(c, 'not_found', `no prototype ${id} in model ${manifest.version.slice(0, 12)}`);
    }
    const png = await c.get('backend').prototypeImage(Number(id));
    if (!png) return fail(c, 'not_found', `the backend has no image for prototype ${id}`);
    // Versioned URLs (?v=<model version>) never change; others may after a model update.
    const immutable = c.req.query('v') === manifest.version;
    return c.body(png as unknown as ArrayBuffer, 200, {
      'content-type': 'image/png',
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'public, max-age=300',
    });
  });

  app.get('/', (c) => c.html(demoPage()));
  app.get('/openapi.json', (c) => c.json(openApiDocument()));
  app.get('/docs', (c) => c.html(docsPage()));
  app.get('/healthz', (c) =>
    c.json({ ok: true, runtime: navigator.userAgent, transport: c.get('config').BACKEND_TRANSPORT }),
  );

  app.notFound((c) => fail(c, 'not_found', `no route for ${c.req.method} ${new URL(c.req.url).pathname}`));
  app.onError((err, c) => {
    if (err instanceof ProtocolError || err instanceof BackendError)
      return fail(c, err.code, err.message, err.details);
    console.error('edge: unhandled error', err instanceof Error ? err.message : err);
    return fail(c, 'internal', 'internal error');
  });
  return app;
}

function makeBackend(config: EdgeConfig): Backend {
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
