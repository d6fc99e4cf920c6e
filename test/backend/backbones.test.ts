// Backbone geometry: the feature grid each input size gets, and how far each cell sees.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../gpu-backend/src/engine';
import { buildBackbone } from '../../gpu-backend/src/model/backbones';

beforeAll(async () => {
  await initEngine('wasm');
});

/** Rows of the input that change output cell (row, 0) when perturbed: the cell's receptive field height. */
function receptiveRows(model: tf.LayersModel, side: number, row: number): number[] {
  const base = tf.zeros([1, side, side, 3]);
  const ref = model.predict(base) as tf.Tensor4D;
  const seen: number[] = [];
  for (let r = 0; r < side; r++) {
    const changed = tf.tidy(() => {
      const bump = tf.buffer([1, side, side, 3]);
      for (let c = 0; c < side; c++) for (let k = 0; k < 3; k++) bump.set(10, 0, r, c, k);
      const out = model.predict(bump.toTensor()) as tf.Tensor4D;
      return tf
        .any(tf.greater(tf.abs(tf.sub(out, ref).slice([0, row, 0, 0], [1, 1, -1, -1])), 1e-6))
        .dataSync()[0];
    });
    if (changed) seen.push(r);
  }
  tf.dispose([base, ref]);
  return seen;
}

describe('small CNN', () => {
  it('gives a 28 px input a 7×7 grid and a 64 px input a 16×16 grid', () => {
    for (const [side, grid] of [
      [28, 7],
      [32, 8],
      [64, 16],
    ] as const) {
      const m = buildBackbone({ name: 'small-cnn', inputShape: [side, side, 3], seed: 1 });
      expect(m.outputs[0]!.shape).toEqual([null, grid, grid, 128]);
      m.dispose();
    }
  });

  it('lets a 64 px cell see 25 px (conv s2, conv, pool, conv, conv), so a peak can sit on a 10 px part', () => {
    const before = tf.memory().numTensors;
    const m = buildBackbone({ name: 'small-cnn', inputShape: [64, 64, 3], seed: 1 });
    const rows = receptiveRows(m, 64, 8);
    m.dispose();
    // By hand, with TF's 'same' padding (a stride-2 conv pads only after): c1 row i reads 2i..2i+2, c2 then
    // 2i−2..2i+4, pool row j 4j−2..4j+6, c3 4j−6..4j+10, c5 4j−10..4j+14: rows 22..46 for j = 8.
    expect(Math.min(...rows)).toBeGreaterThanOrEqual(22);
    expect(Math.max(...rows)).toBeLessThanOrEqual(46);
    expect(rows.length).toBeGreaterThanOrEqual(23); // zero padding and ReLU may hide a border row
    expect(tf.memory().numTensors).toBe(before);
  });
});
