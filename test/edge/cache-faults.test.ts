import { Explanation, explanationId, ModelManifest } from '@protopool/shared';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createApp } from '../../edge/src/app';
import { CacheApiCache } from '../../edge/src/cache/cache-api';
import { KvCache } from '../../edge/src/cache/kv';
import { type FaultMode, jsonLines } from './cache-contract';
import { auth, env, KEY } from './env';
import { call, frameBody } from './requests';
import { input } from './transport-contract';
import { worker } from './worker';

/**
 * Every Cache API and KV call fails, at the bindings themselves: the Worker runs in the tests' isolate, so
 * it sees these mocks (vitest-pool-workers), and no hook in the app is needed.
 */
function outage(mode: FaultMode) {
  const fail = (what: string) => () => {
    const err = new Error(`${what}: injected outage`);
    if (mode === 'throws') throw err;
    return Promise.reject(err);
  };
  const kvBinding = Object.getPrototypeOf(env.EXPLANATIONS) as KVNamespace;
  vi.spyOn(caches.default, 'match').mockImplementation(fail('cache match'));
  vi.spyOn(caches.default, 'put').mockImplementation(fail('cache put'));
  vi.spyOn(kvBinding, 'get').mockImplementation(fail('kv get'));
  vi.spyOn(kvBinding, 'getWithMetadata').mockImplementation(fail('kv get'));
  vi.spyOn(kvBinding, 'put').mockImplementation(fail('kv put'));
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('a Cache API and KV outage', () => {
  for (const [mode, seed] of [
    ['throws', 1901],
    ['rejects', 1902],
  ] as const) {
    it(`answers from the backend when the stores' calls ${mode === 'throws' ? 'throw' : 'reject'}: a MISS, not a 500; each fault one JSON line, no secrets`, async () => {
      outage(mode);
      const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
      const res = await worker.fetch('http://edge/v1/classify', frameBody(input(seed)));
      expect(res.status).toBe(200);
      expect(res.headers.get('x-cache')).toBe('MISS');
      Explanation.parse(await res.json());
      // A lookup by id reads the same stores: not found (a miss), not an internal error.
      const byId = await worker.fetch(`http://edge/v1/explanations/${'e'.repeat(64)}`, { headers: auth() });
      expect(byId.status).toBe(404);
      // The failed writes ran in the Worker's waitUntil; they log as soon as their calls fail.
      await vi.waitFor(() => expect(errors.mock.calls.length).toBeGreaterThanOrEqual(6));
      const faults = jsonLines(errors).map(({ fault, layer, error }) => ({ fault, layer, error }));
      expect(faults).toEqual(
        expect.arrayContaining([
          { fault: 'read', layer: 'cache-api', error: 'Error: cache match: injected outage' },
          { fault: 'read', layer: 'kv', error: 'Error: kv get: injected outage' },
          { fault: 'write', layer: 'cache-api', error: 'Error: cache put: injected outage' },
          { fault: 'write', layer: 'kv', error: 'Error: kv put: injected outage' },
        ]),
      );
      const logged = errors.mock.calls.flat().map(String).join('\n');
      for (const secret of [KEY, env.PROTOPOOL_HMAC_SECRET!]) expect(logged).not.toContain(secret);
    });
  }
});

describe('corrupt entries', () => {
  it('are misses: the backend answers, the background put overwrites them, the next request is a HIT', async () => {
    const t = input(1903);
    const manifest = ModelManifest.parse(await (await worker.fetch('http://edge/v1/model')).json());
    const id = await explanationId(manifest.version, t);
    const cacheApi = new CacheApiCache(caches.default);
    const kv = new KvCache(env.EXPLANATIONS);
    // A write cut short in the colo, and an entry an older release wrote under another schema.
    await caches.default.put(
      cacheApi.key(id),
      new Response('{"id":"', { headers: { 'cache-control': 'max-age=600' } }),
    );
    await env.EXPLANATIONS.put(kv.key(id), JSON.stringify({ id, label: 'old shape' }));
    const warnings = vi.spyOn(console, 'warn').mockImplementation(() => {});

    const byId = await call(createApp(), `/v1/explanations/${id}`, { headers: auth() });
    expect(byId.status).toBe(404);
    const first = await call(createApp(), '/v1/classify', frameBody(t));
    expect(first.status).toBe(200);
    expect(first.headers.get('x-cache')).toBe('MISS');
    const body = Explanation.parse(await first.json());
    expect(body.id).toBe(id);
    expect(jsonLines(warnings).map(({ fault, layer }) => `${fault} ${layer}`)).toEqual([
      'corrupt cache-api',
      'corrupt kv',
      'corrupt cache-api',
      'corrupt kv',
    ]);

    // call() waited for the background put: both stores now hold the backend's answer.
    expect((await cacheApi.get(id))?.id).toBe(id);
    expect((await kv.get(id))?.id).toBe(id);
    const again = await call(createApp(), '/v1/classify', frameBody(t));
    expect([again.headers.get('x-cache'), again.headers.get('x-cache-layer')]).toEqual(['HIT', 'cache-api']);
    expect(await again.json()).toEqual(body);
  });
});

describe('the fault script’s outage switch (X-Fault-Injection)', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const marked = (seed: number) => {
    const init = frameBody(input(seed));
    return { ...init, headers: { ...init.headers, 'x-fault-injection': 'cache-outage' } };
  };

  it('is ignored without the dev-only FAULT_INJECTION var: the stores answer as usual', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    const app = createApp();
    const noMemory = { ...env, MEMORY_CACHE_ENTRIES: '0' };
    expect((await call(app, '/v1/classify', marked(61), noMemory)).headers.get('x-cache')).toBe('MISS');
    const again = await call(app, '/v1/classify', marked(61), noMemory);
    expect([again.headers.get('x-cache'), again.headers.get('x-cache-layer')]).toEqual(['HIT', 'cache-api']);
    expect(jsonLines(errors).filter((l) => l.event === 'cache_fault')).toEqual([]);
  });

  it('with FAULT_INJECTION = "1", fails both stores for the marked request only', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
    const app = createApp();
    const faulty = { ...env, MEMORY_CACHE_ENTRIES: '0', FAULT_INJECTION: '1' };
    const res = await call(app, '/v1/classify', marked(62), faulty);
    expect([res.status, res.headers.get('x-cache')]).toEqual([200, 'MISS']);
    const layers = jsonLines(errors)
      .filter((l) => l.event === 'cache_fault')
      .map((l) => `${l.fault} ${l.layer}`)
      .sort();
    expect(layers).toEqual(['read cache-api', 'read kv', 'write cache-api', 'write kv']);
    // The same input unmarked: its write had failed, so it misses once more, then the stores work again.
    const plain = frameBody(input(62));
    expect((await call(app, '/v1/classify', plain, faulty)).headers.get('x-cache')).toBe('MISS');
    expect((await call(app, '/v1/classify', plain, faulty)).headers.get('x-cache')).toBe('HIT');
  });
});
