// Every explanation cache adapter, inside workerd with real KV and Cache API bindings.
import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { CacheApiCache } from '../../edge/src/cache/cache-api';
import { KvCache } from '../../edge/src/cache/kv';
import { LayeredCache } from '../../edge/src/cache/layered';
import { MemoryCache } from '../../edge/src/cache/memory';
import { cacheContract, sampleExplanation } from './cache-contract';

const kv = (env as unknown as { EXPLANATIONS: KVNamespace }).EXPLANATIONS;

cacheContract('memory', () => new MemoryCache());
cacheContract('KV', () => new KvCache(kv));
cacheContract('Cache API', async () => new CacheApiCache(await caches.open('contract-test')));
cacheContract(
  'layered (Cache API → KV)',
  async () => new LayeredCache([new CacheApiCache(await caches.open('layered-test')), new KvCache(kv)]),
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

describe('layered cache specifics', () => {
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
});
