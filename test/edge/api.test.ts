import {
  ApiError,
  Explanation,
  encodeFrame,
  encodeJson,
  explanationId,
  ModelManifest,
  TENSOR_MEDIA_TYPE,
  tensor,
} from '@protopool/shared';
import { describe, expect, it } from 'vitest';
import { createApp } from '../../edge/src/app';
import type { Backend } from '../../edge/src/transport/backend';
import { HttpBackend } from '../../edge/src/transport/http';
import { auth, env, OTHER_KEY } from './env';
import { appWithBackendSwitch, call, frameBody } from './requests';
import { input } from './transport-contract';
import { worker } from './worker';

async function manifest(): Promise<ModelManifest> {
  return ModelManifest.parse(await (await worker.fetch('http://edge/v1/model')).json());
}

describe('POST /v1/classify', () => {
  it('answers a MISS with the explanation addressed by sha256(version ‖ tensor), then a HIT with the same body', async () => {
    const app = createApp();
    const t = input(10);
    const first = await call(app, '/v1/classify', frameBody(t));
    expect(first.status).toBe(200);
    expect(first.headers.get('x-cache')).toBe('MISS');
    const e = Explanation.parse(await first.json());
    expect(e.id).toBe(await explanationId((await manifest()).version, t));
    const second = await call(app, '/v1/classify', frameBody(t));
    expect(second.headers.get('x-cache')).toBe('HIT');
    expect(await second.json()).toEqual(e);
    // Server-Timing says where the time went: the lookup on both, the backend call only on the miss.
    expect(first.headers.get('server-timing')).toMatch(/^cache;dur=\d+, backend;dur=\d+$/);
    expect(second.headers.get('server-timing')).toMatch(/^cache;dur=\d+$/);
  });

  it("answers a repeat from the isolate's memory, another isolate from the shared layers, and honours MEMORY_CACHE_ENTRIES=0", async () => {
    const t = input(14);
    const app = createApp();
    expect((await call(app, '/v1/classify', frameBody(t))).headers.get('x-cache')).toBe('MISS');
    const again = await call(app, '/v1/classify', frameBody(t));
    expect([again.headers.get('x-cache'), again.headers.get('x-cache-layer')]).toEqual(['HIT', 'memory']);
    // A new app is a new isolate's state: its memory is empty, the Cache API (filled in waitUntil) answers.
    const elsewhere = await call(createApp(), '/v1/classify', frameBody(t));
    expect([elsewhere.headers.get('x-cache'), elsewhere.headers.get('x-cache-layer')]).toEqual([
      'HIT',
      'cache-api',
    ]);
    const off = createApp();
    const noMemory = { ...env, MEMORY_CACHE_ENTRIES: '0' };
    await call(off, '/v1/classify', frameBody(t), noMemory);
    const twice = await call(off, '/v1/classify', frameBody(t), noMemory);
    expect(twice.headers.get('x-cache-layer')).toBe('cache-api');
  });

  it('gives the JSON form the same id and a HIT, and derives lighter views from the cached entry', async () => {
    const app = createApp();
    const t = input(11);
    const miss = Explanation.parse(await (await call(app, '/v1/classify', frameBody(t))).json());
    const json = await call(app, '/v1/classify?topK=5', {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ tensor: encodeJson(t), options: { explain: false } }),
    });
    expect(json.headers.get('x-cache')).toBe('HIT');
    const view = Explanation.parse(await json.json());
    expect(view.id).toBe(miss.id);
    expect(view.topK).toHaveLength(5);
    expect(view.classes).toEqual([]);
  });

  it('sends multi-class evidence requests to the backend uncached (BYPASS)', async () => {
    const res = await call(createApp(), '/v1/classify?explainTopK=true&topK=3', frameBody(input(12)));
    expect(res.headers.get('x-cache')).toBe('BYPASS');
    expect(Explanation.parse(await res.json()).classes).toHaveLength(3);
  });

  it('never serves an explanation of another model version', async () => {
    // A transport that reports a new model version, as after a redeploy with new weights.
    const real = new HttpBackend({
      baseUrl: env.BACKEND_URL!,
      secret: env.PROTOPOOL_HMAC_SECRET,
      timeoutMs: 5000,
    });
    const NEW = 'f'.repeat(64);
    const redeployed: Backend = {
      name: 'redeployed',
      manifest: async () => ({ ...(await real.manifest()), version: NEW }),
      explain: async (t, o) => ({
        ...(await real.explain(t, o)),
        modelVersion: NEW,
        id: await explanationId(NEW, t),
      }),
      prototypeImage: (id) => real.prototypeImage(id),
      models: () => real.models(),
    };
    const t = input(13);
    expect((await call(createApp(), '/v1/classify', frameBody(t))).headers.get('x-cache')).toBe('MISS');
    expect((await call(createApp(), '/v1/classify', frameBody(t))).headers.get('x-cache')).toBe('HIT');
    const after = await call(createApp({ backend: () => redeployed }), '/v1/classify', frameBody(t));
    expect(after.headers.get('x-cache')).toBe('MISS');
    expect(Explanation.parse(await after.json()).modelVersion).toBe(NEW);
  });
});

describe('GET /v1/explanations/:id', () => {
  it('returns a cached explanation, 404 for an unknown id and 400 for a malformed one', async () => {
    const app = createApp();
    const e = Explanation.parse(await (await call(app, '/v1/classify', frameBody(input(20)))).json());
    const hit = await call(app, `/v1/explanations/${e.id}`, { headers: auth() });
    expect(hit.status).toBe(200);
    expect(await hit.json()).toEqual(e);
    const unknown = await call(app, `/v1/explanations/${'0'.repeat(64)}`, { headers: auth() });
    expect(unknown.status).toBe(404);
    expect(ApiError.parse(await unknown.json()).error.message).toMatch(/no cached explanation/);
    expect((await call(app, '/v1/explanations/..%2Fsecrets', { headers: auth() })).status).toBe(400);
  });
});

describe('model, docs', () => {
  it('serves the manifest, the OpenAPI document and a docs page without a key', async () => {
    const m = await manifest();
    expect(m.classes).toHaveLength(10);
    const doc = (await (await worker.fetch('http://edge/openapi.json')).json()) as {
      openapi: string;
      paths: object;
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/classify',
        '/v1/explanations/{id}',
        '/v1/model',
        '/v1/models',
        '/v1/prototypes/{id}/image',
      ]),
    );
    const docs = await worker.fetch('http://edge/docs');
    expect(await docs.text()).toContain('/v1/classify');
  });

  it('answers 404 for unknown prototypes and 400 for malformed ids', async () => {
    expect((await worker.fetch('http://edge/v1/prototypes/999999/image')).status).toBe(404);
    expect((await worker.fetch('http://edge/v1/prototypes/..%2F..%2Fetc/image')).status).toBe(400);
  });
});

describe('keys, limits and bad input', () => {
  it('refuses requests without a known API key', async () => {
    const body = encodeFrame(input(30));
    const none = await worker.fetch('http://edge/v1/classify', {
      method: 'POST',
      body,
      headers: { 'content-type': TENSOR_MEDIA_TYPE },
    });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer');
    const wrong = await worker.fetch('http://edge/v1/classify', {
      method: 'POST',
      body,
      headers: { 'content-type': TENSOR_MEDIA_TYPE, authorization: 'Bearer not-a-real-key' },
    });
    expect(wrong.status).toBe(401);
    ApiError.parse(await wrong.json());
  });

  it('rate-limits per key with 429 and Retry-After', async () => {
    const app = createApp();
    const limited = { ...env, RATE_LIMIT_PER_MINUTE: '3' };
    const get = (key: string) =>
      call(app, `/v1/explanations/${'1'.repeat(64)}`, { headers: auth(key) }, limited);
    for (let i = 0; i < 3; i++) expect((await get(OTHER_KEY)).status).toBe(404);
    const over = await get(OTHER_KEY);
    expect(over.status).toBe(429);
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // Another key has its own budget.
    expect((await get('edge-test-key-1')).status).toBe(404);
  });

  it.each([
    ['an oversized body', { ...frameBody(input(31)) }, { MAX_BODY_BYTES: '1000' }, 413, /exceeds 1000 bytes/],
    [
      'an unsupported media type',
      { method: 'POST', body: 'hi', headers: { ...auth(), 'content-type': 'text/plain' } },
      {},
      415,
      /content-type must be/,
    ],
    [
      'invalid JSON fields',
      {
        method: 'POST',
        body: JSON.stringify({ tensor: { dtype: 'float32', shape: [1] } }),
        headers: { ...auth(), 'content-type': 'application/json' },
      },
      {},
      400,
      /tensor.data/,
    ],
    [
      'a tensor of the wrong shape',
      frameBody(tensor('float32', [1, 28, 27, 1], new Float32Array(756))),
      {},
      400,
      /shape must be \[28, 28, 1\]/,
    ],
    [
      'NaN values',
      frameBody(tensor('float32', [1, 28, 28, 1], new Float32Array(784).fill(Number.NaN))),
      {},
      400,
      /element 0 is NaN/,
    ],
    ['a bad option', { ...frameBody(input(32)) }, {}, 400, /topK/],
  ])('answers %s with a clear 4xx', async (name, init, envOverride, status, message) => {
    const path = name === 'a bad option' ? '/v1/classify?topK=99' : '/v1/classify';
    const res = await call(createApp(), path, init as RequestInit, { ...env, ...envOverride });
    expect(res.status).toBe(status);
    expect(ApiError.parse(await res.json()).error.message).toMatch(message);
  });
});

describe('backend down', () => {
  it('answers 503 for new inputs while cached explanations keep being served', async () => {
    const { app, takeDown } = appWithBackendSwitch();
    const known = input(40);
    const e = Explanation.parse(await (await call(app, '/v1/classify', frameBody(known))).json());
    takeDown();
    const fresh = await call(app, '/v1/classify', frameBody(input(41)));
    expect(fresh.status).toBe(503);
    expect(ApiError.parse(await fresh.json()).error).toMatchObject({
      code: 'backend_unavailable',
      message: expect.stringMatching(/unreachable/),
    });
    const again = await call(app, '/v1/classify', frameBody(known));
    expect(again.status).toBe(200);
    expect(again.headers.get('x-cache')).toBe('HIT');
    expect((await call(app, `/v1/explanations/${e.id}`, { headers: auth() })).status).toBe(200);
  });
});
