// The contract every ExplanationCache adapter passes (as Hono's cache adapters share one contract test).
import type { Explanation } from '@protopool/shared';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { ExplanationCache } from '../../edge/src/cache/cache';
import { CorruptEntry } from '../../edge/src/cache/entry';
import { LayeredCache } from '../../edge/src/cache/layered';

export function sampleExplanation(seed: number): Explanation {
  const id = seed.toString(16).padStart(64, '0');
  return {
    id,
    modelVersion: 'b'.repeat(64),
    prediction: { classIndex: seed % 3, label: `class ${seed % 3}`, logit: 1.5 + seed, probability: 0.75 },
    topK: [{ classIndex: seed % 3, label: `class ${seed % 3}`, logit: 1.5 + seed, probability: 0.75 }],
    classes: [],
  };
}

/** How a failing store fails: by throwing at once, or by rejecting (both happen: bindings, wrappers). */
export type FaultMode = 'throws' | 'rejects';

/** Wraps a cache; the operations named in `failing` fail as a store in an outage (or over quota) does. */
export class FailingCache implements ExplanationCache {
  readonly name: string;
  failing: { get?: FaultMode; put?: FaultMode } = {};

  constructor(private readonly inner: ExplanationCache) {
    // The inner layer's name: logs and counters must name the layer that failed.
    this.name = inner.name;
  }

  get(id: string): Promise<Explanation | null> {
    return this.run('get', () => this.inner.get(id));
  }

  put(id: string, explanation: Explanation, ttlSeconds: number): Promise<void> {
    return this.run('put', () => this.inner.put(id, explanation, ttlSeconds));
  }

  // Not async: a 'throws' fault must reach the caller as a synchronous throw.
  private run<T>(op: 'get' | 'put', call: () => Promise<T>): Promise<T> {
    const mode = this.failing[op];
    const err = new Error(`${op} failed: injected outage`);
    if (mode === 'throws') throw err;
    if (mode === 'rejects') return Promise.reject(err);
    return call();
  }
}

/** The request path always reads through a LayeredCache: that is where a fault becomes a miss (the
 * layered adapter under test is its own). */
const served = (cache: ExplanationCache) =>
  cache instanceof LayeredCache ? cache : new LayeredCache([cache]);

/** The JSON lines a console method was given, parsed (each call must be exactly one JSON line). */
export const jsonLines = (spy: { mock: { calls: unknown[][] } }) =>
  spy.mock.calls.map((args) => {
    expect(args).toHaveLength(1);
    expect(args[0]).not.toContain('\n');
    return JSON.parse(String(args[0])) as Record<string, unknown>;
  });

export interface ContractOptions {
  /** Stores raw bytes as the entry for an id; absent for memory, which holds only its own serialisation. */
  plantRaw?: (id: string, bytes: string) => Promise<void>;
}

export function cacheContract(
  name: string,
  /** `now` is the adapter's clock; undefined means its default (Date.now). */
  make: (now?: () => number) => ExplanationCache | Promise<ExplanationCache>,
  { plantRaw }: ContractOptions = {},
) {
  describe(`ExplanationCache contract: ${name}`, () => {
    afterEach(() => {
      vi.restoreAllMocks();
    });

    it('misses an id it never stored', async () => {
      const cache = await make();
      expect(await cache.get(sampleExplanation(1_000_001).id)).toBeNull();
    });

    it('returns what was put, equal in every field', async () => {
      const cache = await make();
      const e = sampleExplanation(1_000_002);
      await cache.put(e.id, e, 300);
      expect(await cache.get(e.id)).toEqual(e);
    });

    it('keeps ids apart and lets a put replace an entry', async () => {
      const cache = await make();
      const a = sampleExplanation(1_000_003);
      const b = sampleExplanation(1_000_004);
      await cache.put(a.id, a, 300);
      await cache.put(b.id, b, 300);
      expect((await cache.get(a.id))?.prediction.logit).toBe(a.prediction.logit);
      const replaced = { ...a, prediction: { ...a.prediction, logit: -7 } };
      await cache.put(a.id, replaced, 300);
      expect((await cache.get(a.id))?.prediction.logit).toBe(-7);
      expect(await cache.get(b.id)).toEqual(b);
    });

    it('stores a copy: changing the original afterwards changes nothing cached', async () => {
      const cache = await make();
      const e = sampleExplanation(1_000_005);
      await cache.put(e.id, e, 300);
      e.prediction.label = 'mutated';
      expect((await cache.get(e.id))?.prediction.label).toBe('class 0');
    });

    // Expiry by the adapter's clock, moved by hand: no sleeping (why the entries carry it: entry.ts).
    it('misses once its TTL has passed, by its clock, also under KV’s 60 s minimum', async () => {
      for (const [seed, ttl] of [
        [1_000_006, 30],
        [1_000_007, 3600],
      ] as const) {
        let now = Date.now();
        const cache = await make(() => now);
        const e = sampleExplanation(seed);
        await cache.put(e.id, e, ttl);
        now += ttl * 1000 - 1;
        expect(await cache.get(e.id)).toEqual(e);
        now += 1;
        expect(await cache.get(e.id)).toBeNull();
        await cache.put(e.id, e, ttl);
        expect(await cache.get(e.id)).toEqual(e);
      }
    });

    for (const mode of ['throws', 'rejects'] as const) {
      it(`serves through an outage whose reads and writes ${mode === 'throws' ? 'throw' : 'reject'}: misses, never fails, counts and logs`, async () => {
        const cache = await make();
        const failing = new FailingCache(cache);
        const pending: Promise<unknown>[] = [];
        const layered = new LayeredCache([failing], 300, (p) => pending.push(p));
        const errors = vi.spyOn(console, 'error').mockImplementation(() => {});
        const kept = sampleExplanation(1_000_008);
        const dropped = sampleExplanation(1_000_009);
        await layered.put(kept.id, kept, 300);

        failing.failing = { get: mode, put: mode };
        expect(await layered.get(kept.id)).toBeNull();
        await expect(layered.put(dropped.id, dropped, 300)).resolves.toBeUndefined();

        failing.failing = {};
        expect(await layered.get(kept.id)).toEqual(kept);
        expect(await layered.get(dropped.id)).toBeNull();
        expect(pending).toEqual([]);
        expect(layered.stats()).toEqual({
          hits: { [cache.name]: 1 },
          misses: 2,
          readErrors: 1,
          writeErrors: 1,
          corrupt: 0,
        });
        expect(jsonLines(errors)).toEqual([
          {
            event: 'cache_fault',
            fault: 'read',
            layer: cache.name,
            id: kept.id,
            error: 'Error: get failed: injected outage',
          },
          {
            event: 'cache_fault',
            fault: 'write',
            layer: cache.name,
            id: dropped.id,
            error: 'Error: put failed: injected outage',
          },
        ]);
      });
    }

    it('treats an entry that is not an Explanation (an older schema wrote it) as a miss; a put replaces it', async () => {
      const cache = await make();
      const warnings = vi.spyOn(console, 'warn').mockImplementation(() => {});
      const e = sampleExplanation(1_000_010);
      const { prediction: _, ...older } = e;
      await cache.put(e.id, older as unknown as Explanation, 300);
      const layered = served(cache);
      // A bare adapter says what it found; the layered cache (the request path) makes it a miss.
      if (layered !== cache) await expect(cache.get(e.id)).rejects.toBeInstanceOf(CorruptEntry);
      expect(await layered.get(e.id)).toBeNull();
      expect(layered.stats()).toMatchObject({ misses: 1, readErrors: 0 });
      expect(layered.stats().corrupt).toBeGreaterThanOrEqual(1);
      expect(jsonLines(warnings)[0]).toMatchObject({
        event: 'cache_fault',
        fault: 'corrupt',
        id: e.id,
        error: expect.stringMatching(/^CorruptEntry: not an Explanation: prediction: /),
      });
      await layered.put(e.id, e, 300);
      expect(await layered.get(e.id)).toEqual(e);
    });

    if (plantRaw)
      it('treats unparseable bytes (a write cut short) as a miss; a put replaces them', async () => {
        const cache = await make();
        const warnings = vi.spyOn(console, 'warn').mockImplementation(() => {});
        const e = sampleExplanation(1_000_011);
        await plantRaw(e.id, JSON.stringify(e).slice(0, 40));
        const layered = served(cache);
        if (layered !== cache) await expect(cache.get(e.id)).rejects.toBeInstanceOf(CorruptEntry);
        expect(await layered.get(e.id)).toBeNull();
        expect(layered.stats().corrupt).toBeGreaterThanOrEqual(1);
        expect(jsonLines(warnings)[0]).toMatchObject({
          fault: 'corrupt',
          error: 'CorruptEntry: stored bytes are not JSON',
        });
        await layered.put(e.id, e, 300);
        expect(await layered.get(e.id)).toEqual(e);
      });
  });
}
