// Explanations a person can check: contributions add up, prototypes point at their training patches,
// boxes follow ProtoPNet's rule, and the same input always gives the same bytes.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Explanation, explanationId, GlobalExplanation, type ModelManifest, tensor } from '@protopool/shared';
import * as tf from '@tensorflow/tfjs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dataset } from '../../gpu-backend/src/data/dataset';
import { openDataset } from '../../gpu-backend/src/data/specs';
import { initEngine } from '../../gpu-backend/src/engine';
import { highActivationBox, percentile, upsampleBicubic } from '../../gpu-backend/src/explain/boxes';
import { globalExplanation } from '../../gpu-backend/src/explain/global';
import { explainBatch } from '../../gpu-backend/src/explain/local';
import { loadModelDir } from '../../gpu-backend/src/io/model-files';
import type { ProtoPoolModel } from '../../gpu-backend/src/model/protopool';
import { TrainConfig } from '../../gpu-backend/src/train/config';
import { train } from '../../gpu-backend/src/train/trainer';
import { TINY_CONFIG } from '../helpers/backend-process';
import { seededTensor } from '../helpers/seeded-tensor';

describe('boxes from activation maps', () => {
  it('bicubic upsampling reproduces OpenCV INTER_CUBIC on a hand-computed row', () => {
    // [0, 1] → 4 samples. Sample 0 sits at source x = −0.25: taps at −2..1 clamp to [0,0,0,1] with
    // weights w(1.75), w(0.75), w(0.25), w(1.25); only w(1.25) = −0.10546875 meets a 1 (a = −0.75).
    const out = upsampleBicubic([0, 1], 1, 2, 1, 4);
    expect(out[0]).toBeCloseTo(-0.10546875, 12);
    // By symmetry sample 3 is 1 − sample 0 and sample 1 is 1 − sample 2.
    expect(out[3]).toBeCloseTo(1.10546875, 12);
    expect(out[1]! + out[2]!).toBeCloseTo(1, 12);
  });

  it('keeps a constant map constant', () => {
    for (const v of upsampleBicubic([2, 2, 2, 2, 2, 2], 2, 3, 7, 9)) expect(v).toBeCloseTo(2, 12);
  });

  it('percentile interpolates linearly like numpy', () => {
    expect(percentile([1, 2, 3, 4, 5], 95)).toBeCloseTo(4.8, 12); // rank 3.8
    expect(percentile([7], 95)).toBe(7);
  });

  it('percentile by selection equals the sorted definition for any values, duplicates and order', () => {
    const sorted = (xs: number[], p: number) => {
      const s = Float64Array.from(xs).sort();
      const rank = (p / 100) * (s.length - 1);
      const lo = Math.floor(rank);
      const hi = Math.min(lo + 1, s.length - 1);
      return s[lo]! + (rank - lo) * (s[hi]! - s[lo]!);
    };
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.double({ noNaN: true, min: -1e6, max: 1e6 }), fc.constantFrom(0, 1, -1)), {
          minLength: 1,
          maxLength: 300,
        }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        (xs, p) => {
          expect(percentile(xs, p)).toBeCloseTo(sorted(xs, p), 9);
          expect(percentile(xs, 95)).toBe(sorted(xs, 95));
        },
      ),
      { seed: 42, numRuns: 500 },
    );
  });

  it('boxes the pixels at or above the 95th percentile', () => {
    // 10×10 map, zero except a 2×3 block of 1s at rows 4–5, columns 6–8 (6 of 100 pixels ≥ p95 = 1).
    const map = new Array(100).fill(0);
    for (const y of [4, 5]) for (const x of [6, 7, 8]) map[y * 10 + x] = 1;
    expect(highActivationBox(map, 10, 10)).toEqual({ x0: 6, y0: 4, x1: 9, y1: 6 });
  });
});

describe('global explanation', () => {
  it('derives the sharing graph, unused prototypes and compactness from the manifest', () => {
    const manifest = {
      version: 'a'.repeat(64),
      classes: ['a', 'b', 'c'],
      architecture: { prototypes: 5, slotsPerClass: 2 },
      prototypes: [
        {
          id: 0,
          source: null,
          usedBy: [
            { classIndex: 0, slot: 0 },
            { classIndex: 1, slot: 1 },
          ],
        },
        {
          id: 2,
          source: null,
          usedBy: [
            { classIndex: 0, slot: 1 },
            { classIndex: 2, slot: 0 },
            { classIndex: 2, slot: 1 },
          ],
        },
        { id: 3, source: null, usedBy: [{ classIndex: 1, slot: 0 }] },
      ],
    } as unknown as ModelManifest;
    const g = GlobalExplanation.parse(globalExplanation(manifest));
    expect(g.sharing).toEqual([
      { prototypeId: 0, classes: [0, 1] },
      { prototypeId: 2, classes: [0, 2] },
    ]);
    expect(g.unused).toEqual([1, 4]);
    expect(g.compactness).toEqual({
      poolSize: 5,
      prototypesUsed: 3,
      slots: 6,
      sharedPrototypes: 2,
      meanClassesPerPrototype: 5 / 3,
    });
  });
});

describe('local explanations of a trained model', () => {
  let dataset: Dataset;
  let model: ProtoPoolModel;
  let manifest: ModelManifest;
  const all = { explain: true, topK: 10, explainTopK: true };

  async function explain(indices: number[], options = all) {
    const batch = await dataset.test.load(indices);
    const x = tf.tensor4d(batch.x, batch.shape);
    const ids = await Promise.all(
      indices.map((_, i) =>
        explanationId(
          manifest.version,
          tensor('float32', [1, 28, 28, 1], batch.x.slice(i * 784, (i + 1) * 784)),
        ),
      ),
    );
    const out = await explainBatch(model, manifest, x, ids, options);
    x.dispose();
    return out;
  }

  beforeAll(async () => {
    await initEngine('wasm');
    dataset = await openDataset('fashion-mnist:embedded');
    const config = TrainConfig.parse({ seed: 5, ...TINY_CONFIG });
    const out = await mkdtemp(join(tmpdir(), 'pp-explain-'));
    await train({ dataset, config, outDir: out, resume: false, command: 'test' });
    ({ model, manifest } = await loadModelDir(join(out, 'model')));
  });

  afterAll(() => model.dispose());

  it('validates against the shared schema, and slot contributions plus the residual equal the logit', async () => {
    const before = tf.memory().numTensors;
    const [e] = await explain([0]);
    expect(tf.memory().numTensors).toBe(before);
    Explanation.parse(e);
    expect(e!.classes).toHaveLength(10);
    const w = (await model.head.lastLayer.array()) as number[][];
    for (const c of e!.classes) {
      const sum = c.slots.reduce((s, slot) => s + slot.contribution, 0) + c.residual;
      expect(sum).toBeCloseTo(c.logit, 5);
      for (const slot of c.slots) {
        expect(slot.contribution).toBeCloseTo(slot.weight * slot.similarity, 6);
        expect(slot.weight).toBe(w[c.classIndex]![c.classIndex * 2 + slot.slot]);
      }
    }
    // The top-k list is sorted by logit and the prediction is its head.
    const logits = e!.topK.map((t) => t.logit);
    expect(logits).toEqual([...logits].sort((a, b) => b - a));
    expect(e!.prediction).toEqual(e!.topK[0]);
  });

  it('explains a prototype’s own source image with the peak at the recorded cell', async () => {
    const p = manifest.prototypes.find((q) => q.source)!;
    const src = p.source!;
    const index = Number(src.imageId.split('/')[1]);
    const batch = await dataset.train.load([index]);
    const x = tf.tensor4d(batch.x, batch.shape);
    const [e] = await explainBatch(model, manifest, x, ['0'.repeat(64)], all);
    x.dispose();
    const cls = e!.classes.find((c) => c.classIndex === src.label)!;
    const slot = cls.slots.find((s) => s.prototypeId === p.id)!;
    expect(slot.peak).toEqual(src.cell);
    // Distance 0 at the source cell: the similarity there is log((0+1)/(0+ε)) = log(1e4).
    expect(slot.activation.data[src.cell.h * slot.activation.width + src.cell.w]).toBeCloseTo(
      Math.log(1e4),
      2,
    );
    expect(slot.source).toEqual(src);
    // The source box is the explanation's own box on that image.
    expect(slot.box).toEqual(src.box);
  });

  /** max over used prototypes and cells of log((d + 1)/(d + ε)), in JS doubles from the latents read back. */
  function bestSimilarityByHand(x: tf.Tensor4D): number[] {
    const z = tf.tidy(() => model.latents(x));
    const zs = z.dataSync();
    const [b, h, w, d] = z.shape;
    z.dispose();
    const ps = model.head.prototypes.dataSync();
    const used = manifest.prototypes.map((p) => p.id);
    return Array.from({ length: b }, (_, i) => {
      let best = Number.NEGATIVE_INFINITY;
      for (let cell = 0; cell < h * w; cell++) {
        for (const p of used) {
          let dist = 0;
          for (let k = 0; k < d; k++) dist += (zs[(i * h * w + cell) * d + k]! - ps[p * d + k]!) ** 2;
          best = Math.max(best, Math.log((dist + 1) / (dist + model.config.eps)));
        }
      }
      return best;
    });
  }

  it('carries its novelty calibration: the 5th percentile of the training images’ best similarity', async () => {
    const n = TINY_CONFIG.limits.train;
    const batch = await dataset.train.load(Array.from({ length: n }, (_, i) => i));
    const x = tf.tensor4d(batch.x, batch.shape);
    const byHand = bestSimilarityByHand(x).sort((a, b) => a - b);
    x.dispose();
    const cal = manifest.novelty!;
    expect(cal.images).toBe(n);
    const at = (p: number) => {
      const r = (p / 100) * (n - 1);
      return byHand[Math.floor(r)]! + (r - Math.floor(r)) * (byHand[Math.ceil(r)]! - byHand[Math.floor(r)]!);
    };
    for (const p of [0, 5, 50, 100]) expect(cal.percentiles[p]).toBeCloseTo(at(p), 3);
  });

  it('answers with novelty: a prototype’s own training image is typical, seeded noise is flagged', async () => {
    const p = manifest.prototypes.find((q) => q.source)!;
    const source = await dataset.train.load([Number(p.source!.imageId.split('/')[1])]);
    const x = tf.concat([
      tf.tensor4d(source.x, source.shape),
      seededTensor([1, 28, 28, 1], 9, -3, 3),
    ]) as tf.Tensor4D;
    const [own, noise] = await explainBatch(model, manifest, x, ['0'.repeat(64), '1'.repeat(64)], all);
    const byHand = bestSimilarityByHand(x);
    x.dispose();
    expect(own!.novelty!.bestSimilarity).toBeCloseTo(byHand[0]!, 3);
    expect(noise!.novelty!.bestSimilarity).toBeCloseTo(byHand[1]!, 3);
    // Distance 0 to its own prototype: the best similarity there is, log(1e4), so no training image beats it.
    expect(own!.novelty!.bestSimilarity).toBeCloseTo(Math.log(1e4), 2);
    expect(own!.novelty).toMatchObject({ score: 0, flagged: false });
    expect(noise!.novelty!.flagged).toBe(noise!.novelty!.bestSimilarity < manifest.novelty!.percentiles[5]!);
    expect(noise!.novelty!.flagged).toBe(true);
  });

  it('is deterministic to the byte, and prediction-only when explain is false', async () => {
    const a = JSON.stringify(await explain([3, 4]));
    const b = JSON.stringify(await explain([3, 4]));
    expect(a).toBe(b);
    const [plain] = await explain([3], { explain: false, topK: 3, explainTopK: false });
    expect(plain!.classes).toEqual([]);
    expect(plain!.topK).toHaveLength(3);
  });
});
