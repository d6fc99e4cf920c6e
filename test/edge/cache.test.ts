// Every explanation cache adapter, inside workerd with real KV and Cache API bindings.
import { env } from 'cloudflare:workers';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CacheApiCache } from '../../edge/src/cache/cache-api';
import { KvCache } from '../../edge/src/cache/kv';
import { LayeredCache } from '../../edge/src/cache/layered';
import { MemoryCache } from '../../edge/src/cache/memory';
import { CacheStats } from '../../edge/src/cache/stats';
import { cacheContract, FailingCache, jsonLines, sampleExplanation } from './cache-contract';

const kv = (env as unknown as { EXPLANATIONS: KVNamespace }).EXPLANATIONS;

/** Raw bytes under an adapter's own key, as a bad write or a hand edit would leave them. */
const plantInKv = (id: string, bytes: string) => kv.put(new KvCache(kv).key(id), bytes);
const plantInCacheApi = async (name: string, id: string, bytes: string) => {
  const cache = await caches.open(name);
  await cache.put(
    new CacheApiCache(cache).key(id),
    new Response(bytes, { headers: { 'cache-control': 'max-age=300' } }),
  );
};

cacheContract('memory', (now) => new MemoryCache(1000, now));
cacheContract('KV', (now) => new KvCache(kv, now), { plantRaw: plantInKv });
cacheContract('Cache API', async (now) => new CacheApiCache(await caches.open('contract-test'), now), {
  plantRaw: (id, bytes) => plantInCacheApi('contract-test', id, bytes),
});
cacheContract(
  'layered (Cache API → KV)',
  async (now) =>
    new LayeredCache([new CacheApiCache(await caches.open('layered-test'), now), new KvCache(kv, now)]),
  {
    plantRaw: async (id, bytes) => {
      await plantInCacheApi('layered-test', id, bytes);
      await plantInKv(id, bytes);
    },
  },
);

describe('memory cache specifics', () => {
  it('expires entries after their TTL and evicts the least recently used beyond its size', async () => {
    let now = 0;
    const cache = new MemoryCache(2, () => now);
    const [a, b, c] = [sampleExplanation(1), sampleExplanation(2), sampleExplanation(3)];
    await cache.put(a.id, a, 10);
    await cache.put(b.id, b, 10);
    await cache.get(a.id); // a is now the most recently used
    await cache.put(c.id, c, 10); // evicts b
    expect(await cache.get(b.id)).toBeNull();
    expect(await cache.get(a.id)).toEqual(a);
    now = 10_001;
    expect(await cache.get(a.id)).toBeNull();
  });
});

describe('stores’ own expiry', () => {
  it('still asks KV and the Cache API to expire entries (garbage collection), KV no sooner than its minimum', async () => {
    const e = sampleExplanation(44);
    const puts: unknown[][] = [];
    const fakeKv = { put: async (...args: unknown[]) => void puts.push(args) } as unknown as KVNamespace;
    await new KvCache(fakeKv, () => 1_000).put(e.id, e, 30);
    expect(puts[0]?.[2]).toEqual({ expirationTtl: 60, metadata: { expiresAt: 31_000 } });
    const cache = await caches.open('expiry-headers');
    const api = new CacheApiCache(cache, () => 1_000);
    await api.put(e.id, e, 30);
    const stored = await cache.match(api.key(e.id));
    expect(stored?.headers.get('cache-control')).toBe('public, max-age=30');
    expect(stored?.headers.get('x-protopool-expires')).toBe('31000');
  });

  it('serves an entry written before expiry stamps existed (no stamp: the store alone expires it)', async () => {
    const e = sampleExplanation(45);
    await plantInKv(e.id, JSON.stringify(e));
    await plantInCacheApi('unstamped', e.id, JSON.stringify(e));
    const later = () => Date.now() + 365 * 24 * 3600_000;
    expect(await new KvCache(kv, later).get(e.id)).toEqual(e);
    expect(await new CacheApiCache(await caches.open('unstamped'), later).get(e.id)).toEqual(e);
  });
});

describe('layered cache specifics', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('fills the faster layer on a slower-layer hit, in the background', async () => {
    const fast = new MemoryCache();
    const slow = new MemoryCache();
    const pending: Promise<unknown>[] = [];
    const layered = new LayeredCache([fast, slow], 600, (p) => pending.push(p));
    const e = sampleExplanation(42);
    await slow.put(e.id, e, 600);
    expect(await layered.get(e.id)).toEqual(e);
    expect(layered.lastHitLayer).toBe('memory');
    await Promise.all(pending);
    expect(await fast.get(e.id)).toEqual(e);
  });

  it('writes through to every layer', async () => {
    const fast = new MemoryCache();
    const slow = new MemoryCache();
    const e = sampleExplanation(43);
    await new LayeredCache([fast, slow]).put(e.id, e, 600);
    expect(await fast.get(e.id)).toEqual(e);
    expect(await slow.get(e.id)).toEqual(e);
  });

  it('answers from a lower layer past a corrupt upper entry, and back-fills the upper one', async () => {
    const warnings = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const e = sampleExplanation(46);
    const upper = new CacheApiCache(await caches.open('backfill-corrupt'));
    await plantInCacheApi('backfill-corrupt', e.id, '{"id":');
    await new KvCache(kv).put(e.id, e, 600);
    const pending: Promise<unknown>[] = [];
    const layered = new LayeredCache([upper, new KvCache(kv)], 600, (p) => pending.push(p));
    expect(await layered.get(e.id)).toEqual(e);
    expect(layered.lastHitLayer).toBe('kv');
    expect(layered.stats()).toEqual({
      hits: { kv: 1 },
      misses: 0,
      readErrors: 0,
      writeErrors: 0,
      corrupt: 1,
    });
    expect(jsonLines(warnings)).toEqual([
      expect.objectContaining({ fault: 'corrupt', layer: 'cache-api', id: e.id }),
    ]);
    await Promise.all(pending);
    expect(await upper.get(e.id)).toEqual(e);
  });

  for (const mode of ['throws', 'rejects'] as const) {
    it(`answers from a lower layer past a failing one whose writes ${mode === 'throws' ? 'throw' : 'reject'}: the back-fill fails in the background, quietly`, async () => {
      const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
      const upper = new FailingCache(new MemoryCache());
      upper.failing = { get: mode, put: mode };
      const lower = new MemoryCache();
      const pending: Promise<unknown>[] = [];
      const layered = new LayeredCache([upper, lower], 600, (p) => pending.push(p));
      const e = sampleExplanation(47);
      await lower.put(e.id, e, 600);
      expect(await layered.get(e.id)).toEqual(e);
      expect(pending).toHaveLength(1);
      // waitUntil gets a promise that resolves: a rejection there would be an unhandled error in the Worker.
      await expect(Promise.all(pending)).resolves.toEqual([undefined]);
      expect(layered.stats()).toMatchObject({ readErrors: 1, writeErrors: 1, misses: 0 });
      expect(jsonLines(errors).map((l) => l.fault)).toEqual(['read', 'write']);
    });
  }

  it('never waits for a back-fill: a faster layer whose put hangs does not hold the hit back', async () => {
    const e = sampleExplanation(50);
    const hanging = { name: 'hanging', get: async () => null, put: () => new Promise<void>(() => {}) };
    const lower = new MemoryCache();
    await lower.put(e.id, e, 600);
    const pending: Promise<unknown>[] = [];
    expect(await new LayeredCache([hanging, lower], 600, (p) => pending.push(p)).get(e.id)).toEqual(e);
    expect(pending).toHaveLength(1);
  });

  it('counts across requests when given the isolate’s counters', async () => {
    const stats = new CacheStats();
    const memory = new MemoryCache();
    const e = sampleExplanation(48);
    await new LayeredCache([memory], 600, undefined, stats).put(e.id, e, 600);
    await new LayeredCache([memory], 600, undefined, stats).get(e.id);
    await new LayeredCache([memory], 600, undefined, stats).get(sampleExplanation(49).id);
    expect(stats.snapshot()).toEqual({
      hits: { memory: 1 },
      misses: 1,
      readErrors: 0,
      writeErrors: 0,
      corrupt: 0,
    });
    // A snapshot is a copy.
    stats.snapshot().hits.memory = 99;
    expect(stats.snapshot().hits.memory).toBe(1);
  });
});
