// Shallow–deep feature alignment: cell similarity matrices and the L1 gap between them, checked by hand.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../gpu-backend/src/engine';
import { alignmentLoss, cellSimilarities } from '../../gpu-backend/src/model/feature-alignment';
import { HEAD_DEFAULTS } from '../../gpu-backend/src/model/head';
import { ProtoPoolModel } from '../../gpu-backend/src/model/protopool';

beforeAll(async () => {
  await initEngine('wasm');
});

/** A [1,1,N,C] map from N cells' feature vectors. */
const row = (cells: number[][]) => tf.tensor4d(cells.flat(), [1, 1, cells.length, cells[0]!.length]);

describe('cell similarities', () => {
  it('are cosines of the features centred over the image', () => {
    // Cells a, b, a: centred they are u, −u, u with u = (1/3, −1/3), so every cosine is ±1.
    const s = tf.tidy(() =>
      cellSimilarities(
        row([
          [1, 0],
          [0, 1],
          [1, 0],
        ]),
      ).arraySync(),
    );
    const expected = [
      [1, -1, 1],
      [-1, 1, -1],
      [1, -1, 1],
    ];
    for (const [i, r] of s[0]!.entries()) {
      for (const [j, v] of r.entries()) expect(v).toBeCloseTo(expected[i]![j]!, 5);
    }
  });

  it('ignore what all cells share: an offset added everywhere changes nothing', () => {
    const [a, b] = tf.tidy(() => {
      const x = tf.randomUniform([2, 3, 3, 4], 0, 1, 'float32', 5) as tf.Tensor4D;
      return [cellSimilarities(x).arraySync(), cellSimilarities(tf.add(x, 7) as tf.Tensor4D).arraySync()];
    });
    for (const [i, v] of a.flat(2).entries()) expect(b.flat(2)[i]).toBeCloseTo(v, 4);
  });
});

describe('alignment loss', () => {
  it('is the mean |S_deep − S_shallow| over cell pairs (hand-computed: 8/9)', () => {
    // Shallow cells a, b, a give S_s = ±1 as above; deep cells a, a, b give S_d with rows (1, 1, −1),
    // (1, 1, −1), (−1, −1, 1). |S_d − S_s| has four entries of 2 and five of 0: 8 / 9.
    const loss = tf.tidy(() =>
      alignmentLoss(
        row([
          [1, 0],
          [0, 1],
          [1, 0],
        ]),
        row([
          [1, 0],
          [1, 0],
          [0, 1],
        ]),
      ).arraySync(),
    );
    expect(loss).toBeCloseTo(8 / 9, 5);
  });

  it('is zero when the deep map keeps the shallow layout, whatever its channels', () => {
    const loss = tf.tidy(() => {
      const shallow = tf.randomUniform([2, 4, 4, 3], 0, 1, 'float32', 9) as tf.Tensor4D;
      // A positive scale and an offset leave every centred cosine as it was.
      return alignmentLoss(shallow, tf.add(tf.mul(shallow, 2.5), 1) as tf.Tensor4D).arraySync();
    });
    expect(loss).toBeCloseTo(0, 5);
  });

  it('average-pools a finer shallow grid to the deep grid', () => {
    const [pooled, direct] = tf.tidy(() => {
      const shallow = tf.randomUniform([1, 4, 4, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
      const deep = tf.randomUniform([1, 2, 2, 5], 0, 1, 'float32', 4) as tf.Tensor4D;
      return [
        alignmentLoss(shallow, deep).arraySync(),
        alignmentLoss(tf.avgPool(shallow, 2, 2, 'valid') as tf.Tensor4D, deep).arraySync(),
      ];
    });
    expect(pooled).toBeCloseTo(direct, 6);
  });

  it('refuses a shallow grid that is not a multiple of the deep one', () => {
    const shallow = tf.zeros([1, 5, 5, 2]) as tf.Tensor4D;
    const deep = tf.zeros([1, 2, 2, 2]) as tf.Tensor4D;
    expect(() => alignmentLoss(shallow, deep)).toThrow(/5×5 is not a multiple of the deep grid 2×2/);
    tf.dispose([shallow, deep]);
  });

  it('trains the deep side only: no gradient reaches the shallow map', () => {
    const before = tf.memory().numTensors;
    const shallow = tf.randomUniform([1, 3, 3, 2], 0, 1, 'float32', 1) as tf.Tensor4D;
    const deep = tf.randomUniform([1, 3, 3, 4], 0, 1, 'float32', 2) as tf.Tensor4D;
    const [gs, gd] = tf.grads((s: tf.Tensor, d: tf.Tensor) =>
      alignmentLoss(s as tf.Tensor4D, d as tf.Tensor4D),
    )([shallow, deep]);
    expect(tf.tidy(() => tf.max(tf.abs(gs!)).arraySync())).toBe(0);
    expect(tf.tidy(() => tf.max(tf.abs(gd!)).arraySync())).toBeGreaterThan(0);
    tf.dispose([shallow, deep, gs!, gd!]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('the model with a shallow output', () => {
  it('returns the same logits as the plain forward, plus the shallow map, and leaks no tensor', () => {
    const model = ProtoPoolModel.create({
      backbone: 'small-cnn',
      inputShape: [64, 64, 3],
      seed: 3,
      classes: 3,
      prototypes: 6,
      slotsPerClass: 2,
      depth: 8,
      ...HEAD_DEFAULTS,
    });
    const x = tf.randomUniform([2, 64, 64, 3], 0, 1, 'float32', 8) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    const plain = model.forward(x, { kind: 'inference' }, false);
    const twin = model.forwardWithShallow(x, { kind: 'inference' }, false, 'pool1');
    expect(twin.shallow.shape).toEqual([2, 16, 16, 32]);
    expect(twin.z.shape).toEqual([2, 16, 16, 8]);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(twin.logits, plain.logits))).arraySync())).toBeLessThan(1e-6);
    tf.dispose([plain, twin] as unknown as tf.TensorContainer);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    model.dispose();
  });
});
