// The contract every ExplanationCache adapter passes (as Hono's cache adapters share one contract test).
import type { Explanation } from '@protopool/shared';
import { describe, expect, it } from 'vitest';
import type { ExplanationCache } from '../../edge/src/cache/cache';

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

export function cacheContract(name: string, make: () => ExplanationCache | Promise<ExplanationCache>) {
  describe(`ExplanationCache contract: ${name}`, () => {
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
  });
}
