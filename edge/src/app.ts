// The public edge API: auth, limits, validation, images to tensors, the explanation cache, the backend.

import {
  type Explanation,
  ProtocolError,
  parseClassifyBody,
  parseClassifyQuery,
  parseModelQuery,
  resolveOptions,
} from '@protopool/shared';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { ID_PATTERN } from './cache/cache';
import { classifyThroughCache } from './classify';
import { demoPage } from './demo/page';
import { fail } from './errors';
import { decodeToInput } from './image';
import {
  type AppEnv,
  type BackendFactory,
  isolateContext,
  manifestOf,
  modelListOf,
  requireApiKey,
} from './isolate';
import { docsPage, openApiDocument } from './openapi';
import { tracing } from './tracing';
import { view } from './views';

export interface EdgeDeps {
  /** Replaces the configured transport (tests: an in-process backend). */
  backend?: BackendFactory;
}

export function createApp(deps: EdgeDeps = {}) {
  const app = new Hono<AppEnv>();
  app.use('*', tracing);
  app.use('*', isolateContext(deps.backend));

  app.use('/v1/classify', requireApiKey);
  app.use('/v1/explanations/*', requireApiKey);
  app.use('/v1/classify', async (c, next) =>
    bodyLimit({
      maxSize: c.get('config').MAX_BODY_BYTES,
      onError: (cc) =>
        fail(cc, 'payload_too_large', `request body exceeds ${c.get('config').MAX_BODY_BYTES} bytes`),
    })(c, next),
  );

  app.post('/v1/classify', async (c) => {
    // A bad model name is a 400 here, before any backend call; an unknown one is the backend's 404.
    const query = parseClassifyQuery(c.req.query());
    const { model } = query;
    const manifest = await manifestOf(c, model);
    const body = await parseClassifyBody(
      c.req.header('content-type'),
      new Uint8Array(await c.req.arrayBuffer()),
      { input: manifest.input, decodeImage: (bytes) => decodeToInput(bytes, manifest.input) },
    );
    const cfg = c.get('config');
    const result = await classifyThroughCache(
      {
        backend: c.get('backend'),
        cache: c.get('cache'),
        model,
        manifest,
        staleManifest: () => c.get('isolate').manifests.invalidate(model),
        background: (p) => c.executionCtx.waitUntil(p),
        ttlSeconds: cfg.CACHE_TTL_SECONDS,
        trace: c.get('trace'),
      },
      body.tensor,
      resolveOptions(body.options, query),
    );
    c.set('outcome', {
      cache: result.cache,
      layer: result.layer,
      backendMs: result.timings.backend,
      model,
      modelVersion: result.explanation.modelVersion,
    });
    c.header('X-Cache', result.cache);
    if (result.layer) c.header('X-Cache-Layer', result.layer);
    // Server-Timing: where a request's time went.
    const timing = Object.entries(result.timings).map(([k, v]) => `${k};dur=${v}`);
    if (timing.length) c.header('Server-Timing', timing.join(', '));
    return c.json(result.explanation);
  });

  app.get('/v1/explanations/:id', async (c) => {
    const id = c.req.param('id');
    if (!ID_PATTERN.test(id))
      return fail(c, 'bad_request', 'explanation ids are 64 lowercase hex digits (SHA-256)');
    const options = resolveOptions({}, parseClassifyQuery(c.req.query()));
    const hit = await c.get('cache').get(id);
    c.set(
      'outcome',
      hit ? { cache: 'HIT', layer: c.get('cache').lastHitLayer } : { cache: 'MISS', layer: null },
    );
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

  app.get('/v1/models', async (c) => {
    const list = await modelListOf(c);
    c.header('Cache-Control', 'public, max-age=60');
    return c.json(list);
  });

  app.get('/v1/model', async (c) => {
    const manifest = await manifestOf(c, parseModelQuery(c.req.query()));
    c.header('Cache-Control', 'public, max-age=60');
    return c.json(manifest);
  });

  app.get('/v1/prototypes/:id/image', async (c) => {
    const id = c.req.param('id');
    if (!/^\d{1,6}$/.test(id)) return fail(c, 'bad_request', 'prototype ids are non-negative integers');
    const model = parseModelQuery(c.req.query());
    const manifest = await manifestOf(c, model);
    if (!manifest.prototypes.some((p) => p.id === Number(id))) {
      return fail(c, 'not_found', `no prototype ${id} in model ${manifest.version.slice(0, 12)}`);
    }
    const png = await c.get('backend').prototypeImage(Number(id), c.get('trace'), model);
    if (!png) return fail(c, 'not_found', `the backend has no image for prototype ${id}`);
    // Versioned URLs (?v=<that model's version>) never change; others may after a model update.
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
    // A transport's BackendError is a ProtocolError too.
    if (err instanceof ProtocolError) return fail(c, err.code, err.message, err.details);
    console.error('edge: unhandled error', err instanceof Error ? err.message : err);
    return fail(c, 'internal', 'internal error');
  });
  return app;
}
