// Interpretability metrics: hand-built cases with known answers, then a real model on generated parts data.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import type { PartLocation } from '../../gpu-backend/src/data/dataset';
import { openDataset } from '../../gpu-backend/src/data/specs';
import { initEngine } from '../../gpu-backend/src/engine';
import { loadModelDir } from '../../gpu-backend/src/io/model-files';
import { hardAssignment } from '../../gpu-backend/src/model/assignment';
import { TrainConfig } from '../../gpu-backend/src/train/config';
import {
  isConsistent,
  measureParts,
  partsInWindow,
  patchSide,
  purity,
  type SlotObservation,
  slotScores,
  stability,
  TopK,
  windowSide,
} from '../../gpu-backend/src/train/interpretability';
import { train } from '../../gpu-backend/src/train/trainer';

const part = (p: number, x: number, y: number, visible = true): PartLocation => ({ part: p, x, y, visible });

describe('part windows', () => {
  it('scales the 72 px window of 224 px inputs', () => {
    expect(windowSide(224)).toBe(72);
    expect(windowSide(64)).toBeCloseTo(20.571, 3);
  });

  it('marks visible parts within half a window of the peak', () => {
    const parts = [part(0, 10, 10), part(1, 30, 10), part(2, 12, 12, false)];
    // Window of side 20 around (15, 10): x in [5, 25] — part 0 in, part 1 out, part 2 invisible.
    expect(partsInWindow(parts, 3, 15, 10, 20)).toEqual([true, false, false]);
  });
});

describe('consistency and stability by hand', () => {
  const allVisible = Array.from({ length: 5 }, () => [true, true]);

  it('a prototype that always lands on part 1 is consistent', () => {
    const o = Array.from({ length: 5 }, () => [false, true]);
    expect(isConsistent(o, allVisible)).toBe(true);
  });

  it('one that lands on part 1 in 3 of 5 images (60%) and part 0 in the others is not', () => {
    const o = [
      [false, true],
      [false, true],
      [false, true],
      [true, false],
      [true, false],
    ];
    expect(isConsistent(o, allVisible)).toBe(false);
  });

  it('counts a part only over the images where it is visible: 4 hits of 5 visible = 80% passes', () => {
    const o = [
      [false, true],
      [false, true],
      [false, true],
      [false, true],
      [false, false],
      [false, false],
    ];
    const vis = [
      [true, true],
      [true, true],
      [true, true],
      [true, true],
      [true, true],
      [true, false],
    ];
    expect(isConsistent(o, vis)).toBe(true);
  });

  it('stability is the share of images whose part vector noise leaves unchanged', () => {
    const clean = [
      [true, false],
      [false, true],
      [true, true],
      [false, false],
    ];
    const noisy = [
      [true, false],
      [true, true],
      [true, true],
      [false, false],
    ];
    expect(stability(clean, noisy)).toBe(0.75);
  });
});

describe("scores per class slot (Huang et al.'s unit) and per shared prototype", () => {
  // Prototype 7 serves class 0 (slot 0) and class 1 (slot 1); class 0 also has prototype 3 in slot 1.
  const obs = (
    image: number,
    classIndex: number,
    slot: number,
    prototype: number,
    clean: boolean[],
    noisy = clean,
  ): SlotObservation => ({ image, classIndex, slot, prototype, clean, noisy, visible: [true, true, true] });
  const P0 = [true, false, false];
  const P2 = [false, false, true];
  const NONE = [false, false, false];
  const observations = [
    // Class 0, images 0–4: prototype 7 always on part 0; prototype 3 on part 2 in 4 of 5, noise moves it once.
    ...[0, 1, 2, 3, 4].map((i) => obs(i, 0, 0, 7, P0)),
    ...[0, 1, 2, 3].map((i) => obs(i, 0, 1, 3, P2, i === 0 ? NONE : P2)),
    obs(4, 0, 1, 3, NONE),
    // Class 1, images 5–9: prototype 7 always on part 2 (a colour shared by two positions, say).
    ...[5, 6, 7, 8, 9].map((i) => obs(i, 1, 1, 7, P2)),
  ];

  it('a prototype that hits one part per class is consistent in each class slot', () => {
    // Three class slots, all consistent (prototype 3: 4 of 5 = 80% on part 2); stability 1, 0.8, 1.
    const s = slotScores(observations);
    expect(s.consistency).toBe(100);
    expect(s.stability).toBeCloseTo((100 * (1 + 0.8 + 1)) / 3, 10);
  });

  it('but not as a shared prototype when its classes put it on different parts', () => {
    // Prototype 7 over its 10 images: part 0 in 5, part 2 in 5 → 50% < 80%; prototype 3 consistent → 1 of 2.
    expect(slotScores(observations).consistencyShared).toBe(50);
  });

  it('counts an image once when a class holds the same prototype in two slots', () => {
    // Class 0 holds prototype 5 twice: 4 of 5 images on part 0 either way, so 80% (not diluted or doubled).
    const twice = [0, 1].flatMap((slot) => [0, 1, 2, 3, 4].map((i) => obs(i, 0, slot, 5, i < 4 ? P0 : NONE)));
    const s = slotScores(twice);
    expect(s.consistency).toBe(100);
    expect(s.consistencyShared).toBe(100);
  });

  it('a prototype that wanders is inconsistent in both views', () => {
    const wander = [0, 1, 2, 3, 4].map((i) => obs(i, 0, 0, 1, [P0, P2, NONE, P0, P2][i]!));
    expect(slotScores(wander)).toMatchObject({ consistency: 0, consistencyShared: 0 });
  });
});

describe('purity by hand', () => {
  it('scales the 32 px patch of 224 px inputs', () => {
    expect(patchSide(224)).toBe(32);
    expect(patchSide(64)).toBeCloseTo(9.143, 3);
  });

  it("is the best part's share of the top patches: part 0 in 7 of 10, part 1 in 4 → 0.7", () => {
    const top = Array.from({ length: 10 }, (_, i) => [i < 7, i >= 6]);
    expect(purity(top)).toBe(0.7);
  });

  it('a prototype whose top patches all hold the same part is pure; one on background is not', () => {
    expect(purity(Array.from({ length: 10 }, () => [false, true, false]))).toBe(1);
    expect(purity(Array.from({ length: 10 }, () => [false, false, false]))).toBe(0);
  });

  it('keeps the k highest scores, in order, whatever order they arrive in', () => {
    const top = new TopK<string>(3);
    for (const [score, v] of [
      [0.2, 'a'],
      [0.9, 'b'],
      [0.5, 'c'],
      [0.1, 'd'],
      [0.7, 'e'],
      [0.5, 'f'],
    ] as const) {
      top.offer(score, v);
    }
    expect(top.items.map((t) => t.value)).toEqual(['b', 'e', 'c']);
  });
});

describe('on a trained model', () => {
  it('measures consistency, stability and compactness on generated parts data without leaking', async () => {
    await initEngine('wasm');
    const dataset = await openDataset('parts:3?size=32&classes=3&train=8&test=4');
    const config = TrainConfig.parse({
      model: { prototypes: 8, slotsPerClass: 2, depth: 16 },
      batchSize: 8,
      epochs: { warmup: 1, joint: 1, lastLayer: 0 },
      gumbelTime: 1,
    });
    const { mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const r = await train({
      dataset,
      config,
      outDir: await mkdtemp(join(tmpdir(), 'pp-interp-')),
      resume: false,
      command: 'test',
    });
    const { model } = await loadModelDir(r.modelDir);
    const before = tf.memory().numTensors;
    const m = await measureParts(model, dataset.test);
    expect(tf.memory().numTensors).toBe(before);

    // Local size recomputed here: per test image, the distinct prototypes of the predicted class's slots
    // whose focal similarity is non-zero, averaged.
    const all = await dataset.test.load(Array.from({ length: dataset.test.size }, (_, i) => i));
    const [logits, focal] = tf.tidy(() => {
      const out = model.forward(tf.tensor4d(all.x, all.shape), { kind: 'inference' }, false);
      return [out.logits.arraySync() as number[][], out.focal.arraySync() as number[][]];
    });
    const hard = hardAssignment(model.head.slotLogits);
    const k = model.config.slotsPerClass;
    const sizes = logits.map((row, b) => {
      const c = row.indexOf(Math.max(...row));
      return new Set(hard[c]!.filter((_, s) => Math.abs(focal[b]![c * k + s]!) > 1e-6)).size;
    });
    expect(m.localSize).toBeCloseTo(sizes.reduce((a, v) => a + v, 0) / sizes.length, 10);
    model.dispose();
    // Each figure is a share of whole counts: consistency of the 3·2 class slots, purity of 10 patches each.
    expect(Number.isInteger(Math.round(((m.consistency * 6) / 100) * 1e6) / 1e6)).toBe(true);
    expect(Number.isInteger(Math.round((m.purity / 100) * 10 * m.prototypesUsed * 1e6) / 1e6)).toBe(true);
    expect(m.images).toBe(dataset.test.size);
    expect(m.consistency).toBeGreaterThanOrEqual(0);
    expect(m.consistency).toBeLessThanOrEqual(100);
    expect(m.consistencyShared).toBeGreaterThanOrEqual(0);
    expect(m.consistencyShared).toBeLessThanOrEqual(100);
    expect(m.stability).toBeGreaterThanOrEqual(0);
    expect(m.stability).toBeLessThanOrEqual(100);
    expect(m.purity).toBeGreaterThanOrEqual(0);
    expect(m.purity).toBeLessThanOrEqual(100);
    expect(m.prototypesUsed).toBe(r.final.prototypesUsed);
    expect(m.localSize).toBeGreaterThan(0);
    expect(m.localSize).toBeLessThanOrEqual(2);
  });
});
