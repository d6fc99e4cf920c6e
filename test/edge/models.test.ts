// Several models behind one edge, against the real backend process serving two (the tiny default and the
// shipped parts model, 64×64×3 with 15 classes): naming them, each one's manifest, cache entries and pictures.
import {
  ApiError,
  decodeBase64,
  Explanation,
  explanationId,
  ModelList,
  ModelManifest,
  tensor,
} from '@protopool/shared';
import { describe, expect, inject, it } from 'vitest';
import { createApp } from '../../edge/src/app';
import { ManifestCache } from '../../edge/src/manifest-cache';
import type { Backend } from '../../edge/src/transport/backend';
import { HttpBackend } from '../../edge/src/transport/http';
import { auth, env } from './env';
import { appWithBackendSwitch, call, frameBody } from './requests';
import { input, inputOf } from './transport-contract';
import { worker } from './worker';

const { image: imageB64, models: served } = inject('servedModels');
const [tiny, parts] = [served[0]!, served[1]!];
const image = decodeBase64(imageB64)!;
const BAD_NAME = /^Invalid query: model: model names are 1–48 lowercase letters, digits or inner hyphens$/;

const real = () =>
  new HttpBackend({ baseUrl: env.BACKEND_URL!, secret: env.PROTOPOOL_HMAC_SECRET, timeoutMs: 5000 });

/** The real backend, each call written down (`manifest:parts`, `manifest:` for the default). */
function recorded(backend: Backend = real()) {
  const calls: string[] = [];
  const note = <T>(what: string, result: T) => {
    calls.push(what);
    return result;
  };
  const wrapped: Backend = {
    name: 'recorded',
    manifest: (t, m) => note(`manifest:${m ?? ''}`, backend.manifest(t, m)),
    explain: (x, o, t, m) => note(`explain:${m ?? ''}`, backend.explain(x, o, t, m)),
    prototypeImage: (id, t, m) => note(`image:${m ?? ''}`, backend.prototypeImage(id, t, m)),
    models: (t) => note('models', backend.models(t)),
  };
  return { backend: wrapped, calls };
}

/** The test PNG posted as an upload, with the suite's key. */
const upload = { method: 'POST', body: image, headers: { ...auth(), 'content-type': 'image/png' } };

const classify = (app: ReturnType<typeof createApp>, query = '', e = env) =>
  call(app, `/v1/classify${query}`, upload, e);

/** The explanation id the edge must give `image` under `m`, from the backend's own preprocessing. */
const expectedId = (m: typeof tiny) => {
  const bytes = decodeBase64(m.imageTensor)!;
  const t = tensor(
    'float32',
    [1, m.input.height, m.input.width, m.input.channels],
    new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4),
  );
  return explanationId(m.version, t);
};

describe('GET /v1/models', () => {
  it('lists both served models with the default, public for a minute, fetched once per TTL', async () => {
    const { backend, calls } = recorded();
    const app = createApp({ backend: () => backend });
    const res = await call(app, '/v1/models', {});
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('public, max-age=60');
    const list = ModelList.parse(await res.json());
    expect(list.default).toBe('tiny');
    expect(list.models.map((m) => [m.name, m.version, m.classes.length, m.input.channels])).toEqual([
      ['tiny', tiny.version, 10, 1],
      ['parts', parts.version, 15, 3],
    ]);
    expect(await (await call(app, '/v1/models', {})).json()).toEqual(list);
    expect(calls).toEqual(['models']);
  });
});

describe('POST /v1/classify?model=', () => {
  it("classifies one image with each model: that model's version, classes and input, each its own cache entry", async () => {
    const app = createApp();
    const byDefault = await classify(app, '?topK=10');
    expect([byDefault.status, byDefault.headers.get('x-cache')]).toEqual([200, 'MISS']);
    const a = Explanation.parse(await byDefault.json());
    expect(a.modelVersion).toBe(tiny.version);
    expect(a.id).toBe(await expectedId(tiny));
    expect(a.topK.map((k) => k.label).sort()).toEqual([...tiny.classes].sort());
    expect((await classify(app, '?topK=10')).headers.get('x-cache')).toBe('HIT');

    // A HIT on the default model, then the same image on the other model: a MISS, another entry.
    const byParts = await classify(app, '?model=parts&topK=15');
    expect([byParts.status, byParts.headers.get('x-cache')]).toEqual([200, 'MISS']);
    const b = Explanation.parse(await byParts.json());
    expect(b.modelVersion).toBe(parts.version);
    expect(b.id).toBe(await expectedId(parts));
    expect(b.topK.map((k) => k.label).sort()).toEqual([...parts.classes].sort());
    const again = await classify(app, '?model=parts&topK=15');
    expect(again.headers.get('x-cache')).toBe('HIT');
    expect(await again.json()).toEqual(b);

    // The default model by its name is the same model version: the same entry.
    const named = await classify(app, '?model=tiny&topK=10');
    expect(named.headers.get('x-cache')).toBe('HIT');
    expect(Explanation.parse(await named.json()).id).toBe(a.id);
    // And the lookup by id needs no model: ids address one model version.
    const byId = await call(app, `/v1/explanations/${b.id}?topK=15`, { headers: auth() });
    expect(await byId.json()).toEqual(b);
  });

  it("answers a model no one serves with the backend's 404 naming the served ones, on every route", async () => {
    const app = createApp();
    for (const [path, init] of [
      ['/v1/classify?model=no-such-model', upload],
      ['/v1/model?model=no-such-model', {}],
      [`/v1/prototypes/${tiny.prototype.id}/image?model=no-such-model`, {}],
    ] as const) {
      const res = await call(app, path, init);
      expect(res.status, path).toBe(404);
      const { error } = ApiError.parse(await res.json());
      expect(error.code).toBe('not_found');
      expect(error.message, path).toMatch(
        /^no model "no-such-model" here; this deployment serves: tiny, parts/,
      );
    }
  });

  it('answers a malformed model name with 400 before any backend call', async () => {
    const { backend, calls } = recorded();
    const app = createApp({ backend: () => backend });
    for (const [path, init] of [
      ['/v1/classify?model=Not_A_Name', upload],
      ['/v1/model?model=-parts', {}],
      [`/v1/prototypes/${tiny.prototype.id}/image?model=${'a'.repeat(49)}`, {}],
    ] as const) {
      const res = await call(app, path, init);
      expect(res.status, path).toBe(400);
      expect(ApiError.parse(await res.json()).error.message, path).toMatch(BAD_NAME);
    }
    expect(calls).toEqual([]);
  });
});

describe('GET /v1/model?model= and /v1/prototypes/:id/image?model=', () => {
  it("gives the named model's manifest, and the default's without a name", async () => {
    const app = createApp();
    const named = await call(app, '/v1/model?model=parts', {});
    expect(named.headers.get('cache-control')).toBe('public, max-age=60');
    const m = ModelManifest.parse(await named.json());
    expect([m.version, m.classes, m.input.height]).toEqual([parts.version, parts.classes, 64]);
    const bare = ModelManifest.parse(await (await call(app, '/v1/model', {})).json());
    expect([bare.version, bare.classes]).toEqual([tiny.version, tiny.classes]);
  });

  it("serves each model's prototype pictures, immutable only under that model's version", async () => {
    const app = createApp();
    const get = (q: string) => call(app, `/v1/prototypes/${parts.prototype.id}/image${q}`, {});
    const versioned = await get(`?model=parts&v=${parts.version}`);
    expect(versioned.status).toBe(200);
    expect(versioned.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(new Uint8Array(await versioned.arrayBuffer())).toEqual(decodeBase64(parts.prototype.png));
    // Another model's version is no promise about this picture.
    const otherVersion = await get(`?model=parts&v=${tiny.version}`);
    expect(otherVersion.headers.get('cache-control')).toBe('public, max-age=300');
    await otherVersion.arrayBuffer();
    // The default model has no prototype of that id (a pool of 12).
    const byDefault = await get(`?v=${parts.version}`);
    expect(byDefault.status).toBe(404);
    expect(ApiError.parse(await byDefault.json()).error.message).toBe(
      `no prototype ${parts.prototype.id} in model ${tiny.version.slice(0, 12)}`,
    );
    const own = await call(app, `/v1/prototypes/${tiny.prototype.id}/image?v=${tiny.version}`, {});
    expect(own.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(new Uint8Array(await own.arrayBuffer())).toEqual(decodeBase64(tiny.prototype.png));
  });
});

describe("each model's manifest in the isolate", () => {
  it('keeps each manifest for its own TTL from its own fetch', async () => {
    let now = 0;
    const { backend, calls } = recorded();
    const manifests = new ManifestCache(60_000, () => now);
    expect((await manifests.get(backend)).version).toBe(tiny.version);
    now = 30_000;
    expect((await manifests.get(backend, undefined, 'parts')).version).toBe(parts.version);
    now = 59_999;
    await manifests.get(backend);
    await manifests.get(backend, undefined, 'parts');
    expect(calls).toEqual(['manifest:', 'manifest:parts']);
    now = 60_000; // the default's minute is up, not the parts model's
    await manifests.get(backend);
    await manifests.get(backend, undefined, 'parts');
    expect(calls).toEqual(['manifest:', 'manifest:parts', 'manifest:']);
    now = 90_000;
    await manifests.get(backend, undefined, 'parts');
    expect(calls.at(-1)).toBe('manifest:parts');
    expect(calls).toHaveLength(4);
  });

  it('invalidates one model without the other, and keeps no entry for names the backend refused', async () => {
    const { backend, calls } = recorded();
    const manifests = new ManifestCache(60_000, () => 0);
    await manifests.get(backend);
    await manifests.get(backend, undefined, 'parts');
    manifests.invalidate('parts');
    await manifests.get(backend);
    expect(calls).toEqual(['manifest:', 'manifest:parts']);
    await manifests.get(backend, undefined, 'parts');
    expect(calls).toEqual(['manifest:', 'manifest:parts', 'manifest:parts']);
    const err = await manifests.get(backend, undefined, 'no-such-model').catch((e) => e);
    expect(err.code).toBe('not_found');
    expect(manifests.last('no-such-model')).toBeNull();
    expect(manifests.last('parts')?.version).toBe(parts.version);
  });

  it('answers for the other model version the backend reported by refetching that model’s manifest only', async () => {
    // The parts model redeployed under new weights behind a manifest the edge already holds.
    const NEW = 'e'.repeat(64);
    const inner = recorded();
    const redeployed: Backend = {
      ...inner.backend,
      explain: async (x, o, t, m) => {
        const e = await inner.backend.explain(x, o, t, m);
        return m === 'parts' ? { ...e, modelVersion: NEW, id: await explanationId(NEW, x) } : e;
      },
    };
    const app = createApp({ backend: () => redeployed });
    // Inputs of their own, so no other test's cache entry answers them.
    const [mine, theirs] = [input(61), inputOf(parts.input, 61)];
    expect((await call(app, '/v1/classify', frameBody(mine))).headers.get('x-cache')).toBe('MISS');
    const stale = await call(app, '/v1/classify?model=parts', frameBody(theirs));
    expect(stale.headers.get('x-cache')).toBe('MISS');
    expect(Explanation.parse(await stale.json()).modelVersion).toBe(NEW);
    inner.calls.length = 0;
    // The default's manifest is still fresh: a HIT without a manifest fetch; the parts model's is refetched.
    expect((await call(app, '/v1/classify', frameBody(mine))).headers.get('x-cache')).toBe('HIT');
    await call(app, '/v1/model?model=parts', {});
    expect(inner.calls).toEqual(['manifest:parts']);
  });

  it("falls back to a model's last manifest only while the backend does not answer", async () => {
    const { app, takeDown } = appWithBackendSwitch();
    const short = { ...env, MANIFEST_TTL_SECONDS: '1' };
    const known = Explanation.parse(await (await classify(app, '?model=parts', short)).json());
    const list = await (await call(app, '/v1/models', {}, short)).json();
    takeDown();
    await new Promise((r) => setTimeout(r, 1100)); // past the manifest TTL: every read goes to the backend
    const stale = await call(app, '/v1/model?model=parts', {}, short);
    expect(stale.status).toBe(200);
    expect(ModelManifest.parse(await stale.json()).version).toBe(parts.version);
    const hit = await classify(app, '?model=parts', short);
    expect([hit.status, hit.headers.get('x-cache')]).toEqual([200, 'HIT']);
    expect(Explanation.parse(await hit.json()).id).toBe(known.id);
    expect(await (await call(app, '/v1/models', {}, short)).json()).toEqual(list);
    // The default model was never fetched by this isolate: nothing to fall back to.
    const none = await call(app, '/v1/model', {}, short);
    expect(none.status).toBe(503);
    expect(ApiError.parse(await none.json()).error.code).toBe('backend_unavailable');
  });

  it('believes a backend that answers it no longer serves a model, though a manifest of it is in hand', async () => {
    // The backend stops serving "parts": asked, from then on, for a name it has never served.
    let removed = false;
    const { backend } = recorded();
    const app = createApp({
      backend: () => ({
        ...backend,
        manifest: (t, m) => backend.manifest(t, removed && m === 'parts' ? 'removed-model' : m),
      }),
    });
    const short = { ...env, MANIFEST_TTL_SECONDS: '1' };
    expect((await call(app, '/v1/model?model=parts', {}, short)).status).toBe(200);
    removed = true;
    await new Promise((r) => setTimeout(r, 1100)); // past the manifest TTL
    const gone = await call(app, '/v1/model?model=parts', {}, short);
    expect(gone.status).toBe(404);
    expect(ApiError.parse(await gone.json()).error.message).toMatch(/^no model "removed-model" here/);
  });
});

describe('the OpenAPI document', () => {
  it('documents GET /v1/models and the model parameter where a route takes one', async () => {
    type Op = {
      parameters?: { in: string; name: string; schema: { pattern?: string } }[];
      responses: Record<string, { content?: Record<string, { schema: { properties?: object } }> }>;
    };
    const doc = (await (await worker.fetch('http://edge/openapi.json')).json()) as {
      paths: Record<string, Record<string, Op>>;
    };
    const list = doc.paths['/v1/models']!.get!.responses['200']!.content!['application/json']!.schema;
    expect(Object.keys(list.properties ?? {})).toEqual(['default', 'models']);
    const model = (path: string, method: string) =>
      doc.paths[path]![method]!.parameters?.find((p) => p.in === 'query' && p.name === 'model');
    for (const [path, method] of [
      ['/v1/classify', 'post'],
      ['/v1/model', 'get'],
      ['/v1/prototypes/{id}/image', 'get'],
    ] as const) {
      // The pattern the edge checks names with (shared ModelName), so the document cannot drift from it.
      expect(new RegExp(model(path, method)!.schema.pattern!).test('parts'), path).toBe(true);
      expect(new RegExp(model(path, method)!.schema.pattern!).test('Not_A_Name'), path).toBe(false);
      expect(Object.keys(doc.paths[path]![method]!.responses), path).toContain('404');
    }
    // An explanation id already names one model version.
    expect(model('/v1/explanations/{id}', 'get')).toBeUndefined();
  });
});
